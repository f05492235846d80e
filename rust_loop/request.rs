// SPDX-License-Identifier: GPL-2.0

//! blk-mq requests: a tag set whose requests carry a per-tag command, the owned request the
//! driver handles, lock-free request lists for handing requests to workers, and a request's data
//! read or written on a backing file through a kiocb (synchronous, or asynchronous with the
//! kiocb in the command, the seed's AIO).
//!
//! The 7.2 `kernel::block::mq` abstraction has no per-request driver data, no tag-set flags,
//! no hardware-queue index, no end-with-status, partial completion or requeue, so this file
//! replaces it with the same shape (an [`Operations`] trait, a pinned tag set, a vtable of
//! trampolines) plus what a loop driver needs, as upstream is heading (`Owned<Request>`,
//! `RequestData`).
//!
//! Types and the invariants they enforce:
//! - [`Rq`]: the driver's ownership of one started request. It is neither `Clone` nor `Copy`,
//!   it is created only by the `queue_rq` trampoline, by taking it off an [`RqList`], or by the
//!   completion of its asynchronous I/O, and ending ([`Rq::end`]) or requeueing ([`Rq::requeue`])
//!   consumes it. So a request is handed back to the block layer exactly once, and nothing that
//!   borrows it (its data, its command, the I/O view of [`crate::lock::DevLock`]) survives that.
//! - The per-tag command ([`Operations::Pdu`] and the kernel objects next to it) is reached only
//!   through the [`Rq`] that owns it, or by the in-flight async I/O that owns the [`Rq`].
//! - [`RqList`]: requests pushed to it are owned by it until taken off; none is ever lost (a list
//!   or iterator dropped with requests still on it ends them with an I/O error and warns).
//! - [`Rq::rw_direct`]: the file stays open and the data stays in place until the kiocb
//!   completes, because the request stays in flight until then; the completion runs once.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{cell::UnsafeCell, marker::PhantomData, pin::Pin, ptr::NonNull};
use kernel::{
    bindings,
    error::{code::EIOCBQUEUED, to_result},
    ffi::{c_int, c_long, c_uint, c_ulong},
    prelude::*,
    sync::atomic::{atomic_load, Atomic, Full, Relaxed},
    types::{ForeignOwnable, Opaque},
};

use crate::{
    disk::DiskRef,
    helpers,
    lock::{DevLock, IoState},
    workqueue::WorkQueue,
};

/// `REQ_OP_MASK` (`include/linux/blk_types.h`; checked in `include/rust_loop_helpers.c`).
const REQ_OP_MASK: u32 = (1 << bindings::REQ_OP_BITS) - 1;
/// `BLK_STS_NOTSUPP` (checked in `include/rust_loop_helpers.c`).
const BLK_STS_NOTSUPP: u8 = 1;
/// `BLK_STS_NOSPC` (checked in `include/rust_loop_helpers.c`).
const BLK_STS_NOSPC: u8 = 3;
/// `BLK_STS_IOERR` (checked in `include/rust_loop_helpers.c`).
const BLK_STS_IOERR: u8 = 10;
/// `IOCB_NOWAIT` (`include/linux/fs.h`; checked in `include/rust_loop_helpers.c`).
const IOCB_NOWAIT: c_int = 1 << 3;

/// A blk-mq driver whose requests carry a `Pdu`, handled through [`Rq`].
pub(crate) trait Operations: Sized + 'static {
    /// The queue's data (`queuedata`), shared by every request of the queue.
    type QueueData: ForeignOwnable + Send + Sync;
    /// The driver's part of each per-tag command, initialised once per tag.
    type Pdu: Send;

    /// Initialises the driver's part of a command.
    fn new_pdu() -> impl PinInit<Self::Pdu, Error>;

    /// Takes a started request: the driver queues it for a worker or ends it. Runs in atomic
    /// context (no `BLK_MQ_F_BLOCKING`).
    fn queue_rq(
        data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        rq: Rq<Self>,
        is_last: bool,
    );

    /// The last request of a batch was queued by an earlier `queue_rq` on `hw_queue` without
    /// `is_last`, and no more will come for now.
    fn commit_rqs(data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>, hw_queue: u32);

    /// An asynchronous read or write started by [`Rq::rw_direct`] has finished. Runs in the
    /// file system's completion context, possibly an interrupt: must not sleep.
    fn rw_complete(rq: Rq<Self>, res: RwResult);

    /// The workqueue of the blocking path ([`Rq::punt_blocking`]), if the queue data has one.
    /// The returned queue is borrowed from the queue data, so it lives as long as the queue.
    fn blocking_queue<'a>(
        data: &'a <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
    ) -> Option<&'a WorkQueue>;

    /// A request handed to the blocking path with [`Rq::punt_blocking`] runs here, in a
    /// workqueue worker (a kthread that may sleep).
    fn run_work(rq: Rq<Self>);
}

/// How a read or write of a request's data ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RwResult {
    /// All bytes were transferred.
    Done,
    /// Only `done` bytes (fewer than asked) were transferred; the rest may be retried.
    Partial { done: u32 },
    /// A buffered read reached the end of the file after `done` bytes.
    EndOfFile { done: u32 },
    /// The file system returned an error.
    Error(Error),
    /// A buffered read or write failed after `done` bytes (more than 0) had moved.
    FailedAfter { done: u32, err: Error },
}

/// The operation of a request, decoded from `cmd_flags`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReqOp {
    Read,
    Write,
    Flush,
    Discard,
    /// `REQ_OP_WRITE_ZEROES`; `unmap` is false when the caller set `REQ_NOUNMAP`.
    WriteZeroes {
        unmap: bool,
    },
    Other(u32),
}

