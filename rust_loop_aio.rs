// SPDX-License-Identifier: GPL-2.0

//! The seed's I/O path ("block: loop: support DIO & AIO"): `queue_rq` marks each read and write
//! for AIO when the device uses direct I/O (never flush, discard or write-zeroes) and hands the
//! request to the device's kthread worker; the worker either submits an async `IOCB_DIRECT`
//! kiocb over the request's own bio_vecs (no page pinning, no double page cache, no blocking of
//! the worker) or runs the buffered read/write loop; flush is `vfs_fsync`, discard and
//! write-zeroes are `fallocate`; the completion policy decides how each request ends.
//!
//! Ownership of a request, end to end: `queue_rq` receives the [`Rq`] and pushes it on the
//! worker's list; the worker takes it off and either ends it, or gives it to the async kiocb,
//! whose completion gives it back to [`LoopQueue::complete_rw`], which ends or requeues it.
//! Every step moves the one `Rq`; none can keep a copy.

use kernel::{
    block::{SECTOR_SHIFT, SECTOR_SIZE},
    pr_warn_once,
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
};

use crate::{
    cgroup::Association,
    file::{eopnotsupp, BackingFile, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE},
    kworker::{KWorker, Work},
    request::{self, BlkStatus, ReqOp, Rq, RqList, RwResult},
    task::IoTaskFlags,
    LoState, LoopDevice, LoopQueue,
};

/// The nice level of the workers: the one the kthread-based loop worker (Linux 4.4-5.x) used,
/// since the device's I/O latency depends on this thread getting the CPU.
const WORKER_NICE: i32 = -20;

/// The driver's part of a per-tag command (loop.c's `struct loop_cmd`; the kiocb and bvec
/// array live next to it in the typed layer).
pub(crate) struct Cmd {
    /// Decided by `queue_rq`: a read or write on a device using direct I/O.
    use_aio: bool,
}

/// What a hardware queue's worker drains.
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
        for rq in this.pending.take_all() {
            let data = rq.queue_data();
            if !dev.as_ref().is_some_and(|d| core::ptr::eq(&**d, &*data)) {
                dev = Some(data.into());
            }
            if let Some(dev) = &dev {
                dev.handle(rq);
            }
        }
    }
}

/// The I/O engine of a device: one kthread worker per hardware queue, created at first bind
/// (like loop.c's workqueue) and destroyed with the device.
pub(crate) struct Engine {
    queues: KVec<Pin<KBox<KWorker<HwQueue>>>>,
}

impl Engine {
    /// Workers named `rust_loop<number>` for `nr_hw_queues` queues.
    pub(crate) fn new(number: u32, nr_hw_queues: u32) -> Result<Self> {
        let mut queues = KVec::with_capacity(nr_hw_queues as usize, GFP_KERNEL)?;
        for _ in 0..nr_hw_queues {
            let worker = KBox::pin_init(
                KWorker::new(
                    fmt!("rust_loop{number}"),
                    WORKER_NICE,
                    pin_init!(HwQueue {
                        pending <- RqList::new(),
                    }),
                ),
                GFP_KERNEL,
            )?;
            queues.push(worker, GFP_KERNEL)?;
        }
        Ok(Self { queues })
    }

    fn queue(&self, index: u32) -> Option<&KWorker<HwQueue>> {
        self.queues.get(index as usize).map(|q| &**q)
    }
}

impl request::Operations for LoopQueue {
    type QueueData = Arc<LoopDevice>;
    type Pdu = Cmd;

    fn new_pdu() -> impl PinInit<Cmd, Error> {
        Ok::<_, Error>(Cmd { use_aio: false })
    }

    /// `loop_queue_rq`. Never calls into the backing file: that belongs to the worker, which
    /// has a clean stack and none of the submitter's file-system state (upstream's lesson from
    /// the reverted NOWAIT-in-`queue_rq` series).
    fn queue_rq(
        dev: <Arc<LoopDevice> as ForeignOwnable>::Borrowed<'_>,
        mut rq: Rq<Self>,
        is_last: bool,
    ) {
        // A stale state is harmless, as in loop.c: unbinding freezes the queue, draining us.
        if dev.state() != LoState::Bound {
            return rq.end(BlkStatus::IOERR);
        }
        // Flush, discard and write-zeroes are never AIO; reads and writes are when the device
        // uses direct I/O. The flag changes only with the queue frozen, so it is stable for the
        // life of this request.
        let use_aio = match rq.info().op {
            ReqOp::Read | ReqOp::Write => dev.lock.io_view(&rq).is_some_and(|io| io.dio),
            _ => false,
        };
        rq.pdu().get_mut().use_aio = use_aio;
        let Some(queue) = dev.engine().and_then(|e| e.queue(rq.hw_queue())) else {
            // Bound devices have their engine; this would be a driver bug, not a user error.
            pr_warn_once!(
                "rust_loop: a request reached loop{} without a worker\n",
                dev.number
            );
            return rq.end(BlkStatus::IOERR);
        };
        queue.data().pending.push(rq);
        // A batch is dispatched with one wake-up: blk-mq calls `commit_rqs` if it ends without
        // `is_last`.
        if is_last {
            queue.kick();
        }
    }

    fn commit_rqs(dev: <Arc<LoopDevice> as ForeignOwnable>::Borrowed<'_>, hw_queue: u32) {
        if let Some(queue) = dev.engine().and_then(|e| e.queue(hw_queue)) {
            queue.kick();
        }
    }

    fn rw_complete(rq: Rq<Self>, res: RwResult) {
        LoopQueue::complete_rw(rq, res);
    }
}

