#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_CONFIGURE rejects bad input with loop.c's errnos and leaves the device unbound: unknown
# flags, encryption, oversized key, offset beyond LLONG_MAX, bad block size, bad fd, the device
# itself as its backing file, a directory.
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
lt_expect "ERR EBADF" configure "$dev" --fd 999
lt_expect "ERR EBADF" set-fd "$dev" --fd 999
lt_expect "ERR EBADF" configure "$dev" "$dev"
mkdir -p "$LT_WORK/dir"
lt_expect "ERR EINVAL" configure "$dev" "$LT_WORK/dir" --file-ro
lt_bound "$dev" && lt_fail "bound after failed configures"
lt_expect "OK 0" configure "$dev" "$img" --bs 4096
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "block size from LOOP_CONFIGURE"
losetup -d "$dev"
exit 0
