#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Partitions: losetup -P on a GPT image made with sfdisk shows loopNp1/p2 with the right data,
# which vanish on detach; without -P there is no scan, but partx can add partitions and detach
# still removes them; LOOP_SET_STATUS64 can turn scanning on later, not off; a scan that fails
# (a partition open) is logged with the file name as loop.c logs it, non-UTF-8 bytes included.
. "$(dirname "$0")/lib.sh"
lt_need sfdisk partx

img=$LT_WORK/img
lt_sparse "$img" 64M
sfdisk -q "$img" <<'GPT'
label: gpt
start=2048, size=32768, name=one
start=34816, size=24576, name=two
GPT
# Known data in partition 1.
lt_file "$LT_WORK/p1" 4M
dd if="$LT_WORK/p1" of="$img" bs=512 seek=2048 conv=notrunc status=none

dev=$(lt_attach "$img" -P)
udevadm settle
n=${dev#/dev/}
{ [ -b "${dev}p1" ] && [ -b "${dev}p2" ]; } || lt_fail "partitions of $dev missing after losetup -P"
lt_eq "$(lt_sysfs "$dev" loop/partscan)" 1 "loop/partscan"
lt_eq "$(cat "/sys/block/$n/${n}p1/size")" 32768 "size of p1"
lt_eq "$(cat "/sys/block/$n/${n}p2/size")" 24576 "size of p2"
lt_eq "$(lt_sum "${dev}p1" $((4 << 20)))" "$(lt_sum "$LT_WORK/p1")" "data of p1"
losetup -d "$dev"
udevadm settle
[ -e "/sys/block/$n/${n}p1" ] && lt_fail "p1 still there after detach"

# No scan without -P; partitions added by hand are removed at detach too.
dev=$(lt_attach "$img")
n=${dev#/dev/}
udevadm settle
[ -e "/sys/block/$n/${n}p1" ] && lt_fail "partitions scanned without -P"
lt_eq "$(lt_sysfs "$dev" loop/partscan)" 0 "loop/partscan without -P"
partx -a "$dev"
udevadm settle
[ -e "/sys/block/$n/${n}p1" ] || lt_fail "partx -a did not add p1"
losetup -d "$dev"
udevadm settle
[ -e "/sys/block/$n/${n}p1" ] && lt_fail "partx-added p1 still there after detach"

# LOOP_SET_STATUS64 with LO_FLAGS_PARTSCAN scans now; PARTSCAN cannot be cleared.
dev=$(lt_attach "$img")
n=${dev#/dev/}
lt_expect "OK 0" set-status64 "$dev" --flags 8
udevadm settle
[ -e "/sys/block/$n/${n}p2" ] || lt_fail "no partitions after SET_STATUS64(PARTSCAN)"
lt_expect "OK 0" set-status64 "$dev" --flags 0
lt_eq "$(lt_sysfs "$dev" loop/partscan)" 1 "loop/partscan after trying to clear it"
losetup -d "$dev"

# A scan that fails (a partition is open: EBUSY) still sets the flag, and is logged with the
# file name as loop.c prints it (its bytes, with %s): a name that is not UTF-8, here a Latin-1
# byte, shows in dmesg as \xe9 for both drivers.
dev=$(lt_attach "$img")
n=${dev#/dev/}
partx -a "$dev"
udevadm settle
exec 3<"${dev}p1"
line="partition scan of $n (/tmp/caf\xe9.img) failed (rc=-16)"
# `dmesg | grep -c` (not -q) under pipefail: grep's early exit can kill dmesg with SIGPIPE.
before=$(dmesg | grep -cF "$line") || true
lt_expect "OK 0" set-status64 "$dev" --flags 8 --name $'/tmp/caf\xe9.img'
after=$(dmesg | grep -cF "$line") || true
exec 3<&-
lt_eq "$after" $((before + 1)) "dmesg lines '$line'"
lt_eq "$(lt_sysfs "$dev" loop/partscan)" 1 "loop/partscan after a failed scan"
losetup -d "$dev"
exit 0
