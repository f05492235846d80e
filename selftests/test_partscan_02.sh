#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# max_part: every device gets 1 << fls(max_part) minors and is scanned at bind without -P.
. "$(dirname "$0")/lib.sh"
lt_need sfdisk

img=$LT_WORK/img
lt_sparse "$img" 32M
printf 'label: dos\nstart=2048, size=8192\nstart=10240, size=8192\n' | sfdisk -q "$img"
trap 'lt_cleanup; lt_unload; lt_load' EXIT
lt_unload
lt_load max_part=15
lt_eq "$(stat -c '%t:%T' /dev/loop1)" "7:10" "major:minor (hex) of loop1 with max_part=15"
dev=$(lt_attach "$img")
udevadm settle
n=${dev#/dev/}
{ [ -b "${dev}p1" ] && [ -b "${dev}p2" ]; } || lt_fail "no partitions with max_part"
lt_eq "$(lt_sysfs "$dev" loop/partscan)" 1 "loop/partscan with max_part"
losetup -d "$dev"
udevadm settle
[ -e "/sys/block/$n/${n}p1" ] && lt_fail "p1 still there after detach"
exit 0
