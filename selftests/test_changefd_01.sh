#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_CHANGE_FD swaps the backing file of a read-only device for one of the same size (reads
# then come from the new file); EINVAL on a writable device or a different size, ENXIO when
# unbound, EBADF for a bad fd.
. "$(dirname "$0")/lib.sh"

lt_file "$LT_WORK/a" 8M
lt_file "$LT_WORK/b" 8M
lt_file "$LT_WORK/c" 4M
dev=$(losetup -f)
lt_expect "ERR ENXIO" change-fd "$dev" "$LT_WORK/b"
losetup "$dev" "$LT_WORK/a"
lt_expect "ERR EINVAL" change-fd "$dev" "$LT_WORK/b"
losetup -d "$dev"
udevadm settle

losetup -r "$dev" "$LT_WORK/a"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$LT_WORK/a")" "content before LOOP_CHANGE_FD"
lt_expect "ERR EINVAL" change-fd "$dev" "$LT_WORK/c"
lt_expect "ERR EBADF" change-fd "$dev" --fd 999
lt_expect "OK 0" change-fd "$dev" "$LT_WORK/b" --file-ro
lt_eq "$(lt_sysfs "$dev" loop/backing_file)" "$LT_WORK/b" "backing_file after LOOP_CHANGE_FD"
blockdev --flushbufs "$dev"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$LT_WORK/b")" "content after LOOP_CHANGE_FD"
lt_eq "$(lt_sysfs "$dev" ro)" 1 "still read-only"
losetup -d "$dev"
exit 0