impl ReqOp {
    /// Decodes `cmd_flags`.
    pub(crate) fn from_flags(flags: u32) -> Self {
        match flags & REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => ReqOp::Read,
            bindings::req_op_REQ_OP_WRITE => ReqOp::Write,
            bindings::req_op_REQ_OP_FLUSH => ReqOp::Flush,
            bindings::req_op_REQ_OP_DISCARD => ReqOp::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => ReqOp::WriteZeroes {
                unmap: flags & (1 << bindings::req_flag_bits___REQ_NOUNMAP) == 0,
            },
            other => ReqOp::Other(other),
        }
    }

    /// The raw `REQ_OP_*` value.
    fn raw(self) -> u32 {
        match self {
            ReqOp::Read => bindings::req_op_REQ_OP_READ,
            ReqOp::Write => bindings::req_op_REQ_OP_WRITE,
            ReqOp::Flush => bindings::req_op_REQ_OP_FLUSH,
            ReqOp::Discard => bindings::req_op_REQ_OP_DISCARD,
            ReqOp::WriteZeroes { .. } => bindings::req_op_REQ_OP_WRITE_ZEROES,
            ReqOp::Other(op) => op,
        }
    }

    /// Whether the operation modifies the device: `op_is_write`, the low bit of the op. A
    /// flush is not a write (it changes nothing, it makes earlier writes durable).
    pub(crate) fn is_write(self) -> bool {
        self.raw() & 1 != 0
    }
}

/// A block-layer completion status (`blk_status_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct BlkStatus(u8);

impl BlkStatus {
    pub(crate) const OK: Self = Self(bindings::BLK_STS_OK as u8);
    pub(crate) const IOERR: Self = Self(BLK_STS_IOERR);
    pub(crate) const NOTSUPP: Self = Self(BLK_STS_NOTSUPP);
    pub(crate) const NOSPC: Self = Self(BLK_STS_NOSPC);

    /// The block layer's status for an errno (`errno_to_blk_status`): `ENODATA` is a medium
    /// error, `ENOLINK` a transport one, and so on; an errno it does not know is `IOERR`.
    pub(crate) fn from_errno(e: Error) -> Self {
        // SAFETY: A lookup in a static table (it neither sleeps nor locks: completion contexts
        // call it); any int is a valid argument.
        Self(unsafe { bindings::errno_to_blk_status(e.to_errno()) })
    }
}

/// A file system's negative return (of `->read_iter`, `->write_iter`, `ki_complete`) as an
/// error. One outside the errno range, which no file system returns, is `EIO`: the block layer
/// must not see it as some other status.
pub(crate) fn fs_error(ret: isize) -> Error {
    if (-(bindings::MAX_ERRNO as isize)..0).contains(&ret) {
        Error::from_errno(ret as c_int)
    } else {
        EIO
    }
}

/// What the I/O path needs to know about a request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RqInfo {
    pub(crate) op: ReqOp,
    /// First sector (`blk_rq_pos`).
    pub(crate) sector: u64,
    /// Bytes left (`blk_rq_bytes`).
    pub(crate) bytes: u32,
}

/// The kernel objects of a command that the async I/O path uses.
///
/// # Invariants
///
/// While `refs` is 0 the command is idle and everything here belongs to the owner of the
/// command's [`Rq`]. Submission sets `refs` to 2 and gives up the [`Rq`]; from then on `iocb`
/// belongs to the file system, and `bvecs` and the [`Rq`] to whoever drops `refs` to 0.
#[pin_data]
struct AioCmd {
    #[pin]
    iocb: Opaque<bindings::kiocb>,
    /// loop.c's `cmd->ref`: one for the submitter, one for the kiocb completion.
    refs: Atomic<i32>,
    /// The kiocb's result, set by the completion.
    ret: Atomic<isize>,
    write: Atomic<bool>,
    /// Bvec array for requests of several bios; the capacity is kept for the next request.
    bvecs: UnsafeCell<KVec<bindings::bio_vec>>,
}

/// The per-tag command: the request's PDU (loop.c's `struct loop_cmd`).
#[pin_data]
struct Cmd<T: Operations> {
    /// Link of [`RqList`].
    #[pin]
    link: Opaque<bindings::llist_node>,
    /// Work item of [`Rq::punt_blocking`], initialised with [`run_work::<T>`].
    #[pin]
    work: Opaque<bindings::work_struct>,
    #[pin]
    aio: AioCmd,
    #[pin]
    pdu: T::Pdu,
}

impl<T: Operations> Cmd<T> {
    fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            link: Opaque::zeroed(),
            work <- Opaque::ffi_init(|w| {
                // SAFETY: `w` is valid for writes; `INIT_WORK` initialises it fully.
                unsafe { helpers::rust_loop_init_work(w, run_work::<T>) }
            }),
            aio <- pin_init!(AioCmd {
                // An all-zero kiocb is idle; it is set up for every request.
                iocb: Opaque::zeroed(),
                refs: Atomic::new(0),
                ret: Atomic::new(0),
                write: Atomic::new(false),
                bvecs: UnsafeCell::new(KVec::new()),
            }),
            pdu <- T::new_pdu(),
        })
    }
}

/// A started request owned by the driver (see the module documentation).
///
/// # Invariants
///
/// `rq` is a started request of a queue created on a [`TagSet<T>`], owned by this value: the
/// block layer does not touch it, and no other `Rq` for it exists, until it is ended or requeued
/// through this value. Its PDU is an initialised [`Cmd<T>`].
pub(crate) struct Rq<T: Operations> {
    rq: NonNull<bindings::request>,
    _p: PhantomData<T>,
}

// SAFETY: An `Rq` is the sole owner of the request and its command, and the block layer allows
// a request to be handled and ended on any CPU; the driver's part moves along (`Pdu: Send`).
unsafe impl<T: Operations> Send for Rq<T> {}

