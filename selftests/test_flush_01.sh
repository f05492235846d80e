#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Acknowledged flushes survive a disk that loses its unflushed writes (the dm-flakey variant of
# `make crash`, without a reboot, so it runs in every `make check`). A writer on ext4 over the
# loop device appends numbered records and fdatasyncs each batch (a flush through the loop
# device: an fsync of the backing file); the backing file lives on ext4 on dm-flakey over a
# scsi_debug disk. At a random moment the count of acknowledged records is taken, then
# dm-flakey is switched to drop every write (xfstests' power cut: whatever is not on the disk
# by then, in the backing file system's page cache or not yet committed, is lost). Both file
# systems are then torn down and mounted again from what the disk holds: the loop device's
# file system must replay its journal and be clean (e2fsck -fn), every record acknowledged
# before the switch must be there, intact, and the records acknowledged after it must be gone
# (else the cut lost nothing and the test proves nothing). The backing file system commits its
# journal only when asked (commit=600): what reaches its disk is what the loop driver's flushes
# put there. Two cuts with direct I/O on, two with it off.
. "$(dirname "$0")/lib.sh"
lt_need dmsetup
lt_need mkfs.ext4
lt_need e2fsck

name=rl-flush
sd=$(lt_scsi_debug dev_size_mb=192)
lt_dm_on_exit $name
modprobe dm-mod 2>/dev/null || true
modprobe dm-flakey 2>/dev/null || true
sectors=$(blockdev --getsz "$sd")
dm=/dev/mapper/$name
writer=$LT_DIR/crash_writer.py
lower=$LT_WORK/lower upper=$LT_WORK/upper ack=$LT_WORK/ack
mkdir -p "$lower" "$upper"

# table KIND: what the disk does with writes: "linear" keeps them, "drop" loses them all
# (reads still go through).
table() {
	local t="0 $sectors linear $sd 0"
	[ "$1" = drop ] && t="0 $sectors flakey $sd 0 0 180 1 drop_writes"
	# Loaded into the inactive slot first, so a refused table leaves nothing suspended; no
	# freeze of the file system on it (--nolockfs): a freeze would write everything out, the
	# opposite of a cut.
	dmsetup load "$name" --table "$t"
	dmsetup suspend --nolockfs "$name"
	dmsetup resume "$name"
}

# acked_more N: the writer's log says more than N records are acknowledged.
# shellcheck disable=SC2317 # called by lt_wait
acked_more() { [ "$(python3 "$writer" acked "$ack")" -gt "$1" ]; }

dmsetup create "$name" --table "0 $sectors linear $sd 0" || lt_skip "no device-mapper"
dmsetup load "$name" --table "0 $sectors flakey $sd 0 0 180 1 drop_writes" 2>/dev/null ||
	lt_skip "no dm-flakey"
dmsetup clear "$name"
udevadm settle
mkfs.ext4 -q -F "$dm"
cut=0
for dio in on off on off; do
	cut=$((cut + 1))
	what="cut $cut (dio=$dio)"
	mount -o commit=600 "$dm" "$lower"
	rm -f "$lower/backing.img"
	truncate -s 128M "$lower/backing.img"
	dev=$(lt_attach "$lower/backing.img" --direct-io="$dio")
	mkfs.ext4 -q "$dev"
	mount "$dev" "$upper"
	# Nothing before the writer starts is left to lose: the cut is about its records.
	sync
	dd if=/dev/zero of="$ack" bs=4096 count=1 status=none
	python3 "$writer" write "$upper" "$ack" >"$LT_WORK/writer.out" 2>&1 &
	wpid=$!
	# At least one batch is acknowledged before the cut, so the check cannot pass on nothing.
	lt_wait 60 acked_more 0 ||
		lt_fail "$what: no batch acknowledged in 60 s: $(cat "$LT_WORK/writer.out")"
	# The cut comes 0-2 s later: a random point in the writer's run, not a synchronisation.
	sleep "$((RANDOM % 3)).$((RANDOM % 10))"
	# What is acknowledged now was flushed before the disk started dropping writes.
	acked=$(python3 "$writer" acked "$ack")
	table drop
	# A batch acknowledged after the switch: the cut must lose it.
	lt_wait 60 acked_more "$acked" ||
		lt_fail "$what: no batch acknowledged after the switch: $(cat "$LT_WORK/writer.out")"
	kill -KILL "$wpid" 2>/dev/null || true
	wait "$wpid" 2>/dev/null || true
	if grep -q Traceback "$LT_WORK/writer.out"; then
		lt_fail "$what: the writer failed: $(cat "$LT_WORK/writer.out")"
	fi
	final=$(python3 "$writer" acked "$ack")
	umount "$upper"
	losetup -d "$dev"
	udevadm settle
	umount "$lower"
	# The disk's own page cache goes too (its writes are dropped); then the disk keeps writes
	# again and everything above it is read back from it.
	blockdev --flushbufs "$dm"
	table linear
	mount -o commit=600 "$dm" "$lower" || lt_fail "$what: the backing file system does not mount"
	dev=$(lt_attach "$lower/backing.img" --direct-io="$dio")
	# Mounting replays the journal of the cut-off file system; then it must be clean.
	mount "$dev" "$upper" || lt_fail "$what: the file system on the loop device does not mount"
	umount "$upper"
	fsck=$(e2fsck -fn "$dev" 2>&1) || lt_fail "$what: e2fsck -fn: $(tail -n 5 <<<"$fsck")"
	mount "$dev" "$upper"
	out=$(python3 "$writer" check "$upper" "$ack" "$acked") ||
		lt_fail "$what: acknowledged records lost: $out"
	present=$(sed -n 's/.*present \([0-9]*\).*/\1/p' <<<"$out")
	[ "$present" -lt "$final" ] ||
		lt_fail "$what: the cut lost nothing ($final acknowledged in all, $present present): the test is blind"
	lt_log "$what: $out before the cut, $final in all"
	umount "$upper"
	losetup -d "$dev"
	udevadm settle
	umount "$lower"
done
exit 0
