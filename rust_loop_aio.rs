// SPDX-License-Identifier: GPL-2.0

//! The raw edge of rust_loop: every use of `kernel::bindings` lives in this file.
//!
//! The 7.2 `kernel` crate gives a blk-mq driver its tag set, `queue_rq` glue and `ARef<Request>`,
//! but nothing a loop device needs beyond that: no gendisk with ioctls, no major 7, no sysfs group,
//! no kiocb, iov_iter or kthread worker, no misc device with a fixed minor. This module wraps each
//! of those in a small type with its invariants written down, so that `rust_loop.rs` (module,
//! device state machine, ioctls, completion policy) is safe Rust.
//!
//! The I/O engine is the seed's design ("block: loop: support DIO & AIO"): `queue_rq` hands each
//! request to a per-device kthread worker through a per-tag [`Cmd`]; the worker either submits an
//! async kiocb with `IOCB_DIRECT` over the request's own bio_vecs (no copy, no page pinning, no
//! double page cache) or runs the buffered read/write loop with a synchronous kiocb.
//!
//! C headers: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h),
//! [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h),
//! [`include/linux/fs.h`](srctree/include/linux/fs.h),
//! [`include/linux/kthread.h`](srctree/include/linux/kthread.h),
//! [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h),
//! [`include/uapi/linux/loop.h`](srctree/include/uapi/linux/loop.h).

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::{Deref, DerefMut},
    pin::Pin,
    ptr::{self, NonNull},
};
use kernel::{
    bindings,
    block::mq::{Request, TagSet},
    error::{from_err_ptr, to_result},
    ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void},
    fs::{File, LocalFile},
    prelude::*,
    str::as_char_ptr_in_const_context,
    sync::{
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
        Arc, ArcBorrow, Mutex, MutexGuard,
    },
    transmute::{AsBytes, FromBytes},
    types::{ForeignOwnable, Opaque},
};

use crate::{LoopDevice, LoopQueue};

/// Hand-written declarations of `include/rust_loop_helpers.c`: non-inline wrappers of the
/// `static inline` kernel functions below, which bindgen cannot see.
// The kernel structs are only passed by pointer; some contain config-dependent empty structs,
// which the lint flags the same way it would in the generated bindings.
#[expect(improper_ctypes)]
mod helpers {
    use kernel::{bindings, ffi::*};

    extern "C" {
        pub(super) fn rust_loop_kiocb_start_write(iocb: *mut bindings::kiocb);
        pub(super) fn rust_loop_kiocb_end_write(iocb: *mut bindings::kiocb);
        pub(super) fn rust_loop_kthread_init_work(
            work: *mut bindings::kthread_work,
            f: unsafe extern "C" fn(*mut bindings::kthread_work),
        );
        pub(super) fn rust_loop_rq_nr_bvec(rq: *mut bindings::request) -> c_uint;
        pub(super) fn rust_loop_rq_copy_bvecs(
            rq: *mut bindings::request,
            out: *mut bindings::bio_vec,
        );
        pub(super) fn rust_loop_rq_first_bvec(
            rq: *mut bindings::request,
            bvec_done: *mut c_uint,
        ) -> *const bindings::bio_vec;
        pub(super) fn rust_loop_rq_zero_fill(rq: *mut bindings::request);
        pub(super) fn rust_loop_rq_ioprio(rq: *mut bindings::request) -> c_ushort;
        pub(super) fn rust_loop_disk_openers(disk: *mut bindings::gendisk) -> c_uint;
        pub(super) fn rust_loop_disk_set_uevent_suppress(disk: *mut bindings::gendisk, val: c_int);
        pub(super) fn rust_loop_freeze_queue(q: *mut bindings::request_queue) -> c_uint;
        pub(super) fn rust_loop_unfreeze_queue(q: *mut bindings::request_queue, memflags: c_uint);
        pub(super) fn rust_loop_limits_start_update(
            q: *mut bindings::request_queue,
            lim: *mut bindings::queue_limits,
        );
        pub(super) fn rust_loop_limits_try_start_update(
            q: *mut bindings::request_queue,
            lim: *mut bindings::queue_limits,
        ) -> bool;
        pub(super) fn rust_loop_limits_cancel_update(q: *mut bindings::request_queue);
        pub(super) fn rust_loop_bdev_logical_block_size(
            bdev: *mut bindings::block_device,
        ) -> c_uint;
        pub(super) fn rust_loop_bdev_rot(bdev: *mut bindings::block_device) -> bool;
        pub(super) fn rust_loop_bdev_write_zeroes_sectors(
            bdev: *mut bindings::block_device,
        ) -> c_uint;
        pub(super) fn rust_loop_bdev_discard_granularity(
            bdev: *mut bindings::block_device,
        ) -> c_uint;
        pub(super) fn rust_loop_i_size_read(inode: *const bindings::inode) -> i64;
        pub(super) fn rust_loop_statfs_bsize(path: *const bindings::path, bsize: *mut u32)
            -> c_int;
        pub(super) fn rust_loop_huge_encode_dev(dev: bindings::dev_t) -> u64;
        pub(super) fn rust_loop_io_flags_save() -> c_uint;
        pub(super) fn rust_loop_io_flags_restore(flags: c_uint);
    }
}

// Constants that are cast macros in C, which bindgen does not emit. Values from Linux 7.2.12.

/// `REQ_OP_MASK` (`include/linux/blk_types.h:331`).
const REQ_OP_MASK: u32 = (1 << bindings::REQ_OP_BITS) - 1;
/// `BLK_STS_NOTSUPP` (`include/linux/blk_types.h:99`).
const BLK_STS_NOTSUPP: u8 = 1;
/// `BLK_STS_IOERR` (`include/linux/blk_types.h:108`).
const BLK_STS_IOERR: u8 = 10;
/// `BLK_OPEN_WRITE` (`include/linux/blkdev.h:134`).
const BLK_OPEN_WRITE: u32 = 1 << 1;
/// `BLK_OPEN_EXCL` (`include/linux/blkdev.h:136`).
const BLK_OPEN_EXCL: u32 = 1 << 2;
/// `BLK_FEAT_WRITE_CACHE` (`include/linux/blkdev.h:317`).
const BLK_FEAT_WRITE_CACHE: u32 = 1 << 0;
/// `FMODE_WRITE` (`include/linux/fs.h:110`).
const FMODE_WRITE: u32 = 1 << 1;
/// `FMODE_CAN_ODIRECT` (`include/linux/fs.h:164`).
const FMODE_CAN_ODIRECT: u32 = 1 << 22;
/// `FALLOC_FL_KEEP_SIZE` (`include/uapi/linux/falloc.h:6`).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
/// `FALLOC_FL_PUNCH_HOLE` (`include/uapi/linux/falloc.h:7`).
pub(crate) const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
/// `FALLOC_FL_ZERO_RANGE` (`include/uapi/linux/falloc.h:44`).
pub(crate) const FALLOC_FL_ZERO_RANGE: i32 = 0x10;
/// `__GFP_IO | __GFP_FS` (`include/linux/gfp_types.h`).
const GFP_IO_FS: bindings::gfp_t = (1 << bindings::___GFP_IO_BIT) | (1 << bindings::___GFP_FS_BIT);
/// "Random number picked from the historic block max_sectors cap" (loop.c).
const LOOP_MAX_HW_SECTORS: u32 = 2560;

/// The user-space ABI of `include/uapi/linux/loop.h`, which no binding header includes.
pub(crate) mod uapi {
    use super::{AsBytes, FromBytes};

    pub(crate) const LO_NAME_SIZE: usize = 64;
    pub(crate) const LO_KEY_SIZE: usize = 32;

    pub(crate) const LO_FLAGS_READ_ONLY: u32 = 1;
    pub(crate) const LO_FLAGS_AUTOCLEAR: u32 = 4;
    pub(crate) const LO_FLAGS_PARTSCAN: u32 = 8;
    pub(crate) const LO_FLAGS_DIRECT_IO: u32 = 16;

    pub(crate) const LO_CRYPT_NONE: u32 = 0;
    pub(crate) const LO_CRYPT_XOR: u32 = 1;
    pub(crate) const LO_CRYPT_CRYPTOAPI: u32 = 18;

    pub(crate) const LOOP_SET_FD: u32 = 0x4C00;
    pub(crate) const LOOP_CLR_FD: u32 = 0x4C01;
    pub(crate) const LOOP_SET_STATUS: u32 = 0x4C02;
    pub(crate) const LOOP_GET_STATUS: u32 = 0x4C03;
    pub(crate) const LOOP_SET_STATUS64: u32 = 0x4C04;
    pub(crate) const LOOP_GET_STATUS64: u32 = 0x4C05;
    pub(crate) const LOOP_CHANGE_FD: u32 = 0x4C06;
    pub(crate) const LOOP_SET_CAPACITY: u32 = 0x4C07;
    pub(crate) const LOOP_SET_DIRECT_IO: u32 = 0x4C08;
    pub(crate) const LOOP_SET_BLOCK_SIZE: u32 = 0x4C09;
    pub(crate) const LOOP_CONFIGURE: u32 = 0x4C0A;

    pub(crate) const LOOP_CTL_ADD: u32 = 0x4C80;
    pub(crate) const LOOP_CTL_REMOVE: u32 = 0x4C81;
    pub(crate) const LOOP_CTL_GET_FREE: u32 = 0x4C82;

