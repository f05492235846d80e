#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# /dev/loop-control: ADD (EEXIST when taken), REMOVE (ENODEV when absent, EBUSY when bound or
# open, EINVAL for a negative index), GET_FREE (first unbound device), unknown command ENOSYS.
. "$(dirname "$0")/lib.sh"

lt_expect "OK 100" ctl-add 100
udevadm settle
[ -b /dev/loop100 ] || lt_fail "/dev/loop100 did not appear"
lt_expect "ERR EEXIST" ctl-add 100
lt_expect "OK 0" ctl-remove 100
udevadm settle
[ -e /sys/block/loop100 ] && lt_fail "loop100 still in sysfs after REMOVE"
lt_expect "ERR ENODEV" ctl-remove 100
lt_expect "ERR EINVAL" ctl-remove -1
lt_expect "ERR ENOSYS" ctl-raw 0x4C83 0

# The first unbound device, and the lowest free number for ADD -1.
lt_expect "OK 0" ctl-get-free
next=$(lt_ioctl ctl-add -1)
lt_eq "$next" "OK 8" "ADD -1 with loop0..loop7 present"
# udev opens a new disk to handle its add event; REMOVE would be EBUSY meanwhile.
udevadm settle
lt_expect "OK 0" ctl-remove 8

lt_expect "OK 101" ctl-add 101
udevadm settle
lt_sparse "$LT_WORK/img" 8M
losetup /dev/loop101 "$LT_WORK/img"
lt_expect "ERR EBUSY" ctl-remove 101
losetup -d /dev/loop101
udevadm settle
exec 3</dev/loop101
lt_expect "ERR EBUSY" ctl-remove 101
exec 3<&-
lt_expect "OK 0" ctl-remove 101
exit 0
