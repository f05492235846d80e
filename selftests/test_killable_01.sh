#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Waiting for the device mutex is killable, as loop.c's mutex_lock_killable: a task stuck behind a
# long reconfiguration dies on SIGKILL at once. Setup: a backing block device that answers after
# 10 s (60 s on a debug kernel; dm-delay), a read in flight through the loop device,
# LOOP_SET_DIRECT_IO holding the device mutex while the queue freeze waits for that read, and
# LOOP_GET_STATUS64 waiting for the mutex. The waiter is killed: it must be gone while the freeze
# is still waiting (with an uninterruptible lock it would stay until the read completes).
# Meanwhile the sysfs loop/ attributes are read: loop.c reads them without the mutex, so the
# read must end while the holder still holds it (losetup -l and udev read them), with the values
# they had before. And LOOP_CTL_REMOVE of the device, waiting for the mutex, holds no global lock
# meanwhile (loop.c hides the device and drops loop_ctl_mutex first): a second LOOP_CTL_REMOVE of
# it is ENODEV at once and LOOP_CTL_GET_FREE answers, while the first still waits; once the holder
# is done, the first is EBUSY (bound) and the device is visible again (EBUSY, not ENODEV).
. "$(dirname "$0")/lib.sh"
lt_need dmsetup

sd=$(lt_scsi_debug dev_size_mb=32)
lt_dm_on_exit rl-delay
modprobe dm-delay 2>/dev/null || true
sectors=$(blockdev --getsz "$sd")
dmsetup create rl-delay --table "0 $sectors linear $sd 0" || lt_skip "no device-mapper"
udevadm settle
dev=$(lt_attach /dev/mapper/rl-delay --direct-io=on)
n=${dev#/dev/loop}
udevadm settle
# loop_attrs: the device's sysfs loop/ attributes, one "name value" line each.
loop_attrs() {
	local a v
	for a in backing_file offset sizelimit autoclear partscan dio; do
		v=$(cat "/sys/block/loop$n/loop/$a") || return 1
		echo "$a $v"
	done
}
attrs_before=$(loop_attrs)
# Slow from now on: I/O to the middle third takes 10 s (60 s on a debug kernel, where the steps
# below are many times slower: they must fit in the window). The ends, where udev's probes read,
# stay fast, and nothing waits for udev meanwhile.
delay_ms=10000
if lt_debug_kernel; then delay_ms=60000; fi
third=$((sectors / 3))
dmsetup --noudevsync suspend rl-delay
dmsetup --noudevsync load rl-delay --table "0 $third linear $sd 0
$third $third delay $sd $third $delay_ms
$((2 * third)) $((sectors - 2 * third)) linear $sd $((2 * third))" || lt_skip "no dm-delay"
dmsetup --noudevsync resume rl-delay

# state PID: the task's state letter (R, S, D, ...), or nothing once it is gone.
# shellcheck disable=SC2317 # called through lt_wait
state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true; }
# wait_until WHAT CMD...: wait (up to 60 s) until CMD succeeds.
wait_until() {
	local what=$1
	shift
	lt_wait 60 "$@" || lt_fail "$what did not happen within 60 s"
}
# answered OUT: the ioctl of OUT's process has returned (OUT has its result).
# shellcheck disable=SC2317 # called through wait_until
answered() { grep -q '^OK\|^ERR' "$1"; }
# blocked PID OUT: the process sleeps uninterruptibly (or killably: D) and has not returned
# from its ioctl.
# shellcheck disable=SC2317 # called through wait_until
blocked() { [ "$(state "$1")" = D ] && ! answered "$2"; }
# shellcheck disable=SC2317 # called through wait_until
ready() { grep -q "^ready" "$1"; }

# ioctl_when_told NODE CMD ARG FIFO OUT: a process that opens NODE, says "ready", waits for a
# line on FIFO and only then issues the ioctl (python takes seconds to start under emulation).
ioctl_when_told() {
	python3 - "$1" "$2" "$3" "$4" >"$5" 2>&1 <<'PY' &
import fcntl, os, sys
node, cmd, arg, fifo = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3], 0), sys.argv[4]
fd = os.open(node, os.O_RDONLY)
buf = bytearray(232)
print("ready", flush=True)
with open(fifo) as f:
    f.readline()