    /// `struct loop_info64`: 232 bytes, no padding.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(crate) struct LoopInfo64 {
        pub(crate) lo_device: u64,
        pub(crate) lo_inode: u64,
        pub(crate) lo_rdevice: u64,
        pub(crate) lo_offset: u64,
        pub(crate) lo_sizelimit: u64,
        pub(crate) lo_number: u32,
        pub(crate) lo_encrypt_type: u32,
        pub(crate) lo_encrypt_key_size: u32,
        pub(crate) lo_flags: u32,
        pub(crate) lo_file_name: [u8; LO_NAME_SIZE],
        pub(crate) lo_crypt_name: [u8; LO_NAME_SIZE],
        pub(crate) lo_encrypt_key: [u8; LO_KEY_SIZE],
        pub(crate) lo_init: [u64; 2],
    }

    /// `struct loop_config`: 304 bytes, no padding. `__reserved` is not checked (as loop.c).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(crate) struct LoopConfig {
        pub(crate) fd: u32,
        pub(crate) block_size: u32,
        pub(crate) info: LoopInfo64,
        pub(crate) reserved: [u64; 8],
    }

    /// `struct loop_info` of the legacy LOOP_{GET,SET}_STATUS as laid out on x86-64, where
    /// `__kernel_old_dev_t` is `unsigned long`. The padding C leaves after `lo_number` and
    /// `reserved` is spelled out so that every byte is initialised.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(crate) struct LoopInfo {
        pub(crate) lo_number: i32,
        pub(crate) pad0: [u8; 4],
        pub(crate) lo_device: u64,
        pub(crate) lo_inode: u64,
        pub(crate) lo_rdevice: u64,
        pub(crate) lo_offset: i32,
        pub(crate) lo_encrypt_type: i32,
        pub(crate) lo_encrypt_key_size: i32,
        pub(crate) lo_flags: i32,
        pub(crate) lo_name: [u8; LO_NAME_SIZE],
        pub(crate) lo_encrypt_key: [u8; LO_KEY_SIZE],
        pub(crate) lo_init: [u64; 2],
        pub(crate) reserved: [u8; 4],
        pub(crate) pad1: [u8; 4],
    }

    const _: () = assert!(core::mem::size_of::<LoopInfo64>() == 232);
    const _: () = assert!(core::mem::size_of::<LoopConfig>() == 304);
    const _: () = assert!(core::mem::size_of::<LoopInfo>() == 168);

    // SAFETY: `LoopInfo64` is `repr(C)` of integers and byte arrays with no padding (the size
    // assertion above), so every bit pattern is valid and every byte is initialised.
    unsafe impl FromBytes for LoopInfo64 {}
    // SAFETY: As above.
    unsafe impl AsBytes for LoopInfo64 {}
    // SAFETY: `LoopConfig` is `repr(C)` of integers and a `LoopInfo64`, with no padding.
    unsafe impl FromBytes for LoopConfig {}
    // SAFETY: `LoopInfo` is `repr(C)` of integers and byte arrays with explicit padding fields, so
    // it has no implicit padding and every bit pattern is valid.
    unsafe impl FromBytes for LoopInfo {}
    // SAFETY: As above.
    unsafe impl AsBytes for LoopInfo {}

    impl LoopInfo64 {
        /// An all-zero `loop_info64`.
        pub(crate) const fn zeroed() -> Self {
            Self {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: 0,
                lo_file_name: [0; LO_NAME_SIZE],
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; LO_KEY_SIZE],
                lo_init: [0; 2],
            }
        }
    }

    impl LoopInfo {
        /// An all-zero `loop_info`.
        pub(crate) const fn zeroed() -> Self {
            Self {
                lo_number: 0,
                pad0: [0; 4],
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: 0,
                lo_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; LO_KEY_SIZE],
                lo_init: [0; 2],
                reserved: [0; 4],
                pad1: [0; 4],
            }
        }
    }
}

/// A raw pointer to `struct module` of this module, for the C tables' `owner` fields.
fn this_module() -> *mut bindings::module {
    crate::THIS_MODULE.as_ptr()
}

/// Whether the caller has `CAP_SYS_ADMIN`.
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}

/// The mode a block device was opened with (`blk_mode_t`).
#[derive(Clone, Copy)]
pub(crate) struct OpenMode(u32);

impl OpenMode {
    /// Opened for writing (`BLK_OPEN_WRITE`).
    pub(crate) fn write(self) -> bool {
        self.0 & BLK_OPEN_WRITE != 0
    }

    /// Opened exclusively (`BLK_OPEN_EXCL`).
    pub(crate) fn exclusive(self) -> bool {
        self.0 & BLK_OPEN_EXCL != 0
    }
}

/// A held reference on this module: bound devices keep the module loaded, as in loop.c.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference. Only called from an ioctl, whose open file already pins the module.
    pub(crate) fn get() -> Self {
        // SAFETY: The module is live (we run its code from an open file), so `__module_get`, which
        // needs an already-positive refcount, is allowed.
        unsafe { bindings::__module_get(this_module()) };
        Self(())
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: Paired with the `__module_get` in `ModuleRef::get`.
        unsafe { bindings::module_put(this_module()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// The operation of a request, decoded from `cmd_flags`.
#[derive(Clone, Copy, PartialEq, Eq)]
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
    /// Whether the operation modifies the device (`op_is_write`).
    pub(crate) fn is_write(self) -> bool {
        !matches!(self, ReqOp::Read | ReqOp::Other(_))
    }
}

/// A block-layer completion status (`blk_status_t`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlkStatus(u8);

impl BlkStatus {
    pub(crate) const OK: Self = Self(bindings::BLK_STS_OK as u8);
    pub(crate) const IOERR: Self = Self(BLK_STS_IOERR);
    pub(crate) const NOTSUPP: Self = Self(BLK_STS_NOTSUPP);

    /// The status the block layer uses for `err` (`errno_to_blk_status`).
    pub(crate) fn from_error(err: Error) -> Self {
        // SAFETY: `errno_to_blk_status` is a pure table lookup.
        Self(unsafe { bindings::errno_to_blk_status(err.to_errno()) })
    }
}

fn rq_ptr(rq: &Request<LoopQueue>) -> *mut bindings::request {
    // `Request` is `repr(transparent)` over `Opaque<bindings::request>`.
    ptr::from_ref(rq).cast_mut().cast()
}

/// What the I/O path needs to know about a request.
#[derive(Clone, Copy)]
pub(crate) struct RqInfo {
    pub(crate) op: ReqOp,
    /// First sector (`blk_rq_pos`).
    pub(crate) sector: u64,
    /// Length in bytes (`blk_rq_bytes`).
    pub(crate) bytes: u32,
}

/// Reads the position, length and operation of a request the driver owns.
pub(crate) fn rq_info(rq: &ARef<Request<LoopQueue>>) -> RqInfo {
    let p = rq_ptr(rq);
    // SAFETY: An `ARef<Request>` exists only while the driver owns the started request, during
    // which the block layer does not change these fields.
    let (flags, sector, bytes) = unsafe { ((*p).cmd_flags, (*p).__sector, (*p).__data_len) };
    let op = match flags & REQ_OP_MASK {
        bindings::req_op_REQ_OP_READ => ReqOp::Read,
        bindings::req_op_REQ_OP_WRITE => ReqOp::Write,
        bindings::req_op_REQ_OP_FLUSH => ReqOp::Flush,
        bindings::req_op_REQ_OP_DISCARD => ReqOp::Discard,
        bindings::req_op_REQ_OP_WRITE_ZEROES => ReqOp::WriteZeroes {
            unmap: flags & (1 << bindings::req_flag_bits___REQ_NOUNMAP) == 0,
        },
        other => ReqOp::Other(other),
    };
    RqInfo { op, sector, bytes }
}

fn rq_tag(rq: &ARef<Request<LoopQueue>>) -> usize {
    // SAFETY: As in `rq_info`; `tag` is the driver tag assigned at dispatch.
    let tag = unsafe { (*rq_ptr(rq)).tag };
    usize::try_from(tag).unwrap_or(usize::MAX)
}

/// Ends a request with `status`, handing it back to the block layer.
pub(crate) fn end_request(rq: ARef<Request<LoopQueue>>, status: BlkStatus) {
    let p = ARef::into_raw(rq).as_ptr().cast::<bindings::request>();
    // SAFETY: The driver owned the started request through its only `ARef`, which was consumed
    // above, so nobody touches it afterwards. The abstraction's hidden refcount stays at 2, which
    // is harmless: `queue_rq` resets it on every dispatch and 7.2 has no `tag_to_rq`.
    unsafe { bindings::blk_mq_end_request(p, status.0) };
}

/// Completes the first `bytes` of a request successfully; the request stays with the driver.
pub(crate) fn update_request(rq: &ARef<Request<LoopQueue>>, bytes: u32) {
    // SAFETY: The driver owns the request and `bytes` does not exceed what is left of it, so
    // `blk_update_request` returns true (the request still has data) and does not free it.
    unsafe { bindings::blk_update_request(rq_ptr(rq), BlkStatus::OK.0, bytes) };
}

/// Puts a (partially completed) request back on the queue to be dispatched again.
pub(crate) fn requeue_request(rq: ARef<Request<LoopQueue>>) {
    let p = ARef::into_raw(rq).as_ptr().cast::<bindings::request>();
    // SAFETY: As in `end_request`: ownership goes back to the block layer, which dispatches the
    // request again later (with a fresh `ARef`).
    unsafe { bindings::blk_mq_requeue_request(p, true) };
}

/// Zeroes the data that is left in every bio of a read request (`zero_fill_bio`).
pub(crate) fn zero_fill_request(rq: &ARef<Request<LoopQueue>>) {
    // SAFETY: The driver owns the request, so its bios and their pages are ours to fill.
    unsafe { helpers::rust_loop_rq_zero_fill(rq_ptr(rq)) };
}

/// Drops `REQ_NOWAIT`: the worker may block ("We can block in this context", loop.c).
pub(crate) fn clear_nowait(rq: &ARef<Request<LoopQueue>>) {
    let p = rq_ptr(rq);
    // SAFETY: The driver owns the request; only the driver reads `cmd_flags` while it does.
    unsafe { (*p).cmd_flags &= !(1u32 << bindings::req_flag_bits___REQ_NOWAIT) };
}

// ---------------------------------------------------------------------------------------------
// The backing file.

/// A file a loop device reads and writes through.
///
/// # Invariants
///
/// `file` is a file with a mapping and an inode (any file `fget` returns).
#[derive(Clone)]
pub(crate) struct BackingFile {
    file: ARef<File>,
}

/// The identity of a file as `LOOP_GET_STATUS64` reports it.
pub(crate) struct FileIdentity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) rdev: u64,
}

impl BackingFile {
    /// Takes a reference to the file behind `fd` of the calling process (`EBADF` if none).
    pub(crate) fn fget(fd: u32) -> Result<Self> {
        let file = LocalFile::fget(fd)?;
        // SAFETY: We are in an ioctl on a block device, not in a read/write of `fd`, so no
        // `fdget_pos` is active on this thread.
        let file = unsafe { LocalFile::assume_no_fdget_pos(file) };
        Ok(Self { file })
    }

    fn raw(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    /// `file->f_mapping->host`, the inode loop.c looks at.
    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: By the type invariant the file has a mapping with a host inode, both live as
        // long as the file.
        unsafe { (*(*self.raw()).f_mapping).host }
    }

    fn mode_bits(&self) -> u32 {
        // SAFETY: The inode is valid (see `inode`); `i_mode` does not change for an open file.
        u32::from(unsafe { (*self.inode()).i_mode })
    }

    fn f_mode(&self) -> u32 {
        // SAFETY: `f_mode` is set at open and only gains flags that do not concern us.
        unsafe { (*self.raw()).f_mode }
    }

    fn fops(&self) -> &bindings::file_operations {
        // SAFETY: An open file always has `f_op`, a static table that outlives it.
        unsafe { &*(*self.raw()).f_op }
    }

    /// Whether this is a block device.
    pub(crate) fn is_block_device(&self) -> bool {
        self.mode_bits() & bindings::S_IFMT == bindings::S_IFBLK
    }

