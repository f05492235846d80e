#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Bytes written through /dev/loopN land in the backing file and bytes in the backing file read
# back through /dev/loopN, buffered and O_DIRECT, compared by SHA-256.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 32M
dev=$(lt_attach "$img")
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img")" "device content equals the file's"

# Write 8 MiB at 4 MiB with O_DIRECT on the loop device, and 3 MiB + 512 at 20 MiB buffered.
lt_file "$LT_WORK/a" 8M
dd if="$LT_WORK/a" of="$dev" bs=1M seek=4 oflag=direct conv=notrunc status=none
head -c $((3 * 1048576 + 512)) /dev/urandom >"$LT_WORK/b"
dd if="$LT_WORK/b" of="$dev" bs=512 seek=$((20 * 2048)) conv=notrunc,fsync status=none
lt_eq "$(lt_sum "$img" $((8 << 20)) $((4 << 20)))" "$(lt_sum "$LT_WORK/a")" "file window A"
lt_eq "$(lt_sum "$img" $((3 * 1048576 + 512)) $((20 << 20)))" "$(lt_sum "$LT_WORK/b")" \
	"file window B"

# And the reverse: change the file behind the device's back, then read through the device
# with O_DIRECT (the loop device's own page cache is bypassed).
dd if=/dev/urandom of="$img" bs=1M seek=24 count=2 conv=notrunc,fsync status=none
got=$(dd if="$dev" bs=1M skip=24 count=2 iflag=direct status=none | sha256sum | cut -d" " -f1)
lt_eq "$got" "$(lt_sum "$img" $((2 << 20)) $((24 << 20)))" "device window after file change"

losetup -d "$dev"
udevadm settle
lt_eq "$(lt_sum "$img" $((8 << 20)) $((4 << 20)))" "$(lt_sum "$LT_WORK/a")" "file window A after detach"
exit 0
