#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The backing file system frozen (FIFREEZE, as snapshot tools and fsfreeze do) under a bound loop
# device, direct I/O off and on, the image on XFS mounted lazytime (timestamps then need no
# transaction, so only the freeze protection of the driver's write holds the write back) on a
# scsi_debug disk; XFS also takes non-blocking buffered writes, so rust_loop's non-blocking
# attempt meets the freeze. udev executes nothing meanwhile (its reads and opens would mix in).
# - Frozen, before any write: the whole device reads back the file's data, from a cold cache.
# - A 1 MiB direct write through the device then waits for the thaw, unacknowledged: once the
#   device counts a write in flight and a thread of the driver's sleeps uninterruptibly, the
#   writer is still in it, the device has completed no write, and the file keeps the old data.
# - Meanwhile the calls that drain no I/O answer (within 60 s each): losetup --list,
#   LOOP_SET_CAPACITY, LOOP_GET_STATUS64, and LOOP_CLR_FD, deferred (the writer holds the device).
# - After the thaw the write completes, the file holds it and its other data as before, the
#   device unbinds at the last close, and the file system freezes again at once (a freeze
#   protection the driver took and kept would hold that freeze back).
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
# workers, rust_loopN-..., or its blocking path, kworker/...+rust_loopN): with nothing else
# reading the device, the write's wait for the thaw. (The thread's wait channel would say
# more, but the kernel's unwinder names a scheduler function for a kworker.)
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

# waiting PID DEV W0: the writer PID has ended, DEV has completed a write since it had W0
# (lt_stat 5: writes completed), or the write waits (write_blocked DEV).
# shellcheck disable=SC2317 # called through lt_wait
waiting() { lt_ended "$1" || [ "$(lt_stat "$2" 5)" != "$3" ] || write_blocked "$2"; }

# answers WHAT CMD...: CMD ends within 60 s, with status 0 and, for loopctl, "OK 0". In the
# background: a call that waited for the write would hang the test until the cleanup's thaw.
answers() {
	local what=$1 p out=$LT_WORK/answer
	shift
	"$@" >"$out" 2>&1 &
	p=$!
	lt_wait 60 lt_ended "$p" ||
		lt_fail "$what did not answer within 60 s while a write waits for the thaw"
	wait "$p" || lt_fail "$what failed while a write waits for the thaw: $(cat "$out")"
	case $1 in
	lt_ioctl) [ "$(head -n 1 "$out")" = "OK 0" ] || lt_fail "$what while a write waits for the thaw: $(cat "$out")" ;;
	esac
}

# outside IMG: the sha256 of the image but for its MiB at 4 MiB.
outside() { echo "$(lt_sum "$1" $((4 * mib)))$(lt_sum "$1" $((3 * mib)) $((5 * mib)))"; }

# run DIO: the checks above with direct I/O DIO (on or off).
run() {
	local dio=$1 dev img=$fs/img new=$LT_WORK/new what="direct I/O $1" pid e0=0 old rest w0
	lt_file "$img" 8M
	lt_file "$new" 1M
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "loop/dio, $what"
	old=$(lt_sum "$img" $mib $((4 * mib)))
	rest=$(outside "$img")

	lt_udev_hold
	# The image's pages out of the page cache: the reads below reach the frozen file system.
	echo 3 >/proc/sys/vm/drop_caches
	fsfreeze -f "$fs"
	lt_eq "$(dd if="$dev" bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
		"$(lt_sum "$img")" "the device's data read while the file system is frozen, $what"
	[ "$LT_DRIVER" = rust ] && e0=$(lt_engine_stat "$dev" eagain_fallbacks)
	w0=$(lt_stat "$dev" 5)
	dd if="$new" of="$dev" bs=1M count=1 seek=4 oflag=direct conv=fsync status=none &
	pid=$!
	lt_wait 120 waiting "$pid" "$dev" "$w0" ||
		lt_fail "no write through $dev waiting for its frozen file system after 120 s, $what"
	lt_eq "$(lt_stat "$dev" 5)" "$w0" "writes completed by $dev while its file system is frozen, $what"
	kill -0 "$pid" 2>/dev/null || lt_fail "a write through $dev completed while its file system is frozen, $what"
	lt_eq "$(lt_sum "$img" $mib $((4 * mib)))" "$old" "the file's data under a write waiting for the thaw, $what"
	answers "losetup --list $dev" losetup --list "$dev"
	answers "LOOP_SET_CAPACITY" lt_ioctl set-capacity "$dev"
	answers "LOOP_GET_STATUS64" lt_ioctl get-status64 "$dev"
	answers "LOOP_CLR_FD" lt_ioctl clr-fd "$dev"
	lt_bound "$dev" || lt_fail "$dev unbound by LOOP_CLR_FD while its writer holds it open"
	lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 1 "loop/autoclear after a deferred LOOP_CLR_FD"
	if [ "$LT_DRIVER" = rust ] && [ "$dio" = off ]; then
		[ "$(lt_engine_stat "$dev" eagain_fallbacks)" -gt "$e0" ] ||
			lt_fail "the non-blocking attempt of a write waited for the frozen file system (no eagain_fallbacks)"
	fi
	lt_eq "$(lt_stat "$dev" 5)" "$w0" "writes completed by $dev while its file system is frozen, $what"

	fsfreeze -u "$fs"
	lt_wait 120 lt_ended "$pid" || lt_fail "the write through $dev still waits 120 s after the thaw"
	wait "$pid" || lt_fail "the write through $dev failed after the thaw, $what"
	lt_udev_release
	lt_wait 120 sh -c "! [ -e /sys/block/${dev##*/}/loop ]" ||
		lt_fail "$dev still bound 120 s after its writer's close (LOOP_CLR_FD deferred), $what"
	lt_eq "$(lt_sum "$img" $mib $((4 * mib)))" "$(lt_sum "$new")" "the written data in the file after the thaw, $what"
	lt_eq "$(outside "$img")" "$rest" "the file's other data after the thaw, $what"
	: <"$dev"
	fsfreeze -f "$fs" &
	pid=$!
	lt_wait 60 lt_ended "$pid" ||
		lt_fail "the file system does not freeze again after the write ($what): a freeze protection kept"
	wait "$pid" || lt_fail "fsfreeze -f after the write, $what"
	fsfreeze -u "$fs"
	rm "$img" "$new"
	lt_log "$what: a write waited for the thaw, then landed"
}

# mkfs.xfs wants at least 300 MiB.
sd=$(lt_scsi_debug dev_size_mb=320)
mkdir -p "$fs"
mkfs.xfs -q -f "$sd"
mount -t xfs -o lazytime "$sd" "$fs"
run off
run on
umount "$fs"
exit 0