    /// Whether this is a regular file.
    pub(crate) fn is_regular(&self) -> bool {
        self.mode_bits() & bindings::S_IFMT == bindings::S_IFREG
    }

    /// Whether the file can serve as a backing file at all (`loop_check_backing_file`).
    pub(crate) fn check_ops(&self) -> Result {
        let fops = self.fops();
        if fops.read_iter.is_none() || (self.writable() && fops.write_iter.is_none()) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Opened for writing.
    pub(crate) fn writable(&self) -> bool {
        self.f_mode() & FMODE_WRITE != 0
    }

    /// The file system can write it at all (`->write_iter`).
    pub(crate) fn has_write_iter(&self) -> bool {
        self.fops().write_iter.is_some()
    }

    /// The file supports `O_DIRECT` (`FMODE_CAN_ODIRECT`).
    pub(crate) fn can_direct_io(&self) -> bool {
        self.f_mode() & FMODE_CAN_ODIRECT != 0
    }

    /// The file was opened with `O_DIRECT`.
    pub(crate) fn opened_direct(&self) -> bool {
        self.file.flags() & bindings::O_DIRECT != 0
    }

    /// The file system can flush it (`->fsync`), so the device advertises a write cache.
    pub(crate) fn has_fsync(&self) -> bool {
        self.fops().fsync.is_some()
    }

    /// The size in bytes: `i_size` for a block device, a fresh `getattr` for a file (which
    /// network file systems need), 0 if that fails (as `lo_calculate_size`).
    pub(crate) fn size(&self) -> i64 {
        if self.is_block_device() {
            // SAFETY: The inode is valid; `i_size_read` handles concurrent updates.
            return unsafe { helpers::rust_loop_i_size_read(self.inode()) };
        }
        let mut stat = pin_init::zeroed::<bindings::kstat>();
        // SAFETY: `f_path` of an open file is valid; `stat` is a writable `kstat`.
        let ret = unsafe {
            bindings::vfs_getattr_nosec(
                &(*self.raw()).__bindgen_anon_1.f_path,
                &mut stat,
                bindings::STATX_SIZE,
                0,
            )
        };
        if ret != 0 {
            return 0;
        }
        stat.size
    }

    /// The smallest direct-I/O alignment of the file (`loop_query_min_dio_size`): the file
    /// system's `STATX_DIOALIGN` if it reports one, else the logical block size of its device,
    /// else 512.
    pub(crate) fn min_dio_size(&self) -> u32 {
        let mut stat = pin_init::zeroed::<bindings::kstat>();
        // SAFETY: As in `size`.
        let ret = unsafe {
            bindings::vfs_getattr(
                &(*self.raw()).__bindgen_anon_1.f_path,
                &mut stat,
                bindings::STATX_DIOALIGN,
                0,
            )
        };
        if ret == 0 && stat.result_mask & bindings::STATX_DIOALIGN != 0 {
            return stat.dio_offset_align;
        }
        // SAFETY: The inode is valid and so is its super block; `s_bdev` may be null.
        let sb_bdev = unsafe { (*(*self.inode()).i_sb).s_bdev };
        if sb_bdev.is_null() {
            return 512;
        }
        // SAFETY: A mounted file system's `s_bdev` lives as long as the super block.
        unsafe { helpers::rust_loop_bdev_logical_block_size(sb_bdev) }
    }

    /// Writes back and waits for the file's dirty data and metadata (`vfs_fsync`).
    pub(crate) fn fsync(&self) -> Result {
        // SAFETY: The file is open.
        to_result(unsafe { bindings::vfs_fsync(self.raw(), 0) })
    }

    /// Calls the file system's `->fallocate` directly, as loop.c does (`EOPNOTSUPP` without one).
    pub(crate) fn fallocate(&self, mode: i32, pos: u64, len: u64) -> Result {
        let Some(fallocate) = self.fops().fallocate else {
            return Err(Error::from_errno(-(bindings::EOPNOTSUPP as i32)));
        };
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let len = i64::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The file is open and `fallocate` is its file system's method.
        let ret = unsafe { fallocate(self.raw(), mode | FALLOC_FL_KEEP_SIZE, pos, len) };
        to_result(c_int::try_from(ret).unwrap_or(-(bindings::EIO as c_int)))
    }

    /// The device, inode and represented device of the file (`vfs_getattr(STATX_INO)`).
    pub(crate) fn identity(&self) -> Result<FileIdentity> {
        let mut stat = pin_init::zeroed::<bindings::kstat>();
        // SAFETY: As in `size`.
        to_result(unsafe {
            bindings::vfs_getattr(
                &(*self.raw()).__bindgen_anon_1.f_path,
                &mut stat,
                bindings::STATX_INO,
                bindings::AT_STATX_SYNC_AS_STAT,
            )
        })?;
        // SAFETY: `huge_encode_dev` is arithmetic.
        let (dev, rdev) = unsafe {
            (
                helpers::rust_loop_huge_encode_dev(stat.dev),
                helpers::rust_loop_huge_encode_dev(stat.rdev),
            )
        };
        Ok(FileIdentity {
            dev,
            ino: stat.ino,
            rdev,
        })
    }

    /// Writes the file's path plus a newline into `buf` (sysfs `loop/backing_file`) and returns
    /// the length written.
    pub(crate) fn write_path(&self, buf: &mut [u8]) -> Result<usize> {
        let cap = c_int::try_from(buf.len().saturating_sub(1)).map_err(|_| EINVAL)?;
        // SAFETY: `buf` is writable for `cap` bytes; `file_path` writes the path at the end of it
        // and returns a pointer into it, or an error pointer.
        let p = unsafe { bindings::file_path(self.raw(), buf.as_mut_ptr().cast(), cap) };
        let p = from_err_ptr(p)?;
        // The path is a NUL-terminated string inside `buf`, starting at `p`.
        let start = (p as usize).wrapping_sub(buf.as_ptr() as usize);
        let len = buf
            .get(start..)
            .and_then(|path| path.iter().position(|&b| b == 0))
            .ok_or(EINVAL)?;
        buf.copy_within(start..start + len, 0);
        *buf.get_mut(len).ok_or(EINVAL)? = b'\n';
        Ok(len + 1)
    }

    /// The block device under the file: the file itself if it is one, else the device of its
    /// file system, if any.
    fn backing_bdev(&self) -> Option<NonNull<bindings::block_device>> {
        if self.is_block_device() {
            // SAFETY: The inode of a block device file is a bdev inode.
            return NonNull::new(unsafe { bindings::I_BDEV(self.inode()) });
        }
        // SAFETY: The inode and its super block are valid.
        NonNull::new(unsafe { (*(*self.inode()).i_sb).s_bdev })
    }

    /// Whether the storage under the file rotates (the loop device's `rotational`).
    pub(crate) fn rotational(&self) -> bool {
        self.backing_bdev()
            // SAFETY: The bdev lives as long as the file (or its file system).
            .is_some_and(|b| unsafe { helpers::rust_loop_bdev_rot(b.as_ptr()) })
    }

    /// Discard limits for the loop device (`loop_get_discard_config`): `(granularity,
    /// max_discard_sectors)`. A block device's zeroing capability is mirrored, because loop
    /// discards are zeroouts there; a file with `->fallocate` can punch holes anywhere.
    pub(crate) fn discard_config(&self) -> (u32, u32) {
        if self.is_block_device() {
            // SAFETY: The inode of a block device file is a bdev inode.
            let bdev = unsafe { bindings::I_BDEV(self.inode()) };
            // SAFETY: The bdev is live while the file is open.
            return unsafe {
                (
                    helpers::rust_loop_bdev_discard_granularity(bdev),
                    helpers::rust_loop_bdev_write_zeroes_sectors(bdev),
                )
            };
        }
        if self.fops().fallocate.is_none() {
            return (0, 0);
        }
        let mut bsize = 0u32;
        // SAFETY: `f_path` is valid; `bsize` is writable.
        if unsafe {
            helpers::rust_loop_statfs_bsize(&(*self.raw()).__bindgen_anon_1.f_path, &mut bsize)
        } != 0
        {
            return (0, 0);
        }
        (bsize, u32::MAX >> 9)
    }

    /// If the file is a loop device of this driver, its number and device.
    ///
    /// The returned borrow is valid while `self` is, because an open block device file keeps
    /// its gendisk (and so the gendisk's reference on the [`LoopDevice`]) alive.
    pub(crate) fn as_loop_device(&self) -> Option<(u32, ArcBorrow<'_, LoopDevice>)> {
        if !self.is_block_device() {
            return None;
        }
        let inode = self.inode();
        // SAFETY: The inode is valid; `i_rdev` is fixed for a device inode.
        let rdev = unsafe { (*inode).i_rdev };
        if rdev >> bindings::MINORBITS != bindings::LOOP_MAJOR {
            return None;
        }
        // SAFETY: A block device inode belongs to a bdev whose `bd_disk` is set while it is open.
        let disk = unsafe { (*bindings::I_BDEV(inode)).bd_disk };
        // SAFETY: `disk` is a live gendisk; only our disks use `LO_FOPS`.
        if disk.is_null() || unsafe { (*disk).fops } != ptr::from_ref(&LO_FOPS.0) {
            return None;
        }
        // SAFETY: Our disks' `private_data` is an `Arc<LoopDevice>` foreign pointer that is only
        // released in `lo_free_disk`, after the last reference to the disk (this file holds one).
        let dev = unsafe { <Arc<LoopDevice> as ForeignOwnable>::borrow((*disk).private_data) };
        Some((rdev, dev))
    }

    /// Binds the file to a device: masks `__GFP_IO | __GFP_FS` out of its page cache
    /// allocations to avoid reclaim recursion through the loop device, until unbound.
    pub(crate) fn bind(self) -> BoundFile {
        // SAFETY: The mapping is valid while the file is open; loop.c changes its gfp mask the
        // same way, without locks.
        let old_gfp = unsafe {
            let mapping = (*self.raw()).f_mapping;
            let old = (*mapping).gfp_mask;
            (*mapping).gfp_mask = old & !GFP_IO_FS;
            old
        };
        BoundFile {
            file: self,
            old_gfp,
        }
    }
}

/// A backing file bound to a device; dropping it restores the page-cache gfp mask.
///
/// Dropping one can drop the last reference to the file, which may take a block device's
/// `open_mutex`: never drop it while holding the device mutex (see `__loop_clr_fd`).
pub(crate) struct BoundFile {
    file: BackingFile,
    old_gfp: bindings::gfp_t,
}

impl Deref for BoundFile {
    type Target = BackingFile;
    fn deref(&self) -> &BackingFile {
        &self.file
    }
}

impl Drop for BoundFile {
    fn drop(&mut self) {
        // SAFETY: The mapping is valid while the file is open (we still hold it).
        unsafe { (*(*self.file.raw()).f_mapping).gfp_mask = self.old_gfp };
    }
}

// ---------------------------------------------------------------------------------------------
// Gendisk, queue and the block device behind an ioctl.

/// Queue limits rust_loop sets (`loop_update_limits`).
pub(crate) struct LoopLimits {
    pub(crate) block_size: u32,
    pub(crate) write_cache: bool,
    pub(crate) rotational: bool,
    pub(crate) max_discard_sectors: u32,
    pub(crate) discard_granularity: u32,
}

/// A handle to a loop device's gendisk.
///
/// # Invariants
///
/// `disk` points to a gendisk allocated by [`NewDisk::alloc`] that stays allocated while the
/// [`LoopDevice`] holding this handle lives: the device is freed from the gendisk's `free_disk`
/// (or, if the disk was never added, before the allocation is put).
#[derive(Clone, Copy)]
pub(crate) struct DiskRef {
    disk: NonNull<bindings::gendisk>,
}

// SAFETY: The gendisk functions called through a `DiskRef` take their own locks.
unsafe impl Send for DiskRef {}
// SAFETY: As above.
unsafe impl Sync for DiskRef {}

impl DiskRef {
    fn raw(&self) -> *mut bindings::gendisk {
        self.disk.as_ptr()
    }

