#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# run.sh [TEST...]: the differential run of the rust-loop selftests, inside a guest.
#
# Runs every test_*.sh (or the given ones, or $SELFTESTS, or those named in the file
# $SELFTESTS_FILE; "dio_01" = test_dio_01.sh) first against the C loop.ko, then against rust_loop,
# in this one boot, and prints KTAP with one subtest per driver, a table of both columns with
# durations and, last, the closing line "N passed, N failed, N skipped". A test passes if it
# passes on both drivers (or is skipped on loop.ko by design and passes on rust_loop); it fails if
# it fails on either (a test that fails on loop.ko is a wrong test) or if rust_loop skips it while
# loop.ko passes. rust_loop's KUnit cases count too. The exit status is non-zero if anything
# failed.
#
# Failures anywhere fail the run and are named in the closing line:
# - a kernel report (oops, WARN, BUG, lockdep, hung task, ...; kernel-reports.txt) while a test
#   runs, while the runner cleans up after it, or while a driver is unloaded at the end. The
#   kernel log is read record by record (kmsg.py) and split at markers the runner writes, so
#   nothing is missed however much the tests log; lost records fail the window they were in;
# - a driver that cannot be unloaded after its column (a leaked reference);
# - a test that does not finish within its timeout (settings, or LT_TIMEOUT): the runner first
#   records what it was waiting for (timeout-dump.sh: its tasks, udev's, the blocked tasks'
#   stacks), then kills it from outside; if it cannot be killed (stuck in the kernel), the
#   stacks of blocked tasks are shown (sysrq w) and the run stops there.
#
# If /dev/vda exists it is formatted ext4 and holds the tests' files; otherwise they live in
# /tmp.
set -uo pipefail

