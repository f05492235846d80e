#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Discard punches holes in the backing file (fstrim on ext4 over loop frees its blocks;
# blkdiscard frees and reads back zeros) and write-zeroes (blkdiscard -z) zeroes a range; the
# discard limits follow loop.c (granularity = the file system's block size).
. "$(dirname "$0")/lib.sh"
lt_need fstrim blkdiscard

img=$LT_WORK/img
lt_sparse "$img" 128M
dev=$(lt_attach "$img")
lt_eq "$(lt_sysfs "$dev" queue/discard_granularity)" 4096 "discard_granularity"
lt_eq "$(lt_sysfs "$dev" queue/discard_max_hw_bytes)" $(((0xffffffff >> 9) * 512)) "discard_max_hw_bytes"
mkfs.ext4 -q -F -E nodiscard "$dev"
mkdir -p "$LT_WORK/mnt"
mount "$dev" "$LT_WORK/mnt"
dd if=/dev/urandom of="$LT_WORK/mnt/big" bs=1M count=48 conv=fsync status=none
used_full=$(du -k "$img" | cut -f1)
rm "$LT_WORK/mnt/big"
sync
fstrim "$LT_WORK/mnt"
umount "$LT_WORK/mnt"
used_trimmed=$(du -k "$img" | cut -f1)
lt_log "backing file: ${used_full} KiB allocated with the file, ${used_trimmed} KiB after fstrim"
[ "$used_trimmed" -lt $((used_full - 40 * 1024)) ] || lt_fail "fstrim did not free the backing file's blocks"

dd if=/dev/urandom of="$dev" bs=1M seek=8 count=4 oflag=direct conv=notrunc status=none
blkdiscard -o $((8 << 20)) -l $((2 << 20)) "$dev"
blkdiscard -z -o $((10 << 20)) -l $((2 << 20)) "$dev"
zero=$(head -c $((4 << 20)) /dev/zero | sha256sum | cut -d' ' -f1)
got=$(dd if="$dev" bs=1M skip=8 count=4 iflag=direct status=none | sha256sum | cut -d' ' -f1)
lt_eq "$got" "$zero" "discarded and zeroed range reads as zeros"
lt_eq "$(lt_sum "$img" $((4 << 20)) $((8 << 20)))" "$zero" "backing file range is zeros"
losetup -d "$dev"
exit 0
