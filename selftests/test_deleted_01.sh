#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A backing file whose name is removed while it is bound (attach a temporary file, then unlink
# it: a common pattern), under a path with spaces and longer than LO_NAME_SIZE. sysfs
# `loop/backing_file` and `losetup --list` say "(deleted)", LOOP_GET_STATUS64 keeps the name
# given at bind, and I/O goes on with the data intact; all as loop.ko does. The file's space
# comes back once the device lets the file go, before the program that did it has ended: the
# unbinding at the last close after LOOP_CLR_FD, or after autoclear, and LOOP_CHANGE_FD (the old
# file). A file reference the driver leaks keeps the space. The device is created while udev
# executes no event, so udev never watches it and no probe of udev's holds it open.
. "$(dirname "$0")/lib.sh"
lt_need losetup jq

# The same path for both drivers' runs: LO_NAME_SIZE cuts the name at the same byte.
mnt=/tmp/lt-deleted_01
mkdir -p "$mnt"
mount -t tmpfs -o size=64M tmpfs "$mnt"
lt_on_exit "umount $mnt && rmdir $mnt"
# Free blocks of the tmpfs (shmem_statfs() sums its counter exactly).
free_blocks() { stat -f -c %f "$mnt"; }
base=$(free_blocks)
dir="$mnt/a directory with spaces, and a name long enough to pass LO_NAME_SIZE"
mkdir "$dir"
lt_udev_hold
nr=58
dev=/dev/loop$nr
lt_ctl_add $nr
record=$LT_WORK/record
# show DEV WHAT: what the tools see of DEV, into the record ($mnt as MNT, the device as LOOP).
show() {
	{
		echo "== $2"
		echo "backing_file: $(lt_sysfs "$1" loop/backing_file)"
		echo "losetup: $(losetup --list --noheadings --output NAME,BACK-FILE,RO,AUTOCLEAR "$1")"
		echo "lo_file_name: $(lt_ioctl get-status64 "$1" --dev-ro | sed -n 2p | jq -r .lo_file_name)"
	} | sed "s|$mnt|MNT|g; s|$1|LOOP|g" >>"$record"
}

# LOOP_CLR_FD.
f="$dir/first file"
lt_file "$f" 8M
losetup "$dev" "$f"
show "$dev" "bound"
rm "$f"
show "$dev" "unlinked"
lt_eq "$(lt_sysfs "$dev" loop/backing_file)" "$f (deleted)" "loop/backing_file after unlink"
# I/O goes on: 4 MiB written at 2 MiB, read back through the device once the caches are dropped.
head -c 4M /dev/urandom >"$LT_WORK/data"
dd if="$LT_WORK/data" of="$dev" bs=1M seek=2 oflag=direct conv=fsync status=none
echo 3 >/proc/sys/vm/drop_caches
lt_eq "$(lt_sum "$dev" 4194304 2097152)" "$(lt_sum "$LT_WORK/data")" "data written after unlink, read back"
lt_expect "OK 0" set-capacity "$dev" --dev-ro
[ "$(free_blocks)" -lt "$base" ] || lt_fail "the unlinked file's space is free while it is bound"
lt_expect "OK 0" clr-fd "$dev" --dev-ro
lt_eq "$(free_blocks)" "$base" "free blocks right after LOOP_CLR_FD (the tool's close is the last)"

# Autoclear at the last close: this shell holds the device open while losetup -d asks.
f="$dir/second file"
lt_file "$f" 8M
losetup "$dev" "$f"
lt_on_exit --first "exec 3<&-"
exec 3<"$dev"
losetup -d "$dev"
rm "$f"
show "$dev" "autoclear, unlinked"
lt_eq "$(lt_sysfs "$dev" loop/backing_file)" "$f (deleted)" "loop/backing_file after unlink"
exec 3<&-
lt_bound "$dev" && lt_fail "$dev still bound after its last close with autoclear"
lt_eq "$(free_blocks)" "$base" "free blocks right after the last close with autoclear"

# LOOP_CHANGE_FD (read-only): the old file goes at the call.
new="$dir/new file"
lt_file "$new" 8M
with_new=$(free_blocks)
old="$dir/old file"
lt_file "$old" 8M
losetup --read-only "$dev" "$old"
rm "$old"
show "$dev" "read-only, unlinked"
lt_expect "OK 0" change-fd "$dev" "$new" --dev-ro --file-ro
lt_eq "$(free_blocks)" "$with_new" "free blocks right after LOOP_CHANGE_FD from the unlinked file"
show "$dev" "after LOOP_CHANGE_FD"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$new")" "the device's content after LOOP_CHANGE_FD"
rm "$new"
show "$dev" "after LOOP_CHANGE_FD, unlinked"
lt_expect "OK 0" clr-fd "$dev" --dev-ro
lt_eq "$(free_blocks)" "$base" "free blocks right after LOOP_CLR_FD of the new file, unlinked"
sed 's/^/# /' "$record"
lt_same_as_c deleted_01 "$record" "what sysfs, losetup and LOOP_GET_STATUS64 say of an unlinked file"
exit 0
