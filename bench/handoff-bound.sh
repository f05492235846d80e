#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/handoff-bound.sh: what handing a request to a worker costs by itself, against loop.ko,
# from a file in RAM (direct I/O). An experiment, not part of `make bench`: it needs the driver
# built with bench/handoff-bound.patch, whose `exp_mode` parameter makes it end reads and writes
# without doing them. On the host, from the repository:
#
#   git apply bench/handoff-bound.patch
#   scripts/vm-run -- bench/handoff-bound.sh      # builds the patched module first
#   git apply -R bench/handoff-bound.patch && scripts/module
#
# Subjects, each run interleaved with the others (the order rotates and reverses between
# repetitions): raw (fio on the file itself, O_DIRECT), c (loop.ko, direct I/O on), rust0 (the
# engine), rust1 (the same engine, but the worker ends each read at once, without the file or
# the submitter's cgroups: the ceiling of an engine built on this hand-off), rust2 (queue_rq ends
# each read at once: no worker), rust1q (rust1 with one hardware queue), rust3 (the engine
# without the submitter's cgroup association; not in the default SUBJECTS). Workloads: psync4
# (4 psync processes, 4 KiB random reads; the issue's 3.0x goal), psync4t (the same as
# threads), psync1 (one psync process, sequential), libaio2 (2 jobs at QD32). fio and the
# devices as in `make bench` (4096-byte logical blocks, --randrepeat=0 --norandommap, 2 s runs
# after 500 ms of ramp-up).
# Prints one `R rep subject workload iops ctxt-per-io p50-us shared-%` line per run, then
# medians and the median of the per-repetition ratios to loop.ko's run of the same repetition.
# Context switches per I/O are counted as `make bench` counts them: the whole run's (ramp-up
# included) per measured I/O, about 1.25x the steady rate. shared-% is the share of a rust_loop
# subject's requests that went to its shared worker (debugfs `to_shared` / `dispatched`). REPS,
# SUBJECTS and WORKLOADS (space-separated) narrow it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
modinfo -p "$repo/loop.ko" | grep -q '^exp_mode:' ||
	{ echo "handoff-bound: $repo/loop.ko has no exp_mode: apply bench/handoff-bound.patch" >&2; exit 1; }
reps=${REPS:-5}
read -ra subjects <<<"${SUBJECTS:-raw c rust0 rust1 rust2 rust1q}"
read -ra workloads <<<"${WORKLOADS:-psync4 psync4t psync1 libaio2}"
ram=$(mktemp -d)
mount -t tmpfs -o size=300M tmpfs "$ram"
trap 'losetup -D 2>/dev/null; umount "$ram" 2>/dev/null || true' EXIT
dd if=/dev/zero of="$ram/ram.img" bs=4M count=64 status=none
results=$(mktemp)

# use SUBJECT: its driver loaded (none for raw), and checked to be that one.
loaded=
use() {
	[ "$loaded" = "$1" ] && return 0
	bench_unload
	local mode=
	case $1 in
	raw | none) ;;
	c) modprobe loop ;;
	rust0) insmod "$repo/loop.ko" && mode=0 ;;
	rust1) insmod "$repo/loop.ko" exp_mode=1 && mode=1 ;;
	rust2) insmod "$repo/loop.ko" exp_mode=2 && mode=2 ;;
	rust1q) insmod "$repo/loop.ko" exp_mode=1 nr_hw_queues=1 && mode=1 ;;
	rust3) insmod "$repo/loop.ko" exp_mode=3 && mode=3 ;;
	*) echo "handoff-bound: unknown subject $1" >&2 && exit 1 ;;
	esac
	local have
	have=$(cat /sys/module/loop/parameters/exp_mode 2>/dev/null || echo)
	[ "$1" = raw ] || [ "$1" = none ] || [ "$have" = "$mode" ] ||
		{ echo "handoff-bound: $1 wants exp_mode '$mode', the loaded loop has '$have'" >&2; exit 1; }
	udevadm settle
	loaded=$1
}
bench_unload

