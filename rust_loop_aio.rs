// SPDX-License-Identifier: GPL-2.0

//! The seed's I/O path ("block: loop: support DIO & AIO"), on several hardware queues with a
//! non-blocking first attempt: `queue_rq` marks each read and write for AIO when the device uses
//! direct I/O and hands it to the kthread worker of its hardware queue (with several queues, a
//! buffered write to a file, or a read or write while the device has others in flight: to the
//! device's one shared worker), and each flush, discard or write-zeroes to the blocking path
//! (below); the worker either submits an async `IOCB_DIRECT` kiocb over the request's own
//! bio_vecs (no page pinning, no double page cache) or runs the buffered read/write loop; flush
//! is `vfs_fsync`, discard and write-zeroes are `fallocate`; the completion policy decides how
//! each request ends.
//!
//! The engine (see the README's Architecture): one kthread worker per hardware queue, on the
//! CPUs of that queue, drains the queue's list of requests in batches without a block plug
//! (measured: see `HwQueue::run`); so does the shared worker, on any CPU (see [`Engine`]). It
//! never calls the backing file from `queue_rq` (upstream's lesson from the reverted
//! NOWAIT-in-`queue_rq` series). Where the file supports it, reads and writes are first tried
//! with `IOCB_NOWAIT` (page-cache hits complete there, direct reads are submitted there); what
//! would block (`EAGAIN`, returned or from the kiocb completion), flushes, discards and
//! write-zeroes go to a per-command work item on the device's unbound, freezable workqueue, so
//! a slow request blocks only itself. The worker itself does, as loop.c does, what may block:
//! direct writes to a file (measured, see [`path`]), direct I/O to a file or device without
//! NOWAIT support, and buffered writes to a file system without non-blocking buffered writes.
//!
//! Ownership of a request, end to end: `queue_rq` receives the [`Rq`] and pushes it on the
//! worker's list (or punts it to the workqueue); the worker takes it off and either ends it,
//! gives it to the async kiocb (whose completion gives it back to [`LoopQueue::rw_complete`]),
//! or punts it to the workqueue (which gives it back to [`LoopQueue::run_work`]). Every step
//! moves the one `Rq`; none can keep a copy.

use kernel::{
    block::SECTOR_SIZE,
    pr_warn_once,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    types::ForeignOwnable,
};

use crate::{
    cgroup::Association,
    disk::{CpuMask, DiskRef},
    file::{eopnotsupp, BackingFile, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE},
    kworker::{KWorker, Work},
    request::{self, BlkStatus, ReqOp, Rq, RqList, RwResult},
    task::{self, IoTaskFlags},
    workqueue::WorkQueue,
    LoState, LoopDevice, LoopQueue,
};

/// The most hardware queues a device gets by default (one per online CPU, up to this).
pub(crate) const MAX_DEFAULT_HW_QUEUES: u32 = 16;

/// The driver's part of a per-tag command (loop.c's `struct loop_cmd`; the kiocb, bvec array,
/// list link and work item live next to it in the typed layer).
pub(crate) struct Cmd {
    /// Decided by `queue_rq`: a read or write on a device using direct I/O.
    use_aio: bool,
    /// The current read or write attempt is the non-blocking one (an `EAGAIN` punts).
    nowait: bool,
    /// Bytes a non-blocking buffered attempt moved before it would have blocked.
    done: u32,
    /// A write counted in [`Stats::blocking_writes`] until it completes.
    blocking_write: bool,
}

/// Per-device counters, read-only in debugfs (`rust_loop/loopN/stats`; README: Engine).
pub(crate) struct Stats {
    /// Requests received by `queue_rq` and ended (or requeued) by the driver.
    dispatched: Atomic<u64>,
    ended: Atomic<u64>,
    /// Reads and writes handed to the device's shared worker: buffered writes to a file, and
    /// reads and writes that found the device busy (another request in flight).
    to_shared: Atomic<u64>,
    /// Async direct kiocbs submitted: non-blocking (`IOCB_NOWAIT`) or blocking.
    aio_nowait: Atomic<u64>,
    aio_blocking: Atomic<u64>,
    /// Buffered reads and writes done entirely by the non-blocking attempt, or in the blocking
    /// path.
    buffered_nowait: Atomic<u64>,
    buffered_blocking: Atomic<u64>,
    /// Non-blocking attempts that would have blocked (or failed: see `buffered_nowait`) and
    /// were handed to the blocking path.
    eagain: Atomic<u64>,
    /// Commands run by the blocking path (workqueue): fallbacks, flushes, discards, ...
    blocking: Atomic<u64>,
    /// Short transfers (and buffered ones that failed after some progress): requeued
    /// remainders, and failed ones.
    requeued: Atomic<u64>,
    short_failed: Atomic<u64>,
    /// Requests ended with an error, by kind.
    err_io: Atomic<u64>,
    err_nospc: Atomic<u64>,
    err_notsupp: Atomic<u64>,
    /// Writes in the blocking path now (Ming Lei's heuristic: while any is outstanding, buffered
    /// writes to a file are not tried non-blocking, as they would mostly fail).
    blocking_writes: Atomic<i64>,
}

impl Stats {
    /// All counters at 0.
    pub(crate) const fn new() -> Self {
        Self {
            dispatched: Atomic::new(0),
            ended: Atomic::new(0),
            to_shared: Atomic::new(0),
            aio_nowait: Atomic::new(0),
            aio_blocking: Atomic::new(0),
            buffered_nowait: Atomic::new(0),
            buffered_blocking: Atomic::new(0),
            eagain: Atomic::new(0),
            blocking: Atomic::new(0),
            requeued: Atomic::new(0),
            short_failed: Atomic::new(0),
            err_io: Atomic::new(0),
            err_nospc: Atomic::new(0),
            err_notsupp: Atomic::new(0),
            blocking_writes: Atomic::new(0),
        }
    }
}

impl Stats {
    fn inc(counter: &Atomic<u64>) {
        counter.add(1, Relaxed);
    }

    /// Another request than the one being queued is in flight (a heuristic: the two counters
    /// are read apart, so the answer may be stale; it only decides which worker runs a request).
    fn busy(&self) -> bool {
        let ended = self.ended.load(Relaxed);
        self.dispatched.load(Relaxed).saturating_sub(ended) > 1
    }

