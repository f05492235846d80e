#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# fio with crc32c verification, O_DIRECT on the loop device, random read/write, at block sizes
# 512 and 4096, psync with 4 jobs and libaio at queue depth 32, with the device's direct I/O
# (the async kiocb path) on and off: no verify or I/O error anywhere.
. "$(dirname "$0")/lib.sh"
lt_need fio

img=$LT_WORK/img
# Fully allocated, so direct writes to it are plain overwrites.
fallocate -l 64M "$img"
for dio in on off; do
	dev=$(lt_attach "$img" --direct-io="$dio")
	want=$([ "$dio" = on ] && echo 1 || echo 0)
	lt_eq "$(lt_sysfs "$dev" loop/dio)" "$want" "loop/dio with --direct-io=$dio"
	for bs in 512 4096; do
		[ "$bs" = 512 ] && size=2M || size=8M
		lt_fio_verify "$dev" "$bs" psync 4 1 "$size"
		lt_fio_verify "$dev" "$bs" libaio 1 32 "$((${size%M} * 4))M"
		lt_log "dio=$dio bs=$bs: psync x4 and libaio qd32 verified"
	done
	losetup -d "$dev"
	udevadm settle
done
exit 0
