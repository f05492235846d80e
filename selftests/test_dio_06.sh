#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Direct I/O (the async kiocb path) carries data at every logical block size: 512, 1024, 2048
# and 4096 bytes over a file on ext4 (512-byte DIO alignment), each with fio crc32c verify
# through libaio and io_uring (the submitters the block layer sees most), and 4096 over a file
# on a 4096-byte-sector backing disk (scsi_debug). loop/dio must read 1 in every case, the image
# must have no page in the page cache after the I/O (the device really ran direct), and what the
# device wrote is what the file holds (checksums).
. "$(dirname "$0")/lib.sh"
lt_need fio mkfs.ext4

# run_bs IMG BS: bind IMG with direct I/O at block size BS, verify through both engines, then
# compare the device's contents with the file's.
run_bs() {
	local img=$1 bs=$2 dev engine
	# No page cache of the image to start with: direct I/O must not make any.
	sync
	echo 1 >/proc/sys/vm/drop_caches
	dev=$(lt_attach "$img" --direct-io=on -b "$bs")
	lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio at block size $bs"
	lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" "$bs" "logical block size"
	for engine in libaio io_uring; do
		lt_fio_verify "$dev" "$bs" "$engine" 2 16 2M
	done
	lt_eq "$(lt_resident "$img")" 0 "image pages in the page cache after direct I/O"
	lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img" "$(blockdev --getsize64 "$dev")")" \
		"device and file contents at block size $bs"
	losetup -d "$dev"
	udevadm settle
}

img=$LT_WORK/img
lt_file "$img" 16M
for bs in 512 1024 2048 4096; do
	run_bs "$img" "$bs"
	lt_log "block size $bs: verified with libaio and io_uring, direct"
done

sd=$(lt_scsi_debug sector_size=4096 dev_size_mb=64)
lt_eq "$(lt_sysfs "$sd" queue/logical_block_size)" 4096 "scsi_debug sector size"
lt_ext4 "$sd" "$LT_WORK/sd"
lt_file "$LT_WORK/sd/img" 16M
run_bs "$LT_WORK/sd/img" 4096
lt_log "4096-byte-sector backing disk: verified, direct"
exit 0
