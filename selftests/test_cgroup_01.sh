#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The I/O a loop device does on its backing file belongs to the cgroup that submitted it, as in
# loop.c (kthread_associate_blkcg + set_active_memcg around the file I/O), direct I/O on and off:
# - io.stat: a cgroup's reads and writes through the loop device appear on the backing disk;
# - io.max: a cgroup limited to 2 MiB/s on the backing disk is held to it through the loop
#   device (within 20%), while another cgroup is not held;
# - memory.stat: with direct I/O off, the backing file's page cache filled by a read is charged
#   to the reader's memcg.
. "$(dirname "$0")/lib.sh"
lt_need dd awk

cg=/sys/fs/cgroup
[ -f "$cg/cgroup.controllers" ] || lt_skip "no cgroup2 at $cg"
for c in io memory; do
	grep -qw "$c" "$cg/cgroup.controllers" || lt_skip "no $c controller (CONFIG_BLK_CGROUP, CONFIG_MEMCG)"
done
echo "+io +memory" >"$cg/cgroup.subtree_control"
a=$cg/rl-a.$$
b=$cg/rl-b.$$
lt_on_exit "[ ! -d $a ] || rmdir $a"
lt_on_exit "[ ! -d $b ] || rmdir $b"
mkdir "$a" "$b"
# The backing disk: the one under the test's directory.
src=$(findmnt -no SOURCE --target "$LT_WORK")
majmin=$(cat "/sys/class/block/$(basename "$src")/dev")
[ -n "$majmin" ] || lt_skip "no block device under $LT_WORK"
[ -f "$a/io.max" ] || lt_skip "no io.max (CONFIG_BLK_DEV_THROTTLING)"

MiB=$((1 << 20))
# One image to read per cgroup (so that neither waits for the other's file-system metadata).
for f in ra rb; do
	dd if=/dev/zero of="$LT_WORK/$f" bs=1M count=32 conv=fsync status=none
done

# in_cg CGROUP CMD...: runs CMD as a member of CGROUP.
in_cg() {
	local group=$1
	shift
	bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$group" "$@"
}
# io_bytes CGROUP rbytes|wbytes: the cgroup's bytes on the backing disk.
io_bytes() {
	awk -v d="$majmin" -v k="$2" '$1 == d {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' \
		"$1/io.stat" | grep . || echo 0
}
file_bytes() { lt_key "$1/memory.stat" file; }
cold() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
# seconds CMD...: how long CMD took, in seconds (decimal).
seconds() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || lt_fail "failed: $*"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
# check_fail WHY: a failed check; the others still run (each shows whether it holds), and the
# test fails at the end.
failed=0
check_fail() {
	echo "# FAIL: $*"
	failed=1
}

