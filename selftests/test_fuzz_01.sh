#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# ioctl fuzzing (selftests/loop_fuzz.c): FUZZ_CALLS (default 10000; `make stress` runs 100000)
# random calls on bound, unbound and stacked loop devices and /dev/loop-control, with bad
# pointers, bad fds and extreme values, valid bindings among them and 4 KiB of I/O between
# calls. Every call returns, the kernel reports nothing, and afterwards every device can be
# detached and the extra ones removed. The call sequence is the same for both drivers (fixed
# seed; udev's event processing is stopped meanwhile, so nothing else opens the devices), and
# rust_loop's outcome of every call, and the number of uevents it caused, must be loop.ko's: the
# first differences are printed. The fuzzer leaves out the inputs where the drivers differ on
# purpose (see loop_fuzz.c).
. "$(dirname "$0")/lib.sh"
lt_need gcc jq setarch

calls=${FUZZ_CALLS:-10000}
fuzz=$(lt_build loop_fuzz "$LT_DIR/loop_fuzz.c" gcc -O2 -Wall -Werror) || lt_fail "cannot build the fuzzer"
lt_sparse "$LT_WORK/img" 32M
lt_sparse "$LT_WORK/img2" 32M
losetup /dev/loop0 "$LT_WORK/img"
losetup /dev/loop2 /dev/loop0
udevadm settle
# Before lt_cleanup, whose `udevadm settle` would wait for a stopped queue.
lt_on_exit --first 'udevadm control --timeout=1200 --start-exec-queue'
udevadm control --stop-exec-queue
start=$(date +%s)
# Without address-space randomization: some arguments are pointers, whose values (truncated to
# an int by LOOP_CTL_ADD) must be the same in both runs.
FUZZ_TRACE=$LT_WORK/trace setarch "$(uname -m)" -R "$fuzz" 7 "$calls" "$LT_WORK/img2" \
	/dev/loop0 /dev/loop1 /dev/loop2 /dev/loop3 >"$LT_WORK/hist.json" || lt_fail "the fuzzer failed"
lt_log "$calls calls in $(($(date +%s) - start)) s, $(awk -F'uevents=' '{ n += $2 } END { print n + 0 }' "$LT_WORK/trace") uevents"
# The fuzzer leaves thousands of uevents behind (binds, partition scans), queued while udev's
# queue was stopped: restarting it (whose reply took over the default 60 s once after 100,000
# calls, in `make stress`) and working through them (more than settle's default 120 s on the
# debug kernel) take long.
start=$(date +%s)
udevadm control --timeout=1200 --start-exec-queue
udevadm settle --timeout=1200
lt_log "udev's queue restarted and settled in $(($(date +%s) - start)) s"
losetup -D
udevadm settle --timeout=1200
lt_eq "$(losetup -a)" "" "devices still bound after losetup -D"
for b in /sys/block/loop*; do
	i=${b##*/loop}
	[ "$i" -ge 8 ] && lt_expect "OK 0" ctl-remove "$i"
done
jq -e 'type == "object"' "$LT_WORK/hist.json" >/dev/null || lt_fail "no histogram"
total=$(jq '[to_entries[] | select(.key | startswith("IO:") | not) | .value] | add' "$LT_WORK/hist.json")
lt_eq "$total" "$calls" "calls in the histogram"
lt_log "outcomes (command:errno=count): $(jq -r 'to_entries | sort_by(.key) | map("\(.key)=\(.value)") | join(" ")' "$LT_WORK/hist.json")"
shared=${LT_SHARED:-$LT_WORK}
lt_log "bound by the fuzzer: $(jq '[."CONFIGURE:OK", ."SET_FD:OK"] | map(. // 0) | add' "$LT_WORK/hist.json") times; $(jq '[to_entries[] | select(.key | startswith("IO:")) | .value] | add // 0' "$LT_WORK/hist.json") I/Os between calls"
if [ "$LT_DRIVER" = c ]; then
	cp "$LT_WORK/trace" "$shared/fuzz.c.trace"
elif [ -f "$shared/fuzz.c.trace" ]; then
	if ! cmp -s "$shared/fuzz.c.trace" "$LT_WORK/trace"; then
		{ diff "$shared/fuzz.c.trace" "$LT_WORK/trace" || true; } | head -n 12 | sed 's/^/# /'
		# What led there: the earlier calls on the same fd (and the re-opens), both drivers.
		n=$(cmp "$shared/fuzz.c.trace" "$LT_WORK/trace" | awk '{ print $NF }' || true)
		fd=$(sed -n "${n}p" "$shared/fuzz.c.trace" | awk '{ print $3 }')
		for f in "$shared/fuzz.c.trace" "$LT_WORK/trace"; do
			echo "# before line $n, fd $fd, in ${f##*/}:"
			head -n "$n" "$f" | awk -v fd="$fd" '$3 == fd || $2 == "REOPEN" || $3 == -1' |
				tail -n 25 | sed 's/^/#   /'
		done
		lt_fail "rust_loop's outcomes differ from loop.ko's (< loop.ko, > rust_loop; index command fd outcome uevents)"
	fi
	lt_log "every outcome and every call's uevents equal to loop.ko's"
else
	lt_log "no loop.ko trace to compare with (rust_loop run alone)"
fi
exit 0
