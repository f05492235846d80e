#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Waiting for the device mutex is killable, as loop.c's mutex_lock_killable: a task stuck behind a
# long reconfiguration dies on SIGKILL at once. Setup: a backing block device that holds I/O until
# the test lets it go (a suspended device-mapper table: no time window to fit the steps in), a
# read held there through the loop device, LOOP_SET_DIRECT_IO holding the device mutex while the
# queue freeze waits for that read, and LOOP_GET_STATUS64 waiting for the mutex. The waiter is
# killed: it must be gone while the read is still held (with an uninterruptible lock it would
# stay until the test lets the read complete). The held tasks sleep uninterruptibly meanwhile: the
# steps up to the resume must take less than the hung-task report's 120 s (a few seconds here,
# under 60 s on the debug kernel).
# Meanwhile the sysfs loop/ attributes are read: loop.c reads them without the mutex, so the
# read must end while the holder still holds it (losetup -l and udev read them), with the values
# they had before. And LOOP_CTL_REMOVE of the device, waiting for the mutex, holds no global lock
# meanwhile (loop.c hides the device and drops loop_ctl_mutex first): a second LOOP_CTL_REMOVE of
# it is ENODEV at once and LOOP_CTL_GET_FREE answers, while the first still waits; once the holder
# is done, the first is EBUSY (bound) and the device is visible again (EBUSY, not ENODEV).
. "$(dirname "$0")/lib.sh"
lt_need dmsetup

sd=$(lt_scsi_debug dev_size_mb=32)
sectors=$(blockdev --getsz "$sd")
lt_dm_create rl-hold "0 $sectors linear $sd 0"
dev=$(lt_attach /dev/mapper/rl-hold --direct-io=on)
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
# The read reaches the backing device only as direct I/O (a buffered one could hit the cache).
grep -qx "dio 1" <<<"$attrs_before" || lt_fail "loop$n is not in direct I/O mode: $attrs_before"

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

# From now on the backing device holds every I/O (device-mapper queues it while suspended) until
# the test resumes it, once it has seen what happens meanwhile; nothing waits for udev until then
# (and nothing opens the loop device: an open waiting for the device mutex would hold the disk's
# open_mutex, which the killed waiter's close needs).
dmsetup --noudevsync suspend rl-hold
dd if="$dev" of=/dev/null bs=4k count=1 skip=4096 iflag=direct status=none &
reader=$!
# in_flight: the read is on the device (its count there is what the holder's queue freeze
# waits for).
# shellcheck disable=SC2317 # called through wait_until
in_flight() { [ "$(awk '{ print $1 + $2 }' "/sys/block/loop$n/inflight")" -gt 0 ]; }
# still_held WHAT: the read is still in flight, so the holder still holds the mutex (WHAT
# happened meanwhile); it fails at once if the read ended (the backing device held it: the
# driver ended it itself, with an error, say).
still_held() { in_flight || lt_fail "the held read ended before the backing device was resumed ($1)"; }
# read_started: the read is in flight; fails at once if dd is already gone.
# shellcheck disable=SC2317 # called through wait_until
read_started() {
	in_flight && return 0
	kill -0 "$reader" 2>/dev/null || lt_fail "the read ended before it was seen in flight"
	return 1
}
wait_until "the read getting in flight" read_started
# The holder takes the mutex and freezes the queue, which waits for the held read.
echo go >"$LT_WORK/go-holder"
# shellcheck disable=SC2317 # called through wait_until
holder_blocked() { still_held "LOOP_SET_DIRECT_IO started" && blocked "$@"; }
wait_until "LOOP_SET_DIRECT_IO blocking (in the queue freeze, under the mutex)" \
	holder_blocked "$holder" "$LT_WORK/setdio"
# The waiter needs only the mutex: blocked means waiting for it.
echo go >"$LT_WORK/go-waiter"
wait_until "LOOP_GET_STATUS64 blocking (on the device mutex)" blocked "$waiter" "$LT_WORK/status"
still_held "LOOP_GET_STATUS64 blocked"
# gone PID: the process has exited (or is a zombie). Called through lt_wait.
# shellcheck disable=SC2317
gone() {
	gone_state=$(state "$1")
	[ -z "$gone_state" ] || [ "$gone_state" = Z ]
}
# The sysfs attributes, read while the holder holds the mutex: they do not wait for it (if they
# did, they would wait until the test resumes the backing device).
loop_attrs >"$LT_WORK/attrs" &
attrs_reader=$!
lt_wait 30 gone "$attrs_reader" ||
	lt_fail "reading sysfs loop/ is still waiting (state $gone_state) after 30 s, while LOOP_SET_DIRECT_IO holds the mutex"
wait "$attrs_reader" || lt_fail "reading sysfs loop/ failed"
still_held "reading sysfs loop/"
lt_eq "$(cat "$LT_WORK/attrs")" "$attrs_before" "sysfs loop/ while LOOP_SET_DIRECT_IO holds the mutex"

# A killable wait ends now; an uninterruptible one only when the holder lets go, once the test
# lets the read complete.
kill -KILL "$waiter"
lt_wait 30 gone "$waiter" ||
	lt_fail "the killed waiter is still there (state $gone_state) after 30 s, while LOOP_SET_DIRECT_IO holds the mutex"
wait "$waiter" 2>/dev/null || true
still_held "the killed waiter went"

# LOOP_CTL_REMOVE waits for the device mutex (to check that the device is unbound and unopened)
# with the device hidden and no global lock held.
echo go >"$LT_WORK/go-remover"
wait_until "LOOP_CTL_REMOVE blocking (on the device mutex)" blocked "$remover" "$LT_WORK/remove"
# answered_meanwhile WHAT OUT: OUT's ioctl returns while the holder still holds the mutex, behind
# which the first removal waits (if it waited for that removal, it would not answer before the
# test resumes the backing device).
answered_meanwhile() {
	wait_until "$1 answering (it waits behind the first removal: a global lock held?)" answered "$2"
	still_held "$1 answered"
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

# Let the read go: the holder's freeze ends, then its ioctl, then the first removal's wait.
dmsetup --noudevsync resume rl-hold
wait "$holder" || lt_fail "LOOP_SET_DIRECT_IO failed"
lt_eq "$(tail -n 1 "$LT_WORK/setdio")" "OK 0" "LOOP_SET_DIRECT_IO after the read completed"
wait "$remover" || true
lt_eq "$(tail -n 1 "$LT_WORK/remove")" "ERR 16" "LOOP_CTL_REMOVE of the bound device, once the mutex was free"
# Shown again: another removal finds it (and it is still bound).
lt_eq "$(python3 -S "$LT_DIR/loopctl.py" ctl-remove "$n")" "ERR EBUSY" "LOOP_CTL_REMOVE after a refused one"
wait "$reader" || lt_fail "the held read failed"
losetup -d "$dev"
exit 0
