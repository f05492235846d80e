#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The LTP loop-device ioctl tests, ported: ioctl_loop01..07 and ioctl09 (BLKRRPART).

Usage: ltp_loop.py WORKDIR [TEST...]  (root; a loaded loop driver; TEST: ioctl_loop01 .. ioctl09)

Upstream: linux-test-project/ltp, testcases/kernel/syscalls/ioctl/ioctl_loop0[1-7].c and
ioctl09.c, with lib/tst_device.c (tst_find_free_loopdev, tst_attach_device,
tst_detach_device[_by_fd] and its check for partitions left behind). test_ltp_01 runs this on
each driver and compares its standard output with loop.ko 7.2's (ltp_loop.out).

Each check prints one line "TEST: what was checked: outcome", the outcome being what was
observed, not a verdict: "ok" or "errno ENAME" for a call, the value read for a sysfs attribute,
lo_flags or a size. A driver that answers differently (another errno, another flag) prints a
different line. Nothing that varies between runs is printed: no device numbers (the device is
"the device", its partitions "p1"), no timings; the backing file's path is printed relative to
WORKDIR ("<tmpdir>/test.img"). Progress and diagnostics go to stderr.

Deviations from LTP, and why:
- python3 (fcntl.ioctl, the structures of include/uapi/linux/loop.h on x86-64, from loopctl.py)
  instead of C and the LTP library: no LTP checkout or library build in the guest. LTP's TPASS/TFAIL verdicts become observed
  values, compared with loop.ko's by the caller: e.g. ioctl_loop01 prints the whole lo_flags
  value where LTP only checks that no flag outside AUTOCLEAR|PARTSCAN is set; this is stricter.
- parted (not in the guest) is replaced by an MBR written here: the same msdos label with
  primary Linux partitions, on MiB boundaries (1 MiB .. 10 MiB, 10 MiB .. 20 MiB; parted's
  "10M" is 10 MB). Only the presence of the partitions is checked, as upstream.
