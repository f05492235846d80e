#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Module parameters at load, as loop.c: max_loop=4 creates loop0..loop3 and makes 4 a hard limit
# for devices created by opening a device node (an open of minor 6 fails and creates nothing),
# while /dev/loop-control still adds beyond it (GET_FREE with all four bound, ADD 10). Without
# max_loop, opening the node of a missing device creates it. hw_queue_depth=16 gives 16 tags per
# hardware queue (nr_requests 16), and a queue depth 32 fio verify runs through them.
. "$(dirname "$0")/lib.sh"
lt_need fio

reload() {
	lt_unload || lt_fail "unload"
	lt_load "$@" || lt_fail "load with $*"
}
# node_open MINOR: open a device node of major 7 MINOR (made here: devtmpfs only has nodes of
# devices that exist) and close it; fails if the open does.
node_open() {
	rm -f "$LT_WORK/node"
	mknod "$LT_WORK/node" b 7 "$1" || lt_fail "mknod of minor $1"
	(exec 3<"$LT_WORK/node") 2>/dev/null
}
# Whatever happens, the next test gets the driver with its default parameters.
# shellcheck disable=SC2317 # called by the EXIT trap
restore() {
	lt_cleanup
	{ lt_unload && lt_load; } || { echo "# FAIL: default parameters not restored"; exit 1; }
}
trap restore EXIT
devices() { find /sys/block -maxdepth 1 -name 'loop*' -printf '%f\n' | sort -V | tr '\n' ' '; }

reload max_loop=4 hw_queue_depth=16
lt_eq "$(cat /sys/module/loop/parameters/max_loop)" 4 "max_loop in sysfs"
lt_eq "$(cat /sys/module/loop/parameters/hw_queue_depth)" 16 "hw_queue_depth in sysfs"
lt_eq "$(devices)" "loop0 loop1 loop2 loop3 " "devices with max_loop=4"
node_open 6 && lt_fail "opening minor 6 with max_loop=4 succeeded"
[ -e /sys/block/loop6 ] && lt_fail "opening minor 6 with max_loop=4 created loop6"
node_open 2 || lt_fail "opening loop2's node failed"

img=$LT_WORK/img
lt_file "$img" 16M
for i in 0 1 2 3; do
	lt_expect "OK 0" set-fd "/dev/loop$i" "$img"
done
lt_expect "OK 4" ctl-get-free
lt_expect "OK 10" ctl-add 10
udevadm settle
lt_eq "$(devices)" "loop0 loop1 loop2 loop3 loop4 loop10 " "devices added through loop-control"

q=/sys/block/loop0/queue
lt_eq "$(cat "$q/nr_requests")" 16 "nr_requests with hw_queue_depth=16"
for t in /sys/block/loop0/mq/*/nr_tags; do
	lt_eq "$(cat "$t")" 16 "$t with hw_queue_depth=16"
done
lt_fio_verify /dev/loop0 4096 libaio 1 32 8M
losetup -D
udevadm settle

reload
node_open 20 || lt_fail "opening minor 20 without max_loop failed"
[ -e /sys/block/loop20 ] || lt_fail "opening minor 20 without max_loop did not create loop20"
lt_eq "$(cat "/sys/block/loop20/queue/nr_requests")" 128 "nr_requests by default"
exit 0
