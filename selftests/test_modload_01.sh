#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The driver loads and unloads 10 times (devices and /dev/loop-control come and go), cannot be
# unloaded while a device is bound or open, and unloads once it is not.
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
exit 0
