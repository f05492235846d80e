#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Reconfiguration while I/O is in flight, each on its own. LOOP_SET_BLOCK_SIZE 512 <-> 4096, 12
# times, under verifying fio with direct I/O on (the change freezes the queue with I/O queued; the
# limits lock -> freeze order fixed once shows as a hang here, as a lockdep report on the debug
# kernel). LOOP_SET_STATUS64 moving the offset 0 <-> 1 MiB, 12 times, under buffered and direct
# readers: no read fails, and afterwards the device reads the window of its offset. LOOP_CLR_FD
# while verifying fio writes through the device: the clear is deferred (fio and the test hold the
# device open; fio closes and reopens it between its runs), writes keep completing after it, fio
# finishes without an error, and the device is unbound at the last close. Cycle detection two
# levels deep: loop A <- loop B <- loop C, then LOOP_CHANGE_FD of A to C is EBADF (a cycle), while
# binding a fourth device to C is fine and reads the file. LOOP_CTL_REMOVE, LOOP_CTL_ADD and
# LOOP_CTL_GET_FREE on one device number (200 calls) racing with opens of it: every call returns
# one of its documented outcomes (remove: OK, EBUSY, ENODEV; add: OK, EEXIST), and the device can
# be removed and added afterwards.
. "$(dirname "$0")/lib.sh"
lt_need fio jq

img=$LT_WORK/img
lt_file "$img" 32M
stop=$LT_WORK/stop

# under_fio DEV TAG CMD...: run verifying fio on DEV back to back while CMD runs (at least two
# fio runs); fail if fio or CMD fails.
under_fio() {
	local dev=$1 tag=$2 fio_pid
	shift 2
	rm -f "$stop"
	lt_fio_loop "$stop" "$LT_WORK/fio.$tag.log" "$dev" 4096 libaio 2 16 4M >/dev/null &
	fio_pid=$!
	if ! ("$@"); then
		touch "$stop"
		wait "$fio_pid" || true
		lt_fail "$tag: $* failed"
	fi
	touch "$stop"
	wait "$fio_pid" || lt_fail "$tag: verifying fio failed meanwhile"
}

# Called through under_fio.
# shellcheck disable=SC2317
flip_bs() {
	local i
	for i in $(seq 1 12); do
		lt_expect "OK 0" set-bs "$1" $((i % 2 ? 4096 : 512))
	done
}
dev=$(lt_attach "$img" --direct-io=on)
under_fio "$dev" block-size flip_bs "$dev"
lt_log "12 block size changes under verifying fio"
losetup -d "$dev"
udevadm settle

# Readers (buffered and direct) while the offset moves.
move_offset() {
	local i
	for i in $(seq 1 12); do
		lt_expect "OK 0" set-status64 "$1" --offset $((i % 2 ? 1 << 20 : 0))
	done
}
dev=$(lt_attach "$img")
rm -f "$stop" "$LT_WORK/reads"
(
	while [ ! -e "$stop" ]; do
		dd if="$dev" of=/dev/null bs=64k count=256 iflag=direct status=none || exit 1
		dd if="$dev" of=/dev/null bs=64k count=256 status=none || exit 1
		echo >>"$LT_WORK/reads"
	done
) &
reader=$!
# rounds: rounds of reads completed so far; the readers loop until the stop file, so a round
# completed before the first move and one completed after the last mean they read throughout.
rounds() { [ -e "$LT_WORK/reads" ] && wc -l <"$LT_WORK/reads" || echo 0; }
# more_rounds N: more than N rounds done, or the readers gone (a failed read: see wait below).
# Called through lt_wait.
# shellcheck disable=SC2317
more_rounds() { [ "$(rounds)" -gt "$1" ] || lt_ended "$reader"; }
lt_wait 300 more_rounds 0 || lt_fail "the readers completed no round in 300 s"
move_offset "$dev"
lt_wait 300 more_rounds "$(rounds)" || lt_fail "the readers completed no round after the moves"
touch "$stop"
wait "$reader" || lt_fail "a read failed while the offset moved"
lt_log "$(wc -l <"$LT_WORK/reads") rounds of reads while the offset moved"
lt_eq "$(lt_sysfs "$dev" loop/offset)" 0 "offset after the last move"
# Direct reads: a buffered reader may have cached the old window's data meanwhile (loop.c
# drops the page cache before it freezes the queue for the change).
lt_eq "$(dd if="$dev" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
	"$(lt_sum "$img")" "device reads the file at offset 0"
