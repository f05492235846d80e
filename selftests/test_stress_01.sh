#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Live reconfiguration under load, for STRESS_SECONDS (default 20; `make stress` runs longer):
# 4 fio jobs write and crc32c-verify device A while, concurrently, A's direct I/O is toggled, its
# backing file grows and shrinks with LOOP_SET_CAPACITY, and its status flags flip; read-only
# device B has its backing file swapped with LOOP_CHANGE_FD between two files of different
# content while being read: right after each swap B reads the new file, and every 64 KiB block
# a concurrent reader sees is the block of one of the two files (a request goes to one file,
# whole); device C is detached and re-attached; /dev/loop-control adds, removes and finds free
# devices on the side; the last CPU goes offline and comes back (with a hardware queue per CPU,
# rust_loop's, blk-mq then drains that CPU's queue; loop-control may create devices meanwhile).
# No verify error, no wrong byte, no hang, no kernel report.
# The worker functions are called indirectly, through `worker NAME NAME`.
# shellcheck disable=SC2317
. "$(dirname "$0")/lib.sh"
lt_need fio

secs=${STRESS_SECONDS:-20}
ctl() { python3 "$LT_DIR/loopctl.py" "$@"; }
fallocate -l 64M "$LT_WORK/a"
lt_file "$LT_WORK/b1" 8M
lt_file "$LT_WORK/b2" 8M
sum_b=$(lt_sum "$LT_WORK/b1")
head_b1=$(lt_sum "$LT_WORK/b1" 65536)
head_b2=$(lt_sum "$LT_WORK/b2" 65536)
lt_sparse "$LT_WORK/c" 8M
losetup /dev/loop0 "$LT_WORK/a" --direct-io=on
losetup -r /dev/loop1 "$LT_WORK/b1"
udevadm settle
# Held open so that flipping AUTOCLEAR never unbinds A.
exec 9</dev/loop0
end=$(($(date +%s) + secs))
fails=$LT_WORK/fails
: >"$fails"

# Each worker loops until the deadline and counts its rounds; failures go to $fails.
worker() {
	local name=$1 n=0
	shift
	while [ "$(date +%s)" -lt "$end" ]; do
		"$@" >>"$LT_WORK/$name.log" 2>&1 || echo "$name: round $n failed" >>"$fails"
		n=$((n + 1))
	done
	echo "$n" >"$LT_WORK/$name.rounds"
}
verify_a() { lt_fio_verify /dev/loop0 4096 psync 4 1 8M; }
toggle_dio() {
	losetup --direct-io=off /dev/loop0 && losetup --direct-io=on /dev/loop0
}
resize_a() {
	truncate -s 96M "$LT_WORK/a" && losetup -c /dev/loop0 &&
		truncate -s 64M "$LT_WORK/a" && losetup -c /dev/loop0
}
flip_status() {
	[ "$(ctl set-status64 /dev/loop0 --flags 4)" = "OK 0" ] &&
		[ "$(ctl set-status64 /dev/loop0 --flags 0)" = "OK 0" ]
}
# head_b: the first 64 KiB of device B, read past any cache.
head_b() { dd if=/dev/loop1 bs=64k count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1; }
swap_b() {
	[ "$(ctl change-fd /dev/loop1 "$LT_WORK/b2" --file-ro)" = "OK 0" ] &&
		[ "$(head_b)" = "$head_b2" ] &&
		[ "$(ctl change-fd /dev/loop1 "$LT_WORK/b1" --file-ro)" = "OK 0" ] &&
		[ "$(head_b)" = "$head_b1" ]
}
read_b() {
	dd if=/dev/loop1 of="$LT_WORK/b.read" bs=64k iflag=direct status=none &&
		python3 - "$LT_WORK/b.read" "$LT_WORK/b1" "$LT_WORK/b2" <<'PY'
import sys
got, b1, b2 = (open(p, "rb").read() for p in sys.argv[1:])
bs = 65536
bad = [i for i in range(0, len(b1), bs)
       if got[i:i + bs] not in (b1[i:i + bs], b2[i:i + bs])]
if len(got) != len(b1) or bad:
    sys.exit(f"read_b: {len(got)} bytes read, blocks of neither file at {bad[:8]}")
PY
}
# udev may hold loop2 open after the bind (its change event): the detach is then deferred to
# its close, and the next bind must wait for that.
cycle_c() { losetup /dev/loop2 "$LT_WORK/c" && losetup -d /dev/loop2 && lt_wait 60 unbound_c; }
unbound_c() { ! lt_bound /dev/loop2; }
churn() { ctl ctl-storm 40 "$RANDOM" 40 47 >/dev/null; }
online=/sys/devices/system/cpu/cpu$(lt_last_cpu)/online
workers=(verify_a toggle_dio resize_a flip_status swap_b read_b cycle_c churn)
if [ "$(lt_last_cpu)" -gt 0 ] && [ -w "$online" ]; then
	# Once lt_cleanup has stopped the workers (a cpu_cycle stopped between its two writes
	# would leave the CPU offline), and before it, for its own steps.
	lt_on_exit --first "echo 1 >$online"
	lt_on_exit "echo 1 >$online"
	cpu_cycle() { echo 0 >"$online" && echo 1 >"$online"; }
	workers+=(cpu_cycle)
fi

# The watchdog: every worker must be done shortly after the deadline (one round; a round is
# many times slower on a debug kernel).
grace=120
if lt_debug_kernel; then grace=900; fi
deadline=$(($(date +%s) + secs + grace))
pids=()
for w in "${workers[@]}"; do
	worker "$w" "$w" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	left=$((deadline - $(date +%s)))
	# timeout 0 would wait forever.
	timeout $((left > 0 ? left : 1)) tail --pid="$p" -f /dev/null || lt_fail "a worker hung (watchdog)"
done
wait
exec 9<&-
rounds=""
for w in "${workers[@]}"; do
	rounds+=" $w=$(cat "$LT_WORK/$w.rounds")"
done
# Each verify_a round writes and checks 4 x 8 MiB.
lt_log "${secs}s:$rounds; $(($(cat "$LT_WORK/verify_a.rounds") * 32)) MiB written and crc32c-verified"
if [ -s "$fails" ]; then
	sed 's/^/# /' "$fails" | head -n 20
	tail -n 20 "$LT_WORK"/*.log | sed 's/^/# /'
	lt_fail "$(wc -l <"$fails") failed rounds"
fi
# (Past the device's page cache: udev's probes after each swap may have filled it with b2's.)
lt_eq "$(dd if=/dev/loop1 bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$sum_b" \
	"read-only device content at the end (b1 again)"
udevadm settle
losetup -D
for i in $(seq 40 47); do
	[ -e "/sys/block/loop$i" ] && lt_expect "OK 0" ctl-remove "$i"
done
exit 0
