#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# crash-guest.sh VERIFY RUN: one guest boot of scripts/crash (make crash). The data disk
# (/dev/vda, ext4) holds the backing file of a loop device; the log disk (/dev/vdb, raw) holds
# what fsync acknowledged.
#   VERIFY DRIVER:DIO (or "none"): the previous boot was cut off while writing through DRIVER
#     (c or rust) with direct I/O DIO (on or off). The backing file is attached again, its file
#     system must come back (journal replay) and then be clean (e2fsck -fn exits 0), and every
#     record whose fsync returned must be present and intact. Prints "VERIFY ok ..." or
#     "VERIFY FAIL ...".
#   RUN DRIVER:DIO (or "none"): makes a fresh file system on a loop device of DRIVER, starts a
#     writer (records, fdatasync per batch, acknowledgements logged on the log disk) and, after
#     a random 2 to 8 s, cuts the machine off without any sync (sysrq b). Prints "CUT ...".
set -euo pipefail
cd "$(dirname "$0")"
verify=$1 run=$2
data=/dev/vda log=/dev/vdb
mnt=/tmp/crash-data fs=/tmp/crash-fs
mkdir -p "$mnt" "$fs"

# load DRIVER: DRIVER's module is the loop driver (the verify step may have loaded the other one;
# udev's probes of a detached device can hold the module for a moment).
load() {
	if [ -d /sys/module/loop ]; then
		local end
		udevadm settle
		end=$(($(date +%s) + 60))
		until rmmod loop 2>/dev/null; do
			if [ "$(date +%s)" -ge "$end" ]; then
				echo "LOAD FAIL: the loop module could not be unloaded: $(rmmod loop 2>&1)"
				exit 1
			fi
			sleep 0.1
		done
	fi
	if [ "$1" = c ]; then modprobe loop; else insmod ../loop.ko; fi
	udevadm settle
}

if [ "$verify" != none ]; then
	drv=${verify%:*} dio=${verify#*:}
	load "$drv"
	mount "$data" "$mnt"
	dev=$(losetup -f --show --direct-io="$dio" "$mnt/backing.img")
	result=ok why=
	# Mounting replays the journal of the cut-off file system; then it must be clean.
	if ! mount "$dev" "$fs"; then
		result=FAIL why="the file system on $dev does not mount"
	else
		umount "$fs"
		if ! fsck=$(e2fsck -fn "$dev" 2>&1); then
			result=FAIL why="e2fsck -fn: $(tail -n 3 <<<"$fsck" | tr '\n' ' ')"
		else
			mount "$dev" "$fs"
			if ! out=$(python3 crash_writer.py check "$fs" "$log"); then
				result=FAIL why="acknowledged records lost:"
			fi
			why+=" $out"
			umount "$fs"
		fi
	fi
	losetup -d "$dev"
	umount "$mnt"
	echo "VERIFY $result $verify: ${why# }"
fi

if [ "$run" != none ]; then
	drv=${run%:*} dio=${run#*:}
	load "$drv"
	blkid "$data" >/dev/null 2>&1 || mkfs.ext4 -q -F "$data"
	mount "$data" "$mnt"
	rm -f "$mnt/backing.img"
	truncate -s 256M "$mnt/backing.img"
	sync
	dev=$(losetup -f --show --direct-io="$dio" "$mnt/backing.img")
	mkfs.ext4 -q "$dev"
	mount "$dev" "$fs"
	sync
	python3 crash_writer.py write "$fs" "$log" >/tmp/writer.out 2>&1 &
	for _ in $(seq 300); do
		grep -q writing /tmp/writer.out && break
		sleep 0.1
	done
	delay=$((RANDOM % 7 + 2))
	sleep "$delay"
	echo "CUT $run after ${delay}s of writing"
	echo 1 >/proc/sys/kernel/sysrq
	echo b >/proc/sysrq-trigger
	sleep 60
	echo "CUT FAIL: still running after sysrq b"
fi