    /// Writes the counters, one `name value` line each.
    pub(crate) fn write(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let get = |c: &Atomic<u64>| c.load(Relaxed);
        let dispatched = get(&self.dispatched);
        let ended = get(&self.ended);
        writeln!(f, "dispatched {dispatched}")?;
        writeln!(f, "in_flight {}", dispatched.saturating_sub(ended))?;
        writeln!(f, "to_shared {}", get(&self.to_shared))?;
        writeln!(f, "aio_nowait {}", get(&self.aio_nowait))?;
        writeln!(f, "aio_blocking {}", get(&self.aio_blocking))?;
        writeln!(f, "buffered_nowait {}", get(&self.buffered_nowait))?;
        writeln!(f, "buffered_blocking {}", get(&self.buffered_blocking))?;
        writeln!(f, "eagain_fallbacks {}", get(&self.eagain))?;
        writeln!(f, "blocking_path {}", get(&self.blocking))?;
        writeln!(f, "requeued {}", get(&self.requeued))?;
        writeln!(f, "short_failed {}", get(&self.short_failed))?;
        writeln!(f, "errors_io {}", get(&self.err_io))?;
        writeln!(f, "errors_nospc {}", get(&self.err_nospc))?;
        writeln!(f, "errors_notsupp {}", get(&self.err_notsupp))?;
        Ok(())
    }
}

/// What a worker drains: a hardware queue's requests, or the shared worker's.
#[pin_data]
pub(crate) struct HwQueue {
    #[pin]
    pending: RqList<LoopQueue>,
}

impl Work for HwQueue {
    fn run(this: Pin<&Self>) {
        // As loop_process_work(): no I/O-recursive reclaim, dirty throttling of this task only.
        let _flags = IoTaskFlags::set();
        // Every request of this list is of the device owning this worker, which therefore
        // outlives this call (destroying the worker waits for it). One reference for the batch
        // keeps the device at hand while a request moves on.
        let mut dev: Option<Arc<LoopDevice>> = None;
        // No block plug around the batch, as loop.c has none: a request's I/O is not parked
        // until the batch ends (iomap's own plug, nested in ours, would have done nothing).
        // Measured, 2 queues, direct I/O on ext4 on virtio, two boots with the subjects
        // interleaved (3-4 repetitions): with a plug for the batch (or for batches of two or
        // more), median context switches per I/O were 1.06-1.10 vs 0.75-0.76 without
        // (sequential writes QD16), 0.71-0.80 vs 0.52-0.54 (random writes QD32), 0.57-0.59 vs
        // 0.26-0.30 (random reads QD32), with no IOPS gain (the IOPS ranges overlap).
        for rq in this.pending.take_all() {
            let data = rq.queue_data();
            if !dev.as_ref().is_some_and(|d| core::ptr::eq(&**d, &*data)) {
                dev = Some(data.into());
            }
            if let Some(dev) = &dev {
                dev.dispatch(rq);
            }
            // As loop_process_work(): the batch may be long (the shared worker's takes requests
            // of every queue).
            task::cond_resched();
        }
    }
}

/// The I/O engine of a device: one kthread worker per hardware queue, on that queue's CPUs, one
/// shared worker on any CPU (with several queues), and the workqueue of the blocking path;
/// created at first bind (like loop.c's workqueue) and destroyed with the device.
///
/// A queue's worker, on the submitter's CPU, is the cheapest wake-up for a lone synchronous
/// request (4-5x loop.ko's IOPS for one psync reader on a file in RAM, measured). The shared
/// worker takes what a pinned worker serves badly:
/// - Buffered writes to a file: a file system takes the file's inode lock exclusively for them
///   (ext4, XFS, btrfs and tmpfs all do), so queue workers writing the same file at once only
///   wait on each other. Measured on 2 CPUs (one boot, 3 interleaved repetitions, ext4 on
///   virtio): buffered random writes at QD32 (libaio, io_uring) and buffered sequential writes
///   at QD16 ran at 0.58-0.73 of loop.ko's IOPS through the two queue workers, at 1.09-1.22
///   through one worker.
/// - Reads and writes that find the device busy (another request in flight): on its queue, such
///   a request waits for the worker that shares the submitter's CPU, which runs when the
///   submitter yields; the shared worker runs on whichever CPU is free. Measured on 2 CPUs
///   (three boots, 3-4 interleaved repetitions each, medians; within a boot the min-max ranges
///   overlap): 4 psync random readers on a file in RAM at 1.11-1.32 of loop.ko's IOPS this way,
///   0.93-1.04 on their queues; random reads at QD32 on virtio 0.83-1.01 vs 0.70-0.86.
///
/// With one hardware queue, that queue's worker (all CPUs are its) does all of this. Not
/// measured beyond 2 CPUs: with many queues, the shared worker serializes a busy device's I/O
/// submission as loop.c's one worker (per cgroup) does all of it.
///
/// Measured and not adopted (2 CPUs, TCG, one boot per experiment, 4-6 interleaved
/// repetitions, medians):
/// - Workers that poll their list for up to 50 or 200 us before sleeping, while alone on their
///   CPU (as KVM's halt polling): the sequential direct writer at QD16 gained with ranges apart
///   in one boot (1.20 vs 0.88 of loop.ko) and within the spread in the next (0.97 vs 0.92), for
///   7 (50 us) to 12 (200 us) points more CPU busy; psync x4 from RAM moved both ways; nothing
///   else changed.
/// - Every direct write to a file on the shared worker: 0.93-1.13 of loop.ko at QD16-32 (0.87-1.04
///   as here, ranges overlapping), but one psync writer to RAM at 1.11 (3.67 as here, ranges
///   apart): it loses the same-CPU wake-up.
/// - In the same boot, one hardware queue was at 0.96-1.26 of loop.ko at QD16-32 on virtio
///   (ranges overlapping these), and at 1.12 for one psync writer to RAM.
/// - Telling a synchronous submitter from an asynchronous one by whether it slept since its
///   previous request on the queue (its voluntary context switches, `nvcsw`, a 4-entry table
///   per queue), and sending the first kind to the queue worker at -20: the worker then
///   preempts only a submitter that sleeps on the request anyway. Paired per-repetition
///   medians as a ratio to loop.ko (one boot, 5 interleaved repetitions), as here / with the
///   rest on the shared worker / with the rest routed as here: psync x4 from RAM 1.03 / 1.19 /
///   1.35 (p50 220 / 80 / 232 us), libaio x2 at QD32 from RAM 1.21 / 1.40 / 0.97, one psync
///   reader from RAM 2.01 / 2.06 / 2.12; on virtio, direct random reads at QD32 1.00 / 0.73 /
///   0.95, the sequential writer at QD16 1.09 / 0.95 / 1.07, one psync reader 0.97 / 1.06 /
///   0.91. Every range overlapped loop.ko's but for one psync reader from RAM: no gain
///   that holds against the cost on virtio, and far from 3x (the switch to another
///   submitting process remains; see the README's Performance).
pub(crate) struct Engine {
    // Dropped first, then the shared worker: a worker may still hand a request to the
    // workqueue.
    queues: KVec<Pin<KBox<KWorker<HwQueue>>>>,
    shared: Option<Pin<KBox<KWorker<HwQueue>>>>,
    blocking: WorkQueue,
}