    fn queue(&self) -> *mut bindings::request_queue {
        // SAFETY: By the type invariant the gendisk is valid; `queue` is set at allocation.
        unsafe { (*self.raw()).queue }
    }

    fn kobj(&self) -> *mut bindings::kobject {
        // SAFETY: `part0` is set at allocation; `disk_to_dev(disk)` is `&part0->bd_device`.
        unsafe { &raw mut (*(*self.raw()).part0).bd_device.kobj }
    }

    /// Sets the capacity and tells user space: a `RESIZE=1` change event between two non-zero
    /// sizes, a plain change event otherwise (`loop_set_size`).
    pub(crate) fn set_size(&self, sectors: u64) {
        // SAFETY: The gendisk is valid; both calls take the locks they need.
        unsafe {
            if !bindings::set_capacity_and_notify(self.raw(), sectors) {
                bindings::kobject_uevent(self.kobj(), bindings::kobject_action_KOBJ_CHANGE);
            }
        }
    }

    /// Sends a change uevent for the disk.
    pub(crate) fn uevent_change(&self) {
        // SAFETY: The gendisk's device is registered while the disk is added.
        unsafe { bindings::kobject_uevent(self.kobj(), bindings::kobject_action_KOBJ_CHANGE) };
    }

    /// Suppresses (or resumes) the disk's uevents while it is reconfigured.
    pub(crate) fn suppress_uevents(&self, suppress: bool) {
        // SAFETY: The gendisk is valid.
        unsafe { helpers::rust_loop_disk_set_uevent_suppress(self.raw(), c_int::from(suppress)) };
    }

    /// Reports a media change: new disk sequence number, dead bdev for old openers.
    pub(crate) fn force_media_change(&self) {
        // SAFETY: The gendisk is valid.
        unsafe { bindings::disk_force_media_change(self.raw()) };
    }

    /// Sets the disk read-only or read-write.
    pub(crate) fn set_read_only(&self, ro: bool) {
        // SAFETY: The gendisk is valid.
        unsafe { bindings::set_disk_ro(self.raw(), ro) };
    }

    /// How many times the whole disk is open.
    pub(crate) fn openers(&self) -> u32 {
        // SAFETY: The gendisk is valid.
        unsafe { helpers::rust_loop_disk_openers(self.raw()) }
    }

    /// The current logical block size.
    pub(crate) fn logical_block_size(&self) -> u32 {
        // SAFETY: The queue is valid; the limits are read racily, as `queue_logical_block_size`.
        unsafe { (*self.queue()).limits.logical_block_size }
    }

    /// The current maximum discard size in sectors (0: discard is off).
    pub(crate) fn max_discard_sectors(&self) -> u32 {
        // SAFETY: As in `logical_block_size`.
        unsafe { (*self.queue()).limits.max_discard_sectors }
    }

    /// Starts an update of the queue limits: takes the queue's `limits_lock` and copies the
    /// limits. The block layer orders `limits_lock` before freezing the queue (as loop.c does:
    /// start, freeze, commit), so a caller that freezes starts the update first.
    fn start_update(&self) -> LimitsUpdate {
        let mut lim = pin_init::zeroed::<bindings::queue_limits>();
        // SAFETY: The queue is valid; this takes `limits_lock` and copies the limits into `lim`.
        unsafe { helpers::rust_loop_limits_start_update(self.queue(), &mut lim) };
        // INVARIANT: We just took `limits_lock`.
        LimitsUpdate { disk: *self, lim }
    }

    fn update_limits(&self, f: impl FnOnce(&mut bindings::queue_limits)) -> Result {
        let mut update = self.start_update();
        f(&mut update.lim);
        update.commit()
    }

    /// Starts setting a loop device's limits; [`LimitsUpdate::commit`] applies them (`EINVAL`
    /// for an invalid block size).
    pub(crate) fn start_limits(&self, l: &LoopLimits) -> LimitsUpdate {
        let mut update = self.start_update();
        apply_loop_limits(&mut update.lim, l);
        update
    }

    /// Applies a loop device's limits (`EINVAL` for an invalid block size).
    pub(crate) fn set_limits(&self, l: &LoopLimits) -> Result {
        self.start_limits(l).commit()
    }

    /// Resets the block size to 512 at detach (the only limits loop.c resets).
    pub(crate) fn reset_block_size(&self) {
        let _ = self.update_limits(|lim| {
            lim.logical_block_size = 512;
            lim.physical_block_size = 512;
            lim.io_min = 512;
        });
    }

    /// Turns off discard (`punch`) and/or write-zeroes (`zero_range`) after the backing file
    /// system said `EOPNOTSUPP`, so the error is logged once (`loop_clear_limits`). Like loop.c
    /// this runs from the I/O path, without freezing the queue. Unlike loop.c it does not wait
    /// for `limits_lock`: its holder may be freezing the queue (LOOP_SET_BLOCK_SIZE), waiting
    /// for the very request being handled here. If the lock is taken, the limits stay and the
    /// next such error tries again.
    pub(crate) fn clear_discard_limits(&self, punch: bool, zero_range: bool) {
        let mut lim = pin_init::zeroed::<bindings::queue_limits>();
        // SAFETY: The queue is valid; on success this holds `limits_lock` with `lim` a copy.
        if !unsafe { helpers::rust_loop_limits_try_start_update(self.queue(), &mut lim) } {
            return;
        }
        // INVARIANT: `limits_lock` is held.
        let mut update = LimitsUpdate { disk: *self, lim };
        if zero_range {
            update.lim.max_write_zeroes_sectors = 0;
        }
        if punch {
            update.lim.max_hw_discard_sectors = 0;
            update.lim.discard_granularity = 0;
        }
        let _ = update.commit();
    }

    /// Freezes the queue: returns once no request is in flight, and keeps new ones out until
    /// the guard is dropped.
    fn freeze(&self) -> Frozen {
        // SAFETY: The queue is valid; freezing may sleep, which our callers allow.
        let memflags = unsafe { helpers::rust_loop_freeze_queue(self.queue()) };
        Frozen {
            disk: *self,
            memflags,
        }
    }

    /// Enables or disables the kernel's partition scan for the disk (`GD_SUPPRESS_PART_SCAN`).
    pub(crate) fn set_partscan(&self, enabled: bool) {
        // SAFETY: `state` is a bitmap of the live gendisk; the bit ops are atomic.
        unsafe {
            let state = &raw mut (*self.raw()).state;
            if enabled {
                bindings::clear_bit(bindings::GD_SUPPRESS_PART_SCAN as c_ulong, state);
            } else {
                bindings::set_bit(bindings::GD_SUPPRESS_PART_SCAN as c_ulong, state);
            }
        }
    }

    /// Rescans the partition table (`loop_reread_partitions`); takes `open_mutex`.
    pub(crate) fn reread_partitions(&self) -> Result {
        // SAFETY: The gendisk is valid; `bdev_disk_changed` requires `open_mutex`, taken here.
        unsafe {
            let m = &raw mut (*self.raw()).open_mutex;
            bindings::mutex_lock(m);
            let ret = bindings::bdev_disk_changed(self.raw(), false);
            bindings::mutex_unlock(m);
            to_result(ret)
        }
    }

    /// Drops every partition, BLKPG-added ones included. Only for `release`, which runs with
    /// `open_mutex` held.
    pub(crate) fn drop_partitions_in_release(&self) -> Result {
        // SAFETY: The caller runs in the disk's `->release`, which holds `open_mutex`.
        to_result(unsafe { bindings::bdev_disk_changed(self.raw(), false) })
    }

    /// Sets the capacity to 0 and drops the page cache (`invalidate_disk`).
    pub(crate) fn invalidate(&self) {
        // SAFETY: The gendisk is valid.
        unsafe { bindings::invalidate_disk(self.raw()) };
    }

    /// Writes back and drops the whole-disk page cache before the mapping changes.
    pub(crate) fn sync_and_invalidate(&self) {
        // SAFETY: `part0` is the whole-disk bdev of the live gendisk.
        unsafe {
            let bdev = (*self.raw()).part0;
            bindings::sync_blockdev(bdev);
            bindings::invalidate_bdev(bdev);
        }
    }

    /// Creates the `loop/` sysfs group; false if that failed (then there is nothing to remove).
    pub(crate) fn add_sysfs_group(&self) -> bool {
        // SAFETY: The disk's device is registered; the group is a static.
        unsafe { bindings::sysfs_create_group(self.kobj(), &LOOP_ATTR_GROUP.0) == 0 }
    }

    /// Removes the `loop/` sysfs group. Waits for readers: never call with the device mutex held
    /// (the attributes take it).
    pub(crate) fn remove_sysfs_group(&self) {
        // SAFETY: The group was created by `add_sysfs_group`.
        unsafe { bindings::sysfs_remove_group(self.kobj(), &LOOP_ATTR_GROUP.0) };
    }
}

/// A frozen queue; unfreezes on drop.
struct Frozen {
    disk: DiskRef,
    memflags: c_uint,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: Paired with the freeze in `DiskRef::freeze`.
        unsafe { helpers::rust_loop_unfreeze_queue(self.disk.queue(), self.memflags) };
    }
}

/// An update of a queue's limits in progress; dropping it without [`LimitsUpdate::commit`]
/// cancels it.
///
/// # Invariants
///
/// The queue's `limits_lock` is held by this value, and `lim` started as a copy of its limits.
pub(crate) struct LimitsUpdate {
    disk: DiskRef,
    lim: bindings::queue_limits,
}

