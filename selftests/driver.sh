# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Which loop driver is loaded, for both the runner (run.sh) and the tests (lib.sh). Both drivers
# are modules named `loop`; rust_loop says so in /sys/module/loop/version (loop.ko has no
# version file).

# lt_loaded_driver: "c" or "rust", whichever is loaded as `loop`, or nothing. `read`, not grep:
# the harness asks this several times per test, and each program started costs about 50 ms
# under TCG.
lt_loaded_driver() {
	[ -d /sys/module/loop ] || return 0
	local v=""
	read -r v 2>/dev/null </sys/module/loop/version || true
	if [[ "$v" == *rust_loop* ]]; then echo rust; else echo c; fi
}