impl Engine {
    /// Workers named `rust_loop<number>-<queue>` for the hardware queues of `disk`, the shared
    /// worker `rust_loop<number>-s` if there are several, and the workqueue `rust_loop<number>`
    /// with room for every command at once.
    pub(crate) fn new(
        number: u32,
        nr_hw_queues: u32,
        depth: u32,
        disk: DiskRef<'_, LoopQueue>,
    ) -> Result<Self> {
        let mut queues = KVec::with_capacity(nr_hw_queues as usize, GFP_KERNEL)?;
        for q in 0..nr_hw_queues {
            // On the CPUs whose requests it serves: a same-CPU wake-up, no IPI.
            let worker = Self::new_worker(fmt!("rust_loop{number}-{q}"), disk.hw_queue_cpumask(q))?;
            queues.push(worker, GFP_KERNEL)?;
        }
        let shared = if nr_hw_queues > 1 {
            Some(Self::new_worker(fmt!("rust_loop{number}-s"), None)?)
        } else {
            None
        };
        let blocking = WorkQueue::new_unbound_freezable(
            fmt!("rust_loop{number}"),
            depth.saturating_mul(nr_hw_queues),
        )?;
        Ok(Self {
            queues,
            shared,
            blocking,
        })
    }

    /// A worker with an empty list, on `cpus` (any CPU if `None`), at nice 0 (`KWorker`'s
    /// level, loop.c's), not the -20 of the kthread loop worker of Linux 4.4-5.x: on the
    /// submitter's CPU, a worker at -20 preempted the submitter at each wake-up and got one
    /// request per wake-up (2.6 context switches per I/O at QD32, 0.65 of loop.ko's IOPS,
    /// measured when the queue workers took every request); at 0 the submitter goes on queueing
    /// and the worker drains a batch, while a synchronous reader, asleep after submitting,
    /// still gets it at once.
    ///
    /// Measured and not adopted: the queue workers at -20 while the shared worker exists (they
    /// then get only lone reads and writes, so there is no batch to wait for). Three boots on 2
    /// CPUs (TCG, 5, 8 and 8 interleaved repetitions, medians as a ratio to loop.ko's IOPS, -20
    /// vs 0, min-max ranges overlapping): psync x4 random reads from RAM 1.33 / 1.11 / 1.23 vs
    /// 1.06 / 0.89 / 1.27; one psync reader from RAM 1.93 / 2.05 / 1.84 vs 1.58 / 1.78 / 1.87;
    /// libaio x2 at QD32 from RAM 1.41 / 1.36 / 1.18 vs 0.92 / 1.10 / 1.22; random reads at
    /// QD32 on virtio 1.01 / 0.83 vs 0.98 / 0.90 (second and third boot): the gain of the first
    /// two boots did not hold in the third.
    ///
    /// Measured and not adopted: the queue workers at `SCHED_FIFO` priority 1
    /// (`sched_set_fifo_low`). Under this kernel's lazy preemption a fair-class wake-up (even at
    /// -20) waits for a tick or the return to user space; a real-time one preempts the submitter
    /// at once, inside the submission, so a synchronous reader whose request its worker ends at
    /// once never sleeps (one psync reader from RAM: 3 voluntary and 5,777 involuntary switches
    /// in 1.5 s). One boot on 2 CPUs (TCG, 4 interleaved repetitions, medians as a ratio to
    /// loop.ko's IOPS), nice 0 as here / FIFO with this routing / FIFO with every read and write
    /// on the queue workers: psync x4 random reads from RAM 1.40 / 1.03 / 1.23, libaio x2 at QD32
    /// from RAM 1.35 / 0.84 / 0.67, one psync reader from RAM 1.57 / 1.39 / 1.61; on virtio,
    /// random reads at QD32 1.04 / 1.08 / 0.46, the sequential writer at QD16 0.72 / 0.73 / 0.37,
    /// one psync reader 0.74 / 0.83 / 0.81. A reader that no longer sleeps is not faster: the
    /// two switches to and from the worker stay, and cost about as much as the sleep they
    /// replace (README: Performance).
    fn new_worker(
        name: core::fmt::Arguments<'_>,
        cpus: Option<CpuMask<'_>>,
    ) -> Result<Pin<KBox<KWorker<HwQueue>>>> {
        let list = pin_init!(HwQueue {
            pending <- RqList::new(),
        });
        KBox::pin_init(KWorker::new(name, cpus, list), GFP_KERNEL)
    }

    /// Waits until no worker or work item of the engine runs any more (a device being torn
    /// down has no requests left: its disk is deleted). The workers and work items hold a
    /// reference to the device while they run; after this, none does, so the last reference
    /// is dropped by the teardown, in process context, never by a worker destroying itself.
    pub(crate) fn quiesce(&self) {
        // Workers first: they may still hand a request to the workqueue.
        for q in Iterator::chain(self.queues.iter(), self.shared.iter()) {
            q.flush();
        }
        self.blocking.flush();
    }

    fn queue(&self, index: u32) -> Option<&KWorker<HwQueue>> {
        self.queues.get(index as usize).map(|q| &**q)
    }

    /// The shared worker, if the device has one (several hardware queues).
    fn shared(&self) -> Option<&KWorker<HwQueue>> {
        self.shared.as_deref()
    }

    /// The end of a batch of hardware queue `index`: wakes the workers that have requests
    /// waiting, the queue's own and the shared one (the batch may have sent requests there). A
    /// worker that took its requests meanwhile has them: an empty list needs no wake-up.
    fn kick_batch(&self, index: u32) {
        for q in Iterator::chain(self.queue(index).into_iter(), self.shared()) {
            if !q.data().pending.is_empty() {
                q.kick();
            }
        }
    }
}

/// The number of hardware queues of a new device: the `nr_hw_queues` parameter, or one per
/// online CPU (at most [`MAX_DEFAULT_HW_QUEUES`]) if it is 0; never more than `cpu_ids`, the
/// most hardware queues blk-mq makes (it would silently make fewer than we have workers).
pub(crate) fn hw_queues(param: i32, online_cpus: u32, cpu_ids: u32) -> u32 {
    let n = match u32::try_from(param) {
        Ok(0) | Err(_) => online_cpus.min(MAX_DEFAULT_HW_QUEUES),
        Ok(n) => n,
    };
    n.clamp(1, cpu_ids.max(1))
}

impl request::Operations for LoopQueue {
    type QueueData = Arc<LoopDevice>;
    type Pdu = Cmd;

    fn new_pdu() -> impl PinInit<Cmd, Error> {
        Ok::<_, Error>(Cmd {
            use_aio: false,
            nowait: false,
            done: 0,
            blocking_write: false,
        })
    }

    /// `loop_queue_rq`. Never calls into the backing file: that belongs to the worker, which
    /// has a clean stack and none of the submitter's file-system state.
    fn queue_rq(
        dev: <Arc<LoopDevice> as ForeignOwnable>::Borrowed<'_>,
        rq: Rq<Self>,
        is_last: bool,
    ) {
        Stats::inc(&dev.stats.dispatched);
        let hw_queue = rq.hw_queue();
        dev.enqueue(rq, hw_queue);
        // A batch is dispatched with one wake-up: blk-mq calls `commit_rqs` if it ends without
        // `is_last`. Also when this request was ended at once: the batch's earlier ones wait.
        if is_last {
            if let Some(engine) = dev.engine() {
                engine.kick_batch(hw_queue);
            }
        }
    }

