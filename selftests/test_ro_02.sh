#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Writes that reach the driver on a read-only binding fail with EIO and leave the file as it
# was. A write to the read-only loop device itself never gets there: the block layer refuses it
# with EPERM before any request exists (ro_01). A device-mapper table over the device does get
# there: device-mapper opens it without the read-only check of an open by path, and the block
# layer only warns about its bios ("Trying to write to read-only block-device"). The backing file
# is open read-only (losetup -r), so a driver that let a write through would write through a
# read-only file. Direct I/O off and on: a direct write, a buffered write and its fsync, a
# discard and a write-zeroes through the table each fail with EIO, as on loop.ko; direct reads
# through the table give the file's data, and the file is unchanged.
. "$(dirname "$0")/lib.sh"
lt_need dmsetup blkdiscard

# eio WHAT CMD...: CMD fails with "Input/output error".
eio() {
	local what=$1 out
	shift
	out=$("$@" 2>&1) && lt_fail "$what through a table over a read-only binding succeeded"
	grep -q "Input/output error" <<<"$out" || lt_fail "$what through a table over a read-only binding: $out"
}

img=$LT_WORK/img
lt_file "$img" 8M
sum=$(lt_sum "$img")
modprobe dm-mod 2>/dev/null || true
[ -e /dev/mapper/control ] || lt_skip "no device-mapper"
lt_dm_on_exit rl-ro
dm=/dev/mapper/rl-ro
for dio in off on; do
	dev=$(lt_attach "$img" -r --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "loop/dio of a read-only binding"
	lt_eq "$(lt_sysfs "$dev" ro)" 1 "ro with losetup -r"
	dmsetup create rl-ro --table "0 $(blockdev --getsz "$dev") linear $dev 0" ||
		lt_fail "dmsetup create over $dev"
	udevadm settle
	# The table itself is writable: its writes go down to the loop device, discards and
	# write-zeroes included (else BLKZEROOUT would write zero pages instead).
	lt_eq "$(blockdev --getro "$dm")" 0 "the table's read-only state"
	q=/sys/block/$(basename "$(realpath "$dm")")/queue
	[ "$(cat "$q/discard_max_bytes")" -gt 0 ] || lt_fail "the table takes no discards"
	[ "$(cat "$q/write_zeroes_max_bytes")" -gt 0 ] || lt_fail "the table takes no write-zeroes"
	eio "a direct write" dd if=/dev/zero of="$dm" bs=4k count=1 oflag=direct conv=notrunc status=none
	eio "a buffered write and its fsync" dd if=/dev/zero of="$dm" bs=4k count=2 seek=8 conv=notrunc,fsync status=none
	eio "a discard" blkdiscard -o 1M -l 1M "$dm"
	eio "a write-zeroes" blkdiscard -z -o 2M -l 1M "$dm"
	# Direct: the table's page cache may still hold the failed buffered write.
	lt_eq "$(dd if="$dm" bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$sum" \
		"direct reads through the table, direct I/O $dio"
	udevadm settle
	dmsetup remove --retry rl-ro
	udevadm settle
	lt_detach "$dev"
	lt_eq "$(lt_sum "$img")" "$sum" "the backing file after writes refused by a read-only binding, direct I/O $dio"
done
exit 0
