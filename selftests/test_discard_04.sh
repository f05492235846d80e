#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Discard and write-zeroes on an image on vfat, whose fallocate does neither (only preallocation:
# EOPNOTSUPP for FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE). The device advertises both at
# bind (it cannot know) and clears what failed, as loop.c's loop_clear_limits: a write-zeroes
# that asks for zeroing (REQ_NOUNMAP, blkdiscard -z) clears write-zeroes, and the block layer then
# writes the zeros itself; a discard (blkdiscard: the ioctl does not report EOPNOTSUPP, discard
# being advisory; the next one is refused up front), or a write-zeroes that may deallocate
# (fallocate --punch-hole on the device), fails with EOPNOTSUPP and clears discard. Once discard
# is cleared, loop.c refuses every fallocate request up front (bdev_max_discard_sectors), so a
# zeroing write-zeroes fails without clearing write-zeroes: each one is tried, fails and falls
# back. Two bindings, one per order. Every outcome (exit status, the limits after each step,
# the range's data) is loop.ko's; the data outside the ranges is intact.
. "$(dirname "$0")/lib.sh"
lt_need blkdiscard fallocate mkfs.vfat

fs=$LT_WORK/fs
img=$fs/img
sd=$(lt_scsi_debug dev_size_mb=32)
mkfs.vfat "$sd" >/dev/null
mkdir -p "$fs"
mount -t vfat "$sd" "$fs"
lt_file "$img" 8M
ref=$LT_WORK/ref
cp "$img" "$ref"
rec=$LT_WORK/outcomes
: >"$rec"
mib=1048576
zero=$(head -c "$mib" /dev/zero | sha256sum | cut -d' ' -f1)

# step WHAT CMD...: runs CMD on the device; records its exit status, the device's discard and
# write-zeroes limits after it and whether the MiB it names (at $at) reads back as zeros or as
# before; the reference copy gets what the step did to the data.
step() {
	local what=$1 rc=0 q=/sys/block/${dev#/dev/}/queue got data
	shift
	"$@" 2>"$LT_WORK/err" || rc=$?
	got=$(dd if="$dev" bs="$mib" count=1 skip=$((at / mib)) iflag=direct status=none | sha256sum | cut -d' ' -f1)
	if [ "$got" = "$zero" ]; then
		data=zeros
		dd if=/dev/zero of="$ref" bs="$mib" count=1 seek=$((at / mib)) conv=notrunc status=none
	elif [ "$got" = "$(lt_sum "$ref" "$mib" "$at")" ]; then
		data=unchanged
	else
		data=other
	fi
	echo "$what: exit $rc, discard_max_bytes $(cat "$q/discard_max_bytes")," \
		"write_zeroes_max_bytes $(cat "$q/write_zeroes_max_bytes"), data $data" | tee -a "$rec"
	[ "$rc" = 0 ] || sed 's/^/# stderr: /' "$LT_WORK/err"
}

# limits_at_bind: both advertised.
limits_at_bind() {
	local q=/sys/block/${dev#/dev/}/queue
	[ "$(cat "$q/discard_max_bytes")" -gt 0 ] || lt_fail "discard not advertised at bind"
	[ "$(cat "$q/write_zeroes_max_bytes")" -gt 0 ] || lt_fail "write-zeroes not advertised at bind"
}

# A zeroing write-zeroes first: write-zeroes goes, discard stays; then a discard. (-f: blkdiscard
# refuses a device where random data happens to look like a signature.)
dev=$(lt_attach "$img")
limits_at_bind
at=$mib
step "blkdiscard -z, first" blkdiscard -f -z -o "$at" -l "$mib" "$dev"
at=$((2 * mib))
step "blkdiscard, after" blkdiscard -f -o "$at" -l "$mib" "$dev"
step "blkdiscard, again" blkdiscard -f -o "$at" -l "$mib" "$dev"
lt_detach "$dev"

# A deallocating write-zeroes first: discard goes, write-zeroes stays and keeps failing.
dev=$(lt_attach "$img")
limits_at_bind
at=$((4 * mib))
step "fallocate --punch-hole, first" fallocate --punch-hole -o "$at" -l "$mib" "$dev"
at=$((5 * mib))
step "blkdiscard -z, after" blkdiscard -f -z -o "$at" -l "$mib" "$dev"
at=$((6 * mib))
step "blkdiscard -z, again" blkdiscard -f -z -o "$at" -l "$mib" "$dev"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$ref")" "the device's data"
lt_detach "$dev"
lt_eq "$(lt_sum "$img")" "$(lt_sum "$ref")" "the image's data"

# What loop.c 7.2 gives (the limits' nonzero values are the file system's; the C column checks
# these too).
grep -q "^blkdiscard -z, first: exit 0, discard_max_bytes [1-9][0-9]*, write_zeroes_max_bytes 0, data zeros$" "$rec" ||
	lt_fail "a zeroing write-zeroes on vfat: not done by the fallback, or write-zeroes not cleared"
grep -q "^blkdiscard, after: exit 0, discard_max_bytes 0, write_zeroes_max_bytes 0, data unchanged$" "$rec" ||
	lt_fail "a discard on vfat: data changed, or discard not cleared"
grep -q "^blkdiscard, again: exit [1-9], discard_max_bytes 0, write_zeroes_max_bytes 0, data unchanged$" "$rec" ||
	lt_fail "a discard once discard is cleared: not refused"
grep -q "^fallocate --punch-hole, first: exit 1, discard_max_bytes 0, write_zeroes_max_bytes [1-9][0-9]*, data unchanged$" "$rec" ||
	lt_fail "a deallocating write-zeroes on vfat: not refused, or discard not cleared (only)"
grep -q "^blkdiscard -z, again: exit 0, discard_max_bytes 0, write_zeroes_max_bytes [1-9][0-9]*, data zeros$" "$rec" ||
	lt_fail "a zeroing write-zeroes after discard was cleared: not done, or write-zeroes cleared"
lt_same_as_c discard_04 "$rec" "discard and write-zeroes outcomes on vfat"
umount "$fs"
exit 0
