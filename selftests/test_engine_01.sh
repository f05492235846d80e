#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# rust_loop's engine does what its counters (debugfs rust_loop/loopN/stats) and the README say:
# - one hardware queue per online CPU by default, each served by a worker rust_loopN-Q that runs
#   on that queue's CPUs (/sys/block/loopN/mq/Q/cpu_list), at nice 0 as the shared worker
#   (set, also when kthreadd, whose level a kthread starts with, runs at another);
#   nr_hw_queues=1 gives loop.c's shape (one worker, no shared one);
# - a buffered read that hits the backing file's page cache completes in the non-blocking
#   attempt; one that misses falls back to the blocking path (its image on a scsi_debug disk
#   slowed to 200 ms per command meanwhile: on a fast disk the read-ahead the attempt starts
#   may be done before it looks at the page, and the read then rightly completes at once);
# - direct I/O reads are submitted non-blocking (ext4 supports IOCB_NOWAIT);
# - buffered writes to a file go to the one shared worker rust_loopN-s (any CPU); a lone direct
#   I/O write stays on its queue and is submitted blocking (not IOCB_NOWAIT), as loop.c does;
#   reads and writes that find the device busy (another request in flight, here fio at QD16)
#   go to the shared worker; with one queue there is none (udev's queue is stopped meanwhile:
#   its reads would make the device busy);
# - flushes go to the blocking path.
# loop.ko has none of this (one queue, one workqueue): rust_loop only.
. "$(dirname "$0")/lib.sh"

[ "$LT_DRIVER" = rust ] || lt_skip "rust_loop's engine (loop.ko has one queue and one workqueue)"
lt_need fio
# worker_nice N Q: the nice level of worker rust_loopN-Q (field 19 of its stat; its name has no
# space or parenthesis).
worker_nice() {
	local p
	p=$(lt_worker_pid "$1" "$2")
	[ "$p" = none ] && { echo none; return 0; }
	awk '{ print $19 }' "/proc/$p/stat"
}

