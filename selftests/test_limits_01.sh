#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Queue shape and limits as loop.c: hw_queue_depth (128) tags per hardware queue, no I/O
# scheduler, max_hw_sectors 2560, logical = physical = minimum I/O size = block size, a write
# cache when the file is writable (so flushes reach vfs_fsync), rotational as the backing disk
# (the guest's disk, then a scsi_debug disk switched to rotational and back, both as the disk
# under the image's file system and as the backing device itself).
# Hardware queues: loop.c has one; rust_loop one per online CPU (at most 16) unless its
# nr_hw_queues parameter says otherwise (deliberate difference: the engine).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 16M
dev=$(lt_attach "$img")
q=/sys/block/${dev#/dev/}/queue
queues=1
if [ "$LT_DRIVER" = rust ]; then
	queues=$(cat /sys/module/loop/parameters/nr_hw_queues)
	[ "$queues" = 0 ] && queues=$(($(nproc) < 16 ? $(nproc) : 16))
fi
lt_eq "$(find "/sys/block/${dev#/dev/}/mq" -mindepth 1 -maxdepth 1 | wc -l)" "$queues" "hardware queues"
lt_eq "$(cat "$q/nr_requests")" 128 "nr_requests"
lt_eq "$(cut -d' ' -f1 "$q/scheduler")" "[none]" "scheduler"
lt_eq "$(cat "$q/max_hw_sectors_kb")" 1280 "max_hw_sectors_kb"
lt_eq "$(cat "$q/minimum_io_size")" 512 "minimum_io_size"
lt_eq "$(cat "$q/write_cache")" "write back" "write_cache"
disk=$(lsblk -no PKNAME "$(df --output=source "$LT_WORK" | tail -n 1)" 2>/dev/null | head -n 1)
[ -n "$disk" ] || disk=$(basename "$(df --output=source "$LT_WORK" | tail -n 1)")
lt_eq "$(cat "$q/rotational")" "$(cat "/sys/block/$disk/queue/rotational")" "rotational as $disk"
lt_expect "OK 0" set-bs "$dev" 4096
lt_eq "$(cat "$q/minimum_io_size")" 4096 "minimum_io_size after LOOP_SET_BLOCK_SIZE"
lt_eq "$(cat "$q/physical_block_size")" 4096 "physical_block_size after LOOP_SET_BLOCK_SIZE"
losetup -d "$dev"
udevadm settle
dev=$(lt_attach "$img" -r)
lt_eq "$(cat "/sys/block/${dev#/dev/}/queue/write_cache")" "write through" "write_cache read-only"
losetup -d "$dev"
udevadm settle
lt_eq "$(cat "$q/logical_block_size")" 512 "block size reset at detach"

sd=$(lt_scsi_debug dev_size_mb=64)
lt_ext4 "$sd" "$LT_WORK/sd"
lt_sparse "$LT_WORK/sd/img" 16M
for rot in 1 0; do
	echo "$rot" >"/sys/block/${sd#/dev/}/queue/rotational"
	for backing in "$LT_WORK/sd/img" "$sd"; do
		dev=$(lt_attach "$backing")
		lt_eq "$(lt_sysfs "$dev" queue/rotational)" "$rot" "rotational over $backing (rotational $rot)"
		losetup -d "$dev"
		udevadm settle
	done
done
exit 0
