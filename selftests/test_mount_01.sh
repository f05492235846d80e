#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mount -o loop finds a device, binds with autoclear and mounts; lsblk shows it; umount frees it.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 32M
mkfs.ext4 -q -F "$img"
mkdir -p "$LT_WORK/mnt"
mount -o loop "$img" "$LT_WORK/mnt"
src=$(findmnt -n -o SOURCE "$LT_WORK/mnt")
case "$src" in /dev/loop[0-9]*) ;; *) lt_fail "mounted from '$src'" ;; esac
lt_eq "$(lt_sysfs "$src" loop/autoclear)" 1 "autoclear of mount -o loop"
lt_eq "$(lsblk -dn -o NAME,TYPE,SIZE "$src" | tr -s ' ')" "${src#/dev/} loop 32M" "lsblk"
echo x >"$LT_WORK/mnt/x"
umount "$LT_WORK/mnt"
udevadm settle
lt_bound "$src" && lt_fail "$src still bound after umount"
# lsblk hides unbound loop devices.
lt_eq "$(lsblk -dn -o NAME | grep -c '^loop')" 0 "unbound loop devices listed by lsblk"
exit 0
