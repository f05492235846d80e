#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The seed's claims, measured. Memory: ext4 on the loop device, caches dropped, 512 MiB of files
# read; with direct I/O the backing file adds no page cache of its own: the backing image has < 5
# MiB in the page cache afterwards (what Cached loses when the file's clean pages are dropped with
# POSIX_FADV_DONTNEED) and Cached grows by about the data read once (<= 1.2x); buffered, the image
# has at least half the data resident and Cached grows measurably more (the backing file's copy).
# No page pinning: an O_DIRECT read of the loop device pins exactly what the same O_DIRECT read of
# the backing file pins (the reader's buffer, FOLL_PIN counted in /proc/vmstat): the loop device
# adds no pins of its own (at most 10% of the pages read more, for counters folded late; pins of
# its own would double the count). Context switches: system-wide /proc/stat ctxt per I/O of a
# fixed 4 KiB random-read job, direct vs buffered, reported (not a threshold).
. "$(dirname "$0")/lib.sh"
lt_need fio mkfs.ext4

data_mb=512
files=8
img=$LT_WORK/img
fallocate -l $((data_mb + 160))M "$img"
mnt=$LT_WORK/mnt
mkdir -p "$mnt"
meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
declare -A cached buffers resident
# resident_mb FILE: MiB of FILE's clean pages in the page cache: what Cached loses when they are
# dropped (POSIX_FADV_DONTNEED).
resident_mb() {
	local c0 c1
	c0=$(meminfo Cached)
	python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
	c1=$(meminfo Cached)
	echo $(((c0 - c1) / 1024))
}
# Pages pinned with FOLL_PIN (pin_user_pages and friends), system-wide.
pins() { lt_key /proc/vmstat nr_foll_pin_acquired; }

# The counter works: user-space direct I/O pins its buffer, one pin per 4 KiB page.
lt_file "$LT_WORK/ref" 64M
p0=$(pins)
dd if="$LT_WORK/ref" of=/dev/null bs=1M count=64 iflag=direct status=none
user_pins=$(($(pins) - p0))
lt_log "user-space O_DIRECT read of 64 MiB from a file: $user_pins pages pinned"
# (vmstat counters are per-CPU and folded lazily: allow some slack.)
[ "$user_pins" -ge $((16384 * 9 / 10)) ] || lt_fail "nr_foll_pin_acquired does not count user O_DIRECT pins"
# The same read through a loop device with direct I/O over that file: the reader's buffer is
# pinned as before (by the block layer, for the loop device), and the loop device adds none.
dev=$(lt_attach "$LT_WORK/ref" --direct-io=on)
sync
echo 3 >/proc/sys/vm/drop_caches
p0=$(pins)
dd if="$dev" of=/dev/null bs=1M count=64 iflag=direct status=none
loop_pins=$(($(pins) - p0))
losetup -d "$dev"
udevadm settle
lt_log "the same read through a loop device (direct I/O): $loop_pins pages pinned"
# A loop device pinning its own pages would double the count; 10% of the 16384 pages (1638)
# covers the per-CPU counters folded late on a machine of a few CPUs.
[ "$loop_pins" -le $((user_pins + 1638)) ] ||
	lt_fail "the loop device pinned pages of its own: $loop_pins pins against $user_pins for the file"

for dio in on off; do
	dev=$(lt_attach "$img" --direct-io="$dio")
	mkfs.ext4 -q -F "$dev"
	mount "$dev" "$mnt"
	for i in $(seq 1 $files); do
		dd if=/dev/zero of="$mnt/f$i" bs=1M count=$((data_mb / files)) conv=fsync status=none
	done
	umount "$mnt"
	mount -o ro "$dev" "$mnt"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	c0=$(meminfo Cached) b0=$(meminfo Buffers)
	cat "$mnt"/f* >/dev/null
	c1=$(meminfo Cached) b1=$(meminfo Buffers)
	cached[$dio]=$(((c1 - c0) / 1024))
	buffers[$dio]=$(((b1 - b0) / 1024))
	# The backing file's own page cache: what the loop device's reads left in it.
	resident[$dio]=$(resident_mb "$img")
	lt_log "dio=$dio: read ${data_mb} MiB: Cached +${cached[$dio]} MiB, Buffers +${buffers[$dio]} MiB, backing file resident ${resident[$dio]} MiB"
	umount "$mnt"
	losetup -d "$dev"
	udevadm settle
done

[ "${cached[on]}" -le $((data_mb * 12 / 10)) ] ||
	lt_fail "with direct I/O Cached grew by ${cached[on]} MiB for ${data_mb} MiB read (> 1.2x)"
[ "${resident[on]}" -lt 5 ] ||
	lt_fail "with direct I/O the backing file kept ${resident[on]} MiB in its page cache (>= 5)"
[ "${resident[off]}" -ge $((data_mb / 2)) ] ||
	lt_fail "buffered, the backing file has only ${resident[off]} MiB resident: is the measure broken?"
[ "${cached[off]}" -ge $((cached[on] + data_mb / 2)) ] ||
	lt_fail "buffered Cached growth ${cached[off]} MiB is not measurably above direct ${cached[on]} MiB"

# Context switches per I/O: 4 KiB random reads, one psync job, O_DIRECT on the loop device, the
# backing file uncached (real data, so reads hit the disk).
lt_file "$img.ctx" 64M
ios=4000
for dio in on off; do
	dev=$(lt_attach "$img.ctx" --direct-io="$dio")
	sync
	echo 3 >/proc/sys/vm/drop_caches
	x0=$(awk '/^ctxt/ { print $2 }' /proc/stat)
	fio --name=ctx --filename="$dev" --direct=1 --rw=randread --bs=4k --ioengine=psync \
		--number_ios=$ios --size=64M --randrepeat=0 --norandommap >/dev/null ||
		lt_fail "fio failed"
	x1=$(awk '/^ctxt/ { print $2 }' /proc/stat)
	lt_log "dio=$dio: $((x1 - x0)) context switches for $ios reads: $(((x1 - x0) * 100 / ios / 100)).$(((x1 - x0) * 100 / ios % 100)) per I/O"
	losetup -d "$dev"
	udevadm settle
done
exit 0
