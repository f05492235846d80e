#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Direct I/O eligibility as loop.c 7.2: the backing file must support O_DIRECT, the device's
# logical block size must be at least the file's DIO alignment and the offset aligned to it.
# Otherwise --direct-io=on at setup is silently dropped, while LOOP_SET_DIRECT_IO(1) is EINVAL.
# An O_DIRECT backing fd turns direct I/O on by itself; with it, the default block size follows
# the backing alignment. The file system under the backing file sits on a 4096-byte-sector
# scsi_debug disk, so its DIO alignment is 4096.
. "$(dirname "$0")/lib.sh"
lt_need mkfs.ext4

sd=$(lt_scsi_debug sector_size=4096 dev_size_mb=64)
lt_eq "$(cat "/sys/block/$(basename "$sd")/queue/logical_block_size")" 4096 "scsi_debug sector size"
mkfs.ext4 -q -F "$sd"
mkdir -p "$LT_WORK/fs"
mount "$sd" "$LT_WORK/fs"
img=$LT_WORK/fs/img
fallocate -l 16M "$img"

# Block size below the alignment: dropped at setup, EINVAL from LOOP_SET_DIRECT_IO.
dev=$(lt_attach "$img" --direct-io=on -b 512)
lt_eq "$(lt_sysfs "$dev" loop/dio)" 0 "dio with 512-byte blocks on a 4096-aligned file"
lt_expect "ERR EINVAL" set-dio "$dev" 1
lt_eq "$(lt_sysfs "$dev" loop/dio)" 0 "dio after the refused LOOP_SET_DIRECT_IO"
# Raising the block size makes it eligible.
lt_expect "OK 0" set-bs "$dev" 4096
lt_expect "OK 0" set-dio "$dev" 1
lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio after LOOP_SET_BLOCK_SIZE(4096)"
lt_expect "OK 0" set-dio "$dev" 0
losetup -d "$dev"
udevadm settle

# Misaligned offset.
dev=$(lt_attach "$img" --direct-io=on -b 4096 -o 512)
lt_eq "$(lt_sysfs "$dev" loop/dio)" 0 "dio with a 512-byte offset"
lt_expect "ERR EINVAL" set-dio "$dev" 1
losetup -d "$dev"
udevadm settle

# An O_DIRECT backing fd asks for direct I/O; the default block size is then the alignment.
dev=$(losetup -f)
lt_expect "OK 0" configure "$dev" "$img" --file-direct
lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio with an O_DIRECT fd"
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "default block size with direct I/O"
flags=$(lt_ioctl get-status64 "$dev" | tail -n 1 | jq .lo_flags)
lt_eq "$((flags & 16))" 16 "LO_FLAGS_DIRECT_IO in GET_STATUS64"
losetup -d "$dev"
udevadm settle

# LOOP_CONFIGURE with LO_FLAGS_DIRECT_IO and no block size: also the backing alignment.
dev=$(losetup -f)
lt_expect "OK 0" configure "$dev" "$img" --flags 16
lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio from LO_FLAGS_DIRECT_IO"
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "block size from LO_FLAGS_DIRECT_IO"
# LOOP_SET_STATUS64 ignores LO_FLAGS_DIRECT_IO either way.
lt_expect "OK 0" set-status64 "$dev"
lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio after SET_STATUS64 without the flag"
losetup -d "$dev"
udevadm settle
umount "$LT_WORK/fs"
exit 0
