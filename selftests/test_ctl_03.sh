#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Bad numbers and bad parameters leave nothing behind:
# - LOOP_CTL_ADD with a number whose first minor overflows (number << part_shift > 2^31) or lies
#   beyond the minor space is EINVAL, and the number stays free; on a kernel with kmemleak, no
#   leak is reported afterwards (rust_loop once leaked the device on this path).
# - A load with invalid parameters fails before /dev/loop-control is registered (loop_init's
#   order), so a LOOP_CTL_ADD racing the failed load cannot create a device that nobody removes,
#   and leaves no debugfs directory behind (rust_loop once did, and the next load had none).
. "$(dirname "$0")/lib.sh"

lt_unload || lt_fail "unload failed"
# Only leaks from here on count: what kmemleak finds now (objects older than its 5 s minimum
# age) is earlier tests' or the boot's, and clearing marks it reported already.
if [ -w /sys/kernel/debug/kmemleak ]; then
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo clear >/sys/kernel/debug/kmemleak
fi
lt_load max_part=15
# 2^27 << 4 is 2^31 (a negative int minor), 2^16 << 4 is 2^20 (past MINORMASK).
numbers=($((1 << 27)) $((1 << 16)))
# loop.c bug, not copied: 2^28 << 4 and 2^30 << 4 wrap to minor 0 in loop.c's int arithmetic,
# so its LOOP_CTL_ADD collides with loop0 (a sysfs duplicate-name warning with a stack dump,
# then EEXIST). rust_loop computes the minor without wrapping and refuses them with EINVAL.
[ "$LT_DRIVER" = rust ] && numbers+=($((1 << 28)) $((1 << 30)))
for n in "${numbers[@]}"; do
	lt_expect "ERR EINVAL" ctl-add "$n"
	[ -e "/sys/block/loop$n" ] && lt_fail "loop$n exists after a failed LOOP_CTL_ADD"
done
lt_expect "OK 20" ctl-add 20
# udev opens a new disk to handle its add event; REMOVE would be EBUSY meanwhile.
udevadm settle
lt_expect "OK 0" ctl-remove 20
if [ -w /sys/kernel/debug/kmemleak ]; then
	# kmemleak reports only objects older than 5 s (its minimum age, not a synchronisation):
	# without the wait a leak made just above would go unreported.
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo scan >/sys/kernel/debug/kmemleak
	leaks=$(grep -c "unreferenced object" /sys/kernel/debug/kmemleak || true)
	[ "$leaks" = 0 ] || lt_fail "kmemleak: $(head -n 20 /sys/kernel/debug/kmemleak)"
fi
lt_unload || lt_fail "unload failed"

# Loads that must fail, each raced by LOOP_CTL_ADDs on /dev/loop-control. The kernel's module
# autoloading is off meanwhile: opening a static /dev/loop-control node with no driver loaded
# would load loop.ko (the char-major-10-237 alias).
lt_debugfs
old_modprobe=$(cat /proc/sys/kernel/modprobe)
lt_on_exit "echo $old_modprobe >/proc/sys/kernel/modprobe"
echo /bin/true >/proc/sys/kernel/modprobe
python3 - <<'PY' &
import fcntl, os, time
while True:
    try:
        fd = os.open("/dev/loop-control", os.O_RDWR)
    except OSError:
        # No driver: try again in 1 ms (still many times per load) rather than spin. A busy
        # loop took a CPU from the loads it races, even at SCHED_IDLE in the emulator (whose
        # CPUs share a host thread): the test took up to 184 s of its 300, 44-51 s with this.
        time.sleep(0.001)
        continue
    try:
        fcntl.ioctl(fd, 0x4C80, 30)
    except OSError:
        pass
    os.close(fd)
PY
racer=$!
for i in $(seq 1 20); do
	for bad in max_part=1000 max_loop=-1 hw_queue_depth=0; do
		if lt_load "$bad" 2>/dev/null; then
			lt_unload
			kill "$racer"
			lt_fail "loaded with $bad"
		fi
		if [ -e /sys/block/loop30 ] || [ -d /sys/module/loop ]; then
			kill "$racer"
			lt_fail "a failed load ($bad, round $i) left a device or the module behind"
		fi
		# rust_loop's debugfs directory (the next load could not create its own).
		if [ -e /sys/kernel/debug/rust_loop ]; then
			kill "$racer"
			lt_fail "a failed load ($bad, round $i) left /sys/kernel/debug/rust_loop behind"
		fi
	done
done
kill "$racer" 2>/dev/null || true
wait "$racer" 2>/dev/null || true
echo "$old_modprobe" >/proc/sys/kernel/modprobe
# shellcheck disable=SC2119
lt_load
exit 0