- LTP's retries (TST_RETRY_FN_EXP_BACKOFF on ioctl_loop01's partition nodes, TST_RETRY_FUNC on
  LOOP_SET_STATUS / LOOP_SET_STATUS64 / BLKRRPART, tst_detach_device_by_fd's LOOP_CLR_FD until
  ENXIO) are bounded polls here too, after `udevadm settle`; a retried call prints its final
  outcome only. Bounds: 10 s, 200 s on the debug kernel, 2 s each once one has expired (a
  driver that answers otherwise must still let the run end within the test's time). ioctl09
  checks its partitions at once, as upstream's access() does.
- tst_detach_device_by_fd follows current LTP (the fd is closed once LOOP_CLR_FD answers ENXIO,
  the test reopens the device); the outcome line says what the first LOOP_CLR_FD answered,
  whether ENXIO followed, and whether the device was unbound when that close returned (it is the
  last close: loop.c unbinds before returning). Current LTP's check for partitions left on a
  detached device (clear_loop_device_partitions, p1) is a printed check right after every
  detach of a partitioned device, of each partition the test made.
- The checks LTP skips on a missing feature (TCONF: LOOP_CONFIGURE, LOOP_SET_DIRECT_IO,
  LOOP_SET_BLOCK_SIZE probes) print the probe's outcome instead, and the test goes on.
- Extra checks, on lines marked "(extra)": BLKGETSIZE64 next to sysfs size (ioctl_loop04/07);
  after every step that changes the device, everything LOOP_GET_STATUS64 and LOOP_GET_STATUS
  report (lo_number, lo_device and lo_inode compared with the device's number and the backing
  file's stat instead of printed) and the device's sysfs attributes (size, ro,
  queue/logical_block_size, loop/offset, sizelimit, autoclear, partscan, dio); after every
  detach, what LOOP_GET_STATUS64 tells a new opener. LTP checks a few of these fields only.
- ioctl_loop05: the backing device's logical block size (BLKSSZGET on the device of the mount
  holding WORKDIR, as tst_find_backing_dev) is printed; a WORKDIR not on a block device (tmpfs,
  which LTP skips) is taken as 512. The device is opened read-only (LTP: O_RDWR).
- ioctl_loop06: the block sizes of both LTP versions are tried: 2 * BLK_MAX_BLOCK_SIZE (64 KiB,
  current LTP: 131072) and 2 * PAGE_SIZE (older LTP: 8192). test.img is 1 MiB (current LTP:
  256 KiB with a 64 KiB BLK_MAX_BLOCK_SIZE). An unexpected success of LOOP_CONFIGURE is
  detached as upstream does.
- ioctl_loop07: LTP passes its zeroed struct loop_info64 to LOOP_SET_STATUS to reset the size
  limit; the port passes a zeroed struct loop_info (the first 168 bytes LTP's call hands the
  kernel are zero alike).
- Test files are zero-filled with write(2) (tst_fill_file); ioctl09's tst_prealloc_file
  (fallocate) is a zero-filled file too.
"""

import errno
import fcntl
import os
import stat
import struct
import subprocess
import sys
import time

# The loop ABI (ioctl numbers; struct loop_info64, loop_info and loop_config on x86-64) from
# the selftests' loopctl.py, next to this file: one copy of it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loopctl import (CONFIG, INFO, INFO64, LOOP_CHANGE_FD, LOOP_CLR_FD,  # noqa: E402
                     LOOP_CONFIGURE, LOOP_CTL_GET_FREE, LOOP_GET_STATUS, LOOP_GET_STATUS64,
                     LOOP_SET_BLOCK_SIZE, LOOP_SET_CAPACITY, LOOP_SET_DIRECT_IO, LOOP_SET_FD,
                     LOOP_SET_STATUS, LOOP_SET_STATUS64, decode_info, decode_info64, info64)

BLKRRPART = 0x125F
BLKSSZGET = 0x1268
BLKGETSIZE64 = 0x80081272

LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_PARTSCAN = 8
LO_FLAGS_DIRECT_IO = 16

WORK = ""
TEST = ""
DEV = ""     # /dev/loopN of the current test
SYS = ""     # /sys/block/loopN
ATTACHED = []  # devices the current test bound, for its cleanup


def emit(what, outcome):
    print("%s: %s: %s" % (TEST, what, outcome), flush=True)


def log(msg):
    sys.stderr.write("%s: %s\n" % (TEST, msg))
    sys.stderr.flush()


def ename(e):
    return "errno " + errno.errorcode.get(e, str(e))


def call(fd, req, arg=0):
    """ioctl; returns "ok" or "errno ENAME"."""
    try:
        fcntl.ioctl(fd, req, arg)
        return "ok"
    except OSError as e:
        return ename(e.errno)


# Bounded waits: 10 s, 20 times that on the debug kernel (many times slower). Only an outcome
# that differs from loop.ko's waits a bound out; once one has, the later waits are 2 s, so that a
# misbehaving driver still ends the run (and the diff is shown) within the test's time.
SLOW = 20 if os.path.exists("/proc/lockdep") else 1
EXPIRED = False


def deadline(secs=10.0):
    return time.monotonic() + (2.0 if EXPIRED else secs * SLOW)


def expired():
    global EXPIRED
    if not EXPIRED:
        log("a bounded wait expired: later waits are 2 s")
    EXPIRED = True


def retry(fd, req, arg=0):
    """LTP's TST_RETRY_FUNC(ioctl(...), TST_RETVAL_EQ0), bounded: the last outcome."""
    end = deadline()
    while True:
        r = call(fd, req, arg)
        if r == "ok":
            return r
        if time.monotonic() >= end:
            expired()
            return r
        time.sleep(0.05)


def poll(cond):
    end = deadline()
    while not cond():
        if time.monotonic() >= end:
            expired()
            return False
        time.sleep(0.05)
    return True


def settle():
    """udevadm settle: nothing of a previous step still in udev's hands (none without udev)."""
    try:
        r = subprocess.run(["udevadm", "settle"], stdout=sys.stderr, check=False).returncode
    except FileNotFoundError:
        return
    if r:
        log("udevadm settle exited %d" % r)


def info(name=b"", flags=0, offset=0):
    return INFO.pack(0, 0, 0, 0, offset, 0, 0, flags, name, b"", 0, 0, b"")


def config(fd, block_size=0, info=None):
    return CONFIG.pack(fd & 0xFFFFFFFF, block_size, info or info64())


def status_field(fd, req, layout, decode, field, form):
    """One field of what LOOP_GET_STATUS(64) returns, formatted, or the errno."""
    buf = bytearray(layout.size)
    try:
        fcntl.ioctl(fd, req, buf, True)
    except OSError as e:
        return ename(e.errno)
    return form % decode(buf)[field]


def get_flags(fd):
    """LOOP_GET_STATUS: lo_flags as "0x.." or the errno."""
    return status_field(fd, LOOP_GET_STATUS, INFO, decode_info, "lo_flags", "%#x")


def get_sizelimit64(fd):
    return status_field(fd, LOOP_GET_STATUS64, INFO64, decode_info64, "lo_sizelimit", "%d")


SYSFS_EXTRA = ("size", "ro", "queue/logical_block_size", "loop/offset", "loop/sizelimit",
               "loop/autoclear", "loop/partscan", "loop/dio")


def cstr(b):
    v = b.split(b"\0", 1)[0].decode(errors="replace")
    return v.replace(WORK + "/", "<tmpdir>/")


def status_extra(fd, what, file):
    """(extra) Everything LOOP_GET_STATUS64, LOOP_GET_STATUS and the device's sysfs attributes
    report, the numbers that vary between runs compared instead of printed: lo_number with the
    device's, lo_device/lo_inode with FILE's (the backing file expected)."""
    st = os.stat(file)
    num = int(SYS.rsplit("loop", 1)[1])

    def same(dev, ino):
        return "matches" if (dev, ino) == (st.st_dev, st.st_ino) else "differs"

    buf = bytearray(INFO64.size)
    try:
        fcntl.ioctl(fd, LOOP_GET_STATUS64, buf, True)
        v = INFO64.unpack(buf)
        r = ("lo_device/lo_inode %s lo_rdevice=%d lo_offset=%d lo_sizelimit=%d lo_number %s "
             "lo_encrypt_type=%d lo_encrypt_key_size=%d lo_flags=%#x lo_file_name=%r "
             "lo_crypt_name=%r lo_encrypt_key %s lo_init=%d,%d" % (
                 same(v[0], v[1]), v[2], v[3], v[4], "matches" if v[5] == num else "differs",
                 v[6], v[7], v[8], cstr(v[9]), cstr(v[10]), "zero" if not any(v[11]) else "set",
                 v[12], v[13]))
    except OSError as e:
        r = ename(e.errno)
    emit("%s: LOOP_GET_STATUS64 (extra)" % what, r)
    buf = bytearray(INFO.size)
    try:
        fcntl.ioctl(fd, LOOP_GET_STATUS, buf, True)
        v = INFO.unpack(buf)
        r = ("lo_number %s lo_device/lo_inode %s lo_rdevice=%d lo_offset=%d lo_encrypt_type=%d "
             "lo_encrypt_key_size=%d lo_flags=%#x lo_name=%r lo_encrypt_key %s lo_init=%d,%d" % (
                 "matches" if v[0] == num else "differs", same(v[1], v[2]), v[3], v[4], v[5],
                 v[6], v[7], cstr(v[8]), "zero" if not any(v[9]) else "set", v[10], v[11]))
    except OSError as e:
        r = ename(e.errno)
    emit("%s: LOOP_GET_STATUS (extra)" % what, r)
    emit("%s: sysfs (extra)" % what, " ".join("%s=%s" % (a, sysfs(a)) for a in SYSFS_EXTRA))


def getsize64(fd):
    try:
        return str(struct.unpack("=Q", fcntl.ioctl(fd, BLKGETSIZE64, bytes(8)))[0])
    except OSError as e:
        return ename(e.errno)


def sysfs(attr):
    """A sysfs attribute of the device, the backing file's path made relative to WORK."""
    try:
        with open(os.path.join(SYS, attr)) as f:
            v = f.read().strip()
    except OSError as e:
        return "unreadable (%s)" % ename(e.errno)
    if v.startswith(WORK + "/"):
        v = "<tmpdir>/" + v[len(WORK) + 1:]
    return v


def fill(path, bs, count):
    """tst_fill_file(path, 0, bs, count)."""
    with open(path, "wb") as f:
        for _ in range(count):
            f.write(b"\0" * bs)
        f.flush()
        os.fsync(f.fileno())


def mbr(path, parts):
    """An msdos label with primary Linux partitions (start, sectors), as `parted mklabel msdos
    mkpart primary ext4 ...` writes it (no boot code: the kernel does not read it)."""
    sector = bytearray(512)
    for i, (start, count) in enumerate(parts):
        # status, CHS first (unused: LBA), type 0x83, CHS last, LBA start, sectors.
        struct.pack_into("<B3sB3sII", sector, 446 + 16 * i, 0, b"\xfe\xff\xff", 0x83,
                         b"\xfe\xff\xff", start, count)
    sector[510:512] = b"\x55\xaa"
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(sector), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


MIB = 2048  # sectors
P1 = (1 * MIB, 9 * MIB)     # parted 1M 10M
P2 = (10 * MIB, 10 * MIB)   # parted 10M 20M


def find_free():
    """tst_find_free_loopdev: LOOP_CTL_GET_FREE; sets DEV and SYS."""
    global DEV, SYS
    fd = os.open("/dev/loop-control", os.O_RDWR)
    try:
        n = fcntl.ioctl(fd, LOOP_CTL_GET_FREE)
    finally:
        os.close(fd)
    DEV, SYS = "/dev/loop%d" % n, "/sys/block/loop%d" % n
    # The node comes from devtmpfs as the disk is added.
    if not poll(lambda: os.path.exists(DEV)):
        raise RuntimeError("%s did not appear" % DEV)
    log("free device %s" % DEV)


def attach(file):
    """tst_attach_device: LOOP_SET_FD, then LOOP_SET_STATUS with lo_name = FILE."""
    dfd = os.open(DEV, os.O_RDWR)
    ffd = os.open(file, os.O_RDWR)
    try:
        r = call(dfd, LOOP_SET_FD, ffd)
        if r == "ok":
            ATTACHED.append(DEV)
            r = call(dfd, LOOP_SET_STATUS, info(name=file.encode()))
    finally:
        os.close(ffd)
        os.close(dfd)
    return r


def bound():
    return os.path.exists(os.path.join(SYS, "loop", "backing_file"))


def detach_by_fd(fd):
    """Current LTP's tst_detach_device_by_fd: LOOP_CLR_FD until ENXIO (EBUSY tolerated),
    then close the fd. LOOP_CLR_FD answers ENXIO once it found this fd the only opener (the
    device is then in rundown, refusing new openers), so this close is the last one, which
    unbinds the device before it returns (loop.c's lo_release): whether it did is read at once."""
    settle()  # udev's own openers gone first, as far as it goes
    first, last = None, None
    end = deadline()
    while True:
        last = call(fd, LOOP_CLR_FD)
        if first is None:
            first = last
        if last not in ("ok", "errno EBUSY"):
            break
        if time.monotonic() >= end:
            expired()
            break
        time.sleep(0.05)
    os.close(fd)
    at_close = "unbound" if not bound() else "still bound"
    # For the next step only: a device still bound is waited for, not judged again.
    gone = at_close == "unbound" or poll(lambda: not bound())
    if DEV in ATTACHED and gone:
        ATTACHED.remove(DEV)
    # (extra) What a new opener is told about the device now.
    try:
        fd = os.open(DEV, os.O_RDONLY)
        after = call(fd, LOOP_GET_STATUS64, bytes(INFO64.size))
        os.close(fd)
    except OSError as e:
        after = "open " + ename(e.errno)
    return "first LOOP_CLR_FD %s, then %s, %s at the last close, LOOP_GET_STATUS64 then %s" % (
        first, last if last != "ok" else "no ENXIO for too long", at_close, after)


def detach():
    """tst_detach_device: open O_RDONLY, detach by that fd."""
    return detach_by_fd(os.open(DEV, os.O_RDONLY))


def part_present(n, wait):
    """Partition N's /dev node and sysfs directory; waits (bounded) for them if WAIT."""
    name = os.path.basename(DEV)
    paths = ["%sp%d" % (DEV, n), os.path.join(SYS, "%sp%d" % (name, n))]
    if wait:
        settle()
        poll(lambda: all(os.path.exists(p) for p in paths))
    return ["present" if os.path.exists(p) else "absent" for p in paths]


def check_parts(what, n, wait):
    node, sysdir = part_present(n, wait)
    emit("%s: partition p%d device node" % (what, n), node)
    emit("%s: partition p%d sysfs directory" % (what, n), sysdir)


def leftover_parts(n):
    """Current LTP's clear_loop_device_partitions check after a detach (upstream: p1; here
    p1..pN). The last close (detach_by_fd's) dropped the partitions before it returned."""
    for i in range(1, n + 1):
        check_parts("after detach", i, False)


# ---------------------------------------------------------------------------------------------

def ioctl_loop01():
    """LO_FLAGS_AUTOCLEAR and LO_FLAGS_PARTSCAN through LOOP_SET_STATUS / LOOP_GET_STATUS."""
    set_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_READ_ONLY | LO_FLAGS_DIRECT_IO
    find_free()
    fill("test.img", 1024 * 1024, 10)
    mbr("test.img", [P1])
    dev_fd = os.open(DEV, os.O_RDWR)
    try:
        emit("attach", attach("test.img"))
        emit("loop/partscan after attach", sysfs("loop/partscan"))
        emit("loop/autoclear after attach", sysfs("loop/autoclear"))
        emit("loop/backing_file", sysfs("loop/backing_file"))
        status_extra(dev_fd, "after attach", "test.img")

        def check(set_flag, autoclear_what):
            emit("LOOP_SET_STATUS lo_flags=%#x" % set_flag,
                 call(dev_fd, LOOP_SET_STATUS, info(flags=set_flag)))
            emit("LOOP_GET_STATUS lo_flags after setting %#x" % set_flag, get_flags(dev_fd))
            emit("loop/partscan after setting %#x" % set_flag, sysfs("loop/partscan"))
            emit("loop/autoclear after setting %#x (%s)" % (set_flag, autoclear_what),
                 sysfs("loop/autoclear"))
            check_parts("after setting %#x" % set_flag, 1, True)
            status_extra(dev_fd, "after setting %#x" % set_flag, "test.img")

        check(set_flags, "LTP expects 1")
        # "Test flag can be clear": AUTOCLEAR can, PARTSCAN cannot.
        check(0, "LTP expects 0")
        emit("detach", detach_by_fd(dev_fd))
        dev_fd = -1
        leftover_parts(1)
    finally:
        if dev_fd >= 0:
            os.close(dev_fd)


def ioctl_loop02():
    """LO_FLAGS_READ_ONLY (LOOP_SET_FD of a read-only file, LOOP_CONFIGURE with the flag) and
    LOOP_CHANGE_FD (same size: allowed on a read-only device; another size: EINVAL)."""
    find_free()
    fill("test.img", 1024, 10)
    fill("test1.img", 1024, 10)
    fill("test2.img", 2048, 20)
    file_change_fd = os.open("test1.img", os.O_RDWR)
    file_fd_invalid = os.open("test2.img", os.O_RDWR)
    dev_fd = os.open(DEV, os.O_RDWR)
    emit("LOOP_CONFIGURE with fd -1 (support probe)", call(dev_fd, LOOP_CONFIGURE, config(-1)))
    try:
        for mode, req, what in ((os.O_RDONLY, LOOP_SET_FD, "LOOP_SET_FD of a read-only file"),
                                (os.O_RDWR, LOOP_CONFIGURE,
                                 "LOOP_CONFIGURE of a read-write file with LO_FLAGS_READ_ONLY")):
            file_fd = os.open("test.img", mode)
            if req == LOOP_SET_FD:
                r = call(dev_fd, LOOP_SET_FD, file_fd)
            else:
                r = call(dev_fd, LOOP_CONFIGURE,
                         config(file_fd, info=info64(flags=LO_FLAGS_READ_ONLY)))
            emit(what, r)
            if r == "ok":
                ATTACHED.append(DEV)
            emit("%s: ro" % what, sysfs("ro"))
            emit("%s: loop/backing_file" % what, sysfs("loop/backing_file"))
            emit("%s: LOOP_GET_STATUS lo_flags" % what, get_flags(dev_fd))
            status_extra(dev_fd, what, "test.img")
            try:
                w = "wrote %d bytes" % os.write(dev_fd, b"xx")
            except OSError as e:
                w = ename(e.errno)
            emit("%s: write of 2 bytes" % what, w)
            r = call(dev_fd, LOOP_CHANGE_FD, file_change_fd)
            emit("%s: LOOP_CHANGE_FD to a file of the same size" % what, r)
            if r == "ok":
                emit("%s: ro after LOOP_CHANGE_FD" % what, sysfs("ro"))
                emit("%s: loop/backing_file after LOOP_CHANGE_FD" % what,
                     sysfs("loop/backing_file"))
                status_extra(dev_fd, "%s: after LOOP_CHANGE_FD" % what, "test1.img")
            emit("%s: LOOP_CHANGE_FD to a file of another size" % what,
                 call(dev_fd, LOOP_CHANGE_FD, file_fd_invalid))
            status_extra(dev_fd, "%s: after the failed LOOP_CHANGE_FD" % what,
                         "test1.img" if r == "ok" else "test.img")
            os.close(file_fd)
            emit("%s: detach" % what, detach_by_fd(dev_fd))
            dev_fd = -1
            dev_fd = os.open(DEV, os.O_RDWR)
    finally:
        if dev_fd >= 0:
            os.close(dev_fd)
        os.close(file_change_fd)
        os.close(file_fd_invalid)


def ioctl_loop03():
    """LOOP_CHANGE_FD on a device that is not read-only: EINVAL."""
    find_free()
    fill("test.img", 1024, 10)
    emit("attach", attach("test.img"))
    dev_fd = os.open(DEV, os.O_RDWR)
    file_fd = os.open("test.img", os.O_RDWR)
    try:
        emit("LOOP_GET_STATUS lo_flags", get_flags(dev_fd))
        emit("LOOP_CHANGE_FD on a read-write device", call(dev_fd, LOOP_CHANGE_FD, file_fd))
        status_extra(dev_fd, "after LOOP_CHANGE_FD", "test.img")
    finally:
        os.close(file_fd)
        os.close(dev_fd)
    emit("detach", detach())


def ioctl_loop04():
    """LOOP_SET_CAPACITY after the backing file shrinks: the device's size follows."""
    old, new = 10240, 5120
    find_free()
    fill("test.img", 1024, old // 1024)
    emit("attach", attach("test.img"))
    emit("size (sectors)", sysfs("size"))
    dev_fd = os.open(DEV, os.O_RDWR)
    file_fd = os.open("test.img", os.O_RDWR)
    try:
        emit("BLKGETSIZE64 (extra)", getsize64(dev_fd))
        emit("LOOP_GET_STATUS lo_flags", get_flags(dev_fd))
        os.truncate("test.img", new)
        emit("LOOP_SET_CAPACITY after truncating to %d bytes" % new,
             call(dev_fd, LOOP_SET_CAPACITY))
        try:
            w = "wrote %d bytes" % os.write(dev_fd, b"x" * old)
        except OSError as e:
            w = ename(e.errno)
        emit("write of %d bytes" % old, w)
        emit("size (sectors) after LOOP_SET_CAPACITY", sysfs("size"))
        emit("BLKGETSIZE64 after LOOP_SET_CAPACITY (extra)", getsize64(dev_fd))
        status_extra(dev_fd, "after LOOP_SET_CAPACITY", "test.img")
    finally:
        os.close(file_fd)
        os.close(dev_fd)
    emit("detach", detach())
    os.unlink("test.img")


def backing_lbs(path):
    """tst_find_backing_dev + BLKSSZGET: the logical block size of the device under PATH."""
    st_dev = os.stat(path).st_dev
    want = "%d:%d" % (os.major(st_dev), os.minor(st_dev))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[2] == want:
                src = fields[fields.index("-") + 2]
                break
        else:
            return None
    try:
        if not stat.S_ISBLK(os.stat(src).st_mode):
            return None
        fd = os.open(src, os.O_RDONLY)
    except OSError:
        return None
    try:
        return struct.unpack("=i", fcntl.ioctl(fd, BLKSSZGET, bytes(4)))[0]
    finally:
        os.close(fd)


def ioctl_loop05():
    """LOOP_SET_DIRECT_IO: on and off; with lo_offset a multiple of the backing device's logical
    block size; with an offset that is not (EINVAL, or success where the check is skipped)."""
    find_free()
    fill("test.img", 1024, 1024)
    emit("attach", attach("test.img"))
    dev_fd = os.open(DEV, os.O_RDWR)
    try:
        emit("LOOP_SET_DIRECT_IO 0 (support probe)", call(dev_fd, LOOP_SET_DIRECT_IO, 0))
        lbs = backing_lbs(os.path.join(WORK, "test.img"))
        emit("backing device logical_block_size", lbs if lbs else "not a block device")
        lbs = lbs or 512
        if lbs > 512:
            emit("LOOP_SET_BLOCK_SIZE %d" % lbs, retry(dev_fd, LOOP_SET_BLOCK_SIZE, lbs))

        def check(what):
            emit("%s: LOOP_GET_STATUS lo_flags" % what, get_flags(dev_fd))
            emit("%s: loop/dio" % what, sysfs("loop/dio"))
            status_extra(dev_fd, what, "test.img")

        emit("LOOP_SET_STATUS zeroed", retry(dev_fd, LOOP_SET_STATUS, info()))
        emit("LOOP_SET_DIRECT_IO 1 without offset", call(dev_fd, LOOP_SET_DIRECT_IO, 1))
        check("dio on without offset")
        emit("LOOP_SET_DIRECT_IO 0 without offset", call(dev_fd, LOOP_SET_DIRECT_IO, 0))
        check("dio off without offset")

        emit("LOOP_SET_STATUS lo_offset=logical_block_size",
             retry(dev_fd, LOOP_SET_STATUS, info(offset=lbs)))
        r = call(dev_fd, LOOP_SET_DIRECT_IO, 1)
        emit("LOOP_SET_DIRECT_IO 1 with lo_offset=logical_block_size", r)
        if r == "ok":
            check("dio on with lo_offset=logical_block_size")
            emit("LOOP_SET_DIRECT_IO 0 with lo_offset=logical_block_size",
                 call(dev_fd, LOOP_SET_DIRECT_IO, 0))

        emit("LOOP_SET_STATUS lo_offset=logical_block_size/2",
             retry(dev_fd, LOOP_SET_STATUS, info(offset=lbs // 2)))
        r = call(dev_fd, LOOP_SET_DIRECT_IO, 1)
        emit("LOOP_SET_DIRECT_IO 1 with lo_offset=logical_block_size/2", r)
        check("after LOOP_SET_DIRECT_IO 1 with lo_offset=logical_block_size/2 (extra)")
        if r == "ok":
            emit("LOOP_SET_DIRECT_IO 0 with lo_offset=logical_block_size/2",
                 call(dev_fd, LOOP_SET_DIRECT_IO, 0))
    finally:
        os.close(dev_fd)
    emit("detach", detach())


def ioctl_loop06():
    """Invalid block sizes: LOOP_SET_BLOCK_SIZE and LOOP_CONFIGURE answer EINVAL."""
    page = os.sysconf("SC_PAGE_SIZE")
    cases = [(256, "< 512"), (2 * 65536, "> BLK_MAX_BLOCK_SIZE (2 * 64 KiB)"),
             (2 * page, "2 * PAGE_SIZE (older LTP)"), (page - 1, "!= power_of_2")]
    find_free()
    fill("test.img", 1024, 1024)
    dev_fd = os.open(DEV, os.O_RDWR)
    file_fd = os.open("test.img", os.O_RDWR)
    try:
        emit("LOOP_SET_BLOCK_SIZE 512 unbound (support probe)",
             call(dev_fd, LOOP_SET_BLOCK_SIZE, 512))
        emit("LOOP_CONFIGURE with fd -1 (support probe)",
             call(dev_fd, LOOP_CONFIGURE, config(-1)))
        emit("attach", attach("test.img"))
        for size, what in cases:
            emit("LOOP_SET_BLOCK_SIZE %d (%s)" % (size, what),
                 call(dev_fd, LOOP_SET_BLOCK_SIZE, size))
        emit("queue/logical_block_size after the invalid sizes (extra)",
             sysfs("queue/logical_block_size"))
        status_extra(dev_fd, "after the invalid sizes", "test.img")
        emit("detach", detach_by_fd(dev_fd))
        dev_fd = -1
        dev_fd = os.open(DEV, os.O_RDWR)
        for size, what in cases:
            r = call(dev_fd, LOOP_CONFIGURE, config(file_fd, block_size=size))
            emit("LOOP_CONFIGURE block_size=%d (%s)" % (size, what), r)
            if r == "ok":
                ATTACHED.append(DEV)
                emit("LOOP_CONFIGURE block_size=%d: queue/logical_block_size" % size,
                     sysfs("queue/logical_block_size"))
                status_extra(dev_fd, "LOOP_CONFIGURE block_size=%d" % size, "test.img")
                emit("LOOP_CONFIGURE block_size=%d: detach" % size, detach_by_fd(dev_fd))
                dev_fd = -1
                dev_fd = os.open(DEV, os.O_RDWR)
        emit("bound after the invalid LOOP_CONFIGUREs (extra)", "yes" if bound() else "no")
    finally:
        if dev_fd >= 0:
            os.close(dev_fd)
        os.close(file_fd)


def ioctl_loop07():
    """lo_sizelimit through LOOP_SET_STATUS64 / LOOP_GET_STATUS64 and LOOP_CONFIGURE."""
    cases = [(1024 * 4096, LOOP_SET_STATUS64, "greater than the file, LOOP_SET_STATUS64"),
             (1024 * 512, LOOP_SET_STATUS64, "less than the file, LOOP_SET_STATUS64"),
             (1024 * 4096, LOOP_CONFIGURE, "greater than the file, LOOP_CONFIGURE"),
             (1024 * 512, LOOP_CONFIGURE, "less than the file, LOOP_CONFIGURE")]
    find_free()
    fill("test.img", 1024 * 1024, 1)
    emit("setup: attach", attach("test.img"))
    emit("setup: detach", detach())
    file_fd = os.open("test.img", os.O_RDWR)
    dev_fd = os.open(DEV, os.O_RDWR)
    attached = False
    try:
        emit("LOOP_CONFIGURE with fd -1 (support probe)",
             call(dev_fd, LOOP_CONFIGURE, config(-1)))
        for limit, req, what in cases:
            what = "sizelimit %d %s" % (limit, what)
            if req == LOOP_SET_STATUS64:
                if not attached:
                    emit("%s: attach" % what, attach("test.img"))
                    attached = True
                emit(what, retry(dev_fd, LOOP_SET_STATUS64, info64(sizelimit=limit)))
            else:
                if attached:
                    emit("%s: detach first" % what, detach_by_fd(dev_fd))
                    dev_fd = -1
                    dev_fd = os.open(DEV, os.O_RDWR)
                    attached = False
                r = call(dev_fd, LOOP_CONFIGURE, config(file_fd, info=info64(sizelimit=limit)))
                emit(what, r)
                if r == "ok":
                    ATTACHED.append(DEV)
            emit("%s: size (sectors)" % what, sysfs("size"))
            emit("%s: loop/sizelimit" % what, sysfs("loop/sizelimit"))
            emit("%s: LOOP_GET_STATUS64 lo_sizelimit" % what, get_sizelimit64(dev_fd))
            emit("%s: BLKGETSIZE64 (extra)" % what, getsize64(dev_fd))
            status_extra(dev_fd, what, "test.img")
            if req == LOOP_CONFIGURE:
                emit("%s: detach" % what, detach_by_fd(dev_fd))
                dev_fd = -1
                dev_fd = os.open(DEV, os.O_RDWR)
            else:
                emit("%s: reset with LOOP_SET_STATUS" % what,
                     retry(dev_fd, LOOP_SET_STATUS, info()))
                emit("%s: loop/sizelimit after the reset (extra)" % what,
                     sysfs("loop/sizelimit"))
                status_extra(dev_fd, "%s: after the reset" % what, "test.img")
    finally:
        if dev_fd >= 0:
            os.close(dev_fd)
        os.close(file_fd)


def ioctl09():
    """BLKRRPART: a partition added to the label of a partition-scanning device appears."""
    find_free()
    fill("test.img", 1024 * 1024, 20)
    mbr("test.img", [P1])
    emit("attach", attach("test.img"))
    dev_fd = os.open(DEV, os.O_RDWR)
    try:
        emit("LOOP_SET_STATUS lo_flags=LO_FLAGS_PARTSCAN",
             call(dev_fd, LOOP_SET_STATUS, info(flags=LO_FLAGS_PARTSCAN)))
        check_parts("one partition in the label", 1, False)  # upstream: access() at once
        check_parts("one partition in the label", 2, False)
        status_extra(dev_fd, "after LO_FLAGS_PARTSCAN", "test.img")
        mbr("test.img", [P1, P2])
        settle()
        emit("BLKRRPART after adding a partition", retry(dev_fd, BLKRRPART))
        check_parts("after BLKRRPART", 1, False)
        check_parts("after BLKRRPART", 2, False)
        status_extra(dev_fd, "after BLKRRPART", "test.img")
    finally:
        os.close(dev_fd)
    emit("detach", detach())
    leftover_parts(2)


TESTS = [ioctl_loop01, ioctl_loop02, ioctl_loop03, ioctl_loop04, ioctl_loop05, ioctl_loop06,
         ioctl_loop07, ioctl09]


def cleanup():
    """LTP's cleanup: detach what the test left bound (also its device bound by a call that
    failed), and say whether that worked; the next test must not find it bound."""
    global ATTACHED
    for d in dict.fromkeys(ATTACHED + ([DEV] if DEV and bound() else [])):
        try:
            fd = os.open(d, os.O_RDONLY)
        except OSError as e:
            log("cleanup of %s: open %s" % (d, ename(e.errno)))
            continue
        try:
            r = call(fd, LOOP_CLR_FD)
        finally:
            os.close(fd)
        sysd = "/sys/block/%s/loop" % os.path.basename(d)
        log("cleanup of %s: LOOP_CLR_FD %s, %s" % (
            d, r, "unbound" if poll(lambda: not os.path.exists(sysd)) else "STILL BOUND"))
    ATTACHED = []


def main():
    global WORK, TEST
    WORK = os.path.realpath(sys.argv[1])
    names = sys.argv[2:] or [t.__name__ for t in TESTS]
    status = 0
    for t in TESTS:
        if t.__name__ not in names:
            continue
        TEST = t.__name__
        d = os.path.join(WORK, TEST)
        os.makedirs(d, exist_ok=True)
        os.chdir(d)
        top, WORK = WORK, d
        settle()
        start = time.monotonic()
        try:
            t()
        except Exception as e:  # a broken step ends this test, shown in the output
            status = 1
            what = ename(e.errno) if isinstance(e, OSError) and e.errno else type(e).__name__
            emit("aborted", what)
            log("aborted: %r" % e)
        finally:
            cleanup()
            os.chdir("/")
            WORK = top
        log("%.1f s" % (time.monotonic() - start))
    return status


if __name__ == "__main__":
    sys.exit(main())