try:
    print("OK", fcntl.ioctl(fd, cmd, buf if arg < 0 else arg), flush=True)
except OSError as e:
    print("ERR", e.errno, flush=True)
PY
}
mkfifo "$LT_WORK/go-holder" "$LT_WORK/go-waiter" "$LT_WORK/go-remover" \
	"$LT_WORK/go-remover2" "$LT_WORK/go-getfree"
ioctl_when_told "$dev" 0x4C08 0 "$LT_WORK/go-holder" "$LT_WORK/setdio" # LOOP_SET_DIRECT_IO 0
holder=$!
ioctl_when_told "$dev" 0x4C05 -1 "$LT_WORK/go-waiter" "$LT_WORK/status" # LOOP_GET_STATUS64
waiter=$!
ioctl_when_told /dev/loop-control 0x4C81 "$n" "$LT_WORK/go-remover" "$LT_WORK/remove" # LOOP_CTL_REMOVE
remover=$!
ioctl_when_told /dev/loop-control 0x4C81 "$n" "$LT_WORK/go-remover2" "$LT_WORK/remove2"
remover2=$!
ioctl_when_told /dev/loop-control 0x4C82 0 "$LT_WORK/go-getfree" "$LT_WORK/getfree" # LOOP_CTL_GET_FREE
getfree=$!
wait_until "the LOOP_SET_DIRECT_IO process starting" ready "$LT_WORK/setdio"
wait_until "the LOOP_GET_STATUS64 process starting" ready "$LT_WORK/status"
wait_until "the first LOOP_CTL_REMOVE process starting" ready "$LT_WORK/remove"
wait_until "the second LOOP_CTL_REMOVE process starting" ready "$LT_WORK/remove2"
wait_until "the LOOP_CTL_GET_FREE process starting" ready "$LT_WORK/getfree"

dd if="$dev" of=/dev/null bs=4k count=1 skip=$((third / 8 + 16)) iflag=direct status=none &
reader=$!
# shellcheck disable=SC2317 # called through wait_until
in_flight() { [ "$(awk '{ print $1 + $2 }' "/sys/block/loop$n/inflight")" -gt 0 ]; }
wait_until "the read getting in flight" in_flight
# The holder takes the mutex and freezes the queue, which waits for the read (the window).
echo go >"$LT_WORK/go-holder"
wait_until "LOOP_SET_DIRECT_IO blocking (in the queue freeze, under the mutex)" \
	blocked "$holder" "$LT_WORK/setdio"
# The waiter needs only the mutex: blocked means waiting for it.
echo go >"$LT_WORK/go-waiter"
wait_until "LOOP_GET_STATUS64 blocking (on the device mutex)" blocked "$waiter" "$LT_WORK/status"
# The setup must fit in the window: with the read done already there is nothing to conclude.
# (The read's own count on the device, which is what the holder's queue freeze waits for.)
in_flight ||
	lt_fail "the delayed read ended during the setup: it took longer than the ${delay_ms} ms window"
read_ended=
# gone PID: the process has exited (or is a zombie); until then, notes when the read ended.
# Called through lt_wait.
# shellcheck disable=SC2317
gone() {
	gone_state=$(state "$1")
	if [ -z "$gone_state" ] || [ "$gone_state" = Z ]; then return 0; fi
	[ -n "$read_ended" ] || in_flight || read_ended=$(date +%s%N)
	return 1
}
# The sysfs attributes, read while the holder holds the mutex: they do not wait for it.
# gone_in_flight PID: as gone, and notes whether the read was still in flight just before the
# process was seen gone (sampled first: a process seen gone had ended by then).
# shellcheck disable=SC2317
gone_in_flight() {
	in_flight_then=0
	! in_flight || in_flight_then=1
	gone "$1" || return 1
}
loop_attrs >"$LT_WORK/attrs" &
attrs_reader=$!
lt_wait 30 gone_in_flight "$attrs_reader" ||
	lt_fail "reading sysfs loop/ is still waiting (state $gone_state) after 30 s"
wait "$attrs_reader" || lt_fail "reading sysfs loop/ failed"
[ "$in_flight_then" = 1 ] ||
	lt_fail "reading sysfs loop/ ended only after the delayed read, once the mutex holder was done"
