#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# losetup -f --show binds a free device on major 7; the sysfs loop/ group exists exactly while
# bound and shows the binding; losetup -d unbinds it.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 16M
dev=$(lt_attach "$img")
[ -b "$dev" ] || lt_fail "$dev is not a block device"
lt_eq "$(stat -c %t "$dev")" 7 "major of $dev (hex)"
lt_bound "$dev" || lt_fail "loop/ missing while bound"
lt_eq "$(lt_sysfs "$dev" loop/backing_file)" "$img" "loop/backing_file"
for a in offset sizelimit autoclear partscan dio; do
	lt_eq "$(lt_sysfs "$dev" "loop/$a")" 0 "loop/$a"
done
lt_eq "$(lt_sysfs "$dev" size)" 32768 "size (sectors)"
lt_eq "$(lt_sysfs "$dev" ro)" 0 "ro"
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 512 "logical_block_size"
lt_eq "$(losetup -l -n -O NAME,BACK-FILE "$dev" | tr -s ' ')" "$dev $img" "losetup -l"

losetup -d "$dev"
udevadm settle
lt_bound "$dev" && lt_fail "loop/ still present after losetup -d"
lt_eq "$(lt_sysfs "$dev" size)" 0 "size after detach"
lt_eq "$(losetup -a)" "" "losetup -a after detach"
exit 0