impl<T: Operations> Rq<T> {
    /// # Safety
    ///
    /// `rq` is a started request of a queue on a [`TagSet<T>`] whose ownership the caller
    /// holds and hands over (see the type invariants).
    unsafe fn from_raw(rq: *mut bindings::request) -> Self {
        Self {
            // SAFETY: A started request is not null (caller's guarantee).
            rq: unsafe { NonNull::new_unchecked(rq) },
            _p: PhantomData,
        }
    }

    /// Gives up this value's ownership without handing the request back.
    fn into_raw(self) -> *mut bindings::request {
        let rq = self.rq.as_ptr();
        core::mem::forget(self);
        rq
    }

    /// The C request, for the other files of the typed layer; valid while `self` is.
    pub(crate) fn as_raw(&self) -> *mut bindings::request {
        self.rq.as_ptr()
    }

    fn cmd_ptr(&self) -> *mut Cmd<T> {
        // SAFETY: The request is valid (type invariant); its PDU follows it.
        unsafe { bindings::blk_mq_rq_to_pdu(self.as_raw()) }.cast()
    }

    fn cmd(&self) -> &Cmd<T> {
        // SAFETY: The PDU is an initialised `Cmd<T>` (type invariant), alive while the request
        // is.
        unsafe { &*self.cmd_ptr() }
    }

    /// The driver's part of the request's command.
    pub(crate) fn pdu(&mut self) -> Pin<&mut T::Pdu> {
        let cmd = self.cmd_ptr();
        // SAFETY: We own the command exclusively (`&mut self`, type invariant).
        let pdu = unsafe { &mut (*cmd).pdu };
        // SAFETY: `pdu` is structurally pinned in the command, which never moves (it lives in
        // the request).
        unsafe { Pin::new_unchecked(pdu) }
    }

    /// The request's operation, position and remaining length.
    pub(crate) fn info(&self) -> RqInfo {
        let p = self.as_raw();
        // SAFETY: We own the started request; the block layer does not change these fields
        // meanwhile.
        let flags = unsafe { (*p).cmd_flags };
        // SAFETY: As above.
        let sector = unsafe { (*p).__sector };
        // SAFETY: As above.
        let bytes = unsafe { (*p).__data_len };
        RqInfo {
            op: ReqOp::from_flags(flags),
            sector,
            bytes,
        }
    }

    /// The index of the hardware queue the request was dispatched on.
    pub(crate) fn hw_queue(&self) -> u32 {
        // SAFETY: A started request has its hardware context, which outlives it.
        let hctx = unsafe { (*self.as_raw()).mq_hctx };
        // SAFETY: As above.
        unsafe { (*hctx).queue_num }
    }

    fn queue(&self) -> *mut bindings::request_queue {
        // SAFETY: `q` of a started request is set and stable.
        unsafe { (*self.as_raw()).q }
    }

    /// The identity of the request's queue (its address, not to be dereferenced).
    pub(crate) fn queue_id(&self) -> usize {
        self.queue() as usize
    }

