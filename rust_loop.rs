// SPDX-License-Identifier: GPL-2.0

//! rust_loop: the Linux loop block driver (`drivers/block/loop.c`) as a Rust module.
//!
//! A loop device (`/dev/loopN`, block major 7) exposes a file as a block device. Devices are
//! created at load (`max_loop`) or through `/dev/loop-control`, bound to a backing file with
//! `LOOP_CONFIGURE` / `LOOP_SET_FD`, and torn down at last close after `LOOP_CLR_FD` or with
//! `LO_FLAGS_AUTOCLEAR`. The user-space ABI (ioctls, errnos, flags, sysfs `loop/` attributes,
//! uevents) is loop.c's, so unmodified `losetup` and `mount -o loop` work.
//!
//! I/O follows "block: loop: support DIO & AIO": `queue_rq` marks reads and writes for AIO when
//! the device uses direct I/O and hands every request to the device's kthread worker, which
//! either submits an async `IOCB_DIRECT` kiocb on the backing file (no double page cache, no
//! page pinning, fewer context switches) or runs the buffered read/write loop.
//!
//! This file is the driver's logic in safe Rust; everything that touches kernel structures
//! directly is in [`rust_loop_aio`].

use core::fmt::Write;
use kernel::{
    block::mq::{
        Operations,
        Request, //
    },
    pr_warn_once,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Relaxed, Release},
        global_lock,
        new_spinlock,
        Arc,
        ArcBorrow,
        SetOnce,
        SpinLock, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

mod rust_loop_aio;

use rust_loop_aio::{
    capable_sys_admin,
    clear_nowait,
    end_request,
    requeue_request,
    rq_info,
    uapi::*,
    update_request,
    zero_fill_request,
    BackingFile,
    BlkStatus,
    BlockDevice,
    CmdHandle,
    ControlDevice,
    DevGuard,
    DevLock,
    Disk,
    DiskRef,
    Engine,
    LoopAttr,
    LoopLimits,
    MajorRegistration,
    ModuleRef,
    NewDisk,
    OpenMode,
    ReqOp,
    RwResult,
    SysfsBuf,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE, //
};

module! {
    type: LoopModule,
    name: "rust_loop_mod",
    authors: ["rust-loop developers"],
    description: "Loopback block device (Rust), with direct I/O and AIO",
    license: "GPL",
    alias: ["block-major-7-*", "char-major-10-237", "devname:loop-control"],
    params: {
        max_loop: i32 {
            default: 8,
            description: "Maximum number of loop devices",
        },
        max_part: i32 {
            default: 0,
            description: "Maximum number of partitions per loop device",
        },
        hw_queue_depth: i32 {
            default: 128,
            description: "Queue depth for each hardware queue. Default: 128",
        },
    },
}

/// `LOOP_CONFIGURE` accepts every flag.
const LOOP_CONFIGURE_SETTABLE_FLAGS: u32 =
    LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;
/// `LOOP_SET_STATUS*` can set these, and clear only `LO_FLAGS_AUTOCLEAR`.
const LOOP_SET_STATUS_SETTABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
const LOOP_SET_STATUS_CLEARABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR;
const SECTOR_SIZE: u32 = 512;
const MINORBITS: u32 = 20;
const DISK_MAX_PARTS: u32 = 256;

/// `max_part` turned into the number of minor bits per device (0: partitions get dynamic minors).
static PART_SHIFT: Atomic<u32> = Atomic::new(0);

global_lock! {
    // SAFETY: Initialised first thing in `LoopModule::init`.
    unsafe(uninit) static LOOP_CTL: Mutex<Registry> = Registry::new();
}

global_lock! {
    // loop.c's `loop_validate_mutex`: serialises binds that walk stacked loop devices
    // (`validate_file`) against each other and against `LOOP_CLR_FD`.
    //
    // SAFETY: Initialised first thing in `LoopModule::init`.
    unsafe(uninit) static LOOP_VALIDATE: Mutex<()> = ();
}

fn part_shift() -> u32 {
    PART_SHIFT.load(Relaxed)
}

/// Possible states of a device.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum LoState {
    /// No backing file; may be opened (to bind it) or removed.
    Unbound = 0,
    /// Backed by a file; I/O allowed.
    Bound = 1,
    /// Being unbound at last close; new opens get `ENXIO`.
    Rundown = 2,
    /// Being removed through `/dev/loop-control`.
    Deleting = 3,
}

impl LoState {
    fn from_raw(v: u32) -> Self {
        match v {
            0 => Self::Unbound,
            1 => Self::Bound,
            2 => Self::Rundown,
            _ => Self::Deleting,
        }
    }
}

/// The part of a device's configuration under its mutex (the I/O path's part is
/// [`rust_loop_aio::IoConfig`]).
struct Config {
    /// `LO_FLAGS_AUTOCLEAR` and `LO_FLAGS_PARTSCAN`. `READ_ONLY` and `DIRECT_IO` live in the
    /// `IoConfig`, which the I/O path reads.
    flags: u32,
    sizelimit: u64,
    /// `lo_file_name`: what the binder passed, not necessarily the path.
    file_name: [u8; LO_NAME_SIZE],
    /// Direct-I/O alignment of the backing file (`lo_min_dio_size`).
    min_dio_size: u32,
    sysfs_inited: bool,
    /// A bound device keeps the module loaded.
    module_ref: Option<ModuleRef>,
}

impl Config {
    const fn new() -> Self {
        Self {
            flags: 0,
            sizelimit: 0,
            file_name: [0; LO_NAME_SIZE],
            min_dio_size: SECTOR_SIZE,
            sysfs_inited: false,
            module_ref: None,
        }
    }
}

