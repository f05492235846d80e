#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The benchmark machinery (BENCH_QUICK=1) runs end to end in this guest and produces well-formed
# results: every subject has its 5 quick runs (2 ext4 workloads, 2 queue-depth-32 ones, the
# latency one), each with IOPS > 0 and a context-switch count, and a memory row; the report
# writes the JSON, the three Markdown tables and an SVG.
# It loads and unloads both drivers itself, so it runs once, in the rust_loop column.
. "$(dirname "$0")/lib.sh"
lt_need fio python3

[ "$LT_DRIVER" = c ] && lt_skip "the benchmark runs both drivers itself (see the rust_loop column)"
if zcat /proc/config.gz 2>/dev/null | grep -q '^CONFIG_KASAN=y'; then
	lt_skip "no benchmark on the debug kernel"
fi
lt_unload
out=$LT_WORK/bench.jsonl
BENCH_QUICK=1 BENCH_DIR=$LT_WORK/bench bash "$LT_REPO/bench/run-guest.sh" "$out" 2>"$LT_WORK/bench.log" ||
	{ tail -n 20 "$LT_WORK/bench.log" | sed 's/^/# /'; lt_fail "bench/run-guest.sh failed"; }
# shellcheck disable=SC2119
lt_load
lt_eq "$(jq -r 'select(.kind == "env") | .quick' "$out")" true "environment record"
for s in raw c-buf c-dio rust-buf rust-dio; do
	lt_eq "$(jq -c "select(.kind == \"run\" and .subject == \"$s\")" "$out" | wc -l)" 5 "runs of $s"
	lt_eq "$(jq -c "select(.kind == \"memory\" and .subject == \"$s\")" "$out" | wc -l)" 1 "memory row of $s"
done
bad=$(jq -c 'select(.kind == "run" and ((.iops > 0 and .ios > 0 and .ctxt > 0) | not))' "$out")
[ -z "$bad" ] || lt_fail "runs without I/O: $bad"
python3 "$LT_REPO/bench/report.py" "$out" "$LT_WORK/r.json" "$LT_WORK/r.md" "$LT_WORK/r.svg" ||
	lt_fail "report.py failed"
jq -e '.medians | length == 25' "$LT_WORK/r.json" >/dev/null || lt_fail "medians in the JSON report"
for t in "1. Throughput" "2. Context switches" "3. Memory"; do
	grep -q "$t" "$LT_WORK/r.md" || lt_fail "table '$t' missing from the report"
done
grep -q '<svg' "$LT_WORK/r.svg" || lt_fail "the chart is not an SVG"
sed -n '/3. Memory/,/4. The loop device/p' "$LT_WORK/r.md" | grep '^|' | sed 's/^/# /'
exit 0
