#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Stacked loop devices: loopB backed by loopA carries data through both (checksums, direct I/O
# on the upper one); a device as its own backing file is EBADF, an unbound loop device as the
# backing file EINVAL, a bound device EBUSY; LOOP_CLR_FD of the lower device is deferred until
# the upper one lets go of it.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 16M
a=$(lt_attach "$img")
b=$(lt_attach "$a" --direct-io=on)
lt_eq "$(lt_sum "$b")" "$(lt_sum "$img")" "content through two loop devices"
lt_file "$LT_WORK/w" 2M
dd if="$LT_WORK/w" of="$b" bs=1M seek=3 oflag=direct conv=notrunc,fsync status=none
losetup -d "$b"
udevadm settle
lt_eq "$(lt_sum "$img" $((2 << 20)) $((3 << 20)))" "$(lt_sum "$LT_WORK/w")" "write through two loop devices"

b=$(lt_attach "$a")
c=$(losetup -f)
lt_expect "ERR EBUSY" configure "$a" "$b"
lt_expect "ERR EBADF" configure "$c" "$c"
lt_expect "ERR EINVAL" configure "$c" /dev/loop7
lt_expect "OK 0" clr-fd "$a"
lt_bound "$a" || lt_fail "$a unbound while $b is stacked on it"
losetup -d "$b"
udevadm settle
lt_bound "$a" && lt_fail "$a still bound after the upper device went away"
exit 0