/// A loop device (loop.c's `struct loop_device`).
#[pin_data]
pub(crate) struct LoopDevice {
    number: u32,
    /// `lo_state`: changed only under the device mutex; read without it by `queue_rq` and
    /// `LOOP_CTL_GET_FREE`, which tolerate a stale value, as in loop.c.
    state: Atomic<u32>,
    #[pin]
    lock: DevLock<Config>,
    /// The backing file again, for readers that must not take the device mutex (loop.c's
    /// `lo_lock`): binds walking a chain of stacked devices, which would otherwise nest two
    /// device mutexes, and sysfs `backing_file`. Set before the device is `Bound`, cleared
    /// after it no longer is, both under the device mutex.
    #[pin]
    backing: SpinLock<Option<BackingFile>>,
    disk: DiskRef,
    /// The worker and per-tag commands, created at first bind.
    engine: SetOnce<Engine>,
}

/// The blk-mq operations of loop devices.
pub(crate) struct LoopQueue;

#[vtable]
impl Operations for LoopQueue {
    type QueueData = Arc<LoopDevice>;

    fn queue_rq(dev: ArcBorrow<'_, LoopDevice>, rq: ARef<Request<Self>>, _is_last: bool) -> Result {
        if dev.state() != LoState::Bound {
            return Err(EIO);
        }
        // Flush, discard and write-zeroes are never AIO; reads and writes are when the device
        // uses direct I/O. The flag changes only with the queue frozen, so it is stable for the
        // life of this request.
        let use_aio = match rq_info(&rq).op {
            ReqOp::Read | ReqOp::Write => dev.lock.io_view(&rq).is_some_and(|io| io.dio),
            _ => false,
        };
        dev.engine.as_ref().ok_or(EIO)?.queue(rq, use_aio)
    }

    fn commit_rqs(_dev: ArcBorrow<'_, LoopDevice>) {}

    fn complete(rq: ARef<Request<Self>>) {
        // rust_loop ends its requests itself (in the worker or the kiocb callback) and never
        // asks blk-mq for a deferred completion, so this is not called; fail safe if it is.
        end_request(rq, BlkStatus::IOERR);
    }
}

impl LoopQueue {
    /// Completes a read or write (`lo_complete_rq`).
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
    pub(crate) fn complete_rw(rq: ARef<Request<LoopQueue>>, res: RwResult) {
        match res {
            RwResult::Done => end_request(rq, BlkStatus::OK),
            RwResult::Error(e) => end_request(rq, rw_error_status(e)),
            // `blk_update_request` advances the position in whole sectors only: a remainder
            // starting mid-sector would be retried at the wrong place.
            RwResult::Partial { done } if done > 0 && done % SECTOR_SIZE == 0 => {
                update_request(&rq, done);
                requeue_request(rq);
            }
            RwResult::Partial { done } | RwResult::ShortRead { done } => {
                if done > 0 {
                    update_request(&rq, done);
                }
                if rq_info(&rq).op == ReqOp::Read {
                    zero_fill_request(&rq);
                }
                end_request(rq, BlkStatus::IOERR);
            }
        }
    }
}

/// The status a read or write error from the backing file ends its request with.
fn rw_error_status(e: Error) -> BlkStatus {
    if e == eopnotsupp() || e == ENOSPC {
        BlkStatus::from_error(e)
    } else {
        BlkStatus::IOERR
    }
}

/// Size in 512-byte sectors of a backing file seen through `offset` and `sizelimit`
/// (`lo_calculate_size`): a trailing partial sector is not part of the device.
fn calculate_size(file: &BackingFile, offset: u64, sizelimit: u64) -> u64 {
    let size = u64::try_from(file.size()).unwrap_or(0);
    let mut size = size.saturating_sub(offset);
    if sizelimit > 0 && sizelimit < size {
        size = sizelimit;
    }
    size >> 9
}

/// Direct I/O is possible only if the file supports it, the device's logical block size is at
/// least the file's DIO alignment, and the offset is aligned to it (`lo_can_use_dio`).
fn can_use_dio(file: &BackingFile, block_size: u32, offset: u64, min_dio_size: u32) -> bool {
    file.can_direct_io()
        && block_size >= min_dio_size
        && offset & u64::from(min_dio_size.max(1) - 1) == 0
}

/// With direct I/O the default block size matches the backing alignment, else 512.
fn default_block_size(dio: bool, min_dio_size: u32) -> u32 {
    if dio {
        min_dio_size
    } else {
        SECTOR_SIZE
    }
}

/// The limits of a device backed by `file` (`loop_update_limits`).
fn limits_for(file: &BackingFile, block_size: u32, read_only: bool) -> LoopLimits {
    let (granularity, max_discard) = file.discard_config();
    LoopLimits {
        block_size,
        write_cache: file.has_fsync() && !read_only,
        rotational: file.rotational(),
        max_discard_sectors: max_discard,
        discard_granularity: granularity,
    }
}

/// Checked copy of the settable part of a `loop_info64` (`loop_set_status_from_info`).
struct StatusInfo {
    offset: u64,
    sizelimit: u64,
    file_name: [u8; LO_NAME_SIZE],
}

impl StatusInfo {
    fn from_info(info: &LoopInfo64) -> Result<Self> {
        if info.lo_encrypt_key_size as usize > LO_KEY_SIZE {
            return Err(EINVAL);
        }
        match info.lo_encrypt_type {
            LO_CRYPT_NONE => {}
            LO_CRYPT_XOR => {
                pr_warn!("support for the xor transformation has been removed.\n");
                return Err(EINVAL);
            }
            LO_CRYPT_CRYPTOAPI => {
                pr_warn!("support for cryptoloop has been removed.  Use dm-crypt instead.\n");
                return Err(EINVAL);
            }
            _ => return Err(EINVAL),
        }
        // Avoid assigning overflow values.
        if info.lo_offset > i64::MAX as u64 || info.lo_sizelimit > i64::MAX as u64 {
            return Err(EOVERFLOW);
        }
        let mut file_name = info.lo_file_name;
        file_name[LO_NAME_SIZE - 1] = 0;
        Ok(Self {
            offset: info.lo_offset,
            sizelimit: info.lo_sizelimit,
            file_name,
        })
    }
}

fn read_user<T: kernel::transmute::FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
        .reader()
        .read::<T>()
}

fn write_user<T: kernel::transmute::AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
        .writer()
        .write(value)
}