    fn commit_rqs(dev: <Arc<LoopDevice> as ForeignOwnable>::Borrowed<'_>, hw_queue: u32) {
        if let Some(engine) = dev.engine() {
            engine.kick_batch(hw_queue);
        }
    }

    fn rw_complete(mut rq: Rq<Self>, res: RwResult) {
        let cmd = rq.pdu().get_mut();
        // A non-blocking attempt that would have blocked: try again where blocking is fine.
        // (Possibly in interrupt context: queueing the work is allowed there.)
        // `EOPNOTSUPP` too: a block device that cannot take `REQ_NOWAIT` bios (a device-mapper
        // table without NOWAIT support) fails them so; the blocking retry gives the real outcome.
        // (io_uring treats a non-blocking `EOPNOTSUPP` the same way.) No other errno: in Linux
        // 7.2, every in-tree refusal of a non-blocking direct read, or direct write to a block
        // device, is one of these two (iomap, ext4, f2fs, btrfs, NFS, ocfs2, the block layer,
        // device-mapper), and a real error (a medium error) is not worth a second attempt. No
        // reference to the device is taken here: an interrupt must never drop the last one.
        if cmd.nowait && matches!(res, RwResult::Error(e) if e == EAGAIN || e == eopnotsupp()) {
            Stats::inc(&rq.queue_data().stats.eagain);
            return LoopDevice::punt(rq);
        }
        LoopDevice::leave_blocking(&mut rq);
        LoopQueue::complete_rw(rq, res);
    }

    fn blocking_queue<'a>(
        dev: &'a <Arc<LoopDevice> as ForeignOwnable>::Borrowed<'_>,
    ) -> Option<&'a WorkQueue> {
        dev.engine().map(|e| &e.blocking)
    }

    fn run_work(rq: Rq<Self>) {
        // The device outlives this call (tearing a device down flushes its engine first, see
        // `LoopDevice::quiesce`), so this reference is never the last one.
        let dev: Arc<LoopDevice> = rq.queue_data().into();
        // As the queue workers: no I/O-recursive reclaim, dirty throttling of this task only.
        let _flags = IoTaskFlags::set();
        dev.run_blocking(rq);
    }
}

/// What a worker does with a request, decided while it reads the I/O state (which `'a`, the
/// borrow of the request, keeps stable).
enum Action<'a> {
    /// Read or write the data at this byte position of the backing file.
    ReadWrite {
        pos: u64,
        write: bool,
        file: &'a BackingFile,
    },
    /// Done already (or refused), with this result.
    Done(Result),
}

/// What the way a read or write is done depends on, of the backing file.
#[derive(Clone, Copy)]
struct FileKind {
    /// It takes non-blocking reads and writes (`FMODE_NOWAIT`; for a block device, its queue).
    nowait: bool,
    /// It takes non-blocking buffered writes too (`FOP_BUFFER_WASYNC`: XFS, btrfs; not ext4,
    /// f2fs or a block device; see [`BackingFile::supports_nowait_buffered_writes`]).
    nowait_buffered_writes: bool,
    /// A block device (its writes take the inode lock shared: no writer contention).
    bdev: bool,
}

impl FileKind {
    /// Read for each request: a block device's NOWAIT support follows its queue's limits,
    /// which a device-mapper table reload may change while we are bound.
    fn of(file: &BackingFile) -> Self {
        let nowait = file.supports_nowait();
        FileKind {
            nowait,
            nowait_buffered_writes: nowait && file.supports_nowait_buffered_writes(),
            bdev: file.is_block_device(),
        }
    }
}

/// How a worker does a read or write.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Path {
    /// The async direct kiocb with `IOCB_NOWAIT`: what would block comes back (`EAGAIN`, in
    /// the completion) and goes to the blocking path.
    DirectNowait,
    /// The async direct kiocb, submitted here even if it blocks (a direct write to a file, or a
    /// file or device without NOWAIT: loop.c's way; direct I/O submission mostly queues and
    /// returns).
    DirectHere,
    /// A buffered attempt that moves what it can without blocking (page-cache hits); the rest
    /// goes to the blocking path.
    BufferedNowait,
    /// A buffered write done here, into the page cache (which mostly does not block), as
    /// loop.c does.
    BufferedHere,
    /// The blocking path at once.
    Blocking,
}

/// A read or write as [`path`] sees it.
#[derive(Clone, Copy)]
struct Rw {
    write: bool,
    /// The device uses direct I/O (the command is AIO).
    direct: bool,
}

/// The writes in flight to the backing file, as [`path`] sees them.
#[derive(Clone, Copy)]
struct Outstanding {
    /// Writes are in the blocking path now.
    blocking_writes: bool,
}

/// The way a read or write is done on a file of kind `file`, given the writes outstanding.
fn path(
    Rw { write, direct }: Rw,
    file: FileKind,
    Outstanding { blocking_writes }: Outstanding,
) -> Path {
    // A direct write to a file is submitted here, even if it blocks, as loop.c does. Tried
    // non-blocking first, it failed wherever the file had pages in the page cache (to be
    // invalidated: `EAGAIN`), and once writes were in the blocking path, Ming Lei's heuristic
    // below sent every following one there (at depth, one is always outstanding): a work item
    // per write. Measured (ext4 on virtio, after buffered I/O to the file; one boot, 4
    // interleaved repetitions, medians; the min-max ranges overlap): sequential writes at QD16
    // at 0.67 of loop.ko's IOPS with 1.85 context switches per I/O that way, 0.83 with 0.84
    // (loop.ko 1.10) submitted here; random writes at QD32 0.75 vs 0.93. A block device's
    // direct writes stay non-blocking first: the heuristic never applies to them, so an
    // `EAGAIN` costs that write a work item, not a cascade (not measured here).
    if write && direct && !file.bdev {
        return Path::DirectHere;
    }
    // A buffered write is tried non-blocking only where the file system says it takes one
    // (`FOP_BUFFER_WASYNC`): elsewhere the attempt can only fail, with `EOPNOTSUPP` (ext4, a
    // block device) or, from the write checks, `EINVAL` (f2fs, ntfs3, ext4 on DAX: their files
    // are `FMODE_NOWAIT` all the same).
    let nowait = if write && !direct {
        file.nowait_buffered_writes
    } else {
        file.nowait
    };
    // So a buffered write to a file that is not to be tried non-blocking (ext4, f2fs; tmpfs has
    // no NOWAIT at all) is done here. The worker is the device's shared one, so such writes do
    // not contend for the inode lock; and this comes before Ming Lei's heuristic below, which
    // would punt them while others are outstanding, where they contend again. A block device's
    // go to the blocking path, where they run concurrently (it takes its inode lock shared).
    if write && !direct && !file.bdev && !nowait {
        return Path::BufferedHere;
    }
    // Ming Lei's heuristic for (buffered) writes: on a file, a non-blocking write mostly fails
    // while allocating writes are outstanding, so skip the attempt then.
    let try_nowait = nowait && (!write || file.bdev || !blocking_writes);
    match (try_nowait, direct) {
        (true, true) => Path::DirectNowait,
        (true, false) => Path::BufferedNowait,
        (false, true) if !file.nowait => Path::DirectHere,
        (false, _) => Path::Blocking,
    }
}

