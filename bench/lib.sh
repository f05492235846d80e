# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# bench/lib.sh: what bench/run-guest.sh and bench/handoff-bound.sh share, sourced in the guest.

mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug

# bench_order REP SUBJECT...: the subjects in repetition REP's order, one per line: rotated by
# REP, and reversed every other repetition, so a drift of the machine is not confounded with a
# subject.
bench_order() {
	local rep=$1 i list=()
	shift
	local all=("$@") n=$#
	for ((i = 0; i < n; i++)); do list+=("${all[(i + rep) % n]}"); done
	if [ $((rep % 2)) = 0 ]; then
		for ((i = n - 1; i >= 0; i--)); do echo "${list[i]}"; done
	else
		printf '%s\n' "${list[@]}"
	fi
}

# bench_unload: no loop driver loaded afterwards (udev may still hold a device it probed: a
# bounded retry).
bench_unload() {
	grep -q '^loop ' /proc/modules || return 0
	udevadm settle
	for _ in $(seq 50); do rmmod loop 2>/dev/null && break; sleep 0.2; done
	! grep -q '^loop ' /proc/modules || { echo "bench: the loop driver could not be unloaded" >&2; exit 1; }
}

# stat_snap: system-wide context switches, busy and total CPU time (/proc/stat).
stat_snap() { awk '/^ctxt/ { c = $2 } /^cpu / { b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6 } END { print c, b, t }' /proc/stat; }

# engine_stats DEV: rust_loop's counters of the loop device DEV as a JSON object ({} otherwise:
# a file, or loop.ko's device).
engine_stats() {
	local f=/sys/kernel/debug/rust_loop/${1#/dev/}/stats
	if [ -r "$f" ]; then
		# Only `name number` lines; an unreadable or empty file gives {} (and says so).
		awk 'BEGIN { printf "{" } NF == 2 && $2 ~ /^[0-9]+$/ {
			printf "%s\"%s\": %s", (n++ ? ", " : ""), $1, $2 } END { print "}" }' "$f"
		[ -s "$f" ] || [ "$(wc -l <"$f")" -gt 0 ] || echo "[bench] $f is empty" >&2
	else
		echo '{}'
	fi
}
