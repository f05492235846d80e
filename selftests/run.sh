#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# run.sh [TEST...]: the differential run of the rust-loop selftests, inside a guest.
#
# Runs every test_*.sh (or the given ones, or $SELFTESTS; "dio_01" = test_dio_01.sh) first against the C loop.ko, then
# against rust_loop_mod.ko, in this one boot, and prints KTAP with one subtest per driver, a
# table of both columns and, last, "N passed, N failed, N skipped" for rust_loop. Exits non-zero
# if any test fails on either driver: a test that fails on loop.ko is a wrong test.
#
# A kernel report (oops, WARN, lockdep, ...) during a test fails that test. If /dev/vda exists it
# is formatted ext4 and holds the tests' files; otherwise they live in /tmp.
set -uo pipefail

# The whole script is one function, parsed before it runs: editing the file during a run
# cannot change what runs.
main() {
	DIR=$(cd "$(dirname "$0")" && pwd)
	cd "$DIR" || exit 1
	# Per-test timeout: settings, or LT_TIMEOUT for long runs (make stress).
	timeout_s=${LT_TIMEOUT:-$(sed -n 's/^timeout=//p' settings)}
	reports=$(cat kernel-reports.txt)

	if [ $# -gt 0 ]; then
		tests=("$@")
	elif [ -n "${SELFTESTS:-}" ]; then
		read -r -a tests <<<"$SELFTESTS"
	else
		tests=(test_*.sh)
	fi
	# Short names work too: "dio_01" means test_dio_01.sh.
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
	# Start clean: neither driver loaded.
	rmmod loop 2>/dev/null
	rmmod rust_loop_mod 2>/dev/null

	declare -A result
	# LT_DRIVERS="rust" runs one column only (a long debug-kernel run, for instance).
	read -r -a drivers <<<"${LT_DRIVERS:-c rust}"
	declare -A label=([c]="loop.ko" [rust]="rust_loop")

	echo "TAP version 13"
	echo "1..${#drivers[@]}"
	n_driver=0
	for drv in "${drivers[@]}"; do
		n_driver=$((n_driver + 1))
		echo "# Subtest: ${label[$drv]}"
		echo "    1..${#tests[@]}"
		failed=0
		i=0
		for t in "${tests[@]}"; do
			i=$((i + 1))
			name=${t%.sh}
			work=$scratch/$drv-$name
			rm -rf "$work" && mkdir -p "$work"
			before=$(dmesg | wc -l)
			start=$(date +%s)
			out=$(LT_DRIVER=$drv LT_WORK=$work timeout --kill-after=10 "$timeout_s" bash "./$t" 2>&1)
			rc=$?
			secs=$(($(date +%s) - start))
			# The report in full (a lockdep splat is useless without its chains): from the
			# first matching line of this test's kernel log, up to 150 lines.
			splats=$(dmesg | tail -n +"$((before + 1))" | sed -En "/$reports/,\$p" | head -n 150)
			if [ -n "$splats" ]; then
				out+=$'\n'"# kernel report during the test:"$'\n'"#   ${splats//$'\n'/$'\n'#   }"
				rc=1
			fi
			[ "$rc" -eq 124 ] && out+=$'\n'"# TIMEOUT after ${timeout_s}s"
			# Whatever a test left behind must not leak into the next one.
			if [ "$drv" = c ]; then mod=loop; else mod=rust_loop_mod; fi
			if [ -d "/sys/module/$mod" ] && [ -n "$(losetup -a 2>/dev/null)" ]; then
				out+=$'\n'"# left devices bound: $(losetup -a | tr '\n' ' ')"
				losetup -D
				rc=1
			fi
			if [ ! -d "/sys/module/$mod" ]; then
				if [ "$drv" = c ]; then modprobe loop; else insmod ../rust_loop_mod.ko; fi
			fi
			rm -rf "$work"
			# Diagnostics: the "# " lines of a passing test, everything of a failing one.
			if [ -n "$out" ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ]; }; then
				grep -E '^#' <<<"$out" | sed 's/^/    /' || true
			elif [ -n "$out" ]; then
				sed -E 's/^#? ?/    # /' <<<"$out" | tail -n 40
			fi
			case $rc in
			0) echo "    ok $i $name # ${secs}s"; result[$drv,$name]=pass ;;
			4) echo "    ok $i $name # SKIP"; result[$drv,$name]=skip ;;
			*) echo "    not ok $i $name # exit=$rc ${secs}s"; result[$drv,$name]=FAIL; failed=1 ;;
			esac
		done
		udevadm settle
		if ! rmmod "$mod"; then
			echo "    # could not unload $mod after the tests"
			failed=1
		fi
		if [ "$failed" = 0 ]; then echo "ok $n_driver ${label[$drv]}"; else echo "not ok $n_driver ${label[$drv]}"; fi
	done

	declare -A count=([c,pass]=0 [c,FAIL]=0 [c,skip]=0 [rust,pass]=0 [rust,FAIL]=0 [rust,skip]=0)
	printf '# %-28s %-10s %s\n' test loop.ko rust_loop
	for t in "${tests[@]}"; do
		name=${t%.sh}
		printf '# %-28s %-10s %s\n' "$name" "${result[c,$name]:--}" "${result[rust,$name]:--}"
		for drv in "${drivers[@]}"; do
			r=${result[$drv,$name]}
			count[$drv,$r]=$((count[$drv,$r] + 1))
		done
	done
	echo "# loop.ko: ${count[c,pass]} passed, ${count[c,FAIL]} failed, ${count[c,skip]} skipped"
	echo "${count[rust,pass]} passed, ${count[rust,FAIL]} failed, ${count[rust,skip]} skipped"
	[ "${count[c,FAIL]}" -eq 0 ] && [ "${count[rust,FAIL]}" -eq 0 ]
}
main "$@"
