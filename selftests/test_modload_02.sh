#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# One loop driver at a time: both are modules named `loop`. With loop.ko loaded, inserting
# rust_loop fails (the module loader has a `loop` already: EEXIST) and leaves loop.ko working;
# with rust_loop loaded, `modprobe loop` leaves it loaded as it is. Which driver is loaded is
# always visible: rust_loop's /sys/module/loop/version names it, and it says so at load, after
# loop.c's own load message ("loop: module loaded").
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 8M
if [ "$LT_DRIVER" = c ]; then
	out=$(insmod "$LT_REPO/loop.ko" 2>&1) && lt_fail "rust_loop loaded beside loop.ko"
	grep -q "File exists" <<<"$out" || lt_fail "insmod did not fail with EEXIST: $out"
	[ -e /sys/module/loop/version ] && lt_fail "loop.ko has a version file: $(cat /sys/module/loop/version)"
else
	modprobe loop || lt_fail "modprobe loop with rust_loop loaded failed"
	lt_eq "$(lt_loaded_driver)" rust "the driver after modprobe loop"
	grep -q rust_loop /sys/module/loop/version || lt_fail "no rust_loop in /sys/module/loop/version"
fi
lt_unload || lt_fail "unload"
# Only what the kernel logs from here on (the KUnit suites log after the message). Not
# `dmesg | grep -q` under pipefail: grep's early exit can kill the writer with SIGPIPE.
before=$(dmesg | wc -l)
lt_load || lt_fail "load"
since=$(dmesg | tail -n +$((before + 1)))
# loop.c's load message, which scripts may look for; rust_loop's goes on to name itself.
grep -q "loop: module loaded" <<<"$since" ||
	lt_fail "no 'loop: module loaded' in the $(wc -l <<<"$since") lines logged since the load: ${since:0:800}"
if [ "$LT_DRIVER" = rust ]; then
	grep -q "loop: module loaded (rust_loop [0-9.]*" <<<"$since" ||
		lt_fail "no load message naming rust_loop in the $(wc -l <<<"$since") lines logged since the load: ${since:0:800}"
fi
dev=$(lt_attach "$img")
lt_bound "$dev" || lt_fail "the loaded driver no longer works"
losetup -d "$dev"
exit 0
