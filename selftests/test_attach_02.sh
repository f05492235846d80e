#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Backing files of every kind a caller can pass, by LOOP_SET_FD, LOOP_CONFIGURE (direct I/O off
# and on) and LOOP_SET_FD then LOOP_SET_DIRECT_IO: an ext4 file opened read-write, read-only,
# write-only, O_DIRECT, O_APPEND, O_SYNC or O_PATH; a tmpfs file with O_DIRECT; a memfd, and
# one sealed against writes; a file of another file system (the repository: 9p in the guest);
# sysfs, proc and debugfs files; a directory, a FIFO, a pipe, a socket, /dev/zero, an eventfd.
# Each outcome is printed: the errno, or the device's size, read-only flag, direct I/O, logical
# block size, a buffered and a direct read of its first 4 KiB (checksum or errno) and a write
# with fsync. The output must equal loop.ko 7.2's (attach_02.out, taken from loop.ko's run):
# EBADF for O_PATH; EINVAL for what is not a regular file or block device, or has no read_iter
# (a proc or debugfs file); EINVAL from LOOP_SET_DIRECT_IO on a memfd or a sysfs file; a device
# on a write-only file reads (the file's read_iter does not check the open mode); a sealed
# memfd fails the device's writes with EIO.
. "$(dirname "$0")/lib.sh"
lt_need python3 mountpoint
lt_debugfs
out=$LT_WORK/out
mkdir "$LT_WORK/tmpfs"
# lt_cleanup unmounts it.
mount -t tmpfs -o size=8m lt_attach_02 "$LT_WORK/tmpfs"
python3 - "$LT_WORK" "$LT_REPO/README.md" "$LT_DIR" >"$out" 2>"$LT_WORK/err" <<'PY'
import errno, fcntl, hashlib, mmap, os, random, socket, sys

work, repo_file = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
from loopctl import (CONFIG, LOOP_CLR_FD, LOOP_CONFIGURE, LOOP_CTL_GET_FREE,  # noqa: E402
                     LOOP_SET_DIRECT_IO, LOOP_SET_FD, info64)

LO_FLAGS_DIRECT_IO = 16
F_ADD_SEALS, F_SEAL_WRITE = 1033, 0x0008
data = random.Random(7).randbytes(1 << 20)


def name(e):
    return errno.errorcode.get(e, str(e))


def attr(n, path):
    try:
        with open(f"/sys/block/loop{n}/{path}") as f:
            return f.read().strip()
    except OSError as e:
        return "ERR " + name(e.errno)


def read4k(dev, direct, stable):
    try:
        fd = os.open(dev, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    except OSError as e:
        return "open ERR " + name(e.errno)
    try:
        buf = mmap.mmap(-1, 4096)
        got = os.preadv(fd, [buf], 0)
        digest = hashlib.sha256(buf[:got]).hexdigest()[:12] if stable else "-"
        return f"{got}:{digest}"
    except OSError as e:
        return "ERR " + name(e.errno)
    finally:
        os.close(fd)


def write4k(dev):
    try:
        fd = os.open(dev, os.O_RDWR)
    except OSError as e:
        return "open ERR " + name(e.errno)
    try:
        os.pwrite(fd, b"w" * 4096, 0)
        os.fsync(fd)
        return "ok"
    except OSError as e:
        return "ERR " + name(e.errno)
    finally:
        os.close(fd)


def bound(n, dev, stable):
    size = attr(n, "size") if stable else ("0" if attr(n, "size") == "0" else ">0")
    return (f"size={size} ro={attr(n, 'ro')} dio={attr(n, 'loop/dio')} "
            f"lbs={attr(n, 'queue/logical_block_size')} read={read4k(dev, False, stable)} "
            f"readD={read4k(dev, True, stable)} write={write4k(dev)}")


def attach(label, make, stable=True):
    for how in ("SET_FD", "CONFIGURE", "CONFIGURE_DIO", "SET_FD+SET_DIRECT_IO"):
        try:
            bfd = make()
        except OSError as e:
            print(label, how, "no such file:", name(e.errno))
            return
        ctl = os.open("/dev/loop-control", os.O_RDWR)
        n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
        os.close(ctl)
        dev = f"/dev/loop{n}"
        lfd = os.open(dev, os.O_RDWR)
        line = f"{label} {how}"
        try:
            if how.startswith("SET_FD"):
                fcntl.ioctl(lfd, LOOP_SET_FD, bfd)
            else:
                flags = LO_FLAGS_DIRECT_IO if how == "CONFIGURE_DIO" else 0
                fcntl.ioctl(lfd, LOOP_CONFIGURE, CONFIG.pack(bfd, 0, info64(flags=flags)))
        except OSError as e:
            print(line, "ERR", name(e.errno))
            os.close(lfd)
            os.close(bfd)
            continue
        try:
            if how == "SET_FD+SET_DIRECT_IO":
                try:
                    fcntl.ioctl(lfd, LOOP_SET_DIRECT_IO, 1)
                    line += " set_dio=OK"
                except OSError as e:
                    line += " set_dio=ERR " + name(e.errno)
            print(line, "OK", bound(n, dev, stable), flush=True)
        finally:
            fcntl.ioctl(lfd, LOOP_CLR_FD)
            os.close(lfd)
            os.close(bfd)


def fresh(path):
    with open(path, "wb") as f:
        f.write(data)
    return path


def memfd(seal):
    fd = os.memfd_create("lt", os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    if seal:
        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)
    return fd


def pipe_end():
    r, w = os.pipe()
    os.close(w)
    return r


ext4 = os.path.join(work, "file")
shm = os.path.join(work, "tmpfs", "file")
fifo = os.path.join(work, "fifo")
os.mkfifo(fifo)
for label, flags in (("ext4 O_RDWR", os.O_RDWR), ("ext4 O_RDONLY", os.O_RDONLY),
                     ("ext4 O_WRONLY", os.O_WRONLY), ("ext4 O_DIRECT", os.O_RDWR | os.O_DIRECT),
                     ("ext4 O_APPEND", os.O_RDWR | os.O_APPEND),
                     ("ext4 O_SYNC", os.O_RDWR | os.O_SYNC), ("ext4 O_PATH", os.O_PATH)):
    attach(label, lambda: os.open(fresh(ext4), flags))
attach("tmpfs O_DIRECT", lambda: os.open(fresh(shm), os.O_RDWR | os.O_DIRECT))
attach("memfd", lambda: memfd(False))
attach("memfd sealed", lambda: memfd(True))
attach("repository file", lambda: os.open(repo_file, os.O_RDONLY), stable=False)
attach("sysfs file", lambda: os.open("/sys/kernel/notes", os.O_RDONLY))
attach("proc file", lambda: os.open("/proc/self/status", os.O_RDONLY))
attach("proc sysctl", lambda: os.open("/proc/sys/vm/drop_caches", os.O_WRONLY))
attach("debugfs file", lambda: os.open("/sys/kernel/debug/sched/features", os.O_RDONLY))
attach("directory", lambda: os.open(work, os.O_RDONLY))
attach("fifo", lambda: os.open(fifo, os.O_RDWR))
attach("pipe", pipe_end)
attach("socket", lambda: socket.socket(socket.AF_UNIX).detach())
attach("/dev/zero", lambda: os.open("/dev/zero", os.O_RDWR))
attach("eventfd", lambda: os.eventfd(0))
PY
lt_same_as_expected "$LT_DIR/attach_02.out" "$out" "$LT_WORK/err" "the record of outcomes"
exit 0
