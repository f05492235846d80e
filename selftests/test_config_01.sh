#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_CONFIGURE rejects bad input with loop.c's errnos and leaves the device unbound: unknown
# flags, encryption, oversized key, offset beyond LLONG_MAX, bad block size, bad fd, the device
# itself as its backing file, a directory; a failure on the queue limits leaves `ro` and the disk
# sequence number as loop.c does.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 8M
dev=$(losetup -f)
lt_expect "ERR EINVAL" configure "$dev" "$img" --flags 0x2
lt_expect "ERR EINVAL" configure "$dev" "$img" --flags 0x20
lt_expect "ERR EINVAL" configure "$dev" "$img" --encrypt-type 1
lt_expect "ERR EINVAL" configure "$dev" "$img" --encrypt-type 18
lt_expect "ERR EINVAL" configure "$dev" "$img" --encrypt-type 7
lt_expect "ERR EINVAL" configure "$dev" "$img" --key-size 33
lt_expect "ERR EOVERFLOW" configure "$dev" "$img" --offset 0x8000000000000000
lt_expect "ERR EOVERFLOW" configure "$dev" "$img" --sizelimit 0x8000000000000000
lt_expect "ERR EINVAL" configure "$dev" "$img" --bs 1000
lt_expect "ERR EINVAL" configure "$dev" "$img" --bs 8192
# A failure on the queue limits comes after the forced media change and the read-only setting:
# the disk sequence number has moved on and `ro` is as the failed call asked, as in loop.c.
seq=$(lt_sysfs "$dev" diskseq)
lt_expect "ERR EINVAL" configure "$dev" "$img" --flags 0x1 --bs 1000
lt_eq "$(lt_sysfs "$dev" ro)" 1 "ro after a read-only LOOP_CONFIGURE that failed on its limits"
lt_eq "$(($(lt_sysfs "$dev" diskseq) - seq))" 1 "diskseq steps of a LOOP_CONFIGURE that failed on its limits"
lt_expect "ERR EBADF" configure "$dev" --fd 999
lt_expect "ERR EBADF" set-fd "$dev" --fd 999
lt_expect "ERR EBADF" configure "$dev" "$dev"
mkdir -p "$LT_WORK/dir"
lt_expect "ERR EINVAL" configure "$dev" "$LT_WORK/dir" --file-ro
lt_bound "$dev" && lt_fail "bound after failed configures"
lt_expect "OK 0" configure "$dev" "$img" --bs 4096
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "block size from LOOP_CONFIGURE"
lt_eq "$(lt_sysfs "$dev" ro)" 0 "ro after a read-write LOOP_CONFIGURE"
losetup -d "$dev"
exit 0
