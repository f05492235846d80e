#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write numbered records until the machine is cut off; log what fsync acknowledged.

    crash_writer.py write DIR LOGDEV      append records to DIR/records, fdatasync after each
                                          batch, then log the count on LOGDEV (O_DIRECT|O_SYNC)
    crash_writer.py check DIR LOGDEV [N]  every record the log says was acknowledged (or the
                                          first N) is present and intact; prints
                                          "acknowledged N, present M"
    crash_writer.py acked LOGDEV          prints the acknowledged count the log holds now

A record is 4096 bytes: its number, a checksum, and bytes derived from the number. The log is a
separate raw disk: block 0 holds the highest acknowledged count, written only after the
fdatasync of the records returned. A cut (sysrq b) may lose records written after the last
acknowledgement, never one before it.
"""

import hashlib
import mmap
import os
import struct
import sys

REC = 4096
BATCH = 8


def record(i):
    body = hashlib.sha256(str(i).encode()).digest() * ((REC - 40) // 32 + 1)
    body = body[:REC - 40]
    head = struct.pack("<Q", i) + hashlib.sha256(struct.pack("<Q", i) + body).digest()
    return head + body


def log_write(logdev, n):
    buf = mmap.mmap(-1, 4096)
    buf.write(struct.pack("<QQ", 0x52555354, n).ljust(4096, b"\0"))
    fd = os.open(logdev, os.O_WRONLY | os.O_DIRECT | os.O_SYNC)
    try:
        os.pwrite(fd, buf, 0)
    finally:
        os.close(fd)


def log_read(logdev):
    fd = os.open(logdev, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)
    try:
        os.preadv(fd, [buf], 0)
    finally:
        os.close(fd)
    magic, n = struct.unpack("<QQ", buf[:16])
    return n if magic == 0x52555354 else 0


def write(d, logdev):
    log_write(logdev, 0)
    fd = os.open(os.path.join(d, "records"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    i = 0
    print("writing", flush=True)
    while True:
        for _ in range(BATCH):
            os.write(fd, record(i))
            i += 1
        os.fdatasync(fd)
        log_write(logdev, i)


def check(d, logdev, acked=None):
    if acked is None:
        acked = log_read(logdev)
    present = 0
    try:
        with open(os.path.join(d, "records"), "rb") as f:
            while True:
                r = f.read(REC)
                if len(r) < REC:
                    break
                if r != record(present):
                    break
                present += 1
    except FileNotFoundError:
        pass
    print(f"acknowledged {acked}, present {present}")
    return 0 if present >= acked else 1


def main():
    if sys.argv[1] == "acked":
        print(log_read(sys.argv[2]))
        return 0
    cmd, d, logdev = sys.argv[1:4]
    if cmd == "write":
        write(d, logdev)
        return 0
    return check(d, logdev, int(sys.argv[4]) if len(sys.argv) > 4 else None)


if __name__ == "__main__":
    sys.exit(main())
