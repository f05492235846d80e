#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# While LOOP_CLR_FD unbinds a device, its sysfs loop/ attributes read what loop.c's
# __loop_clr_fd leaves there until it removes the group: the binding's values, or for offset,
# sizelimit and backing_file the cleared ones (0, 0, empty) it writes first, for autoclear the 1
# LOOP_CLR_FD sets (the unbinding waits for the last close); never a cleared dio or partscan
# (lo_flags is cleared only once the group is gone). A reader
# (sysfs_watch.c) goes round the six files from before the detach until the group is removed,
# eight times.
. "$(dirname "$0")/lib.sh"
lt_need gcc

watch=$(lt_build sysfs_watch "$LT_DIR/sysfs_watch.c" gcc -O2 -Wall -Werror) ||
	lt_fail "cannot build sysfs_watch"
img=$LT_WORK/img
lt_sparse "$img" 64M
path=$(realpath "$img")
attrs=(backing_file offset sizelimit autoclear partscan dio)
# What each attribute may read during the teardown, as `sysfs_watch` prints it.
declare -A allowed=(
	[backing_file]="$path|$path>"
	[offset]="4096|4096>0"
	[sizelimit]="33554432|33554432>0"
	[autoclear]="0|0>1"
	[partscan]=1
	[dio]=1
)
declare -A seen=()
# The cycles whose reader saw a value change (the teardown caught in the act).
declare -A caught=()
rounds=0
for cycle in 1 2 3 4 5 6 7 8; do
	dev=$(lt_attach "$img" -o 4096 --sizelimit 33554432 --direct-io=on -P)
	# udev's probes of the new device are done. One that still overlaps the detach only defers
	# the unbinding to its close: the reader waits for the group to go either way.
	udevadm settle
	sys=/sys/block/${dev##*/}/loop
	lt_eq "$(cat "$sys/dio")" 1 "loop/dio after binding with --direct-io=on"
	coproc WATCH { exec "$watch" "$sys" "${attrs[@]}"; }
	pid=$WATCH_PID
	# A copy of its output: bash closes the coprocess's own descriptors when it exits.
	exec {out}<&"${WATCH[0]}"
	read -r line <&"$out" || lt_fail "sysfs_watch did not start"
	lt_eq "$line" ready "sysfs_watch's first line"
	losetup -d "$dev" || lt_fail "losetup -d $dev (cycle $cycle)"
	# The reader ends once the unbinding has removed the group (at losetup's close, or at a
	# later close of udev's); a bound on the wait rather than the runner's timeout.
	lines=0
	while :; do
		status=0
		read -r -t 120 name values <&"$out" || status=$?
		if [ "$status" -gt 128 ]; then
			kill "$pid" 2>/dev/null
			lt_fail "cycle $cycle: the loop/ group still there 120 s after losetup -d"
		fi
		[ "$status" = 0 ] || break
		if [ "$name" = rounds ]; then
			rounds=$((rounds + values))
			continue
		fi
		lines=$((lines + 1))
		seen[$name $values]=1
		[[ $values = *">"* ]] && caught[$cycle]=1
		case "|${allowed[$name]}|" in
		*"|$values|"*) ;;
		*) lt_fail "cycle $cycle: loop/$name read '$values' during the teardown (loop.c: ${allowed[$name]})" ;;
		esac
	done
	exec {out}<&-
	wait "$pid" || lt_fail "sysfs_watch failed"
	lt_eq "$lines" "${#attrs[@]}" "attributes reported by sysfs_watch"
	lt_bound "$dev" && lt_fail "$dev still bound after losetup -d"
done
lt_log "read during 8 teardowns ($rounds rounds; a value changed in ${#caught[@]}): $(printf '%s\n' "${!seen[@]}" | sort | tr '\n' ' ')"
exit 0
