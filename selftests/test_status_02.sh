#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_SET_STATUS64 flag rules (AUTOCLEAR settable and clearable, PARTSCAN settable only,
# READ_ONLY and DIRECT_IO ignored), encryption refused, EPERM without a writable open or
# CAP_SYS_ADMIN; the legacy LOOP_SET_STATUS / LOOP_GET_STATUS (no size limit, EINVAL for NULL).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 16M
dev=$(lt_attach "$img")
# Held open throughout, so that setting AUTOCLEAR does not unbind it at loopctl's close.
exec 3<"$dev"
lt_expect "OK 0" set-status64 "$dev" --flags 4 --name first
lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 1 "autoclear set"
lt_expect "OK 0" set-status64 "$dev" --flags 0
lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 0 "autoclear cleared"
lt_expect "OK 0" set-status64 "$dev" --flags $((1 | 16))
lt_eq "$(lt_sysfs "$dev" ro)" 0 "READ_ONLY ignored"
lt_eq "$(lt_sysfs "$dev" loop/dio)" 0 "DIRECT_IO ignored"
lt_expect "ERR EINVAL" set-status64 "$dev" --encrypt-type 1
lt_expect "ERR EINVAL" set-status64 "$dev" --key-size 64
out=$(setpriv --bounding-set=-sys_admin python3 "$LT_DIR/loopctl.py" set-status64 "$dev" --dev-ro)
lt_eq "$out" "ERR EPERM" "SET_STATUS64 read-only without CAP_SYS_ADMIN"
out=$(setpriv --bounding-set=-sys_admin python3 "$LT_DIR/loopctl.py" set-dio "$dev" 0 --dev-ro)
lt_eq "$out" "ERR EPERM" "SET_DIRECT_IO read-only without CAP_SYS_ADMIN"
out=$(setpriv --bounding-set=-sys_admin python3 "$LT_DIR/loopctl.py" set-bs "$dev" 512 --dev-ro)
lt_eq "$out" "ERR EPERM" "SET_BLOCK_SIZE read-only without CAP_SYS_ADMIN"
# GET_STATUS64 and CLR_FD need no write access.
out=$(setpriv --bounding-set=-sys_admin python3 "$LT_DIR/loopctl.py" get-status64 "$dev" --dev-ro | head -n 1)
lt_eq "$out" "OK 0" "GET_STATUS64 read-only without CAP_SYS_ADMIN"

# Legacy status: the offset travels, the size limit is forced to 0.
lt_expect "OK 0" set-status64 "$dev" --sizelimit $((4 << 20))
lt_expect "OK 0" set-status "$dev" --offset 4096 --name legacy
lt_eq "$(lt_sysfs "$dev" loop/sizelimit)" 0 "size limit after legacy SET_STATUS"
lt_eq "$(lt_sysfs "$dev" loop/offset)" 4096 "offset after legacy SET_STATUS"
out=$(lt_ioctl get-status "$dev")
lt_eq "$(head -n 1 <<<"$out")" "OK 0" "legacy GET_STATUS"
lt_eq "$(tail -n 1 <<<"$out" | jq .lo_offset)" 4096 "legacy lo_offset"
lt_eq "$(tail -n 1 <<<"$out" | jq -r .lo_name)" legacy "legacy lo_name"
lt_eq "$(tail -n 1 <<<"$out" | jq .lo_inode)" "$(stat -c %i "$img")" "legacy lo_inode"
lt_expect "ERR EINVAL" get-status "$dev" --null
exec 3<&-
losetup -d "$dev"
udevadm settle
lt_expect "ERR ENXIO" get-status "$dev"
lt_expect "ERR ENXIO" set-status "$dev"
exit 0
