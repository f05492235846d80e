# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared helpers for the rust-loop scripts: where the caches live, how long steps report progress,
# and how the host's Debian mirror is found. Sourced, never executed.

# The repository root, whatever the caller's working directory.
RL_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RL_TOP

# Everything expensive (the trixie root filesystem, kernel trees) is cached outside the repository so
# a fresh clone on the same machine, CI included, reuses it. Override with RUST_LOOP_CACHE.
RL_CACHE=${RUST_LOOP_CACHE:-/var/cache/rust-loop}
export RL_CACHE

rl_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rl_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# rl_step NAME ESTIMATE_SECONDS LOGFILE CMD...: run a long step with its output in LOGFILE, print a
# progress line (stage, elapsed, estimate) every 30 s, and on failure show the log's tail.
rl_step() {
	local name=$1 est=$2 log=$3
	shift 3
	local start rc=0 pid
	start=$(date +%s)
	rl_log "$name: started (estimate ~$((est / 60)) min $((est % 60)) s), log: $log"
	"$@" >"$log" 2>&1 &
	pid=$!
	while ! wait_timeout "$pid" 30; do
		rl_log "$name: $(( $(date +%s) - start )) s elapsed of ~$est s estimated; $(tail -n 1 "$log" | cut -c1-100)"
	done
	wait "$pid" || rc=$?
	if [ "$rc" -ne 0 ]; then
		rl_log "$name: FAILED (exit $rc) after $(( $(date +%s) - start )) s; last lines of $log:"
		tail -n 40 "$log" >&2
		return "$rc"
	fi
	rl_log "$name: done in $(( $(date +%s) - start )) s"
}

# wait_timeout PID SECONDS: succeed once PID has exited, fail if it is still running after SECONDS.
wait_timeout() {
	local pid=$1 i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 1
	done
	! kill -0 "$pid" 2>/dev/null
}

# The Debian mirror the host already uses (deb822 or one-line sources); RUST_LOOP_MIRROR overrides.
# The repository must not name a registry host, so it is always read from the machine.
rl_mirror() {
	if [ -n "${RUST_LOOP_MIRROR:-}" ]; then
		echo "$RUST_LOOP_MIRROR"
		return
	fi
	local m
	m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	[ -n "$m" ] || rl_die "no Debian mirror found in /etc/apt/sources*; set RUST_LOOP_MIRROR"
	echo "$m"
}

# The root filesystem's location, keyed by the package list and the recipe version (bump it when
# scripts/rootfs changes what it builds).
RL_ROOTFS_RECIPE=1
rl_rootfs_dir() {
	local key
	key=$({ echo "recipe $RL_ROOTFS_RECIPE"; cat "$RL_TOP/scripts/rootfs.packages"; } |
		sha256sum | cut -c1-12)
	echo "$RL_CACHE/rootfs-$key"
}

# True when running inside the toolchain root filesystem (set by scripts/enter).
rl_in_rootfs() { [ "${RUST_LOOP_IN_ROOTFS:-}" = 1 ]; }
