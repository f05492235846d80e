#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The upstream blktests loop group (loop/001-014: partition scan and removal, block sizes with
# direct I/O, LOOP_GET_STATUS with a NULL argument, LOOP_CHANGE_FD racing attaches, capacity
# changes under a mounted file system, uevents of LOOP_CONFIGURE, stale partitions, write-zeroes
# on tmpfs) prints exactly what loop.ko 7.2 prints (blktests_loop.out, taken from loop.ko's run),
# with no kernel report.
. "$(dirname "$0")/lib.sh"
lt_need sfdisk partx lsblk blkid mkfs.ext4 mkfs.ext2 python3

out=$LT_WORK/out
# The port restores udev itself; this is for a port killed on its timeout halfway.
lt_on_exit --first 'udevadm control --start-exec-queue; rm -f /run/udev/rules.d/99-blktests-*.rules; udevadm control -R'
# loop/003 times 5000 opens and closes of an unbound device (upstream: within 1 s on hardware;
# about 0.2 s here under TCG, a bound of 5 s by default): a time window, larger on the debug
# kernel, where every step is many times slower.
if lt_debug_kernel; then
	export LOOP003_LIMIT=60
fi
SCRATCH=$LT_WORK/blk "$LT_DIR/blktests_loop.sh" >"$out" 2>"$LT_WORK/err" ||
	lt_fail "blktests_loop.sh exited $?: $(tail -n 5 "$LT_WORK/err")"
lt_same_as_expected "$LT_DIR/blktests_loop.out" "$out" "$LT_WORK/err" \
	"the blktests loop group's output"
lt_log "time per test: $(sed -n 's/^loop\/\([0-9]*\): \([0-9]*\) s$/\1 \2s/p' "$LT_WORK/err" | paste -sd' ')"
exit 0
