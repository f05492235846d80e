#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# CPU hotplug under I/O. The last CPU goes offline and comes back, 8 times, while fio writes and
# verifies through two devices, direct I/O on (libaio QD16) and off (psync), each cycle once both
# have moved more data. Requests queued on the going CPU are handed to another, and with a
# hardware queue per CPU (rust_loop's; loop.ko has one for all CPUs) blk-mq also drains the queue
# whose last CPU goes (it waits for its requests, wherever the driver has them). Every offlining
# must finish, with no verify or I/O error and no kernel report; then a device bound for the
# first time while the CPU is offline (rust_loop starts its workers at the first bind) must
# work, and keep working once the CPU is back, from that CPU too.
# rust_loop only: a hardware queue's worker may run on its queue's CPUs again once they are
# back (a preferred affinity, kthread_affine_preferred: while they are offline the scheduler
# runs it elsewhere). Always checked for the worker started while its CPU was offline (the
# kernel widened its CPUs when it first ran); after the 8 cycles it shows for the workers
# woken while their CPU was offline. With kthread_bind, a worker stays on the fallback CPUs.
. "$(dirname "$0")/lib.sh"
lt_need fio

last=$(lt_last_cpu)
online=/sys/devices/system/cpu/cpu$last/online
{ [ "$last" -gt 0 ] && [ -w "$online" ]; } || lt_skip "no CPU that can go offline"
lt_on_exit --first "echo 1 >$online"

# cpu_set 0|1: takes the last CPU offline or online; the write returns once that is done.
cpu_set() {
	echo "$1" >"$online" || lt_fail "echo $1 >$online failed"
	lt_eq "$(cat "$online")" "$1" "cpu$last/online"
}

# workers_home DEV WHEN: rust_loop only: each hardware queue's worker may run on that queue's
# CPUs, and only there.
workers_home() {
	[ "$LT_DRIVER" = rust ] || return 0
	local n=${1#/dev/loop} q
	for q in $(cd "/sys/block/loop$n/mq" && echo *); do
		lt_eq "$(lt_worker_cpus "$n" "$q")" "$(lt_cpus "$(lt_sysfs "loop$n" "mq/$q/cpu_list")")" \
			"CPUs of worker rust_loop$n-$q $2"
	done
}

lt_sparse "$LT_WORK/a" 64M
lt_sparse "$LT_WORK/b" 64M
da=$(lt_attach "$LT_WORK/a" --direct-io=on)
db=$(lt_attach "$LT_WORK/b" --direct-io=off)
workers_home "$da" "at the start"

stop=$LT_WORK/stop
lt_fio_loop "$stop" "$LT_WORK/fio-a.log" "$da" 4096 libaio 2 16 8M >"$LT_WORK/a.runs" &
pa=$!
lt_fio_loop "$stop" "$LT_WORK/fio-b.log" "$db" 4096 psync 2 1 8M >"$LT_WORK/b.runs" &
pb=$!
# ios DEV: the reads and writes DEV has completed so far (its stat file).
ios() { lt_sysfs "$1" stat | awk '{ print $1 + $5 }'; }
fio_alive() { kill -0 "$pa" 2>/dev/null && kill -0 "$pb" 2>/dev/null; }
# Called through lt_wait; true as well once a fio loop has ended (failed: its wait says so).
# shellcheck disable=SC2317
progressed() {
	! fio_alive || { [ "$(ios "$da")" -ge $((a0 + 256)) ] && [ "$(ios "$db")" -ge $((b0 + 256)) ]; }
}
for i in $(seq 1 8); do
	# Each cycle while both devices move data: 256 more I/Os each since the last.
	a0=$(ios "$da") b0=$(ios "$db")
	lt_wait 120 progressed || lt_fail "no I/O through $da and $db before cycle $i"
	fio_alive || break
	cpu_set 0
	cpu_set 1
done
touch "$stop"
wait "$pa" || lt_fail "a verifying fio run (direct I/O) failed while cpu$last went offline and online"
wait "$pb" || lt_fail "a verifying fio run (buffered) failed while cpu$last went offline and online"
lt_log "8 offline/online cycles of cpu$last during $(cat "$LT_WORK/a.runs") + $(cat "$LT_WORK/b.runs") verified fio runs"
workers_home "$da" "after 8 offline/online cycles"
workers_home "$db" "after 8 offline/online cycles"
lt_detach "$da"
lt_detach "$db"

# A device created with every CPU online, bound for the first time while the last is offline.
n=64
lt_ctl_add "$n"
dc=/dev/loop$n
lt_sparse "$LT_WORK/c" 64M
cpu_set 0
losetup --direct-io=on "$dc" "$LT_WORK/c" || lt_fail "binding $dc while cpu$last is offline"
lt_fio_verify "$dc" 4096 libaio 2 16 8M
cpu_set 1
workers_home "$dc" "started while cpu$last was offline, after it came back"
# From the CPU that came back, through its own hardware queue.
lt_fio_verify "$dc" 4096 psync 1 1 8M --cpus_allowed="$last"
lt_fio_verify "$dc" 4096 libaio 1 16 8M --cpus_allowed="$last"
lt_detach "$dc"
exit 0