fn enosys() -> Error {
    Error::from_errno(-(kernel::bindings::ENOSYS as i32))
}

fn eopnotsupp() -> Error {
    Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))
}

fn enoioctlcmd() -> Error {
    Error::from_errno(-(kernel::bindings::ENOIOCTLCMD as i32))
}

impl LoopDevice {
    /// Creates device `number`: tag set, gendisk and state, and adds the disk (`loop_add`).
    fn create(number: u32) -> Result<(Arc<LoopDevice>, Disk)> {
        let depth =
            u32::try_from(*module_parameters::hw_queue_depth.value()).map_err(|_| EINVAL)?;
        let new_disk = NewDisk::alloc(depth)?;
        let disk = new_disk.handle();
        let dev = Arc::pin_init(
            pin_init!(LoopDevice {
                number,
                state: Atomic::new(LoState::Unbound as u32),
                lock <- DevLock::new(Config::new(), disk),
                backing <- new_spinlock!(None, "rust_loop::lo_lock"),
                disk,
                engine: SetOnce::new(),
            }),
            GFP_KERNEL,
        )?;
        let added = new_disk.add(dev.clone(), number, part_shift())?;
        Ok((dev, added))
    }

    fn state(&self) -> LoState {
        LoState::from_raw(self.state.load(Acquire))
    }

    /// Changes the state; the device mutex must be held.
    fn set_state(&self, _guard: &DevGuard<'_, Config>, state: LoState) {
        self.state.store(state as u32, Release);
    }

    /// `->open`: unbound devices can be opened (to bind them); dying ones cannot.
    pub(crate) fn open(&self, _mode: OpenMode) -> Result {
        let _g = self.lock.lock();
        match self.state() {
            LoState::Rundown | LoState::Deleting => Err(ENXIO),
            _ => Ok(()),
        }
    }

    /// `->release`: on the last close of a device marked for autoclear, or on which
    /// `LOOP_CLR_FD` was called, unbind it.
    pub(crate) fn release(&self) {
        if self.disk.openers() > 0 {
            return;
        }
        let need_clear = {
            let g = self.lock.lock();
            if self.state() == LoState::Bound && g.flags & LO_FLAGS_AUTOCLEAR != 0 {
                self.set_state(&g, LoState::Rundown);
            }
            self.state() == LoState::Rundown
        };
        if need_clear {
            self.unbind();
        }
    }

    /// Tears the binding down (`__loop_clr_fd`). Runs from the final `->release` (with
    /// `open_mutex` held) in `Rundown`, which keeps everyone else away.
    fn unbind(&self) {
        let disk = self.disk;
        let (file, module_ref, sysfs_inited) = {
            let mut g = self.lock.lock();
            let mut f = g.freeze();
            let (cfg, io) = f.parts();
            io.offset = 0;
            io.dio = false;
            io.read_only = false;
            cfg.sizelimit = 0;
            cfg.file_name = [0; LO_NAME_SIZE];
            // Its own statement: the spinlock must be released before the queue is unfrozen
            // (which sleeps), and a guard in the block's tail expression would outlive `f`.
            let mirror = self.backing.lock().take();
            (
                (io.file.take(), mirror),
                cfg.module_ref.take(),
                core::mem::take(&mut cfg.sysfs_inited),
            )
        };
        disk.reset_block_size();
        disk.invalidate();
        // Not under the device mutex: removing the group waits for readers, which take it.
        if sysfs_inited {
            disk.remove_sysfs_group();
        }
        // Let user space know about this change.
        disk.uevent_change();
        // The opener that is closing still holds a module reference.
        drop(module_ref);
        disk.force_media_change();
        // Remove all partitions, including ones added by hand with BLKPG, which may exist even
        // without LO_FLAGS_PARTSCAN. `open_mutex` is held already on the release path.
        if let Err(e) = disk.drop_partitions_in_release() {
            pr_warn!(
                "__loop_clr_fd: partition scan of loop{} failed (rc={})\n",
                self.number,
                e.to_errno()
            );
        }
        {
            let mut g = self.lock.lock();
            g.flags = 0;
            if part_shift() == 0 {
                disk.set_partscan(false);
            }
            self.set_state(&g, LoState::Unbound);
        }
        // The last reference to the backing file is dropped only now, outside the device mutex:
        // dropping it can take `open_mutex`, which is taken before the device mutex elsewhere.
        drop(file);
    }

    /// Handles one request in the worker (`loop_handle_cmd` + `do_req_filebacked`).
    pub(crate) fn handle_cmd(&self, cmd: CmdHandle<'_>) {
        // We can block in this context, so ignore REQ_NOWAIT.
        clear_nowait(cmd.request());
        let info = cmd.info();
        let result = {
            let Some(io) = self.lock.io_view(cmd.request()) else {
                return cmd.finish(BlkStatus::IOERR);
            };
            let Some(file) = io.file.as_deref() else {
                return cmd.finish(BlkStatus::IOERR);
            };
            let pos = (info.sector << 9).checked_add(io.offset);
            if info.op.is_write() && io.read_only {
                Err(EIO)
            } else {
                match (info.op, pos) {
                    (ReqOp::Read | ReqOp::Write, Some(pos)) => {
                        // `read_write` completes the request, now or from the kiocb callback.
                        return cmd.read_write(&self.lock, pos, info.op == ReqOp::Write);
                    }
                    (ReqOp::Flush, _) => file.fsync(),
                    (ReqOp::WriteZeroes { unmap }, Some(pos)) => {
                        // If the caller doesn't want deallocation, zero the range; otherwise
                        // punch it out.
                        let mode = if unmap {
                            FALLOC_FL_PUNCH_HOLE
                        } else {
                            FALLOC_FL_ZERO_RANGE
                        };
                        self.fallocate(file, mode, pos, info.bytes)
                    }
                    (ReqOp::Discard, Some(pos)) => {
                        self.fallocate(file, FALLOC_FL_PUNCH_HOLE, pos, info.bytes)
                    }
                    (ReqOp::Other(op), _) => {
                        pr_warn_once!("loop{}: unexpected request op {}\n", self.number, op);
                        Err(EIO)
                    }
                    _ => Err(EIO),
                }
            }
        };
        // Non-AIO commands: EOPNOTSUPP passes through, every other error is EIO.
        let status = match result {
            Ok(()) => BlkStatus::OK,
            Err(e) if e == eopnotsupp() => BlkStatus::NOTSUPP,
            Err(_) => BlkStatus::IOERR,
        };
        cmd.finish(status);
    }