    /// The queue's data.
    pub(crate) fn queue_data(&self) -> <T::QueueData as ForeignOwnable>::Borrowed<'_> {
        // SAFETY: The queue of a `TagSet<T>` request holds `T::QueueData` (set in
        // `NewDisk::add`, released in the disk's `free_disk`, after every request ended).
        let data = unsafe { (*self.queue()).queuedata };
        // SAFETY: As above; the borrow ends with `&self`, before the request can end.
        unsafe { T::QueueData::borrow(data) }
    }

    /// The disk of the request's queue.
    pub(crate) fn disk(&self) -> DiskRef<'_, T> {
        // SAFETY: The queue of a started request is alive.
        let disk = unsafe { (*self.queue()).disk };
        // SAFETY: The disk of a queue with a request in flight is alive (`del_gendisk` drains
        // the queue first), and it is a disk of `T` (its queue is on a `TagSet<T>`).
        unsafe { DiskRef::from_raw(disk) }
    }

    /// The request's I/O priority (`req_get_ioprio`).
    fn ioprio(&self) -> u16 {
        // SAFETY: We own the request.
        unsafe { helpers::rust_loop_rq_ioprio(self.as_raw()) }
    }

    /// Drops `REQ_NOWAIT`: the worker may block ("We can block in this context", loop.c).
    pub(crate) fn clear_nowait(&mut self) {
        let p = self.as_raw();
        // SAFETY: We own the request, so it is live; the address of a field, nothing read.
        let flags = unsafe { &raw mut (*p).cmd_flags };
        // SAFETY: A live, aligned `u32`. Only the owner writes it, and we are the owner; the
        // block layer also reads it meanwhile (`blk_mq_in_driver_rw`, debugfs), racily, as it
        // reads every in-flight request's flags (loop.c's plain `&=` is the same race). Marked
        // accesses here, a load and one store, so such a reader sees the old or the new value,
        // which differ only in `REQ_NOWAIT`.
        let flags = unsafe { Atomic::from_ptr(flags) };
        flags.store(
            flags.load(Relaxed) & !(1u32 << bindings::req_flag_bits___REQ_NOWAIT),
            Relaxed,
        );
    }

    /// Ends the request with `status`, handing it back to the block layer.
    pub(crate) fn end(self, status: BlkStatus) {
        let p = self.into_raw();
        // SAFETY: We owned the started request, and gave up that ownership above.
        unsafe { bindings::blk_mq_end_request(p, status.0) };
    }

    /// Puts the request back on the queue, to be dispatched again later.
    pub(crate) fn requeue(self) {
        let p = self.into_raw();
        // SAFETY: As in `end`: the block layer dispatches it again (to a new `Rq`).
        unsafe { bindings::blk_mq_requeue_request(p, true) };
    }

    /// Completes the first `bytes` of the request successfully; the rest stays with the driver.
    /// `EINVAL` unless `0 < bytes <` what is left (the request must not end here).
    pub(crate) fn advance(&mut self, bytes: u32) -> Result {
        if bytes == 0 || bytes >= self.info().bytes {
            return Err(EINVAL);
        }
        // SAFETY: We own the request and `bytes` is less than what is left of it, so
        // `blk_update_request` returns true (data left) and neither ends nor frees it.
        unsafe { bindings::blk_update_request(self.as_raw(), BlkStatus::OK.0, bytes) };
        Ok(())
    }

    /// Zeroes what is left of every bio of the request (`zero_fill_bio`).
    pub(crate) fn zero_fill(&mut self) {
        // Only a read's pages are ours to write: a write's may be anyone's (the zero page, a
        // file's page cache).
        if self.info().op != ReqOp::Read {
            return;
        }
        // SAFETY: We own the read request, so its bios and their pages are ours to fill.
        unsafe { helpers::rust_loop_rq_zero_fill(self.as_raw()) };
    }

    /// Builds an iov_iter over the request's data: in place for a single bio, from a copy in
    /// the command's bvec array when the request has several. The direction must be the
    /// request's: filling a write's pages would write to memory that is not ours (the zero page,
    /// another file's page cache). Every failure is `EIO`, as loop.c's failed bvec allocation.
    fn build_iter(&mut self, write: bool) -> Result<bindings::iov_iter> {
        match (self.info().op, write) {
            (ReqOp::Read, false) | (ReqOp::Write, true) => {}
            _ => return Err(EIO),
        }
        let p = self.as_raw();
        let bytes = self.info().bytes as usize;
        let dir = if write {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        // SAFETY: All-zero is a valid (empty) `iov_iter`; `iov_iter_bvec` sets it up below.
        let mut iter: bindings::iov_iter = unsafe { core::mem::zeroed() };
        // SAFETY: We own the request; its bios are stable until it ends.
        let nr = unsafe { helpers::rust_loop_rq_nr_bvec(p) };
        // SAFETY: As above.
        let bio = unsafe { (*p).bio };
        if bio.is_null() {
            return Err(EIO);
        }
        // SAFETY: As above.
        let single = bio == unsafe { (*p).biotail };
        if single {
            // This bio may start in the middle of its first bvec because of bio splitting, so
            // the offset into that bvec is passed to the iterator.
            let mut done: c_uint = 0;
            // SAFETY: The request has one bio (`bio` is not null: reads and writes carry data).
            let first = unsafe { helpers::rust_loop_rq_first_bvec(p, &mut done) };
            // SAFETY: `first` points to the bio's `nr` remaining segments, which stay in place
            // until the request ends; `iter` is writable.
            unsafe { bindings::iov_iter_bvec(&mut iter, dir, first, nr as c_ulong, bytes) };
            iter.iov_offset = done as usize;
        } else {
            // The bios may also start in the middle of a bvec, so their vectors cannot be
            // copied as they are; `rq_for_each_bvec` yields the exact segments. Workers run with
            // PF_MEMALLOC_NOIO, so this allocation cannot recurse into I/O.
            // SAFETY: We own the request, so the idle command's bvec array is ours (type
            // invariant of `AioCmd`: `refs` is 0 while an `Rq` exists).
            let bvecs = unsafe { &mut *self.cmd().aio.bvecs.get() };
            let nr = usize::try_from(nr).map_err(|_| EIO)?;
            bvecs.clear();
            bvecs.reserve(nr, GFP_KERNEL).map_err(|_| EIO)?;
            // SAFETY: `bvecs` has room for the `nr` segments of the request, which
            // `rq_copy_bvecs` writes.
            unsafe { helpers::rust_loop_rq_copy_bvecs(p, bvecs.as_mut_ptr()) };
            // SAFETY: The first `nr` elements were just initialised.
            unsafe { bvecs.inc_len(nr) };
            // SAFETY: `bvecs` holds `nr` segments and stays untouched until the I/O is done
            // (the command is busy meanwhile); `iter` is writable.
            unsafe {
                bindings::iov_iter_bvec(&mut iter, dir, bvecs.as_ptr(), nr as c_ulong, bytes)
            };
        }
        Ok(iter)
    }

    /// Starts a buffered (synchronous, never `IOCB_DIRECT`) read or write of the request's data
    /// on the backing file of `lock`'s I/O state; [`BufferedRw::step`] moves the data.
    pub(crate) fn buffered<'a, C, I: IoState, P>(
        &'a mut self,
        lock: &'a DevLock<C, I, P>,
        write: bool,
        nowait: bool,
    ) -> Result<BufferedRw<'a>> {
        let file = lock.io_view(self).and_then(I::file).ok_or(EIO)?.as_raw();
        let ioprio = self.ioprio();
        let iter = self.build_iter(write)?;
        // SAFETY: All-zero is a valid idle kiocb; the fields a synchronous kiocb needs are set
        // below (`ki_complete` stays `None`).
        let mut iocb: bindings::kiocb = unsafe { core::mem::zeroed() };
        iocb.ki_filp = file;
        iocb.ki_ioprio = ioprio;
        // Never `IOCB_DIRECT`, whatever the file's own flags: that is the buffered path.
        iocb.ki_flags = if nowait { IOCB_NOWAIT } else { 0 };
        // INVARIANT: `file` is the backing file of the I/O view of a request borrowed for 'a.
        Ok(BufferedRw {
            iocb,
            iter,
            write,
            _rq: PhantomData,
        })
    }

    /// Reads or writes the request's data at byte `pos` of the backing file of `lock`'s I/O
    /// state with an async direct kiocb (`lo_rw_aio` with `use_aio`); with `nowait`, the file
    /// system returns `EAGAIN` instead of blocking. The request comes back through
    /// [`Operations::rw_complete`], now or from the file system's completion.
    pub(crate) fn rw_direct<C, I: IoState, P>(
        mut self,
        lock: &DevLock<C, I, P>,
        pos: u64,
        write: bool,
        nowait: bool,
    ) {
        let file = match lock.io_view(&self).and_then(I::file) {
            Some(file) => file.as_raw(),
            None => return T::rw_complete(self, RwResult::Error(EIO)),
        };
        let Ok(pos) = i64::try_from(pos) else {
            return T::rw_complete(self, RwResult::Error(EIO));
        };
        let mut iter = match self.build_iter(write) {
            Ok(iter) => iter,
            Err(e) => return T::rw_complete(self, RwResult::Error(e)),
        };
        let ioprio = self.ioprio();
        let cmd = self.cmd_ptr();
        // SAFETY: The command lives in the request, which stays allocated (the tag set outlives
        // its requests); from here on it is shared with the completion (type invariant of
        // `AioCmd`), so only shared references are made.
        let aio = unsafe { &(*cmd).aio };
        let iocb = aio.iocb.get();
        // SAFETY: All-zero is a valid idle kiocb; the fields an async direct kiocb needs are
        // set below.
        let mut k: bindings::kiocb = unsafe { core::mem::zeroed() };
        k.ki_filp = file;
        k.ki_pos = pos;
        k.ki_ioprio = ioprio;
        k.ki_flags = bindings::IOCB_DIRECT as c_int | if nowait { IOCB_NOWAIT } else { 0 };
        k.ki_complete = Some(aio_complete::<T>);
        // SAFETY: The command is idle (we own the request) and so is its kiocb, ours until it
        // is submitted.
        unsafe { iocb.write(k) };
        // Freeze protection across the async write; the last `aio_put` ends it. A
        // non-blocking write on a frozen file system would block: it ends here instead.
        // SAFETY: The kiocb is set up on an open file.
        if write && !unsafe { helpers::rust_loop_kiocb_start_write(iocb) } {
            return T::rw_complete(self, RwResult::Error(EAGAIN));
        }
        aio.write.store(write, Relaxed);
        aio.ret.store(0, Relaxed);
        aio.refs.store(2, Relaxed);
        // The request now belongs to the command until its last reference is dropped: the data
        // stays in place, and so does the file, although `lock`'s borrow ends with this call:
        // the I/O state that holds it is changed or dropped only with no request of its queue
        // in flight (a freeze waits for this one), and a lock dropped while it still holds a
        // file leaks it (see `DevLock`).
        let _ = self.into_raw();
        // SAFETY: The kiocb is set up on an open file, `iter` covers the request's data.
        let ret = unsafe { call_rw(iocb, &mut iter, write) };
        // SAFETY: `cmd` is the command of a request submitted above; this is the submitter's
        // reference. From here on the callback may have run: nothing but `iocb` (below, only
        // when the callback will not run) is touched.
        unsafe { aio_put::<T>(cmd) };
        if ret != EIOCBQUEUED.to_errno() as isize {
            // SAFETY: The file system did not queue the kiocb, so it will not call the
            // completion: we call it in its place, exactly once, holding its reference.
            unsafe { aio_complete::<T>(iocb, ret as c_long) };
        }
    }
}

