#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Direct I/O through the device stays coherent with the backing file's own page cache, as on
# loop.ko: a program that writes the bound image through its page cache (no fsync) and then reads
# the range through the device with direct I/O gets the new data (the direct read writes the
# dirty pages back first), and a direct write through the device is what a buffered read of the
# file then sees (the write drops the file's cached pages). The image is on ext4. rust_loop only:
# the direct read's non-blocking attempt was refused by the dirty range and retried blocking
# (eagain_fallbacks; an acknowledged refusal would hand the reader whatever the buffer held).
# Requests of several bios: four adjacent 4 KiB direct writes in one io_submit, which the block
# layer merges into one request (write merges +3, as on loop.ko), go to the file as one kiocb over
# a copy of the bios' segments (an array the kiocb owns until its completion, which may run in
# interrupt context), and the file holds the four blocks in order; then four adjacent direct
# reads the same way give the file's data.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
new=$LT_WORK/new
mib=1048576
lt_file "$img" 8M
lt_file "$new" 1M
# The image's inode clean (syncfs): its pages dirtied below then count from now for the flusher,
# which would otherwise write an inode dirtied more than 30 s ago back at any moment, maybe
# between the write into the page cache and the read through the device.
sync -f "$img"
# Nor may the periodic flusher clean them early: the pages dirtied again in later rounds keep the
# inode's first dirtying time, 30 s from which it writes the inode back at its next wake-up.
wb=$(cat /proc/sys/vm/dirty_writeback_centisecs)
lt_on_exit "echo $wb >/proc/sys/vm/dirty_writeback_centisecs"
echo 0 >/proc/sys/vm/dirty_writeback_centisecs
dev=$(lt_attach "$img" --direct-io=on)
lt_dio_is "$dev" on "loop/dio with --direct-io=on"
# udev must not read the device meanwhile: its reads would meet the dirty pages too, and merge.
lt_udev_hold
for off in 1 3 5; do
	e0=0
	[ "$LT_DRIVER" = rust ] && e0=$(lt_engine_stat "$dev" eagain_fallbacks)
	# 64 KiB into the file's page cache, dirty.
	dd if="$new" of="$img" bs=64k count=1 skip=$((off * 2)) seek=$((off * 16)) conv=notrunc status=none
	got=$(dd if="$dev" bs=64k count=1 skip=$((off * 16)) iflag=direct status=none | sha256sum | cut -d' ' -f1)
	lt_eq "$got" "$(lt_sum "$new" 65536 $((off * 131072)))" \
		"a direct read through $dev of 64 KiB written into the file's page cache at $off MiB"
	if [ "$LT_DRIVER" = rust ]; then
		[ "$(lt_engine_stat "$dev" eagain_fallbacks)" -gt "$e0" ] ||
			lt_fail "no refused non-blocking attempt for a direct read of dirty pages at $off MiB"
	fi
done
# The file's pages cached (clean), then a direct write through the device over them.
cat "$img" >/dev/null
dd if="$new" of="$dev" bs=64k count=2 seek=112 oflag=direct conv=notrunc status=none
lt_eq "$(lt_sum "$img" 131072 $((7 * mib)))" "$(lt_sum "$new" 131072)" \
	"a buffered read of the file after a direct write through $dev over its cached pages"
m0=$(lt_stat "$dev" 6)
out=$(python3 "$LT_DIR/aio_batch.py" "$dev" $((6 * mib)) 4 write-sum)
lt_eq "$(head -n 1 <<<"$out")" "4096 4096 4096 4096" "results of four adjacent direct writes in one io_submit"
lt_eq "$(lt_stat "$dev" 6)" $((m0 + 3)) "write merges of four adjacent direct writes in one io_submit"
lt_eq "$(lt_sum "$img" 16384 $((6 * mib)))" "$(tail -n 1 <<<"$out")" "the file after four merged direct writes"
m0=$(lt_stat "$dev" 2)
out=$(python3 "$LT_DIR/aio_batch.py" "$dev" $((6 * mib)) 4 read)
lt_eq "$(head -n 1 <<<"$out")" "4096 4096 4096 4096" "results of four adjacent direct reads in one io_submit"
lt_eq "$(lt_stat "$dev" 2)" $((m0 + 3)) "read merges of four adjacent direct reads in one io_submit"
lt_eq "$(tail -n 1 <<<"$out")" "$(lt_sum "$img" 16384 $((6 * mib)))" "four merged direct reads"
lt_udev_release
lt_detach "$dev"
exit 0
