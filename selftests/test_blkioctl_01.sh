#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The block layer's ioctls on a loop device, in every state: unbound, bound to a file
# read-write, read-only, with direct I/O and 4096-byte blocks and partition scanning, and bound
# to another loop device. Each is asked of an fd opened read-write (read-only where the device
# is): the size and geometry queries (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET, BLKBSZGET, BLKIOMIN,
# BLKIOOPT, BLKALIGNOFF, BLKROTATIONAL, BLKDISCARDZEROES, BLKSECTGET, BLKRAGET, BLKROGET,
# BLKGETZONESZ, BLKGETNRZONES, HDIO_GETGEO), BLKFLSBUF, BLKRRPART, BLKDISCARD, BLKZEROOUT,
# BLKSECDISCARD, BLKROSET (then a write and back), and commands no one handles (in the loop
# range and outside it). Each outcome (the value or the errno) must be loop.ko's.
. "$(dirname "$0")/lib.sh"
lt_need python3

img=$LT_WORK/img
lt_sparse "$img" 64M
rec=$LT_WORK/record
cat >"$LT_WORK/ask.py" <<'PY'
import errno, fcntl, os, struct, sys

dev, label = sys.argv[1], sys.argv[2]
print("==", label)


def name(e):
    return errno.errorcode.get(e, str(e))


def ask(what, cmd, fmt=None, arg=None, fd=None):
    """Issues the ioctl; prints its name and the value it returned (fmt) or OK, or the errno."""
    try:
        if fmt is None:
            r = fcntl.ioctl(fd, cmd, arg if arg is not None else 0)
            print(f"{what}: OK {r if isinstance(r, int) else ''}".rstrip())
        else:
            buf = bytearray(arg if arg is not None else struct.calcsize(fmt))
            fcntl.ioctl(fd, cmd, buf, True)
            print(f"{what}: OK {struct.unpack_from(fmt, buf)}")
    except OSError as e:
        print(f"{what}: {name(e.errno)}")


try:
    fd = os.open(dev, os.O_RDWR)
    print("open: O_RDWR")
except OSError as e:
    fd = os.open(dev, os.O_RDONLY)
    print(f"open: O_RDWR {name(e.errno)}, O_RDONLY")
ask("BLKGETSIZE64", 0x80081272, "=Q", fd=fd)
ask("BLKGETSIZE", 0x1260, "=Q", fd=fd)
ask("BLKSSZGET", 0x1268, "=i", fd=fd)
ask("BLKPBSZGET", 0x127B, "=I", fd=fd)
ask("BLKBSZGET", 0x80081270, "=i", fd=fd)
ask("BLKIOMIN", 0x1278, "=I", fd=fd)
ask("BLKIOOPT", 0x1279, "=I", fd=fd)
ask("BLKALIGNOFF", 0x127A, "=i", fd=fd)
ask("BLKROTATIONAL", 0x127E, "=H", fd=fd)
ask("BLKDISCARDZEROES", 0x127C, "=I", fd=fd)
ask("BLKSECTGET", 0x1267, "=H", fd=fd)
ask("BLKRAGET", 0x1263, "=q", fd=fd)
ask("BLKROGET", 0x125E, "=i", fd=fd)
ask("BLKGETZONESZ", 0x80041284, "=I", fd=fd)
ask("BLKGETNRZONES", 0x80041285, "=I", fd=fd)
ask("HDIO_GETGEO", 0x0301, "@BBHL", fd=fd)
ask("BLKFLSBUF", 0x1261, fd=fd)
ask("BLKRRPART", 0x125F, fd=fd)
rng = struct.pack("=QQ", 0, 1 << 20)
ask("BLKDISCARD", 0x1277, "=QQ", arg=rng, fd=fd)
ask("BLKZEROOUT", 0x127F, "=QQ", arg=rng, fd=fd)
ask("BLKSECDISCARD", 0x127D, "=QQ", arg=rng, fd=fd)
ask("BLKDISCARD unaligned", 0x1277, "=QQ", arg=struct.pack("=QQ", 512, 4096), fd=fd)
ask("BLKZEROOUT past the end", 0x127F, "=QQ", arg=struct.pack("=QQ", 1 << 40, 4096), fd=fd)
ask("loop-range command 0x4C7F", 0x4C7F, fd=fd)
ask("unknown command 0x1234", 0x1234, fd=fd)
ask("BLKROSET 1", 0x125D, "=i", arg=struct.pack("=i", 1), fd=fd)
ask("BLKROGET after BLKROSET 1", 0x125E, "=i", fd=fd)
try:
    os.pwrite(fd, bytes(4096), 0)
    print("write after BLKROSET 1: OK")
except OSError as e:
    print(f"write after BLKROSET 1: {name(e.errno)}")
ask("BLKROSET 0", 0x125D, "=i", arg=struct.pack("=i", 0), fd=fd)
ask("BLKROGET after BLKROSET 0", 0x125E, "=i", fd=fd)
os.close(fd)
PY
# ask DEV LABEL: records the outcomes for DEV once udev is done with it, then lets udev handle
# the uevents the questions caused.
ask() {
	udevadm settle
	python3 "$LT_WORK/ask.py" "$@" >>"$rec" 2>&1 || lt_fail "asking $1 ($2)"
	udevadm settle
}

# Devices of its own: unbinding keeps some of a binding's settings (read-only, rotational, the
# discard limits), so a reused device's unbound state would depend on the tests before.
dev=/dev/loop32
lower=/dev/loop33
lt_ctl_add 33
lt_ctl_add 32
ask "$dev" unbound
losetup "$dev" "$img" || lt_fail "binding read-write"
ask "$dev" "bound read-write"
lt_detach "$dev"
losetup -r "$dev" "$img" || lt_fail "binding read-only"
ask "$dev" "bound read-only"
lt_detach "$dev"
losetup --direct-io=on -b 4096 -P "$dev" "$img" || lt_fail "binding with direct I/O"
ask "$dev" "bound with direct I/O, 4096-byte blocks, partition scan"
lt_detach "$dev"
losetup "$lower" "$img" || lt_fail "binding $lower"
losetup "$dev" "$lower" || lt_fail "binding $dev to $lower"
ask "$dev" "bound to a loop device"
lt_detach "$dev"
lt_detach "$lower"
lt_log "$(grep -c '^==' "$rec") states, $(grep -vc '^==' "$rec") outcomes"
lt_same_as_c blkioctl "$rec" "the ioctl outcomes"
exit 0