impl<T: Operations> Rq<T> {
    /// Hands the request to the queue's blocking workqueue ([`Operations::blocking_queue`]),
    /// whose worker gives it to [`Operations::run_work`]; gives it back if there is none.
    ///
    /// Needs no reference to the queue data beyond the request's own, so it may run where the
    /// caller holds none (an interrupt-context completion, which must never be the one to drop
    /// the last reference to a device).
    pub(crate) fn punt_blocking(self) -> core::result::Result<(), Self> {
        let wq = {
            let data = self.queue_data();
            T::blocking_queue(&data).map(WorkQueue::as_raw)
        };
        let Some(wq) = wq else {
            return Err(self);
        };
        // SAFETY: The command of an owned request is live.
        let work = unsafe { (*self.cmd_ptr()).work.get() };
        let _ = self.into_raw();
        // SAFETY: `wq` is borrowed from the queue data, which outlives every request of the
        // queue, and this request is in flight until its work has run, so the queue data (and
        // with it the workqueue) cannot be torn down before the work is linked. The work item is initialised (`Cmd::new`) and lives in the
        // request, which stays allocated while in flight; the request now belongs to the work
        // until `run_work` hands it on, so nobody else can queue or touch this work meanwhile.
        if !unsafe { WorkQueue::queue_raw(wq, work) } {
            // Only the owner of the request queues its work: it cannot be pending already.
            pr_warn!("rust_loop: the work of a request was pending twice\n");
        }
        Ok(())
    }
}

impl<T: Operations> Drop for Rq<T> {
    fn drop(&mut self) {
        // A request must be ended or requeued; dropping one would leave it in flight forever
        // (a hang of every queue freeze). End it with an I/O error instead, and say so.
        pr_warn!("rust_loop: a request was dropped without being ended\n");
        let p = self.rq.as_ptr();
        // SAFETY: We own the started request; it is not used after this.
        unsafe { bindings::blk_mq_end_request(p, BLK_STS_IOERR) };
    }
}

/// Work function of [`Rq::punt_blocking`].
///
/// # Safety
///
/// Called by a workqueue for the `work` of a [`Cmd<T>`] queued by [`Rq::punt_blocking`], once per
/// queueing.
unsafe extern "C" fn run_work<T: Operations>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the `work` field of a `Cmd<T>` (only `Cmd::new` uses this function).
    #[expect(
        clippy::multiple_unsafe_ops_per_block,
        reason = "container_of! is one operation; its type check names the field through the pointer"
    )]
    let cmd = unsafe {
        kernel::container_of!(work.cast::<Opaque<bindings::work_struct>>(), Cmd<T>, work)
    };
    // SAFETY: `cmd` is the PDU of its request.
    let rq = unsafe { bindings::blk_mq_rq_from_pdu(cmd.cast()) };
    // SAFETY: `punt` gave the request to this work; it comes back here, once.
    T::run_work(unsafe { Rq::from_raw(rq) });
}

