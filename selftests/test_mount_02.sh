#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# util-linux's own tests of mount over loop devices, ported: tests/ts/libmount/loop (a regular
# file mounted with and without -o loop, -o loop=/dev/loopN, libmount re-using a device already
# bound to the file, refusing an overlapping one and a loop=/dev/loopN bound to another file),
# tests/ts/libmount/loop-overlay (offset / sizelimit ranges of one file: overlapping refused,
# disjoint accepted), tests/ts/mount/fstab-loop (two fstab entries with "loop" for one image)
# and tests/ts/mount/regfile (umount by the image's path finds its loop device through
# loop/backing_file). libmount decides all of this from LOOP_GET_STATUS64 and the loop sysfs
# attributes, so each driver's output must be loop.ko 7.2's (mount_02.out, taken from loop.ko's
# run).
# Deviations: the output is util-linux's TS_OUTPUT with "== name" lines between subtests, the
# work directory printed as <work> and loop device numbers as /dev/loopN (udev's timing, not the
# driver, picks them); fstab-loop uses `mount --fstab FILE` on a private file as upstream does
# (its lock is not needed: nothing else reads it); after each subtest, the number of bound
# devices is printed (extra: what the subtest left behind). Not ported: tests/ts/mount/
# loop-direct-io (X-loopdev.direct-io, newer than this root's util-linux 2.41).
. "$(dirname "$0")/lib.sh"
lt_need mount umount mountpoint losetup mkfs.ext2 mkfs.ext3 udevadm

raw=$LT_WORK/raw
mnt=$LT_WORK/mountpoint
mkdir -p "$mnt" "$mnt-1" "$mnt-2"
say() { echo "$*" >>"$raw"; }
subtest() { say "== $1"; }
subtest_end() {
	udevadm settle
	say "bound after the subtest: $(losetup --list -n | wc -l)"
	umount -q "$mnt" "$mnt-1" "$mnt-2" 2>/dev/null || true
	losetup -D
	udevadm settle
}
# The mount point of the line of `mount` / /proc/self/mounts whose target is $1: its device.
mounted_dev() { awk -v t="$1" '$0 ~ " " t " " { print $1 }' "${2:-/proc/self/mounts}"; }

# tests/ts/libmount/loop
img=$LT_WORK/loop.img
dd if=/dev/zero of="$img" bs=1M count=10 status=none
mkfs.ext3 -q -F "$img"
udevadm settle

subtest "libmount/loop file"
mount "$img" "$mnt" >>"$raw" 2>&1 || say "mount: exit $?"
umount "$mnt" >>"$raw" 2>&1 || say "umount: exit $?"
subtest_end

subtest "libmount/loop file-o-loop"
mount -oloop "$img" "$mnt" >>"$raw" 2>&1 || say "mount: exit $?"
umount "$mnt" >>"$raw" 2>&1 || say "umount: exit $?"
subtest_end

subtest "libmount/loop dev-loop"
lodev=$(losetup --find --nooverlap --show "$img" 2>>"$raw") || say "losetup: exit $?"
mount "$lodev" "$mnt" >>"$raw" 2>&1 || say "mount: exit $?"
m=$(mount | awk -v t="$mnt" '$3 == t { print $1 }')
[ "$m" = "$lodev" ] || say "Mounted incorrect device mounts: $m, wants: $lodev"
umount "$mnt" >>"$raw" 2>&1 || say "umount: exit $?"
losetup --detach "$lodev" >>"$raw" 2>&1 || say "losetup --detach: exit $?"
subtest_end

subtest "libmount/loop o-loop-val"
lodev=$(losetup --find 2>>"$raw") || say "losetup --find: exit $?"
mount -oloop="$lodev" "$img" "$mnt" >>"$raw" 2>&1 || say "mount: exit $?"
m=$(mounted_dev "$mnt")
[ "$m" = "$lodev" ] || say "Mounted incorrect device mounts: $m, wants: $lodev"
umount "$mnt" >>"$raw" 2>&1 || say "umount: exit $?"
subtest_end

subtest "libmount/loop reuse"
lodev=$(losetup --find --nooverlap --show "$img" 2>>"$raw") || say "losetup: exit $?"
mount "$img" "$mnt" >>"$raw" 2>&1 || say "mount: exit $?"
m=$(mounted_dev "$mnt")
[ "$m" = "$lodev" ] || say "Mounted incorrect device mounts: $m, wants: $lodev"
umount "$mnt" >>"$raw" 2>&1 || say "umount: exit $?"
losetup --detach "$lodev" >>"$raw" 2>&1 || say "losetup --detach: exit $?"
subtest_end

# Upstream's next three subtests overwrite TS_OUTPUT with mount's message (`>`); appended here,
# with mount's exit status (extra).
subtest "libmount/loop conflict"
lodev=$(losetup --find --nooverlap --show --offset=1000 "$img" 2>>"$raw") || say "losetup: exit $?"
rc=0
mount "$img" "$mnt" >"$LT_WORK/msg" 2>&1 || rc=$?
sed 's/^.*\.img//' "$LT_WORK/msg" >>"$raw"
say "mount's exit status (extra): $rc"
losetup --detach "$lodev" >>"$raw" 2>&1 || say "losetup --detach: exit $?"
subtest_end

