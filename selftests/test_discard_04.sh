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

# step WHAT NOTSUPP CMD...: runs CMD on the device; records its exit status and error message,
# the device's discard and write-zeroes limits after it and whether the MiB it names (at $at)
# reads back as zeros or as before; the reference copy gets what the step did to the data.
# rust_loop only: NOTSUPP requests ended with EOPNOTSUPP, none with another error (user space
# cannot tell: a failed write-zeroes the block layer falls back from).
step() {
	local what=$1 notsupp=$2 rc=0 q=/sys/block/${dev#/dev/}/queue got data n0=0 i0=0 err
	shift 2
	if [ "$LT_DRIVER" = rust ]; then
		n0=$(lt_engine_stat "$dev" errors_notsupp)
		i0=$(lt_engine_stat "$dev" errors_io)
	fi
	"$@" 2>"$LT_WORK/err" || rc=$?
	err=
	# (The device's name left out: the two columns may get different devices.)
	[ "$rc" = 0 ] || err=", error: $(tail -n 1 "$LT_WORK/err" | sed "s|$dev|DEV|g")"
	if [ "$LT_DRIVER" = rust ]; then
		lt_eq "$(($(lt_engine_stat "$dev" errors_notsupp) - n0))" "$notsupp" "requests ended EOPNOTSUPP ($what)"
		lt_eq "$(($(lt_engine_stat "$dev" errors_io) - i0))" 0 "requests ended with an I/O error ($what)"
	fi
	got=$(lt_sum_direct "$dev" "$mib" "$at") || lt_fail "$what: reading the range back failed"
	if [ "$got" = "$zero" ]; then
		data=zeros
		dd if=/dev/zero of="$ref" bs="$mib" count=1 seek=$((at / mib)) conv=notrunc status=none
	elif [ "$got" = "$(lt_sum "$ref" "$mib" "$at")" ]; then
		data=unchanged
	else
		data=other
	fi
	echo "$what: exit $rc, discard_max_bytes $(cat "$q/discard_max_bytes")," \
		"write_zeroes_max_bytes $(cat "$q/write_zeroes_max_bytes"), data $data$err" | tee -a "$rec"
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
step "blkdiscard -z, first" 1 blkdiscard -f -z -o "$at" -l "$mib" "$dev"
at=$((2 * mib))
step "blkdiscard, after" 1 blkdiscard -f -o "$at" -l "$mib" "$dev"
step "blkdiscard, again" 0 blkdiscard -f -o "$at" -l "$mib" "$dev"
lt_detach "$dev"

# A deallocating write-zeroes first: discard goes, write-zeroes stays and keeps failing.
dev=$(lt_attach "$img")
limits_at_bind
at=$((4 * mib))
step "fallocate --punch-hole, first" 1 fallocate --punch-hole -o "$at" -l "$mib" "$dev"
at=$((5 * mib))
step "blkdiscard -z, after" 1 blkdiscard -f -z -o "$at" -l "$mib" "$dev"
at=$((6 * mib))
step "blkdiscard -z, again" 1 blkdiscard -f -z -o "$at" -l "$mib" "$dev"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$ref")" "the device's data"
lt_detach "$dev"
lt_eq "$(lt_sum "$img")" "$(lt_sum "$ref")" "the image's data"

lt_same_as_c discard_04 "$rec" "discard and write-zeroes outcomes on vfat"
# What loop.c 7.2 gives (the nonzero limits are loop.c's for a file with fallocate: UINT_MAX >> 9
# sectors; the C column checks these too).
expect() { grep -q "^$1$" "$rec" || lt_fail "$2 (expected: $1)"; }
nz='[1-9][0-9]*'
expect "blkdiscard -z, first: exit 0, discard_max_bytes $nz, write_zeroes_max_bytes 0, data zeros" \
	"a zeroing write-zeroes on vfat: not done by the fallback, or write-zeroes not cleared"
expect "blkdiscard, after: exit 0, discard_max_bytes 0, write_zeroes_max_bytes 0, data unchanged" \
	"a discard on vfat: data changed, or discard not cleared"
expect "blkdiscard, again: exit [1-9], discard_max_bytes 0, write_zeroes_max_bytes 0, data unchanged, error: .*Operation not supported" \
	"a discard once discard is cleared: not refused"
expect "fallocate --punch-hole, first: exit 1, discard_max_bytes 0, write_zeroes_max_bytes $nz, data unchanged, error: .*unsupported" \
	"a deallocating write-zeroes on vfat: not refused with EOPNOTSUPP, or discard not cleared (only)"
expect "blkdiscard -z, after: exit 0, discard_max_bytes 0, write_zeroes_max_bytes $nz, data zeros" \
	"a zeroing write-zeroes after discard was cleared: not done, or write-zeroes cleared"
expect "blkdiscard -z, again: exit 0, discard_max_bytes 0, write_zeroes_max_bytes $nz, data zeros" \
	"a second zeroing write-zeroes after discard was cleared: not done, or write-zeroes cleared"
umount "$fs"
exit 0
