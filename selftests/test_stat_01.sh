#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The block layer's I/O accounting of a loop device, as tools read it: /sys/block/loopN/stat,
# its line in /proc/diskstats and /sys/block/loopN/inflight. LTP's tst_dev_bytes_written()
# reads the sectors written and io_ticks of its loop device (its fsync, syncfs and
# sync_file_range tests check the bytes, and give up when io_ticks is 0); iostat and sar read
# /proc/diskstats. With the device's direct I/O off and on, one descriptor of the device (open
# all along) does direct writes and reads of known sizes, a discard, an fsync, a write with
# RWF_DSYNC (a FUA write, which a loop device without FUA support completes with a flush) and a
# BLKZEROOUT (a write-zeroes request), while udev executes no event (so that no probe reads the
# device). Each step must move the sectors of its kind by exactly its size and the completed
# count of its kind; the fsync and the RWF_DSYNC write must each count a flush; io_ticks must be
# above 0 (LTP's condition); nothing may stay in flight; /proc/diskstats must say what stat
# says. The counts of requests and merges of each step must be loop.ko's (they follow from the
# queue limits: 1 MiB of 4 KiB pages is 256 segments, two requests of 128).
. "$(dirname "$0")/lib.sh"

img=$LT_WORK/img
lt_sparse "$img" 64M
rec=$LT_WORK/record

# The steps, on one descriptor; after each, the device's stat line, prefixed with the step's
# name, once nothing is in flight: a request's sectors are counted before its bio ends, which
# wakes the submitter, and its count after, just before it leaves the in-flight count. Then
# inflight and the device's /proc/diskstats fields, before the descriptor is closed. BLKDISCARD
# is _IO(0x12, 119), BLKZEROOUT _IO(0x12, 127).
steps='
import fcntl, mmap, os, struct, sys, time
dev, name = sys.argv[1], sys.argv[2]
def stat(step):
    end = time.monotonic() + 30
    while True:
        with open("/sys/block/%s/stat" % name) as f:
            v = f.read().split()
        if v[8] == "0" or time.monotonic() > end:
            print(step, *v)
            return
        time.sleep(0.001)
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
assert os.pwritev(fd, [buf], 20 << 20, os.RWF_DSYNC) == 1 << 20
stat("dsync")
fcntl.ioctl(fd, 0x127f, struct.pack("QQ", 24 << 20, 1 << 20))
stat("zeroout")
with open("/sys/block/%s/inflight" % name) as f:
    print("inflight", *f.read().split())
with open("/proc/diskstats") as f:
    print("diskstats", *[l.split()[3:] for l in f if l.split()[2] == name][0])
os.close(fd)
'

# delta STEP FIELD: how far stat's FIELD moved in STEP.
delta() { awk -v s="$1" -v f="$2" '$1 == s { print $(f + 1) }' "$LT_WORK/deltas"; }

for dio in off on; do
	# No udev probe may read the device (new, and written by losetup's descriptor) before the
	# steps' last reading.
	lt_udev_hold
	dev=$(lt_attach "$img" --direct-io="$dio")
	lt_dio_is "$dev" "$dio" "dio"
	name=${dev#/dev/}
	python3 -c "$steps" "$dev" "$name" >"$LT_WORK/stats" || lt_fail "dio=$dio: the steps failed"
	lt_udev_release
	sed 's/^/# /' "$LT_WORK/stats"
	# Each step's line: its name, then how far each field of stat moved in it.
	awk '$1 == "inflight" || $1 == "diskstats" { next }
		n++ { printf "%s", $1; for (i = 2; i <= NF; i++) printf " %d", $i - prev[i]; print "" }
		{ for (i = 2; i <= NF; i++) prev[i] = $i }' "$LT_WORK/stats" >"$LT_WORK/deltas"
	# Fields of stat (Documentation/block/stat.rst): 1 reads, 2 read merges, 3 sectors read,
	# 5 writes, 6 write merges, 7 sectors written, 9 in flight, 10 io_ticks, 12 discards,
	# 13 discard merges, 14 sectors discarded, 16 flushes.
	awk -v dio="$dio" '{
		printf "dio=%s %s: reads +%d merges +%d sectors +%d, writes +%d merges +%d sectors +%d, discards +%d merges +%d sectors +%d, flushes +%d\n",
			dio, $1, $2, $3, $4, $6, $7, $8, $13, $14, $15, $17 }' "$LT_WORK/deltas" >>"$rec"
	lt_eq "$(delta write 7)" 16384 "dio=$dio: sectors written by 8 MiB of writes"
	lt_eq "$(delta write 3)" 0 "dio=$dio: sectors read by the writes"
	lt_eq "$(delta read 3)" 8192 "dio=$dio: sectors read by 4 MiB of reads"
	lt_eq "$(delta read 7)" 0 "dio=$dio: sectors written by the reads"
	lt_eq "$(delta discard 14)" 2048 "dio=$dio: sectors discarded by a 1 MiB discard"
	lt_eq "$(delta dsync 7)" 2048 "dio=$dio: sectors written by a 1 MiB RWF_DSYNC write"
	lt_eq "$(delta zeroout 7)" 2048 "dio=$dio: sectors written by a 1 MiB BLKZEROOUT"
	[ "$(delta write 5)" -ge 1 ] || lt_fail "dio=$dio: no write counted"
	[ "$(delta read 1)" -ge 1 ] || lt_fail "dio=$dio: no read counted"
	[ "$(delta discard 12)" -ge 1 ] || lt_fail "dio=$dio: no discard counted"
	[ "$(delta fsync 16)" -ge 1 ] || lt_fail "dio=$dio: no flush counted for the fsync"
	[ "$(delta dsync 16)" -ge 1 ] || lt_fail "dio=$dio: no flush counted for the RWF_DSYNC write"
	[ "$(delta zeroout 5)" -ge 1 ] || lt_fail "dio=$dio: no write counted for the BLKZEROOUT"
	last=$(awk '$1 == "zeroout" { $1 = ""; print }' "$LT_WORK/stats" | xargs)
	lt_eq "$(cut -d' ' -f9 <<<"$last")" 0 "dio=$dio: requests in flight after the steps"
	[ "$(cut -d' ' -f10 <<<"$last")" -gt 0 ] || lt_fail "dio=$dio: io_ticks is 0"
	lt_eq "$(awk '$1 == "inflight" { print $2, $3 }' "$LT_WORK/stats")" "0 0" "dio=$dio: inflight"
	lt_eq "$(awk '$1 == "diskstats" { $1 = ""; print }' "$LT_WORK/stats" | xargs)" "$last" \
		"dio=$dio: /proc/diskstats against stat"
	lt_detach "$dev"
done
sed 's/^/# /' "$rec"
lt_same_as_c stat_01 "$rec" "the counts of requests and merges"
exit 0
