#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Growing the backing file and LOOP_SET_CAPACITY (losetup -c) shows the new size; a mounted
# ext4 keeps working; without write access or CAP_SYS_ADMIN the ioctl is refused (EPERM).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 32M
dev=$(lt_attach "$img")
lt_ext4 "$dev" "$LT_WORK/mnt"
truncate -s 64M "$img"
lt_eq "$(lt_sysfs "$dev" size)" 65536 "size before LOOP_SET_CAPACITY"
losetup -c "$dev"
lt_eq "$(lt_sysfs "$dev" size)" 131072 "size after losetup -c"
resize2fs "$dev" >/dev/null 2>&1 || lt_fail "resize2fs on the grown device"
lt_file "$LT_WORK/src" 4M
cp "$LT_WORK/src" "$LT_WORK/mnt/f"
sync
lt_eq "$(lt_sum "$LT_WORK/mnt/f")" "$(lt_sum "$LT_WORK/src")" "file after resize"
umount "$LT_WORK/mnt"
# Without a writable open and without CAP_SYS_ADMIN, changing the device is refused.
out=$(setpriv --bounding-set=-sys_admin python3 "$LT_DIR/loopctl.py" set-capacity "$dev" --dev-ro)
lt_eq "$out" "ERR EPERM" "LOOP_SET_CAPACITY read-only without CAP_SYS_ADMIN"
out=$(setpriv --bounding-set=-sys_admin python3 "$LT_DIR/loopctl.py" set-capacity "$dev")
lt_eq "$out" "OK 0" "LOOP_SET_CAPACITY writable without CAP_SYS_ADMIN"
losetup -d "$dev"
exit 0