/// How a non-blocking read or write went.
enum Attempt {
    /// Submitted or finished: the request moved on.
    Gone,
    /// It would block: the request goes to the blocking path.
    WouldBlock(Rq<LoopQueue>),
}

impl LoopDevice {
    /// The part of `loop_queue_rq` before the wake-up: ends `rq` at once, hands it to the
    /// blocking path (not a read or write), or puts it on the list of the worker that will
    /// handle it (`hw_queue`'s, or the shared one).
    fn enqueue(&self, mut rq: Rq<LoopQueue>, hw_queue: u32) {
        // A stale state is harmless, as in loop.c: unbinding freezes the queue, draining us.
        if self.state() != LoState::Bound {
            return self.end(rq, BlkStatus::IOERR);
        }
        // Flush, discard and write-zeroes are never AIO; reads and writes are when the device
        // uses direct I/O. The flag changes only with the queue frozen, so it is stable for the
        // life of this request. With several queues, buffered writes to a file go to the shared
        // worker, and so do reads and writes while the device is busy (see `Engine`).
        let (use_aio, rw, file_write) = match rq.info().op {
            op @ (ReqOp::Read | ReqOp::Write) => match self.lock.io_view(&rq) {
                Some(io) if io.dio => (true, true, false),
                Some(io) => {
                    let regular = io.file.as_deref().is_some_and(|f| f.is_regular());
                    (false, true, op == ReqOp::Write && regular)
                }
                None => (false, false, false),
            },
            _ => (false, false, false),
        };
        let cmd = rq.pdu().get_mut();
        *cmd = Cmd {
            use_aio,
            nowait: false,
            done: 0,
            blocking_write: false,
        };
        // Flush, discard and write-zeroes go to the blocking path directly: a worker would only
        // hand them on (they may sleep long, in `fsync` or `fallocate`), at the cost of a
        // wake-up each. Queueing the work item does not call the backing file.
        if !rw {
            return Self::punt(rq);
        }
        let engine = self.engine();
        // The in-flight count is read only where a shared worker exists (several queues).
        let shared = engine
            .and_then(Engine::shared)
            .filter(|_| file_write || self.stats.busy());
        let Some(worker) = shared.or_else(|| engine?.queue(hw_queue)) else {
            // Bound devices have their engine; this would be a driver bug, not a user error.
            pr_warn_once!(
                "rust_loop: a request reached loop{} without a worker\n",
                self.number
            );
            return self.end(rq, BlkStatus::IOERR);
        };
        if shared.is_some() {
            Stats::inc(&self.stats.to_shared);
        }
        worker.data().pending.push(rq);
    }

    /// Handles one request in the worker it was queued to (its hardware queue's, or the
    /// shared one): the non-blocking part of `loop_handle_cmd`.
    fn dispatch(&self, mut rq: Rq<LoopQueue>) {
        // We can block in this context (if we choose to), so ignore REQ_NOWAIT.
        rq.clear_nowait();
        // What is done for the request here (file I/O, page cache) is charged to the submitter's
        // blkcg and memcg.
        Association::with(rq, |rq| self.dispatch_charged(rq));
    }

    /// [`LoopDevice::dispatch`], under the submitter's cgroups.
    fn dispatch_charged(&self, mut rq: Rq<LoopQueue>) {
        let (pos, write, file) = match self.decide(&rq) {
            Action::ReadWrite { pos, write, file } => (pos, write, FileKind::of(file)),
            Action::Done(res) => return self.end_other(rq, res),
        };
        let rw = Rw {
            write,
            direct: rq.pdu().use_aio,
        };
        let outstanding = Outstanding {
            blocking_writes: self.stats.blocking_writes.load(Relaxed) != 0,
        };
        let path = path(rw, file, outstanding);
        match path {
            Path::DirectNowait => {
                rq.pdu().get_mut().nowait = true;
                Stats::inc(&self.stats.aio_nowait);
                rq.rw_direct(&self.lock, pos, write, true);
            }
            Path::DirectHere => {
                Stats::inc(&self.stats.aio_blocking);
                rq.rw_direct(&self.lock, pos, write, false);
            }
            Path::BufferedNowait => {
                if let Attempt::WouldBlock(rq) = self.buffered_nowait(rq, pos, write) {
                    Stats::inc(&self.stats.eagain);
                    Self::punt(rq);
                }
            }
            Path::BufferedHere => {
                Stats::inc(&self.stats.buffered_blocking);
                let res = self.rw_buffered(&mut rq, pos, write, false);
                LoopQueue::complete_rw(rq, res);
            }
            Path::Blocking => Self::punt(rq),
        }
    }

    /// A buffered read or write that moves what it can without blocking (page-cache hits).
    fn buffered_nowait(&self, mut rq: Rq<LoopQueue>, pos: u64, write: bool) -> Attempt {
        let res = self.rw_buffered(&mut rq, pos, write, true);
        let would_block = match res {
            // What was moved is kept: the blocking path continues from there.
            RwResult::Partial { done } => {
                rq.pdu().get_mut().done = done;
                true
            }
            // Nothing moved. `EAGAIN` is the usual refusal of a non-blocking call, not the only
            // one (`EOPNOTSUPP`; `EINVAL` from write checks without `FOP_BUFFER_WASYNC`; `ENOSPC`
            // from zoned XFS), and a file system may have others: every error is retried
            // blocking, whose outcome, errors included, is loop.c's. (Nothing went to the
            // backing store: a buffered attempt only meets the page cache.)
            RwResult::Error(_) => true,
            _ => false,
        };
        if would_block {
            return Attempt::WouldBlock(rq);
        }
        Stats::inc(&self.stats.buffered_nowait);
        LoopQueue::complete_rw(rq, res);
        Attempt::Gone
    }

    /// Hands a request to the blocking path (a work item on the device's workqueue). Takes no
    /// reference to the device: it may run in an interrupt.
    fn punt(mut rq: Rq<LoopQueue>) {
        let write = rq.info().op == ReqOp::Write;
        let cmd = rq.pdu().get_mut();
        cmd.nowait = false;
        if write && !cmd.blocking_write {
            cmd.blocking_write = true;
            rq.queue_data().stats.blocking_writes.add(1, Relaxed);
        }
        if let Err(mut rq) = rq.punt_blocking() {
            // Bound devices have their engine; this would be a driver bug, not a user error.
            pr_warn_once!("rust_loop: a request reached a device without a blocking path\n");
            Self::leave_blocking(&mut rq);
            let dev = rq.queue_data();
            Stats::inc(&dev.stats.ended);
            Stats::inc(&dev.stats.err_io);
            rq.end(BlkStatus::IOERR);
        }
    }

