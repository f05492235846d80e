#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/run-guest.sh OUT.jsonl: the benchmark, inside one guest boot (scripts/bench runs it).
#
# Subjects: the backing storage itself with O_DIRECT (the limit); loop.ko with direct I/O off
# and on; rust_loop with direct I/O off and on, with its default hardware queues (one per
# CPU) and with nr_hw_queues=1 (loop.c's shape), so each part of the engine shows. All with a
# 4096-byte logical block size. Repetitions are interleaved, and the order of the subjects
# changes from one repetition to the next (rotated, and reversed every other time), so a drift
# of the machine is not confounded with a driver. Caches are dropped before every run; each run
# has a ramp-up that is not measured.
# Backing stores and workloads:
#   virtio disk (host side cache=none, ext4, images fully written):
#   (a) the seed's: fio 4 jobs psync on files of ext4 on the loop device (buffered, with an
#       fsync at the end of the write jobs), randread / read / randwrite / write;
#   (b) the loop device itself, O_DIRECT, queue depth 32: libaio and io_uring random read and
#       write; with the loop device's direct I/O off this is the buffered, cold-cache case;
#   (c) latency: one psync job of 4 KiB random reads, p50 / p99;
#   (d) upstream's regression case: one sequential writer, libaio, queue depth 16 (DIO on);
#   RAM (an image on tmpfs, which accepts O_DIRECT; DIO on only): there the driver's own
#   overhead decides:
#   (e) psync x4 jobs random read, libaio x2 jobs QD32 random read, one psync job sequential
#       read (latency);
# plus, once per subject, the seed's memory table: Buffers and Cached growth over a read pass of
# the files on the mounted file system. Each run records IOPS, bandwidth, latency percentiles,
# system-wide context switches per I/O (/proc/stat ctxt), CPU busy time and, for rust_loop,
# what its engine did (debugfs rust_loop/loopN/stats: the difference over the run).
#
# BENCH_QUICK=1: one round, 1 s runs, fewer workloads and subjects, a 64 MiB memory pass: a
# smoke test of the machinery. BENCH_DIR=DIR works in DIR (on a disk file system) instead of
# formatting /dev/vda. BENCH_COMMIT names the commit measured.
# jq programs and fio's $jobnum are not shell expansions.
# shellcheck disable=SC2016
set -euo pipefail

out=$1
quick=${BENCH_QUICK:-0}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
if [ "$quick" = 1 ]; then
	reps=1 runtime=1 ramp=250ms mem_mb=64 job_mb=8 raw_mb=64 ram_mb=64
else
	reps=${BENCH_REPS:-5} runtime=2 ramp=500ms mem_mb=512 job_mb=64 raw_mb=256 ram_mb=256
fi
bs=4096
subjects=(raw c-buf c-dio rust-buf rust-dio rust1-buf rust1-dio)
workloads_a=(randread read randwrite write)
workloads_b=(libaio-randread libaio-randwrite io_uring-randread io_uring-randwrite)
workloads_e=(psync4-randread libaio2-randread psync1-read)
if [ "$quick" = 1 ]; then
	subjects=(raw c-buf c-dio rust-buf rust-dio)
	workloads_a=(randread write)
	workloads_b=(libaio-randread io_uring-randwrite)
	workloads_e=(psync4-randread psync1-read)
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
json_kv() { jq -cn "$@"; }

# Storage: the guest's virtio disk (host side cache=none), ext4, images fully written; and RAM.
work=${BENCH_DIR:-/tmp/bench}
mkdir -p "$work"
if [ -z "${BENCH_DIR:-}" ] && [ -b /dev/vda ]; then
	mkfs.ext4 -q -F /dev/vda
	mount /dev/vda "$work"
fi
ram=$work/ram
mkdir -p "$ram"
mount -t tmpfs -o size=$((ram_mb + 16))M tmpfs "$ram"
fs_mb=$((4 * job_mb + mem_mb + 96))
log "writing the images (${fs_mb} MiB file system image, ${raw_mb} MiB raw image, ${ram_mb} MiB in RAM)"
dd if=/dev/zero of="$work/fs.img" bs=4M count=$((fs_mb / 4)) oflag=direct status=none
dd if=/dev/zero of="$work/raw.img" bs=4M count=$((raw_mb / 4)) oflag=direct status=none
dd if=/dev/zero of="$ram/ram.img" bs=4M count=$((ram_mb / 4)) status=none
mkfs.ext4 -q -F -b 4096 "$work/fs.img"
mkdir -p "$work/mnt" "$work/rawfs"