/// Calls the file's `->read_iter` or `->write_iter` with `iocb`.
///
/// # Safety
///
/// `iocb` is a set-up kiocb on an open file, owned by the caller for the call; `iter` covers
/// memory the call may read (write) or fill (read).
unsafe fn call_rw(iocb: *mut bindings::kiocb, iter: &mut bindings::iov_iter, write: bool) -> isize {
    // SAFETY: The kiocb is set up (caller's guarantee).
    let file = unsafe { (*iocb).ki_filp };
    // SAFETY: An open file has its operations table, set at open.
    let fops = unsafe { (*file).f_op };
    // SAFETY: The table is a static of the file system, which outlives the open file.
    let fops = unsafe { &*fops };
    let f = if write {
        fops.write_iter
    } else {
        fops.read_iter
    };
    match f {
        // SAFETY: The file system's method on its own open file (caller's guarantee).
        Some(f) => unsafe { f(iocb, iter) },
        None => EINVAL.to_errno() as isize,
    }
}

/// Completion callback of an async kiocb submitted by [`Rq::rw_direct`].
///
/// # Safety
///
/// `iocb` is the `iocb` of the [`AioCmd`] of a request of a `TagSet<T>`, submitted by
/// [`Rq::rw_direct`]; called once per submission, by the file system or in its place.
unsafe extern "C" fn aio_complete<T: Operations>(iocb: *mut bindings::kiocb, ret: c_long) {
    // SAFETY: `iocb` is the `iocb` field of an `AioCmd` (`Opaque` is `repr(transparent)`).
    #[expect(
        clippy::multiple_unsafe_ops_per_block,
        reason = "container_of! is one operation; its type check names the field through the pointer"
    )]
    let aio =
        unsafe { kernel::container_of!(iocb.cast::<Opaque<bindings::kiocb>>(), AioCmd, iocb) };
    // SAFETY: The `AioCmd` is the `aio` field of a `Cmd<T>` (only `Cmd` embeds one).
    #[expect(
        clippy::multiple_unsafe_ops_per_block,
        reason = "container_of! is one operation; its type check names the field through the pointer"
    )]
    let cmd = unsafe { kernel::container_of!(aio, Cmd<T>, aio) };
    // SAFETY: `aio` is live (in a request's PDU); the completion owns the second reference.
    unsafe { (*aio).ret.store(ret, Relaxed) };
    // SAFETY: This is the completion's reference of a submitted command.
    unsafe { aio_put::<T>(cmd) };
}

/// Drops one of the two references of an async command; the last one completes it
/// (`lo_rw_aio_do_completion`). Runs in whatever context the file system completes in, so
/// nothing here sleeps.
///
/// # Safety
///
/// `cmd` is the command of a request submitted by [`Rq::rw_direct`], and the caller holds one
/// of its two references, which it gives up.
unsafe fn aio_put<T: Operations>(cmd: *mut Cmd<T>) {
    // SAFETY: The command is live while a reference is held (caller's guarantee).
    let aio = unsafe { &(*cmd).aio };
    // The full barrier orders the other side's writes (`ret`) before our reads below.
    if aio.refs.fetch_sub(1, Full) != 1 {
        return;
    }
    // SAFETY: Both references are gone, so the last holder owns the bvec array (type invariant
    // of `AioCmd`); the file system is done with it.
    unsafe { (*aio.bvecs.get()).clear() };
    if aio.write.load(Relaxed) {
        // SAFETY: Paired with `kiocb_start_write` in `rw_direct`.
        unsafe { helpers::rust_loop_kiocb_end_write(aio.iocb.get()) };
    }
    let ret = aio.ret.load(Relaxed);
    // SAFETY: `cmd` is the PDU of its request (`Cmd<T>` is the whole PDU).
    let rq = unsafe { bindings::blk_mq_rq_from_pdu(cmd.cast()) };
    // SAFETY: The request was given up by `rw_direct` and both references are now dropped:
    // ownership comes back here, once.
    let rq = unsafe { Rq::<T>::from_raw(rq) };
    let bytes = rq.info().bytes;
    let res = if ret < 0 {
        RwResult::Error(fs_error(ret))
    } else if ret as u64 >= u64::from(bytes) {
        RwResult::Done
    } else {
        RwResult::Partial { done: ret as u32 }
    };
    T::rw_complete(rq, res);
}

/// A buffered read or write of a request in progress (see [`Rq::buffered`]).
///
/// # Invariants
///
/// `iocb` is a synchronous kiocb on the backing file of the I/O view of a request borrowed for
/// `'a` (so the file stays open), `iter` covers that request's data.
pub(crate) struct BufferedRw<'a> {
    iocb: bindings::kiocb,
    iter: bindings::iov_iter,
    write: bool,
    _rq: PhantomData<&'a mut ()>,
}

impl BufferedRw<'_> {
    /// Skips the first `bytes` of the request's data (already moved by an earlier attempt).
    pub(crate) fn skip(&mut self, bytes: u32) {
        // SAFETY: `iter` is a set-up iov_iter; advancing past its end stops at the end.
        unsafe { bindings::iov_iter_advance(&mut self.iter, bytes as usize) };
    }

    /// One `->read_iter` / `->write_iter` call at byte `pos` of the file, continuing where the
    /// previous call stopped in the request's data. Returns what the file system returned.
    pub(crate) fn step(&mut self, pos: i64) -> isize {
        self.iocb.ki_pos = pos;
        let iocb = &raw mut self.iocb;
        // SAFETY: Freeze protection around the write, as `kiocb_start_write` documents (a
        // non-blocking write does not wait for a frozen file system: `EAGAIN`).
        if self.write && !unsafe { helpers::rust_loop_kiocb_start_write(iocb) } {
            return EAGAIN.to_errno() as isize;
        }
        // SAFETY: By the type invariant the kiocb is set up on an open file and `iter` covers
        // the request's data; the call is synchronous (no `ki_complete`).
        let ret = unsafe { call_rw(iocb, &mut self.iter, self.write) };
        if self.write {
            // SAFETY: Paired with the start above.
            unsafe { helpers::rust_loop_kiocb_end_write(iocb) };
        }
        ret
    }
}

