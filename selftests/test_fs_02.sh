#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# What people put on loop devices, over a window of the file (offset 0 and 1 MiB) with direct
# I/O off and on: discard, write-zeroes and fallocate on the device (the backing file's bytes
# there by checksum, its allocated blocks), swap, XFS, vfat and ext4 (mounted, written with
# fsync, fstrim, unmounted, fsck clean), a partition table on the device with ext4 on a
# partition, a device-mapper table over it, and the last block of a size-limited window. Each
# outcome is printed; the output must equal loop.ko 7.2's (fs_02.out, taken from loop.ko's run).
# This matrix (offset x direct I/O x users) is where rust_loop's flushes of a device with an
# offset failed, unnoticed by tests that used offset 0 or never flushed (see mount_02).
. "$(dirname "$0")/lib.sh"
lt_need mkfs.xfs xfs_repair mkfs.vfat fsck.vfat mkfs.ext4 e2fsck mkswap swapon swapoff \
	blkdiscard fallocate fstrim sfdisk dmsetup blockdev python3
modprobe dm-mod 2>/dev/null || true

img=$LT_WORK/img
mnt=$LT_WORK/mnt
out=$LT_WORK/out
dm=lt_fs_02
mkdir -p "$mnt"
: >"$out"
lt_dm_on_exit "$dm"
lt_on_exit --first "swapoff -a 2>/dev/null; true"
say() { echo "$*" >>"$out"; }
# The same pseudo-random 64 MiB every time (the checksums are compared), in a 400 MiB file (XFS
# needs 300 MiB).
python3 - "$LT_WORK/pattern" <<'EOF'
import random, sys
r = random.Random(7)
open(sys.argv[1], "wb").write(r.randbytes(1 << 20))
EOF

