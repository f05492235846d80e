// SPDX-License-Identifier: GPL-2.0

//! `struct block_device_operations` of a driver's disks and block major 7 with its probe.
//!
//! Types and the invariants they enforce:
//! - [`Operations`]: what a driver implements; the trampolines of [`fops`] recover the disk as a
//!   [`DiskRef`] of the driver (its `private_data` has the driver's queue-data type) borrowed
//!   for the duration of the call.
//! - [`BlockDevice`]: the open block device of an ioctl in progress, borrowed for the call.
//! - [`Claim`]: a pending exclusive claim (`bd_prepare_to_claim`), aborted on drop.
//! - [`MajorRegistration`]: block major 7 registered while it lives; its probe runs only then.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_uint, c_ulong, c_void},
    prelude::*,
    types::ForeignOwnable,
};

use crate::{
    disk::{DiskRef, OpenMutexHeld},
    request,
};

/// `BLK_OPEN_WRITE` (`include/linux/blkdev.h`; checked in `include/rust_loop_helpers.c`).
const BLK_OPEN_WRITE: u32 = 1 << 1;
/// `BLK_OPEN_EXCL` (checked in `include/rust_loop_helpers.c`).
const BLK_OPEN_EXCL: u32 = 1 << 2;

/// The block-device operations of a driver's disks.
pub(crate) trait Operations: request::Operations {
    /// The driver's operations table, a `static` of the driver (`static FOPS: Fops<Self> =
    /// Fops::new();`): a `static` has one address, which tells the driver's disks from others.
    const FOPS: &'static Fops<Self>;

