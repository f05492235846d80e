#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Backing file systems that treat non-blocking I/O differently: f2fs (its files take IOCB_NOWAIT,
# but its write checks refuse a non-blocking buffered write with EINVAL: no FOP_BUFFER_WASYNC),
# direct I/O off and on, and XFS (takes non-blocking buffered writes), direct I/O off, each on a
# scsi_debug disk. (ext4, which refuses them with EOPNOTSUPP, is under every test's images; XFS
# with direct I/O is dio_07's.) loop.c never tries I/O non-blocking; rust_loop does where the file
# system takes it, and must give loop.c's outcome everywhere. Per file system and mode: loop/dio
# as asked, fio crc32c verify through the device (psync and libaio at queue depth 16, 2 jobs
# each), the device's contents equal the file's, and an ext4 made on the device and filled
# survives unmount, fsck and a remount with cold caches. rust_loop only: its engine tries
# buffered writes non-blocking on XFS and not on f2fs (debugfs counters). Both mounted lazytime.
. "$(dirname "$0")/lib.sh"
lt_need fio mkfs.f2fs mkfs.xfs mkfs.ext4 fsck.ext4

# engine_writes DEV FS: rust_loop only: 256 writes to the device, buffered writes to the file,
# are tried non-blocking where the file system takes that (XFS), and never on f2fs, where the
# write checks refuse it (the engine's retry of a refused attempt would hide a wrong choice from
# the data checks). udev must not read the device meanwhile (its watch rule does after a
# writer's close): its reads would count too.
engine_writes() {
	local dev=$1 e0 n0 h0 n e
	lt_udev_hold
	e0=$(lt_engine_stat "$dev" eagain_fallbacks)
	n0=$(lt_engine_stat "$dev" buffered_nowait)
	h0=$(lt_engine_stat "$dev" buffered_blocking)
	dd if=/dev/urandom of="$dev" bs=4k count=256 oflag=direct status=none
	case $2 in
	f2fs)
		lt_eq "$(($(lt_engine_stat "$dev" eagain_fallbacks) - e0))" 0 \
			"refused non-blocking attempts of 256 writes on f2fs"
		lt_eq "$(($(lt_engine_stat "$dev" buffered_blocking) - h0))" 256 \
			"writes done in the worker on f2fs"
		;;
	xfs)
		# Every one tried: done by the attempt, or refused by it and done by the worker
		# (one at a time, so no blocking write is outstanding when the next comes).
		n=$(($(lt_engine_stat "$dev" buffered_nowait) - n0))
		e=$(($(lt_engine_stat "$dev" eagain_fallbacks) - e0))
		lt_log "256 writes on XFS: $n done by the non-blocking attempt, $e refused by it"
		lt_eq "$((n + e))" 256 "writes tried non-blocking on XFS"
		lt_eq "$(($(lt_engine_stat "$dev" buffered_blocking) - h0))" "$e" \
			"writes done in the worker on XFS"
		;;
	esac
	lt_udev_release
}

# run_fs IMG WHAT DIO: the checks above on the image IMG, with direct I/O DIO (on or off).
run_fs() {
	local img=$1 dio=$3 dev what="$2, direct I/O $3"
	lt_file "$img" 16M
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "loop/dio over $what"
	lt_fio_verify "$dev" 4k psync 2 1 4M
	lt_fio_verify "$dev" 4k libaio 2 16 4M
	[ "$LT_DRIVER" = rust ] && [ "$dio" = off ] && engine_writes "$dev" "$2"
	blockdev --flushbufs "$dev"
	lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img")" "device and file contents over $what"
	lt_ext4_roundtrip "$dev" 4 "$what"
	losetup -d "$dev"
	udevadm settle
	rm "$img"
	lt_log "$what: verified"
}

# mkfs.xfs wants at least 300 MiB.
sd=$(lt_scsi_debug dev_size_mb=320)
mkdir -p "$LT_WORK/fs"
for fs in f2fs xfs; do
	case $fs in
	f2fs) mkfs.f2fs -q -f "$sd" >/dev/null ;;
	xfs) mkfs.xfs -q -f "$sd" ;;
	esac
	# lazytime: without it XFS refuses a non-blocking write that must log the file's times,
	# which one is decided by the clock's tick.
	mount -t "$fs" -o lazytime "$sd" "$LT_WORK/fs"
	run_fs "$LT_WORK/fs/img" "$fs" off
	[ "$fs" = xfs ] || run_fs "$LT_WORK/fs/img" "$fs" on
	umount "$LT_WORK/fs"
done
exit 0