impl LimitsUpdate {
    /// Validates and applies the new limits, releasing `limits_lock`.
    pub(crate) fn commit(self) -> Result {
        let mut this = core::mem::ManuallyDrop::new(self);
        // SAFETY: By the type invariant `limits_lock` is held; this validates, applies and
        // unlocks, so `drop` must not run (`ManuallyDrop`).
        to_result(unsafe { bindings::queue_limits_commit_update(this.disk.queue(), &mut this.lim) })
    }
}

impl Drop for LimitsUpdate {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `limits_lock` is held, and the update was not committed.
        unsafe { helpers::rust_loop_limits_cancel_update(self.disk.queue()) };
    }
}

fn apply_loop_limits(lim: &mut bindings::queue_limits, l: &LoopLimits) {
    lim.logical_block_size = l.block_size;
    lim.physical_block_size = l.block_size;
    lim.io_min = l.block_size;
    lim.features &= !(BLK_FEAT_WRITE_CACHE | bindings::BLK_FEAT_ROTATIONAL);
    if l.write_cache {
        lim.features |= BLK_FEAT_WRITE_CACHE;
    }
    if l.rotational {
        lim.features |= bindings::BLK_FEAT_ROTATIONAL;
    }
    lim.max_hw_discard_sectors = l.max_discard_sectors;
    lim.max_write_zeroes_sectors = l.max_discard_sectors;
    lim.discard_granularity = if l.max_discard_sectors != 0 {
        l.discard_granularity
    } else {
        0
    };
}

/// An allocated gendisk that is not added yet; dropping it frees it.
///
/// # Invariants
///
/// `disk` is a gendisk from `__blk_mq_alloc_disk` on `tagset`, not added, owned by this value.
pub(crate) struct NewDisk {
    disk: NonNull<bindings::gendisk>,
    tagset: Arc<TagSet<LoopQueue>>,
}

impl NewDisk {
    /// Allocates the tag set and gendisk of a loop device with `depth` tags.
    pub(crate) fn alloc(depth: u32) -> Result<Self> {
        let tagset = Arc::pin_init(TagSet::new(1, depth, 1), GFP_KERNEL)?;
        let set = ptr::from_ref(&*tagset)
            .cast_mut()
            .cast::<bindings::blk_mq_tag_set>();
        // Like loop.c: a stacking driver (hctx stays active across CPU hotplug since it depends
        // on another device) and no I/O scheduler by default. 7.2's `TagSet::new` hard-codes
        // flags 0, and neither flag matters before a queue is created on the set.
        //
        // SAFETY: `TagSet` is `repr(transparent)` over `Opaque<blk_mq_tag_set>`; the set was
        // just allocated and no queue uses it yet.
        unsafe {
            (*set).flags |= bindings::BLK_MQ_F_STACKING | bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT
        };
        let mut lim = pin_init::zeroed::<bindings::queue_limits>();
        lim.max_hw_sectors = LOOP_MAX_HW_SECTORS;
        // SAFETY: `set` is an allocated tag set and `lim` valid limits; the queue data is set
        // in `add` before anything can reach the queue.
        let disk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(
                set,
                &mut lim,
                ptr::null_mut(),
                kernel::static_lock_class!().as_ptr(),
            )
        })?;
        // INVARIANT: `__blk_mq_alloc_disk` returned a valid gendisk, which we own.
        Ok(Self {
            disk: NonNull::new(disk).ok_or(ENOMEM)?,
            tagset,
        })
    }

    /// A handle for the [`LoopDevice`] that will own this disk.
    pub(crate) fn handle(&self) -> DiskRef {
        // INVARIANT: The device built with this handle is either added with the disk (and freed
        // from `free_disk`) or dropped before the allocation is put (see `add`).
        DiskRef { disk: self.disk }
    }

    /// Adds the disk as `loop<number>` on major 7, owned from now on by `dev` through
    /// `private_data` and `queuedata` (released in `lo_free_disk`).
    pub(crate) fn add(self, dev: Arc<LoopDevice>, number: u32, part_shift: u32) -> Result<Disk> {
        let disk = self.disk.as_ptr();
        let data = dev.into_foreign();
        let first_minor = c_int::try_from(u64::from(number) << part_shift).map_err(|_| EINVAL)?;
        // SAFETY: We own the not yet added gendisk: nothing else looks at it.
        unsafe {
            (*disk).major = bindings::LOOP_MAJOR as c_int;
            (*disk).first_minor = first_minor;
            (*disk).minors = 1 << part_shift;
            (*disk).fops = &LO_FOPS.0;
            (*disk).private_data = data;
            (*(*disk).queue).queuedata = data;
            (*disk).events = bindings::DISK_EVENT_MEDIA_CHANGE as u16;
            (*disk).event_flags = bindings::DISK_EVENT_FLAG_UEVENT as u16;
            write_disk_name(&mut (*disk).disk_name, number);
        }
        // Partition scanning is off by default; it is requested per device at setup, or for all
        // devices with `max_part` (see loop.c's comment in `loop_add`).
        if part_shift == 0 {
            self.handle().set_partscan(false);
        }
        // SAFETY: The gendisk is fully set up; `device_add_disk` with no parent or groups is
        // `add_disk`.
        let ret = unsafe { bindings::device_add_disk(ptr::null_mut(), disk, ptr::null_mut()) };
        if ret != 0 {
            // A disk that was never added gets no `free_disk`: take the device back here, before
            // `self` puts the allocation (the `DiskRef` invariant).
            // SAFETY: `data` came from `into_foreign` above and nothing else released it.
            drop(unsafe { <Arc<LoopDevice> as ForeignOwnable>::from_foreign(data) });
            return Err(Error::from_errno(ret));
        }
        let this = core::mem::ManuallyDrop::new(self);
        // INVARIANT: The disk was added; `Disk` takes over our ownership of it and the tag set.
        Ok(Disk {
            disk: this.disk,
            // SAFETY: `this` is never dropped, so the tag set is moved out exactly once.
            _tagset: unsafe { ptr::read(&this.tagset) },
        })
    }
}

impl Drop for NewDisk {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own the not added gendisk.
        unsafe { bindings::put_disk(self.disk.as_ptr()) };
    }
}

fn write_disk_name(name: &mut [c_char; 32], number: u32) {
    let mut digits = [0u8; 10];
    let mut n = number;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = digits[..len].iter().rev().copied();
    let text = Iterator::chain(b"loop".iter().copied(), digits);
    for (dst, b) in name
        .iter_mut()
        .zip(Iterator::chain(text, core::iter::once(0)))
    {
        *dst = b as c_char;
    }
}

/// An added loop gendisk and its tag set. Dropping it deletes the disk (`loop_remove`).
///
/// # Invariants
///
/// `disk` was added by [`NewDisk::add`] and is owned by this value.
pub(crate) struct Disk {
    disk: NonNull<bindings::gendisk>,
    // Dropped after the disk is deleted and put: the queue uses the tag set until then.
    _tagset: Arc<TagSet<LoopQueue>>,
}

// SAFETY: Deleting a disk may happen from any thread.
unsafe impl Send for Disk {}

impl Drop for Disk {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the disk is added and ours. After `del_gendisk` no I/O
        // reaches the queue; `put_disk` drops our reference, and the last one runs
        // `lo_free_disk`.
        unsafe {
            bindings::del_gendisk(self.disk.as_ptr());
            bindings::put_disk(self.disk.as_ptr());
        }
    }
}

/// The block device an ioctl was issued on.
///
/// # Invariants
///
/// `bdev` is the open block device of the ioctl in progress.
pub(crate) struct BlockDevice {
    bdev: NonNull<bindings::block_device>,
}

impl BlockDevice {
    /// The device number.
    pub(crate) fn devt(&self) -> u32 {
        // SAFETY: By the type invariant the bdev is open.
        unsafe { (*self.bdev.as_ptr()).bd_dev }
    }

    /// Claims the device exclusively for a reconfiguration, unless it was opened exclusively
    /// (`bd_prepare_to_claim`): `EBUSY` if another holder, e.g. a mounted file system, has it.
    pub(crate) fn claim(&self, mode: OpenMode) -> Result<Option<Claim<'_>>> {
        if mode.exclusive() {
            return Ok(None);
        }
        // SAFETY: The bdev is open; the holder is a unique static address.
        to_result(unsafe {
            bindings::bd_prepare_to_claim(self.bdev.as_ptr(), claim_holder(), ptr::null())
        })?;
        Ok(Some(Claim { bdev: self }))
    }
}

fn claim_holder() -> *mut c_void {
    static HOLDER: u8 = 0;
    ptr::from_ref(&HOLDER).cast_mut().cast()
}

