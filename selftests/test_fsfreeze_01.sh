#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The backing file system frozen (FIFREEZE, as snapshot tools and fsfreeze do) under a bound loop
# device, direct I/O off and on, the image on XFS (which takes non-blocking buffered writes: a
# non-blocking attempt meets the freeze) on a scsi_debug disk:
# - reads through the device go on while it is frozen, with the file's data;
# - a write through the device waits for the thaw, unacknowledged: its writer is still in the
#   write once the device counts it in flight and a thread of the driver's sleeps (uninterruptibly,
#   the freeze's wait), and the file still holds the old data;
# - meanwhile the calls that do not drain I/O answer: losetup --list, LOOP_SET_CAPACITY,
#   LOOP_GET_STATUS64, and LOOP_CLR_FD (deferred to the last close, as the writer holds the
#   device open);
# - after the thaw the write completes, the file holds it, the other data is intact, and the
#   writer's close unbinds the device;
# - rust_loop only, direct I/O off: the write's non-blocking attempt did not wait for the frozen
#   file system, it went to the blocking path (eagain_fallbacks).
. "$(dirname "$0")/lib.sh"
lt_need fsfreeze mkfs.xfs

fs=$LT_WORK/fs
mib=1048576
# Thawed before the cleanup unmounts it (a failure may leave it frozen): a frozen file system's
# unmount waits for the thaw, and so would every write to it.
lt_on_exit --first "fsfreeze -u '$fs' 2>/dev/null || true"

# write_blocked DEV: a write to DEV is in flight and a kernel thread of the device's I/O sleeps
# uninterruptibly (loop.c's workqueue worker, kworker/...+loopN; rust_loop's queue and shared
# workers, rust_loopN-..., or its blocking path, kworker/...+rust_loopN): nothing else there can
# wait while the file system is frozen. (Its wait channel does not say more: the kernel's unwinder
# names a scheduler function for a kworker.)
# shellcheck disable=SC2317 # called through lt_wait
write_blocked() {
	local n=${1##*/loop} t comm stat writes
	read -r _ writes <"/sys/block/${1##*/}/inflight"
	[ "$writes" -ge 1 ] || return 1
	for t in /proc/[0-9]*; do
		read -r comm 2>/dev/null <"$t/comm" || continue
		case $comm in
		*"+loop$n" | *"+rust_loop$n" | "rust_loop$n-"*) ;;
		*) continue ;;
		esac
		read -r stat 2>/dev/null <"$t/stat" || continue
		stat=${stat##*) }
		[ "${stat%% *}" = D ] && return 0
	done
	return 1
}

# waiting PID DEV: the writer PID has ended, or its write waits (write_blocked DEV).
# shellcheck disable=SC2317 # called through lt_wait
waiting() { ! kill -0 "$1" 2>/dev/null || write_blocked "$2"; }

# outside IMG: the sha256 of the image but for its MiB at 4 MiB.
outside() { echo "$(lt_sum "$1" $((4 * mib)))$(lt_sum "$1" $((3 * mib)) $((5 * mib)))"; }

# run DIO: the checks above with direct I/O DIO (on or off).
run() {
	local dio=$1 dev img=$fs/img new=$LT_WORK/new what="direct I/O $1" pid e0=0 old rest
	lt_file "$img" 8M
	lt_file "$new" 1M
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "loop/dio, $what"
	old=$(lt_sum "$img" $mib $((4 * mib)))
	rest=$(outside "$img")

	fsfreeze -f "$fs"
	lt_eq "$(timeout 120 dd if="$dev" bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
		"$(lt_sum "$img")" "the device's data read while the file system is frozen, $what"
	[ "$LT_DRIVER" = rust ] && e0=$(lt_engine_stat "$dev" eagain_fallbacks)
	dd if="$new" of="$dev" bs=64k seek=64 oflag=direct conv=fsync status=none &
	pid=$!
	lt_wait 120 waiting "$pid" "$dev" ||
		lt_fail "no write through $dev waiting for its frozen file system after 120 s, $what"
	kill -0 "$pid" 2>/dev/null || lt_fail "a write through $dev completed while its file system is frozen, $what"
	lt_eq "$(lt_sum "$img" $mib $((4 * mib)))" "$old" "the file's data under a write waiting for the thaw, $what"
	# Calls that do not drain the device's I/O answer while a write waits.
	timeout 120 losetup --list "$dev" >/dev/null || lt_fail "losetup --list $dev while a write waits for the thaw"
	lt_expect "OK 0" set-capacity "$dev"
	[ "$(lt_ioctl get-status64 "$dev" | head -n 1)" = "OK 0" ] ||
		lt_fail "LOOP_GET_STATUS64 on $dev while a write waits for the thaw"
	lt_expect "OK 0" clr-fd "$dev"
	lt_bound "$dev" || lt_fail "$dev unbound by LOOP_CLR_FD while its writer holds it open"
	lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 1 "loop/autoclear after a deferred LOOP_CLR_FD"
	if [ "$LT_DRIVER" = rust ] && [ "$dio" = off ]; then
		[ "$(lt_engine_stat "$dev" eagain_fallbacks)" -gt "$e0" ] ||
			lt_fail "the non-blocking attempt of a write waited for the frozen file system (no eagain_fallbacks)"
	fi

	fsfreeze -u "$fs"
	wait "$pid" || lt_fail "the write through $dev failed after the thaw, $what"
	lt_wait 120 sh -c "! [ -e /sys/block/${dev##*/}/loop ]" ||
		lt_fail "$dev still bound 120 s after its writer's close (LOOP_CLR_FD deferred), $what"
	lt_eq "$(lt_sum "$img" $mib $((4 * mib)))" "$(lt_sum "$new")" "the written data in the file after the thaw, $what"
	lt_eq "$(outside "$img")" "$rest" "the file's other data after the thaw, $what"
	: <"$dev"
	rm "$img" "$new"
	lt_log "$what: a write waited for the thaw, then landed"
}

# mkfs.xfs wants at least 300 MiB.
sd=$(lt_scsi_debug dev_size_mb=320)
mkdir -p "$fs"
mkfs.xfs -q -f "$sd"
mount -t xfs "$sd" "$fs"
run off
run on
umount "$fs"
exit 0