# Environment.
clk=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
accel=$([ "$clk" = kvm-clock ] && echo KVM || echo TCG)
json_kv --arg k "$(uname -r)" --arg cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
	--arg v "$(nproc)" --arg a "$accel" --arg fio "$(fio --version)" --arg q "$quick" \
	--arg d "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg bs "$bs" --arg r "$reps" --arg rt "$runtime" \
	--arg ramp "$ramp" --arg commit "${BENCH_COMMIT:-unknown}" \
	--arg ver "$(modinfo -F version "$repo/loop.ko" 2>/dev/null || echo unknown)" \
	'{kind: "env", kernel: $k, cpu: $cpu, vcpus: ($v | tonumber), accel: $a, fio: $fio,
	  quick: ($q == "1"), date: $d, block_size: ($bs | tonumber), reps: ($r | tonumber),
	  runtime_s: ($rt | tonumber), ramp: $ramp, commit: $commit, rust_loop_version: $ver}' >"$out"

driver_loaded=
use_driver() {
	[ "$driver_loaded" = "$1" ] && return 0
	bench_unload
	case "$1" in
	c) modprobe loop ;;
	rust) insmod "$repo/loop.ko" ;;
	rust1) insmod "$repo/loop.ko" nr_hw_queues=1 ;;
	esac
	udevadm settle
	driver_loaded=$1
}

