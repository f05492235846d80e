#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A backing file system that fills up: writes through the loop device fail with ENOSPC (direct
# writes) or an error at fsync (buffered ones), never a silent success; after space is freed,
# writes work again and read back intact; the device detaches and binds again. With direct I/O
# on and off.
. "$(dirname "$0")/lib.sh"
lt_need mkfs.ext4

sd=$(lt_scsi_debug dev_size_mb=48)
mkfs.ext4 -q -F -b 4096 "$sd"
fs=$LT_WORK/fs
mkdir -p "$fs"
mount "$sd" "$fs"
for dio in on off; do
	dd if=/dev/zero of="$fs/filler" bs=1M count=8 conv=fsync status=none
	lt_sparse "$fs/img" 96M
	dev=$(lt_attach "$fs/img" --direct-io="$dio")
	out=$(dd if=/dev/urandom of="$dev" bs=1M count=64 oflag=direct conv=notrunc 2>&1) &&
		lt_fail "64 MiB of direct writes into a 48 MiB file system succeeded (dio=$dio)"
	lt_log "dio=$dio, direct writes: $(tail -n 1 <<<"$out")"
	grep -q "No space left on device" <<<"$out" || lt_fail "direct writes did not see ENOSPC: $out"
	if dd if=/dev/urandom of="$dev" bs=1M seek=64 count=16 conv=notrunc,fsync status=none 2>/dev/null; then
		lt_fail "buffered writes + fsync into a full file system succeeded (dio=$dio)"
	fi
	rm "$fs/filler"
	sync
	lt_file "$LT_WORK/data" 4M
	dd if="$LT_WORK/data" of="$dev" bs=1M seek=80 oflag=direct conv=notrunc status=none ||
		lt_fail "writes after freeing space failed (dio=$dio)"
	got=$(dd if="$dev" bs=1M skip=80 count=4 iflag=direct status=none | sha256sum | cut -d' ' -f1)
	lt_eq "$got" "$(lt_sum "$LT_WORK/data")" "data written after freeing space (dio=$dio)"
	losetup -d "$dev" || lt_fail "detach after ENOSPC"
	udevadm settle
	rm "$fs/img"
done
dev=$(lt_attach "$LT_WORK/data")
losetup -d "$dev"
umount "$fs"
exit 0
