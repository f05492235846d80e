#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Deliberate differences from loop.c, shown on both drivers. A short direct write: a 256 KiB
# O_DIRECT write (one request) through the device (direct I/O on) when the backing tmpfs has
# 64 KiB left; the file system stores part of it. rust_loop retries the rest and fails the
# write with the file system's ENOSPC; loop.c 7.2 acknowledges the whole request, so its writer
# sees success for data that was never stored (on both: the data does not read back). A request
# of four bios of which only the first fits (buffered, one page of space left): rust_loop
# completes the first and fails the other three with ENOSPC, loop.c acknowledges all four. An
# oversized LOOP_SET_BLOCK_SIZE argument (2^32 + 512) on a device of block size 4096: rust_loop
# says EINVAL and keeps 4096, loop.c truncates it to 512.
. "$(dirname "$0")/lib.sh"
lt_need fallocate python3

lt_sparse "$LT_WORK/img" 8M
dev=$(lt_attach "$LT_WORK/img" -b 4096)
if [ "$LT_DRIVER" = rust ]; then
	lt_expect "ERR EINVAL" set-bs "$dev" $(((1 << 32) + 512))
	want=4096
else
	lt_expect "OK 0" set-bs "$dev" $(((1 << 32) + 512))
	want=512
fi
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" "$want" \
	"block size 4096 after LOOP_SET_BLOCK_SIZE(2^32 + 512)"
losetup -d "$dev"
udevadm settle

# tmpfs: its "direct" writes go through the page cache and stop short when the space runs out
# (ext4's iomap direct writes fail whole instead).
fs=$LT_WORK/fs
mkdir -p "$fs"
mount -t tmpfs -o size=4M tmpfs "$fs"
lt_sparse "$fs/img" 8M
dev=$(lt_attach "$fs/img" --direct-io=on)
lt_eq "$(lt_sysfs "$dev" loop/dio)" 1 "dio"
avail=$(df -B1 --output=avail "$fs" | tail -n 1)
fallocate -l $((avail - 65536)) "$fs/filler"
lt_log "file system space left: $(df -B1 --output=avail "$fs" | tail -n 1) bytes"
dd if=/dev/urandom of="$LT_WORK/data" bs=256K count=1 status=none
rc=0
out=$(dd if="$LT_WORK/data" of="$dev" bs=256K count=1 oflag=direct conv=notrunc 2>&1) || rc=$?
got=$(dd if="$dev" bs=256K count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)
same=$([ "$got" = "$(lt_sum "$LT_WORK/data")" ] && echo yes || echo no)
lt_log "256 KiB direct write into 64 KiB of space: exit $rc ($(tail -n 1 <<<"$out")); reads back: $same"
lt_eq "$same" no "256 KiB read back after writing it into 64 KiB"
if [ "$LT_DRIVER" = rust ]; then
	[ "$rc" != 0 ] || lt_fail "the short write was acknowledged: 256 KiB written, less stored"
	grep -q "No space left on device" <<<"$out" || lt_fail "the writer did not see ENOSPC: $out"
else
	# loop.c 7.2 acknowledges a short write (lo_complete_rq ends a write request OK whatever
	# its transfer). If this fails, loop.c was fixed: update the README's differences.
	[ "$rc" = 0 ] || lt_fail "loop.ko no longer acknowledges a short write: $out"
fi
losetup -d "$dev"
udevadm settle

# A request of four bios of which only the first fits, buffered (direct I/O off): four adjacent
# 4 KiB direct writes submitted in one io_submit (the kernel plugs a batch of more than two, so
# the block layer merges them into one request) when the backing tmpfs has one page left. The
# file system stores the first 4 KiB and refuses the rest. rust_loop completes the first bio and
# fails the others with ENOSPC (it once failed all four, the stored one too); loop.c acknowledges
# all four (its short-write choice, as above).
dev=$(lt_attach "$fs/img" --direct-io=off)
rm -f "$fs/filler"
avail=$(df -B1 --output=avail "$fs" | tail -n 1)
fallocate -l $((avail - 4096)) "$fs/filler"
m0=$(lt_stat "$dev" 6)
res=$(python3 "$LT_DIR/aio_batch.py" "$dev" $((1 << 20)) 4)
lt_log "four 4 KiB writes in one request, one page of space: results $res, write merges $m0 -> $(lt_stat "$dev" 6)"
[ "$(lt_stat "$dev" 6)" = $((m0 + 3)) ] || lt_fail "the four writes were not merged into one request"
if [ "$LT_DRIVER" = rust ]; then
	lt_eq "$res" "4096 -28 -28 -28" "results of the four writes (-28: ENOSPC)"
else
	lt_eq "$res" "4096 4096 4096 4096" "results of the four writes on loop.ko"
fi
losetup -d "$dev"
udevadm settle
exit 0