# How many runs, for the progress line.
per_subject() {
	local n=$((${#workloads_a[@]} + ${#workloads_b[@]} + 1))
	case "$1" in *-dio | raw) n=$((n + 1 + ${#workloads_e[@]})) ;; esac
	echo "$n"
}
total_runs=0
for s in "${subjects[@]}"; do total_runs=$((total_runs + reps * $(per_subject "$s"))); done
run_no=0
start_all=$(date +%s)

# run_fio SUBJECT REP WORKLOAD LABEL DEV FIO-ARGS...: one measured fio run, appended to $out.
# DEV is the loop device whose engine counters to record ("-" for none).
run_fio() {
	local subject=$1 rep=$2 workload=$3 label=$4 dev=$5
	shift 5
	run_no=$((run_no + 1))
	local elapsed=$(($(date +%s) - start_all))
	local eta="ETA after the first run"
	if [ "$run_no" -gt 1 ]; then
		local left=$((elapsed * (total_runs - run_no + 1) / (run_no - 1)))
		eta="ETA $((left / 60))m$((left % 60))s"
	fi
	log "run $run_no/$total_runs: subject $subject, workload $workload $label, rep $rep ($eta)"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	local s0 s1 json e0 e1 v
	e0=$(engine_stats "$dev")
	read -r -a s0 < <(stat_snap)
	json=$(fio --output-format=json --time_based --runtime="$runtime" --ramp_time="$ramp" \
		--randrepeat=0 --norandommap --group_reporting "$@")
	read -r -a s1 < <(stat_snap)
	e1=$(engine_stats "$dev")
	# Counters that are not valid JSON (an unreadable debugfs file) are left out, and said so.
	for v in e0 e1; do
		jq -e 'type == "object"' >/dev/null 2>&1 <<<"${!v}" || {
			log "engine counters of $dev unreadable (${!v:0:80}); left out"
			printf -v "$v" '{}'
		}
	done
	jq -c --arg s "$subject" --arg w "$workload" --arg l "$label" --arg rep "$rep" \
		--arg ctxt "$((s1[0] - s0[0]))" --arg busy "$((s1[1] - s0[1]))" --arg tot "$((s1[2] - s0[2]))" \
		--argjson e0 "$e0" --argjson e1 "$e1" '
		.jobs[0] as $j |
		($j.read.total_ios + $j.write.total_ios) as $ios |
		(if $j.read.total_ios >= $j.write.total_ios then $j.read else $j.write end) as $d |
		{kind: "run", subject: $s, workload: $w, label: $l, rep: ($rep | tonumber),
		 iops: ($j.read.iops + $j.write.iops), bw_kib: ($j.read.bw + $j.write.bw),
		 lat_p50_us: (($d.clat_ns.percentile["50.000000"] // 0) / 1000),
		 lat_p99_us: (($d.clat_ns.percentile["99.000000"] // 0) / 1000),
		 ios: $ios, ctxt: ($ctxt | tonumber),
		 ctxt_per_io: (if $ios > 0 then ($ctxt | tonumber) / $ios else null end),
		 cpu_busy_pct: (if ($tot | tonumber) > 0 then 100 * ($busy | tonumber) / ($tot | tonumber) else null end),
		 engine: ($e1 | with_entries(.value -= ($e0[.key] // 0)))}' \
		<<<"$json" >>"$out"
}

# attach SUBJECT: sets $fsdir (directory for workload a), $rawdev (target for b, c, d) and
# $ramdev (target for e).
attach() {
	case "$1" in
	raw)
		fsdir=$work/rawfs
		rawdev=$work/raw.img
		ramdev=$ram/ram.img
		;;
	*)
		local drv=${1%-*} dio=on
		[ "${1#*-}" = buf ] && dio=off
		use_driver "$drv"
		fsdev=$(losetup -f --show --direct-io="$dio" -b "$bs" "$work/fs.img")
		rawdev=$(losetup -f --show --direct-io="$dio" -b "$bs" "$work/raw.img")
		ramdev=$(losetup -f --show --direct-io="$dio" -b "$bs" "$ram/ram.img")
		[ "$(cat "/sys/block/${fsdev#/dev/}/loop/dio")" = "$([ "$dio" = on ] && echo 1 || echo 0)" ] ||
			{ log "direct I/O is not $dio on $fsdev"; exit 1; }
		mount "$fsdev" "$work/mnt"
		fsdir=$work/mnt
		;;
	esac
}

detach() {
	[ "$1" = raw ] && return 0
	umount "$work/mnt"
	losetup -d "$fsdev" "$rawdev" "$ramdev"
	udevadm settle
}

# Lay out fio's files and the memory-pass files once, on both file systems.
use_driver c
for subject in raw c-buf; do
	attach "$subject"
	fio --name=layout --directory="$fsdir" --numjobs=4 --size="${job_mb}M" --create_only=1 \
		--filename_format='a.$jobnum' >/dev/null
	for i in 1 2 3 4; do
		dd if=/dev/zero of="$fsdir/mem$i" bs=1M count=$((mem_mb / 4)) conv=fsync status=none
	done
	detach "$subject"
done

for rep in $(seq 1 "$reps"); do
	mapfile -t this_order < <(bench_order "$rep" "${subjects[@]}")
	log "repetition $rep: ${this_order[*]}"
	for subject in "${this_order[@]}"; do
		attach "$subject"
		direct_raw=() direct_ram=() dev_raw=- dev_ram=- dev_fs=-
		if [ "$subject" = raw ]; then
			direct_raw=(--size="${raw_mb}M")
			direct_ram=(--size="${ram_mb}M")
		else
			dev_raw=$rawdev dev_ram=$ramdev dev_fs=$fsdev
		fi
		for rw in "${workloads_a[@]}"; do
			run_fio "$subject" "$rep" a "$rw" "$dev_fs" --name=a --directory="$fsdir" --numjobs=4 \
				--size="${job_mb}M" --filename_format='a.$jobnum' --ioengine=psync --bs=4k \
				--rw="$rw" --end_fsync=1
		done
		for b in "${workloads_b[@]}"; do
			run_fio "$subject" "$rep" b "$b" "$dev_raw" --name=b --filename="$rawdev" \
				"${direct_raw[@]}" --direct=1 --ioengine="${b%-*}" --iodepth=32 --bs=4k \
				--rw="${b#*-}"
		done
		run_fio "$subject" "$rep" c "psync-randread" "$dev_raw" --name=c --filename="$rawdev" \
			"${direct_raw[@]}" --direct=1 --ioengine=psync --bs=4k --rw=randread
		case "$subject" in
		raw | *-dio)
			run_fio "$subject" "$rep" d "libaio16-write" "$dev_raw" --name=d \
				--filename="$rawdev" "${direct_raw[@]}" --direct=1 --ioengine=libaio \
				--iodepth=16 --bs=4k --rw=write
			for e in "${workloads_e[@]}"; do
				case "$e" in
				psync4-randread) args=(--numjobs=4 --ioengine=psync --rw=randread) ;;
				libaio2-randread) args=(--numjobs=2 --ioengine=libaio --iodepth=32 --rw=randread) ;;
				psync1-read) args=(--numjobs=1 --ioengine=psync --rw=read) ;;
				esac
				run_fio "$subject" "$rep" e "$e" "$dev_ram" --name=e --filename="$ramdev" \
					"${direct_ram[@]}" --direct=1 --bs=4k "${args[@]}"
			done
			;;
		esac
		if [ "$rep" = 1 ]; then
			log "memory pass: subject $subject, ${mem_mb} MiB read"
			sync
			echo 3 >/proc/sys/vm/drop_caches
			m0=$(awk '/^(Buffers|Cached):/ { printf "%s ", $2 }' /proc/meminfo)
			cat "$fsdir"/mem* >/dev/null
			m1=$(awk '/^(Buffers|Cached):/ { printf "%s ", $2 }' /proc/meminfo)
			read -r b0 c0 <<<"$m0"
			read -r b1 c1 <<<"$m1"
			json_kv --arg s "$subject" --arg d "$mem_mb" --arg b "$(((b1 - b0) / 1024))" \
				--arg c "$(((c1 - c0) / 1024))" \
				'{kind: "memory", subject: $s, data_mb: ($d | tonumber),
				  buffers_mb: ($b | tonumber), cached_mb: ($c | tonumber)}' >>"$out"
		fi
		detach "$subject"
	done
done
use_driver none
umount "$ram"
log "done: $run_no runs in $(($(date +%s) - start_all)) s"