# o_loop_val NAME FILE: a free device bound to FILE, then the image mounted with -oloop= that
# device (mount refuses both: the device is bound already).
o_loop_val() {
	local lodev rc=0
	subtest "libmount/loop $1"
	lodev=$(losetup --find 2>>"$raw") || say "losetup --find: exit $?"
	losetup "$lodev" "$2" >>"$raw" 2>&1 || say "losetup: exit $?"
	mount -oloop="$lodev" "$img" "$mnt" >"$LT_WORK/msg" 2>&1 || rc=$?
	sed 's/^.*\.img//' "$LT_WORK/msg" >>"$raw"
	say "mount's exit status (extra): $rc"
	umount -q "$mnt" 2>/dev/null || true
	losetup --detach "$lodev" >>"$raw" 2>&1 || say "losetup --detach: exit $?"
	subtest_end
}
o_loop_val o-loop-val-initialized "$img"
cp "$img" "$img-2"
o_loop_val o-loop-val-conflict "$img-2"
rm "$img-2"

# tests/ts/libmount/loop-overlay: a 5 MiB ext2 image followed by a copy of itself.
img=$LT_WORK/overlay.img
dd if=/dev/zero of="$img" bs=1M count=5 status=none
mkfs.ext2 -q -F "$img"
off=$(stat -c %s "$img")
dd if="$img" of="$img" oflag=append bs=5MiB count=1 conv=notrunc status=none
subtest "libmount/loop-overlay"
say "second should fail"
mount -oloop "$img" "$mnt-1" >>"$raw" 2>&1 || say "mount: exit $?"
mount -oloop,offset="$off" "$img" "$mnt-2" 2>&1 | sed 's/.*://' >>"$raw" || true
umount "$mnt-1" >>"$raw" 2>&1 || say "umount: exit $?"
say "should succeed"
mount -oloop,sizelimit="$off" "$img" "$mnt-1" >>"$raw" 2>&1 || say "mount: exit $?"
mount -oloop,offset="$off" "$img" "$mnt-2" >>"$raw" 2>&1 || say "mount: exit $?"
umount "$mnt-1" >>"$raw" 2>&1 || say "umount: exit $?"
umount "$mnt-2" >>"$raw" 2>&1 || say "umount: exit $?"
say "both should fail"
lodev=$(losetup --find) || say "losetup --find: exit $?"
losetup --offset 1 --sizelimit "$off" "$lodev" "$img" || say "losetup: exit $?"
mount -oloop,sizelimit="$off" "$img" "$mnt-1" 2>&1 | sed 's/.*://' >>"$raw" || true
mount -oloop,offset="$off" "$img" "$mnt-2" 2>&1 | sed 's/.*://' >>"$raw" || true
losetup --detach "$lodev" || say "losetup --detach: exit $?"
subtest_end

# tests/ts/mount/fstab-loop: the second `mount --all` mounts the same image read-write at a
# second place; libmount gives it a second device.
img=$LT_WORK/fstab.img
dd if=/dev/zero of="$img" bs=1M count=5 status=none
mkfs.ext2 -q -F "$img"
fstab=$LT_WORK/fstab
subtest "mount/fstab-loop"
echo "$img $mnt-1 ext2 loop 0 0" >"$fstab"
mount --fstab "$fstab" --all >>"$raw" 2>&1 || say "mount --all: exit $?"
echo "$img $mnt-2 ext2 loop 0 0" >>"$fstab"
mount --fstab "$fstab" --all >>"$raw" 2>&1 || say "mount --all: exit $?"
say "devices (extra): $(losetup -j "$img" | wc -l)"
umount "$mnt-1" >>"$raw" 2>&1 || say "umount: exit $?"
umount "$mnt-2" >>"$raw" 2>&1 || say "umount: exit $?"
subtest_end

# tests/ts/mount/regfile
img=$LT_WORK/regfile.img
dd if=/dev/zero of="$img" bs=1M count=5 status=none
mkfs.ext3 -q -F "$img"
subtest "mount/regfile"
mount "$img" "$mnt" >>"$raw" 2>&1 || say "mount: exit $?"
dev=$(mounted_dev "$mnt")
say "loop/backing_file (extra): $(cat "/sys/block/${dev#/dev/}/loop/backing_file" 2>&1)"
umount "$img" >>"$raw" 2>&1 || say "umount by the image: exit $?"
mountpoint -q "$mnt" && say "$mnt still in /proc/mounts"
say "Success"
subtest_end

out=$LT_WORK/out
sed -e "s|$LT_WORK|<work>|g" -e 's|/dev/loop[0-9][0-9]*|/dev/loopN|g' "$raw" >"$out"
lt_same_as_expected "$LT_DIR/mount_02.out" "$out" /dev/null "util-linux's loop mount tests' output"
exit 0
