#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The two drivers exclude each other: with the driver under test loaded, loading the other one
# fails with EBUSY (they share block major 7 and misc minor 237) and leaves the loaded one
# working; rust_loop says why in the kernel log.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 8M
if [ "$LT_DRIVER" = c ]; then
	out=$(insmod "$LT_REPO/rust_loop_mod.ko" 2>&1) && lt_fail "rust_loop loaded beside loop.ko"
	grep -q "Device or resource busy" <<<"$out" || lt_fail "insmod did not fail with EBUSY: $out"
	dmesg | tail -n 20 | grep -q "rust_loop_mod: /dev/loop-control (misc 10:237) is taken" ||
		lt_fail "no message explaining the failure"
	[ -d /sys/module/rust_loop_mod ] && lt_fail "rust_loop_mod half loaded"
else
	out=$(modprobe loop 2>&1) && lt_fail "loop.ko loaded beside rust_loop"
	[ -d /sys/module/loop ] && lt_fail "loop.ko half loaded"
fi
dev=$(lt_attach "$img")
lt_bound "$dev" || lt_fail "the loaded driver no longer works"
losetup -d "$dev"
exit 0
