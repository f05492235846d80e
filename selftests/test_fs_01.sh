#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# mkfs.ext4 on a loop device, mount, copy a file in, unmount, fsck clean, remount and compare.
. "$(dirname "$0")/lib.sh"
lt_need mkfs.ext4 fsck.ext4

img=$LT_WORK/img
lt_sparse "$img" 96M
dev=$(lt_attach "$img")
mkfs.ext4 -q -F "$dev"
mnt=$LT_WORK/mnt
mkdir -p "$mnt"
mount "$dev" "$mnt"
lt_file "$LT_WORK/src" 12M
cp "$LT_WORK/src" "$mnt/copy"
mkdir "$mnt/dir" && echo hello >"$mnt/dir/small"
umount "$mnt"
fsck.ext4 -fn "$dev" >"$LT_WORK/fsck.log" 2>&1 || { cat "$LT_WORK/fsck.log"; lt_fail "fsck not clean"; }
mount -o ro "$dev" "$mnt"
lt_eq "$(lt_sum "$mnt/copy")" "$(lt_sum "$LT_WORK/src")" "copied file"
lt_eq "$(cat "$mnt/dir/small")" hello "small file"
umount "$mnt"
losetup -d "$dev"
exit 0
