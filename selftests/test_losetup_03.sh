#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# util-linux's own losetup tests (util-linux tests/ts/losetup: losetup, losetup-blkdev and
# losetup-loop), ported: losetup --offset / --sizelimit on a file and on a block device as
# losetup --list and lsblk report them, and --nooverlap (libmount's overlap check, from
# LOOP_GET_STATUS64's device, inode, offset and size limit) re-using a device bound to the same
# range of the same file and refusing a conflicting one. Each driver's output must be loop.ko
# 7.2's (losetup_03.out, taken from loop.ko's run; where util-linux has an expected file for a
# subtest, its lines are the same).
# Deviations: upstream's `sleep 3` between subtests (the device may be held for a moment by
# udev's probe after `losetup -d`) is `udevadm settle` here; each subtest's output starts with a
# "== name" line; a subtest also prints `losetup --list`'s line count at its end (extra: what it
# left bound, which upstream's next subtest would trip over); where upstream discards the exit
# status of the losetup that must refuse a conflict, it is printed (extra).
. "$(dirname "$0")/lib.sh"
lt_need losetup lsblk udevadm

# upstream: ts_scsi_debug_init dev_size_mb=11; ts_image_init 10 (10 MiB of zeros)
disk=$(lt_scsi_debug dev_size_mb=11)
img=$LT_WORK/img
dd if=/dev/zero of="$img" bs=1M count=10 status=none
out=$LT_WORK/out
: >"$out"

# Upstream's lo_print (losetup_functions.sh).
lo_print() {
	echo "offset:    $(losetup --list --raw -n -O OFFSET "$1")"
	echo "sizelimit: $(losetup --list --raw -n -O SIZELIMIT "$1")"
	echo "size:      $(lsblk -o SIZE -b -n -r "$1")"
}
ts_log() { echo "$1" >>"$out"; }
subtest() {
	echo "== $1" >>"$out"
}
subtest_end() {
	udevadm settle
	echo "bound after the subtest: $(losetup --list -n | wc -l)" >>"$out"
	losetup -D
	udevadm settle
}

# losetup: the backing file a regular file, then a block device; what --offset and --sizelimit
# give.
show() {
	local name=$1 back=$2 lodev
	shift 2
	subtest "$name"
	lodev=$(losetup "$@" --find --show "$back") || true
	[ -n "$lodev" ] || ts_log "Failed to create loop device"
	lo_print "$lodev" >>"$out"
	udevadm settle
	losetup -d "$lodev" || ts_log "losetup -d failed"
	subtest_end
}
for back in file blkdev; do
	if [ $back = file ]; then b=$img; else b=$disk; fi
	show "losetup $back" "$b"
	show "losetup $back-offset" "$b" --offset 1MiB
	show "losetup $back-sizelimit" "$b" --sizelimit 3MiB
	show "losetup $back-section" "$b" --offset 1MiB --sizelimit 3MiB
done

# losetup-loop: --nooverlap on a block device.
back=$disk
subtest "losetup-loop find-race-condition"
lodev=$(losetup --find --nooverlap --show "$back") || ts_log "Failed to create loop device"
losetup -d "$lodev" || ts_log "losetup -d failed"
lodev=$(losetup --find --nooverlap --show "$back") || ts_log "Failed to create loop device"
udevadm settle
dd if=/dev/zero of="$lodev" count=1 bs=1 status=none 2>/dev/null || true
udevadm settle
rc=0
losetup --list | grep -q "$lodev" || rc=$?
ts_log "$rc"
losetup -d "$lodev" >/dev/null 2>&1 || true
ts_log "Success"
subtest_end

# Two --find --nooverlap calls: "equal" when the second re-used the first's device.
pair() {
	local name=$1 first=$2 second=$3 quiet=${4:-} lodev lodevr
	subtest "losetup-loop $name"
	# shellcheck disable=SC2086 # option lists
	lodev=$(losetup --find --nooverlap --show $first "$back") || true
	[ -n "$lodev" ] || ts_log "Failed to create loop device"
	if [ -n "$quiet" ]; then
		# Upstream sends this call's output to /dev/null, so the second device is never seen;
		# its exit status says whether losetup refused the conflict (extra).
		local rc=0
		# shellcheck disable=SC2086
		lodevr=$(losetup --find --nooverlap --show $second "$back" >/dev/null 2>&1) || rc=$?
		ts_log "second losetup's exit status (extra): $rc"
	else
		# shellcheck disable=SC2086
		lodevr=$(losetup --find --nooverlap --show $second "$back") || true
	fi
	[ -n "$lodevr" ] || ts_log "Failed to create loop device"
	if [ "$lodev" = "$lodevr" ]; then
		ts_log equal
	else
		ts_log different
		[ -z "$lodevr" ] || losetup -d "$lodevr" || ts_log "losetup -d failed"
	fi
	losetup -d "$lodev" || ts_log "losetup -d failed"
	ts_log "Success"
	subtest_end
}
pair find-re-use "" ""
pair find-no-re-use "--offset=0 --sizelimit=1MiB" "--offset=1MiB --sizelimit=1MiB"
pair find-conflict "--offset=1MiB --sizelimit=2MiB" "--offset=2MiB --sizelimit=2MiB" quiet
pair find-conflict-no-sizelimit "--offset=1MiB" "--offset=2MiB --sizelimit=2MiB" quiet
pair find-conflict-readonly "--read-only" "--offset=2MiB --sizelimit=2MiB" quiet
pair find-ok-no-sizelimit "--offset=1MiB --sizelimit=1MiB" "--offset=2MiB"

# A named free device and --nooverlap: losetup refuses when the file is bound already (1).
plain() {
	local name=$1 first=$2 lodev lodevr rc=0
	subtest "losetup-loop $name"
	# shellcheck disable=SC2086
	lodev=$(losetup --find --nooverlap --show $first "$back") || true
	[ -n "$lodev" ] || ts_log "Failed to create loop device"
	lodevr=$(losetup --find) || ts_log "losetup --find failed"
	losetup --nooverlap "$lodevr" "$back" >/dev/null 2>&1 || rc=$?
	ts_log "$rc"
	losetup -d "$lodev" || ts_log "losetup -d failed"
	losetup -d "$lodevr" >/dev/null 2>&1 || true
	ts_log "Success"
	subtest_end
}
plain plain-conflict ""
plain plain-readonly --read-only

lt_same_as_expected "$LT_DIR/losetup_03.out" "$out" /dev/null "util-linux's losetup tests' output"
exit 0
