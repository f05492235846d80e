#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Discard and write-zeroes with direct I/O on, over a file and over a block device (scsi_debug
# with UNMAP and WRITE SAME): blkdiscard (REQ_OP_DISCARD: a hole in the file), fallocate
# --zero-range on the device (write-zeroes with REQ_NOUNMAP: FALLOC_FL_ZERO_RANGE, the file keeps
# its blocks), fallocate --punch-hole on the device (write-zeroes without NOUNMAP:
# FALLOC_FL_PUNCH_HOLE, the blocks go). Each range reads back as zeros, the file's allocation
# changes as the operation says, the data around it is intact; every outcome (exit status,
# allocation, the device's discard limits) is loop.ko's.
. "$(dirname "$0")/lib.sh"
lt_need blkdiscard fallocate filefrag

MiB=$((1 << 20))
zero=$(head -c $((4 * MiB)) /dev/zero | sha256sum | cut -d' ' -f1)
rec=$LT_WORK/record

# zeros DEV START: the 4 MiB at START read back as zeros (O_DIRECT, so not from a cache).
zeros() {
	[ "$(dd if="$1" bs=1M skip=$(($2 / MiB)) count=4 iflag=direct status=none |
		sha256sum | cut -d' ' -f1)" = "$zero" ]
}

# op WHAT DEV START CMD...: run CMD on DEV's 4 MiB at START; if it succeeded, the range must
# read back as zeros. Records the exit status.
op() {
	local what=$1 dev=$2 start=$3 rc=0
	shift 3
	"$@" >/dev/null 2>&1 || rc=$?
	echo "$what: exit $rc" >>"$rec"
	if [ "$rc" = 0 ]; then
		zeros "$dev" "$start" || lt_fail "$what: range does not read back as zeros"
	fi
}

# run DEV BACKING WHAT: the three operations on DEV (bound to BACKING, 16 MiB of random data).
run() {
	local dev=$1 backing=$2 what=$3 tail_sum
	lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio over $what"
	echo "$what: discard_max_hw_bytes $(lt_sysfs "$dev" queue/discard_max_hw_bytes)" \
		"write_zeroes_max_bytes $(lt_sysfs "$dev" queue/write_zeroes_max_bytes)" >>"$rec"
	tail_sum=$(lt_sum "$backing" $((4 * MiB)) $((12 * MiB)))
	op "$what discard" "$dev" 0 blkdiscard -o 0 -l $((4 * MiB)) "$dev"
	op "$what zero-range" "$dev" $((4 * MiB)) fallocate -z -o $((4 * MiB)) -l $((4 * MiB)) "$dev"
	op "$what punch-hole" "$dev" $((8 * MiB)) fallocate -p -o $((8 * MiB)) -l $((4 * MiB)) "$dev"
	lt_eq "$(lt_sum "$backing" $((4 * MiB)) $((12 * MiB)))" "$tail_sum" \
		"$what: the untouched 4 MiB after the ranges"
}

img=$LT_WORK/img
lt_file "$img" 16M
dev=$(lt_attach "$img" --direct-io=on)
run "$dev" "$img" file
losetup -d "$dev"
udevadm settle
# The file's allocation, range by range: the discard and the punch-hole freed their 4 MiB, the
# zero-range kept its blocks (as unwritten extents), the last 4 MiB are data.
for r in 0 4 8 12; do
	# filefrag -v -b4096: "ext: logical_start..logical_end: physical...", in 4 KiB blocks.
	alloc=$(filefrag -v -b4096 "$img" | awk -F: -v s=$((r * 256)) -v e=$((r * 256 + 1023)) '
		$1 ~ /^ *[0-9]+$/ { split($2, a, /\.\./); lo = a[1] + 0; hi = a[2] + 0
			if (hi >= s && lo <= e) n += (hi < e ? hi : e) - (lo > s ? lo : s) + 1 }
		END { print n + 0 }')
	echo "file blocks allocated in [$r MiB, $((r + 4)) MiB): $alloc" >>"$rec"
done
for what in discard zero-range punch-hole; do
	grep -q "file $what: exit 0" "$rec" || lt_fail "$what over a file failed"
done
grep -q 'allocated in \[0 MiB, 4 MiB): 0$' "$rec" || lt_fail "discard left the file's blocks"
grep -q 'allocated in \[4 MiB, 8 MiB): 1024$' "$rec" || lt_fail "zero-range freed the file's blocks"
grep -q 'allocated in \[8 MiB, 12 MiB): 0$' "$rec" || lt_fail "punch-hole left the file's blocks"

sd=$(lt_scsi_debug dev_size_mb=16 lbpu=1 lbpws=1 unmap_max_blocks=8192)
dd if=/dev/urandom of="$sd" bs=1M count=16 oflag=direct status=none
dev=$(lt_attach "$sd" --direct-io=on)
run "$dev" "$sd" "block device"
losetup -d "$dev"
udevadm settle

sed 's/^/# /' "$rec"
lt_same_as_c discard_03 "$rec" "discard and write-zeroes outcomes"
exit 0
