#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Every sysfs attribute of a loop device's disk (/sys/block/loopN/*), queue (queue/*) and loop/
# group, and its holders and slaves, through its life: created by LOOP_CTL_ADD, bound to a
# file read-write, read-only, with direct I/O, a 4096-byte block size, an offset, a size limit
# and partition scanning, after LOOP_SET_CAPACITY, bound to another loop device, and unbound
# after each. The whole record must be loop.ko's, value for value. Left out: what changes with
# time or the order of creation (diskseq, stat, inflight, dev, uevent) and mq/, the hardware
# queues (one in loop.c, one per CPU in rust_loop: the engine, on purpose).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 64M
dev=/dev/loop30
lower=/dev/loop31
rec=$LT_WORK/record

# snap LABEL: appends the state of $dev to the record.
snap() {
	local d=/sys/block/${dev##*/} f name v
	udevadm settle
	echo "== $1" >>"$rec"
	for f in "$d"/* "$d"/queue/* "$d"/loop/* "$d"/integrity/*; do
		if [ ! -f "$f" ] || [ ! -r "$f" ]; then
			continue
		fi
		name=${f#"$d"/}
		case $name in diskseq | stat | inflight | dev | uevent) continue ;; esac
		# Read by the shell itself (a process per value takes minutes on the debug kernel);
		# `read -d ''` ends at the end of the file with status 1.
		v=
		{ IFS= read -r -d '' v || true; } 2>/dev/null <"$f" || v="(cannot open)"
		echo "$name=${v//$'\n'/|}" >>"$rec"
	done
	echo "holders=$(find "$d/holders" -mindepth 1 -printf '%f ') slaves=$(find "$d/slaves" -mindepth 1 -printf '%f ')" >>"$rec"
}

lt_ctl_add 31
lt_ctl_add 30
snap "created by LOOP_CTL_ADD"
losetup "$dev" "$img" || lt_fail "binding read-write"
snap "bound read-write"
lt_detach "$dev"
snap "unbound after read-write"
losetup -r "$dev" "$img" || lt_fail "binding read-only"
snap "bound read-only"
lt_detach "$dev"
snap "unbound after read-only"
losetup --direct-io=on -b 4096 -o 4096 --sizelimit 33554432 -P "$dev" "$img" ||
	lt_fail "binding with direct I/O, block size, offset, size limit, partition scan"
snap "bound with direct I/O, 4096-byte blocks, offset 4096, size limit 32 MiB, partition scan"
truncate -s 96M "$img"
losetup -c "$dev" || lt_fail "LOOP_SET_CAPACITY"
snap "after the file grew and LOOP_SET_CAPACITY"
lt_detach "$dev"
snap "unbound after direct I/O"
losetup "$lower" "$img" || lt_fail "binding $lower"
losetup "$dev" "$lower" || lt_fail "binding $dev to $lower"
snap "bound to a loop device"
lt_detach "$dev"
lt_detach "$lower"
snap "unbound after a loop device"
lt_log "$(grep -c '^==' "$rec") states, $(grep -vc '^==' "$rec") values"
# The image's path is the column's own.
sed "s|$(realpath "$LT_WORK")/|WORK/|" "$rec" >"$rec.cmp"
lt_same_as_c sysfs "$rec.cmp" "the sysfs record"
exit 0
