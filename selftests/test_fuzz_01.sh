#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# ioctl fuzzing (selftests/loop_fuzz.c): FUZZ_CALLS (default 10000; `make stress` runs 100000)
# random calls on bound, unbound and stacked loop devices and /dev/loop-control, with bad
# pointers, bad fds and extreme values. Every call returns, the kernel reports nothing, and
# afterwards every device can be detached and the extra ones removed. The errno histogram is
# printed, and for rust_loop compared with loop.ko's (same seed).
. "$(dirname "$0")/lib.sh"
lt_need gcc jq

calls=${FUZZ_CALLS:-10000}
gcc -O2 -Wall -Werror -o "$LT_WORK/loop_fuzz" "$LT_DIR/loop_fuzz.c" || lt_fail "cannot build the fuzzer"
lt_sparse "$LT_WORK/img" 32M
lt_sparse "$LT_WORK/img2" 32M
losetup /dev/loop0 "$LT_WORK/img"
losetup /dev/loop2 /dev/loop0
udevadm settle
start=$(date +%s)
"$LT_WORK/loop_fuzz" 7 "$calls" "$LT_WORK/img2" /dev/loop0 /dev/loop1 /dev/loop2 /dev/loop3 \
	>"$LT_WORK/hist.json" || lt_fail "the fuzzer failed"
lt_log "$calls calls in $(($(date +%s) - start)) s"
# The fuzzer leaves thousands of uevents behind (binds, partition scans); on the debug kernel
# udev needs more than settle's default 120 s to work through them.
udevadm settle --timeout=1200
losetup -D
udevadm settle --timeout=1200
lt_eq "$(losetup -a)" "" "devices still bound after losetup -D"
for b in /sys/block/loop*; do
	i=${b##*/loop}
	[ "$i" -ge 8 ] && lt_expect "OK 0" ctl-remove "$i"
done
jq -e 'type == "object"' "$LT_WORK/hist.json" >/dev/null || lt_fail "no histogram"
total=$(jq '[.[]] | add' "$LT_WORK/hist.json")
lt_eq "$total" "$calls" "calls in the histogram"
lt_log "outcomes (command:errno=count): $(jq -r 'to_entries | sort_by(.key) | map("\(.key)=\(.value)") | join(" ")' "$LT_WORK/hist.json")"
shared=${LT_SHARED:-$LT_WORK}
if [ "$LT_DRIVER" = c ]; then
	cp "$LT_WORK/hist.json" "$shared/fuzz.c.json"
elif [ -f "$shared/fuzz.c.json" ]; then
	diff=$(jq -r -n --slurpfile c "$shared/fuzz.c.json" --slurpfile r "$LT_WORK/hist.json" '
		($c[0] | keys) + ($r[0] | keys) | unique | .[] as $k |
		select(($c[0][$k] // 0) != ($r[0][$k] // 0)) |
		"\($k): loop.ko \($c[0][$k] // 0), rust_loop \($r[0][$k] // 0)"' | paste -sd ';' -)
	lt_log "differences from loop.ko: ${diff:-none}"
fi
exit 0
