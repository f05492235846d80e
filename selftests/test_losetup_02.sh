#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# What util-linux prints is the same for both drivers: losetup -a, -j, --list --json with all
# columns, for devices with offset, size limit, read-only, direct I/O and partscan. The loop.ko
# run records the output (paths and inode numbers normalised), the rust_loop run compares.
. "$(dirname "$0")/lib.sh"

lt_sparse "$LT_WORK/a" 16M
lt_sparse "$LT_WORK/b" 16M
lt_sparse "$LT_WORK/c" 16M
losetup /dev/loop0 "$LT_WORK/a" -o 4096 --sizelimit $((8 << 20))
losetup /dev/loop1 "$LT_WORK/b" -r --direct-io=on
losetup /dev/loop2 "$LT_WORK/c" -P -b 4096
udevadm settle
out=$LT_WORK/out
{
	losetup -a
	losetup -j "$LT_WORK/b"
	losetup --list --json -O NAME,AUTOCLEAR,BACK-FILE,BACK-INO,BACK-MAJ:MIN,MAJ:MIN,OFFSET,PARTSCAN,REF,RO,SIZELIMIT,DIO,LOG-SEC
	lsblk -n -o NAME,MAJ:MIN,SIZE,RO,TYPE /dev/loop0 /dev/loop1 /dev/loop2
} >"$out"
for f in a b c; do
	sed -i "s|$LT_WORK/$f|WORK/$f|g; s|\b$(stat -c %i "$LT_WORK/$f")\b|INODE_$f|g" "$out"
done
losetup -D
lt_same_as_c losetup_02 "$out" "losetup output"
exit 0
