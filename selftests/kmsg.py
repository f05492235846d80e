#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Copy the kernel log, record by record, to a file, for the selftest runner.

    kmsg.py FILE

Reads /dev/kmsg from its oldest record on and appends one line per record to FILE:
"<sequence number> <text>" (continuation lines of a record are dropped, multi-line texts keep
their escapes). If the kernel overwrote records before they were read, a line
"rust-loop-kmsg: N records lost" is written in their place, so the runner fails the window
they belonged to instead of missing a report. Runs until killed.

The runner writes its own markers into the log (/dev/kmsg) and waits for them to appear in
FILE: everything the kernel logged before a marker is in FILE before it, in order.
"""

import os
import sys


def main():
    out = open(sys.argv[1], "a", buffering=1, encoding="utf-8", errors="replace")
    fd = os.open("/dev/kmsg", os.O_RDONLY)
    last = None
    while True:
        try:
            rec = os.read(fd, 16384)
        except BrokenPipeError:
            # The next record we would have read was overwritten; reading goes on from the
            # oldest record still there, whose sequence number tells how many were lost.
            continue
        if not rec:
            continue
        head, _, text = rec.decode("utf-8", "replace").partition(";")
        fields = head.split(",")
        try:
            seq = int(fields[1])
        except (IndexError, ValueError):
            continue
        if last is not None and seq > last + 1:
            out.write(f"rust-loop-kmsg: {seq - last - 1} records lost (kernel log overflow)\n")
        last = seq
        out.write(f"{seq} {text.splitlines()[0] if text else ''}\n")


if __name__ == "__main__":
    main()
