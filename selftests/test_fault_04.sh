#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A read that meets a failing region of the backing device part-way: the device is bound to a
# device-mapper table that maps a scsi_debug disk as it is but fails its 8 sectors at 1 MiB
# ("error" target). Four adjacent 4 KiB O_DIRECT reads from 1 MiB - 8 KiB in one io_submit, one
# request of four bios (read merges +3), with direct I/O off: the backing read moves 8 KiB and
# then fails; the first two reads complete with the disk's data and the rest of the request is
# tried again from 1 MiB, where it fails: the last two get EIO (loop.c completes a short read's
# part and requeues the rest). Twice: with the backing device's page cache cold, and with the
# 8 KiB before 1 MiB in it (the first read left them; in rust_loop the non-blocking attempt
# then copies them and the blocking path continues). With direct I/O on, the backing direct
# read fails as a whole: all four get EIO. One 16 KiB read across 1 MiB fails with EIO either
# way, a read before it works, and the device detaches. Same outcomes on loop.ko and rust_loop;
# rust_loop's counters show the retry (requeued, and no request failed short without one).
. "$(dirname "$0")/lib.sh"
lt_need dmsetup

sd=$(lt_scsi_debug dev_size_mb=8)
sectors=$(blockdev --getsz "$sd")
dd if=/dev/urandom of="$sd" bs=1M count=8 oflag=direct status=none
lt_dm_create rl-part "0 2048 linear $sd 0" "2048 8 error" "2056 $((sectors - 2056)) linear $sd 2056"
dm=/dev/mapper/rl-part
mib=1048576
# part I: the sha256 of the disk's Ith 4 KiB block from 1 MiB - 8 KiB.
part() { lt_sum "$sd" 4096 $((mib - 8192 + 4096 * $1)); }

# reads4 WHAT WANT REQUEUED: the four reads, one request; their results must be WANT, and the
# data of those that completed the disk's; rust_loop requeued the request REQUEUED times.
reads4() {
	local what=$1 want=$2 m0 r0=0 s0=0 out res sums expect
	if [ "$LT_DRIVER" = rust ]; then
		r0=$(lt_engine_stat "$dev" requeued)
		s0=$(lt_engine_stat "$dev" short_failed)
	fi
	m0=$(lt_stat "$dev" 2)
	out=$(python3 "$LT_DIR/aio_batch.py" "$dev" $((mib - 8192)) 4 read-parts) ||
		lt_fail "aio_batch.py ($what): $out"
	lt_eq "$(($(lt_stat "$dev" 2) - m0))" 3 "read merges of four adjacent reads ($what)"
	res=$(head -n 1 <<<"$out")
	sums=$(tail -n 1 <<<"$out")
	lt_eq "$res" "$want" "four reads, the third at the failing region ($what)"
	expect="- - - -"
	[ "$want" = "4096 4096 -5 -5" ] && expect="$(part 0) $(part 1) - -"
	lt_eq "$sums" "$expect" "the data of the reads that completed ($what)"
	if [ "$LT_DRIVER" = rust ]; then
		lt_eq "$(($(lt_engine_stat "$dev" requeued) - r0))" "$3" "requests requeued ($what)"
		lt_eq "$(($(lt_engine_stat "$dev" short_failed) - s0))" 0 "requests failed short ($what)"
	fi
}

for dio in off on; do
	dev=$(lt_attach "$dm" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "loop/dio"
	# udev's probes must not read the device while the reads are counted as one request (they
	# read at 1 MiB too: a VMFS signature's place).
	lt_udev_hold
	# The backing device's page cache (the buffered path's) starts cold.
	blockdev --flushbufs "$dm"
	if [ "$dio" = off ]; then
		reads4 "direct I/O off, cold" "4096 4096 -5 -5" 1
		reads4 "direct I/O off, the first 8 KiB cached" "4096 4096 -5 -5" 1
	else
		reads4 "direct I/O on" "-5 -5 -5 -5" 0
	fi
	lt_udev_release
	out=$(dd if="$dev" of=/dev/null bs=16k count=1 skip=$((mib - 8192)) iflag=direct,skip_bytes 2>&1) &&
		lt_fail "a 16 KiB read across the failing region succeeded (direct I/O $dio)"
	grep -q "Input/output error" <<<"$out" || lt_fail "a read across the failing region: $out"
	got=$(lt_sum_direct "$dev" 8192 $((mib - 8192))) ||
		lt_fail "a read before the failing region failed (direct I/O $dio)"
	lt_eq "$got" "$(lt_sum "$sd" 8192 $((mib - 8192)))" "8 KiB before the failing region (direct I/O $dio)"
	lt_detach "$dev"
done
exit 0
