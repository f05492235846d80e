#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Direct I/O toggled on and off 50 times (LOOP_SET_DIRECT_IO, as losetup --direct-io does)
# while fio writes and verifies: every switch drains in-flight I/O, no request mixes modes, no
# verify or I/O error, no kernel report.
. "$(dirname "$0")/lib.sh"
lt_need fio

img=$LT_WORK/img
fallocate -l 32M "$img"
dev=$(lt_attach "$img" --direct-io=on)
lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "loop/dio at start"

# Verifying writers run back to back until the toggler is done.
stop=$LT_WORK/stop
lt_fio_loop "$stop" "$LT_WORK/fio.log" "$dev" 4096 libaio 1 16 16M >"$LT_WORK/fio.runs" &
fio_pid=$!

toggles=0
for i in $(seq 1 50); do
	mode=$([ $((i % 2)) = 1 ] && echo off || echo on)
	losetup --direct-io="$mode" "$dev" || lt_fail "losetup --direct-io=$mode failed (toggle $i)"
	want=$([ "$mode" = on ] && echo 1 || echo 0)
	lt_eq "$(lt_sysfs "$dev" loop/dio)" "$want" "loop/dio after toggle $i"
	toggles=$((toggles + 1))
done
touch "$stop"
wait "$fio_pid" || lt_fail "a verifying fio run failed while direct I/O was toggled"
lt_log "$toggles toggles during $(cat "$LT_WORK/fio.runs") verified fio runs"
losetup -d "$dev"
exit 0
