#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# uevents: a change event for the disk on bind and on unbind, partition add and remove events
# with LOOP_CONFIGURE + LO_FLAGS_PARTSCAN, and the media-change event at detach. Only the
# driver's (the kernel's) events count: the loop device is opened read-only to bind and unbind,
# so udev's watch rule (a synthesized "change" when a writer closes the device) never fires.
. "$(dirname "$0")/lib.sh"
lt_need sfdisk udevadm

img=$LT_WORK/img
lt_sparse "$img" 32M
printf 'label: dos\nstart=2048, size=8192\n' | sfdisk -q "$img"
dev=$(losetup -f)
n=${dev#/dev/}
log=$LT_WORK/events
lt_uevent_monitor "$log" --subsystem-match=block
# events: the block events seen so far, "ACTION DEVNAME[+media]" per line, for this device.
events() {
	awk -v RS= -v n="$n" '{
		a = ""; d = ""; m = ""
		for (i = 1; i <= split($0, l, "\n"); i++) {
			if (l[i] ~ /^ACTION=/) a = substr(l[i], 8)
			if (l[i] ~ /^DEVNAME=/) d = substr(l[i], 14)
			if (l[i] ~ /^DISK_MEDIA_CHANGE=1/) m = "+media"
		}
		if (d ~ "^" n) print a " " d m
	}' "$log"
}
# The unbind's events are all written out (each printed once its DEVNAME line is there).
# shellcheck disable=SC2317
ended() { grep -qx "remove ${n}p1" <<<"$(events)" && grep -qx "change $n+media" <<<"$(events)"; }
lt_expect "OK 0" configure "$dev" "$img" --flags 8 --dev-ro --file-ro
udevadm settle
lt_expect "OK 0" clr-fd "$dev" --dev-ro
udevadm settle
lt_wait 60 ended || true
kill "$LT_UEVENT_MONITOR"
wait "$LT_UEVENT_MONITOR" 2>/dev/null || true
events=$(events)
lt_log "events: $(tr '\n' ',' <<<"$events")"
[ -n "$events" ] || sed 's/^/# monitor: /' "$log" | head -n 40
grep -qx "change $n" <<<"$events" || lt_fail "no change event for $n"
grep -qx "add ${n}p1" <<<"$events" || lt_fail "no add event for ${n}p1"
grep -qx "remove ${n}p1" <<<"$events" || lt_fail "no remove event for ${n}p1"
grep -qx "change $n+media" <<<"$events" || lt_fail "no media change event for $n"
[ "$(grep -cx "add ${n}p1" <<<"$events")" = 1 ] || lt_fail "more than one add for ${n}p1"
exit 0