for dio in on off; do
	# Reads come from the image with data; writes go to one image per cgroup, made by that
	# cgroup (as a container's own image is): with direct I/O off, the writeback of a file's
	# dirty pages counts against the cgroup its inode was first dirtied by, and the page cache
	# the writes dirty must be charged to the writer's memcg, which this checks.
	rm -f "$LT_WORK/wa" "$LT_WORK/wb"
	in_cg "$a" truncate -s 64M "$LT_WORK/wa"
	in_cg "$b" truncate -s 64M "$LT_WORK/wb"
	dev=$(lt_attach "$LT_WORK/ra" --direct-io="$dio")
	dev_rb=$(lt_attach "$LT_WORK/rb" --direct-io="$dio")
	dev_a=$(lt_attach "$LT_WORK/wa" --direct-io="$dio")
	dev_b=$(lt_attach "$LT_WORK/wb" --direct-io="$dio")
	udevadm settle

	# io.stat: 16 MiB read and 16 MiB written by cgroup A show on the backing disk; with direct
	# I/O off, the page cache the writes dirtied is A's.
	cold
	r0=$(io_bytes "$a" rbytes)
	in_cg "$a" dd if="$dev" of=/dev/null bs=1M count=16 iflag=direct status=none
	r1=$(io_bytes "$a" rbytes)
	ge $((r1 - r0)) $((16 * MiB * 9 / 10)) ||
		check_fail "dio=$dio: cgroup A read 16 MiB through $dev; its io.stat grew by $((r1 - r0)) bytes"
	w0=$(io_bytes "$a" wbytes)
	f0=$(file_bytes "$a")
	in_cg "$a" dd if=/dev/zero of="$dev_a" bs=1M count=16 oflag=direct conv=fsync status=none
	w1=$(io_bytes "$a" wbytes)
	f1=$(file_bytes "$a")
	ge $((w1 - w0)) $((16 * MiB * 9 / 10)) ||
		check_fail "dio=$dio: cgroup A wrote 16 MiB through $dev_a; its io.stat grew by $((w1 - w0)) bytes"
	if [ "$dio" = off ]; then
		ge $((f1 - f0)) $((16 * MiB * 9 / 10)) ||
			check_fail "cgroup A wrote 16 MiB (buffered backing file): its memory.stat file grew by $((f1 - f0)) bytes"
	fi
	lt_log "dio=$dio: io.stat of the submitter: +$(((r1 - r0) / MiB)) MiB read, +$(((w1 - w0) / MiB)) MiB written; memory.stat file +$(((f1 - f0) / MiB)) MiB"

	# io.max: 8 MiB at 2 MiB/s is 4 s; held within 20% means at most 2.4 MiB/s (>= 3.33 s).
	# The other cgroup goes first, so that it does not meet the limited one's throttled bios.
	echo "$majmin rbps=$((2 * MiB)) wbps=$((2 * MiB))" >"$a/io.max"
	cold
	tb=$(seconds in_cg "$b" dd if="$dev_rb" of=/dev/null bs=1M count=8 iflag=direct)
	cold
	ta=$(seconds in_cg "$a" dd if="$dev" of=/dev/null bs=1M count=8 skip=16 iflag=direct)
	ge "$ta" 3.33 || check_fail "dio=$dio: a reader limited to 2 MiB/s read 8 MiB in ${ta}s"
	ge "$(awk -v a="$ta" 'BEGIN { print a / 2 }')" "$tb" ||
		check_fail "dio=$dio: an unlimited reader took ${tb}s, the limited one ${ta}s"
	tb_w=$(seconds in_cg "$b" dd if=/dev/zero of="$dev_b" bs=1M count=8 seek=16 oflag=direct conv=fsync)
	ta_w=$(seconds in_cg "$a" dd if=/dev/zero of="$dev_a" bs=1M count=8 seek=16 oflag=direct conv=fsync)
	ge "$ta_w" 3.33 || check_fail "dio=$dio: a writer limited to 2 MiB/s wrote 8 MiB in ${ta_w}s"
	ge "$(awk -v a="$ta_w" 'BEGIN { print a / 2 }')" "$tb_w" ||
		check_fail "dio=$dio: an unlimited writer took ${tb_w}s, the limited one ${ta_w}s"
	echo "$majmin rbps=max wbps=max" >"$a/io.max"
	lt_log "dio=$dio: io.max 2 MiB/s: 8 MiB read in ${ta}s (other cgroup ${tb}s), written in ${ta_w}s (other ${tb_w}s)"

	if [ "$dio" = off ]; then
		# memory.stat: the backing file's page cache of a cold read is the reader's.
		cold
		f0=$(file_bytes "$a")
		in_cg "$a" dd if="$dev" of=/dev/null bs=1M count=16 iflag=direct status=none
		f1=$(file_bytes "$a")
		ge $((f1 - f0)) $((16 * MiB * 9 / 10)) ||
			check_fail "cgroup A read 16 MiB (buffered backing file): its memory.stat file grew by $((f1 - f0)) bytes"
		lt_log "dio=off: memory.stat file of the reader: +$(((f1 - f0) / MiB)) MiB for a 16 MiB read"
	fi
	losetup -d "$dev" "$dev_rb" "$dev_a" "$dev_b"
	udevadm settle
done
[ "$failed" = 0 ] || exit "$KSFT_FAIL"
exit 0
