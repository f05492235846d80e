// SPDX-License-Identifier: GPL-2.0

//! rust_loop: the Linux loop block driver (`drivers/block/loop.c`) as a Rust module.
//!
//! A loop device (`/dev/loopN`, block major 7) exposes a file as a block device. Devices are
//! created at load (`max_loop`) or through `/dev/loop-control`, bound to a backing file with
//! `LOOP_CONFIGURE` / `LOOP_SET_FD`, and torn down at last close after `LOOP_CLR_FD` or with
//! `LO_FLAGS_AUTOCLEAR`. The user-space ABI (ioctls, errnos, flags, sysfs `loop/` attributes,
//! uevents) is loop.c's, so unmodified `losetup` and `mount -o loop` work.
//!
//! This file holds the module, the device registry and `/dev/loop-control`, the device state
//! machine and the `/dev/loopN` ioctls, all in safe Rust. The seed's I/O path is
//! [`rust_loop_aio`]; the typed kernel layer under both is in `rust_loop/`, one file per kernel
//! object.

use core::fmt::Write;
use kernel::{
    block::{SECTOR_SHIFT, SECTOR_SIZE},
    pr_warn_once,
    prelude::*,
    str::CString,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        new_spinlock, Arc, SetOnce, SpinLock,
    },
    uaccess::{UserPtr, UserSlice},
};

mod rust_loop_aio;

// The typed kernel layer: every use of `kernel::bindings` is in these files.
#[path = "rust_loop/blkdev.rs"]
mod blkdev;
#[path = "rust_loop/cgroup.rs"]
mod cgroup;
#[path = "rust_loop/debugfs.rs"]
mod debugfs;
#[path = "rust_loop/disk.rs"]
mod disk;
#[path = "rust_loop/file.rs"]
mod file;
#[path = "rust_loop/helpers.rs"]
mod helpers;
#[path = "rust_loop/kworker.rs"]
mod kworker;
#[path = "rust_loop/lock.rs"]
mod lock;
#[path = "rust_loop/misc.rs"]
mod misc;
#[path = "rust_loop/param.rs"]
mod param;
#[path = "rust_loop/request.rs"]
mod request;
#[path = "rust_loop/sysfs.rs"]
mod sysfs;
#[path = "rust_loop/task.rs"]
mod task;
#[path = "rust_loop/uapi.rs"]
mod uapi;
#[path = "rust_loop/workqueue.rs"]
mod workqueue;

use blkdev::{BlockDevice, MajorRegistration, OpenMode, Probe};
use debugfs::{DebugDir, DebugFiles, DebugView};
use disk::{Disk, DiskRef, NewDisk, OpenMutexHeld, QueueLimits};
use file::{BackingFile, BoundFile};
use lock::{DevGuard, DevLock, Held, IoState, Publish, StaticKMutex};
use misc::{MiscOps, MiscRegistration};
use rust_loop_aio::{hw_queues, Engine, Stats};
use sysfs::{AttrGroup, SysfsBuf};
use task::{capable_sys_admin, cpu_ids, online_cpus, ModuleRef};
use uapi::*;

// Named `loop`, like the driver it replaces, so that everything that looks for "the loop
// driver" finds it: `modprobe loop`, /sys/module/loop, `options loop ...`, `loop.max_loop=`.
module! {
    type: LoopModule,
    name: "loop",
    authors: ["rust-loop developers"],
    description: "Loopback block device (rust_loop: the loop driver in Rust, with direct I/O and AIO)",
    license: "GPL",
    alias: ["block-major-7-*", "char-major-10-237", "devname:loop-control"],
}

/// This driver's version, in `modinfo loop`, /sys/module/loop/version and the load message.
const VERSION: &str = "1.1.0";

#[link_section = ".modinfo"]
#[used]
static MODINFO_VERSION: [u8; "version=1.1.0-rust_loop\0".len()] =
    param::modinfo("version=1.1.0-rust_loop\0");

// The parameters of loop.c, with its defaults and checks; read-only in sysfs. Typed in
// `.modinfo` as loop.c's: only `max_part` is a plain `module_param()` there (with
// `CONFIG_BLOCK_LEGACY_AUTOLOAD`, whose behaviour this driver has; README).
param::int_param!(
    MAX_LOOP,
    "max_loop",
    kernel::bindings::CONFIG_BLK_DEV_LOOP_MIN_COUNT as i32,
    i32::MIN,
    "Maximum number of loop devices"
);
param::int_param!(
    MAX_PART,
    "max_part",
    0,
    i32::MIN,
    "Maximum number of partitions per loop device",
    typed
);
param::int_param!(
    HW_QUEUE_DEPTH,
    "hw_queue_depth",
    128,
    1,
    "Queue depth for each hardware queue. Default: 128"
);
// Not in loop.c, which has one hardware queue per device.
param::int_param!(
    NR_HW_QUEUES,
    "nr_hw_queues",
    0,
    0,
    "Hardware queues per device, each with its worker on its CPUs. Default: 0, one per online CPU (at most 16); 1 is loop.c's shape",
    typed
);

/// `LOOP_CONFIGURE` accepts every flag.
const LOOP_CONFIGURE_SETTABLE_FLAGS: u32 =
    LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;
/// `LOOP_SET_STATUS*` can set these, and clear only `LO_FLAGS_AUTOCLEAR`.
const LOOP_SET_STATUS_SETTABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
const LOOP_SET_STATUS_CLEARABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR;
/// `MINORBITS` and `DISK_MAX_PARTS` (`include/linux/kdev_t.h`, `include/linux/blkdev.h`).
const MINORBITS: u32 = kernel::bindings::MINORBITS;
const DISK_MAX_PARTS: u32 = 256;

/// `max_part` turned into the number of minor bits per device (0: partitions get dynamic minors).
static PART_SHIFT: Atomic<u32> = Atomic::new(0);

/// All devices (loop.c's `loop_index_idr` under `loop_ctl_mutex`).
static LOOP_CTL: StaticKMutex<Registry> = StaticKMutex::new(Registry::new());

/// loop.c's `loop_validate_mutex`: serialises binds that walk stacked loop devices
/// (`validate_file`) against each other and against `LOOP_CLR_FD`.
static LOOP_VALIDATE: StaticKMutex<()> = StaticKMutex::new(());

fn part_shift() -> u32 {
    PART_SHIFT.load(Relaxed)
}

/// A disk of this driver, borrowed.
type LoopDisk<'a> = DiskRef<'a, LoopQueue>;

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

/// The part of a device's configuration under its mutex (the I/O path's part is [`IoConfig`]).
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

    /// loop.c's `lo_flags`: these flags plus `READ_ONLY` and `DIRECT_IO` from the I/O state `io`
    /// (what LOOP_GET_STATUS reports and sysfs `loop/` shows).
    fn lo_flags(&self, io: &IoConfig) -> u32 {
        self.flags
            | if io.read_only { LO_FLAGS_READ_ONLY } else { 0 }
            | if io.dio { LO_FLAGS_DIRECT_IO } else { 0 }
    }
}