/// A lock-free list of requests (`llist`), for handing them to a worker. Pushing gives the
/// request to the list; [`RqList::take_all`] takes them all back, oldest first.
///
/// # Invariants
///
/// Every node on `head` is the `link` of the command of a request owned by the list.
#[pin_data(PinnedDrop)]
pub(crate) struct RqList<T: Operations> {
    #[pin]
    head: Opaque<bindings::llist_head>,
    _p: PhantomData<T>,
}

// SAFETY: The list hands `Rq<T>`s (which are `Send`) between tasks through atomic operations.
unsafe impl<T: Operations> Send for RqList<T> {}
// SAFETY: As above; `push` and `take_all` may run concurrently (llist's contract: any number of
// adders, one deleter at a time is not needed for `llist_del_all`).
unsafe impl<T: Operations> Sync for RqList<T> {}

impl<T: Operations> RqList<T> {
    /// An empty list.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // An all-zero `llist_head` is empty.
            head: Opaque::zeroed(),
            _p: PhantomData,
        })
    }

    /// Adds `rq`; true if the list was empty before.
    pub(crate) fn push(&self, rq: Rq<T>) -> bool {
        // SAFETY: The command of an owned request is live and its link unused (a request is on
        // at most one list: only its owner pushes it, and that gives the ownership away).
        let link = unsafe { (*rq.cmd_ptr()).link.get() };
        let _ = rq.into_raw();
        // INVARIANT: The list owns the request from here on.
        // SAFETY: `link` is a free node of a live command; `head` is a live list head.
        unsafe { helpers::rust_loop_llist_add(link, self.head.get()) }
    }

    /// Whether the list is empty now (`llist_empty`): a racy snapshot, for deciding whether a
    /// worker needs a wake-up (one that takes the requests meanwhile makes the answer moot).
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: `head` is a live list head: the address of its field, nothing read.
        let first = unsafe { &raw mut (*self.head.get()).first };
        // SAFETY: A live, aligned field; every concurrent store to it is atomic (`llist_add`'s
        // cmpxchg, `llist_del_all`'s xchg). This is `READ_ONCE(head->first)`, as `llist_empty`.
        unsafe { atomic_load(first, Relaxed) }.is_null()
    }

    /// Takes every request off the list, oldest first.
    pub(crate) fn take_all(&self) -> RqIter<T> {
        // SAFETY: `head` is a live list head; `llist_del_all` may race with adders.
        let first = unsafe { helpers::rust_loop_llist_del_all(self.head.get()) };
        // SAFETY: The nodes taken are ours now and no longer reachable from `head`.
        let first = unsafe { bindings::llist_reverse_order(first) };
        // INVARIANT: The taken nodes are links of owned requests.
        RqIter {
            next: first,
            _p: PhantomData,
        }
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for RqList<T> {
    fn drop(self: Pin<&mut Self>) {
        // Requests left on a list would never end: fail them (the iterator's drop warns).
        drop(self.take_all());
    }
}

/// The requests taken off an [`RqList`], oldest first.
///
/// # Invariants
///
/// `next` starts a chain of links of commands of requests owned by this iterator.
pub(crate) struct RqIter<T: Operations> {
    next: *mut bindings::llist_node,
    _p: PhantomData<T>,
}

impl<T: Operations> Iterator for RqIter<T> {
    type Item = Rq<T>;

    fn next(&mut self) -> Option<Rq<T>> {
        let node = self.next;
        if node.is_null() {
            return None;
        }
        // SAFETY: `node` is a link we own (type invariant); read its successor before the
        // request leaves our hands.
        self.next = unsafe { (*node).next };
        // SAFETY: `node` is the `link` field of a `Cmd<T>` (`Opaque` is `repr(transparent)`).
        #[expect(
            clippy::multiple_unsafe_ops_per_block,
            reason = "container_of! is one operation; its type check names the field through the pointer"
        )]
        let cmd = unsafe {
            kernel::container_of!(node.cast::<Opaque<bindings::llist_node>>(), Cmd<T>, link)
        };
        // SAFETY: `cmd` is the PDU of its request.
        let rq = unsafe { bindings::blk_mq_rq_from_pdu(cmd.cast()) };
        // SAFETY: The request was owned by the list and now by us; we hand it over once.
        Some(unsafe { Rq::from_raw(rq) })
    }
}

impl<T: Operations> Drop for RqIter<T> {
    fn drop(&mut self) {
        let mut lost = 0;
        for rq in self.by_ref() {
            rq.end(BlkStatus::IOERR);
            lost += 1;
        }
        if lost > 0 {
            pr_warn!("rust_loop: {lost} queued requests failed at teardown\n");
        }
    }
}

/// A blk-mq tag set of `T` whose requests carry a [`Cmd<T>`], shaped like loop.c's: stacking,
/// no I/O scheduler by default.
///
/// # Invariants
///
/// `inner` was set up by `blk_mq_alloc_tag_set` with the ops of `T` and is freed on drop.
#[pin_data(PinnedDrop)]
pub(crate) struct TagSet<T: Operations> {
    #[pin]
    inner: Opaque<bindings::blk_mq_tag_set>,
    _p: PhantomData<T>,
}