    /// Discard / write-zeroes through `->fallocate` (`lo_fallocate`).
    fn fallocate(&self, file: &BackingFile, mode: i32, pos: u64, bytes: u32) -> Result {
        if self.disk.max_discard_sectors() == 0 {
            return Err(eopnotsupp());
        }
        match file.fallocate(mode, pos, u64::from(bytes)) {
            Err(e) if e == eopnotsupp() => {
                // The limits were set hoping fallocate works; clear them now that it does not,
                // so the block layer logs the error once.
                self.disk.clear_discard_limits(
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

    /// The `/dev/loopN` ioctls (`lo_ioctl`).
    pub(crate) fn ioctl(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        let may_change = || {
            if mode.write() || capable_sys_admin() {
                Ok(())
            } else {
                Err(EPERM)
            }
        };
        match cmd {
            LOOP_SET_FD => {
                // Legacy: a zeroed `loop_config` with only the fd set, which gives the defaults.
                let config = LoopConfig {
                    fd: arg as u32,
                    block_size: 0,
                    info: LoopInfo64::zeroed(),
                    reserved: [0; 8],
                };
                self.configure(bdev, mode, &config)
            }
            LOOP_CONFIGURE => {
                let config = read_user::<LoopConfig>(arg)?;
                self.configure(bdev, mode, &config)
            }
            LOOP_CHANGE_FD => self.change_fd(bdev, arg as u32),
            LOOP_CLR_FD => self.clr_fd(),
            LOOP_SET_STATUS => {
                may_change()?;
                let old = read_user::<LoopInfo>(arg)?;
                self.set_status(&info64_from_old(&old))
            }
            LOOP_GET_STATUS => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = info64_to_old(&self.get_status()?)?;
                write_user(arg, &info).map(|()| 0)
            }
            LOOP_SET_STATUS64 => {
                may_change()?;
                let info = read_user::<LoopInfo64>(arg)?;
                self.set_status(&info)
            }
            LOOP_GET_STATUS64 => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = self.get_status()?;
                write_user(arg, &info).map(|()| 0)
            }
            LOOP_SET_BLOCK_SIZE => {
                may_change()?;
                self.set_block_size(bdev, mode, arg)
            }
            LOOP_SET_CAPACITY => {
                may_change()?;
                self.set_capacity()
            }
            LOOP_SET_DIRECT_IO => {
                may_change()?;
                self.set_dio(arg != 0)
            }
            _ => {
                // Unknown commands still wait for the mutex first, as `lo_simple_ioctl`.
                let _g = self.lock.lock();
                Err(EINVAL)
            }
        }
    }

    /// The 32-bit compat ioctls (`lo_compat_ioctl`).
    pub(crate) fn compat_ioctl(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        match cmd {
            // The legacy `struct loop_info` differs for 32-bit callers (compat_loop_info).
            LOOP_SET_STATUS | LOOP_GET_STATUS => compat::status_ioctl(self, cmd, arg),
            // Pointer arguments: `compat_ptr` zero-extends, which `arg` already is.
            LOOP_SET_CAPACITY | LOOP_CLR_FD | LOOP_GET_STATUS64 | LOOP_SET_STATUS64
            | LOOP_CONFIGURE | LOOP_SET_FD | LOOP_CHANGE_FD | LOOP_SET_BLOCK_SIZE
            | LOOP_SET_DIRECT_IO => self.ioctl(bdev, mode, cmd, arg & 0xffff_ffff),
            _ => Err(enoioctlcmd()),
        }
    }

    /// Binds a backing file (`loop_configure`).
    fn configure(&self, bdev: &BlockDevice, mode: OpenMode, config: &LoopConfig) -> Result<i32> {
        let file = BackingFile::fget(config.fd)?;
        file.check_ops()?;
        let is_loop = file.as_loop_device().is_some();
        // Safe: the open file of this ioctl holds a module reference already.
        let module_ref = ModuleRef::get();
        // If we don't hold an exclusive handle for the device, upgrade to one here to avoid
        // changing the device under an exclusive owner.
        let claim = bdev.claim(mode)?;
        let global = is_loop.then(|| LOOP_VALIDATE.lock());
        let mut g = self.lock.lock();
        if self.state() != LoState::Unbound {
            return Err(EBUSY);
        }
        self.validate_file(&file, bdev.devt())?;
        let info = &config.info;
        if info.lo_flags & !LOOP_CONFIGURE_SETTABLE_FLAGS != 0 {
            return Err(EINVAL);
        }
        let status = StatusInfo::from_info(info)?;
        let mut flags = info.lo_flags;
        if !file.writable() || !mode.write() || !file.has_write_iter() {
            flags |= LO_FLAGS_READ_ONLY;
        }
        let read_only = flags & LO_FLAGS_READ_ONLY != 0;
        if self.engine.as_ref().is_none() {
            let depth =
                u32::try_from(*module_parameters::hw_queue_depth.value()).map_err(|_| EINVAL)?;
            self.engine.populate(Engine::new(self, self.number, depth)?);
        }

        let disk = self.disk;
        // Suppress uevents while reconfiguring the device.
        disk.suppress_uevents(true);
        disk.force_media_change();
        disk.set_read_only(read_only);
        // An O_DIRECT backing fd asks for direct I/O by itself.
        if file.opened_direct() {
            flags |= LO_FLAGS_DIRECT_IO;
        }
        let min_dio_size = file.min_dio_size();
        let block_size = match config.block_size {
            0 => default_block_size(flags & LO_FLAGS_DIRECT_IO != 0, min_dio_size),
            bs => bs,
        };
        // The device is not bound yet, so nothing is in flight. Unlike loop.c (whose error path
        // here leaves uevents suppressed and the file's gfp mask changed), nothing is bound yet.
        if let Err(e) = disk.set_limits(&limits_for(&file, block_size, read_only)) {
            disk.suppress_uevents(false);
            return Err(e);
        }
        // We might switch to direct I/O mode for the loop device: write back all dirty data in
        // the page cache now, so that the individual I/O operations don't have to do that.
        let _ = file.fsync();
        let dio = flags & LO_FLAGS_DIRECT_IO != 0
            && can_use_dio(&file, block_size, status.offset, min_dio_size);
        let size = calculate_size(&file, status.offset, status.sizelimit);
        {
            let mut f = g.freeze();
            let (cfg, io) = f.parts();
            *self.backing.lock() = Some(file.clone());
            io.file = Some(file.bind());
            io.offset = status.offset;
            io.dio = dio;
            io.read_only = read_only;
            cfg.flags = flags & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN);
            cfg.sizelimit = status.sizelimit;
            cfg.file_name = status.file_name;
            cfg.min_dio_size = min_dio_size;
            cfg.module_ref = Some(module_ref);
        }
        g.sysfs_inited = disk.add_sysfs_group();
        disk.set_size(size);
        self.set_state(&g, LoState::Bound);
        if part_shift() != 0 {
            g.flags |= LO_FLAGS_PARTSCAN;
        }
        let partscan = g.flags & LO_FLAGS_PARTSCAN != 0;
        if partscan {
            disk.set_partscan(true);
        }
        disk.suppress_uevents(false);
        disk.uevent_change();
        let file_name = g.file_name;
        drop(g);
        drop(global);
        if partscan {
            self.reread_partitions(&file_name);
        }
        drop(claim);
        Ok(0)
    }

    /// Refuses a backing file that is this device, directly or through a chain of loop
    /// devices, or a loop device that is not bound (`loop_validate_file`).
    ///
    /// Called with `LOOP_VALIDATE` held when `file` is a loop device: a device of the chain that
    /// is bound stays bound meanwhile (unbinding starts in `clr_fd`, under the same lock), and
    /// its backing file is read under its `backing` spinlock, never its mutex.
    fn validate_file(&self, file: &BackingFile, devt: u32) -> Result {
        let mut next = file.clone();
        while let Some((rdev, l)) = next.as_loop_device() {
            if rdev == devt {
                return Err(EBADF);
            }
            if l.state() != LoState::Bound {
                return Err(EINVAL);
            }
            let backing = l.backing.lock().clone();
            next = backing.ok_or(EINVAL)?;
        }
        if !file.is_regular() && !file.is_block_device() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Swaps the backing file of a read-only device for one of the same size
    /// (`loop_change_fd`), e.g. for installers to release the original medium.
    fn change_fd(&self, bdev: &BlockDevice, fd: u32) -> Result<i32> {
        let disk = self.disk;
        let res = self.change_fd_inner(bdev, fd);
        // A change event is sent even on failure, as loop.c does.
        disk.uevent_change();
        res.map(|()| 0)
    }

    fn change_fd_inner(&self, bdev: &BlockDevice, fd: u32) -> Result {
        let file = BackingFile::fget(fd)?;
        file.check_ops()?;
        let disk = self.disk;
        disk.suppress_uevents(true);
        let res = (|| {
            let is_loop = file.as_loop_device().is_some();
            let global = is_loop.then(|| LOOP_VALIDATE.lock());
            let mut g = self.lock.lock();
            if self.state() != LoState::Bound {
                return Err(ENXIO);
            }
            // The loop device has to be read-only.
            if !g.io().read_only {
                return Err(EINVAL);
            }
            self.validate_file(&file, bdev.devt())?;
            let old = g.io().file.as_deref().cloned().ok_or(ENXIO)?;
            let offset = g.io().offset;
            let sizelimit = g.sizelimit;
            // The size of the new backing store needs to be the same.
            if calculate_size(&file, offset, sizelimit) != calculate_size(&old, offset, sizelimit) {
                return Err(EINVAL);
            }
            // We might switch to direct I/O mode: write back dirty data now.
            let _ = file.fsync();
            disk.force_media_change();
            let min_dio_size = file.min_dio_size();
            let block_size = disk.logical_block_size();
            let old_bound = {
                let mut f = g.freeze();
                let (cfg, io) = f.parts();
                let dio = (io.dio || file.opened_direct())
                    && can_use_dio(&file, block_size, offset, min_dio_size);
                let old_bound = io.file.replace(file.clone().bind());
                let old_mirror = self.backing.lock().replace(file.clone());
                io.dio = dio;
                cfg.min_dio_size = min_dio_size;
                (old_bound, old_mirror)
            };
            let partscan = g.flags & LO_FLAGS_PARTSCAN != 0;
            let file_name = g.file_name;
            drop(g);
            drop(global);
            // Let walkers of stacked devices that may still look at the old file finish before
            // the last reference to it goes.
            drop(LOOP_VALIDATE.lock());
            drop(old_bound);
            Ok((partscan, file_name))
        })();
        disk.suppress_uevents(false);
        let (partscan, file_name) = res?;
        if partscan {
            self.reread_partitions(&file_name);
        }
        Ok(())
    }

    /// Marks the device for unbinding at last close (`loop_clr_fd`). Never `EBUSY`: a mounted
    /// device is detached at unmount.
    fn clr_fd(&self) -> Result<i32> {
        // Under the global lock, so that a concurrent bind walking a chain through this device
        // sees it as unbound.
        let _global = LOOP_VALIDATE.lock();
        let mut g = self.lock.lock();
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        // Mark the device for removing the backing device on last close. If we are the only
        // opener, also switch the state to rundown here to prevent new openers from coming in.
        g.flags |= LO_FLAGS_AUTOCLEAR;
        if self.disk.openers() == 1 {
            self.set_state(&g, LoState::Rundown);
        }
        Ok(0)
    }

    /// `LOOP_SET_STATUS64` (`loop_set_status`).
    fn set_status(&self, info: &LoopInfo64) -> Result<i32> {
        let disk = self.disk;
        let mut g = self.lock.lock();
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        let size_changed = g.io().offset != info.lo_offset || g.sizelimit != info.lo_sizelimit;
        if size_changed {
            disk.sync_and_invalidate();
        }
        let block_size = disk.logical_block_size();
        let partscan = {
            // I/O needs to be drained before changing the offset or size limit.
            let mut f = g.freeze();
            let (cfg, io) = f.parts();
            let status = StatusInfo::from_info(info)?;
            io.offset = status.offset;
            cfg.sizelimit = status.sizelimit;
            cfg.file_name = status.file_name;
            let partscan =
                cfg.flags & LO_FLAGS_PARTSCAN == 0 && info.lo_flags & LO_FLAGS_PARTSCAN != 0;
            cfg.flags &= !LOOP_SET_STATUS_CLEARABLE_FLAGS;
            cfg.flags |= info.lo_flags & LOOP_SET_STATUS_SETTABLE_FLAGS;
            // Update the direct I/O flag if the offset changed.
            if io.dio {
                io.dio = io
                    .file
                    .as_deref()
                    .is_some_and(|file| can_use_dio(file, block_size, io.offset, cfg.min_dio_size));
            }
            partscan
        };
        if partscan {
            disk.set_partscan(true);
        }
        if size_changed {
            let size = g
                .io()
                .file
                .as_deref()
                .map_or(0, |file| calculate_size(file, g.io().offset, g.sizelimit));
            disk.set_size(size);
        }
        let file_name = g.file_name;
        drop(g);
        if partscan {
            self.reread_partitions(&file_name);
        }
        Ok(0)
    }

    /// `LOOP_GET_STATUS64` (`loop_get_status`): the effective flags, and the backing file's
    /// identity, read without the device mutex.
    fn get_status(&self) -> Result<LoopInfo64> {
        let g = self.lock.lock();
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        let io = g.io();
        let mut info = LoopInfo64::zeroed();
        info.lo_number = self.number;
        info.lo_offset = io.offset;
        info.lo_sizelimit = g.sizelimit;
        info.lo_flags = g.flags
            | if io.read_only { LO_FLAGS_READ_ONLY } else { 0 }
            | if io.dio { LO_FLAGS_DIRECT_IO } else { 0 };
        info.lo_file_name = g.file_name;
        let file = io.file.as_deref().cloned().ok_or(ENXIO)?;
        // Drop the device mutex while we call into the file system.
        drop(g);
        let id = file.identity()?;
        info.lo_device = id.dev;
        info.lo_inode = id.ino;
        info.lo_rdevice = id.rdev;
        Ok(info)
    }

    /// `LOOP_SET_CAPACITY`: re-reads the backing file's size (`loop_set_capacity`). The block
    /// size stays, so a mounted file system keeps working.
    fn set_capacity(&self) -> Result<i32> {
        let g = self.lock.lock();
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        let file = g.io().file.as_deref().ok_or(ENXIO)?;
        self.disk
            .set_size(calculate_size(file, g.io().offset, g.sizelimit));
        Ok(0)
    }

    /// `LOOP_SET_DIRECT_IO` (`loop_set_dio`): `EINVAL` if direct I/O is not possible.
    fn set_dio(&self, use_dio: bool) -> Result<i32> {
        let mut g = self.lock.lock();
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        if g.io().dio == use_dio {
            return Ok(0);
        }
        if use_dio {
            let file = g.io().file.as_deref().ok_or(ENXIO)?;
            if !can_use_dio(
                file,
                self.disk.logical_block_size(),
                g.io().offset,
                g.min_dio_size,
            ) {
                return Err(EINVAL);
            }
            // Flush dirty pages before starting to use direct I/O.
            let _ = file.fsync();
        }
        // Freezing drains in-flight requests, so no request mixes the two modes.
        let mut f = g.freeze();
        f.parts().1.dio = use_dio;
        Ok(0)
    }

    /// `LOOP_SET_BLOCK_SIZE` (`loop_set_block_size`): `ENXIO` when unbound, which user space
    /// tells apart from `EINVAL` ("not supported").
    fn set_block_size(&self, bdev: &BlockDevice, mode: OpenMode, arg: usize) -> Result<i32> {
        let _claim = bdev.claim(mode)?;
        let mut g = self.lock.lock();
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        let disk = self.disk;
        if disk.logical_block_size() as usize == arg {
            return Ok(0);
        }
        // Unlike loop.c, which truncates the argument to 32 bits, an oversized one is invalid.
        let requested = u32::try_from(arg).map_err(|_| EINVAL)?;
        disk.sync_and_invalidate();
        let min_dio_size = g.min_dio_size;
        let io = g.io();
        let block_size = match requested {
            0 => default_block_size(io.dio, min_dio_size),
            bs => bs,
        };
        let file = io.file.as_deref().ok_or(ENXIO)?;
        // The limits update starts before the freeze: the block layer's lock order.
        let update = disk.start_limits(&limits_for(file, block_size, io.read_only));
        let mut f = g.freeze();
        let (_cfg, io) = f.parts();
        let res = update.commit();
        if let (true, Some(file)) = (io.dio, io.file.as_deref()) {
            io.dio = can_use_dio(file, disk.logical_block_size(), io.offset, min_dio_size);
        }
        res.map(|()| 0)
    }

    fn reread_partitions(&self, file_name: &[u8; LO_NAME_SIZE]) {
        if let Err(e) = self.disk.reread_partitions() {
            let len = file_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(LO_NAME_SIZE);
            let name = core::str::from_utf8(&file_name[..len]).unwrap_or("?");
            pr_warn!(
                "loop_reread_partitions: partition scan of loop{} ({}) failed (rc={})\n",
                self.number,
                name,
                e.to_errno()
            );
        }
    }

    /// Shows one attribute of `/sys/block/loopN/loop/`.
    pub(crate) fn show_attr(&self, attr: LoopAttr, out: &mut SysfsBuf<'_>) -> Result {
        if let LoopAttr::BackingFile = attr {
            // Like loop.c, under the spinlock only; the path is written outside it.
            let file = self.backing.lock().clone();
            if let Some(file) = file {
                let n = file.write_path(out.page())?;
                out.set_len(n);
            }
            return Ok(());
        }
        let g = self.lock.lock();
        let io = g.io();
        let flag = |set: bool| if set { "1" } else { "0" };
        let res = match attr {
            LoopAttr::BackingFile => Ok(()),
            LoopAttr::Offset => writeln!(out, "{}", io.offset),
            LoopAttr::Sizelimit => writeln!(out, "{}", g.sizelimit),
            LoopAttr::Autoclear => writeln!(out, "{}", flag(g.flags & LO_FLAGS_AUTOCLEAR != 0)),
            LoopAttr::Partscan => writeln!(out, "{}", flag(g.flags & LO_FLAGS_PARTSCAN != 0)),
            LoopAttr::Dio => writeln!(out, "{}", flag(io.dio)),
        };
        res.map_err(|_| EINVAL)
    }
}

/// `loop_info64_from_old`: the legacy struct has no size limit.
fn info64_from_old(old: &LoopInfo) -> LoopInfo64 {
    let mut info = LoopInfo64::zeroed();
    info.lo_number = old.lo_number as u32;
    info.lo_device = old.lo_device;
    info.lo_inode = old.lo_inode;
    info.lo_rdevice = old.lo_rdevice;
    info.lo_offset = i64::from(old.lo_offset) as u64;
    info.lo_flags = old.lo_flags as u32;
    info.lo_file_name = old.lo_name;
    info
}

/// `loop_info64_to_old`: `EOVERFLOW` if a value does not fit the legacy struct.
fn info64_to_old(info: &LoopInfo64) -> Result<LoopInfo> {
    let mut old = LoopInfo::zeroed();
    old.lo_number = info.lo_number as i32;
    old.lo_device = info.lo_device;
    old.lo_inode = info.lo_inode;
    old.lo_rdevice = info.lo_rdevice;
    old.lo_offset = info.lo_offset as i32;
    old.lo_flags = info.lo_flags as i32;
    old.lo_name = info.lo_file_name;
    // Only the offset can be truncated on 64-bit (the device numbers are unsigned long).
    if i64::from(old.lo_offset) as u64 != info.lo_offset {
        return Err(EOVERFLOW);
    }
    Ok(old)
}

/// The legacy status ioctls for 32-bit callers.
mod compat {
    use super::*;

    /// `struct compat_loop_info` on x86 (`compat_dev_t` is 16 bits, `compat_ulong_t` 32), with
    /// its padding spelled out: 140 bytes.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(super) struct CompatLoopInfo {
        lo_number: i32,
        lo_device: u16,
        pad0: u16,
        lo_inode: u32,
        lo_rdevice: u16,
        pad1: u16,
        lo_offset: i32,
        lo_encrypt_type: i32,
        lo_encrypt_key_size: i32,
        lo_flags: i32,
        lo_name: [u8; LO_NAME_SIZE],
        lo_encrypt_key: [u8; LO_KEY_SIZE],
        lo_init: [u32; 2],
        reserved: [u8; 4],
    }

    const _: () = assert!(core::mem::size_of::<CompatLoopInfo>() == 140);

    // SAFETY: `repr(C)` of integers and byte arrays with explicit padding: no implicit padding,
    // every bit pattern valid.
    unsafe impl kernel::transmute::FromBytes for CompatLoopInfo {}
    // SAFETY: As above.
    unsafe impl kernel::transmute::AsBytes for CompatLoopInfo {}

    pub(super) fn status_ioctl(dev: &LoopDevice, cmd: u32, arg: usize) -> Result<i32> {
        if cmd == LOOP_SET_STATUS {
            let c = read_user::<CompatLoopInfo>(arg)?;
            let mut info = LoopInfo64::zeroed();
            info.lo_number = c.lo_number as u32;
            info.lo_device = u64::from(c.lo_device);
            info.lo_inode = u64::from(c.lo_inode);
            info.lo_rdevice = u64::from(c.lo_rdevice);
            info.lo_offset = i64::from(c.lo_offset) as u64;
            info.lo_flags = c.lo_flags as u32;
            info.lo_file_name = c.lo_name;
            return dev.set_status(&info);
        }
        if arg == 0 {
            return Err(EINVAL);
        }
        let info = dev.get_status()?;
        let c = CompatLoopInfo {
            lo_number: info.lo_number as i32,
            lo_device: info.lo_device as u16,
            pad0: 0,
            lo_inode: info.lo_inode as u32,
            lo_rdevice: info.lo_rdevice as u16,
            pad1: 0,
            lo_offset: info.lo_offset as i32,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: info.lo_flags as i32,
            lo_name: info.lo_file_name,
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
        };
        if u64::from(c.lo_device) != info.lo_device
            || u64::from(c.lo_rdevice) != info.lo_rdevice
            || u64::from(c.lo_inode) != info.lo_inode
            || i64::from(c.lo_offset) as u64 != info.lo_offset
        {
            return Err(EOVERFLOW);
        }
        write_user(arg, &c).map(|()| 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Device registry and `/dev/loop-control`.

/// A registered device (loop.c's idr entry).
struct Entry {
    number: u32,
    /// Hidden while `LOOP_CTL_REMOVE` works on it (`idr_visible`).
    visible: bool,
    dev: Arc<LoopDevice>,
    /// Taken out (and dropped, deleting the disk) by removal.
    disk: Option<Disk>,
}

/// All devices, sorted by number (loop.c's `loop_index_idr` under `loop_ctl_mutex`).
struct Registry {
    entries: KVec<Entry>,
}

impl Registry {
    const fn new() -> Self {
        Self {
            entries: KVec::new(),
        }
    }

    fn position(&self, number: u32) -> core::result::Result<usize, usize> {
        self.entries.binary_search_by_key(&number, |e| e.number)
    }

    /// The lowest number not in use.
    fn first_free(&self) -> u32 {
        let mut n = 0;
        for e in self.entries.iter() {
            if e.number != n {
                break;
            }
            n += 1;
        }
        n
    }
}

/// Creates device `i`, or the lowest free one if `i` is negative (`loop_add`).
fn loop_add(i: i32) -> Result<i32> {
    let mut reg = LOOP_CTL.lock();
    let number = match u32::try_from(i) {
        Ok(n) => {
            if reg.position(n).is_ok() {
                return Err(EEXIST);
            }
            n
        }
        Err(_) => reg.first_free(),
    };
    let result = i32::try_from(number).map_err(|_| ENOSPC)?;
    let pos = reg.position(number).unwrap_or_else(|p| p);
    reg.entries.reserve(1, GFP_KERNEL)?;
    let (dev, disk) = LoopDevice::create(number)?;
    let entry = Entry {
        number,
        visible: true,
        dev,
        disk: Some(disk),
    };
    reg.entries
        .insert_within_capacity(pos, entry)
        .map_err(|_| ENOMEM)?;
    Ok(result)
}

/// Removes an unbound, unopened device (`loop_control_remove`).
fn loop_control_remove(i: i32) -> Result<i32> {
    let Ok(number) = u32::try_from(i) else {
        pr_warn_once!("deleting an unspecified loop device is not supported.\n");
        return Err(EINVAL);
    };
    let disk = {
        let mut reg = LOOP_CTL.lock();
        let pos = reg.position(number).map_err(|_| ENODEV)?;
        let entry = &mut reg.entries[pos];
        if !entry.visible {
            return Err(ENODEV);
        }
        let dev = entry.dev.clone();
        let g = dev.lock.lock();
        if dev.state() != LoState::Unbound || dev.disk.openers() > 0 {
            return Err(EBUSY);
        }
        // Mark this loop device as no more bound, but not quite unbound yet.
        dev.set_state(&g, LoState::Deleting);
        drop(g);
        // Hidden, but its number stays taken until the disk is gone.
        entry.visible = false;
        entry.disk.take()
    };
    // Deleting the disk can wait for udev and sysfs readers: not under the registry lock.
    drop(disk);
    let mut reg = LOOP_CTL.lock();
    if let Ok(pos) = reg.position(number) {
        let entry = reg.entries.remove(pos).map_err(|_| EINVAL)?;
        drop(reg);
        drop(entry);
    }
    Ok(0)
}

/// The first visible unbound device, or a new one (`loop_control_get_free`).
fn loop_control_get_free() -> Result<i32> {
    {
        let reg = LOOP_CTL.lock();
        // Hitting a race results in creating a new loop device, which is harmless.
        if let Some(e) = reg
            .entries
            .iter()
            .find(|e| e.visible && e.dev.state() == LoState::Unbound)
        {
            return i32::try_from(e.number).map_err(|_| ENOSPC);
        }
    }
    loop_add(-1)
}

/// The `/dev/loop-control` ioctls (`loop_control_ioctl`). Access is governed by the node's
/// permissions, as in loop.c.
pub(crate) fn loop_control_ioctl(cmd: u32, arg: usize) -> Result<i32> {
    // The argument is an int in loop.c.
    let parm = arg as i32;
    match cmd {
        LOOP_CTL_ADD => loop_add(parm),
        LOOP_CTL_REMOVE => loop_control_remove(parm),
        LOOP_CTL_GET_FREE => loop_control_get_free(),
        _ => Err(enosys()),
    }
}

/// Legacy autoload: opening a missing `/dev/loopN` node creates device N (`loop_probe`).
pub(crate) fn loop_probe(minor: u32) {
    let number = minor >> part_shift();
    let max_loop = *module_parameters::max_loop.value();
    // loop.c makes an explicit `max_loop` a hard limit here; the Rust module parameter cannot
    // tell an explicit value from the default, so a non-default one is taken as explicit.
    if max_loop != 8 && max_loop > 0 && number >= max_loop as u32 {
        return;
    }
    if let Ok(n) = i32::try_from(number) {
        let _ = loop_add(n);
    }
}

/// Removes every device at module unload.
struct Devices;

impl Drop for Devices {
    fn drop(&mut self) {
        // Nobody else can reach the registry now: `/dev/loop-control` and the major are gone,
        // and open devices would have kept the module loaded.
        let entries = core::mem::take(&mut LOOP_CTL.lock().entries);
        drop(entries);
    }
}

/// The module: `/dev/loop-control`, block major 7 and the devices.
#[pin_data]
struct LoopModule {
    // Fields drop in declaration order, which is loop_exit()'s: first the major (no more
    // probes), then /dev/loop-control (no more ioctls), then the devices.
    _major: MajorRegistration,
    #[pin]
    _control: ControlDevice,
    _devices: Devices,
}

impl kernel::InPlaceModule for LoopModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: Called once, before anything can use the locks.
        unsafe {
            LOOP_CTL.init();
            LOOP_VALIDATE.init();
        }
        let params = (|| {
            let max_part = *module_parameters::max_part.value();
            let max_loop = *module_parameters::max_loop.value();
            if *module_parameters::hw_queue_depth.value() < 1 {
                return Err(EINVAL);
            }
            let shift = if max_part > 0 {
                32 - (max_part as u32).leading_zeros()
            } else {
                0
            };
            if (1u64 << shift) > u64::from(DISK_MAX_PARTS) {
                return Err(EINVAL);
            }
            if max_loop < 0 || max_loop as u64 > 1u64 << (MINORBITS - shift) {
                return Err(EINVAL);
            }
            PART_SHIFT.store(shift, Relaxed);
            Ok(max_loop)
        })();
        try_pin_init!(Self {
            _control <- ControlDevice::register().pin_chain(|_| Ok(())),
            _major: {
                params?;
                MajorRegistration::register()?
            },
            _devices: {
                // Pre-create `max_loop` devices; like loop.c, failures here are not fatal.
                for i in 0..params.unwrap_or(0) {
                    let _ = loop_add(i);
                }
                pr_info!("module loaded\n");
                Devices
            },
        })
    }
}