lt_expect "OK 0" set-status64 "$dev" --offset $((1 << 20))
lt_eq "$(dd if="$dev" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
	"$(lt_sum "$img" $((31 << 20)) $((1 << 20)))" \
	"device reads the file from 1 MiB after the offset moved there"
losetup -d "$dev"
udevadm settle

# LOOP_CLR_FD with fio writing: deferred to the last close, which is the test's own (fio closes
# and reopens the device between its loops). The fio loop runs until told to stop, so it is
# writing when LOOP_CLR_FD comes, however fast the driver is; writes completing after the clear
# show the device kept serving I/O.
dev=$(lt_attach "$img" --direct-io=on)
exec 4<"$dev"
# Writes completed: field 5 of stat (the counters survive a rebind of the device).
# more_writes N: more than N writes done, or fio gone (its wait below says why).
# Called through lt_wait.
# shellcheck disable=SC2317
more_writes() { [ "$(lt_stat "$dev" 5)" -gt "$1" ] || lt_ended "$fio_pid"; }
rm -f "$stop"
lt_fio_loop "$stop" "$LT_WORK/fio.clr.log" "$dev" 4096 libaio 2 16 4M >/dev/null &
fio_pid=$!
lt_wait 300 more_writes "$(lt_stat "$dev" 5)" || lt_fail "fio completed no write on $dev in 300 s"
lt_expect "OK 0" clr-fd "$dev"
lt_wait 300 more_writes "$(lt_stat "$dev" 5)" ||
	lt_fail "no write completed on $dev in 300 s after the deferred LOOP_CLR_FD"
touch "$stop"
wait "$fio_pid" || lt_fail "verifying fio failed after a deferred LOOP_CLR_FD"
lt_bound "$dev" || lt_fail "$dev unbound while the test still had it open"
lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 1 "loop/autoclear after the deferred LOOP_CLR_FD"
exec 4<&-
udevadm settle
! lt_bound "$dev" || lt_fail "$dev still bound after its last opener closed"
lt_log "LOOP_CLR_FD deferred until the last close, fio wrote meanwhile"

# Cycle detection two levels deep.
a=$(lt_attach "$img" -r)
b=$(lt_attach "$a" -r)
c=$(lt_attach "$b" -r)
lt_expect "ERR EBADF" change-fd "$a" "$c" --file-ro
d=$(losetup -f)
lt_expect "OK 0" set-fd "$d" "$c" --file-ro
lt_eq "$(lt_sum "$d")" "$(lt_sum "$img")" "a device three levels over the file"
losetup -d "$d" "$c" "$b" "$a"
udevadm settle

# LOOP_CTL_REMOVE/ADD/GET_FREE racing with opens.
n=$(lt_ioctl ctl-get-free | cut -d' ' -f2)
rm -f "$stop" "$LT_WORK/opens"
(
	while [ ! -e "$stop" ]; do
		if { exec 3<"/dev/loop$n"; } 2>/dev/null; then
			exec 3<&-
			echo >>"$LT_WORK/opens"
		fi
	done
	exit 0
) &
opener=$!
# The opener loops until the stop file: once it has opened the device, it runs through the storm.
lt_wait 300 test -s "$LT_WORK/opens" || lt_fail "the opener never opened loop$n"
out=$(lt_ioctl ctl-storm 200 1 "$n" "$n")
touch "$stop"
wait "$opener"
lt_log "$(wc -l <"$LT_WORK/opens") opens of loop$n, the storm amid them"
lt_log "LOOP_CTL_* on loop$n racing with opens: $(tail -n 1 <<<"$out")"
lt_eq "$(head -n 1 <<<"$out")" "OK 200" "the calls of the storm"
bad=$(tail -n 1 <<<"$out" | jq -r 'keys[] | select(IN("add:OK", "add:EEXIST", "remove:OK",
	"remove:EBUSY", "remove:ENODEV", "get_free:OK") | not)')
[ -z "$bad" ] || lt_fail "unexpected outcomes: $bad"
udevadm settle
lt_ioctl ctl-add "$n" >/dev/null
udevadm settle
lt_expect "OK 0" ctl-remove "$n"
lt_expect "OK $n" ctl-add "$n"
exit 0
