#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Swap on a loop device, used: a process in a memory cgroup held to 32 MiB (memory.high: reclaim
# and throttling, never an OOM kill, which a charge the driver's worker makes without __GFP_IO
# could otherwise cause for both drivers) writes 96 MiB of pages, each 512-byte sector with its
# own pattern, and reads them back, so that reclaim pushes most of them out
# through the loop device (page reclaim, swap writeback, the driver's worker, the backing file)
# and faults them back in; with direct I/O off and on. Every page must read back its pattern,
# /proc/vmstat must count pages swapped out and in, the process must not be OOM-killed, and
# (buffered) the backing file's page cache must be charged to the group; no hang, no kernel
# report.
. "$(dirname "$0")/lib.sh"
lt_need mkswap swapon swapoff python3

cg=/sys/fs/cgroup
for c in memory io; do
	grep -qw $c "$cg/cgroup.controllers" || lt_skip "no $c controller"
done
# With the io controller on, a swap bio carries the blkcg of its page's memory cgroup, so the
# driver charges the backing file's page cache (direct I/O off) to the same limited cgroup, as
# loop.c does: the feedback a loop device under swap must survive.
echo "+io +memory" >"$cg/cgroup.subtree_control"
group=$cg/lt_swap_01
lt_on_exit "[ ! -d $group ] || rmdir $group"
mkdir "$group"
echo 32M >"$group/memory.high"
echo max >"$group/memory.swap.max"
lt_on_exit --first "swapoff -a 2>/dev/null; true"
prog=$LT_WORK/pages.py
cat >"$prog" <<'EOF'
import sys
n = int(sys.argv[1]) * 256
buf = bytearray(n * 4096)
word = lambda s: (s * 0x9E3779B97F4A7C15 % (1 << 64)).to_bytes(8, "little") * 64
page = lambda i: b"".join(word(i * 8 + s) for s in range(8))
for i in range(n):
    buf[i * 4096:(i + 1) * 4096] = page(i)
bad = sum(1 for i in range(n) if buf[i * 4096:(i + 1) * 4096] != page(i))
print(f"pages {n} bad {bad}")
EOF

img=$LT_WORK/img
lt_sparse "$img" 160M
for dio in off on; do
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "direct I/O of the swap device"
	mkswap -q "$dev" >/dev/null
	swapon "$dev"
	out0=$(lt_key /proc/vmstat pswpout) in0=$(lt_key /proc/vmstat pswpin)
	oom0=$(lt_key "$group/memory.events" oom_kill)
	rc=0
	out=$(bash -c 'echo $$ >"$0/cgroup.procs" && exec python3 -S "$1" 96' "$group" "$prog" 2>&1) || rc=$?
	[ "$rc" = 0 ] || lt_fail "the process swapping through $dev (direct I/O $dio) ended with status $rc: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
	swapped_out=$(($(lt_key /proc/vmstat pswpout) - out0)) swapped_in=$(($(lt_key /proc/vmstat pswpin) - in0))
	lt_log "direct I/O $dio: $out, pages swapped out $swapped_out, in $swapped_in"
	if [ "$LT_DRIVER" = rust ]; then
		lt_log "engine: $(lt_engine_stats "$dev" | tr '\n' ' ')"
	fi
	lt_eq "$out" "pages 24576 bad 0" "pages read back after swapping through $dev (direct I/O $dio)"
	lt_eq "$(lt_key "$group/memory.events" oom_kill)" "$oom0" "OOM kills in the cgroup"
	# Buffered, the backing file's pages the swap-ins read last are the group's (7.6-7.9 MiB
	# measured for both drivers).
	if [ "$dio" = off ]; then
		file=$(lt_key "$group/memory.stat" file)
		[ "$file" -ge 1048576 ] || lt_fail "the group's page cache after swapping through $dev buffered is $file bytes: the backing file's pages are not charged to it"
	fi
	# 96 MiB through 32 MiB: at least 64 MiB (16384 pages) out; back in, most of it.
	[ "$swapped_out" -ge 16384 ] || lt_fail "only $swapped_out pages swapped out (direct I/O $dio)"
	[ "$swapped_in" -ge 8192 ] || lt_fail "only $swapped_in pages swapped in (direct I/O $dio)"
	swapoff "$dev"
	lt_detach "$dev"
done
exit 0
