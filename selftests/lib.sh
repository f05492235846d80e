# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Common library of the rust-loop selftests (sourced by every test_<area>_<nn>.sh).
#
# A test runs against one driver, chosen by the runner (run.sh) through the environment:
#   LT_DRIVER   "c" (the kernel's loop.ko) or "rust" (this repository's loop.ko); the driver is
#               loaded on entry
#   LT_WORK     an empty scratch directory on a disk file system (ext4), removed afterwards
# It exits 0 (pass), 4 (skip) or anything else (fail), printing "# " diagnostics. The same test
# must pass on both drivers: loop.ko is the oracle.

set -euo pipefail

LT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LT_REPO=$(cd "$LT_DIR/.." && pwd)
LT_DRIVER=${LT_DRIVER:-rust}
LT_WORK=${LT_WORK:-$(mktemp -d /tmp/lt.XXXXXX)}
KSFT_FAIL=1
KSFT_SKIP=4
export LT_DIR LT_REPO LT_DRIVER LT_WORK

lt_log() { echo "# $*"; }
lt_fail() {
	echo "# FAIL: $*"
	exit "$KSFT_FAIL"
}
lt_skip() {
	echo "# SKIP: $*"
	exit "$KSFT_SKIP"
}

# lt_eq ACTUAL EXPECTED WHAT: fail unless equal.
lt_eq() {
	[ "$1" = "$2" ] || lt_fail "$3: got '$1', expected '$2'"
}

# lt_need PROG...: skip unless every program exists.
lt_need() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null || lt_skip "$p not available"
	done
}

# The ioctl tool: prints "OK <value>" or "ERR <ERRNO>" (see loopctl.py).
# -S: no site packages (the tool needs only the standard library), 0.1 s less per call under TCG.
lt_ioctl() { python3 -S "$LT_DIR/loopctl.py" "$@"; }

# lt_expect EXPECTED LOOPCTL-ARGS...: run one ioctl and compare its outcome ("OK 0", "ERR EBUSY").
lt_expect() {
	local want=$1 got
	shift
	got=$(lt_ioctl "$@" | head -n 1)
	[ "$got" = "$want" ] || lt_fail "loopctl $*: got '$got', expected '$want'"
}

# Both drivers are modules named `loop`; rust_loop says so in /sys/module/loop/version.
lt_module_name() { echo loop; }

# lt_loaded_driver.
# shellcheck source=selftests/driver.sh
. "$LT_DIR/driver.sh"

lt_loaded() { [ "$(lt_loaded_driver)" = "$LT_DRIVER" ]; }

# lt_load [PARAM=VALUE...]: load the driver under test (no-op if loaded). Fails if the other one
# is loaded.
# shellcheck disable=SC2120 # parameters are optional
lt_load() {
	lt_loaded && return 0
	if [ -n "$(lt_loaded_driver)" ]; then
		echo "# lt_load: the other loop driver ($(lt_loaded_driver)) is loaded"
		return 1
	fi
	if [ "$LT_DRIVER" = c ]; then
		modprobe loop "$@"
	else
		insmod "$LT_REPO/loop.ko" "$@"
	fi
	udevadm settle
	lt_loaded
}

# lt_unload: unload the driver; fails (non-zero) if it is busy.
lt_unload() {
	[ -d /sys/module/loop ] || return 0
	udevadm settle
	rmmod loop
}

# lt_file PATH SIZE: a backing file of SIZE (dd units, e.g. 64M) filled with random data.
lt_file() {
	local n=${2%M}
	dd if=/dev/urandom of="$1" bs=1M count="$n" status=none
	sync "$1"
}

# lt_sparse PATH SIZE: a sparse backing file.
lt_sparse() { truncate -s "$2" "$1"; }

# lt_build NAME SOURCE COMPILER [ARGS...]: prints the path of the helper program NAME, compiled
# from SOURCE by `COMPILER ARGS -o PATH SOURCE` once per boot: the first column's test builds it
# into $LT_SHARED and the other column's reuses it (a compiler run takes 8-12 s under TCG).
lt_build() {
	local name=$1 src=$2 dir=${LT_SHARED:-$LT_WORK}/bin
	shift 2
	if [ ! -x "$dir/$name" ] || [ "$src" -nt "$dir/$name" ]; then
		mkdir -p "$dir"
		"$@" -o "$dir/$name.new" "$src" >&2 || return 1
		mv "$dir/$name.new" "$dir/$name"
	fi
	echo "$dir/$name"
}