for rep in $(seq 1 "$reps"); do
	mapfile -t order < <(bench_order "$rep" "${subjects[@]}")
	for s in "${order[@]}"; do
		use "$s"
		if [ "$s" = raw ]; then
			target=$ram/ram.img
		else
			target=$(losetup -f --show --direct-io=on -b 4096 "$ram/ram.img")
			udevadm settle
			[ "$(cat "/sys/block/${target#/dev/}/loop/dio")" = 1 ] ||
				{ echo "handoff-bound: direct I/O is off on $target" >&2; exit 1; }
		fi
		for w in "${workloads[@]}"; do
			case $w in
			psync4) a=(--numjobs=4 --ioengine=psync --rw=randread) ;;
			psync4t) a=(--numjobs=4 --ioengine=psync --rw=randread --thread) ;;
			psync1) a=(--numjobs=1 --ioengine=psync --rw=read) ;;
			libaio2) a=(--numjobs=2 --ioengine=libaio --iodepth=32 --rw=randread) ;;
			*) echo "handoff-bound: unknown workload $w" >&2 && exit 1 ;;
			esac
			e0=$(engine_stats "$target")
			read -r c0 _ < <(stat_snap)
			j=$(fio --name=e --filename="$target" --size=256M --direct=1 --bs=4k "${a[@]}" \
				--time_based --runtime=2 --ramp_time=500ms --randrepeat=0 --norandommap \
				--group_reporting --output-format=json)
			read -r c1 _ < <(stat_snap)
			e1=$(engine_stats "$target")
			jq -r --arg r "$rep" --arg s "$s" --arg w "$w" --arg c "$((c1 - c0))" \
				--argjson e0 "$e0" --argjson e1 "$e1" '
				(($e1.dispatched // 0) - ($e0.dispatched // 0)) as $d |
				(if $d > 0 then ((($e1.to_shared // 0) - ($e0.to_shared // 0)) * 100 / $d | floor) else 0 end) as $sh |
				.jobs[0].read | "R \($r) \($s) \($w) \(.iops) \(($c | tonumber) / ([.total_ios, 1] | max) * 100 | round / 100) \(.clat_ns.percentile["50.000000"] / 1000) \($sh)"' \
				<<<"$j" | tee -a "$results"
		done
		[ "$s" = raw ] || losetup -d "$target"
	done
done
use none
trap - EXIT
umount "$ram"
rmdir "$ram"
python3 - "$results" <<'EOF'
import collections, statistics as st, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    _, rep, s, w, iops, cx, p50, sh = line.split()
    runs[(s, w)][int(rep)] = (float(iops), float(cx), float(p50), float(sh))
print("subject workload: median IOPS (min-max), median/loop.ko's, per-repetition ratio median (min-max), ctxt/IO, p50 us, shared %")
for w in dict.fromkeys(k[1] for k in runs):
    c = runs.get(("c", w), {})
    for s in dict.fromkeys(k[0] for k in runs):
        v = runs.get((s, w))
        if not v:
            continue
        iops = [x[0] for x in v.values()]
        line = f"{s:7s} {w:8s} {st.median(iops):9.0f} ({min(iops):.0f}-{max(iops):.0f})"
        if c:
            pr = sorted(x[0] / c[r][0] for r, x in v.items() if r in c)
            line += f"  {st.median(iops) / st.median(x[0] for x in c.values()):5.2f}x"
            line += f"  {st.median(pr):5.2f} ({pr[0]:.2f}-{pr[-1]:.2f})"
        line += f"  {st.median(x[1] for x in v.values()):.2f}  {st.median(x[2] for x in v.values()):.1f}"
        line += f"  {st.median(x[3] for x in v.values()):.0f}"
        print(line)
EOF
rm -f "$results"
