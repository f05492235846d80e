#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Acknowledged flushes survive losing the disk's unflushed writes (the dm-flakey variant of
# `make crash`, without a reboot, so it runs in every `make check`). A writer on ext4 over the
# loop device appends numbered records and fdatasyncs each batch (a flush through the loop
# device: an fsync of the backing file); the backing file lives on ext4 on dm-flakey over a
# scsi_debug disk. At a random moment the count of acknowledged records is taken, then
# dm-flakey is switched to drop every write (xfstests' power cut: whatever is not on the disk
# by then, in the backing file system's page cache or not yet committed, is lost). Both file
# systems are then torn down and mounted again from what the disk holds: the loop device's
# file system must replay its journal and be clean (e2fsck -fn), and every acknowledged record
# must be there, intact. Two cuts with direct I/O on, two with it off.
. "$(dirname "$0")/lib.sh"
lt_need dmsetup
lt_need mkfs.ext4
lt_need e2fsck

name=rl-flush
sd=$(lt_scsi_debug dev_size_mb=256)
trap 'lt_cleanup; udevadm settle; dmsetup remove "$name" 2>/dev/null; rmmod scsi_debug 2>/dev/null || true' EXIT
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
	# No freeze of the file system on it (--nolockfs): a freeze would write everything out,
	# the opposite of a cut.
	dmsetup suspend --nolockfs "$name"
	dmsetup load "$name" --table "$t"
	dmsetup resume "$name"
}

# shellcheck disable=SC2317 # called by lt_wait
acked_some() { [ "$(python3 "$writer" acked "$ack")" -gt 0 ]; }

dmsetup create "$name" --table "0 $sectors linear $sd 0" || lt_skip "no device-mapper"
dmsetup load "$name" --table "0 $sectors flakey $sd 0 0 180 1 drop_writes" 2>/dev/null ||
	lt_skip "no dm-flakey"
dmsetup clear "$name"
udevadm settle
mkfs.ext4 -q -F "$dm"
cut=0
for dio in on off on off; do
	cut=$((cut + 1))
	mount "$dm" "$lower"
	rm -f "$lower/backing.img"
	truncate -s 160M "$lower/backing.img"
	dev=$(lt_attach "$lower/backing.img" --direct-io="$dio")
	mkfs.ext4 -q "$dev"
	mount "$dev" "$upper"
	# Nothing before the writer starts is left to lose: the cut is about its records.
	sync
	dd if=/dev/zero of="$ack" bs=4096 count=1 status=none
	python3 "$writer" write "$upper" "$ack" >"$LT_WORK/writer.out" 2>&1 &
	wpid=$!
	# At least one batch is acknowledged before the cut, so the check cannot pass on nothing.
	lt_wait 120 acked_some || lt_fail "cut $cut (dio=$dio): no batch acknowledged in 120 s: $(cat "$LT_WORK/writer.out")"
	# The cut comes 0-2 s later: a random point in the writer's run, not a synchronisation.
	sleep "$((RANDOM % 3)).$((RANDOM % 10))"
	# What is acknowledged now was flushed before the disk started dropping writes.
	acked=$(python3 "$writer" acked "$ack")
	table drop
	kill -KILL "$wpid"
	wait "$wpid" 2>/dev/null || true
	umount "$upper"
	losetup -d "$dev"
	udevadm settle
	umount "$lower"
	# The disk's own page cache goes too (its writes are dropped); then the disk keeps writes
	# again and everything below is read back from it.
	blockdev --flushbufs "$dm"
	table linear
	mount "$dm" "$lower" || lt_fail "cut $cut (dio=$dio): the backing file system does not mount"
	dev=$(lt_attach "$lower/backing.img" --direct-io="$dio")
	# Mounting replays the journal of the cut-off file system; then it must be clean.
	mount "$dev" "$upper" || lt_fail "cut $cut (dio=$dio): the file system on the loop device does not mount"
	umount "$upper"
	fsck=$(e2fsck -fn "$dev" 2>&1) || lt_fail "cut $cut (dio=$dio): e2fsck -fn: $(tail -n 5 <<<"$fsck")"
	mount "$dev" "$upper"
	out=$(python3 "$writer" check "$upper" "$ack" "$acked") ||
		lt_fail "cut $cut (dio=$dio): acknowledged records lost: $out"
	lt_log "cut $cut (dio=$dio): $out"
	umount "$upper"
	losetup -d "$dev"
	udevadm settle
	umount "$lower"
done
exit 0
