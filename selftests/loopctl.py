#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Issue one loop ioctl and print its outcome, for the selftests.

Prints "OK <return value>" (followed by a JSON line for the GET_STATUS commands) or
"ERR <ERRNO NAME>"; exits 0 in both cases, 2 on a usage error. The selftests compare these
lines, so that errno choices are checked exactly, against loop.ko and rust_loop alike.

The structures are those of include/uapi/linux/loop.h on x86-64.
"""

# Only what every call needs is imported here: the tool runs hundreds of times per `make check`,
# and under TCG each import costs (argparse and json alone took 0.2 of 0.56 s a call).
import errno
import fcntl
import os
import struct
import sys

LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS = 0x4C02
LOOP_GET_STATUS = 0x4C03
LOOP_SET_STATUS64 = 0x4C04
LOOP_GET_STATUS64 = 0x4C05
LOOP_CHANGE_FD = 0x4C06
LOOP_SET_CAPACITY = 0x4C07
LOOP_SET_DIRECT_IO = 0x4C08
LOOP_SET_BLOCK_SIZE = 0x4C09
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_ADD = 0x4C80
LOOP_CTL_REMOVE = 0x4C81
LOOP_CTL_GET_FREE = 0x4C82

# struct loop_info64: 232 bytes.
INFO64 = struct.Struct("=QQQQQIIII64s64s32sQQ")
# struct loop_config: fd, block_size, info, __reserved[8].
CONFIG = struct.Struct("=II232s64x")
# struct loop_info (legacy), x86-64 layout: 168 bytes.
INFO = struct.Struct("=i4xQQQiiii64s32sQQ4s4x")

assert INFO64.size == 232 and CONFIG.size == 304 and INFO.size == 168


def info64(offset=0, sizelimit=0, flags=0, name=b"", encrypt_type=0, key_size=0):
    return INFO64.pack(0, 0, 0, offset, sizelimit, 0, encrypt_type, key_size, flags,
                       name, b"", b"", 0, 0)


def decode_info64(buf):
    f = INFO64.unpack(buf)
    return {
        "lo_device": f[0], "lo_inode": f[1], "lo_rdevice": f[2], "lo_offset": f[3],
        "lo_sizelimit": f[4], "lo_number": f[5], "lo_encrypt_type": f[6],
        "lo_encrypt_key_size": f[7], "lo_flags": f[8],
        "lo_file_name": f[9].rstrip(b"\0").decode(errors="replace"),
        "lo_crypt_name": f[10].rstrip(b"\0").decode(errors="replace"),
    }


def decode_info(buf):
    f = INFO.unpack(buf)
    return {
        "lo_number": f[0], "lo_device": f[1], "lo_inode": f[2], "lo_rdevice": f[3],
        "lo_offset": f[4], "lo_encrypt_type": f[5], "lo_encrypt_key_size": f[6],
        "lo_flags": f[7], "lo_name": f[8].rstrip(b"\0").decode(errors="replace"),
    }


def open_dev(path, ro):
    return os.open(path, os.O_RDONLY if ro else os.O_RDWR)


def open_file(path, ro, direct):
    flags = os.O_RDONLY if ro else os.O_RDWR
    if direct:
        flags |= os.O_DIRECT
    return os.open(path, flags)


def ioctl_ulong(fd, cmd, value):
    """ioctl(2) with an unsigned long argument: fcntl.ioctl only passes a C int."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]
    ret = libc.ioctl(fd, cmd, value)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def int0(s):
    return int(s, 0)


# Options: those that take a value (with its conversion), then the switches. A --name goes to
# the kernel as the bytes given (os.fsencode undoes the surrogate escapes of a non-UTF-8 argv).
VALUED = {"--fd": int, "--flags": int0, "--bs": int0, "--offset": int0, "--sizelimit": int0,
          "--name": str, "--encrypt-type": int, "--key-size": int}
SWITCHES = ("--dev-ro", "--file-ro", "--file-direct", "--null")


class Args:
    """The command line: CMD [DEV] [ARGS...] and the options above, in any order."""

    def __init__(self, argv):
        self.fd = None
        self.flags = self.bs = self.offset = self.sizelimit = 0
        self.encrypt_type = self.key_size = 0
        self.name = ""
        self.dev_ro = self.file_ro = self.file_direct = self.null = False
        pos = []
        i = 0
        while i < len(argv):
            key, eq, val = argv[i].partition("=")
            if key in SWITCHES and not eq:
                setattr(self, key[2:].replace("-", "_"), True)
            elif key in VALUED:
                if not eq:
                    i += 1
                    if i == len(argv):
                        raise ValueError(f"{key} needs a value")
                    val = argv[i]
                setattr(self, key[2:].replace("-", "_"), VALUED[key](val))
            elif argv[i].startswith("--"):
                raise ValueError(f"unknown option {argv[i]}")
            else:
                pos.append(argv[i])
            i += 1
        if not pos:
            raise ValueError("no command")
        self.cmd = pos[0]
        self.dev = pos[1] if len(pos) > 1 else None
        self.args = pos[2:]


