#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Direct I/O over the other backing file systems loop images live on: XFS (on a scsi_debug disk) and
# tmpfs (which takes O_DIRECT since 6.6 and has no IOCB_NOWAIT: in rust_loop every command takes the
# blocking path). Per file system: loop/dio reads 1, fio crc32c verify through libaio at queue depth
# 16 on 2 jobs, no page of the XFS image in the page cache afterwards (the device ran direct), the
# device's contents equal the file's, and an ext4 made on the device and filled survives unmount and
# fsck.
. "$(dirname "$0")/lib.sh"
lt_need fio mkfs.xfs mkfs.ext4 fsck.ext4

# run_fs IMG WHAT: the checks above on the image IMG.
run_fs() {
	local img=$1 what=$2 dev
	lt_file "$img" 32M
	sync
	echo 1 >/proc/sys/vm/drop_caches
	dev=$(lt_attach "$img" --direct-io=on)
	lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio over $what"
	lt_fio_verify "$dev" 4k libaio 2 16 8M
	# tmpfs files live in the page cache; an XFS image must have none after direct I/O.
	[ "$what" = tmpfs ] ||
		lt_eq "$(lt_resident "$img")" 0 "image pages in the page cache after direct I/O ($what)"
	lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img")" "device and file contents over $what"
	lt_ext4_roundtrip "$dev" 8 "$what"
	losetup -d "$dev"
	udevadm settle
	lt_log "$what: verified, direct"
}

mkdir -p "$LT_WORK/tmpfs"
mount -t tmpfs -o size=64M tmpfs "$LT_WORK/tmpfs"
run_fs "$LT_WORK/tmpfs/img" tmpfs
umount "$LT_WORK/tmpfs"

# mkfs.xfs wants at least 300 MiB.
sd=$(lt_scsi_debug dev_size_mb=320)
mkfs.xfs -q -f "$sd"
mkdir -p "$LT_WORK/xfs"
mount "$sd" "$LT_WORK/xfs"
run_fs "$LT_WORK/xfs/img" XFS
umount "$LT_WORK/xfs"
exit 0