/// What the I/O path reads for every request, without the device mutex (see [`DevLock`]).
pub(crate) struct IoConfig {
    file: Option<BoundFile>,
    offset: u64,
    /// `LO_FLAGS_DIRECT_IO` as in effect.
    dio: bool,
    /// `LO_FLAGS_READ_ONLY`.
    read_only: bool,
}

// SAFETY: `file` returns the field's file, which the field owns (`BoundFile` holds a reference
// to it), and the same one until the field is written through `&mut` or dropped.
unsafe impl IoState for IoConfig {
    fn file(&self) -> Option<&BackingFile> {
        self.file.as_deref()
    }
}

/// The values of `/sys/block/loopN/loop/` but `backing_file`, for sysfs to read without the
/// device mutex, as loop.c reads its fields: a read of `loop/offset` (`losetup -l`, udev) must
/// not wait behind a `LOOP_SET_STATUS` or `LOOP_SET_BLOCK_SIZE` that holds the mutex while it
/// writes back the device's page cache and drains its I/O, which may take long (a slow or
/// suspended backing device). Refreshed at every unfreeze and every release of the mutex (see
/// [`lock::Publish`]).
struct SysfsView {
    offset: Atomic<u64>,
    sizelimit: Atomic<u64>,
    /// [`Config::lo_flags`] (`autoclear`, `partscan`, `dio`).
    flags: Atomic<u32>,
}

impl SysfsView {
    /// The view of an unbound device.
    const fn new() -> Self {
        Self {
            offset: Atomic::new(0),
            sizelimit: Atomic::new(0),
            flags: Atomic::new(0),
        }
    }
}

impl Publish<Config, IoConfig> for SysfsView {
    fn publish(&self, cfg: &Config, io: &IoConfig, _held: Held) {
        // Each attribute is one value read on its own: no ordering between them is needed.
        self.offset.store(io.offset, Relaxed);
        self.sizelimit.store(cfg.sizelimit, Relaxed);
        self.flags.store(cfg.lo_flags(io), Relaxed);
    }
}

/// The device mutex of a loop device, held.
type LoopGuard<'a> = DevGuard<'a, Config, IoConfig, SysfsView>;

/// A loop device (loop.c's `struct loop_device`).
#[pin_data]
pub(crate) struct LoopDevice {
    /// The workers, created at first bind. First field, so dropped first: a worker still
    /// running (it borrows the device) is waited for before anything else of the device goes.
    engine: SetOnce<Engine>,
    number: u32,
    /// `lo_state`: changed only under the device mutex; read without it by `queue_rq` and
    /// `LOOP_CTL_GET_FREE`, which tolerate a stale value, as in loop.c.
    state: Atomic<u32>,
    #[pin]
    lock: DevLock<Config, IoConfig, SysfsView>,
    /// The backing file again, for readers that must not take the device mutex (loop.c's
    /// `lo_lock`): binds walking a chain of stacked devices, which would otherwise nest two
    /// device mutexes, and sysfs `backing_file`. Set before the device is `Bound`, cleared
    /// after it no longer is, both under the device mutex.
    #[pin]
    backing: SpinLock<Option<BackingFile>>,
    /// Hardware queues of the device's tag set.
    hw_queues: u32,
    /// What the I/O engine did (debugfs `stats`).
    stats: Stats,
}

/// The blk-mq, block-device, sysfs operations of loop devices.
pub(crate) struct LoopQueue;

/// The one operations table of loop disks (its address identifies them, see `loop_disk`).
static LOOP_FOPS: blkdev::Fops<LoopQueue> = blkdev::Fops::new();

impl blkdev::Operations for LoopQueue {
    const FOPS: &'static blkdev::Fops<Self> = &LOOP_FOPS;

    fn open(disk: LoopDisk<'_>, mode: OpenMode) -> Result {
        disk.data().open(mode)
    }

    fn release(disk: LoopDisk<'_>, held: &OpenMutexHeld<'_>) {
        disk.data().release(disk, held);
    }

    fn ioctl(
        bdev: &BlockDevice<'_, Self>,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
        compat: bool,
    ) -> Result<i32> {
        let disk = bdev.disk();
        let dev = disk.data();
        if compat {
            dev.compat_ioctl(bdev, mode, cmd, arg)
        } else {
            dev.ioctl(bdev, mode, cmd, arg)
        }
    }
}

/// The attributes of `/sys/block/loopN/loop/`, in [`AttrGroup::ATTR_NAMES`] order.
const ATTR_BACKING_FILE: usize = 0;
const ATTR_OFFSET: usize = 1;
const ATTR_SIZELIMIT: usize = 2;
const ATTR_AUTOCLEAR: usize = 3;
const ATTR_PARTSCAN: usize = 4;
const ATTR_DIO: usize = 5;

impl AttrGroup for LoopQueue {
    const GROUP_NAME: &'static CStr = c"loop";
    const ATTR_NAMES: &'static [&'static CStr] = &[
        c"backing_file",
        c"offset",
        c"sizelimit",
        c"autoclear",
        c"partscan",
        c"dio",
    ];

    fn show(disk: LoopDisk<'_>, index: usize, out: &mut SysfsBuf<'_>) -> Result {
        disk.data().show_attr(index, out)
    }
}

/// Size in 512-byte sectors of a backing file seen through `offset` and `sizelimit`
/// (`lo_calculate_size`): a trailing partial sector is not part of the device.
fn calculate_size(file: &BackingFile, offset: u64, sizelimit: u64) -> u64 {
    size_sectors(file.size(), offset, sizelimit)
}

/// The arithmetic of [`calculate_size`]: a negative file size counts as 0.
fn size_sectors(file_size: i64, offset: u64, sizelimit: u64) -> u64 {
    let size = u64::try_from(file_size).unwrap_or(0);
    let mut size = size.saturating_sub(offset);
    if sizelimit > 0 && sizelimit < size {
        size = sizelimit;
    }
    size >> SECTOR_SHIFT
}

/// Direct I/O is possible only if the file supports it, the device's logical block size is at
/// least the file's DIO alignment, and the offset is aligned to it (`lo_can_use_dio`).
fn can_use_dio(file: &BackingFile, block_size: u32, offset: u64, min_dio_size: u32) -> bool {
    file.can_direct_io() && dio_allowed(block_size, offset, min_dio_size)
}