    /// The blocking path of a request (`loop_handle_cmd` + `do_req_filebacked`), in a workqueue
    /// worker: anything may sleep here.
    fn run_blocking(&self, mut rq: Rq<LoopQueue>) {
        Stats::inc(&self.stats.blocking);
        rq.clear_nowait();
        Association::with(rq, |rq| self.run_blocking_charged(rq));
    }

    /// [`LoopDevice::run_blocking`], under the submitter's cgroups.
    fn run_blocking_charged(&self, mut rq: Rq<LoopQueue>) {
        let direct = rq.pdu().use_aio;
        match self.decide(&rq) {
            Action::ReadWrite { pos, write, .. } if direct => {
                // Completes through `rw_complete`, which ends the blocking write.
                Stats::inc(&self.stats.aio_blocking);
                rq.rw_direct(&self.lock, pos, write, false);
            }
            Action::ReadWrite { pos, write, .. } => {
                Stats::inc(&self.stats.buffered_blocking);
                let res = self.rw_buffered(&mut rq, pos, write, false);
                Self::leave_blocking(&mut rq);
                LoopQueue::complete_rw(rq, res);
            }
            Action::Done(res) => {
                Self::leave_blocking(&mut rq);
                self.end_other(rq, res);
            }
        }
    }

    /// A write leaving the blocking path: no longer counted as an outstanding blocking write.
    fn leave_blocking(rq: &mut Rq<LoopQueue>) {
        if core::mem::take(&mut rq.pdu().get_mut().blocking_write) {
            rq.queue_data().stats.blocking_writes.add(-1, Relaxed);
        }
    }

    /// `do_req_filebacked`: flush, discard and write-zeroes are done here (they reach only the
    /// blocking path: `enqueue` sends them there); reads and writes are returned to be done by
    /// the caller, which owns the request.
    fn decide<'a>(&'a self, rq: &'a Rq<LoopQueue>) -> Action<'a> {
        let info = rq.info();
        let Some(io) = self.lock.io_view(rq) else {
            pr_warn_once!(
                "rust_loop: loop{} got a request of another device\n",
                self.number
            );
            return Action::Done(Err(EIO));
        };
        let Some(file) = io.file.as_deref() else {
            return Action::Done(Err(EIO));
        };
        if info.op.is_write() && io.read_only {
            return Action::Done(Err(EIO));
        }
        // The position in the file. A flush has none: blk-mq's flush request keeps
        // `blk_rq_init`'s sector, -1, which would overflow here (loop.c computes the position
        // for every request, wrapping, and a flush ignores it); so it is computed only in the
        // arms that use it.
        let pos = || {
            info.sector
                .checked_mul(u64::from(SECTOR_SIZE))
                .and_then(|bytes| bytes.checked_add(io.offset))
                .ok_or(EIO)
        };
        match info.op {
            ReqOp::Read | ReqOp::Write => match pos() {
                Ok(pos) => Action::ReadWrite {
                    pos,
                    write: info.op == ReqOp::Write,
                    file,
                },
                Err(e) => Action::Done(Err(e)),
            },
            // `lo_req_flush`: any fsync error is an I/O error to the flusher (EOPNOTSUPP too).
            ReqOp::Flush => Action::Done(file.fsync().map_err(|_| EIO)),
            // If the caller doesn't want deallocation, zero the range; otherwise punch it out.
            ReqOp::WriteZeroes { unmap: false } => {
                Action::Done(pos().and_then(|pos| {
                    self.fallocate(rq, file, FALLOC_FL_ZERO_RANGE, pos, info.bytes)
                }))
            }
            ReqOp::WriteZeroes { unmap: true } | ReqOp::Discard => {
                Action::Done(pos().and_then(|pos| {
                    self.fallocate(rq, file, FALLOC_FL_PUNCH_HOLE, pos, info.bytes)
                }))
            }
            ReqOp::Other(op) => {
                pr_warn_once!("rust_loop: unexpected request op {}\n", op);
                Action::Done(Err(EIO))
            }
        }
    }

    /// Ends a request that is not a read or write (or was refused before any I/O): `loop.c`'s
    /// policy for them: `EOPNOTSUPP` passes through, every other error is `EIO`.
    fn end_other(&self, rq: Rq<LoopQueue>, res: Result) {
        let status = match res {
            Ok(()) => BlkStatus::OK,
            Err(e) if e == eopnotsupp() => BlkStatus::NOTSUPP,
            Err(_) => BlkStatus::IOERR,
        };
        self.end(rq, status);
    }

    /// Ends a request, counting it.
    pub(crate) fn end(&self, rq: Rq<LoopQueue>, status: BlkStatus) {
        Stats::inc(&self.stats.ended);
        match status {
            BlkStatus::OK => {}
            BlkStatus::NOSPC => Stats::inc(&self.stats.err_nospc),
            BlkStatus::NOTSUPP => Stats::inc(&self.stats.err_notsupp),
            _ => Stats::inc(&self.stats.err_io),
        }
        rq.end(status);
    }

    /// Discard / write-zeroes through `->fallocate` (`lo_fallocate`).
    fn fallocate(
        &self,
        rq: &Rq<LoopQueue>,
        file: &BackingFile,
        mode: i32,
        pos: u64,
        bytes: u32,
    ) -> Result {
        let disk = rq.disk();
        if disk.max_discard_sectors() == 0 {
            return Err(eopnotsupp());
        }
        match file.fallocate(mode, pos, u64::from(bytes)) {
            Err(e) if e == eopnotsupp() => {
                // The limits were set hoping fallocate works; clear them now that it does not,
                // so the block layer logs the error once.
                disk.try_clear_discard_limits(
                    mode & FALLOC_FL_PUNCH_HOLE != 0,
                    mode & FALLOC_FL_ZERO_RANGE != 0,
                );
                Err(e)
            }
            Err(e) if e == EINVAL => Err(e),
            Err(_) => Err(EIO),
            Ok(()) => Ok(()),
        }
    }

