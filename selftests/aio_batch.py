#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""aio_batch.py DEV OFFSET N [MODE]: N adjacent 4 KiB O_DIRECT writes from OFFSET, submitted in
one io_submit (Linux AIO). With more than two, the kernel plugs the batch, so the block layer can
merge them into one request of N bios. Prints each write's result (bytes or -errno), in order.
MODE "write-sum" also prints, on a second line, the sha256 of the data written; "read" reads
instead of writing and prints the sha256 of the data read there; "read-parts" prints that of
each 4 KiB read that completed ("-" for one that did not)."""
import ctypes
import hashlib
import mmap
import os
import struct
import sys

SYS_IO_SETUP, SYS_IO_DESTROY, SYS_IO_GETEVENTS, SYS_IO_SUBMIT = 206, 207, 208, 209
IOCB_CMD_PREAD, IOCB_CMD_PWRITE = 0, 1
BS = 4096


def main():
    dev, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "write"
    op = IOCB_CMD_PREAD if mode.startswith("read") else IOCB_CMD_PWRITE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = os.open(dev, (os.O_RDONLY if op == IOCB_CMD_PREAD else os.O_RDWR) | os.O_DIRECT)
    buf = mmap.mmap(-1, BS * n)
    buf.write(os.urandom(BS * n))
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    ctx = ctypes.c_ulong(0)
    if libc.syscall(SYS_IO_SETUP, n, ctypes.byref(ctx)) != 0:
        sys.exit(f"io_setup: {os.strerror(ctypes.get_errno())}")
    # struct iocb (x86-64): data, key, rw_flags, opcode, reqprio, fildes, buf, nbytes, offset,
    # reserved2, flags, resfd.
    iocbs = [ctypes.create_string_buffer(struct.pack(
        "<QIIHhIQQqQII", i, 0, 0, op, 0, fd, base + BS * i, BS, off + BS * i,
        0, 0, 0)) for i in range(n)]
    ptrs = (ctypes.c_void_p * n)(*[ctypes.addressof(b) for b in iocbs])
    submitted = libc.syscall(SYS_IO_SUBMIT, ctx, n, ptrs)
    if submitted != n:
        sys.exit(f"io_submit: {submitted} of {n}")
    events = ctypes.create_string_buffer(32 * n)  # struct io_event: data, obj, res, res2
    got = libc.syscall(SYS_IO_GETEVENTS, ctx, n, n, events, None)
    res = {}
    for k in range(max(got, 0)):
        data, _, r, _ = struct.unpack_from("<QQqq", events, 32 * k)
        res[data] = r
    libc.syscall(SYS_IO_DESTROY, ctx)
    print(" ".join(str(res.get(i)) for i in range(n)))
    if mode == "read-parts":
        print(" ".join(hashlib.sha256(buf[BS * i:BS * (i + 1)]).hexdigest() if res.get(i) == BS
                       else "-" for i in range(n)))
    elif mode != "write":
        print(hashlib.sha256(buf[:]).hexdigest())


main()