/// The alignment part of [`can_use_dio`].
fn dio_allowed(block_size: u32, offset: u64, min_dio_size: u32) -> bool {
    // As loop.c, including its arithmetic for an alignment of 0 (mask of all ones).
    block_size >= min_dio_size && offset & u64::from(min_dio_size.wrapping_sub(1)) == 0
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
fn limits_for(file: &BackingFile, block_size: u32, read_only: bool) -> QueueLimits {
    let (granularity, max_discard) = file.discard_config();
    QueueLimits {
        block_size,
        write_cache: file.has_fsync() && !read_only,
        rotational: file.rotational(),
        max_discard_sectors: max_discard,
        discard_granularity: granularity,
    }
}

/// What `LOOP_CONFIGURE` binds, checked.
struct Binding {
    file: BackingFile,
    /// `LO_FLAGS_*` as asked, plus `READ_ONLY` and `DIRECT_IO` where the file forces them.
    flags: u32,
    status: StatusInfo,
    /// 0: the default.
    block_size: u32,
    module_ref: ModuleRef,
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

// ---------------------------------------------------------------------------------------------
// Device lifecycle: creation, open and last close, unbinding.

impl LoopDevice {
    /// Creates device `number`: tag set, gendisk and state, and adds the disk (`loop_add`).
    fn create(number: u32) -> Result<(Arc<LoopDevice>, Disk<LoopQueue>)> {
        let depth = u32::try_from(HW_QUEUE_DEPTH.get()).map_err(|_| EINVAL)?;
        let hw_queues = hw_queues(NR_HW_QUEUES.get(), online_cpus(), cpu_ids());
        let new_disk = NewDisk::<LoopQueue>::alloc(hw_queues, depth)?;
        let queue = new_disk.queue_id();
        let dev = Arc::pin_init(
            pin_init!(LoopDevice {
                number,
                state: Atomic::new(LoState::Unbound as u32),
                lock <- DevLock::new(
                    Config::new(),
                    IoConfig {
                        file: None,
                        offset: 0,
                        dio: false,
                        read_only: false,
                    },
                    SysfsView::new(),
                    queue,
                    c"rust_loop::lo_mutex",
                    kernel::static_lock_class!(),
                ),
                backing <- new_spinlock!(None, "rust_loop::lo_lock"),
                hw_queues,
                engine: SetOnce::new(),
                stats: Stats::new(),
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
    fn set_state(&self, _guard: &LoopGuard<'_>, state: LoState) {
        self.state.store(state as u32, Release);
    }

    /// The workers, once the device was first bound.
    fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// `->open`: unbound devices can be opened (to bind them); dying ones cannot.
    fn open(&self, _mode: OpenMode) -> Result {
        let _g = self.lock.lock_killable()?;
        match self.state() {
            LoState::Rundown | LoState::Deleting => Err(ENXIO),
            _ => Ok(()),
        }
    }

    /// `->release`: on the last close of a device marked for autoclear, or on which
    /// `LOOP_CLR_FD` was called, unbind it.
    fn release(&self, disk: LoopDisk<'_>, held: &OpenMutexHeld<'_>) {
        if disk.openers() > 0 {
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
            self.unbind(disk, held);
        }
    }

    /// Tears the binding down (`__loop_clr_fd`). Runs from the final `->release` (with
    /// `open_mutex` held) in `Rundown`, which keeps everyone else away.
    fn unbind(&self, disk: LoopDisk<'_>, held: &OpenMutexHeld<'_>) {
        let (file, module_ref, sysfs_inited) = {
            let mut g = self.lock.lock();
            let (file, module_ref, sysfs_inited) = match g.freeze(disk) {
                Ok(mut f) => {
                    let (cfg, io) = f.parts();
                    // `dio` is left as it is, as loop.c leaves `LO_FLAGS_DIRECT_IO` in
                    // `lo_flags` until the sysfs group is gone: `loop/dio` reads the binding's
                    // value until then. With no file it drives no I/O, and binding sets it.
                    // (`read_only`, cleared here, is in no sysfs `loop/` attribute.)
                    io.offset = 0;
                    io.read_only = false;
                    cfg.sizelimit = 0;
                    cfg.file_name = [0; LO_NAME_SIZE];
                    // Restores the page-cache gfp mask now; the file itself goes later.
                    let file = io.file.take().map(BoundFile::unbind);
                    (
                        file,
                        cfg.module_ref.take(),
                        core::mem::take(&mut cfg.sysfs_inited),
                    )
                }
                // Cannot happen: `disk` is this device's disk (`->release` of it).
                Err(_) => (None, None, false),
            };
            // After the freeze guard: the spinlock must not be held while the queue is unfrozen
            // (which sleeps).
            let mirror = self.backing.lock().take();
            ((file, mirror), module_ref, sysfs_inited)
        };
        disk.reset_block_size();
        disk.invalidate();
        // Removing the group waits for its readers; they take no lock of the device (see
        // `SysfsView`), and none is held here anyway.
        if sysfs_inited {
            sysfs::remove_group(disk);
        }
        // Let user space know about this change.
        disk.uevent_change();
        // The opener that is closing still holds a module reference.
        drop(module_ref);
        disk.force_media_change();
        // Remove all partitions, including ones added by hand with BLKPG, which may exist even
        // without LO_FLAGS_PARTSCAN. `open_mutex` is held already on the release path.
        if let Err(e) = disk.drop_partitions(held) {
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
}

// ---------------------------------------------------------------------------------------------
// The `/dev/loopN` ioctls: binding and unbinding.

impl LoopDevice {
    /// The `/dev/loopN` ioctls (`lo_ioctl`): one arm per command, each a call (hence the
    /// length).
    fn ioctl(
        &self,
        bdev: &BlockDevice<'_, LoopQueue>,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        let disk = bdev.disk();
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
            LOOP_CLR_FD => self.clr_fd(disk),
            LOOP_SET_STATUS => {
                may_change()?;
                let old = read_user::<LoopInfo>(arg)?;
                self.set_status(disk, &info64_from_old(&old))
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
                self.set_status(disk, &info)
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
                self.set_capacity(disk)
            }
            LOOP_SET_DIRECT_IO => {
                may_change()?;
                self.set_dio(disk, arg != 0)
            }
            _ => {
                // Unknown commands still wait for the mutex first, as `lo_simple_ioctl`.
                let _g = self.lock.lock_killable()?;
                Err(EINVAL)
            }
        }
    }

    /// The 32-bit compat ioctls (`lo_compat_ioctl`).
    fn compat_ioctl(
        &self,
        bdev: &BlockDevice<'_, LoopQueue>,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        match cmd {
            // The legacy `struct loop_info` differs for 32-bit callers (compat_loop_info).
            LOOP_SET_STATUS | LOOP_GET_STATUS => compat::status_ioctl(self, bdev.disk(), cmd, arg),
            // Pointer arguments: `compat_ptr` zero-extends, which `arg` already is.
            LOOP_SET_CAPACITY | LOOP_CLR_FD | LOOP_GET_STATUS64 | LOOP_SET_STATUS64
            | LOOP_CONFIGURE | LOOP_SET_FD | LOOP_CHANGE_FD | LOOP_SET_BLOCK_SIZE
            | LOOP_SET_DIRECT_IO => self.ioctl(bdev, mode, cmd, arg & 0xffff_ffff),
            _ => Err(ENOIOCTLCMD),
        }
    }

    /// Binds a backing file (`loop_configure`).
    fn configure(
        &self,
        bdev: &BlockDevice<'_, LoopQueue>,
        mode: OpenMode,
        config: &LoopConfig,
    ) -> Result<i32> {
        let disk = bdev.disk();
        let file = BackingFile::fget(config.fd)?;
        file.check_ops()?;
        let is_loop = file.loop_disk(disk).is_some();
        // The open file of this ioctl holds a module reference already; this one is the
        // binding's.
        let module_ref = ModuleRef::get();
        // If we don't hold an exclusive handle for the device, upgrade to one here to avoid
        // changing the device under an exclusive owner.
        let claim = bdev.claim(mode)?;
        let global = if is_loop {
            Some(LOOP_VALIDATE.lock_killable()?)
        } else {
            None
        };
        let mut g = self.lock.lock_killable()?;
        if self.state() != LoState::Unbound {
            return Err(EBUSY);
        }
        self.validate_file(disk, &file, bdev.devt())?;
        let info = &config.info;
        if info.lo_flags & !LOOP_CONFIGURE_SETTABLE_FLAGS != 0 {
            return Err(EINVAL);
        }
        let status = StatusInfo::from_info(info)?;
        let mut flags = info.lo_flags;
        if !file.writable() || !mode.write() || !file.has_write_iter() {
            flags |= LO_FLAGS_READ_ONLY;
        }
        // An O_DIRECT backing fd asks for direct I/O by itself.
        if file.opened_direct() {
            flags |= LO_FLAGS_DIRECT_IO;
        }
        if self.engine().is_none() {
            let depth = u32::try_from(HW_QUEUE_DEPTH.get()).map_err(|_| EINVAL)?;
            self.engine
                .populate(Engine::new(self.number, self.hw_queues, depth, disk)?);
        }
        let binding = Binding {
            file,
            flags,
            status,
            block_size: config.block_size,
            module_ref,
        };
        let partscan = self.bind(&mut g, disk, binding)?;
        let file_name = g.file_name;
        drop(g);
        drop(global);
        if partscan {
            self.reread_partitions(disk, &file_name);
        }
        drop(claim);
        Ok(0)
    }

    /// The binding itself, with the checks done and the device mutex held (the second half of
    /// `loop_configure`). Returns whether to scan partitions once the locks are dropped.
    fn bind(&self, g: &mut LoopGuard<'_>, disk: LoopDisk<'_>, b: Binding) -> Result<bool> {
        let Binding {
            file,
            flags,
            status,
            block_size,
            module_ref,
        } = b;
        let read_only = flags & LO_FLAGS_READ_ONLY != 0;
        // Suppress uevents while reconfiguring the device.
        let suppressed = disk.suppress_uevents();
        disk.force_media_change();
        disk.set_read_only(read_only);
        let min_dio_size = file.min_dio_size();
        let block_size = match block_size {
            0 => default_block_size(flags & LO_FLAGS_DIRECT_IO != 0, min_dio_size),
            bs => bs,
        };
        // The device is not bound yet, so nothing is in flight. Unlike loop.c (whose error path
        // here leaves uevents suppressed and the file's gfp mask changed), a failure leaves the
        // binding as it was.
        disk.set_limits(&limits_for(&file, block_size, read_only))?;
        // We might switch to direct I/O mode for the loop device: write back all dirty data in
        // the page cache now, so that the individual I/O operations don't have to do that.
        let _ = file.fsync();
        let dio = flags & LO_FLAGS_DIRECT_IO != 0
            && can_use_dio(&file, block_size, status.offset, min_dio_size);
        let size = calculate_size(&file, status.offset, status.sizelimit);
        {
            let mut f = g.freeze(disk)?;
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
            // With partitions configured, every device scans them (loop.c sets the flag just
            // before its uevent; here it is published with the rest, before the group exists).
            if part_shift() != 0 {
                cfg.flags |= LO_FLAGS_PARTSCAN;
            }
        }
        g.sysfs_inited = sysfs::add_group(disk);
        disk.set_size(size);
        self.set_state(g, LoState::Bound);
        let partscan = g.flags & LO_FLAGS_PARTSCAN != 0;
        if partscan {
            disk.set_partscan(true);
        }
        drop(suppressed);
        disk.uevent_change();
        Ok(partscan)
    }

    /// Refuses a backing file that is this device, directly or through a chain of loop
    /// devices, or a loop device that is not bound (`loop_validate_file`).
    ///
    /// Called with `LOOP_VALIDATE` held when `file` is a loop device: a device of the chain that
    /// is bound stays bound meanwhile (unbinding starts in `clr_fd`, under the same lock), and
    /// its backing file is read under its `backing` spinlock, never its mutex.
    fn validate_file(&self, disk: LoopDisk<'_>, file: &BackingFile, devt: u32) -> Result {
        let mut next = file.clone();
        loop {
            let backing = {
                let Some((rdev, lower)) = next.loop_disk(disk) else {
                    break;
                };
                if rdev == devt {
                    return Err(EBADF);
                }
                let l = lower.data();
                if l.state() != LoState::Bound {
                    return Err(EINVAL);
                }
                let backing = l.backing.lock().clone();
                backing.ok_or(EINVAL)?
            };
            next = backing;
        }
        if !file.is_regular() && !file.is_block_device() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Swaps the backing file of a read-only device for one of the same size
    /// (`loop_change_fd`), e.g. for installers to release the original medium.
    fn change_fd(&self, bdev: &BlockDevice<'_, LoopQueue>, fd: u32) -> Result<i32> {
        let disk = bdev.disk();
        // A bad fd or a file the loop cannot use is refused before the device is touched: no
        // event. Past that, a change event is sent even on failure, as loop.c does.
        let file = BackingFile::fget(fd)?;
        file.check_ops()?;
        let res = self.change_fd_inner(bdev, file);
        disk.uevent_change();
        res.map(|()| 0)
    }

    fn change_fd_inner(&self, bdev: &BlockDevice<'_, LoopQueue>, file: BackingFile) -> Result {
        let disk = bdev.disk();
        let suppressed = disk.suppress_uevents();
        let is_loop = file.loop_disk(disk).is_some();
        let global = if is_loop {
            Some(LOOP_VALIDATE.lock_killable()?)
        } else {
            None
        };
        let mut g = self.lock.lock_killable()?;
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        // The loop device has to be read-only.
        if !g.io().read_only {
            return Err(EINVAL);
        }
        self.validate_file(disk, &file, bdev.devt())?;
        let old_size = {
            let io = g.io();
            let old = io.file.as_deref().ok_or(ENXIO)?;
            calculate_size(old, io.offset, g.sizelimit)
        };
        // The size of the new backing store needs to be the same.
        if calculate_size(&file, g.io().offset, g.sizelimit) != old_size {
            return Err(EINVAL);
        }
        // We might switch to direct I/O mode: write back dirty data now.
        let _ = file.fsync();
        disk.force_media_change();
        let min_dio_size = file.min_dio_size();
        let block_size = disk.logical_block_size();
        let old = {
            let mut f = g.freeze(disk)?;
            let (cfg, io) = f.parts();
            let dio = (io.dio || file.opened_direct())
                && can_use_dio(&file, block_size, io.offset, min_dio_size);
            // The old file's mask is restored before the new one is masked: the two may share
            // one mapping (the same image opened twice).
            let old_file = io.file.as_mut().map(|bound| bound.rebind(file.clone()));
            let old_mirror = self.backing.lock().replace(file.clone());
            io.dio = dio;
            cfg.min_dio_size = min_dio_size;
            (old_file, old_mirror)
        };
        let partscan = g.flags & LO_FLAGS_PARTSCAN != 0;
        let file_name = g.file_name;
        drop(g);
        drop(global);
        // Let walkers of stacked devices that may still look at the old file finish before the
        // last reference to it goes.
        drop(LOOP_VALIDATE.lock());
        drop(old);
        drop(suppressed);
        if partscan {
            self.reread_partitions(disk, &file_name);
        }
        Ok(())
    }

    /// Marks the device for unbinding at last close (`loop_clr_fd`). Never `EBUSY`: a mounted
    /// device is detached at unmount.
    fn clr_fd(&self, disk: LoopDisk<'_>) -> Result<i32> {
        // Under the global lock, so that a concurrent bind walking a chain through this device
        // sees it as unbound.
        let _global = LOOP_VALIDATE.lock_killable()?;
        let mut g = self.lock.lock_killable()?;
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        // Mark the device for removing the backing device on last close. If we are the only
        // opener, also switch the state to rundown here to prevent new openers from coming in.
        g.flags |= LO_FLAGS_AUTOCLEAR;
        if disk.openers() == 1 {
            self.set_state(&g, LoState::Rundown);
        }
        Ok(0)
    }

    fn reread_partitions(&self, disk: LoopDisk<'_>, file_name: &[u8; LO_NAME_SIZE]) {
        if let Err(e) = disk.reread_partitions() {
            let len = file_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(LO_NAME_SIZE);
            pr_warn!(
                "loop_reread_partitions: partition scan of loop{} ({}) failed (rc={})\n",
                self.number,
                LogName(&file_name[..len]),
                e.to_errno()
            );
        }
    }
}

/// A backing file's name in a log line: loop.c prints `lo_file_name`'s bytes with `%s`, and a
/// name is any bytes (a path, or what LOOP_SET_STATUS64 set, cut at 63 bytes, maybe inside a
/// character). Valid UTF-8 goes out as is; only the bytes that are not are written `\xNN`,
/// which is how `dmesg` shows loop.c's raw byte, while a `str` cannot carry it.
struct LogName<'a>(&'a [u8]);

impl kernel::fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The `/dev/loopN` ioctls: status, capacity, direct I/O, block size; sysfs.

impl LoopDevice {
    /// `LOOP_SET_STATUS64` (`loop_set_status`).
    fn set_status(&self, disk: LoopDisk<'_>, info: &LoopInfo64) -> Result<i32> {
        let mut g = self.lock.lock_killable()?;
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
            let mut f = g.freeze(disk)?;
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
            let io = g.io();
            let size = io
                .file
                .as_deref()
                .map_or(0, |file| calculate_size(file, io.offset, g.sizelimit));
            disk.set_size(size);
        }
        let file_name = g.file_name;
        drop(g);
        if partscan {
            self.reread_partitions(disk, &file_name);
        }
        Ok(0)
    }

    /// `LOOP_GET_STATUS64` (`loop_get_status`): the effective flags, and the backing file's
    /// identity, read without the device mutex.
    fn get_status(&self) -> Result<LoopInfo64> {
        let g = self.lock.lock_killable()?;
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        let io = g.io();
        let mut info = LoopInfo64::zeroed();
        info.lo_number = self.number;
        info.lo_offset = io.offset;
        info.lo_sizelimit = g.sizelimit;
        info.lo_flags = g.lo_flags(io);
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
    fn set_capacity(&self, disk: LoopDisk<'_>) -> Result<i32> {
        let g = self.lock.lock_killable()?;
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
        let file = g.io().file.as_deref().ok_or(ENXIO)?;
        disk.set_size(calculate_size(file, g.io().offset, g.sizelimit));
        Ok(0)
    }

    /// `LOOP_SET_DIRECT_IO` (`loop_set_dio`): `EINVAL` if direct I/O is not possible.
    fn set_dio(&self, disk: LoopDisk<'_>, use_dio: bool) -> Result<i32> {
        let mut g = self.lock.lock_killable()?;
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
                disk.logical_block_size(),
                g.io().offset,
                g.min_dio_size,
            ) {
                return Err(EINVAL);
            }
            // Flush dirty pages before starting to use direct I/O.
            let _ = file.fsync();
        }
        // Freezing drains in-flight requests, so no request mixes the two modes.
        let mut f = g.freeze(disk)?;
        f.parts().1.dio = use_dio;
        Ok(0)
    }

    /// `LOOP_SET_BLOCK_SIZE` (`loop_set_block_size`): `ENXIO` when unbound, which user space
    /// tells apart from `EINVAL` ("not supported").
    fn set_block_size(
        &self,
        bdev: &BlockDevice<'_, LoopQueue>,
        mode: OpenMode,
        arg: usize,
    ) -> Result<i32> {
        let disk = bdev.disk();
        let _claim = bdev.claim(mode)?;
        let mut g = self.lock.lock_killable()?;
        if self.state() != LoState::Bound {
            return Err(ENXIO);
        }
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
        let mut f = g.freeze(disk)?;
        let (_cfg, io) = f.parts();
        let res = update.commit();
        if let (true, Some(file)) = (io.dio, io.file.as_deref()) {
            io.dio = can_use_dio(file, disk.logical_block_size(), io.offset, min_dio_size);
        }
        res.map(|()| 0)
    }

    /// Shows one attribute of `/sys/block/loopN/loop/`.
    fn show_attr(&self, index: usize, out: &mut SysfsBuf<'_>) -> Result {
        if index == ATTR_BACKING_FILE {
            // Like loop.c, under the spinlock only; the path is written outside it.
            let file = self.backing.lock().clone();
            if let Some(file) = file {
                let n = file.write_path(out.page())?;
                out.set_len(n);
            }
            return Ok(());
        }
        // Without the device mutex, as loop.c (see `SysfsView`).
        let view = self.lock.published();
        let flags = view.flags.load(Relaxed);
        let flag = |bit: u32| if flags & bit != 0 { "1" } else { "0" };
        let res = match index {
            ATTR_OFFSET => writeln!(out, "{}", view.offset.load(Relaxed)),
            ATTR_SIZELIMIT => writeln!(out, "{}", view.sizelimit.load(Relaxed)),
            ATTR_AUTOCLEAR => writeln!(out, "{}", flag(LO_FLAGS_AUTOCLEAR)),
            ATTR_PARTSCAN => writeln!(out, "{}", flag(LO_FLAGS_PARTSCAN)),
            ATTR_DIO => writeln!(out, "{}", flag(LO_FLAGS_DIRECT_IO)),
            _ => return Err(EINVAL),
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

    pub(super) fn status_ioctl(
        dev: &LoopDevice,
        disk: LoopDisk<'_>,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        if cmd == LOOP_SET_STATUS {
            let c = read_user::<CompatLoopInfo>(arg)?;
            return dev.set_status(disk, &from_compat(&c));
        }
        if arg == 0 {
            return Err(EINVAL);
        }
        let c = to_compat(&dev.get_status()?)?;
        write_user(arg, &c).map(|()| 0)
    }

    /// `loop_info64_from_compat`: the compat struct has no size limit.
    pub(super) fn from_compat(c: &CompatLoopInfo) -> LoopInfo64 {
        let mut info = LoopInfo64::zeroed();
        info.lo_number = c.lo_number as u32;
        info.lo_device = u64::from(c.lo_device);
        info.lo_inode = u64::from(c.lo_inode);
        info.lo_rdevice = u64::from(c.lo_rdevice);
        info.lo_offset = i64::from(c.lo_offset) as u64;
        info.lo_flags = c.lo_flags as u32;
        info.lo_file_name = c.lo_name;
        info
    }

    /// `loop_info64_to_compat`: `EOVERFLOW` if a value does not fit the compat struct.
    pub(super) fn to_compat(info: &LoopInfo64) -> Result<CompatLoopInfo> {
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
        Ok(c)
    }
}

// ---------------------------------------------------------------------------------------------
// Device registry and `/dev/loop-control`.

/// A registered device (loop.c's idr entry).
struct Entry {
    number: u32,
    dev: Arc<LoopDevice>,
    /// Held by `LOOP_CTL_REMOVE` while it works on the device, which hides the entry (loop.c's
    /// `idr_visible`): dropped (deleting the disk) when the removal goes ahead, put back when it
    /// is refused.
    disk: Option<Disk<LoopQueue>>,
    /// `/sys/kernel/debug/rust_loop/loopN/`, if debugfs is there.
    debug: Option<DebugFiles<Arc<LoopDevice>>>,
}

/// All devices, sorted by number (loop.c's `loop_index_idr` under `loop_ctl_mutex`).
struct Registry {
    entries: KVec<Entry>,
    /// `/sys/kernel/debug/rust_loop/`.
    debugfs: DebugDir,
}

impl Registry {
    const fn new() -> Self {
        Self {
            entries: KVec::new(),
            debugfs: DebugDir::none(),
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
    let mut reg = LOOP_CTL.lock_killable()?;
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
    // Diagnostics only: a device works without its debugfs directory.
    let debug = debug_files(&reg.debugfs, number, dev.clone()).ok();
    let entry = Entry {
        number,
        dev,
        disk: Some(disk),
        debug,
    };
    reg.entries
        .insert_within_capacity(pos, entry)
        .map_err(|_| ENOMEM)?;
    Ok(result)
}

impl Entry {
    /// Not hidden by a `LOOP_CTL_REMOVE` at work (`idr_visible`).
    fn visible(&self) -> bool {
        self.disk.is_some()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // The disk first (deleting it ends every request), then the engine's last runs: the
        // workers' references to the device are gone before ours (see `Engine::quiesce`).
        drop(self.disk.take());
        if let Some(engine) = self.dev.engine() {
            engine.quiesce();
        }
    }
}

/// Removes an unbound, unopened device (`loop_control_remove`).
fn loop_control_remove(i: i32) -> Result<i32> {
    let Ok(number) = u32::try_from(i) else {
        pr_warn_once!("deleting an unspecified loop device is not supported.\n");
        return Err(EINVAL);
    };
    // Hide this loop device for serialization: while its mutex is awaited (which a long
    // reconfiguration can hold for as long as its I/O takes), another removal of it is ENODEV
    // and nothing else waits for the registry. Its number stays taken; the disk is ours meanwhile.
    let (dev, disk) = {
        let mut reg = LOOP_CTL.lock_killable()?;
        let pos = reg.position(number).map_err(|_| ENODEV)?;
        let entry = &mut reg.entries[pos];
        // Hidden already: another removal works on it.
        let disk = entry.disk.take().ok_or(ENODEV)?;
        (entry.dev.clone(), disk)
    };
    // Check whether this loop device can be removed.
    let checked = dev.lock.lock_killable().and_then(|g| {
        if dev.state() != LoState::Unbound || disk.get().openers() > 0 {
            return Err(EBUSY);
        }
        // Mark this loop device as no more bound, but not quite unbound yet.
        dev.set_state(&g, LoState::Deleting);
        Ok(())
    });
    if let Err(e) = checked {
        show_again(number, disk);
        return Err(e);
    }
    // Deleting the disk can wait for udev and sysfs readers: not under the registry lock.
    drop(disk);
    // So can removing the debugfs files (their readers). Also while the number is taken, like
    // the disk: a device added with it right after makes its own `loopN/` (`EEXIST` otherwise).
    // Cannot fail (initialised for good); the hidden entry is ours.
    let mut reg = LOOP_CTL.lock()?;
    let debug = match reg.position(number) {
        Ok(pos) => reg.entries[pos].debug.take(),
        Err(_) => None,
    };
    drop(reg);
    drop(debug);
    let mut reg = LOOP_CTL.lock()?;
    if let Ok(pos) = reg.position(number) {
        let entry = reg.entries.remove(pos).map_err(|_| EINVAL)?;
        drop(reg);
        drop(entry);
    }
    Ok(0)
}

/// Shows a device hidden by [`loop_control_remove`] again, with its disk, after a refused
/// removal.
fn show_again(number: u32, disk: Disk<LoopQueue>) {
    if let Ok(mut reg) = LOOP_CTL.lock() {
        // A hidden entry is removed only by the removal that hid it.
        if let Ok(pos) = reg.position(number) {
            reg.entries[pos].disk = Some(disk);
            return;
        }
    }
    // Cannot happen (the lock was taken before and stays initialised; the entry is there): keep
    // the disk rather than delete a device that may be in use.
    pr_err!("loop{number}: lost its registry entry during LOOP_CTL_REMOVE; left in place\n");
    core::mem::forget(disk);
}

/// The first visible unbound device, or a new one (`loop_control_get_free`).
fn loop_control_get_free() -> Result<i32> {
    {
        let reg = LOOP_CTL.lock_killable()?;
        // Hitting a race results in creating a new loop device, which is harmless.
        if let Some(e) = reg
            .entries
            .iter()
            .find(|e| e.visible() && e.dev.state() == LoState::Unbound)
        {
            return i32::try_from(e.number).map_err(|_| ENOSPC);
        }
    }
    loop_add(-1)
}

/// `/dev/loop-control` (`loop_control_ioctl`). Access is governed by the node's permissions,
/// as in loop.c.
struct LoopControl;

impl MiscOps for LoopControl {
    fn ioctl(cmd: u32, arg: usize) -> Result<i32> {
        // The argument is an int in loop.c.
        let parm = arg as i32;
        match cmd {
            LOOP_CTL_ADD => loop_add(parm),
            LOOP_CTL_REMOVE => loop_control_remove(parm),
            LOOP_CTL_GET_FREE => loop_control_get_free(),
            _ => Err(enosys()),
        }
    }
}

/// A device's directory in debugfs, `rust_loop/loopN/`: what user space cannot see otherwise.
/// `state`: the device state and the page-cache gfp masks of the backing file; `stats`: what
/// the I/O engine did (README: Engine).
fn debug_files(
    root: &DebugDir,
    number: u32,
    dev: Arc<LoopDevice>,
) -> Result<DebugFiles<Arc<LoopDevice>>> {
    let name = CString::try_from_fmt(fmt!("loop{number}"))?;
    let mut files = DebugFiles::new(root.subdir(&name), dev)?;
    files.add::<DevStats>(c"stats")?;
    files.add::<DevDebug>(c"state")?;
    Ok(files)
}

/// The contents of `rust_loop/loopN/stats`.
struct DevStats;

impl DebugView<Arc<LoopDevice>> for DevStats {
    fn show(dev: &Arc<LoopDevice>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "hw_queues {}", dev.hw_queues)?;
        dev.stats.write(f)
    }
}

/// The contents of `rust_loop/loopN/state`.
struct DevDebug;

impl DebugView<Arc<LoopDevice>> for DevDebug {
    fn show(dev: &Arc<LoopDevice>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let g = dev.lock.lock();
        writeln!(f, "state: {:?}", dev.state())?;
        if let Some(file) = g.io().file.as_ref() {
            // Only while bound: unbinding leaves the last binding's value (see `unbind`).
            writeln!(f, "dio: {}", u8::from(g.io().dio))?;
            // Bound: the backing mapping must not recurse into I/O or file-system reclaim
            // (`now` 0), and its own mask comes back at unbinding (`saved` 1 normally).
            let (now, saved) = file.reclaim_io_fs();
            writeln!(f, "backing_gfp_io_fs: {}", u8::from(now))?;
            writeln!(f, "saved_gfp_io_fs: {}", u8::from(saved))?;
        }
        Ok(())
    }
}

/// Legacy autoload: opening a missing `/dev/loopN` node creates device N (`loop_probe`).
struct LoopProbe;

impl Probe for LoopProbe {
    fn probe(minor: u32) {
        let number = minor >> part_shift();
        let max_loop = MAX_LOOP.get();
        // An explicit `max_loop` is a hard limit here, and only here (loop.c).
        if MAX_LOOP.given() && max_loop > 0 && number >= max_loop as u32 {
            return;
        }
        if let Ok(n) = i32::try_from(number) {
            let _ = loop_add(n);
        }
    }
}

/// Removes every device at module unload.
struct Devices;

impl Drop for Devices {
    fn drop(&mut self) {
        // Nobody else can reach the registry now: `/dev/loop-control` and the major are gone,
        // and open devices would have kept the module loaded.
        let (entries, debugfs) = match LOOP_CTL.lock() {
            Ok(mut reg) => (
                core::mem::take(&mut reg.entries),
                core::mem::replace(&mut reg.debugfs, DebugDir::none()),
            ),
            Err(_) => (KVec::new(), DebugDir::none()),
        };
        drop(entries);
        drop(debugfs);
    }
}

/// The module parameters, checked (`loop_init`): `max_loop` and the partition shift.
fn check_params(max_loop: i32, max_part: i32, hw_queue_depth: i32) -> Result<(u32, u32)> {
    if hw_queue_depth < 1 {
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
    let max_loop = u32::try_from(max_loop).map_err(|_| EINVAL)?;
    if u64::from(max_loop) > 1u64 << (MINORBITS - shift) {
        return Err(EINVAL);
    }
    Ok((max_loop, shift))
}

/// The module: `/dev/loop-control`, block major 7 and the devices.
#[pin_data]
struct LoopModule {
    // Fields drop in declaration order, which is loop_exit()'s: first the major (no more
    // probes), then /dev/loop-control (no more ioctls), then the devices.
    _major: MajorRegistration<LoopProbe>,
    #[pin]
    _control: MiscRegistration<LoopControl>,
    _devices: Devices,
}

impl kernel::InPlaceModule for LoopModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        LOOP_CTL.init(c"rust_loop::loop_ctl_mutex", kernel::static_lock_class!());
        LOOP_VALIDATE.init(
            c"rust_loop::loop_validate_mutex",
            kernel::static_lock_class!(),
        );
        // Initialised in loop_init()'s order: the parameters are checked before anything is
        // registered (a failed load must leave nothing behind), then /dev/loop-control, then
        // the major, then the devices.
        let params = check_params(MAX_LOOP.get(), MAX_PART.get(), HW_QUEUE_DEPTH.get());
        try_pin_init!(Self {
            _control <- {
                let (_, shift) = params?;
                PART_SHIFT.store(shift, Relaxed);
                // As loop.c, sysfs shows the number of partitions the minors allow.
                if shift > 0 {
                    MAX_PART.store((1 << shift) - 1);
                }
                MiscRegistration::register(c"loop-control", kernel::bindings::LOOP_CTRL_MINOR)
            },
            _major: MajorRegistration::register()?,
            _devices: {
                let (max_loop, _) = params?;
                // Only once nothing can fail: a failed load must not leave the directory behind
                // (the next load could not make its own).
                if let Ok(mut reg) = LOOP_CTL.lock() {
                    reg.debugfs = DebugDir::root(c"rust_loop");
                }
                // Pre-create `max_loop` devices; like loop.c, failures here are not fatal.
                for i in 0..max_loop {
                    let _ = loop_add(i as i32);
                }
                // loop.c's message, which scripts may look for, then which driver this is.
                pr_info!(
                    "module loaded (rust_loop {VERSION}: the loop driver in Rust, direct I/O + AIO)\n"
                );
                Devices
            },
        })
    }
}

#[kunit_tests(rust_loop_logic)]
mod tests {
    use super::*;
    use crate::request::ReqOp;
    use kernel::bindings;

    #[test]
    fn size_is_whole_sectors_of_the_window() {
        assert_eq!(size_sectors(1 << 20, 0, 0), 2048);
        // A trailing partial sector is not part of the device.
        assert_eq!(size_sectors((1 << 20) + 511, 0, 0), 2048);
        assert_eq!(size_sectors(1 << 20, 512, 0), 2047);
        assert_eq!(size_sectors(1 << 20, 1000, 0), 2046);
        // The size limit clamps; a limit beyond the file does not extend it.
        assert_eq!(size_sectors(1 << 20, 0, 4096), 8);
        assert_eq!(size_sectors(1 << 20, 0, 1000), 1);
        assert_eq!(size_sectors(1 << 20, 0, 1 << 30), 2048);
        // An offset past the end, a failed size (negative), extremes: 0, never wrapping.
        assert_eq!(size_sectors(1 << 20, 2 << 20, 0), 0);
        assert_eq!(size_sectors(-1, 0, 0), 0);
        assert_eq!(size_sectors(i64::MAX, u64::MAX, 0), 0);
        assert_eq!(size_sectors(i64::MAX, 0, 0), (i64::MAX as u64) >> 9);
        // Above 2 TiB and 4 GiB.
        assert_eq!(
            size_sectors(3 << 40, 1 << 32, 0),
            ((3u64 << 40) - (1 << 32)) >> 9
        );
    }

    #[test]
    fn log_name_escapes_only_invalid_utf8() -> Result {
        let shown = |name: &[u8]| CString::try_from_fmt(fmt!("{}", LogName(name)));
        assert_eq!(shown(b"/tmp/a.img")?.to_bytes(), b"/tmp/a.img");
        // Valid UTF-8 beyond ASCII is kept, as loop.c's %s keeps every byte.
        assert_eq!(
            shown("/tmp/\u{e9}.img".as_bytes())?.to_bytes(),
            "/tmp/\u{e9}.img".as_bytes()
        );
        // A Latin-1 byte, and a name cut inside a character (63 bytes of a longer name).
        assert_eq!(shown(b"/tmp/\xe9.img")?.to_bytes(), b"/tmp/\\xe9.img");
        assert_eq!(shown(b"/tmp/\xc3")?.to_bytes(), b"/tmp/\\xc3");
        assert_eq!(shown(b"")?.to_bytes(), b"");
        Ok(())
    }

    #[test]
    fn dio_needs_alignment() {
        assert!(dio_allowed(512, 0, 512));
        assert!(dio_allowed(4096, 8192, 4096));
        assert!(!dio_allowed(512, 0, 4096));
        assert!(!dio_allowed(4096, 512, 4096));
        assert!(!dio_allowed(4096, 4097, 4096));
        // An alignment of 0 masks with all ones, as loop.c: only offset 0 (mod 4 GiB) passes.
        assert!(dio_allowed(512, 0, 0));
        assert!(!dio_allowed(512, 3, 0));
        assert_eq!(default_block_size(true, 4096), 4096);
        assert_eq!(default_block_size(false, 4096), 512);
    }

    #[test]
    fn status_info_checks() -> Result {
        let mut info = LoopInfo64::zeroed();
        info.lo_offset = 4096;
        info.lo_sizelimit = 8192;
        info.lo_file_name = [b'x'; LO_NAME_SIZE];
        let s = StatusInfo::from_info(&info).map_err(|_| EINVAL)?;
        assert_eq!(s.offset, 4096);
        assert_eq!(s.sizelimit, 8192);
        // The name is always NUL-terminated.
        assert_eq!(s.file_name[LO_NAME_SIZE - 1], 0);
        info.lo_offset = i64::MAX as u64 + 1;
        assert!(StatusInfo::from_info(&info).err() == Some(EOVERFLOW));
        info.lo_offset = 0;
        info.lo_sizelimit = u64::MAX;
        assert!(StatusInfo::from_info(&info).err() == Some(EOVERFLOW));
        info.lo_sizelimit = 0;
        info.lo_encrypt_key_size = LO_KEY_SIZE as u32 + 1;
        assert!(StatusInfo::from_info(&info).err() == Some(EINVAL));
        info.lo_encrypt_key_size = 0;
        for t in [LO_CRYPT_XOR, LO_CRYPT_CRYPTOAPI, 7] {
            info.lo_encrypt_type = t;
            assert!(StatusInfo::from_info(&info).err() == Some(EINVAL));
        }
        Ok(())
    }

    #[test]
    fn legacy_status_conversions() -> Result {
        let mut info = LoopInfo64::zeroed();
        info.lo_number = 3;
        info.lo_offset = 0x7fff_ffff;
        info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
        info.lo_device = 0x1234;
        let old = info64_to_old(&info).map_err(|_| EINVAL)?;
        assert_eq!(old.lo_offset, 0x7fff_ffff);
        assert_eq!(old.lo_number, 3);
        let back = info64_from_old(&old);
        assert_eq!(back.lo_offset, info.lo_offset);
        assert_eq!(back.lo_flags, info.lo_flags);
        assert_eq!(back.lo_sizelimit, 0);
        // An offset of 2 GiB does not fit the legacy (int) field.
        info.lo_offset = 1 << 31;
        assert!(info64_to_old(&info).err() == Some(EOVERFLOW));
        // A negative legacy offset sign-extends, as loop.c, and is then refused as too large.
        let mut old = LoopInfo::zeroed();
        old.lo_offset = -1;
        assert!(StatusInfo::from_info(&info64_from_old(&old)).err() == Some(EOVERFLOW));
        Ok(())
    }

    #[test]
    fn compat_status_conversions() -> Result {
        let mut info = LoopInfo64::zeroed();
        info.lo_device = 0xffff;
        info.lo_inode = 0xffff_ffff;
        info.lo_offset = 4096;
        let c = compat::to_compat(&info).map_err(|_| EINVAL)?;
        let back = compat::from_compat(&c);
        assert_eq!(back.lo_device, 0xffff);
        assert_eq!(back.lo_inode, 0xffff_ffff);
        assert_eq!(back.lo_offset, 4096);
        // 16-bit device numbers and 32-bit inode numbers and offsets.
        info.lo_device = 0x1_0000;
        assert!(compat::to_compat(&info).err() == Some(EOVERFLOW));
        info.lo_device = 0;
        info.lo_inode = 1 << 32;
        assert!(compat::to_compat(&info).err() == Some(EOVERFLOW));
        info.lo_inode = 0;
        info.lo_offset = 1 << 31;
        assert!(compat::to_compat(&info).err() == Some(EOVERFLOW));
        Ok(())
    }

    #[test]
    fn module_parameters() {
        assert!(check_params(8, 0, 128) == Ok((8, 0)));
        // max_part rounds up to a power of two minus one: 15 -> 4 bits, 16 -> 5 bits.
        assert!(check_params(8, 15, 128) == Ok((8, 4)));
        assert!(check_params(8, 16, 128) == Ok((8, 5)));
        assert!(check_params(8, 255, 128) == Ok((8, 8)));
        assert!(check_params(8, 256, 128) == Err(EINVAL));
        assert!(check_params(8, i32::MAX, 128) == Err(EINVAL));
        assert!(check_params(-1, 0, 128) == Err(EINVAL));
        assert!(check_params(1 << 20, 0, 128) == Ok((1 << 20, 0)));
        assert!(check_params((1 << 20) + 1, 0, 128) == Err(EINVAL));
        assert!(check_params(1 << 16, 15, 128) == Ok((1 << 16, 4)));
        assert!(check_params((1 << 16) + 1, 15, 128) == Err(EINVAL));
        assert!(check_params(8, 0, 0) == Err(EINVAL));
        assert!(check_params(8, 0, -5) == Err(EINVAL));
    }

    #[test]
    fn request_operations() {
        let op = ReqOp::from_flags;
        assert_eq!(op(bindings::req_op_REQ_OP_READ), ReqOp::Read);
        assert_eq!(op(bindings::req_op_REQ_OP_WRITE), ReqOp::Write);
        assert_eq!(op(bindings::req_op_REQ_OP_FLUSH), ReqOp::Flush);
        assert_eq!(op(bindings::req_op_REQ_OP_DISCARD), ReqOp::Discard);
        let nounmap = 1 << bindings::req_flag_bits___REQ_NOUNMAP;
        assert_eq!(
            op(bindings::req_op_REQ_OP_WRITE_ZEROES),
            ReqOp::WriteZeroes { unmap: true }
        );
        assert_eq!(
            op(bindings::req_op_REQ_OP_WRITE_ZEROES | nounmap),
            ReqOp::WriteZeroes { unmap: false }
        );
        // Flag bits above the op do not change it.
        assert_eq!(op(bindings::req_op_REQ_OP_WRITE | (1 << 30)), ReqOp::Write);
        // `op_is_write`: a flush is not a write (a read-only device accepts it, as loop.c).
        assert!(!ReqOp::Read.is_write());
        assert!(ReqOp::Write.is_write());
        assert!(!ReqOp::Flush.is_write());
        assert!(ReqOp::Discard.is_write());
        assert!(ReqOp::WriteZeroes { unmap: false }.is_write());
    }
}
