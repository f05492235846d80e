#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Short reads at the end of the backing file, direct (async kiocb) and buffered: a device is
# never larger than its file (a trailing partial sector is dropped); after the file shrinks,
# data before the new end reads back intact and a read past it fails with EIO instead of
# returning stale data (loop.c 7.2's choice: the short read is completed and the rest retried,
# and a read of 0 bytes is zero-filled and failed). With the file ending inside a sector,
# rust_loop fails the part of a read it cannot place at a sector (loop.c acknowledges it: a
# deliberate difference).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
for dio in on off; do
	lt_file "$img" 1M
	# A size that is not a multiple of the block size: the last 1000 bytes are not in the device.
	head -c 1000 /dev/urandom >>"$img"
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_eq "$(lt_sysfs "$dev" size)" 2049 "sectors of a 1 MiB + 1000 B file (dio=$dio)"
	lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img" $((2049 * 512)))" "device content (dio=$dio)"

	truncate -s $((300 << 10)) "$img"
	got=$(dd if="$dev" bs=4096 count=75 iflag=direct status=none | sha256sum | cut -d' ' -f1)
	lt_eq "$got" "$(lt_sum "$img")" "data before the new end (dio=$dio)"
	if dd if="$dev" of=/dev/null bs=4096 skip=75 count=1 iflag=direct status=none 2>/dev/null; then
		lt_fail "a read past the end of the backing file succeeded (dio=$dio)"
	fi
	if dd if="$dev" of=/dev/null bs=8192 skip=37 count=1 iflag=direct status=none 2>/dev/null; then
		lt_fail "a read across the end of the backing file succeeded (dio=$dio)"
	fi
	# The file ending inside a sector: three adjacent 4 KiB direct reads in one io_submit (one
	# request) across its end come back short from the file system, 100 bytes into a sector.
	# rust_loop completes the two bios it read and fails the one whose rest cannot be retried at
	# a sector position; loop.c requeues that rest at the start of its sector and acknowledges
	# all three (a deliberate difference, README). udev reads nothing meanwhile: the three must
	# be one request (read merges +2), or the third alone would fail for another reason.
	truncate -s $(((300 << 10) + 100)) "$img"
	lt_udev_hold
	m0=$(lt_stat "$dev" 2)
	res=$(python3 "$LT_DIR/aio_batch.py" "$dev" $((292 << 10)) 3 read | head -n 1)
	lt_eq "$(lt_stat "$dev" 2)" $((m0 + 2)) \
		"read merges of three adjacent reads in one io_submit (dio=$dio)"
	lt_udev_release
	lt_log "three 4 KiB reads across an end of the file 100 bytes into a sector (dio=$dio): $res"
	if [ "$LT_DRIVER" = rust ]; then
		lt_eq "$res" "4096 4096 -5" "reads across an end of the file inside a sector (dio=$dio; -5: EIO)"
	fi
	losetup -d "$dev"
	udevadm settle
done
exit 0
