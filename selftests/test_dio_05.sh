#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The seed's claims, measured. Memory: ext4 on the loop device, caches dropped, 512 MiB of files
# read; with direct I/O the backing file adds no page cache of its own, so Cached grows by about
# the data read once (<= 1.2x) and Buffers by < 5 MiB; buffered, Cached grows measurably more
# (the backing file's copy). No page pinning: reading those files pins no pages (FOLL_PIN count
# in /proc/vmstat < 1% of the pages read), while user-space O_DIRECT pins one per page. Context
# switches: system-wide /proc/stat ctxt per I/O of a fixed 4 KiB random-read job, direct vs
# buffered, reported (not a threshold).
. "$(dirname "$0")/lib.sh"
lt_need fio mkfs.ext4

data_mb=512
files=8
img=$LT_WORK/img
fallocate -l $((data_mb + 160))M "$img"
mnt=$LT_WORK/mnt
mkdir -p "$mnt"
meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
declare -A cached buffers pinned
# Pages pinned with FOLL_PIN (pin_user_pages and friends), system-wide.
pins() { awk '$1 == "nr_foll_pin_acquired" { print $2 }' /proc/vmstat; }

# The counter works: user-space direct I/O pins its buffer, one pin per 4 KiB page.
lt_file "$LT_WORK/ref" 64M
p0=$(pins)
dd if="$LT_WORK/ref" of=/dev/null bs=1M count=64 iflag=direct status=none
user_pins=$(($(pins) - p0))
lt_log "user-space O_DIRECT read of 64 MiB from a file: $user_pins pages pinned"
# (vmstat counters are per-CPU and folded lazily: allow some slack.)
[ "$user_pins" -ge $((16384 * 9 / 10)) ] || lt_fail "nr_foll_pin_acquired does not count user O_DIRECT pins"

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
	c0=$(meminfo Cached) b0=$(meminfo Buffers) p0=$(pins)
	cat "$mnt"/f* >/dev/null
	c1=$(meminfo Cached) b1=$(meminfo Buffers) p1=$(pins)
	cached[$dio]=$(((c1 - c0) / 1024))
	buffers[$dio]=$(((b1 - b0) / 1024))
	pinned[$dio]=$((p1 - p0))
	lt_log "dio=$dio: read ${data_mb} MiB: Cached +${cached[$dio]} MiB, Buffers +${buffers[$dio]} MiB, ${pinned[$dio]} pages pinned"
	umount "$mnt"
	losetup -d "$dev"
	udevadm settle
done

[ "${cached[on]}" -le $((data_mb * 12 / 10)) ] ||
	lt_fail "with direct I/O Cached grew by ${cached[on]} MiB for ${data_mb} MiB read (> 1.2x)"
[ "${buffers[on]}" -lt 5 ] || lt_fail "with direct I/O Buffers grew by ${buffers[on]} MiB (>= 5)"
# No page pinning: the loop device's direct I/O runs on the request's own bio_vecs.
[ "${pinned[on]}" -lt $((data_mb * 256 / 100)) ] ||
	lt_fail "direct I/O through the loop device pinned ${pinned[on]} pages for $((data_mb * 256)) read"
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
