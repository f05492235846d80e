#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# losetup -o/--sizelimit exposes exactly that window of the file (reads and writes, checked by
# checksum), takes flushes (ext4 in the window mounted, synced and clean); LOOP_SET_STATUS64
# moves the window of a bound device; offsets and limits beyond LLONG_MAX are EOVERFLOW.
. "$(dirname "$0")/lib.sh"
lt_need mkfs.ext4 e2fsck

img=$LT_WORK/img
lt_file "$img" 16M
dev=$(lt_attach "$img" -o $((3 << 20)) --sizelimit $((5 << 20)))
lt_eq "$(lt_sysfs "$dev" loop/offset)" $((3 << 20)) "loop/offset"
lt_eq "$(lt_sysfs "$dev" loop/sizelimit)" $((5 << 20)) "loop/sizelimit"
lt_eq "$(lt_sysfs "$dev" size)" $((5 << 11)) "size"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img" $((5 << 20)) $((3 << 20)))" "window content"
lt_file "$LT_WORK/w" 1M
dd if="$LT_WORK/w" of="$dev" bs=1M seek=2 oflag=direct conv=notrunc status=none
lt_eq "$(lt_sum "$img" $((1 << 20)) $((5 << 20)))" "$(lt_sum "$LT_WORK/w")" "write lands at offset + 2 MiB"
# Flushes through it: blk-mq's flush request has no position (its sector is -1); rust_loop once
# added the offset to it, overflowed and failed every flush with EIO when the offset was 512
# bytes or more, so ext4 in such a window could not even be mounted (found by util-linux's
# loop-overlay, mount_02).
dd if="$LT_WORK/w" of="$dev" bs=4k count=1 conv=fsync,notrunc status=none ||
	lt_fail "a write and fsync through a device with an offset failed"
mkfs.ext4 -q -F "$dev"
mkdir -p "$LT_WORK/mnt"
mount "$dev" "$LT_WORK/mnt" || lt_fail "ext4 in the window (offset 3 MiB) could not be mounted"
echo data >"$LT_WORK/mnt/f"
sync -f "$LT_WORK/mnt/f" || lt_fail "syncfs of ext4 in the window failed"
umount "$LT_WORK/mnt"
e2fsck -fn "$dev" >/dev/null 2>&1 || lt_fail "e2fsck of ext4 in the window"

lt_expect "OK 0" set-status64 "$dev" --offset $((8 << 20)) --sizelimit $((2 << 20))
lt_eq "$(lt_sysfs "$dev" size)" 4096 "size after SET_STATUS64"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img" $((2 << 20)) $((8 << 20)))" "moved window content"
lt_expect "ERR EOVERFLOW" set-status64 "$dev" --offset 0x8000000000000000
lt_expect "ERR EOVERFLOW" set-status64 "$dev" --sizelimit 0x8000000000000000
lt_eq "$(lt_sysfs "$dev" loop/offset)" $((8 << 20)) "offset after EOVERFLOW"
# An offset past the end gives an empty device.
lt_expect "OK 0" set-status64 "$dev" --offset $((32 << 20))
lt_eq "$(lt_sysfs "$dev" size)" 0 "size with the offset past the end"
losetup -d "$dev"
exit 0
