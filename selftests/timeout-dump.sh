#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# timeout-dump.sh SID: what a test that ran out of time was waiting for. run.sh's watchdog runs
# it before it terminates the test (session SID): the test's tasks with their state and wait
# channel, udev's tasks and whether udevd answers (most tests wait for its queue), and the tasks
# in uninterruptible sleep anywhere, with their kernel stacks. Short, because the runner shows only
# the last 60 lines of a failed test's output. Best effort: a step that fails is skipped.
set -euo pipefail

sid=$1
echo "when its time ran out, the test's tasks (pid, state, wait channel, command):"
ps -s "$sid" -o pid=,stat=,wchan:24=,args= 2>/dev/null | cut -c1-110 | head -n 12 || true
if udevadm control --ping --timeout=5 >/dev/null 2>&1; then
	answer=answers
else
	answer="does not answer a ping within 5 s"
fi
queue=empty
[ -e /run/udev/queue ] && queue="not empty"
echo "udevd $answer; its queue is $queue; its tasks:"
pids=$(pgrep -d, udev || true)
[ -z "$pids" ] ||
	ps -o pid=,stat=,wchan:24=,etimes=,args= -p "$pids" 2>/dev/null | cut -c1-110 | head -n 8 || true
# Tasks in uninterruptible sleep (D) anywhere: where in the kernel they wait. This kernel has
# no /proc/PID/stack (no CONFIG_STACKTRACE), so their stacks go to the kernel log (sysrq w),
# which the runner then shows as the test's kernel report.
blocked=$(ps -eo pid=,stat=,wchan:24=,comm= 2>/dev/null | awk '$2 ~ /^D/' | head -n 6 || true)
if [ -n "$blocked" ]; then
	echo "tasks in D state (pid, state, wait channel, command); their stacks: sysrq w, in the kernel log:"
	echo "$blocked"
	echo w >/proc/sysrq-trigger || true
else
	echo "no task in D state"
fi
echo "end of the dump"
