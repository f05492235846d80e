#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The loop worker is freezable, like loop.c's WQ_FREEZABLE workqueue: no loop I/O runs while the
# system is frozen for suspend or hibernation. rust_loop's workers must not carry PF_NOFREEZE
# (loop.ko's kworkers belong to a freezable workqueue, which nothing in /proc shows). Both
# drivers then go through freezer cycles (/sys/power/pm_test = freezer) with verifying I/O in
# flight, direct I/O on and off: every cycle must freeze and thaw, and the data must verify.
. "$(dirname "$0")/lib.sh"

[ -w /sys/power/pm_test ] || lt_skip "no /sys/power/pm_test (CONFIG_PM_DEBUG)"
grep -qw freeze /sys/power/state || lt_skip "suspend-to-idle not available"
lt_need fio
PF_NOFREEZE=$((0x00008000))

img=$LT_WORK/img
lt_sparse "$img" 256M
dev=$(lt_attach "$img" --direct-io=on)
n=${dev#/dev/loop}

if [ "$LT_DRIVER" = rust ]; then
	# The device's workers exist from the first bind on.
	found=0
	for s in /proc/[0-9]*/stat; do
		comm=$(cut -d'(' -f2 "$s" 2>/dev/null | cut -d')' -f1) || continue
		case "$comm" in "rust_loop$n" | "rust_loop$n-"*) ;; *) continue ;; esac
		flags=$(sed 's/.*) //' "$s" | cut -d' ' -f7)
		found=$((found + 1))
		[ $((flags & PF_NOFREEZE)) -eq 0 ] ||
			lt_fail "worker $comm ($s) has PF_NOFREEZE: it would run while the system is frozen"
	done
	[ "$found" -gt 0 ] || lt_fail "no worker thread rust_loop$n found"
	lt_log "$found worker thread(s) of loop$n are freezable"
fi

delay=/sys/module/suspend/parameters/pm_test_delay
old_delay=$(cat $delay 2>/dev/null || echo 5)
echo 1 >$delay 2>/dev/null || true
lt_on_exit --first 'echo none >/sys/power/pm_test'
lt_on_exit --first "[ ! -e $delay ] || echo $old_delay >$delay"
echo freezer >/sys/power/pm_test
stop=$LT_WORK/stop
# in_flight: requests on the device now (or fio gone, which its wait below reports). Called
# through lt_wait.
# shellcheck disable=SC2317
in_flight() {
	[ "$(awk '{ print $1 + $2 }' "/sys/block/loop$n/inflight")" -gt 0 ] ||
		! kill -0 "$fio_pid" 2>/dev/null
}
for dio in on off; do
	losetup --direct-io="$dio" "$dev"
	# Verifying fio runs back to back until the stop file: there is I/O around every cycle,
	# however fast the machine.
	rm -f "$stop"
	lt_fio_loop "$stop" "$LT_WORK/fio.$dio" "$dev" 4096 libaio 1 16 16M >/dev/null &
	fio_pid=$!
	for cycle in 1 2 3; do
		lt_wait 300 in_flight || lt_fail "no I/O in flight before freezer cycle $cycle (dio=$dio)"
		echo freeze >/sys/power/state || lt_fail "freezer cycle $cycle (dio=$dio) failed"
	done
	touch "$stop"
	wait "$fio_pid" || lt_fail "I/O across freezer cycles failed verification (dio=$dio)"
	lt_log "dio=$dio: 3 freezer cycles with I/O in flight, data verified"
done
grep -q "Freezing of tasks failed" <<<"$(dmesg)" && lt_fail "the freezer failed: $(dmesg | grep -A3 'Freezing of tasks failed' | tail -n 4)"
exit 0
