#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A read-only binding rejects writes and leaves the file untouched; read-only is forced when the
# backing file or the loop device was opened read-only. With the block layer's flag cleared
# (BLKROSET 0, `blockdev --setrw`) the write still fails and the file is unchanged: the block
# layer refuses it (EPERM) for the disk-wide read-only state, before the driver sees a request;
# ro_02 reaches the driver's own check of the binding through a device-mapper table.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 8M
sum=$(lt_sum "$img")
dev=$(lt_attach "$img" -r)
lt_eq "$(lt_sysfs "$dev" ro)" 1 "ro with losetup -r"
lt_eq "$(losetup -l -n -O RO "$dev" | tr -d ' ')" 1 "losetup RO column"
if dd if=/dev/zero of="$dev" bs=4096 count=1 oflag=direct conv=notrunc status=none 2>/dev/null; then
	lt_fail "a write to a read-only loop device succeeded"
fi
blockdev --setrw "$dev" || lt_fail "BLKROSET 0 failed"
if out=$(dd if=/dev/zero of="$dev" bs=4096 count=1 oflag=direct conv=notrunc 2>&1); then
	lt_fail "a write after BLKROSET 0 to a read-only binding succeeded"
fi
lt_log "write after BLKROSET 0: $(grep -o 'error.*' <<<"$out" | head -n 1)"
flags=$(lt_ioctl get-status64 "$dev" | tail -n 1 | jq .lo_flags)
lt_eq "$((flags & 1))" 1 "LO_FLAGS_READ_ONLY in GET_STATUS64"
losetup -d "$dev"
udevadm settle
lt_eq "$(lt_sum "$img")" "$sum" "backing file after refused writes"

dev=$(losetup -f)
lt_expect "OK 0" configure "$dev" "$img" --file-ro
lt_eq "$(lt_sysfs "$dev" ro)" 1 "ro with a read-only backing fd"
losetup -d "$dev"
udevadm settle
dev=$(losetup -f)
lt_expect "OK 0" configure "$dev" "$img" --dev-ro
lt_eq "$(lt_sysfs "$dev" ro)" 1 "ro with a read-only open of the loop device"
losetup -d "$dev"
exit 0
