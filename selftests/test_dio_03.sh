#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Short reads at the end of the backing file, direct (async kiocb) and buffered: a device is
# never larger than its file (a trailing partial sector is dropped); after the file shrinks,
# data before the new end reads back intact and a read past it fails with EIO instead of
# returning stale data (loop.c 7.2's choice: the short read is completed and the rest retried,
# and a read of 0 bytes is zero-filled and failed).
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
	losetup -d "$dev"
	udevadm settle
done
exit 0