/// A pending exclusive claim of a block device; aborted on drop, as loop.c does once done.
pub(crate) struct Claim<'a> {
    bdev: &'a BlockDevice,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // SAFETY: Paired with the successful `bd_prepare_to_claim` in `BlockDevice::claim`.
        unsafe { bindings::bd_abort_claiming(self.bdev.bdev.as_ptr(), claim_holder()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Block device operations and the sysfs `loop/` group.

/// A C table in a static: the raw pointers it holds are to other statics and to this module.
#[repr(transparent)]
struct CTable<T>(T);

// SAFETY: The tables are never written after initialisation; their pointers are to statics and
// functions, valid from any thread.
unsafe impl<T> Sync for CTable<T> {}

static LO_FOPS: CTable<bindings::block_device_operations> =
    CTable(bindings::block_device_operations {
        submit_bio: None,
        poll_bio: None,
        open: Some(lo_open),
        release: Some(lo_release),
        ioctl: Some(lo_ioctl),
        compat_ioctl: Some(lo_compat_ioctl),
        check_events: None,
        unlock_native_capacity: None,
        getgeo: None,
        set_read_only: None,
        alternative_gpt_sector: None,
        free_disk: Some(lo_free_disk),
        swap_slot_free_notify: None,
        report_zones: None,
        devnode: None,
        get_unique_id: None,
        // The module stays loaded while any loop device is open.
        owner: (&raw const bindings::__this_module).cast_mut(),
        pr_ops: ptr::null(),
    });

/// Borrows the device of one of our gendisks.
///
/// # Safety
///
/// `disk` is one of our added gendisks and its `free_disk` has not run.
unsafe fn disk_device<'a>(disk: *mut bindings::gendisk) -> ArcBorrow<'a, LoopDevice> {
    // SAFETY: `private_data` holds the `Arc<LoopDevice>` given in `NewDisk::add`, released only
    // by `lo_free_disk`, which the caller says has not run.
    unsafe { <Arc<LoopDevice> as ForeignOwnable>::borrow((*disk).private_data) }
}

/// # Safety
///
/// Called by the block layer as `->open` of one of our disks.
unsafe extern "C" fn lo_open(disk: *mut bindings::gendisk, mode: bindings::blk_mode_t) -> c_int {
    // SAFETY: An open disk has not been freed.
    let dev = unsafe { disk_device(disk) };
    match dev.open(OpenMode(mode)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the block layer as `->release` of one of our disks, with `open_mutex` held.
unsafe extern "C" fn lo_release(disk: *mut bindings::gendisk) {
    // SAFETY: A disk being released has not been freed.
    let dev = unsafe { disk_device(disk) };
    dev.release();
}

/// # Safety
///
/// Called by the block layer as `->ioctl` of one of our disks, on an open `bdev` of it.
unsafe extern "C" fn lo_ioctl(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
) -> c_int {
    // SAFETY: Same contract.
    unsafe { ioctl_common(bdev, mode, cmd, arg, false) }
}

/// # Safety
///
/// Called by the block layer as `->compat_ioctl` of one of our disks, on an open `bdev` of it.
unsafe extern "C" fn lo_compat_ioctl(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
) -> c_int {
    // SAFETY: Same contract.
    unsafe { ioctl_common(bdev, mode, cmd, arg, true) }
}

/// # Safety
///
/// `bdev` is an open block device of one of our disks, for the duration of the call.
unsafe fn ioctl_common(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
    compat: bool,
) -> c_int {
    let Some(bdev) = NonNull::new(bdev) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The bdev is open, so its disk is live.
    let dev = unsafe { disk_device((*bdev.as_ptr()).bd_disk) };
    // INVARIANT: `bdev` is open for the duration of this ioctl.
    let bdev = BlockDevice { bdev };
    let res = if compat {
        dev.compat_ioctl(&bdev, OpenMode(mode), cmd, arg)
    } else {
        dev.ioctl(&bdev, OpenMode(mode), cmd, arg)
    };
    match res {
        Ok(v) => v,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the block layer as `->free_disk` of one of our added disks, once.
unsafe extern "C" fn lo_free_disk(disk: *mut bindings::gendisk) {
    // SAFETY: This is the release of the reference `NewDisk::add` gave the disk; nothing uses
    // `private_data` afterwards.
    drop(unsafe { <Arc<LoopDevice> as ForeignOwnable>::from_foreign((*disk).private_data) });
}

/// The attributes of `/sys/block/loopN/loop/`.
#[derive(Clone, Copy)]
pub(crate) enum LoopAttr {
    BackingFile,
    Offset,
    Sizelimit,
    Autoclear,
    Partscan,
    Dio,
}

/// A sysfs `show` buffer (one page).
pub(crate) struct SysfsBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl SysfsBuf<'_> {
    /// The whole page, for writers that fill it themselves; then call `set_len`.
    pub(crate) fn page(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Sets the length of what a `page` writer produced.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len());
    }
}

impl core::fmt::Write for SysfsBuf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        // Leave room for the NUL sysfs expects after the text.
        if end >= self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

macro_rules! loop_attr {
    ($name:ident, $show:ident, $attr:expr, $cname:literal) => {
        /// # Safety
        ///
        /// Called by sysfs for the attribute of a loop disk's device, with a one-page buffer.
        unsafe extern "C" fn $show(
            dev: *mut bindings::device,
            _attr: *mut bindings::device_attribute,
            buf: *mut c_char,
        ) -> isize {
            // SAFETY: Sysfs passes the device the group was created on and a page buffer.
            unsafe { attr_show(dev, buf, $attr) }
        }

        static $name: CTable<bindings::device_attribute> = CTable({
            // SAFETY: All-zero is a valid `device_attribute` (no methods; with lockdep, no
            // explicit key, so sysfs uses the static `skey` inside this static).
            let mut a: bindings::device_attribute = unsafe { core::mem::zeroed() };
            a.attr.name = as_char_ptr_in_const_context($cname);
            a.attr.mode = 0o444;
            a.__bindgen_anon_1.show = Some($show);
            a
        });
    };
}

loop_attr!(
    ATTR_BACKING_FILE,
    show_backing_file,
    LoopAttr::BackingFile,
    c"backing_file"
);
loop_attr!(ATTR_OFFSET, show_offset, LoopAttr::Offset, c"offset");
loop_attr!(
    ATTR_SIZELIMIT,
    show_sizelimit,
    LoopAttr::Sizelimit,
    c"sizelimit"
);
loop_attr!(
    ATTR_AUTOCLEAR,
    show_autoclear,
    LoopAttr::Autoclear,
    c"autoclear"
);
loop_attr!(
    ATTR_PARTSCAN,
    show_partscan,
    LoopAttr::Partscan,
    c"partscan"
);
loop_attr!(ATTR_DIO, show_dio, LoopAttr::Dio, c"dio");

static LOOP_ATTRS: CTable<[*const bindings::attribute; 7]> = CTable([
    &ATTR_BACKING_FILE.0.attr,
    &ATTR_OFFSET.0.attr,
    &ATTR_SIZELIMIT.0.attr,
    &ATTR_AUTOCLEAR.0.attr,
    &ATTR_PARTSCAN.0.attr,
    &ATTR_DIO.0.attr,
    ptr::null(),
]);

static LOOP_ATTR_GROUP: CTable<bindings::attribute_group> = CTable(bindings::attribute_group {
    name: as_char_ptr_in_const_context(c"loop"),
    __bindgen_anon_1: bindings::attribute_group__bindgen_ty_1 { is_visible: None },
    is_bin_visible: None,
    bin_size: None,
    __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
        // Sysfs only reads the array; it is declared mutable in C for historical reasons.
        attrs: LOOP_ATTRS.0.as_ptr().cast_mut().cast(),
    },
    bin_attrs: ptr::null(),
});

/// # Safety
///
/// `dev` is the device of one of our added gendisks (`disk_to_dev`) and `buf` a page.
unsafe fn attr_show(dev: *mut bindings::device, buf: *mut c_char, attr: LoopAttr) -> isize {
    // SAFETY: `dev` is `&part0->bd_device` of the disk (`dev_to_disk`).
    let disk = unsafe {
        let bdev = kernel::container_of!(dev, bindings::block_device, bd_device);
        (*bdev).bd_disk
    };
    // SAFETY: The group exists only on live disks; sysfs drains readers before removing it.
    let dev = unsafe { disk_device(disk) };
    // SAFETY: Sysfs gives a page-sized buffer.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE) };
    let mut out = SysfsBuf { buf: page, len: 0 };
    match dev.show_attr(attr, &mut out) {
        Ok(()) => out.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

// ---------------------------------------------------------------------------------------------
// `/dev/loop-control` and block major 7.

static LOOP_CTL_FOPS: CTable<bindings::file_operations> = CTable({
    // SAFETY: All-zero is a valid `file_operations` (every method absent); the fields loop.c
    // sets are filled in below.
    let mut f: bindings::file_operations = unsafe { core::mem::zeroed() };
    f.owner = (&raw const bindings::__this_module).cast_mut();
    f.open = Some(bindings::nonseekable_open);
    f.unlocked_ioctl = Some(loop_control_ioctl);
    f.compat_ioctl = Some(loop_control_ioctl);
    f.llseek = Some(bindings::noop_llseek);
    f
});

/// # Safety
///
/// Called by the VFS as `->unlocked_ioctl` or `->compat_ioctl` of `/dev/loop-control`.
unsafe extern "C" fn loop_control_ioctl(
    _file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    match crate::loop_control_ioctl(cmd, arg) {
        Ok(v) => v as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// The `/dev/loop-control` misc device (fixed minor 237), registered while this lives.
///
/// # Invariants
///
/// `misc` is registered with `misc_register` between construction and drop.
#[pin_data(PinnedDrop)]
pub(crate) struct ControlDevice {
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The misc device is only touched by `misc_register`/`misc_deregister`, which lock.
unsafe impl Send for ControlDevice {}
// SAFETY: As above.
unsafe impl Sync for ControlDevice {}

impl ControlDevice {
    /// Registers `/dev/loop-control` (`EBUSY` while another loop driver has it).
    pub(crate) fn register() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- Opaque::try_ffi_init(|slot: *mut bindings::miscdevice| {
                // SAFETY: `slot` is valid for writes; all-zero is a valid `miscdevice` and the
                // fields loop.c sets are filled in before it is registered in place (it is
                // pinned: `misc_register` links it into a list).
                let res = unsafe {
                    slot.write(core::mem::zeroed());
                    (*slot).minor = bindings::LOOP_CTRL_MINOR as c_int;
                    (*slot).name = c"loop-control".as_char_ptr();
                    (*slot).fops = &LOOP_CTL_FOPS.0;
                    to_result(bindings::misc_register(slot))
                };
                if res == Err(EBUSY) {
                    pr_err!("/dev/loop-control (misc 10:237) is taken: unload loop.ko first\n");
                }
                res
            }),
            _pin: PhantomPinned,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for ControlDevice {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the device is registered.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}

/// Block major 7 ("loop"), registered while this lives.
pub(crate) struct MajorRegistration(());

impl MajorRegistration {
    /// Registers the major with its legacy-autoload probe (opening a missing `/dev/loopN`).
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: The name is a static string and the probe a function of this module.
        let ret = unsafe {
            bindings::__register_blkdev(
                bindings::LOOP_MAJOR,
                c"loop".as_char_ptr(),
                Some(loop_probe),
            )
        };
        if ret != 0 {
            pr_err!("block major 7 is taken: unload the other loop driver first\n");
            return Err(Error::from_errno(ret));
        }
        Ok(Self(()))
    }
}

impl Drop for MajorRegistration {
    fn drop(&mut self) {
        // SAFETY: Registered in `register`.
        unsafe { bindings::unregister_blkdev(bindings::LOOP_MAJOR, c"loop".as_char_ptr()) };
    }
}

/// # Safety
///
/// Called by the block layer when a missing device of major 7 is opened.
unsafe extern "C" fn loop_probe(devt: bindings::dev_t) {
    crate::loop_probe(devt & ((1 << bindings::MINORBITS) - 1));
}

// ---------------------------------------------------------------------------------------------
// The device lock and the I/O path's view of the configuration.

/// What the I/O path reads for every request.
pub(crate) struct IoConfig {
    pub(crate) file: Option<BoundFile>,
    pub(crate) offset: u64,
    /// `LO_FLAGS_DIRECT_IO` as in effect.
    pub(crate) dio: bool,
    /// `LO_FLAGS_READ_ONLY`.
    pub(crate) read_only: bool,
}

/// A device's mutex (loop.c's `lo_mutex`) plus the [`IoConfig`] that the I/O path reads without
/// taking it.
///
/// The rules are the ones loop.c follows by convention, here enforced by the API: the I/O path
/// reads the `IoConfig` while it owns an in-flight request of this device's queue; everyone else
/// reads it under the mutex; it is written only under the mutex *and* with the queue frozen,
/// which excludes both.
///
/// # Invariants
///
/// `io` is written only through [`FrozenIo`], which holds the mutex guard and a frozen `queue`.
#[pin_data]
pub(crate) struct DevLock<C> {
    #[pin]
    mutex: Mutex<C>,
    io: UnsafeCell<IoConfig>,
    disk: DiskRef,
}

// SAFETY: `io` is shared across threads only under the rules above; `IoConfig` is `Send + Sync`.
unsafe impl<C: Send> Sync for DevLock<C> {}
// SAFETY: As above.
unsafe impl<C: Send> Send for DevLock<C> {}

impl<C> DevLock<C> {
    /// A lock for the device whose gendisk is `disk`, with an unbound `IoConfig`.
    pub(crate) fn new(config: C, disk: DiskRef) -> impl PinInit<Self> {
        pin_init!(Self {
            mutex <- kernel::new_mutex!(config, "rust_loop::lo_mutex"),
            io: UnsafeCell::new(IoConfig {
                file: None,
                offset: 0,
                dio: false,
                read_only: false,
            }),
            disk,
        })
    }

    /// Takes the device mutex.
    pub(crate) fn lock(&self) -> DevGuard<'_, C> {
        DevGuard {
            guard: self.mutex.lock(),
            lock: self,
        }
    }

    /// The I/O path's view, valid while `rq` stays in flight; `None` if `rq` is not a request
    /// of this device's queue.
    pub(crate) fn io_view<'a>(&'a self, rq: &'a ARef<Request<LoopQueue>>) -> Option<&'a IoConfig> {
        // SAFETY: The driver owns `rq`, so `q` is stable.
        if unsafe { (*rq_ptr(rq)).q } != self.disk.queue() {
            return None;
        }
        // SAFETY: `rq` is an in-flight request of our queue, so the queue cannot finish freezing
        // while it is borrowed, and writers need a frozen queue (type invariant).
        Some(unsafe { &*self.io.get() })
    }
}

/// The device mutex, held.
pub(crate) struct DevGuard<'a, C> {
    guard: MutexGuard<'a, C>,
    lock: &'a DevLock<C>,
}

impl<C: Unpin> Deref for DevGuard<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.guard
    }
}

impl<C: Unpin> DerefMut for DevGuard<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.guard
    }
}

impl<'a, C> DevGuard<'a, C> {
    /// The I/O configuration, read under the mutex.
    pub(crate) fn io(&self) -> &IoConfig {
        // SAFETY: Writers hold the mutex, which we hold.
        unsafe { &*self.lock.io.get() }
    }

    /// Freezes the queue so the I/O configuration can change (drains in-flight I/O first).
    pub(crate) fn freeze(&mut self) -> FrozenIo<'_, 'a, C> {
        let frozen = self.lock.disk.freeze();
        FrozenIo {
            guard: self,
            _frozen: frozen,
        }
    }
}

/// The device mutex held and the queue frozen: the I/O configuration may change.
pub(crate) struct FrozenIo<'g, 'a, C> {
    guard: &'g mut DevGuard<'a, C>,
    // Unfreezes on drop, after the writes above are done.
    _frozen: Frozen,
}

impl<C: Unpin> FrozenIo<'_, '_, C> {
    /// The device configuration and the I/O configuration, both writable.
    pub(crate) fn parts(&mut self) -> (&mut C, &mut IoConfig) {
        // SAFETY: We hold the mutex and the queue is frozen: no reader of `io` exists (type
        // invariant of `DevLock`).
        let io = unsafe { &mut *self.guard.lock.io.get() };
        (&mut self.guard.guard, io)
    }
}

// ---------------------------------------------------------------------------------------------
// The I/O engine: kthread worker, per-tag commands, buffered and direct (async) I/O.

/// A per-device kthread worker, `rust_loopN`, at the loop worker's usual nice level.
///
/// # Invariants
///
/// `worker` comes from `kthread_create_worker_on_node` and is destroyed only on drop.
struct KWorker {
    worker: NonNull<bindings::kthread_worker>,
}

// SAFETY: A kthread worker is driven through functions that take its spinlock.
unsafe impl Send for KWorker {}
// SAFETY: As above.
unsafe impl Sync for KWorker {}

impl KWorker {
    fn new(number: u32) -> Result<Self> {
        // SAFETY: The format string takes one unsigned int, which we pass.
        let w = from_err_ptr(unsafe {
            bindings::kthread_create_worker_on_node(
                0,
                bindings::NUMA_NO_NODE,
                c"rust_loop%u".as_char_ptr(),
                number,
            )
        })?;
        let worker = NonNull::new(w).ok_or(ENOMEM)?;
        // SAFETY: The worker's task was just created and is not running yet. The nice level is
        // the one the kthread-based loop worker (Linux 4.4-5.x) used: I/O latency of the device
        // depends on this thread getting the CPU.
        unsafe {
            let task = (*worker.as_ptr()).task;
            bindings::set_user_nice(task, bindings::MIN_NICE as c_long);
            bindings::wake_up_process(task);
        }
        Ok(Self { worker })
    }
}

impl Drop for KWorker {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the worker is live; this runs the queued work, then
        // stops the thread.
        unsafe { bindings::kthread_destroy_worker(self.worker.as_ptr()) };
    }
}

/// A command's private state: owned by whoever owns the command's request (see [`Cmd`]).
struct Slot {
    rq: Option<ARef<Request<LoopQueue>>>,
    use_aio: bool,
    write: bool,
    /// The kiocb's result, set by the completion callback.
    ret: isize,
    /// Bvec array for requests of several bios; the capacity is kept for the next request.
    bvecs: KVec<bindings::bio_vec>,
}

/// The per-tag command: the seed's `struct loop_cmd`.
///
/// The 7.2 tag set has no driver PDU, so each device keeps one `Cmd` per tag. A tag belongs to
/// one request at a time, and the request moves through the command by ownership: `queue_rq`
/// stores its `ARef` in the slot and queues `work`; the worker takes it out; an async kiocb puts
/// it back until the last of its two references is dropped, which completes it. The slot is only
/// touched by the current owner of that `ARef`.
///
/// # Invariants
///
/// - `work` is initialised with [`cmd_work_fn`], `dev` points to the [`LoopDevice`] that owns the
///   [`Engine`] holding this command, which outlives it.
/// - `slot` is accessed only by the holder of the tag's request (as described above).
#[pin_data]
pub(crate) struct Cmd {
    #[pin]
    work: Opaque<bindings::kthread_work>,
    #[pin]
    iocb: Opaque<bindings::kiocb>,
    slot: UnsafeCell<Slot>,
    /// loop.c's `cmd->ref`: one for the submitter, one for the kiocb completion.
    refs: Atomic<i32>,
    dev: *const LoopDevice,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The slot and the kiocb are accessed by one owner at a time (type invariant); ownership
// hand-offs go through `kthread_queue_work` (a spinlock) or `refs` (full barriers).
unsafe impl Send for Cmd {}
// SAFETY: As above.
unsafe impl Sync for Cmd {}

impl Cmd {
    fn new(dev: *const LoopDevice) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            work <- Opaque::ffi_init(|w| {
                // SAFETY: `w` is valid for writes; `kthread_init_work` initialises it fully.
                unsafe { helpers::rust_loop_kthread_init_work(w, cmd_work_fn) }
            }),
            // An all-zero kiocb is idle; it is set up for every request.
            iocb: Opaque::zeroed(),
            slot: UnsafeCell::new(Slot {
                rq: None,
                use_aio: false,
                write: false,
                ret: 0,
                bvecs: KVec::new(),
            }),
            refs: Atomic::new(0),
            dev,
            _pin: PhantomPinned,
        })
    }

    /// # Safety
    ///
    /// The caller owns the request of this command's tag (see the type invariant).
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self) -> &mut Slot {
        // SAFETY: Exclusive by the caller's ownership of the tag.
        unsafe { &mut *self.slot.get() }
    }
}

