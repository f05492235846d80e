#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_CLR_FD is deferred: losetup -d on a mounted device succeeds, the device stays bound with
# autoclear set, and unbinds at unmount.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 32M
dev=$(lt_attach "$img")
lt_ext4 "$dev" "$LT_WORK/mnt"
echo data >"$LT_WORK/mnt/f"
losetup -d "$dev" || lt_fail "losetup -d on a mounted device failed"
lt_bound "$dev" || lt_fail "unbound while mounted"
lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 1 "autoclear after LOOP_CLR_FD"
lt_eq "$(cat "$LT_WORK/mnt/f")" data "file system still usable"
umount "$LT_WORK/mnt"
udevadm settle
lt_bound "$dev" && lt_fail "still bound after unmount"
exit 0
