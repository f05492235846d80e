#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LO_FLAGS_AUTOCLEAR unbinds the device at its last close, not before.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 8M
dev=$(losetup -f)
exec 3<"$dev"
lt_expect "OK 0" configure "$dev" "$img" --flags 4
udevadm settle
lt_bound "$dev" || lt_fail "unbound while still open"
lt_eq "$(lt_sysfs "$dev" loop/autoclear)" 1 "loop/autoclear"
exec 3<&-
udevadm settle
lt_bound "$dev" && lt_fail "still bound after the last close"

# With nobody else holding it, the binder's own close is the last one.
lt_expect "OK 0" configure "$dev" "$img" --flags 4
udevadm settle
lt_bound "$dev" && lt_fail "still bound after the binder closed it"
exit 0