img=$LT_WORK/img
lt_file "$img" 16M
dev=$(lt_attach "$img" --direct-io=off)
# udev's reads of the new device would count in the counters below.
udevadm settle
n=${dev#/dev/loop}
queues=$(find "/sys/block/loop$n/mq" -mindepth 1 -maxdepth 1 | wc -l)
want=$(($(nproc) < 16 ? $(nproc) : 16))
lt_eq "$queues" "$want" "hardware queues by default"
lt_eq "$(lt_engine_stat "$dev" hw_queues)" "$want" "hw_queues in stats"
# Every worker runs at nice 0, loop.c's workers' level (checked below with kthreadd reniced).
for ((q = 0; q < queues; q++)); do
	lt_eq "$(lt_worker_cpus "$n" "$q")" "$(lt_cpus "$(lt_sysfs "loop$n" "mq/$q/cpu_list")")" \
		"CPUs of worker rust_loop$n-$q"
	lt_eq "$(worker_nice "$n" "$q")" 0 "nice level of worker rust_loop$n-$q"
done
if [ "$queues" -gt 1 ]; then
	lt_eq "$(worker_nice "$n" s)" 0 "nice level of the shared worker rust_loop$n-s"
fi

# Cold: the backing file is not cached, a read falls back. The non-blocking attempt starts the
# read-ahead of the pages it misses and gives up only if they are not there when it looks: on
# the scratch disk they sometimes are (a CI run saw 0 fallbacks of 64 reads). So the cold image
# is on an ext4 on a scsi_debug disk that takes 50 jiffies (200 ms at the guest kernel's HZ=250)
# per command while it is read.
fs=$LT_WORK/fs
sd=$(lt_scsi_debug dev_size_mb=16)
# (No lazy initialization: its writes would keep the disk busy, and refuse the delay.)
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$sd"
mkdir -p "$fs"
mount "$sd" "$fs"
lt_file "$fs/cold" 1M
cold=$(lt_attach "$fs/cold" --direct-io=off)
lt_udev_hold
lt_scsi_debug_delay 50
echo 3 >/proc/sys/vm/drop_caches
lt_eq "$(lt_resident "$fs/cold")" 0 "pages of the cold image in the page cache"
e0=$(lt_engine_stat "$cold" eagain_fallbacks)
got=$(lt_sum_direct "$cold" 65536) || lt_fail "a cold read of $cold failed"
e1=$(lt_engine_stat "$cold" eagain_fallbacks)
[ "$e1" -gt "$e0" ] || lt_fail "a cold buffered read did not fall back to the blocking path ($e0 -> $e1)"
lt_eq "$got" "$(lt_sum "$fs/cold" 65536)" "64 KiB read cold"
lt_scsi_debug_delay 1
lt_udev_release
lt_detach "$cold"
umount "$fs"
# Warm: the image is in the page cache; a read completes at once.
cat "$img" >/dev/null
b0=$(lt_engine_stat "$dev" buffered_nowait)
e0=$(lt_engine_stat "$dev" eagain_fallbacks)
dd if="$dev" of=/dev/null bs=64k count=64 iflag=direct status=none
b1=$(lt_engine_stat "$dev" buffered_nowait)
e1=$(lt_engine_stat "$dev" eagain_fallbacks)
[ $((b1 - b0)) -ge 64 ] || lt_fail "a cached buffered read of 64 requests: $((b1 - b0)) completed non-blocking"
lt_eq "$((e1 - e0))" 0 "fallbacks of a cached buffered read"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img")" "data read through both paths"

# Direct I/O reads: submitted non-blocking.
losetup --direct-io=on "$dev"
a0=$(lt_engine_stat "$dev" aio_nowait)
dd if="$dev" of=/dev/null bs=64k count=64 iflag=direct status=none
a1=$(lt_engine_stat "$dev" aio_nowait)
[ $((a1 - a0)) -ge 64 ] || lt_fail "64 direct reads: $((a1 - a0)) submitted non-blocking"

# Buffered writes to a file, from whatever CPU, are done by the device's one shared worker
# rust_loopN-s, which may run on any CPU (the file system serializes them on the inode lock
# anyway); a lone direct I/O write stays on its queue. With one queue, its worker does all.
# udev must not read the device meanwhile (its watch rule does after a writer's close): its
# reads would make the device busy, which sends requests to the shared worker too.
lt_udev_hold
last=$(($(nproc) - 1))
losetup --direct-io=off "$dev"
w0=$(lt_engine_stat "$dev" to_shared)
taskset -c "$last" dd if=/dev/zero of="$dev" bs=4k count=64 oflag=direct conv=notrunc status=none
w1=$(lt_engine_stat "$dev" to_shared)
if [ "$queues" -gt 1 ]; then
	[ $((w1 - w0)) -ge 64 ] || lt_fail "64 buffered writes: $((w1 - w0)) sent to the shared worker"
	# Not bound to a queue's CPUs: those of any kthread (kthreadd's, which kthreads inherit).
	lt_eq "$(lt_worker_cpus "$n" s)" "$(lt_task_cpus 2)" \
		"CPUs of the shared worker rust_loop$n-s"
else
	lt_eq "$((w1 - w0))" 0 "writes sent to a shared worker with one queue"
fi
losetup --direct-io=on "$dev"
w0=$(lt_engine_stat "$dev" to_shared)
a0=$(lt_engine_stat "$dev" aio_blocking)
n0=$(lt_engine_stat "$dev" aio_nowait)
taskset -c "$last" dd if=/dev/zero of="$dev" bs=4k count=64 oflag=direct conv=notrunc status=none
lt_eq "$(($(lt_engine_stat "$dev" to_shared) - w0))" 0 "lone direct I/O writes sent to the shared worker"
lt_eq "$(($(lt_engine_stat "$dev" aio_blocking) - a0))" 64 "direct writes to a file submitted blocking"
lt_eq "$(($(lt_engine_stat "$dev" aio_nowait) - n0))" 0 "direct writes to a file submitted IOCB_NOWAIT"
# A busy device: at QD16, nearly every read and write finds others in flight (past the
# zeroes checked below).
for rw in randread randwrite; do
	w0=$(lt_engine_stat "$dev" to_shared)
	out=$(fio --name=busy --filename="$dev" --direct=1 --rw=$rw --bs=4k --ioengine=libaio \
		--iodepth=16 --offset=1m --size=1m --io_size=4m 2>&1) || lt_fail "fio $rw at QD16 on $dev failed: $out"
	w1=$(lt_engine_stat "$dev" to_shared)
	lt_log "$rw at QD16: $((w1 - w0)) of 1024 requests sent to the shared worker ($queues queues)"
	if [ "$queues" -gt 1 ]; then
		[ $((w1 - w0)) -ge 512 ] ||
			lt_fail "1024 requests ($rw) at QD16: $((w1 - w0)) sent to the shared worker"
	else
		lt_eq "$((w1 - w0))" 0 "requests ($rw) sent to a shared worker with one queue"
	fi
done
zeroes=$(head -c 262144 /dev/zero | sha256sum | cut -d' ' -f1)
lt_eq "$(lt_sum "$dev" 262144)" "$zeroes" "the written zeroes, read through the device"
lt_eq "$(lt_sum "$img" 262144)" "$zeroes" "the written zeroes, in the backing file"

# A flush (fsync of the device) goes to the blocking path.
p0=$(lt_engine_stat "$dev" blocking_path)
dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct conv=fsync,notrunc status=none
p1=$(lt_engine_stat "$dev" blocking_path)
[ "$p1" -gt "$p0" ] || lt_fail "a flush did not go to the blocking path ($p0 -> $p1)"
# (udev's reads, which could have passed that check in a flush's place, only start now.)
lt_udev_release
# The write's close makes udev read the device (its watch rule), maybe after settle returns:
# wait (bounded) for the reads to end; a count that never returns to 0 fails.
udevadm settle
# Called through lt_wait.
# shellcheck disable=SC2317
idle() { [ "$(lt_engine_stat "$dev" in_flight)" = 0 ]; }
lt_wait 60 idle || lt_fail "requests in flight when idle: $(lt_engine_stat "$dev" in_flight)"
losetup -d "$dev"
udevadm settle

# loop.c's shape.
lt_unload || lt_fail "unload"
lt_load nr_hw_queues=1 || lt_fail "load with nr_hw_queues=1"
# A kthread starts at kthreadd's nice level: with kthreadd reniced while the freshly loaded
# driver makes its first device's worker (at its first bind), the worker's level shows that the
# driver sets it (as loop.c's workqueue sets its workers' level, 0).
kthreadd_nice=$(awk '{ print $19 }' /proc/2/stat)
lt_on_exit "renice -n $kthreadd_nice -p 2 >/dev/null"
renice -n 5 -p 2 >/dev/null
dev=$(lt_attach "$img")
renice -n "$kthreadd_nice" -p 2 >/dev/null
lt_eq "$(find "/sys/block/${dev#/dev/}/mq" -mindepth 1 -maxdepth 1 | wc -l)" 1 "hardware queues with nr_hw_queues=1"
lt_eq "$(worker_nice "${dev#/dev/loop}" 0)" 0 "nice level of the only worker with one queue (kthreadd at 5)"
lt_eq "$(lt_worker_pid "${dev#/dev/loop}" s)" none "a shared worker with one queue"
lt_eq "$(lt_sum "$dev")" "$(lt_sum "$img")" "data with one queue"
losetup -d "$dev"
udevadm settle
lt_unload || lt_fail "unload"
# shellcheck disable=SC2119
lt_load
exit 0