def main():
    try:
        a = Args(sys.argv[1:])
    except ValueError as e:
        print(f"usage: loopctl.py CMD [DEV] [ARGS...] [options]: {e}", file=sys.stderr)
        return 2

    def backing_fd():
        if a.fd is not None:
            return a.fd
        return open_file(a.args[0], a.file_ro, a.file_direct)

    try:
        if a.cmd == "ctl-storm":
            # COUNT random ADD/REMOVE/GET_FREE on indices LOW..HIGH: prints the outcome counts.
            import random
            count, seed, low, high = (int(x, 0) for x in [a.dev] + a.args[:3])
            rnd = random.Random(seed)
            fd = os.open("/dev/loop-control", os.O_RDWR)
            seen = {}
            for _ in range(count):
                cmd = rnd.choice([LOOP_CTL_ADD, LOOP_CTL_REMOVE, LOOP_CTL_GET_FREE])
                try:
                    fcntl.ioctl(fd, cmd, rnd.randint(low, high))
                    key = "OK"
                except OSError as e:
                    key = errno.errorcode.get(e.errno, str(e.errno))
                name = {LOOP_CTL_ADD: "add", LOOP_CTL_REMOVE: "remove",
                        LOOP_CTL_GET_FREE: "get_free"}[cmd]
                seen[f"{name}:{key}"] = seen.get(f"{name}:{key}", 0) + 1
            print("OK", count)
            import json
            print(json.dumps(seen, sort_keys=True))
            return 0
        if a.cmd in ("ctl-add", "ctl-remove", "ctl-get-free", "ctl-raw"):
            fd = os.open("/dev/loop-control", os.O_RDWR)
            if a.cmd == "ctl-raw":
                cmd, arg = int(a.dev, 0), int(a.args[0], 0)
            else:
                cmd = {"ctl-add": LOOP_CTL_ADD, "ctl-remove": LOOP_CTL_REMOVE,
                       "ctl-get-free": LOOP_CTL_GET_FREE}[a.cmd]
                arg = int(a.dev, 0) if a.dev is not None else 0
            print("OK", fcntl.ioctl(fd, cmd, arg))
            return 0

        dev = open_dev(a.dev, a.dev_ro)
        if a.cmd == "set-fd":
            print("OK", fcntl.ioctl(dev, LOOP_SET_FD, backing_fd()))
        elif a.cmd == "change-fd":
            print("OK", fcntl.ioctl(dev, LOOP_CHANGE_FD, backing_fd()))
        elif a.cmd == "configure":
            info = info64(a.offset, a.sizelimit, a.flags, os.fsencode(a.name), a.encrypt_type,
                          a.key_size)
            buf = bytearray(CONFIG.pack(backing_fd(), a.bs, info))
            print("OK", fcntl.ioctl(dev, LOOP_CONFIGURE, buf))
        elif a.cmd == "clr-fd":
            print("OK", fcntl.ioctl(dev, LOOP_CLR_FD, 0))
        elif a.cmd == "clr-fd-reopen":
            # LOOP_CLR_FD as the only opener, then open again before closing: the device is
            # in rundown, so the second open must fail.
            fcntl.ioctl(dev, LOOP_CLR_FD, 0)
            print("OK", os.open(a.dev, os.O_RDONLY) >= 0)
        elif a.cmd in ("get-status64", "get-status"):
            cmd, layout, decode = {
                "get-status64": (LOOP_GET_STATUS64, INFO64, decode_info64),
                "get-status": (LOOP_GET_STATUS, INFO, decode_info),
            }[a.cmd]
            if a.null:
                print("OK", fcntl.ioctl(dev, cmd, 0))
            else:
                buf = bytearray(layout.size)
                print("OK", fcntl.ioctl(dev, cmd, buf))
                import json
                print(json.dumps(decode(bytes(buf))))
        elif a.cmd == "set-status64":
            buf = bytearray(info64(a.offset, a.sizelimit, a.flags, os.fsencode(a.name),
                                   a.encrypt_type, a.key_size))
            print("OK", fcntl.ioctl(dev, LOOP_SET_STATUS64, buf))
        elif a.cmd == "set-status":
            buf = bytearray(INFO.pack(0, 0, 0, 0, a.offset, a.encrypt_type, a.key_size,
                                      a.flags, os.fsencode(a.name), b"", 0, 0, b""))
            print("OK", fcntl.ioctl(dev, LOOP_SET_STATUS, buf))
        elif a.cmd == "set-dio":
            print("OK", fcntl.ioctl(dev, LOOP_SET_DIRECT_IO, int(a.args[0], 0)))
        elif a.cmd == "set-bs":
            print("OK", ioctl_ulong(dev, LOOP_SET_BLOCK_SIZE, int(a.args[0], 0)))
        elif a.cmd == "set-capacity":
            print("OK", fcntl.ioctl(dev, LOOP_SET_CAPACITY, 0))
        elif a.cmd == "raw":
            print("OK", fcntl.ioctl(dev, int(a.args[0], 0), int(a.args[1], 0)))
        else:
            print(f"unknown command {a.cmd}", file=sys.stderr)
            return 2
    except OSError as e:
        print("ERR", errno.errorcode.get(e.errno, str(e.errno)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