# lt_sum FILE [BYTES [SKIP_BYTES]]: sha256 of a file or device, optionally of a window.
lt_sum() {
	if [ $# -ge 2 ]; then
		dd if="$1" bs=4096 iflag=count_bytes,skip_bytes count="$2" skip="${3:-0}" status=none |
			sha256sum | cut -d' ' -f1
	else
		sha256sum <"$1" | cut -d' ' -f1
	fi
}

# lt_sum_direct DEV BYTES [SKIP_BYTES]: sha256 of BYTES of DEV from SKIP_BYTES, read in one
# O_DIRECT read (one request; aligned sizes only). Fails if the read does.
lt_sum_direct() {
	dd if="$1" bs="$2" count=1 skip="${3:-0}" iflag=direct,skip_bytes status=none |
		sha256sum | cut -d' ' -f1
}

# lt_scsi_debug_delay JIFFIES: every command of lt_scsi_debug's disk takes that long (1 is the
# default). scsi_debug refuses a change (EBUSY) while a command is queued: waited out (60 s).
lt_scsi_debug_delay() {
	lt_wait 60 sh -c "echo $1 2>/dev/null >/sys/bus/pseudo/drivers/scsi_debug/delay" ||
		lt_fail "scsi_debug's delay not set to $1 within 60 s"
}

# lt_attach FILE [losetup options]: bind FILE to a free device and print the device.
lt_attach() {
	local file=$1
	shift
	losetup -f --show "$@" "$file"
}

# lt_fio_verify DEV BS ENGINE JOBS IODEPTH SIZE_PER_JOB [FIO OPTIONS...]: write and verify with
# crc32c, O_DIRECT on DEV, random mixed read/write, one disjoint region per job. Fails the test
# on any verify or I/O error.
lt_fio_verify() {
	local dev=$1 bs=$2 engine=$3 jobs=$4 qd=$5 size=$6 out
	shift 6
	if ! out=$(fio --name=verify --filename="$dev" --direct=1 --rw=randrw --bs="$bs" \
		--ioengine="$engine" --iodepth="$qd" --numjobs="$jobs" --size="$size" \
		--offset_increment="$size" --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--randrepeat=0 --group_reporting --minimal "$@" 2>&1); then
		echo "$out" | tail -n 20 | sed 's/^/# fio: /'
		lt_fail "fio verify failed on $dev (bs=$bs $engine jobs=$jobs qd=$qd)"
	fi
	# Terse output, field 5: total errors of the group.
	local errs
	errs=$(echo "$out" | awk -F';' '/^3;/ { print $5 }' | tail -n 1)
	[ "${errs:-0}" = 0 ] || lt_fail "fio reported $errs errors on $dev"
}

# lt_fio_loop STOP LOG LT_FIO_VERIFY-ARGS...: lt_fio_verify back to back, at least twice and
# until the file STOP exists; prints the number of runs. On a failure, fio's output (kept in LOG)
# goes to stderr and the loop fails. Run it in the background while the device is reconfigured.
lt_fio_loop() {
	local stop=$1 log=$2 n=0
	shift 2
	while [ ! -e "$stop" ] || [ "$n" -lt 2 ]; do
		(lt_fio_verify "$@") >"$log" 2>&1 || { cat "$log" >&2; return 1; }
		n=$((n + 1))
	done
	echo "$n"
}

# lt_wait SECONDS CMD...: poll CMD every 0.1 s until it succeeds (status 0) or SECONDS pass
# (status 1). For a state another process reaches: the bound is generous, as it costs nothing
# when things go well, and a debug kernel under TCG is slow.
lt_wait() {
	local end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# lt_detach DEV: unbinds DEV (losetup -d) and waits until it is unbound. The unbinding waits for
# the device's last close: udev watches loop devices, so after a write-close of one its probe may
# hold it open for a moment, and binding it again meanwhile fails with EBUSY.
lt_detach() {
	losetup -d "$1" || lt_fail "losetup -d $1"
	lt_wait 120 sh -c "! [ -e /sys/block/${1##*/}/loop ]" || lt_fail "$1 still bound 120 s after losetup -d"
	# The group goes before the end of the unbinding; an open waits for the release that does
	# it (and a read-only close does not wake udev's watch).
	: <"$1"
}

# lt_ctl_remove N: removes /dev/loopN if it exists (LOOP_CTL_REMOVE), waiting while it is busy
# (EBUSY: udev's probe may hold it open for a moment after a write-close). A cleanup step.
lt_ctl_remove() {
	[ -e "/sys/block/loop$1" ] || return 0
	lt_wait 60 sh -c "python3 -S '$LT_DIR/loopctl.py' ctl-remove $1 | grep -qx 'OK 0'"
}

# lt_ctl_add N: creates /dev/loopN (LOOP_CTL_ADD) for this test alone and removes it at exit
# (the devices of later calls first), so that its state does not depend on the tests before.
lt_ctl_add() {
	lt_on_exit "lt_ctl_remove $1"
	lt_expect "OK $1" ctl-add "$1"
}

# lt_debug_kernel: the guest runs the debug kernel of `make check-debug` (lockdep's
# /proc/lockdep is there), where every step is many times slower: for time windows and grace
# periods, never for what a test asserts.
lt_debug_kernel() { [ -e /proc/lockdep ]; }

# lt_ext4 DEV DIR: make an ext4 file system on DEV and mount it on DIR.
lt_ext4() {
	mkfs.ext4 -q -F "$1"
	mkdir -p "$2"
	mount "$1" "$2"
}

# lt_ext4_roundtrip DEV MIB WHAT: an ext4 made on DEV, a file of MIB MiB of random data written to
# it with fsync, unmounted, fsck clean, remounted with cold caches: the file reads back the same.
# WHAT names the setup in failures.
lt_ext4_roundtrip() {
	local dev=$1 mib=$2 what=$3 mnt=$LT_WORK/mnt sum
	lt_ext4 "$dev" "$mnt"
	dd if=/dev/urandom of="$mnt/data" bs=1M count="$mib" conv=fsync status=none ||
		lt_fail "writing a file on ext4 over $what"
	sum=$(lt_sum "$mnt/data")
	umount "$mnt"
	fsck.ext4 -fn "$dev" >/dev/null 2>&1 || lt_fail "fsck of ext4 on the device over $what"
	echo 3 >/proc/sys/vm/drop_caches
	mount "$dev" "$mnt"
	lt_eq "$(lt_sum "$mnt/data")" "$sum" "file on ext4 over $what after remount"
	umount "$mnt"
}

# lt_stat DEV FIELD: one field of DEV's I/O statistics (/sys/block/DEV/stat,
# Documentation/block/stat.rst: 1 reads, 2 read merges, 5 writes, 6 write merges, ...).
lt_stat() { awk -v f="$2" '{ print $f }' "/sys/block/${1##*/}/stat"; }

# lt_ended PID: process PID has ended (for lt_wait).
lt_ended() { ! kill -0 "$1" 2>/dev/null; }

# lt_resident FILE: how many of FILE's pages are in the page cache (mincore(2) of a mapping).
lt_resident() {
	python3 - "$1" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
pages = (size + 4095) // 4096
addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
vec = ctypes.create_string_buffer(pages)
if addr in (None, ctypes.c_void_p(-1).value) or libc.mincore(addr, size, vec) != 0:
    sys.exit("mincore: " + os.strerror(ctypes.get_errno()))
print(sum(b & 1 for b in vec.raw))
PY
}

lt_sysfs() { cat "/sys/block/$(basename "$1")/$2"; }

# lt_dio_is DEV on|off WHAT: the device's loop/dio says direct I/O is on (1) or off (0).
lt_dio_is() { lt_eq "$(lt_sysfs "$1" loop/dio)" "$([ "$2" = on ] && echo 1 || echo 0)" "$3"; }

# lt_udev_hold: udev executes no event until lt_udev_release or the test's end (its events wait
# in its queue): its probes read a device (a new one, and one after the close of a descriptor
# open for writing), I/O that a test counting the device's I/O must not see. The events before
# are done first.
lt_udev_hold() {
	if [ -z "${LT_UDEV_HELD:-}" ]; then
		# Before lt_cleanup, whose `udevadm settle` would wait for a stopped queue.
		lt_on_exit --first 'udevadm control --start-exec-queue'
		LT_UDEV_HELD=1
	fi
	udevadm settle
	udevadm control --stop-exec-queue
}
lt_udev_release() { udevadm control --start-exec-queue; }

# lt_key FILE KEY: the value of KEY in a file of "key value" lines (/proc/vmstat, a cgroup's
# memory.stat and memory.events, rust_loop's engine counters).
lt_key() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# lt_engine_stats DEV: rust_loop's engine counters of DEV (debugfs rust_loop/loopN/stats), one
# "key value" per line; lt_engine_stat DEV NAME: one of them.
lt_engine_stats() {
	lt_debugfs
	cat "/sys/kernel/debug/rust_loop/${1#/dev/}/stats"
}
lt_engine_stat() { lt_key <(lt_engine_stats "$1") "$2"; }

# lt_uevent_monitor LOG [OPTION...]: `udevadm monitor --kernel --property [OPTION...]` into LOG
# in the background (its PID in LT_UEVENT_MONITOR, stopped at exit), once it listens.
lt_uevent_monitor() {
	local log=$1
	shift
	udevadm monitor --kernel --property "$@" >"$log" &
	LT_UEVENT_MONITOR=$!
	lt_on_exit "kill $LT_UEVENT_MONITOR 2>/dev/null || true"
	lt_wait 60 grep -qs "^KERNEL - " "$log" || lt_fail "udevadm monitor did not start listening within 60 s"
}

# lt_worker_pid N Q: the PID of rust_loop's worker rust_loopN-Q (Q a hardware queue, or s for
# the shared worker; "none" if there is none).
lt_worker_pid() {
	local s
	for s in /proc/[0-9]*/comm; do
		if [ "$(cat "$s" 2>/dev/null)" = "rust_loop$1-$2" ]; then
			s=${s%/comm}
			echo "${s#/proc/}"
			return 0
		fi
	done
	echo none
}

# lt_task_cpus PID: the CPUs task PID may run on, as lt_cpus prints them.
lt_task_cpus() { lt_cpus "$(awk '/^Cpus_allowed_list/ { print $2 }' "/proc/$1/status")"; }

# lt_worker_cpus N Q: the CPUs rust_loop's worker rust_loopN-Q may run on, as lt_cpus prints
# them ("none" if there is no such worker).
lt_worker_cpus() {
	local p
	p=$(lt_worker_pid "$1" "$2")
	[ "$p" = none ] && { echo none; return 0; }
	lt_task_cpus "$p"
}

# lt_cpus LIST: the CPUs of a CPU list in any of the kernel's notations ("0-2,5" as in
# Cpus_allowed_list, "0, 1, 2, 5" as in mq/Q/cpu_list), one line: "0 1 2 5".
lt_cpus() {
	echo "$1" | tr -d ' ' | tr ',' '\n' |
		awk -F- 'NF { for (c = $1; c <= (NF > 1 ? $2 : $1); c++) printf "%s%d", n++ ? " " : "", c } END { print "" }'
}

# lt_last_cpu: the highest-numbered online CPU.
lt_last_cpu() { lt_cpus "$(cat /sys/devices/system/cpu/online)" | awk '{ print $NF }'; }

# lt_same_as_c NAME FILE WHAT: the loop.ko run keeps FILE as NAME (in $LT_SHARED, shared by the
# two runs of one boot); the rust_loop run fails unless its FILE is identical, showing the diff.
# A rust_loop run alone (LT_DRIVERS=rust, check-debug's default) has nothing to compare with:
# the test's own assertions stand, and the log says the comparison was not made.
lt_same_as_c() {
	local kept=${LT_SHARED:-$LT_WORK}/$1.c
	if [ "$LT_DRIVER" = c ]; then
		cp "$2" "$kept"
		return 0
	fi
	if [ ! -f "$kept" ]; then
		case " ${LT_DRIVERS:-c rust} " in
		*" c "*) lt_fail "the loop.ko run kept no $3 to compare with" ;;
		esac
		lt_log "no loop.ko $3 to compare with (rust_loop run alone): not compared"
		return 0
	fi
	diff -u "$kept" "$2" | sed 's/^/# /' || true
	cmp -s "$kept" "$2" || lt_fail "$3 differs from loop.ko's"
}

# lt_same_as_expected EXPECTED OUT ERR WHAT: OUT, a port's output, must equal EXPECTED (loop.ko
# 7.2's, committed: it holds for the loop.ko column too). Otherwise the port's stderr ERR and then
# the diff are printed (the diff last: the runner shows the end of a failed test's output) and
# the test fails.
lt_same_as_expected() {
	diff -u "$1" "$2" >"$LT_WORK/diff" && return 0
	sed 's/^/# stderr: /' "$3"
	sed 's/^/# /' "$LT_WORK/diff"
	lt_fail "$4 differs from loop.ko 7.2's (selftests/$(basename "$1"))"
}

# lt_bound DEV: the device is bound (its loop/ sysfs group exists, util-linux's test).
lt_bound() { [ -e "/sys/block/$(basename "$1")/loop/offset" ]; }

# Leave no state behind for the next test: stop the test's background jobs (a test that fails
# while a reader or fio runs would leave them holding devices), unmount, detach, unload nothing.
lt_cleanup() {
	local m
	# The runner starts each test as its own process group (setsid): signal the group, not
	# ourselves. Run by hand from a shell, the test is not a group leader and this is skipped.
	local st
	read -r -a st </proc/$$/stat
	if [ "${st[4]}" = "$$" ]; then
		trap '' TERM
		kill -TERM 0 2>/dev/null || true
		wait 2>/dev/null || true
	fi
	awk -v w="$LT_WORK" '$2 ~ "^"w { print $2 }' /proc/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	if lt_loaded; then
		losetup -D 2>/dev/null || true
		udevadm settle || return
	fi
	# The backing disk of lt_scsi_debug, once nothing uses it. Something stacked on it (a
	# device-mapper table) keeps it: lt_exit tries again after the test's own cleanup steps.
	lt_scsi_debug_unload 2>/dev/null || true
}

# lt_scsi_debug_unload: unload lt_scsi_debug's module if it is loaded.
lt_scsi_debug_unload() {
	[ -d /sys/module/scsi_debug ] || return 0
	udevadm settle && rmmod scsi_debug
}

# lt_dm_on_exit NAME: the cleanup of a device-mapper table the test creates: resumed before
# lt_cleanup (a test stopped between a suspend and its resume would leave the cleanup's I/O
# hanging), removed after it (once no loop device uses it).
lt_dm_on_exit() {
	lt_on_exit --first "! dmsetup info $1 >/dev/null 2>&1 || dmsetup resume $1"
	lt_on_exit "udevadm settle; ! dmsetup info $1 >/dev/null 2>&1 || dmsetup remove --retry $1"
}

# lt_dm_create NAME LINE...: creates the device-mapper table NAME (/dev/mapper/NAME) of those
# lines, removed when the test exits (lt_dm_on_exit), and waits for udev to make its node. Not
# in a command substitution: the cleanup would be registered in a subshell.
lt_dm_create() {
	local name=$1
	shift
	lt_dm_on_exit "$name"
	modprobe dm-mod 2>/dev/null || true
	printf '%s\n' "$@" | dmsetup create "$name" || lt_fail "dmsetup create $name"
	udevadm settle
}

# lt_on_exit [--first] CMD: a cleanup step (a command line) for when the test exits: after
# lt_cleanup (so nothing uses what it removes any more: a device-mapper table under a loop
# device, a cgroup), or with --first before it (a setting lt_cleanup itself depends on, as
# udev's queue). Last registered runs first. Write steps that undo only what exists. A step
# that fails fails a test that passed (it left state behind for the next test) and is only
# noted for one that failed or skipped, whose result it must not replace: in an EXIT trap
# under `set -e` a failing command would become the test's exit status. (A step must not
# call `exit`: that ends the cleanup and gives its status.)
LT_EXIT_FIRST=()
LT_EXIT_AFTER=()
lt_on_exit() {
	if [ "$1" = --first ]; then
		LT_EXIT_FIRST=("$2" "${LT_EXIT_FIRST[@]}")
	else
		LT_EXIT_AFTER=("$1" "${LT_EXIT_AFTER[@]}")
	fi
}
# shellcheck disable=SC2317 # the EXIT trap
lt_exit() {
	local rc=$? step
	# A step that fails, or reads an unset variable, must not end the cleanup.
	set +eu
	for step in "${LT_EXIT_FIRST[@]}" lt_cleanup "${LT_EXIT_AFTER[@]}" lt_scsi_debug_unload; do
		eval "$step" && continue
		echo "# cleanup step failed: $step"
		if [ "$rc" = 0 ]; then
			echo "# FAIL: the test left state behind (see the step above)"
			rc=$KSFT_FAIL
		fi
	done
	exit "$rc"
}
trap lt_exit EXIT

# shellcheck disable=SC2119
lt_load

# lt_scsi_debug [PARAM=VALUE...]: load scsi_debug and print its disk; lt_cleanup unloads it.
lt_scsi_debug() {
	local b err
	# Loaded already (left by another test), it would ignore these parameters.
	[ -d /sys/module/scsi_debug ] && lt_fail "scsi_debug is loaded already" >&2
	err=$(modprobe scsi_debug "$@" 2>&1) || lt_skip "no scsi_debug (modprobe: $err)" >&2
	udevadm settle
	for b in /sys/block/sd*; do
		if grep -qs scsi_debug "$b/device/model"; then
			# scsi_debug copies a request's data one sector at a time, each copy walking the
			# request's pages from the first: quadratic in its size. Under KASAN in the emulator
			# one large request kept a CPU for 26 s (an RCU stall report in dio_07, before any
			# loop device was on the disk); requests a sixteenth of that size cost a sixteenth.
			echo 256 >"$b/queue/max_sectors_kb"
			echo "/dev/${b##*/}"
			return 0
		fi
	done
	lt_fail "no scsi_debug disk" >&2
}
