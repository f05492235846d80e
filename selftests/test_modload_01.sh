#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The driver loads and unloads 10 times (devices and /dev/loop-control come and go), cannot be
# unloaded while a device is bound or open, and unloads once it is not; rust_loop cannot be
# unloaded while one of its debugfs files is open, and a device removed under an open one
# leaves it failing reads.
. "$(dirname "$0")/lib.sh"

for i in $(seq 1 10); do
	lt_unload || lt_fail "unload $i failed"
	[ -e /sys/block/loop0 ] && lt_fail "loop0 still there after unload $i"
	# shellcheck disable=SC2119
	lt_load || lt_fail "load $i failed"
	if [ ! -b /dev/loop0 ] || [ ! -c /dev/loop-control ]; then
		lt_fail "no devices after load $i"
	fi
done

lt_sparse "$LT_WORK/img" 8M
dev=$(lt_attach "$LT_WORK/img")
lt_unload 2>/dev/null && lt_fail "unloaded with $dev bound"
losetup -d "$dev"
udevadm settle
exec 3<"$dev"
lt_unload 2>/dev/null && lt_fail "unloaded with $dev open"
exec 3<&-
lt_unload || lt_fail "unload after close failed"
# shellcheck disable=SC2119
lt_load

# rust_loop's debugfs files (loop.ko has none): one held open keeps the module loaded, as an
# open /dev/loop-control does; a device removed meanwhile leaves its open file failing reads
# with EIO, then closing cleanly. The files once had no module owner: rmmod went ahead and
# the close ran in the freed module (an oops).
if [ "$LT_DRIVER" = rust ]; then
	lt_debugfs
	stats=/sys/kernel/debug/rust_loop/loop0/stats
	exec 3<"$stats"
	lt_unload 2>/dev/null && lt_fail "unloaded with $stats open"
	grep -q '^hw_queues ' <&3 || lt_fail "no hw_queues line in $stats"
	exec 3<&-
	lt_expect "OK 9" ctl-add 9
	exec 3<"/sys/kernel/debug/rust_loop/loop9/state"
	lt_expect "OK 0" ctl-remove 9
	[ -e /sys/kernel/debug/rust_loop/loop9 ] && lt_fail "loop9's debugfs directory left after removal"
	got=$(cat <&3 2>&1) && lt_fail "read of removed loop9's state succeeded: '$got'"
	[[ $got == *"Input/output error"* ]] || lt_fail "read of removed loop9's state: '$got', expected EIO"
	exec 3<&-
	lt_unload || lt_fail "unload after closing the debugfs files failed"
	lt_load
fi
exit 0
