#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# LOOP_SET_BLOCK_SIZE: ENXIO unbound (so user space can tell it from "unsupported"), EINVAL for
# invalid sizes, the new size in queue/logical_block_size; losetup -b at setup.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_file "$img" 8M
dev=$(losetup -f)
lt_expect "ERR ENXIO" set-bs "$dev" 4096
losetup "$dev" "$img"
lt_expect "OK 0" set-bs "$dev" 4096
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "logical_block_size"
lt_eq "$(lt_sysfs "$dev" queue/physical_block_size)" 4096 "physical_block_size"
lt_expect "ERR EINVAL" set-bs "$dev" 1000
lt_expect "ERR EINVAL" set-bs "$dev" 256
lt_expect "ERR EINVAL" set-bs "$dev" 65536
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "logical_block_size after EINVAL"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img")" "data with 4096-byte blocks"
lt_expect "OK 0" set-bs "$dev" 512
losetup -d "$dev"
udevadm settle
dev=$(lt_attach "$img" -b 4096)
lt_eq "$(losetup -l -n -O LOG-SEC "$dev" | tr -d ' ')" 4096 "losetup -b"
losetup -d "$dev"
exit 0