/// The I/O engine of a device: its worker and one command per tag.
pub(crate) struct Engine {
    // Destroyed first: flushing the worker runs any queued command before the commands go.
    worker: KWorker,
    cmds: KVec<Pin<KBox<Cmd>>>,
}

impl Engine {
    /// Creates the worker and `depth` commands for `dev` (once, at first bind, like loop.c's
    /// workqueue).
    pub(crate) fn new(dev: &LoopDevice, number: u32, depth: u32) -> Result<Self> {
        let depth = usize::try_from(depth)?;
        let mut cmds = KVec::with_capacity(depth, GFP_KERNEL)?;
        for _ in 0..depth {
            cmds.push(KBox::pin_init(Cmd::new(dev), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(Self {
            worker: KWorker::new(number)?,
            cmds,
        })
    }

    /// Hands a request to the worker (`loop_queue_work`). `use_aio` is decided by `queue_rq`.
    pub(crate) fn queue(&self, rq: ARef<Request<LoopQueue>>, use_aio: bool) -> Result {
        let cmd = self.cmds.get(rq_tag(&rq)).ok_or(EIO)?;
        // SAFETY: `rq` is the request of this tag and we own it.
        let slot = unsafe { cmd.slot() };
        slot.rq = Some(rq);
        slot.use_aio = use_aio;
        // SAFETY: The worker is live and the work initialised; it cannot be pending, since its
        // tag's previous request has ended. The queue's spinlock publishes the slot.
        unsafe { bindings::kthread_queue_work(self.worker.worker.as_ptr(), cmd.work.get()) };
        Ok(())
    }
}

/// # Safety
///
/// Called by the kthread worker for a `work` embedded in a live [`Cmd`] queued by
/// [`Engine::queue`].
unsafe extern "C" fn cmd_work_fn(work: *mut bindings::kthread_work) {
    // SAFETY: `work` is the `work` field of a `Cmd` (type invariant: only `Cmd::new` uses this
    // function). `Opaque<T>` is `repr(transparent)`.
    let cmd = unsafe {
        &*kernel::container_of!(work.cast::<Opaque<bindings::kthread_work>>(), Cmd, work)
    };
    // SAFETY: The request was stored by `Engine::queue` before queueing; we own it now.
    let slot = unsafe { cmd.slot() };
    let Some(rq) = slot.rq.take() else {
        return;
    };
    let use_aio = slot.use_aio;
    // SAFETY: The device owns the engine holding `cmd`, so it outlives this call.
    let dev = unsafe { &*cmd.dev };
    // SAFETY: Plain task-flag changes of the current thread, undone below.
    let flags = unsafe { helpers::rust_loop_io_flags_save() };
    let info = rq_info(&rq);
    dev.handle_cmd(CmdHandle {
        cmd,
        rq,
        use_aio,
        info,
    });
    // SAFETY: Restores what `rust_loop_io_flags_save` returned.
    unsafe { helpers::rust_loop_io_flags_restore(flags) };
}

/// A command being handled by the worker: owns its request until [`CmdHandle::finish`] or
/// [`CmdHandle::read_write`] passes it on.
pub(crate) struct CmdHandle<'a> {
    cmd: &'a Cmd,
    rq: ARef<Request<LoopQueue>>,
    use_aio: bool,
    info: RqInfo,
}

/// How a read or write ended, for the completion policy in `rust_loop.rs`.
pub(crate) enum RwResult {
    /// All bytes were transferred.
    Done,
    /// A buffered read hit the end of the file after `done` bytes.
    ShortRead { done: u32 },
    /// An async kiocb transferred only `done` bytes; the rest may be retried.
    Partial { done: u32 },
    /// The backing file system returned an error.
    Error(Error),
}

impl<'a> CmdHandle<'a> {
    /// The request.
    pub(crate) fn request(&self) -> &ARef<Request<LoopQueue>> {
        &self.rq
    }

    /// The request's operation, position and length.
    pub(crate) fn info(&self) -> RqInfo {
        self.info
    }

    /// Ends the request now.
    pub(crate) fn finish(self, status: BlkStatus) {
        end_request(self.rq, status);
    }

    /// Reads or writes the request's data at byte `pos` of the device's backing file
    /// (`lo_rw_aio`): an async direct kiocb if `queue_rq` chose AIO, else the buffered loop.
    /// The request is completed through `LoopQueue::complete_rw`, now or from the kiocb
    /// callback.
    pub(crate) fn read_write<C>(self, lock: &DevLock<C>, pos: u64, write: bool) {
        let info = self.info;
        let file = match lock.io_view(&self.rq).and_then(|io| io.file.as_deref()) {
            // The file stays open while the request is in flight (it changes only with the
            // queue frozen), so the kiocb can point to it until completion.
            Some(file) => file.raw(),
            None => return self.finish(BlkStatus::IOERR),
        };
        let Ok(pos) = i64::try_from(pos) else {
            return self.finish(BlkStatus::IOERR);
        };
        let cmd = self.cmd;
        // SAFETY: We own the request of this command's tag.
        let slot = unsafe { cmd.slot() };
        // SAFETY: All-zero is a valid (empty) `iov_iter`; `build_iter` sets it up.
        let mut iter: bindings::iov_iter = unsafe { core::mem::zeroed() };
        if let Err(e) = build_iter(&self.rq, &mut slot.bvecs, &mut iter, write, info.bytes) {
            return crate::LoopQueue::complete_rw(self.rq, RwResult::Error(e));
        }
        let iocb = cmd.iocb.get();
        // SAFETY: We own the command; the kiocb is idle (its previous request has ended).
        unsafe {
            iocb.write(core::mem::zeroed());
            (*iocb).ki_filp = file;
            (*iocb).ki_pos = pos;
            (*iocb).ki_ioprio = helpers::rust_loop_rq_ioprio(rq_ptr(&self.rq));
        }
        if self.use_aio {
            submit_aio(cmd, self.rq, &mut iter, write);
        } else {
            let res = rw_buffered(iocb, &mut iter, pos, info.bytes, write);
            slot.bvecs.clear();
            crate::LoopQueue::complete_rw(self.rq, res);
        }
    }
}

/// Builds an iov_iter over the request's bvecs: in place for a single bio, from a copy when the
/// request has several.
fn build_iter(
    rq: &ARef<Request<LoopQueue>>,
    bvecs: &mut KVec<bindings::bio_vec>,
    iter: &mut bindings::iov_iter,
    write: bool,
    bytes: u32,
) -> Result {
    let p = rq_ptr(rq);
    let dir = if write {
        bindings::ITER_SOURCE
    } else {
        bindings::ITER_DEST
    };
    // SAFETY: The driver owns the request; its bios are stable until it ends.
    let (nr_bvec, single) = unsafe { (helpers::rust_loop_rq_nr_bvec(p), (*p).bio == (*p).biotail) };
    let nr = usize::try_from(nr_bvec)?;
    if single {
        // This bio may start in the middle of its first bvec because of bio splitting, so the
        // offset into that bvec is passed to the iterator.
        let mut done: c_uint = 0;
        // SAFETY: The request has one bio, whose vector outlives the request's I/O.
        unsafe {
            let first = helpers::rust_loop_rq_first_bvec(p, &mut done);
            bindings::iov_iter_bvec(iter, dir, first, nr as c_ulong, bytes as usize);
            iter.iov_offset = done as usize;
        }
    } else {
        // The bios may also start in the middle of a bvec, so their vectors cannot be copied as
        // they are; `rq_for_each_bvec` yields the exact segments. The worker runs with
        // PF_MEMALLOC_NOIO, so this allocation cannot recurse into I/O.
        bvecs.clear();
        bvecs.reserve(nr, GFP_KERNEL).map_err(|_| EIO)?;
        // SAFETY: `bvecs` has room for the `nr` segments `rq_copy_bvecs` writes; we then claim
        // them as initialised.
        unsafe {
            helpers::rust_loop_rq_copy_bvecs(p, bvecs.as_mut_ptr());
            bvecs.inc_len(nr);
            bindings::iov_iter_bvec(iter, dir, bvecs.as_ptr(), nr as c_ulong, bytes as usize);
        }
    }
    Ok(())
}

fn call_rw(iocb: *mut bindings::kiocb, iter: &mut bindings::iov_iter, write: bool) -> isize {
    // SAFETY: The kiocb is set up with an open `ki_filp`; `check_ops` at bind ensured the file
    // has `read_iter`, and `write_iter` if it is writable (a read-only file gets no writes: the
    // device is read-only then).
    unsafe {
        let fops = &*(*(*iocb).ki_filp).f_op;
        let f = if write {
            fops.write_iter
        } else {
            fops.read_iter
        };
        match f {
            Some(f) => f(iocb, iter),
            None => -(bindings::EINVAL as isize),
        }
    }
}

/// The buffered path: a synchronous kiocb (never `IOCB_DIRECT`, even on an `O_DIRECT` file, so
/// turning DIO off works) called until all bytes moved. Short reads continue until end of
/// file; a write that makes no progress is an error, never a silent success.
fn rw_buffered(
    iocb: *mut bindings::kiocb,
    iter: &mut bindings::iov_iter,
    pos: i64,
    bytes: u32,
    write: bool,
) -> RwResult {
    let mut done: u32 = 0;
    while done < bytes {
        // SAFETY: We own the kiocb; the position advances with what was transferred.
        unsafe { (*iocb).ki_pos = pos + i64::from(done) };
        if write {
            // SAFETY: Freeze protection around the write, as `kiocb_start_write` documents.
            unsafe { helpers::rust_loop_kiocb_start_write(iocb) };
        }
        let ret = call_rw(iocb, iter, write);
        if write {
            // SAFETY: Paired with the start above.
            unsafe { helpers::rust_loop_kiocb_end_write(iocb) };
        }
        match ret {
            r if r < 0 => return RwResult::Error(Error::from_errno(r as i32)),
            0 if write => return RwResult::Error(EIO),
            0 => return RwResult::ShortRead { done },
            // `ret` is at most what was asked for, which fits in u32.
            r => done += u32::try_from(r).unwrap_or(bytes - done).min(bytes - done),
        }
    }
    RwResult::Done
}

/// Submits an async direct kiocb (`lo_rw_aio` with `use_aio`). Either the file system queues it
/// (`-EIOCBQUEUED`) and calls [`aio_complete`] later, possibly from interrupt context, or it
/// returns at once and we call it ourselves; the two references decide who completes.
fn submit_aio(cmd: &Cmd, rq: ARef<Request<LoopQueue>>, iter: &mut bindings::iov_iter, write: bool) {
    let iocb = cmd.iocb.get();
    // SAFETY: We own the request of this command's tag.
    let slot = unsafe { cmd.slot() };
    slot.write = write;
    slot.ret = 0;
    slot.rq = Some(rq);
    cmd.refs.store(2, Relaxed);
    // SAFETY: We own the kiocb until it is submitted.
    unsafe {
        (*iocb).ki_flags = bindings::IOCB_DIRECT as c_int;
        (*iocb).ki_complete = Some(aio_complete);
    }
    if write {
        // SAFETY: Freeze protection across the async write; `aio_do_completion` ends it.
        unsafe { helpers::rust_loop_kiocb_start_write(iocb) };
    }
    let ret = call_rw(iocb, iter, write);
    // From here on the callback may have run: the slot is touched only through the references.
    aio_put(cmd);
    if ret != -(bindings::EIOCBQUEUED as isize) {
        // SAFETY: The file system did not queue the kiocb, so its callback will not run; we
        // complete it in its place, exactly once.
        unsafe { aio_complete(iocb, ret) };
    }
}

/// # Safety
///
/// `iocb` is the `iocb` of a [`Cmd`] submitted by [`submit_aio`]; called once per submission.
unsafe extern "C" fn aio_complete(iocb: *mut bindings::kiocb, ret: c_long) {
    // SAFETY: The kiocb is embedded in a live `Cmd` (`Opaque` is `repr(transparent)`).
    let cmd = unsafe { &*kernel::container_of!(iocb.cast::<Opaque<bindings::kiocb>>(), Cmd, iocb) };
    // SAFETY: The callback owns the completion reference; the submitter does not read `ret`
    // before the last reference is dropped (the full barrier in `aio_put` orders this write).
    unsafe { cmd.slot().ret = ret };
    aio_put(cmd);
}

/// Drops one of the two references of an async command; the last one completes it
/// (`lo_rw_aio_do_completion`). Runs in whatever context the file system completes in, so
/// nothing here sleeps.
fn aio_put(cmd: &Cmd) {
    if cmd.refs.fetch_add(-1, Full) != 1 {
        return;
    }
    // SAFETY: Both references are gone: we are the only owner of the slot and the kiocb.
    let slot = unsafe { cmd.slot() };
    slot.bvecs.clear();
    if slot.write {
        // SAFETY: Paired with `kiocb_start_write` in `submit_aio`.
        unsafe { helpers::rust_loop_kiocb_end_write(cmd.iocb.get()) };
    }
    let Some(rq) = slot.rq.take() else {
        return;
    };
    let bytes = rq_info(&rq).bytes;
    let res = match slot.ret {
        r if r < 0 => RwResult::Error(Error::from_errno(r as i32)),
        r if r as u64 >= u64::from(bytes) => RwResult::Done,
        r => RwResult::Partial { done: r as u32 },
    };
    crate::LoopQueue::complete_rw(rq, res);
}
