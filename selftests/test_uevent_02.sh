#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Every kernel uevent of a device's life and every kernel log line naming it, step by step and
# with their properties, must be loop.ko's: created, bound with a partition table, resized by
# LOOP_SET_STATUS64 and LOOP_SET_CAPACITY (RESIZE=1, or a plain change when the size is the
# same), given another block size and direct I/O, its file changed, unbound, bound again by
# LOOP_SET_FD with partitions scanned later, cleared by autoclear at its last close, removed;
# calls that fail send nothing. udev and systemd act on these (RESIZE=1, DISK_MEDIA_CHANGE=1,
# DISKSEQ). udev executes no event meanwhile and the device is only opened read-only (root may
# reconfigure it so), so no event of udev's own (its watch rule's synthesized change) mixes in.
. "$(dirname "$0")/lib.sh"
lt_need sfdisk udevadm

nr=57
n=loop$nr
dev=/dev/$n
img=$LT_WORK/img
img2=$LT_WORK/img2
lt_sparse "$img" 32M
# A fixed disk identifier: the partition's PARTUUID is in its events.
printf 'label: dos\nlabel-id: 0x4c4f4f50\nstart=2048, size=8192\n' | sfdisk -q "$img"
cp --sparse=always "$img" "$img2"
log=$LT_WORK/events
lt_uevent_monitor "$log"
lt_udev_hold
# A step's uevents are sent, and its kernel log lines written, before its loopctl run ends (the
# ioctl sends them, or the release at its last close, which runs before its exit is reported).
# Where the next step begins is marked by a synthesized event on loop-control in the monitor's
# stream, and by a line written to /dev/kmsg in the kernel log. (An event a driver sent later,
# from a work item, would most often still come before the next marker: the record checks the
# order of events within a step and across steps, not that each is sent by the call itself.)
ctl=/sys/devices/virtual/misc/loop-control/uevent
tag="uevent_02.$$.$RANDOM"
# The marker's value is the step's number (a synthesized event's values are alphanumeric).
steps=$LT_WORK/steps
nstep=0
step() {
	nstep=$((nstep + 1))
	echo "$nstep $1" >>"$steps"
	echo "change 00000000-0000-0000-0000-000000000000 STEP=$nstep" >"$ctl"
	echo "$tag step $1" >/dev/kmsg
}
step begin
lt_ctl_add $nr
step configure
lt_expect "OK 0" configure "$dev" "$img" --flags 8 --bs 512 --dev-ro --file-ro
step configure-busy
lt_expect "ERR EBUSY" configure "$dev" "$img" --dev-ro --file-ro
step sizelimit-16M
lt_expect "OK 0" set-status64 "$dev" --sizelimit 16777216 --dev-ro
step sizelimit-same
lt_expect "OK 0" set-status64 "$dev" --sizelimit 16777216 --dev-ro
step sizelimit-0
lt_expect "OK 0" set-status64 "$dev" --dev-ro
step capacity-grown
truncate -s 48M "$img"
truncate -s 48M "$img2"
lt_expect "OK 0" set-capacity "$dev" --dev-ro
step capacity-same
lt_expect "OK 0" set-capacity "$dev" --dev-ro
step blocksize-4096
lt_expect "OK 0" set-bs "$dev" 4096 --dev-ro
step blocksize-bad
lt_expect "ERR EINVAL" set-bs "$dev" 3000 --dev-ro
step blocksize-512
lt_expect "OK 0" set-bs "$dev" 512 --dev-ro
step dio-on
lt_expect "OK 0" set-dio "$dev" 1 --dev-ro
step dio-off
lt_expect "OK 0" set-dio "$dev" 0 --dev-ro
step change-fd
lt_expect "OK 0" change-fd "$dev" "$img2" --dev-ro --file-ro
step clr-fd
lt_expect "OK 0" clr-fd "$dev" --dev-ro
step clr-fd-unbound
lt_expect "ERR ENXIO" clr-fd "$dev" --dev-ro
step set-fd
lt_expect "OK 0" set-fd "$dev" "$img" --dev-ro --file-ro
step set-partscan
lt_expect "OK 0" set-status64 "$dev" --flags 8 --dev-ro
step autoclear
lt_expect "OK 0" set-status64 "$dev" --flags 12 --dev-ro
step remove
lt_expect "OK 0" ctl-remove $nr
step end
# shellcheck disable=SC2317
ended() { grep -q "^SYNTH_ARG_STEP=$nstep\$" "$log"; }
lt_wait 60 ended || lt_fail "the last step's marker did not reach udevadm monitor within 60 s"
kill "$LT_UEVENT_MONITOR"
wait "$LT_UEVENT_MONITOR" 2>/dev/null || true