// SAFETY: The tag set is only used through the block layer's locked interfaces.
unsafe impl<T: Operations> Send for TagSet<T> {}
// SAFETY: As above.
unsafe impl<T: Operations> Sync for TagSet<T> {}

impl<T: Operations> TagSet<T> {
    /// A tag set of `nr_hw_queues` hardware queues of `depth` tags each.
    pub(crate) fn new(nr_hw_queues: u32, depth: u32) -> impl PinInit<Self, Error> {
        // The command is the PDU, placed right after the request.
        const { assert!(core::mem::align_of::<Cmd<T>>() <= core::mem::align_of::<bindings::request>()) };
        let cmd_size = u32::try_from(core::mem::size_of::<Cmd<T>>());
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::blk_mq_tag_set| {
                let mut set: bindings::blk_mq_tag_set = pin_init::zeroed();
                set.ops = &VTable::<T>::OPS;
                set.nr_hw_queues = nr_hw_queues;
                set.nr_maps = 1;
                set.queue_depth = depth;
                set.cmd_size = cmd_size.map_err(|_| EINVAL)?;
                set.numa_node = bindings::NUMA_NO_NODE;
                // Like loop.c: a stacking driver (hctx stays active across CPU hotplug since it
                // depends on another device) and no I/O scheduler by default.
                set.flags = bindings::BLK_MQ_F_STACKING | bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT;
                // SAFETY: `slot` is valid for writes and pinned (the set's lists and locks are
                // initialised in place by the allocation below).
                unsafe { slot.write(set) };
                // SAFETY: `slot` holds a filled-in tag set description.
                to_result(unsafe { bindings::blk_mq_alloc_tag_set(slot) })
            }),
            _p: PhantomData,
        })
    }

    /// The C tag set, for allocating a disk on it.
    pub(crate) fn as_raw(&self) -> *mut bindings::blk_mq_tag_set {
        self.inner.get()
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for TagSet<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Allocated in `new` (type invariant); the disks on it are gone by now (they
        // own the tag set).
        unsafe { bindings::blk_mq_free_tag_set(self.inner.get()) };
    }
}

/// The `blk_mq_ops` of `T`.
struct VTable<T: Operations>(PhantomData<T>);

impl<T: Operations> VTable<T> {
    /// # Safety
    ///
    /// Called by blk-mq as `->queue_rq` of a queue on a `TagSet<T>`, handing over a request
    /// that the driver now owns until it ends it.
    unsafe extern "C" fn queue_rq(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: `bd` is valid for the call.
        let bd = unsafe { &*bd };
        let (rq, last) = (bd.rq, bd.last);
        // SAFETY: blk-mq hands us the request to process; starting it is the driver's job.
        unsafe { bindings::blk_mq_start_request(rq) };
        // SAFETY: `hctx` is valid for the call, and so is its queue.
        let queue = unsafe { (*hctx).queue };
        // SAFETY: The queue's data was set by `NewDisk::add` and lives until `free_disk`.
        let data = unsafe { (*queue).queuedata };
        // SAFETY: As above; the borrow ends with this call.
        let data = unsafe { T::QueueData::borrow(data) };
        // SAFETY: A started request of our tag set, owned by the driver from here on.
        let rq = unsafe { Rq::from_raw(rq) };
        T::queue_rq(data, rq, last);
        bindings::BLK_STS_OK as bindings::blk_status_t
    }

    /// # Safety
    ///
    /// Called by blk-mq as `->commit_rqs` of a queue on a `TagSet<T>`.
    unsafe extern "C" fn commit_rqs(hctx: *mut bindings::blk_mq_hw_ctx) {
        // SAFETY: `hctx` is valid for the call.
        let index = unsafe { (*hctx).queue_num };
        // SAFETY: As in `queue_rq`.
        let queue = unsafe { (*hctx).queue };
        // SAFETY: As in `queue_rq`.
        let data = unsafe { (*queue).queuedata };
        // SAFETY: As in `queue_rq`.
        let data = unsafe { T::QueueData::borrow(data) };
        T::commit_rqs(data, index);
    }

    /// # Safety
    ///
    /// Called by blk-mq as `->init_request` for a request of a `TagSet<T>`, whose PDU is
    /// `cmd_size` (the size of a `Cmd<T>`) uninitialised bytes.
    unsafe extern "C" fn init_request(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: c_uint,
        _numa_node: c_int,
    ) -> c_int {
        // SAFETY: The PDU follows the request.
        let slot = unsafe { bindings::blk_mq_rq_to_pdu(rq) }.cast::<Cmd<T>>();
        // SAFETY: `slot` is valid for writes, suitably aligned (checked in `TagSet::new`), and
        // stays in place until `exit_request`.
        match unsafe { Cmd::<T>::new().__pinned_init(slot) } {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq as `->exit_request` for a request whose `init_request` succeeded.
    unsafe extern "C" fn exit_request(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: c_uint,
    ) {
        // SAFETY: The request is valid; its PDU follows it.
        let cmd = unsafe { bindings::blk_mq_rq_to_pdu(rq) }.cast::<Cmd<T>>();
        // SAFETY: The PDU is an initialised `Cmd<T>`, no longer used.
        unsafe { core::ptr::drop_in_place(cmd) };
    }

    const OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
        commit_rqs: Some(Self::commit_rqs),
        queue_rqs: None,
        get_budget: None,
        put_budget: None,
        set_rq_budget_token: None,
        get_rq_budget_token: None,
        timeout: None,
        poll: None,
        // Requests are ended directly (`Rq::end`), never through `blk_mq_complete_request`.
        complete: None,
        init_hctx: None,
        exit_hctx: None,
        init_request: Some(Self::init_request),
        exit_request: Some(Self::exit_request),
        cleanup_rq: None,
        busy: None,
        map_queues: None,
        #[cfg(CONFIG_BLK_DEBUG_FS)]
        show_rq: None,
    };
}