    /// The buffered path: a synchronous kiocb (never `IOCB_DIRECT`, even on an `O_DIRECT`
    /// file, so turning direct I/O off works) called until all bytes moved, continuing where an
    /// earlier attempt stopped. Short reads continue until end of file; a write that makes no
    /// progress is an error, never a silent success; an error after some progress is
    /// `FailedAfter` (the completion policy decides). With `nowait`, a call that would block
    /// ends the attempt: `Partial` with what was moved, or the error of the first call.
    fn rw_buffered(&self, rq: &mut Rq<LoopQueue>, pos: u64, write: bool, nowait: bool) -> RwResult {
        let bytes = rq.info().bytes;
        let mut done = rq.pdu().done;
        let Ok(pos) = i64::try_from(pos) else {
            return RwResult::Error(EIO);
        };
        let mut rw = match rq.buffered(&self.lock, write, nowait) {
            Ok(rw) => rw,
            Err(e) => return RwResult::Error(e),
        };
        rw.skip(done);
        while done < bytes {
            match rw.step(pos + i64::from(done)) {
                r if nowait && done > 0 && (r == EAGAIN.to_errno() as isize) => {
                    return RwResult::Partial { done }
                }
                r if r < 0 && done > 0 => {
                    let err = request::fs_error(r);
                    return RwResult::FailedAfter { done, err };
                }
                r if r < 0 => return RwResult::Error(request::fs_error(r)),
                0 if write => return RwResult::Error(EIO),
                0 => return RwResult::EndOfFile { done },
                // The call moves at most what is left, which fits in u32.
                r => done += u32::try_from(r).unwrap_or(bytes - done).min(bytes - done),
            }
        }
        RwResult::Done
    }
}

impl LoopQueue {
    /// Completes a read or write (`lo_complete_rq`). Runs in the worker or in the file
    /// system's completion context: nothing here sleeps.
    ///
    /// Errors: the file system's errno becomes its block-layer status, as in loop.c
    /// (`errno_to_blk_status`): a medium error of the backing disk stays one (`ENODATA` to an
    /// `O_DIRECT` reader), and so do `ENOSPC`, `EOPNOTSUPP`, a transport error; what the table
    /// does not know is an I/O error. The driver's own failures are `EIO`.
    ///
    /// Short transfers: the part done completes, and a remainder that starts on a sector
    /// boundary is requeued, so it either finishes or reports the real error (loop.c 7.2's
    /// choice, not the seed's zero-fill). A read that reached the end of the backing file (or a
    /// remainder that cannot be retried at its position) has the rest zero-filled and fails with
    /// `EIO`, as loop.c does for a read of 0 bytes. Unlike loop.c, a short write is never
    /// acknowledged as a whole.
    pub(crate) fn complete_rw(mut rq: Rq<LoopQueue>, res: RwResult) {
        let completion = completion(res, rq.info().op);
        rq.queue_data().stats.count(&completion);
        match completion {
            Completion::End(status) => rq.end(status),
            Completion::Requeue { done } => match rq.advance(done) {
                Ok(()) => rq.requeue(),
                Err(_) => rq.end(BlkStatus::IOERR),
            },
            Completion::Fail { done, zero_fill } => {
                if done > 0 {
                    // Less than what is left, by construction of the result.
                    let _ = rq.advance(done);
                }
                if zero_fill {
                    rq.zero_fill();
                }
                rq.end(BlkStatus::IOERR);
            }
        }
    }
}

impl Stats {
    /// Counts how a read or write request ends (a requeue ends this dispatch of it).
    fn count(&self, completion: &Completion) {
        Stats::inc(&self.ended);
        match completion {
            Completion::End(BlkStatus::OK) => {}
            Completion::End(BlkStatus::NOSPC) => Stats::inc(&self.err_nospc),
            Completion::End(BlkStatus::NOTSUPP) => Stats::inc(&self.err_notsupp),
            Completion::End(_) => Stats::inc(&self.err_io),
            Completion::Requeue { .. } => Stats::inc(&self.requeued),
            Completion::Fail { .. } => {
                Stats::inc(&self.short_failed);
                Stats::inc(&self.err_io);
            }
        }
    }
}

/// How a read or write request ends (see [`LoopQueue::complete_rw`]).
#[derive(Debug, PartialEq, Eq)]
enum Completion {
    /// End it with this status.
    End(BlkStatus),
    /// Complete the first `done` bytes and requeue the rest.
    Requeue { done: u32 },
    /// Complete the first `done` bytes, zero the rest if asked (a read), fail with `EIO`.
    Fail { done: u32, zero_fill: bool },
}

/// The completion policy of [`LoopQueue::complete_rw`], as a pure function.
fn completion(res: RwResult, op: ReqOp) -> Completion {
    match res {
        RwResult::Done => Completion::End(BlkStatus::OK),
        RwResult::Error(e) => Completion::End(BlkStatus::from_errno(e)),
        // An error after some progress: what moved completes (the bios it covers) and the rest
        // is requeued, to fail from the failing position on (loop.c completes what a short read
        // moved and retries the rest; it acknowledges a short write whole). A remainder that
        // would start mid-sector cannot be retried: the whole request ends with the error.
        RwResult::FailedAfter { done, .. } if done % SECTOR_SIZE == 0 => {
            Completion::Requeue { done }
        }
        RwResult::FailedAfter { err, .. } => Completion::End(BlkStatus::from_errno(err)),
        // The block layer advances requests in whole sectors only: a remainder starting
        // mid-sector would be retried at the wrong place.
        RwResult::Partial { done } if done > 0 && done % SECTOR_SIZE == 0 => {
            Completion::Requeue { done }
        }
        RwResult::Partial { done } | RwResult::EndOfFile { done } => Completion::Fail {
            done,
            zero_fill: op == ReqOp::Read,
        },
    }
}

#[kunit_tests(rust_loop_io_path)]
mod tests {
    use super::*;

    #[test]
    fn full_transfer_ends_ok() {
        assert_eq!(
            completion(RwResult::Done, ReqOp::Read),
            Completion::End(BlkStatus::OK)
        );
        assert_eq!(
            completion(RwResult::Done, ReqOp::Write),
            Completion::End(BlkStatus::OK)
        );
    }

    #[test]
    fn errors_keep_their_block_status() {
        let end = |e| completion(RwResult::Error(e), ReqOp::Write);
        assert_eq!(end(ENOSPC), Completion::End(BlkStatus::NOSPC));
        assert_eq!(end(eopnotsupp()), Completion::End(BlkStatus::NOTSUPP));
        assert_eq!(end(EIO), Completion::End(BlkStatus::IOERR));
        // Not in the block layer's table.
        assert_eq!(end(EFBIG), Completion::End(BlkStatus::IOERR));
        // loop.c passes these through (a medium, protection, timeout, transport or target error
        // of the backing disk; a file system's ENOMEM, EAGAIN, EINVAL; an offline device), each
        // to a status of its own.
        let errno = |n: u32| Error::from_errno(-(n as i32));
        let kept = [
            errno(kernel::bindings::ENODATA),
            errno(kernel::bindings::EILSEQ),
            ETIMEDOUT,
            errno(kernel::bindings::ENOLINK),
            errno(kernel::bindings::EREMOTEIO),
            ENOMEM,
            EAGAIN,
            EINVAL,
            ENODEV,
        ];
        for (i, e) in kept.iter().enumerate() {
            let status = end(*e);
            assert!(matches!(status, Completion::End(_)));
            assert_ne!(status, Completion::End(BlkStatus::IOERR));
            assert_ne!(status, Completion::End(BlkStatus::OK));
            for other in &kept[..i] {
                assert_ne!(end(*other), status);
            }
        }
    }