# The record: per step, each uevent of the device or its partitions (action, name, then its
# properties sorted; DISKSEQ as the difference from the first one seen, SEQNUM left out, the
# device's number as N), then the kernel log lines naming the device.
events=$LT_WORK/record.events
awk -v n="$n" '
	FNR == NR { name[$1] = $2; next }
	{
		delete p
		for (i = 1; i <= split($0, l, "\n"); i++) {
			if (l[i] ~ /^[A-Z_0-9]+=/) {
				k = l[i]; sub(/=.*/, "", k)
				p[k] = substr(l[i], length(k) + 2)
			}
		}
		if ("SYNTH_ARG_STEP" in p) { print "== " name[p["SYNTH_ARG_STEP"]]; next }
		sub(/^\/dev\//, "", p["DEVNAME"])
		if (p["DEVNAME"] !~ "^" n "(p[0-9]+)?$") next
		# A partition of a loop device has an extended number (major 259), whichever is free.
		if (p["MAJOR"] == 259) p["MINOR"] = "ext"
		if ("DISKSEQ" in p) {
			if (base == "") base = p["DISKSEQ"]
			p["DISKSEQ"] = "+" (p["DISKSEQ"] - base)
		}
		line = p["ACTION"] " " p["DEVNAME"]
		m = 0
		for (k in p) if (k != "ACTION" && k != "DEVNAME" && k != "SEQNUM") keys[++m] = k
		for (i = 2; i <= m; i++) for (j = i; j > 1 && keys[j - 1] > keys[j]; j--) {
			t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t
		}
		for (i = 1; i <= m; i++) line = line " " keys[i] "=" p[keys[i]]
		gsub(n, "loopN", line)
		print line
	}' "$steps" RS= "$log" >"$events"
klog=$LT_WORK/record.klog
# `dmesg | awk` under pipefail: awk reads it all, so dmesg never gets SIGPIPE.
dmesg | awk -v mark="$tag step " -v n="$n" '
	i = index($0, mark) { on = 1; print "== " substr($0, i + length(mark)); next }
	on && index($0, n) { sub(/^\[[ 0-9.]*\] /, ""); gsub(n, "loopN"); print }' >"$klog"
record=$LT_WORK/record
# Each step: its uevents, then its log lines.
awk -v events="$events" '
	/^== / { s = substr($0, 4); if (!(s in seen)) { seen[s] = 1; order[++ns] = s }; next }
	{ body[s] = body[s] (FILENAME == events ? "uevent " : "klog ") $0 "\n" }
	END { for (i = 1; i <= ns; i++) printf "step %s\n%s", order[i], body[order[i]] }' \
	"$events" "$klog" >"$record"
sed 's/^/# /' "$record"

# The step's uevents ("ACTION NAME PROPERTY..." lines), for the assertions below.
step_events() { awk -v s="step $1" '$0 == s { on = 1; next } /^step / { on = 0 } on && /^uevent / { print substr($0, 8) }' "$record"; }
count() { step_events "$1" | grep -c "$2" || true; }
lt_eq "$(count begin '^add loopN ')" 1 "add events of LOOP_CTL_ADD"
# One of the bind, one of the partition scan (bdev_disk_changed()).
lt_eq "$(count configure '^change loopN ')" 2 "change events of the disk at LOOP_CONFIGURE with LO_FLAGS_PARTSCAN"
lt_eq "$(count configure '^add loopNp1 ')" 1 "partition add events at LOOP_CONFIGURE with LO_FLAGS_PARTSCAN"
for s in configure-busy sizelimit-same blocksize-4096 blocksize-bad blocksize-512 dio-on dio-off clr-fd-unbound; do
	lt_eq "$(step_events $s | wc -l)" 0 "uevents of step $s"
done
lt_eq "$(count sizelimit-16M '^change loopN .*RESIZE=1')" 1 "RESIZE=1 change events of a smaller size limit"
lt_eq "$(count capacity-grown '^change loopN .*RESIZE=1')" 1 "RESIZE=1 change events of LOOP_SET_CAPACITY after the file grew"
lt_eq "$(count capacity-same '^change loopN ')" 1 "change events of LOOP_SET_CAPACITY without a new size"
lt_eq "$(count capacity-same 'RESIZE=\|DISK_MEDIA_CHANGE=')" 0 "RESIZE or media change events of LOOP_SET_CAPACITY without a new size"
lt_eq "$(count clr-fd '^change loopN .*DISK_MEDIA_CHANGE=1')" 1 "media change events at LOOP_CLR_FD"
lt_eq "$(count clr-fd '^remove loopNp1 ')" 1 "partition remove events at LOOP_CLR_FD"
lt_eq "$(count set-partscan '^add loopNp1 ')" 1 "partition add events when LOOP_SET_STATUS64 sets LO_FLAGS_PARTSCAN"
lt_eq "$(count autoclear '^change loopN .*DISK_MEDIA_CHANGE=1')" 1 "media change events when autoclear unbinds at the last close"
lt_eq "$(count remove '^remove loopN ')" 1 "remove events of LOOP_CTL_REMOVE"
lt_same_as_c uevent_02 "$record" "the record of uevents and kernel log lines"
exit 0
