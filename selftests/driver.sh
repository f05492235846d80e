# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Which loop driver is loaded, for both the runner (run.sh) and the tests (lib.sh). Both drivers
# are modules named `loop`; rust_loop says so in /sys/module/loop/version (loop.ko has no
# version file).
#
# And where rust_loop's own files are (debugfs: its engine state, its KUnit results).

# lt_debugfs: mounts debugfs on /sys/kernel/debug unless it is there.
lt_debugfs() { mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; }

# lt_loaded_driver: "c" or "rust", whichever is loaded as `loop`, or nothing. `read`, not grep:
# the harness asks this several times per test, and each program started costs about 50 ms
# under TCG.
lt_loaded_driver() {
	[ -d /sys/module/loop ] || return 0
	local v=""
	read -r v 2>/dev/null </sys/module/loop/version || true
	if [[ "$v" == *rust_loop* ]]; then echo rust; else echo c; fi
}
