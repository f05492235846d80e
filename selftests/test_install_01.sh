#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make install` makes rust_loop the loop driver of the system: installed into the guest's module
# tree (/lib/modules/<release>/updates, then depmod), with nothing loaded,
# - `modprobe loop` (and systemd's `modprobe -abq loop`) loads rust_loop: /sys/module/loop says
#   so, its parameters are in /sys/module/loop/parameters, and `options loop ...` in modprobe.d
#   reaches it (max_part rounded as loop.c rounds it);
# - the block-layer test suite's driver check (/sys/module/loop, or `modprobe -qn loop`) passes;
# - `losetup -f` autoloads it through /dev/loop-control (char-major-10-237, devname alias);
# - modinfo shows loop.ko's aliases, license and parameters (with their types);
# - `modprobe -r loop` unloads it; `make uninstall` makes `modprobe loop` load the C driver.
# The module tree and modprobe.d are restored afterwards. rust_loop only: it installs rust_loop.
. "$(dirname "$0")/lib.sh"
lt_need depmod modinfo kmod

[ "$LT_DRIVER" = rust ] || lt_skip "installs rust_loop (see the rust_loop column)"
rel=$(uname -r)
mods=/lib/modules/$rel
conf=/etc/modprobe.d/rust-loop-selftest.conf
img=$LT_WORK/img
lt_sparse "$img" 8M
lt_unload || lt_fail "unload"

# shellcheck disable=SC2317 # the EXIT trap
restore() {
	rm -f "$conf"
	modprobe -r loop 2>/dev/null || true
	# udev's workers may still be loading modules for the devices that came and went; a lazy
	# unmount then detaches the copy at once (the runner deletes it after the test).
	udevadm settle
	if mountpoint -q "$mods"; then
		umount "$mods" 2>/dev/null || umount -l "$mods"
	fi
	lt_load
	lt_cleanup
}
trap restore EXIT
# The guest's module tree is read-only (the host's, shared): work on a copy.
cp -a "$(realpath "$mods")" "$LT_WORK/mods"
mount --bind "$LT_WORK/mods" "$mods"

"$LT_REPO/scripts/install" >/dev/null 2>&1 || lt_fail "scripts/install failed"
lt_eq "$(modinfo -n loop)" "$mods/updates/loop.ko" "modinfo -n loop after install"
# What modinfo tells of it is loop.ko's: aliases, license, parameters with their descriptions
# and types (` (int)` for max_part alone: loop.c declares the others with callbacks), but for
# rust_loop's own nr_hw_queues (and its description and version, which name it).
for field in alias license parm; do
	lt_eq "$(modinfo -F "$field" loop | grep -v '^nr_hw_queues:' | sort)" \
		"$(modinfo -F "$field" "$mods/kernel/drivers/block/loop.ko" | sort)" \
		"modinfo -F $field loop, as loop.ko's"
done
nodes=$(kmod static-nodes)
grep -q "loop-control" <<<"$nodes" || lt_fail "kmod static-nodes has no /dev/loop-control: $nodes"

modprobe loop || lt_fail "modprobe loop"
lt_eq "$(lt_loaded_driver)" rust "driver loaded by modprobe loop"
lt_eq "$(cat /sys/module/loop/parameters/max_loop)" 8 "max_loop in sysfs"
lt_eq "$(cat /sys/module/loop/parameters/hw_queue_depth)" 128 "hw_queue_depth in sysfs"
udevadm settle
modprobe -r loop || lt_fail "modprobe -r loop"
[ -d /sys/module/loop ] && lt_fail "loop still loaded after modprobe -r"

echo "options loop max_loop=3 max_part=5" >"$conf"
modprobe -abq loop || lt_fail "modprobe -abq loop (modprobe@loop.service)"
lt_eq "$(lt_loaded_driver)" rust "driver loaded by modprobe -abq loop"
lt_eq "$(cat /sys/module/loop/parameters/max_loop)" 3 "max_loop from modprobe.d"
lt_eq "$(cat /sys/module/loop/parameters/max_part)" 7 "max_part 5 rounded to 7, as loop.c"
udevadm settle
lt_eq "$(find /sys/block -maxdepth 1 -name 'loop*' | wc -l)" 3 "devices created with max_loop=3"
modprobe -r loop || lt_fail "modprobe -r loop"
rm -f "$conf"

# blktests' _have_driver loop: the module is there or can be loaded.
modprobe -qn loop || lt_fail "modprobe -qn loop (the block-layer suite's driver check)"
modprobe -q loop || lt_fail "modprobe -q loop"
lt_eq "$(lt_loaded_driver)" rust "driver loaded for the block-layer suite"
udevadm settle
modprobe -r loop || lt_fail "modprobe -r loop (block-layer suite)"

# Autoloading: the static /dev/loop-control node systemd-tmpfiles makes from modules.devname.
[ -c /dev/loop-control ] || mknod /dev/loop-control c 10 237
dev=$(losetup -f --show "$img") || lt_fail "losetup -f with no driver loaded"
lt_eq "$(lt_loaded_driver)" rust "driver autoloaded by losetup -f"
losetup -d "$dev"
udevadm settle
modprobe -r loop || lt_fail "modprobe -r loop after autoload"

"$LT_REPO/scripts/install" --uninstall >/dev/null 2>&1 || lt_fail "scripts/install --uninstall"
lt_eq "$(modinfo -n loop)" "$mods/kernel/drivers/block/loop.ko" "modinfo -n loop after uninstall"
modprobe loop || lt_fail "modprobe loop after uninstall"
lt_eq "$(lt_loaded_driver)" c "driver loaded by modprobe loop after uninstall"
udevadm settle
modprobe -r loop || lt_fail "modprobe -r loop after uninstall"
exit 0
