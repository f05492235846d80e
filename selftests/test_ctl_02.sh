#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# 1000 concurrent /dev/loop-control operations (4 processes x 250 random ADD / REMOVE /
# GET_FREE on loop20..loop39) leave a consistent device set: only the expected errnos, every
# device that exists in sysfs has its node and can be removed, and nothing is left over.
. "$(dirname "$0")/lib.sh"

pids=()
for p in 1 2 3 4; do
	python3 "$LT_DIR/loopctl.py" ctl-storm 250 "$p" 20 39 >"$LT_WORK/storm.$p" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid" || lt_fail "a loop-control process failed"
done
udevadm settle
for p in 1 2 3 4; do
	lt_eq "$(head -n 1 "$LT_WORK/storm.$p")" "OK 250" "process $p finished"
	tail -n 1 "$LT_WORK/storm.$p" | jq -r 'keys[]' | while read -r k; do
		case "$k" in
		add:OK | add:EEXIST | remove:OK | remove:ENODEV | remove:EBUSY | get_free:OK) ;;
		*) lt_fail "unexpected outcome $k" ;;
		esac
	done
done
lt_log "outcomes: $(cat "$LT_WORK"/storm.* | grep -v '^OK' | jq -s -c 'reduce .[] as $o ({}; reduce ($o | to_entries[]) as $e (.; .[$e.key] += $e.value))')"
for i in $(seq 20 39); do
	if [ -e "/sys/block/loop$i" ]; then
		[ -b "/dev/loop$i" ] || lt_fail "loop$i in sysfs without a device node"
		lt_expect "OK 0" ctl-remove "$i"
	else
		lt_expect "ERR ENODEV" ctl-remove "$i"
	fi
done
# GET_FREE may have created devices above loop39; remove everything beyond loop7.
for b in /sys/block/loop*; do
	i=${b##*/loop}
	[ "$i" -ge 8 ] && lt_expect "OK 0" ctl-remove "$i"
done
udevadm settle
lt_eq "$(find /sys/block -maxdepth 1 -name "loop*" | wc -l)" 8 "devices left"
exit 0