# The whole script is one function, parsed before it runs: editing the file during a run
# cannot change what runs.
main() {
	# Byte-wise string lengths (the kernel-log offsets below).
	export LC_ALL=C
	DIR=$(cd "$(dirname "$0")" && pwd)
	cd "$DIR" || exit 1
	# udevd sometimes drops a settle's connection, and the debug kernel's is slow to answer:
	# see bin/udevadm.
	export PATH="$DIR/bin:$PATH"
	timeout_s=${LT_TIMEOUT:-$(sed -n 's/^timeout=//p' settings)}
	reports=$(cat kernel-reports.txt)

	tests=()
	if [ $# -gt 0 ]; then
		tests=("$@")
	elif [ -n "${SELFTESTS:-}" ]; then
		read -r -a tests <<<"$SELFTESTS"
	elif [ -n "${SELFTESTS_FILE:-}" ]; then
		[ -r "$SELFTESTS_FILE" ] || { echo "run.sh: cannot read $SELFTESTS_FILE" >&2; exit 1; }
		# Names separated by white space; read returns 1 at the end of the file.
		read -r -d '' -a tests <"$SELFTESTS_FILE" || true
	fi
	[ "${#tests[@]}" -gt 0 ] || tests=(test_*.sh)
	for i in "${!tests[@]}"; do
		t=${tests[$i]}
		[ -f "$t" ] || tests[i]=test_${t%.sh}.sh
	done

	scratch=/tmp/lt-scratch
	mkdir -p "$scratch"
	if [ -b /dev/vda ]; then
		mkfs.ext4 -q -F /dev/vda && mount /dev/vda "$scratch" || exit 1
	fi
	# For tests that compare rust_loop's results with loop.ko's of the same boot.
	export LT_SHARED=$scratch/shared
	mkdir -p "$LT_SHARED"

	klog=$scratch/kmsg.log
	: >"$klog"
	python3 kmsg.py "$klog" &
	kmsg_pid=$!
	nmark=0
	klog_off=0
	harness_failures=()
	# A window of the kernel log before anything ran: boot-time reports count too.
	check_window "boot" >"$scratch/window"
	sed 's/^/    /' "$scratch/window"

	# Start clean: neither driver loaded.
	rmmod loop 2>/dev/null

	declare -A result secs
	read -r -a drivers <<<"${LT_DRIVERS:-c rust}"
	declare -A label=([c]="loop.ko" [rust]="rust_loop")
	kunit_pass=0 kunit_fail=0 stopped=""

	echo "TAP version 13"
	echo "1..${#drivers[@]}"
	n_driver=0
	for drv in "${drivers[@]}"; do
		n_driver=$((n_driver + 1))
		failed=0
		echo "# Subtest: ${label[$drv]}"
		echo "    1..${#tests[@]}"
		load_driver "$drv"
		echo "    # $(describe_module "$drv")"
		[ "$drv" = rust ] && kunit_results
		check_window "loading ${label[$drv]}" >"$scratch/window" || failed=1
		sed 's/^/    /' "$scratch/window"
		i=0
		for t in "${tests[@]}"; do
			i=$((i + 1))
			name=${t%.sh}
			if [ -n "$stopped" ]; then
				echo "    not ok $i $name # not run: $stopped"
				result[$drv,$name]=FAIL
				failed=1
				continue
			fi
			run_one "$drv" "$t" "$i"
			[ "${result[$drv,$name]}" = FAIL ] && failed=1
		done
		if [ -z "$stopped" ]; then
			udevadm settle
			if ! rmmod loop; then
				echo "    # could not unload ${label[$drv]} after the tests (a leaked reference?)"
				harness_failures+=("${label[$drv]} could not be unloaded after its tests")
				failed=1
			fi
			check_window "unloading ${label[$drv]}" >"$scratch/window" || failed=1
			sed 's/^/    /' "$scratch/window"
		fi
		if [ "$failed" = 0 ]; then echo "ok $n_driver ${label[$drv]}"; else echo "not ok $n_driver ${label[$drv]}"; fi
	done
	kill "$kmsg_pid" 2>/dev/null

	summarize
}

# mark: writes a marker into the kernel log and waits until kmsg.py has copied it, so that the
# log file holds everything the kernel logged before it. Only the bytes after the previous
# window are looked at.
mark() {
	nmark=$((nmark + 1))
	tag="rust-loop-selftests: mark $nmark"
	echo "$tag" >/dev/kmsg
	local tries
	for ((tries = 0; tries < 600; tries++)); do
		tail -c +$((klog_off + 1)) "$klog" | grep -qF "$tag" && return 0
		sleep 0.05
	done
	echo "# kmsg.py did not copy marker $nmark within 30 s"
}

# check_window WHAT: the kernel log since the previous window, up to a new marker; prints its
# reports (the first one in full, up to 150 lines) and fails if there are any, or if records
# were lost.
check_window() {
	mark
	local first
	window=$(tail -c +$((klog_off + 1)) "$klog" | sed "/$tag\$/q")
	klog_off=$((klog_off + ${#window} + 1))
	first=$(grep -nE "$reports|rust-loop-kmsg: " <<<"$window" | head -n 1 | cut -d: -f1)
	[ -z "$first" ] && return 0
	echo "# kernel report during $1:"
	tail -n +"$first" <<<"$window" | head -n 150 | sed 's/^/#   /'
	harness_failures+=("kernel report during $1")
	return 1
}

# lt_loaded_driver, shared with the tests.
# shellcheck source=selftests/driver.sh
. "$(dirname "$0")/driver.sh"

# load_driver DRV: makes DRV the loaded loop driver (a test that died half-way may have left the
# other one loaded: then no later test would run against the driver of its column).
load_driver() {
	local cur
	cur=$(lt_loaded_driver)
	[ "$cur" = "$1" ] && return 0
	if [ -n "$cur" ]; then
		echo "# the other driver (${label[$cur]}) was loaded: unloading it"
		udevadm settle
		losetup -D 2>/dev/null
		rmmod loop
	fi
	if [ "$1" = c ]; then modprobe loop; else insmod ../loop.ko; fi
	udevadm settle
	[ "$(lt_loaded_driver)" = "$1" ] || stopped="${label[$1]} could not be loaded"
}

# describe_module DRV: which file the column loaded, so no run compares a driver with itself.
describe_module() {
	local file
	if [ "$1" = c ]; then file=$(modinfo -n loop 2>/dev/null); else file=$(realpath ../loop.ko); fi
	echo "loop from $file (sha256 $(sha256sum "$file" | cut -c1-16)," \
		"version $(cat /sys/module/loop/version 2>/dev/null || echo none))"
}

# kunit_results: rust_loop's KUnit suites ran when the module was loaded; their results are in
# debugfs. Each case counts in the closing line.
kunit_results() {
	lt_debugfs
	local d suite ok nok found=0
	for d in /sys/kernel/debug/kunit/rust_loop_*; do
		[ -r "$d/results" ] || continue
		found=1
		suite=${d##*/}
		ok=$(grep -cE '^ +ok [0-9]+ ' "$d/results")
		nok=$(grep -cE '^ +not ok [0-9]+ ' "$d/results")
		kunit_pass=$((kunit_pass + ok))
		kunit_fail=$((kunit_fail + nok))
		echo "    # KUnit $suite: $ok passed, $nok failed"
		[ "$nok" -gt 0 ] && sed 's/^/    #   /' "$d/results"
	done
	if [ "$found" = 0 ] && [ -d /sys/kernel/debug/kunit ]; then
		echo "    # KUnit: no rust_loop suites ran (was the module built with CONFIG_KUNIT=y?)"
		kunit_fail=$((kunit_fail + 1))
	fi
}

# run_one DRV TEST INDEX: runs one test in its own session, bounded from outside.
run_one() {
	local drv=$1 t=$2 i=$3 name=${2%.sh} work rc start out pid dog stuck other timed_out
	work=$scratch/$drv-$name
	rm -rf "$work" && mkdir -p "$work"
	out=$scratch/out.$drv.$name
	start=$SECONDS
	LT_DRIVER=$drv LT_WORK=$work setsid bash "./$t" >"$out" 2>&1 </dev/null &
	pid=$!
	# The watchdog: past the timeout it records what the test was waiting for (timeout-dump.sh),
	# terminates the test and everything it started, then kills it, then, if even that did not
	# end it (a task stuck in the kernel), tells us.
	stuck=0
	trap 'stuck=1' USR1
	rm -f "$out.timeout"
	# shellcheck disable=SC2016 # the watchdog's own script
	# The dump is bounded: it reads every task's command line, which waits for that task's
	# mmap_lock, and must not keep the watchdog from killing what is stuck.
	setsid bash -c 'sleep "$1"; timeout -k 5 60 "$4" "$2" >"$5" 2>&1; kill -TERM -- "-$2"
		sleep 10; kill -KILL -- "-$2"; sleep 10; kill -USR1 "$3"' \
		watchdog "$timeout_s" "$pid" "$$" "$DIR/timeout-dump.sh" "$out.timeout" 2>/dev/null &
	dog=$!
	wait "$pid"
	rc=$?
	kill -- "-$dog" 2>/dev/null
	wait "$dog" 2>/dev/null
	trap - USR1
	secs[$drv,$name]=$((SECONDS - start))
	timed_out=
	if [ "$stuck" = 1 ]; then
		# Unkillable: stuck in the kernel. Show where, and stop the run.
		echo w >/proc/sysrq-trigger
		stopped="$name hung in the kernel on ${label[$drv]}"
		timed_out="# TIMEOUT after ${timeout_s}s; the test could not be killed"
	elif [ "${secs[$drv,$name]}" -ge "$timeout_s" ]; then
		timed_out="# TIMEOUT after ${timeout_s}s"
	fi
	# Kernel reports go to a file of their own, shown whole after the test's tail: cut to the
	# tail of a long output they would lose their first lines, which say what they are.
	if ! check_window "$name on ${label[$drv]}" >"$out.report"; then
		rc=1
		# The report is the test's: not a separate harness failure.
		unset 'harness_failures[-1]'
	fi
	if [ -n "$timed_out" ]; then
		# What it waited for: written by the watchdog before it terminated the test, appended
		# only now (the test's output is not opened for appending: writing into it meanwhile
		# could be overwritten) and last, so the runner's tail of a failed test shows it.
		if [ -s "$out.timeout" ]; then
			sed -e '/^end of the dump$/d' -e 's/^/# /' "$out.timeout" >>"$out"
			tail -n 1 "$out.timeout" | grep -qx 'end of the dump' ||
				echo "# (the dump is incomplete: it was stopped, or the test ended meanwhile)" >>"$out"
		fi
		echo "$timed_out" >>"$out"
		rc=124
	fi
	rm -f "$out.timeout"
	if [ -z "$stopped" ]; then
		# Whatever a test left behind must not leak into the next one.
		if [ "$(lt_loaded_driver)" = "$drv" ] && [ -n "$(losetup -a 2>/dev/null)" ]; then
			echo "# left devices bound: $(losetup -a | tr '\n' ' ')" >>"$out"
			losetup -D
			rc=1
		fi
		# A backing-device module left loaded would ignore the next test's parameters.
		if [ -d /sys/module/scsi_debug ]; then
			echo "# left scsi_debug loaded" >>"$out"
			udevadm settle
			rmmod scsi_debug 2>/dev/null || true
			rc=1
		fi
		# A CPU left offline would change the CPUs (and rust_loop's queues) of every later test.
		for c in /sys/devices/system/cpu/cpu[0-9]*/online; do
			[ "$(cat "$c")" = 0 ] || continue
			echo "# left ${c%/online} offline" >>"$out"
			echo 1 >"$c" || true
			rc=1
		done
		other=$(lt_loaded_driver)
		if [ -n "$other" ] && [ "$other" != "$drv" ]; then
			echo "# the test left ${label[$other]} loaded instead of ${label[$drv]}" >>"$out"
			rc=1
		fi
		load_driver "$drv" >>"$out"
		check_window "the cleanup after $name on ${label[$drv]}" >>"$out.report" || rc=1
	fi
	rm -rf "$work"
	# Diagnostics: the "# " lines of a passing test (and of its windows: a marker kmsg.py did not
	# copy), the end of a failing one and its kernel reports.
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ]; then
		grep -hE '^#' "$out" "$out.report" 2>/dev/null | sed 's/^/    /' || true
	else
		sed -E 's/^#? ?/    # /' "$out" | tail -n 60
		[ ! -s "$out.report" ] || sed 's/^/    /' "$out.report"
	fi
	rm -f "$out" "$out.report"
	case $rc in
	0) echo "    ok $i $name # ${secs[$drv,$name]}s"; result[$drv,$name]=pass ;;
	4) echo "    ok $i $name # SKIP"; result[$drv,$name]=skip ;;
	*) echo "    not ok $i $name # exit=$rc ${secs[$drv,$name]}s"; result[$drv,$name]=FAIL ;;
	esac
}

summarize() {
	local pass=0 fail=0 skip=0 t name c r verdict why=()
	printf '# %-24s %-14s %-14s %s\n' test loop.ko rust_loop verdict
	for t in "${tests[@]}"; do
		name=${t%.sh}
		c=${result[c,$name]:--}
		r=${result[rust,$name]:--}
		if [ "$c" = FAIL ] || [ "$r" = FAIL ]; then
			verdict=FAIL
		elif [ "$r" = skip ] && [ "$c" = pass ]; then
			verdict=FAIL
			why+=("$name skipped on rust_loop only")
		elif [ "$r" = skip ] || { [ "$r" = - ] && [ "$c" = skip ]; }; then
			verdict=skip
		else
			verdict=pass
		fi
		case $verdict in pass) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; skip) skip=$((skip + 1)) ;; esac
		printf '# %-24s %-14s %-14s %s\n' "$name" "$c ${secs[c,$name]:+${secs[c,$name]}s}" \
			"$r ${secs[rust,$name]:+${secs[rust,$name]}s}" "$verdict"
	done
	# With several guests (scripts/check), each loads rust_loop, so each runs the KUnit cases: one
	# counts their passes (LT_KUNIT=1), every one their failures.
	[ "${LT_KUNIT:-1}" = 1 ] || kunit_pass=0
	pass=$((pass + kunit_pass))
	fail=$((fail + kunit_fail + ${#harness_failures[@]}))
	[ -n "$stopped" ] && why+=("stopped: $stopped")
	why+=("${harness_failures[@]}")
	echo "# KUnit cases: $kunit_pass passed, $kunit_fail failed$([ "${LT_KUNIT:-1}" = 1 ] ||
		echo " (passes counted in another guest)")"
	local line="$pass passed, $fail failed, $skip skipped"
	if [ ${#why[@]} -gt 0 ]; then
		local joined
		joined=$(printf '%s; ' "${why[@]}")
		line+=" (${joined%; })"
	fi
	echo "$line"
	[ "$fail" -eq 0 ]
}

# On one line: bash reads a script as it runs it, and an edit made meanwhile must not be read after
# main returns.
main "$@"; exit