lt_eq "$(cat "$LT_WORK/attrs")" "$attrs_before" "sysfs loop/ while LOOP_SET_DIRECT_IO holds the mutex"

kill -KILL "$waiter"
killed=$(date +%s%N)
# A killable wait ends now; an uninterruptible one only when the holder lets go, once the read
# is done.
lt_wait 30 gone "$waiter" ||
	lt_fail "the killed waiter is still there (state $gone_state) after 30 s"
wait "$waiter" 2>/dev/null || true
# Seen gone: if the read is still in flight, the holder still holds the mutex, and the waiter
# went without it.
[ -n "$read_ended" ] || in_flight || read_ended=$(date +%s%N)
if [ -n "$read_ended" ]; then
	# The read (and so the holder) may have ended first: the driver's fault only if the
	# waiter outlived the kill by far more than a killable wait takes (a scheduling delay;
	# a fifth of the window: 2 s, 12 s on a debug kernel).
	after_ms=$(((read_ended - killed) / 1000000))
	[ "$after_ms" -ge $((delay_ms / 5)) ] ||
		lt_fail "the delayed read ended ${after_ms} ms after the kill: too soon to tell a killable wait from an uninterruptible one (window ${delay_ms} ms)"
	lt_fail "the killed waiter only went once the mutex holder was done, ${after_ms} ms after the kill ($(cat "$LT_WORK/setdio"))"
fi

# LOOP_CTL_REMOVE waits for the device mutex (to check that the device is unbound and unopened)
# with the device hidden and no global lock held.
echo go >"$LT_WORK/go-remover"
wait_until "LOOP_CTL_REMOVE blocking (on the device mutex)" blocked "$remover" "$LT_WORK/remove"
# answered_meanwhile WHAT OUT: OUT's ioctl returns, and the delayed read is still in flight then
# (sampled after the answer: the holder still holds the mutex, behind which the first removal
# waits).
answered_meanwhile() {
	wait_until "$1 answering" answered "$2"
	in_flight ||
		lt_fail "$1 answered only after the delayed read: it waited for the first removal (a global lock held), or the steps took longer than the ${delay_ms} ms window"
}
echo go >"$LT_WORK/go-remover2"
answered_meanwhile "a second LOOP_CTL_REMOVE of the device" "$LT_WORK/remove2"
echo go >"$LT_WORK/go-getfree"
answered_meanwhile "LOOP_CTL_GET_FREE" "$LT_WORK/getfree"
blocked "$remover" "$LT_WORK/remove" || lt_fail "the first LOOP_CTL_REMOVE ended while the mutex was held: $(cat "$LT_WORK/remove")"
lt_eq "$(tail -n 1 "$LT_WORK/remove2")" "ERR 19" "LOOP_CTL_REMOVE of a device another removal works on (hidden: ENODEV)"
wait "$remover2" || true
wait "$getfree" || true
grep -q '^OK [0-9]' "$LT_WORK/getfree" || lt_fail "LOOP_CTL_GET_FREE: $(cat "$LT_WORK/getfree")"
free=$(awk '/^OK/ { print $2 }' "$LT_WORK/getfree")
[ "$free" != "$n" ] || lt_fail "LOOP_CTL_GET_FREE gave the bound device loop$n"

wait "$holder" || lt_fail "LOOP_SET_DIRECT_IO failed"
lt_eq "$(tail -n 1 "$LT_WORK/setdio")" "OK 0" "LOOP_SET_DIRECT_IO after the read completed"
wait "$remover" || true
lt_eq "$(tail -n 1 "$LT_WORK/remove")" "ERR 16" "LOOP_CTL_REMOVE of the bound device, once the mutex was free"
# Shown again: another removal finds it (and it is still bound).
lt_eq "$(python3 -S "$LT_DIR/loopctl.py" ctl-remove "$n")" "ERR EBUSY" "LOOP_CTL_REMOVE after a refused one"
wait "$reader" || lt_fail "the delayed read failed"
dmsetup --noudevsync suspend rl-delay
dmsetup --noudevsync load rl-delay --table "0 $sectors linear $sd 0"
dmsetup --noudevsync resume rl-delay
losetup -d "$dev"
exit 0
