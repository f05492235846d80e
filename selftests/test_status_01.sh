#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# An unbound device answers ENXIO (GET_STATUS64, SET_STATUS64, CLR_FD, SET_CAPACITY,
# SET_DIRECT_IO, SET_BLOCK_SIZE); a bound one reports its number, offset, size limit, flags,
# file name and the backing file's device and inode in LOOP_GET_STATUS64.
. "$(dirname "$0")/lib.sh"

dev=$(losetup -f)
lt_bound "$dev" && lt_fail "losetup -f gave a bound device"
lt_expect "ERR ENXIO" get-status64 "$dev"
lt_expect "ERR ENXIO" set-status64 "$dev"
lt_expect "ERR ENXIO" clr-fd "$dev"
lt_expect "ERR ENXIO" set-capacity "$dev"
lt_expect "ERR ENXIO" set-dio "$dev" 1
lt_expect "ERR ENXIO" set-bs "$dev" 4096

img=$LT_WORK/img
lt_sparse "$img" 16M
lt_expect "OK 0" configure "$dev" "$img" --offset 4096 --sizelimit 1048576 --name test-name
num=${dev#/dev/loop}
out=$(lt_ioctl get-status64 "$dev")
lt_eq "$(head -n 1 <<<"$out")" "OK 0" "GET_STATUS64 on a bound device"
json=$(tail -n 1 <<<"$out")
lt_eq "$(jq .lo_number <<<"$json")" "$num" lo_number
lt_eq "$(jq .lo_offset <<<"$json")" 4096 lo_offset
lt_eq "$(jq .lo_sizelimit <<<"$json")" 1048576 lo_sizelimit
lt_eq "$(jq .lo_flags <<<"$json")" 0 lo_flags
lt_eq "$(jq -r .lo_file_name <<<"$json")" test-name lo_file_name
lt_eq "$(jq .lo_inode <<<"$json")" "$(stat -c %i "$img")" lo_inode
lt_eq "$(jq .lo_device <<<"$json")" "$(stat -c %d "$img")" lo_device
lt_eq "$(jq .lo_rdevice <<<"$json")" 0 lo_rdevice
lt_eq "$(lt_sysfs "$dev" size)" 2048 "size with offset and size limit"
lt_expect "ERR EINVAL" get-status64 "$dev" --null
lt_expect "OK 0" clr-fd "$dev"
udevadm settle
lt_bound "$dev" && lt_fail "still bound after LOOP_CLR_FD"
exit 0
