#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_CHANGE_FD to a second open of the same file: both opens share one page-cache mapping, so
# the old file's gfp mask must be restored before the new one is masked. Otherwise the mapping
# is unmasked while bound (reclaim may recurse into I/O through the loop device) and stays
# masked forever after detach. rust_loop shows the masks in debugfs (rust_loop/loopN/state);
# loop.ko has nothing that shows them, so its column checks the data path only.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 8M
sum=$(lt_sum "$img")

# state DEV KEY: a line of rust_loop's debugfs state file, or "" for loop.ko.
state() {
	[ "$LT_DRIVER" = rust ] || return 0
	local f
	f=/sys/kernel/debug/rust_loop/$(basename "$1")/state
	[ -r "$f" ] || lt_fail "no $f"
	sed -n "s/^$2: //p" "$f"
}
[ "$LT_DRIVER" = rust ] && lt_debugfs

dev=$(lt_attach "$img" -r)
lt_eq "$(state "$dev" backing_gfp_io_fs)" "$( [ "$LT_DRIVER" = rust ] && echo 0)" \
	"backing mapping masked while bound"
lt_eq "$(state "$dev" saved_gfp_io_fs)" "$( [ "$LT_DRIVER" = rust ] && echo 1)" \
	"saved mask before LOOP_CHANGE_FD"
lt_expect "OK 0" change-fd "$dev" "$img" --file-ro
lt_eq "$(state "$dev" backing_gfp_io_fs)" "$( [ "$LT_DRIVER" = rust ] && echo 0)" \
	"backing mapping still masked after LOOP_CHANGE_FD to the same file"
lt_eq "$(state "$dev" saved_gfp_io_fs)" "$( [ "$LT_DRIVER" = rust ] && echo 1)" \
	"saved mask after LOOP_CHANGE_FD (the unmasked one)"
blockdev --flushbufs "$dev"
lt_eq "$(lt_sum "$dev")" "$sum" "content after LOOP_CHANGE_FD"
losetup -d "$dev"
udevadm settle

# After detach the mapping has its own mask again: a new binding saves an unmasked mask.
dev=$(lt_attach "$img" -r)
lt_eq "$(state "$dev" saved_gfp_io_fs)" "$( [ "$LT_DRIVER" = rust ] && echo 1)" \
	"mask restored after detach (seen by the next binding)"
lt_eq "$(lt_sum "$dev")" "$sum" "content after re-binding"
losetup -d "$dev"
exit 0
