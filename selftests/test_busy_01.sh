#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Binding a bound device fails with EBUSY (LOOP_SET_FD and LOOP_CONFIGURE), and the device
# keeps its binding.
. "$(dirname "$0")/lib.sh"

lt_sparse "$LT_WORK/a" 8M
lt_sparse "$LT_WORK/b" 8M
dev=$(lt_attach "$LT_WORK/a")
lt_expect "ERR EBUSY" set-fd "$dev" "$LT_WORK/b"
lt_expect "ERR EBUSY" configure "$dev" "$LT_WORK/b"
lt_eq "$(lt_sysfs "$dev" loop/backing_file)" "$LT_WORK/a" "backing file after EBUSY"
losetup -d "$dev"
exit 0