    #[test]
    fn sector_aligned_short_transfer_is_requeued() {
        for op in [ReqOp::Read, ReqOp::Write] {
            assert_eq!(
                completion(RwResult::Partial { done: 4096 }, op),
                Completion::Requeue { done: 4096 }
            );
            assert_eq!(
                completion(RwResult::Partial { done: 512 }, op),
                Completion::Requeue { done: 512 }
            );
        }
    }

    #[test]
    fn error_after_progress_requeues_the_rest_from_a_sector_boundary() {
        for op in [ReqOp::Read, ReqOp::Write] {
            assert_eq!(
                completion(
                    RwResult::FailedAfter {
                        done: 4096,
                        err: ENOSPC
                    },
                    op
                ),
                Completion::Requeue { done: 4096 }
            );
            // Mid-sector: nothing can be retried, the error ends the request.
            assert_eq!(
                completion(
                    RwResult::FailedAfter {
                        done: 3996,
                        err: ENOSPC
                    },
                    op
                ),
                Completion::End(BlkStatus::NOSPC)
            );
        }
    }

    #[test]
    fn mid_sector_or_empty_short_transfer_fails() {
        // A remainder that starts mid-sector cannot be retried at the right position.
        assert_eq!(
            completion(RwResult::Partial { done: 1000 }, ReqOp::Read),
            Completion::Fail {
                done: 1000,
                zero_fill: true
            }
        );
        assert_eq!(
            completion(RwResult::Partial { done: 100 }, ReqOp::Write),
            Completion::Fail {
                done: 100,
                zero_fill: false
            }
        );
        // Nothing moved: no progress to requeue, the request fails (loop.c's 0-byte read).
        assert_eq!(
            completion(RwResult::Partial { done: 0 }, ReqOp::Read),
            Completion::Fail {
                done: 0,
                zero_fill: true
            }
        );
    }

    const fn rw(write: bool, direct: bool) -> Rw {
        Rw { write, direct }
    }
    /// No blocking writes outstanding; some.
    const FRESH: Outstanding = Outstanding {
        blocking_writes: false,
    };
    const BUSY: Outstanding = Outstanding {
        blocking_writes: true,
    };

    /// NOWAIT, but no non-blocking buffered writes: ext4 (`EOPNOTSUPP`), f2fs (`EINVAL`).
    const EXT4: FileKind = FileKind {
        nowait: true,
        nowait_buffered_writes: false,
        bdev: false,
    };
    const XFS: FileKind = FileKind {
        nowait: true,
        nowait_buffered_writes: true,
        bdev: false,
    };
    const TMPFS: FileKind = FileKind {
        nowait: false,
        nowait_buffered_writes: false,
        bdev: false,
    };
    /// A block device refuses non-blocking buffered writes (`EOPNOTSUPP`).
    const BDEV: FileKind = FileKind {
        nowait: true,
        nowait_buffered_writes: false,
        bdev: true,
    };
    /// A device-mapper table without NOWAIT support.
    const BDEV_BLOCKING: FileKind = FileKind {
        nowait: false,
        nowait_buffered_writes: false,
        bdev: true,
    };

    #[test]
    fn direct_io_is_tried_nowait_where_the_file_takes_it() {
        assert_eq!(path(rw(false, true), EXT4, FRESH), Path::DirectNowait);
        assert_eq!(path(rw(false, true), XFS, BUSY), Path::DirectNowait);
        for write in [false, true] {
            assert_eq!(path(rw(write, true), BDEV, FRESH), Path::DirectNowait);
            // No NOWAIT at all: submitted in the worker, as loop.c does.
            assert_eq!(path(rw(write, true), TMPFS, FRESH), Path::DirectHere);
            assert_eq!(path(rw(write, true), TMPFS, BUSY), Path::DirectHere);
            assert_eq!(
                path(rw(write, true), BDEV_BLOCKING, FRESH),
                Path::DirectHere
            );
        }
    }

    #[test]
    fn direct_writes_to_a_file_are_submitted_here() {
        // Whatever is outstanding, whatever the file system: loop.c's way (measured, see `path`).
        for out in [FRESH, BUSY] {
            for fs in [EXT4, XFS, TMPFS] {
                assert_eq!(path(rw(true, true), fs, out), Path::DirectHere);
            }
        }
    }

    #[test]
    fn writes_to_a_file_skip_nowait_while_blocking_writes_run() {
        // Ming Lei's heuristic: buffered file writes only, never reads, never a block device.
        assert_eq!(path(rw(true, false), XFS, FRESH), Path::BufferedNowait);
        assert_eq!(path(rw(true, false), XFS, BUSY), Path::Blocking);
        assert_eq!(path(rw(false, true), EXT4, BUSY), Path::DirectNowait);
        assert_eq!(path(rw(true, true), BDEV, BUSY), Path::DirectNowait);
        assert_eq!(path(rw(false, false), EXT4, BUSY), Path::BufferedNowait);
        assert_eq!(path(rw(false, false), XFS, BUSY), Path::BufferedNowait);
    }

    #[test]
    fn buffered_writes_to_a_file_without_nowait_writes_are_done_here() {
        // ext4 and f2fs (NOWAIT, but no non-blocking buffered writes) and tmpfs (no NOWAIT):
        // never tried non-blocking, which would only fail (f2fs: `EINVAL`); outstanding
        // blocking writes do not send them to the workqueue.
        for out in [FRESH, BUSY] {
            assert_eq!(path(rw(true, false), EXT4, out), Path::BufferedHere);
            assert_eq!(path(rw(true, false), TMPFS, out), Path::BufferedHere);
        }
        // Reads are tried non-blocking wherever the file takes NOWAIT.
        assert_eq!(path(rw(false, false), EXT4, FRESH), Path::BufferedNowait);
        assert_eq!(path(rw(false, false), TMPFS, FRESH), Path::Blocking);
        // A block device's buffered writes: the blocking path at once (it refuses them
        // non-blocking), where they run concurrently.
        for out in [FRESH, BUSY] {
            assert_eq!(path(rw(true, false), BDEV, out), Path::Blocking);
        }
        assert_eq!(path(rw(false, false), BDEV, BUSY), Path::BufferedNowait);
        // One that takes no NOWAIT: the blocking path.
        assert_eq!(path(rw(true, false), BDEV_BLOCKING, FRESH), Path::Blocking);
        assert_eq!(path(rw(false, false), BDEV_BLOCKING, FRESH), Path::Blocking);
    }

    #[test]
    fn end_of_file_zero_fills_reads() {
        assert_eq!(
            completion(RwResult::EndOfFile { done: 4096 }, ReqOp::Read),
            Completion::Fail {
                done: 4096,
                zero_fill: true
            }
        );
        assert_eq!(
            completion(RwResult::EndOfFile { done: 0 }, ReqOp::Read),
            Completion::Fail {
                done: 0,
                zero_fill: true
            }
        );
    }
}