    /// `->open` of the disk.
    fn open(disk: DiskRef<'_, Self>, mode: OpenMode) -> Result;

    /// `->release` of the disk; `open_mutex` is held meanwhile.
    fn release(disk: DiskRef<'_, Self>, held: &OpenMutexHeld<'_>);

    /// `->ioctl` (or `->compat_ioctl` of a 32-bit caller) on an open block device of the disk.
    fn ioctl(
        bdev: &BlockDevice<'_, Self>,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
        compat: bool,
    ) -> Result<i32>;
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

/// The operations table of `T`'s disks.
pub(crate) fn fops<T: Operations>() -> &'static bindings::block_device_operations {
    &T::FOPS.table
}

/// The block-device operations table of `T`'s disks, to be placed in a `static` (see
/// [`Operations::FOPS`]).
pub(crate) struct Fops<T: Operations> {
    table: bindings::block_device_operations,
    _p: PhantomData<T>,
}

// SAFETY: The table is never written after construction; the block layer only reads it.
unsafe impl<T: Operations> Sync for Fops<T> {}

impl<T: Operations> Fops<T> {
    /// The table of `T`'s trampolines.
    pub(crate) const fn new() -> Self {
        Self {
            table: Table::<T>::FOPS,
            _p: PhantomData,
        }
    }
}

struct Table<T: Operations>(PhantomData<T>);

impl<T: Operations> Table<T> {
    const FOPS: bindings::block_device_operations = bindings::block_device_operations {
        submit_bio: None,
        poll_bio: None,
        open: Some(open::<T>),
        release: Some(release::<T>),
        ioctl: Some(ioctl::<T>),
        compat_ioctl: Some(compat_ioctl::<T>),
        check_events: None,
        unlock_native_capacity: None,
        getgeo: None,
        set_read_only: None,
        alternative_gpt_sector: None,
        free_disk: Some(free_disk::<T>),
        swap_slot_free_notify: None,
        report_zones: None,
        devnode: None,
        get_unique_id: None,
        // The module stays loaded while any of its disks is open.
        owner: (&raw const bindings::__this_module).cast_mut(),
        pr_ops: core::ptr::null(),
    };
}

/// # Safety
///
/// Called by the block layer as `->open` of an added disk of `T`.
unsafe extern "C" fn open<T: Operations>(
    disk: *mut bindings::gendisk,
    mode: bindings::blk_mode_t,
) -> c_int {
    // SAFETY: An added disk of `T`, alive during the call.
    let disk = unsafe { DiskRef::<T>::from_raw(disk) };
    match T::open(disk, OpenMode(mode)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the block layer as `->release` of an added disk of `T`, with `open_mutex` held.
unsafe extern "C" fn release<T: Operations>(disk: *mut bindings::gendisk) {
    // SAFETY: An added disk of `T`, alive during the call.
    let disk = unsafe { DiskRef::<T>::from_raw(disk) };
    // SAFETY: The block layer holds this disk's `open_mutex` across `->release`; the token
    // does not outlive this call.
    let held = unsafe { OpenMutexHeld::new(disk.raw()) };
    T::release(disk, &held);
}

/// # Safety
///
/// Called by the block layer as `->ioctl` of a disk of `T`, on an open `bdev` of it.
unsafe extern "C" fn ioctl<T: Operations>(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
) -> c_int {
    // SAFETY: Same contract.
    unsafe { ioctl_common::<T>(bdev, mode, cmd, arg, false) }
}

/// # Safety
///
/// Called by the block layer as `->compat_ioctl` of a disk of `T`, on an open `bdev` of it.
unsafe extern "C" fn compat_ioctl<T: Operations>(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
) -> c_int {
    // SAFETY: Same contract.
    unsafe { ioctl_common::<T>(bdev, mode, cmd, arg, true) }
}

/// # Safety
///
/// `bdev` is an open block device of a disk of `T`, for the duration of the call.
unsafe fn ioctl_common<T: Operations>(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
    compat: bool,
) -> c_int {
    let Some(bdev) = NonNull::new(bdev) else {
        return EINVAL.to_errno();
    };
    // INVARIANT: `bdev` is open for the duration of this call, on a disk of `T`.
    let bdev = BlockDevice::<T> {
        bdev,
        _p: PhantomData,
    };
    match T::ioctl(&bdev, OpenMode(mode), cmd, arg, compat) {
        Ok(v) => v,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the block layer as `->free_disk` of an added disk of `T`, once, after its last
/// reference is gone.
unsafe extern "C" fn free_disk<T: Operations>(disk: *mut bindings::gendisk) {
    // SAFETY: The disk is being freed; nobody reads `private_data` any more.
    let data = unsafe { (*disk).private_data };
    // SAFETY: The release of the `T::QueueData` that `NewDisk::add` gave the disk.
    drop(unsafe { T::QueueData::from_foreign(data) });
}

/// The block device an ioctl was issued on, borrowed for the call.
///
/// # Invariants
///
/// `bdev` is an open block device of a disk of `T` for `'a`.
pub(crate) struct BlockDevice<'a, T: Operations> {
    bdev: NonNull<bindings::block_device>,
    _p: PhantomData<(&'a bindings::block_device, T)>,
}

impl<'a, T: Operations> BlockDevice<'a, T> {
    /// The device number.
    pub(crate) fn devt(&self) -> u32 {
        // SAFETY: By the type invariant the bdev is open; `bd_dev` never changes.
        unsafe { (*self.bdev.as_ptr()).bd_dev }
    }

    /// The disk the device belongs to.
    pub(crate) fn disk(&self) -> DiskRef<'a, T> {
        // SAFETY: An open bdev keeps its disk, a disk of `T` (type invariant), alive.
        let disk = unsafe { (*self.bdev.as_ptr()).bd_disk };
        // SAFETY: As above.
        unsafe { DiskRef::from_raw(disk) }
    }

    /// Claims the device exclusively for a reconfiguration, unless it was opened exclusively
    /// (`bd_prepare_to_claim`): `EBUSY` if another holder, e.g. a mounted file system, has it.
    pub(crate) fn claim(&self, mode: OpenMode) -> Result<Option<Claim<'_, 'a, T>>> {
        if mode.exclusive() {
            return Ok(None);
        }
        // SAFETY: The bdev is open; the holder is a unique static address.
        to_result(unsafe {
            bindings::bd_prepare_to_claim(self.bdev.as_ptr(), claim_holder(), core::ptr::null())
        })?;
        Ok(Some(Claim { bdev: self }))
    }
}

fn claim_holder() -> *mut c_void {
    static HOLDER: u8 = 0;
    core::ptr::from_ref(&HOLDER).cast_mut().cast()
}

/// A pending exclusive claim of a block device; aborted on drop, as loop.c does once done.
pub(crate) struct Claim<'b, 'a, T: Operations> {
    bdev: &'b BlockDevice<'a, T>,
}

impl<T: Operations> Drop for Claim<'_, '_, T> {
    fn drop(&mut self) {
        // SAFETY: Paired with the successful `bd_prepare_to_claim` in `BlockDevice::claim`.
        unsafe { bindings::bd_abort_claiming(self.bdev.bdev.as_ptr(), claim_holder()) };
    }
}

/// Creates devices on demand for block major 7: called when a missing `/dev/loopN` is opened.
pub(crate) trait Probe {
    /// A device with minor `minor` of the major was opened but does not exist.
    fn probe(minor: u32);
}

/// Block major 7 ("loop"), registered while this lives.
pub(crate) struct MajorRegistration<P: Probe> {
    _p: PhantomData<P>,
}

impl<P: Probe> MajorRegistration<P> {
    /// Registers the major with its legacy-autoload probe.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: The name is a static string and the probe a function of this module, which
        // stays loaded while the major is registered (unregistered on drop).
        let ret = unsafe {
            bindings::__register_blkdev(
                bindings::LOOP_MAJOR,
                c"loop".as_char_ptr(),
                Some(probe::<P>),
            )
        };
        if ret != 0 {
            pr_err!("block major 7 is taken: unload the other loop driver first\n");
            return Err(Error::from_errno(ret));
        }
        Ok(Self { _p: PhantomData })
    }
}

impl<P: Probe> Drop for MajorRegistration<P> {
    fn drop(&mut self) {
        // SAFETY: Registered in `register`. Probes run under the major's lock, which this
        // takes: none runs after it returns.
        unsafe { bindings::unregister_blkdev(bindings::LOOP_MAJOR, c"loop".as_char_ptr()) };
    }
}

/// # Safety
///
/// Called by the block layer when a missing device of the major is opened.
unsafe extern "C" fn probe<P: Probe>(devt: bindings::dev_t) {
    P::probe(devt & ((1 << bindings::MINORBITS) - 1));
}