for off in 0 1048576; do
	for dio in off on; do
		tag="offset=$off dio=$dio:"
		rm -f "$img"
		truncate -s $((400 << 20)) "$img"
		for _ in $(seq 0 63); do cat "$LT_WORK/pattern"; done | dd of="$img" conv=notrunc status=none
		dev=$(losetup -f --show -o "$off" --direct-io="$dio" "$img")
		udevadm settle

		# The device's own discard, write-zeroes and fallocate: what reaches the backing file.
		rc=0
		# (Each step's status is printed; a failing step does not stop the test.)
		blkdiscard -o $((4 << 20)) -l $((1 << 20)) "$dev" || rc=$?
		say "$tag blkdiscard rc=$rc bytes=$(lt_sum "$img" $((1 << 20)) $((off + (4 << 20)))) blocks=$(stat -c %b "$img")"
		rc=0
		blkdiscard -z -o $((8 << 20)) -l $((1 << 20)) "$dev" || rc=$?
		say "$tag blkdiscard -z rc=$rc bytes=$(lt_sum "$img" $((1 << 20)) $((off + (8 << 20))))"
		rc=0
		fallocate -p -o $((12 << 20)) -l 65536 "$dev" 2>/dev/null || rc=$?
		say "$tag fallocate -p rc=$rc bytes=$(lt_sum "$img" 65536 $((off + (12 << 20))))"
		rc=0
		fallocate -z -o $((13 << 20)) -l 65536 "$dev" 2>/dev/null || rc=$?
		say "$tag fallocate -z rc=$rc bytes=$(lt_sum "$img" 65536 $((off + (13 << 20))))"
		rc=0
		blockdev --flushbufs "$dev" || rc=$?
		say "$tag BLKFLSBUF rc=$rc"

		# Swap.
		mk=0 on=0 offrc=0
		mkswap -q "$dev" >/dev/null 2>&1 || mk=$?
		swapon "$dev" 2>/dev/null || on=$?
		swapoff "$dev" 2>/dev/null || offrc=$?
		say "$tag mkswap rc=$mk swapon rc=$on swapoff rc=$offrc"

		# File systems: mount, write with fsync, fstrim, unmount, fsck.
		for fs in xfs vfat ext4; do
			k=0 m=0 w=0 t=0 u=0 c=0
			case $fs in
			xfs) mkfs.xfs -q -f "$dev" >/dev/null 2>&1 || k=$? ;;
			vfat) mkfs.vfat "$dev" >/dev/null 2>&1 || k=$? ;;
			ext4) mkfs.ext4 -q -F "$dev" >/dev/null 2>&1 || k=$? ;;
			esac
			mount "$dev" "$mnt" 2>/dev/null || m=$?
			if [ "$m" = 0 ]; then
				dd if="$LT_WORK/pattern" of="$mnt/f" bs=64k conv=fsync status=none 2>/dev/null || w=$?
				fstrim "$mnt" 2>/dev/null || t=$?
				umount "$mnt" || u=$?
			fi
			case $fs in
			xfs) xfs_repair -n "$dev" >/dev/null 2>&1 || c=$? ;;
			vfat) fsck.vfat -n "$dev" >/dev/null 2>&1 || c=$? ;;
			ext4) e2fsck -fn "$dev" >/dev/null 2>&1 || c=$? ;;
			esac
			say "$tag $fs mkfs rc=$k mount rc=$m write+fsync rc=$w fstrim rc=$t umount rc=$u fsck rc=$c"
		done
		losetup -d "$dev"
		udevadm settle

		# A partition table on the device, ext4 on its second partition.
		dev=$(losetup -f --show -P -o "$off" --direct-io="$dio" "$img")
		udevadm settle
		rc=0
		printf 'label: dos\n1M,8M,L\n,16M,L\n' | sfdisk -q "$dev" >/dev/null 2>&1 || rc=$?
		udevadm settle
		say "$tag sfdisk rc=$rc partitions=$(find /dev -maxdepth 1 -name "${dev#/dev/}p*" | wc -l)"
		rc=0
		{ mkfs.ext4 -q -F "${dev}p2" >/dev/null 2>&1 && mount "${dev}p2" "$mnt" 2>/dev/null &&
			dd if="$LT_WORK/pattern" of="$mnt/f" bs=64k conv=fsync status=none 2>/dev/null &&
			umount "$mnt" && e2fsck -fn "${dev}p2" >/dev/null 2>&1; } || rc=$?
		say "$tag ext4 on partition 2 rc=$rc"

		# A device-mapper table over the device.
		rc=0
		echo "0 $(blockdev --getsz "$dev") linear $dev 0" | dmsetup create "$dm" 2>/dev/null || rc=$?
		udevadm settle
		w=0
		[ "$rc" != 0 ] || dd if="$LT_WORK/pattern" of="/dev/mapper/$dm" bs=4k count=4 seek=100 \
			conv=fsync,notrunc status=none || w=$?
		udevadm settle
		dmsetup remove --retry "$dm" || rc=$?
		say "$tag dm-linear create/remove rc=$rc write+fsync rc=$w"
		udevadm settle
		losetup -d "$dev"
		udevadm settle

		# The last block of a window with a size limit, and the one past it.
		dev=$(losetup -f --show -o "$off" --sizelimit $((3 << 20)) --direct-io="$dio" "$img")
		a=0 b=0
		dd if="$LT_WORK/pattern" of="$dev" bs=4k count=1 seek=767 conv=fsync,notrunc status=none || a=$?
		dd if="$LT_WORK/pattern" of="$dev" bs=4k count=1 seek=768 conv=fsync,notrunc status=none 2>/dev/null || b=$?
		say "$tag last block rc=$a past the end rc=$b bytes=$(lt_sum "$img" 4096 $((off + (3 << 20) - 4096)))"
		losetup -d "$dev"
		udevadm settle
	done
done
lt_same_as_expected "$LT_DIR/fs_02.out" "$out" /dev/null "the record of outcomes"
exit 0
