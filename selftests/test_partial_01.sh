#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A buffered read whose first part is in the backing file's page cache and whose rest is not,
# through a device bound at an offset that is not a multiple of 512 (1000), direct I/O off: the
# device returns the file's bytes from the offset on, as on loop.ko. In rust_loop, the
# non-blocking attempt copies what is cached (3096 bytes: the rest of the file's first page,
# not a whole sector) and stops at the first page it would have to wait for; the blocking path
# then continues from there, in the file and in the request's data (eagain_fallbacks). The image
# is on ext4 on a scsi_debug disk that takes 50 jiffies (200 ms) per command while the reads
# run, so the pages the attempt starts reading ahead cannot be there before it stops; which pages
# of the image are cached before each read is set without read-ahead and checked (mincore).
# Three reads: from the device's start with the file's first page cached, ending at the device's
# end with the first 8 KiB cached, and from 1 MiB with the first 12 KiB cached.
. "$(dirname "$0")/lib.sh"
lt_need mkfs.ext4

fs=$LT_WORK/fs
img=$fs/img
off=1000
sd=$(lt_scsi_debug dev_size_mb=32)
mkfs.ext4 -q -F "$sd"
mkdir -p "$fs"
mount "$sd" "$fs"
lt_file "$img" 4M

# cache_only FROM LEN: of the image, exactly the pages of its bytes FROM..FROM+LEN are in the page
# cache: all dropped, those read without read-ahead (POSIX_FADV_RANDOM on this descriptor), the
# rest dropped again; then as many pages are resident (lt_resident) as were read. Retried while
# pages under earlier read-ahead cannot be dropped yet.
# shellcheck disable=SC2317 # called through lt_wait
cache_only() {
	python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
start, length = int(sys.argv[2]), int(sys.argv[3])
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
os.pread(fd, length, start)
if start:
    os.posix_fadvise(fd, 0, start, os.POSIX_FADV_DONTNEED)
os.posix_fadvise(fd, start + length, 0, os.POSIX_FADV_DONTNEED)
' "$img" "$1" "$2"
	[ "$(lt_resident "$img")" = $((($1 + $2 - 1) / 4096 - $1 / 4096 + 1)) ]
}

dev=$(lt_attach "$img" --offset "$off" --direct-io=off)
lt_dio_is "$dev" off "loop/dio"
size=$(blockdev --getsize64 "$dev")
lt_eq "$size" $((4194304 - off - (4194304 - off) % 512)) "the device's size at offset $off"
lt_udev_hold
# (Waits out ext4's lazy init, whose commands make scsi_debug refuse the change.)
lt_scsi_debug_delay 50
# read_at WHAT START LEN CACHED_FROM CACHED_LEN: a direct read of LEN bytes from START of the
# device, with only the image's bytes CACHED_FROM.. (+CACHED_LEN) cached, gives the file's data.
read_at() {
	local what=$1 start=$2 len=$3 e0=0 got
	lt_wait 60 cache_only "$4" "$5" || lt_fail "$what: the image's page cache not as wanted within 60 s"
	[ "$LT_DRIVER" = rust ] && e0=$(lt_engine_stat "$dev" eagain_fallbacks)
	got=$(dd if="$dev" bs="$len" count=1 skip="$start" iflag=direct,skip_bytes status=none | sha256sum | cut -d' ' -f1)
	lt_eq "$got" "$(lt_sum "$img" "$len" $((start + off)))" "$what"
	if [ "$LT_DRIVER" = rust ]; then
		[ "$(lt_engine_stat "$dev" eagain_fallbacks)" -gt "$e0" ] ||
			lt_fail "$what: the non-blocking attempt was not cut short (no eagain_fallbacks)"
	fi
}
read_at "64 KiB from the device's start, the file's first page cached" 0 65536 0 4096
read_at "64 KiB ending at the device's end, its first 8 KiB cached" $((size - 65536)) 65536 \
	$((size - 65536 + off)) 8192
read_at "32 KiB from 1 MiB, the first 12 KiB cached" 1048576 32768 $((1048576 + off)) 12288
# (Waits out read-ahead the non-blocking attempts started.)
lt_scsi_debug_delay 1
lt_udev_release
lt_detach "$dev"
umount "$fs"
exit 0
