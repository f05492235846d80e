#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A backing block device that fails I/O (device-mapper "error" table swapped in under the loop
# device): reads fail with EIO, and writes fail with EIO at once (direct I/O) or at the flush
# (buffered); once the device works again, so does the loop device; it detaches and binds
# again. A medium error of the backing disk (scsi_debug's) keeps its meaning through the loop
# device with direct I/O: an O_DIRECT reader gets what it gets from the disk itself, ENODATA (loop.c
# ends the request with errno_to_blk_status of the backing file's error); buffered, the backing
# device's page cache turns it into EIO.
. "$(dirname "$0")/lib.sh"
lt_need dmsetup

sd=$(lt_scsi_debug dev_size_mb=32)
sectors=$(blockdev --getsz "$sd")
lt_dm_create rl-fault "0 $sectors linear $sd 0"
dm=/dev/mapper/rl-fault
lt_file "$LT_WORK/data" 4M
for dio in on off; do
	dev=$(lt_attach "$dm" --direct-io="$dio")
	dd if="$LT_WORK/data" of="$dev" bs=1M oflag=direct conv=notrunc,fsync status=none
	# Nothing of it stays in the backing device's page cache (the buffered path's).
	blockdev --flushbufs "$dm"
	dmsetup suspend rl-fault
	dmsetup load rl-fault --table "0 $sectors error"
	dmsetup resume rl-fault
	out=$(dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct 2>&1) &&
		lt_fail "reads from a failing backing device succeeded (dio=$dio)"
	grep -q "Input/output error" <<<"$out" || lt_fail "reads did not see EIO: $out"
	# A buffered backing write lands in the page cache; the flush (fsync) reports the error.
	out=$(dd if=/dev/zero of="$dev" bs=1M count=1 oflag=direct conv=notrunc,fsync 2>&1) &&
		lt_fail "writes to a failing backing device succeeded (dio=$dio)"
	grep -q "Input/output error" <<<"$out" || lt_fail "writes did not see EIO: $out"
	dmsetup suspend rl-fault
	dmsetup load rl-fault --table "0 $sectors linear $sd 0"
	dmsetup resume rl-fault
	# The first MiB is what the failed write may or may not have left; the rest is intact.
	got=$(dd if="$dev" bs=1M skip=1 count=3 iflag=direct status=none | sha256sum | cut -d' ' -f1)
	lt_eq "$got" "$(lt_sum "$LT_WORK/data" $((3 << 20)) $((1 << 20)))" \
		"data once the backing device works again (dio=$dio)"
	losetup -d "$dev" || lt_fail "detach after I/O errors"
	udevadm settle
done
dev=$(lt_attach "$dm")
losetup -d "$dev"

# scsi_debug fails reads of sectors medium_error_start.. with a medium error while its opts have
# bit 2 (switched on only around the reads: udev's probes must not meet it).
p=/sys/module/scsi_debug/parameters
bad=$(cat "$p/medium_error_start")
lt_on_exit "echo 0 >$p/opts"
# read_bad DEV: an O_DIRECT read of the bad sector; prints dd's error (fails if the read worked).
read_bad() {
	local out rc=0
	echo 2 >"$p/opts"
	out=$(dd if="$1" of=/dev/null bs=512 skip="$bad" count=1 iflag=direct status=none 2>&1) || rc=$?
	echo 0 >"$p/opts"
	[ "$rc" != 0 ] && echo "${out##*: }"
}
disk_err=$(read_bad "$dm") || lt_fail "scsi_debug's medium error did not fail a read of the disk"
lt_eq "$disk_err" "No data available" "the disk's own medium error (ENODATA)"
for dio in on off; do
	dev=$(lt_attach "$dm" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "loop/dio"
	err=$(read_bad "$dev") || lt_fail "a read of the bad sector through the loop device succeeded (dio=$dio)"
	if [ "$dio" = on ]; then
		lt_eq "$err" "$disk_err" "a medium error through the loop device, direct I/O"
	else
		lt_eq "$err" "Input/output error" "a medium error through the loop device, buffered"
	fi
	losetup -d "$dev" || lt_fail "detach after a medium error"
	udevadm settle
done
exit 0
