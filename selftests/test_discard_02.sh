#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# When the backing file system cannot do what a write-zeroes request asks (tmpfs has no
# FALLOC_FL_ZERO_RANGE), the request fails with EOPNOTSUPP and the device stops advertising
# write-zeroes, so the block layer logs the error once and falls back to writing zeros; the
# range reads back as zeros.
. "$(dirname "$0")/lib.sh"
lt_need blkdiscard

mkdir -p "$LT_WORK/tmpfs"
mount -t tmpfs -o size=64M tmpfs "$LT_WORK/tmpfs"
img=$LT_WORK/tmpfs/img
lt_file "$img" 16M
dev=$(lt_attach "$img")
q=/sys/block/${dev#/dev/}/queue
[ "$(cat "$q/write_zeroes_max_bytes")" -gt 0 ] || lt_fail "write-zeroes not advertised at bind"
before=$(dmesg | grep -c "operation not supported error, dev ${dev#/dev/}") || true
blkdiscard -z -o $((1 << 20)) -l $((2 << 20)) "$dev"
blkdiscard -z -o $((4 << 20)) -l $((2 << 20)) "$dev"
after=$(dmesg | grep -c "operation not supported error, dev ${dev#/dev/}") || true
lt_eq "$(cat "$q/write_zeroes_max_bytes")" 0 "write_zeroes_max_bytes after EOPNOTSUPP"
lt_eq "$((after - before))" 1 "'operation not supported' messages"
zero=$(head -c $((2 << 20)) /dev/zero | sha256sum | cut -d' ' -f1)
for off in 1 4; do
	got=$(dd if="$dev" bs=1M skip="$off" count=2 iflag=direct status=none | sha256sum | cut -d' ' -f1)
	lt_eq "$got" "$zero" "zeroed range at ${off} MiB"
done
losetup -d "$dev"
udevadm settle
umount "$LT_WORK/tmpfs"
exit 0
