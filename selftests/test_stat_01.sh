#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The block layer's I/O accounting of a loop device, as tools read it: /sys/block/loopN/stat,
# its line in /proc/diskstats and /sys/block/loopN/inflight. LTP's tst_dev_bytes_written()
# reads the sectors written and io_ticks of its loop device (its fsync, syncfs and
# sync_file_range tests check the bytes, and give up when io_ticks is 0); iostat and sar read
# /proc/diskstats. With the device's direct I/O off and on, one descriptor of the device (open
# all along, so udev's watch reads nothing in between) does direct writes and reads of known
# sizes, a discard and an fsync, while udev executes no event (so that no probe reads the
# device). Each step must move the sectors of its kind by exactly its size
# and the completed count of its kind (a flush for the fsync); io_ticks must advance; nothing
# may stay in flight; /proc/diskstats must say what stat says. The counts of requests and merges
# of each step must be loop.ko's.
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 64M
rec=$LT_WORK/record

# The steps, on one descriptor; after each, the device's stat line as it is then, prefixed with
# the step's name. BLKDISCARD is _IO(0x12, 119).
steps='
import fcntl, mmap, os, struct, sys
dev, statf = sys.argv[1], sys.argv[2]
def stat(step):
    with open(statf) as f:
        print(step, f.read().strip())
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
buf.write(os.urandom(1 << 20))
stat("start")
for i in range(8):
    assert os.pwrite(fd, buf, i << 20) == 1 << 20
stat("write")
for i in range(4):
    assert os.preadv(fd, [buf], (8 + i) << 20) == 1 << 20
stat("read")
fcntl.ioctl(fd, 0x1277, struct.pack("QQ", 16 << 20, 1 << 20))
stat("discard")
os.fsync(fd)
stat("fsync")
os.close(fd)
'

# delta STEP FIELD: how far stat's FIELD moved in STEP.
delta() {
	awk -v s="$1" -v f="$2" '{ x = $(f + 1) } $1 == s { print x - prev; exit } { prev = x }' \
		"$LT_WORK/stats"
}

lt_on_exit --first "udevadm control --start-exec-queue"
for dio in off on; do
	# udev's probes of a device read it (for a new device, and after a close of a descriptor
	# open for writing, which losetup's is): none may run before the last snapshot. The
	# events wait in udev's queue until then.
	udevadm settle
	udevadm control --stop-exec-queue
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_eq "$(lt_sysfs "$dev" loop/dio)" "$([ "$dio" = on ] && echo 1 || echo 0)" "dio"
	name=${dev#/dev/}
	python3 -c "$steps" "$dev" "/sys/block/$name/stat" >"$LT_WORK/stats" ||
		lt_fail "dio=$dio: the steps failed"
	udevadm control --start-exec-queue
	# Fields of stat (Documentation/block/stat.rst): 1 reads, 2 read merges, 3 sectors read,
	# 5 writes, 6 write merges, 7 sectors written, 9 in flight, 10 io_ticks, 12 discards,
	# 13 discard merges, 14 sectors discarded, 16 flushes.
	awk -v dio="$dio" '
		{ for (i = 2; i <= NF; i++) v[NR, i - 1] = $(i) }
		NR > 1 {
			printf "dio=%s %s: reads +%d merges +%d sectors +%d, writes +%d merges +%d sectors +%d, discards +%d merges +%d sectors +%d, flushes +%d\n",
				dio, $1, v[NR, 1] - v[NR - 1, 1], v[NR, 2] - v[NR - 1, 2], v[NR, 3] - v[NR - 1, 3],
				v[NR, 5] - v[NR - 1, 5], v[NR, 6] - v[NR - 1, 6], v[NR, 7] - v[NR - 1, 7],
				v[NR, 12] - v[NR - 1, 12], v[NR, 13] - v[NR - 1, 13], v[NR, 14] - v[NR - 1, 14],
				v[NR, 16] - v[NR - 1, 16]
		}' "$LT_WORK/stats" >>"$rec"
	sed 's/^/# /' "$LT_WORK/stats"
	lt_eq "$(delta write 7)" 16384 "dio=$dio: sectors written by 8 MiB of writes"
	lt_eq "$(delta write 3)" 0 "dio=$dio: sectors read by the writes"
	lt_eq "$(delta read 3)" 8192 "dio=$dio: sectors read by 4 MiB of reads"
	lt_eq "$(delta read 7)" 0 "dio=$dio: sectors written by the reads"
	lt_eq "$(delta discard 14)" 2048 "dio=$dio: sectors discarded by a 1 MiB discard"
	[ "$(delta write 5)" -ge 1 ] || lt_fail "dio=$dio: no write counted"
	[ "$(delta read 1)" -ge 1 ] || lt_fail "dio=$dio: no read counted"
	[ "$(delta discard 12)" -ge 1 ] || lt_fail "dio=$dio: no discard counted"
	[ "$(delta fsync 16)" -ge 1 ] || lt_fail "dio=$dio: no flush counted for the fsync"
	ticks=$(awk '$1 == "start" { a = $11 } $1 == "fsync" { print $11 - a }' "$LT_WORK/stats")
	[ "$ticks" -gt 0 ] || lt_fail "dio=$dio: io_ticks did not advance over 12 MiB of I/O"
	lt_eq "$(awk '$1 == "fsync" { print $10 }' "$LT_WORK/stats")" 0 "dio=$dio: requests in flight at the end"
	lt_eq "$(lt_sysfs "$dev" inflight | tr -s ' ' | sed 's/^ //')" "0 0" "dio=$dio: inflight"
	# /proc/diskstats: major, minor, name, then the fields of stat.
	lt_eq "$(awk -v n="$name" '$3 == n { $1 = $2 = $3 = ""; print }' /proc/diskstats | xargs)" \
		"$(xargs <"/sys/block/$name/stat")" "dio=$dio: /proc/diskstats against stat"
	lt_detach "$dev"
done
sed 's/^/# /' "$rec"
lt_same_as_c stat_01 "$rec" "the counts of requests and merges"
exit 0
