#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Windows loop.c's size arithmetic must get right: an offset that is not a multiple of 512
# (1000) with a sizelimit that is not either (10000) gives a device of whole sectors (9728 bytes)
# whose reads and writes land at exactly file[1000, 10728), the bytes around it untouched; a
# sizelimit beyond the end of the file is capped by the file; an offset beyond it gives a device
# of size 0. Then positions a 32-bit or sector-count overflow would break, on sparse files, with
# direct I/O on and off: a write at device offset 5 GiB, a write through an offset of 4 GiB + 512,
# a write at device offset 2 TiB + 1 MiB of a 3 TiB file and one through an offset of 2 TiB each
# land at the file position they must (checksums of the file there).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 1M
before=$(lt_sum "$img" 1000)
after=$(lt_sum "$img" $((1048576 - 10728)) 10728)

dev=$(lt_attach "$img" -o 1000 --sizelimit 10000)
lt_eq "$(blockdev --getsize64 "$dev")" 9728 "size of the window offset 1000, sizelimit 10000"
lt_eq "$(lt_sysfs "$dev" loop/offset)" 1000 "loop/offset"
lt_eq "$(lt_sysfs "$dev" loop/sizelimit)" 10000 "loop/sizelimit"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img" 9728 1000)" "device reads file[1000, 10728)"
dd if=/dev/urandom of="$LT_WORK/new" bs=9728 count=1 status=none
dd if="$LT_WORK/new" of="$dev" bs=512 oflag=direct status=none
losetup -d "$dev"
udevadm settle
lt_eq "$(lt_sum "$img" 9728 1000)" "$(lt_sum "$LT_WORK/new")" "written window in the file"
lt_eq "$(lt_sum "$img" 1000)" "$before" "the 1000 bytes before the window"
lt_eq "$(lt_sum "$img" $((1048576 - 10728)) 10728)" "$after" "the bytes after the window"

dev=$(lt_attach "$img" -o 1000 --sizelimit 2M)
lt_eq "$(blockdev --getsize64 "$dev")" $(((1048576 - 1000) / 512 * 512)) \
	"size with a sizelimit beyond the end of the file"
losetup -d "$dev"
udevadm settle
dev=$(lt_attach "$img" -o 2M)
lt_eq "$(blockdev --getsize64 "$dev")" 0 "size with an offset beyond the end of the file"
losetup -d "$dev"
udevadm settle

# write_at FILE FILE_SIZE DIO OFFSET DEVPOS: bind FILE (sparse, FILE_SIZE) at OFFSET, write 1 MiB
# of random data at device byte DEVPOS, and check that it is at file byte OFFSET + DEVPOS.
write_at() {
	local file=$1 size=$2 dio=$3 off=$4 pos=$5 dev
	rm -f "$file"
	lt_sparse "$file" "$size"
	dev=$(lt_attach "$file" --direct-io="$dio" -o "$off")
	lt_dio_is "$dev" "$dio" "loop/dio"
	lt_eq "$(blockdev --getsize64 "$dev")" $(((size - off) / 512 * 512)) "size at offset $off"
	dd if=/dev/urandom of="$LT_WORK/mib" bs=1M count=1 status=none
	dd if="$LT_WORK/mib" of="$dev" bs=1M seek="$pos" oflag=seek_bytes,direct conv=notrunc \
		status=none
	losetup -d "$dev"
	udevadm settle
	lt_eq "$(lt_sum "$file" 1048576 $((off + pos)))" "$(lt_sum "$LT_WORK/mib")" \
		"1 MiB written at device byte $pos with offset $off (dio $dio)"
	# Nothing else was written: the file's only data is that MiB.
	local kib
	kib=$(du -k "$file" | cut -f1)
	{ [ "$kib" -ge 1024 ] && [ "$kib" -le 1032 ]; } ||
		lt_fail "$kib KiB allocated in the file after a 1 MiB write (dio $dio)"
}

GiB=$((1 << 30))
TiB=$((1 << 40))
for dio in on off; do
	write_at "$LT_WORK/big" $((6 * GiB)) "$dio" 0 $((5 * GiB))
	write_at "$LT_WORK/big" $((6 * GiB)) "$dio" $((4 * GiB + 512)) 0
	write_at "$LT_WORK/big" $((3 * TiB)) "$dio" 0 $((2 * TiB + (1 << 20)))
	write_at "$LT_WORK/big" $((3 * TiB)) "$dio" $((2 * TiB)) $((512 * GiB))
	lt_log "dio $dio: writes above 4 GiB and 2 TiB landed where they must"
done
exit 0
