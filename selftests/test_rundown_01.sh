#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_CLR_FD by the only opener puts the device in rundown: a new open fails with ENXIO until
# the last close unbinds it; then it can be opened and bound again.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 8M
dev=$(lt_attach "$img")
udevadm settle
lt_expect "ERR ENXIO" clr-fd-reopen "$dev"
udevadm settle
lt_bound "$dev" && lt_fail "still bound after the last close"
exec 3<"$dev" || lt_fail "cannot open $dev after unbinding"
exec 3<&-
dev2=$(lt_attach "$img")
lt_eq "$dev2" "$dev" "the device is free again"
losetup -d "$dev"
exit 0