/// What the worker does with a request, decided while it reads the I/O state.
enum Action {
    /// Read or write the data at this byte position of the backing file.
    ReadWrite { pos: u64, write: bool },
    /// Done already (or refused), with this result.
    Done(Result),
}

impl LoopDevice {
    /// Handles one request in the worker (`loop_handle_cmd` + `do_req_filebacked`).
    fn handle(&self, mut rq: Rq<LoopQueue>) {
        // We can block in this context, so ignore REQ_NOWAIT.
        rq.clear_nowait();
        // Everything done for the request below (file I/O, page cache, fsync, fallocate) is
        // charged to the submitter's blkcg and memcg, until `_cgroups` goes at the end.
        let _cgroups = Association::of(&rq);
        let use_aio = rq.pdu().use_aio;
        let action = self.decide(&rq);
        match action {
            Action::ReadWrite { pos, write } if use_aio => rq.rw_direct(&self.lock, pos, write),
            Action::ReadWrite { pos, write } => {
                let res = self.rw_buffered(&mut rq, pos, write);
                LoopQueue::complete_rw(rq, res);
            }
            // Non-AIO commands: EOPNOTSUPP passes through, every other error is EIO.
            Action::Done(Ok(())) => rq.end(BlkStatus::OK),
            Action::Done(Err(e)) if e == eopnotsupp() => rq.end(BlkStatus::NOTSUPP),
            Action::Done(Err(_)) => rq.end(BlkStatus::IOERR),
        }
    }

    /// `do_req_filebacked`: flush, discard and write-zeroes are done here; reads and writes
    /// are returned to be done by the caller, which owns the request.
    fn decide(&self, rq: &Rq<LoopQueue>) -> Action {
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
        let Some(pos) = (info.sector << SECTOR_SHIFT).checked_add(io.offset) else {
            return Action::Done(Err(EIO));
        };
        match info.op {
            ReqOp::Read => Action::ReadWrite { pos, write: false },
            ReqOp::Write => Action::ReadWrite { pos, write: true },
            ReqOp::Flush => Action::Done(file.fsync()),
            // If the caller doesn't want deallocation, zero the range; otherwise punch it out.
            ReqOp::WriteZeroes { unmap: false } => {
                Action::Done(self.fallocate(rq, file, FALLOC_FL_ZERO_RANGE, pos, info.bytes))
            }
            ReqOp::WriteZeroes { unmap: true } | ReqOp::Discard => {
                Action::Done(self.fallocate(rq, file, FALLOC_FL_PUNCH_HOLE, pos, info.bytes))
            }
            ReqOp::Other(op) => {
                pr_warn_once!("rust_loop: unexpected request op {}\n", op);
                Action::Done(Err(EIO))
            }
        }
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
    /// file, so turning direct I/O off works) called until all bytes moved. Short reads
    /// continue until end of file; a write that makes no progress is an error, never a silent
    /// success.
    fn rw_buffered(&self, rq: &mut Rq<LoopQueue>, pos: u64, write: bool) -> RwResult {
        let bytes = rq.info().bytes;
        let Ok(pos) = i64::try_from(pos) else {
            return RwResult::Error(EIO);
        };
        let mut rw = match rq.buffered(&self.lock, write) {
            Ok(rw) => rw,
            Err(e) => return RwResult::Error(e),
        };
        let mut done: u32 = 0;
        while done < bytes {
            match rw.step(pos + i64::from(done)) {
                r if r < 0 => return RwResult::Error(Error::from_errno(r as i32)),
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
    /// Errors: `EOPNOTSUPP` and `ENOSPC` keep their meaning for the writer (`NOTSUPP`,
    /// `NOSPC`); everything else is an I/O error.
    ///
    /// Short transfers: the part done completes, and a remainder that starts on a sector
    /// boundary is requeued, so it either finishes or reports the real error (loop.c 7.2's
    /// choice, not the seed's zero-fill). A read that reached the end of the backing file (or a
    /// remainder that cannot be retried at its position) has the rest zero-filled and fails with
    /// `EIO`, as loop.c does for a read of 0 bytes. Unlike loop.c, a short write is never
    /// acknowledged as a whole.
    pub(crate) fn complete_rw(mut rq: Rq<LoopQueue>, res: RwResult) {
        match completion(res, rq.info().op) {
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
        RwResult::Error(e) => Completion::End(rw_error_status(e)),
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

/// The status a read or write error from the backing file ends its request with.
pub(crate) fn rw_error_status(e: Error) -> BlkStatus {
    if e == ENOSPC {
        BlkStatus::NOSPC
    } else if e == eopnotsupp() {
        BlkStatus::NOTSUPP
    } else {
        BlkStatus::IOERR
    }
}

#[kunit_tests(rust_loop_completion)]
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
    fn errors_keep_nospc_and_notsupp_only() {
        let end = |e| completion(RwResult::Error(e), ReqOp::Write);
        assert_eq!(end(ENOSPC), Completion::End(BlkStatus::NOSPC));
        assert_eq!(end(eopnotsupp()), Completion::End(BlkStatus::NOTSUPP));
        // loop.c would pass EAGAIN and ENOMEM through; to a writer they are I/O errors.
        assert_eq!(end(EAGAIN), Completion::End(BlkStatus::IOERR));
        assert_eq!(end(ENOMEM), Completion::End(BlkStatus::IOERR));
        assert_eq!(end(EIO), Completion::End(BlkStatus::IOERR));
        assert_eq!(end(EINVAL), Completion::End(BlkStatus::IOERR));
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
