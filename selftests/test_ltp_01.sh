#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The Linux Test Project's loop-device ioctl tests (ioctl_loop01..07: LO_FLAGS_AUTOCLEAR and
# LO_FLAGS_PARTSCAN through LOOP_SET_STATUS, read-only devices and LOOP_CHANGE_FD,
# LOOP_SET_CAPACITY, LOOP_SET_DIRECT_IO and the offset's alignment, invalid block sizes of
# LOOP_SET_BLOCK_SIZE and LOOP_CONFIGURE, lo_sizelimit through LOOP_SET_STATUS64 and
# LOOP_CONFIGURE; ioctl09: BLKRRPART on a partition-scanning device), ported to python3
# (ltp_loop.py), print exactly what loop.ko 7.2 prints (ltp_loop.out, taken from loop.ko's run).
# Deviations from LTP (all in ltp_loop.py, whose header lists them): python3 instead of C and
# the LTP library; observed values printed instead of verdicts (stricter: the whole lo_flags
# value, the errno name); parted replaced by an MBR written by the port; LTP's retries bounded,
# after `udevadm settle`; probes that make LTP skip (TCONF) print their outcome instead;
# extra lines (marked "(extra)"): BLKGETSIZE64 next to sysfs size, the whole of LOOP_GET_STATUS64,
# LOOP_GET_STATUS and the loop sysfs attributes after every step; ioctl_loop06 tries the invalid
# sizes of current and older LTP (2 * 64 KiB and 2 * PAGE_SIZE).
. "$(dirname "$0")/lib.sh"
lt_need python3 udevadm findmnt blockdev
# ioctl_loop05's lines depend on what holds the files, not on the driver (the backing device's
# sector size, the offsets taken from it, whether direct I/O can be set): ltp_loop.out is
# loop.ko's with the files on ext4 over a 512-byte-sector disk (the guest's /dev/vda).
src=$(findmnt -n -o SOURCE --target "$LT_WORK")
if [ "$(findmnt -n -o FSTYPE --target "$LT_WORK")" != ext4 ] || [ ! -b "$src" ] ||
	[ "$(blockdev --getss "$src")" != 512 ]; then
	lt_skip "ltp_loop.out is loop.ko's with the files on ext4 over a 512-byte-sector disk"
fi

out=$LT_WORK/out
mkdir -p "$LT_WORK/ltp"
# The port detaches what it binds, also when a step fails; lt_cleanup (losetup -D) covers a port
# killed on its timeout halfway.
# It exits 1 if a step broke off a test ("TEST: aborted: ..." in the output, so in the diff).
rc=0
python3 "$LT_DIR/ltp_loop.py" "$LT_WORK/ltp" >"$out" 2>"$LT_WORK/err" || rc=$?
lt_same_as_expected "$LT_DIR/ltp_loop.out" "$out" "$LT_WORK/err" "the LTP loop tests' output"
[ "$rc" = 0 ] || lt_fail "ltp_loop.py exited $rc: $(tail -n 5 "$LT_WORK/err")"
lt_log "time per test: $(sed -n 's/^\(ioctl[_a-z0-9]*\): \([0-9.]*\) s$/\1 \2s/p' "$LT_WORK/err" | paste -sd' ')"
exit 0
