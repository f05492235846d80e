// SPDX-License-Identifier: GPL-2.0

//! Gendisks on a [`TagSet`]: allocation, adding as `loop<N>` on block major 7, deletion, and
//! what a loop device changes on its disk and queue while it lives: capacity, read-only flag,
//! uevents, queue limits (under the queue's `limits_lock`), freezing, partitions.
//!
//! Types and the invariants they enforce:
//! - [`NewDisk`] owns an allocated, not yet added disk; [`Disk`] owns an added one and deletes
//!   it on drop. Neither can be copied.
//! - [`DiskRef`] is a borrowed handle, valid for its lifetime `'a` only: it is handed out by an
//!   owner ([`Disk::get`]), by a block-device callback for the duration of the call, or by an
//!   in-flight request (`Rq::disk`). It cannot be stored beyond that, so it never outlives the
//!   disk. Its type parameter says whose disk it is, so its queue data has a known type.
//! - [`Frozen`] (a queue freeze) and [`LimitsUpdate`] (the queue's `limits_lock`) are guards
//!   that end on drop and are `!Send`, so they end on the task that began them.
//! - Dropping every partition needs `open_mutex`, which only the `->release` callback holds:
//!   [`DiskRef::drop_partitions`] takes the [`OpenMutexHeld`] token only that callback makes.
//!
//! C headers: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h),
//! [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{marker::PhantomData, pin::Pin, ptr::NonNull};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    ffi::{c_char, c_int, c_ulong},
    prelude::*,
    types::ForeignOwnable,
};

use crate::{
    blkdev, helpers,
    request::{Operations, TagSet},
};

/// `BLK_FEAT_WRITE_CACHE` (`include/linux/blkdev.h`; checked in `include/rust_loop_helpers.c`).
const BLK_FEAT_WRITE_CACHE: u32 = 1 << 0;
/// "Random number picked from the historic block max_sectors cap" (loop.c's
/// `LOOP_MAX_HW_SECTORS`, private to loop.c).
const LOOP_MAX_HW_SECTORS: u32 = 2560;

/// The queue limits a loop device sets (`loop_update_limits`).
pub(crate) struct QueueLimits {
    pub(crate) block_size: u32,
    pub(crate) write_cache: bool,
    pub(crate) rotational: bool,
    pub(crate) max_discard_sectors: u32,
    pub(crate) discard_granularity: u32,
}

impl QueueLimits {
    fn apply(&self, lim: &mut bindings::queue_limits) {
        lim.logical_block_size = self.block_size;
        lim.physical_block_size = self.block_size;
        lim.io_min = self.block_size;
        lim.features &= !(BLK_FEAT_WRITE_CACHE | bindings::BLK_FEAT_ROTATIONAL);
        if self.write_cache {
            lim.features |= BLK_FEAT_WRITE_CACHE;
        }
        if self.rotational {
            lim.features |= bindings::BLK_FEAT_ROTATIONAL;
        }
        lim.max_hw_discard_sectors = self.max_discard_sectors;
        lim.max_write_zeroes_sectors = self.max_discard_sectors;
        lim.discard_granularity = if self.max_discard_sectors != 0 {
            self.discard_granularity
        } else {
            0
        };
    }
}

/// A disk of driver `T`, borrowed for `'a` (see the module documentation).
///
/// # Invariants
///
/// `disk` is a gendisk allocated by [`NewDisk<T>`] (so its queue is on a `TagSet<T>`, and once
/// added its `private_data` and `queuedata` hold `T::QueueData`), alive for `'a`.
pub(crate) struct DiskRef<'a, T: Operations> {
    disk: NonNull<bindings::gendisk>,
    _p: PhantomData<(&'a bindings::gendisk, T)>,
}

impl<T: Operations> Clone for DiskRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Operations> Copy for DiskRef<'_, T> {}

// SAFETY: A `DiskRef` is a shared borrow of the disk; the disk functions it calls take their
// own locks, from any task.
unsafe impl<T: Operations> Send for DiskRef<'_, T> {}
// SAFETY: As above.
unsafe impl<T: Operations> Sync for DiskRef<'_, T> {}

impl<'a, T: Operations> DiskRef<'a, T> {
    /// # Safety
    ///
    /// `disk` is a gendisk allocated by [`NewDisk<T>`] that stays alive for `'a`, and added
    /// (only [`NewDisk::add`] uses a handle to a disk it is still setting up).
    pub(crate) unsafe fn from_raw(disk: *mut bindings::gendisk) -> Self {
        // INVARIANT: By the caller's guarantee.
        Self {
            // SAFETY: A live gendisk pointer is not null.
            disk: unsafe { NonNull::new_unchecked(disk) },
            _p: PhantomData,
        }
    }

    pub(crate) fn raw(self) -> *mut bindings::gendisk {
        self.disk.as_ptr()
    }

    fn queue(self) -> *mut bindings::request_queue {
        // SAFETY: The disk is alive for `'a` (type invariant); `queue` is set at allocation and
        // never changes.
        unsafe { (*self.raw()).queue }
    }

    fn part0(self) -> *mut bindings::block_device {
        // SAFETY: As in `queue`: `part0` is set at allocation and never changes.
        unsafe { (*self.raw()).part0 }
    }

    /// The identity of the disk's request queue (its address, never dereferenced as such).
    pub(crate) fn queue_id(self) -> usize {
        self.queue() as usize
    }

    /// The disk's queue data (an added disk's `private_data`).
    pub(crate) fn data(self) -> <T::QueueData as ForeignOwnable>::Borrowed<'a> {
        // SAFETY: An added disk of `T` holds `T::QueueData` in `private_data` until its
        // `free_disk`, which cannot run while the disk is borrowed for `'a`. Only added disks
        // are reachable as a `DiskRef` outside this file.
        let data = unsafe { (*self.raw()).private_data };
        // SAFETY: As above.
        unsafe { T::QueueData::borrow(data) }
    }

    /// The disk's block-device operations table (identifies the driver of a disk).
    pub(crate) fn fops(self) -> *const bindings::block_device_operations {
        // SAFETY: As in `queue`: `fops` is set before the disk is added and never changes.
        unsafe { (*self.raw()).fops }
    }

    /// The kobject of the disk's `struct device`, for uevents and sysfs groups.
    pub(crate) fn kobj(self) -> *mut bindings::kobject {
        // SAFETY: `disk_to_dev(disk)` is `&part0->bd_device`, alive with the disk.
        unsafe { &raw mut (*self.part0()).bd_device.kobj }
    }

    /// Sets the capacity and tells user space: a `RESIZE=1` change event between two non-zero
    /// sizes, a plain change event otherwise (`loop_set_size`).
    pub(crate) fn set_size(self, sectors: u64) {
        // SAFETY: The disk is alive; the call takes the locks it needs.
        if !unsafe { bindings::set_capacity_and_notify(self.raw(), sectors) } {
            self.uevent_change();
        }
    }

    /// Sends a change uevent for the disk.
    pub(crate) fn uevent_change(self) {
        // SAFETY: The disk's device is registered while the disk is added.
        unsafe { bindings::kobject_uevent(self.kobj(), bindings::kobject_action_KOBJ_CHANGE) };
    }

    /// Suppresses the disk's uevents until the guard is dropped (while it is reconfigured).
    pub(crate) fn suppress_uevents(self) -> UeventsSuppressed<'a, T> {
        // SAFETY: The disk is alive.
        unsafe { helpers::rust_loop_disk_set_uevent_suppress(self.raw(), 1) };
        UeventsSuppressed { disk: self }
    }

    /// Reports a media change: new disk sequence number, dead bdev for old openers.
    pub(crate) fn force_media_change(self) {
        // SAFETY: The disk is alive.
        unsafe { bindings::disk_force_media_change(self.raw()) };
    }

    /// Sets the disk read-only or read-write.
    pub(crate) fn set_read_only(self, ro: bool) {
        // SAFETY: The disk is alive.
        unsafe { bindings::set_disk_ro(self.raw(), ro) };
    }

    /// How many times the whole disk is open.
    pub(crate) fn openers(self) -> u32 {
        // SAFETY: The disk is alive.
        unsafe { helpers::rust_loop_disk_openers(self.raw()) }
    }

    /// The current logical block size (read without the limits lock, as the block layer does).
    pub(crate) fn logical_block_size(self) -> u32 {
        // SAFETY: The queue lives as long as the disk.
        unsafe { helpers::rust_loop_queue_logical_block_size(self.queue()) }
    }

    /// The current maximum discard size in sectors (0: discard is off).
    pub(crate) fn max_discard_sectors(self) -> u32 {
        // SAFETY: The queue lives as long as the disk.
        unsafe { helpers::rust_loop_queue_max_discard_sectors(self.queue()) }
    }

    /// Starts an update of the queue limits: takes the queue's `limits_lock` and copies the
    /// limits. The block layer orders `limits_lock` before freezing the queue (as loop.c does:
    /// start, freeze, commit), so a caller that freezes starts the update first.
    fn start_update(self) -> LimitsUpdate<'a, T> {
        let mut lim = pin_init::zeroed::<bindings::queue_limits>();
        // SAFETY: The queue is alive; this takes `limits_lock` and copies the limits.
        unsafe { helpers::rust_loop_limits_start_update(self.queue(), &mut lim) };
        // INVARIANT: We just took `limits_lock`.
        LimitsUpdate {
            disk: self,
            lim,
            _not_send: PhantomData,
        }
    }

    /// Starts setting a loop device's limits; [`LimitsUpdate::commit`] applies them (`EINVAL`
    /// for an invalid block size).
    pub(crate) fn start_limits(self, l: &QueueLimits) -> LimitsUpdate<'a, T> {
        let mut update = self.start_update();
        l.apply(&mut update.lim);
        update
    }

    /// Applies a loop device's limits (`EINVAL` for an invalid block size).
    pub(crate) fn set_limits(self, l: &QueueLimits) -> Result {
        self.start_limits(l).commit()
    }

    /// Resets the block size to 512 at detach (the only limits loop.c resets).
    pub(crate) fn reset_block_size(self) {
        let mut update = self.start_update();
        update.lim.logical_block_size = 512;
        update.lim.physical_block_size = 512;
        update.lim.io_min = 512;
        // 512 is always a valid block size.
        let _ = update.commit();
    }

    /// Turns off discard (`punch`) and/or write-zeroes (`zero_range`) after the backing file
    /// system said `EOPNOTSUPP`, so the error is logged once (`loop_clear_limits`). Like loop.c
    /// this runs from the I/O path, without freezing the queue. Unlike loop.c it does not wait
    /// for `limits_lock`: its holder may be freezing the queue (LOOP_SET_BLOCK_SIZE), waiting
    /// for the very request being handled here. If the lock is taken, the limits stay and the
    /// next such error tries again.
    pub(crate) fn try_clear_discard_limits(self, punch: bool, zero_range: bool) {
        let mut lim = pin_init::zeroed::<bindings::queue_limits>();
        // SAFETY: The queue is alive; on success this holds `limits_lock` with `lim` a copy.
        if !unsafe { helpers::rust_loop_limits_try_start_update(self.queue(), &mut lim) } {
            return;
        }
        // INVARIANT: `limits_lock` is held.
        let mut update = LimitsUpdate {
            disk: self,
            lim,
            _not_send: PhantomData,
        };
        if zero_range {
            update.lim.max_write_zeroes_sectors = 0;
        }
        if punch {
            update.lim.max_hw_discard_sectors = 0;
            update.lim.discard_granularity = 0;
        }
        // Lowering limits cannot fail validation.
        let _ = update.commit();
    }

    /// Freezes the queue: returns once no request is in flight, and keeps new ones out until
    /// the guard is dropped.
    pub(crate) fn freeze(self) -> Frozen<'a> {
        // SAFETY: The queue is alive; freezing may sleep, which our callers allow.
        let memflags = unsafe { helpers::rust_loop_freeze_queue(self.queue()) };
        Frozen {
            queue: self.queue(),
            memflags,
            _p: PhantomData,
        }
    }

    /// The CPUs blk-mq maps to hardware queue `index` of the disk's queue.
    pub(crate) fn hw_queue_cpumask(self, index: u32) -> Option<CpuMask<'a>> {
        // SAFETY: The queue is alive; its hardware contexts live as long as it does.
        let mask = unsafe { helpers::rust_loop_hw_queue_cpumask(self.queue(), index) };
        // INVARIANT: A hardware context's mask lives as long as the queue, borrowed for 'a.
        NonNull::new(mask.cast_mut()).map(|mask| CpuMask {
            mask,
            _p: PhantomData,
        })
    }

    /// Enables or disables the kernel's partition scan for the disk (`GD_SUPPRESS_PART_SCAN`).
    pub(crate) fn set_partscan(self, enabled: bool) {
        // SAFETY: `state` is a bitmap of the live disk, changed with atomic bit operations.
        let state = unsafe { &raw mut (*self.raw()).state };
        let bit = bindings::GD_SUPPRESS_PART_SCAN as c_ulong;
        if enabled {
            // SAFETY: As above.
            unsafe { bindings::clear_bit(bit, state) };
        } else {
            // SAFETY: As above.
            unsafe { bindings::set_bit(bit, state) };
        }
    }

    /// Rescans the partition table (`loop_reread_partitions`); takes `open_mutex`.
    pub(crate) fn reread_partitions(self) -> Result {
        // SAFETY: `open_mutex` of the live disk.
        let m = unsafe { &raw mut (*self.raw()).open_mutex };
        // SAFETY: As above; not held by us (callers are ioctls, not `->release`).
        unsafe { bindings::mutex_lock(m) };
        // SAFETY: `bdev_disk_changed` requires `open_mutex`, held here.
        let ret = unsafe { bindings::bdev_disk_changed(self.raw(), false) };
        // SAFETY: Taken above.
        unsafe { bindings::mutex_unlock(m) };
        to_result(ret)
    }

    /// Drops every partition, BLKPG-added ones included, on the release path.
    /// The token must be this disk's (`EINVAL` otherwise).
    pub(crate) fn drop_partitions(self, held: &OpenMutexHeld<'_>) -> Result {
        if held.disk != self.raw() {
            return Err(EINVAL);
        }
        // SAFETY: This disk's `open_mutex` is held (the token is this disk's, and exists only
        // inside its `->release`).
        to_result(unsafe { bindings::bdev_disk_changed(self.raw(), false) })
    }

    /// Sets the capacity to 0 and drops the page cache (`invalidate_disk`).
    pub(crate) fn invalidate(self) {
        // SAFETY: The disk is alive.
        unsafe { bindings::invalidate_disk(self.raw()) };
    }

    /// Writes back and drops the whole-disk page cache before the mapping changes.
    pub(crate) fn sync_and_invalidate(self) {
        let bdev = self.part0();
        // SAFETY: `part0` is the whole-disk bdev of the live disk.
        unsafe { bindings::sync_blockdev(bdev) };
        // SAFETY: As above.
        unsafe { bindings::invalidate_bdev(bdev) };
    }
}

/// A CPU mask borrowed from a disk's queue (a hardware queue's CPUs).
///
/// # Invariants
///
/// `mask` is a valid cpumask for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct CpuMask<'a> {
    mask: NonNull<bindings::cpumask>,
    _p: PhantomData<&'a bindings::cpumask>,
}

impl CpuMask<'_> {
    /// The C mask, valid for the borrow.
    pub(crate) fn as_raw(self) -> *const bindings::cpumask {
        self.mask.as_ptr()
    }
}

/// Proof that the `open_mutex` of the disk `disk` is held: only the `->release` callback makes
/// one.
pub(crate) struct OpenMutexHeld<'a> {
    disk: *mut bindings::gendisk,
    _p: PhantomData<&'a mut ()>,
    _not_send: PhantomData<*mut ()>,
}

impl OpenMutexHeld<'_> {
    /// # Safety
    ///
    /// The `open_mutex` of `disk` is held for the token's lifetime.
    pub(crate) unsafe fn new(disk: *mut bindings::gendisk) -> Self {
        Self {
            disk,
            _p: PhantomData,
            _not_send: PhantomData,
        }
    }
}

/// Uevents of a disk suppressed; resumed on drop.
pub(crate) struct UeventsSuppressed<'a, T: Operations> {
    disk: DiskRef<'a, T>,
}

impl<T: Operations> Drop for UeventsSuppressed<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The disk is alive for the borrow.
        unsafe { helpers::rust_loop_disk_set_uevent_suppress(self.disk.raw(), 0) };
    }
}

/// A frozen queue; unfreezes on drop, on the freezing task.
pub(crate) struct Frozen<'a> {
    queue: *mut bindings::request_queue,
    memflags: u32,
    // Borrows the disk; `*mut` (in `queue`) keeps the guard `!Send`.
    _p: PhantomData<&'a ()>,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        // SAFETY: Paired with the freeze in `DiskRef::freeze`; the queue lives for `'a`.
        unsafe { helpers::rust_loop_unfreeze_queue(self.queue, self.memflags) };
    }
}

/// An update of a queue's limits in progress; dropping it without [`LimitsUpdate::commit`]
/// cancels it.
///
/// # Invariants
///
/// The queue's `limits_lock` is held by this value, and `lim` started as a copy of its limits.
pub(crate) struct LimitsUpdate<'a, T: Operations> {
    disk: DiskRef<'a, T>,
    lim: bindings::queue_limits,
    // A mutex is released by the task that took it.
    _not_send: PhantomData<*mut ()>,
}

impl<T: Operations> LimitsUpdate<'_, T> {
    /// Validates and applies the new limits, releasing `limits_lock`.
    pub(crate) fn commit(self) -> Result {
        let mut this = core::mem::ManuallyDrop::new(self);
        let q = this.disk.queue();
        // SAFETY: By the type invariant `limits_lock` is held; this validates, applies and
        // unlocks, so `drop` must not run (`ManuallyDrop`).
        to_result(unsafe { bindings::queue_limits_commit_update(q, &mut this.lim) })
    }
}

impl<T: Operations> Drop for LimitsUpdate<'_, T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `limits_lock` is held, and the update was not committed.
        unsafe { helpers::rust_loop_limits_cancel_update(self.disk.queue()) };
    }
}

/// An allocated loop gendisk that is not added yet, with its tag set; dropping it frees both.
///
/// # Invariants
///
/// `disk` is a gendisk from `__blk_mq_alloc_disk` on `tagset`, not added, owned by this value.
pub(crate) struct NewDisk<T: blkdev::Operations> {
    disk: NonNull<bindings::gendisk>,
    // Dropped after the disk is put: the queue uses the tag set until then.
    tagset: Pin<KBox<TagSet<T>>>,
}

impl<T: blkdev::Operations> NewDisk<T> {
    /// Allocates the tag set (`nr_hw_queues` queues of `depth` tags) and the gendisk.
    pub(crate) fn alloc(nr_hw_queues: u32, depth: u32) -> Result<Self> {
        let tagset = KBox::pin_init(TagSet::new(nr_hw_queues, depth), GFP_KERNEL)?;
        let mut lim = pin_init::zeroed::<bindings::queue_limits>();
        lim.max_hw_sectors = LOOP_MAX_HW_SECTORS;
        // SAFETY: The tag set is allocated and `lim` valid limits; nothing reaches the queue
        // before `add` sets the queue data.
        let disk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(
                tagset.as_raw(),
                &mut lim,
                core::ptr::null_mut(),
                kernel::static_lock_class!().as_ptr(),
            )
        })?;
        // INVARIANT: `__blk_mq_alloc_disk` returned a valid gendisk, which we own.
        Ok(Self {
            disk: NonNull::new(disk).ok_or(ENOMEM)?,
            tagset,
        })
    }

    /// The identity of the disk's request queue (as [`DiskRef::queue_id`]).
    pub(crate) fn queue_id(&self) -> usize {
        // SAFETY: We own the allocated disk; `queue` is set at allocation.
        unsafe { (*self.disk.as_ptr()).queue as usize }
    }

    /// Adds the disk as `loop<number>` on major 7 with `1 << part_shift` minors, owned from
    /// now on by `data` (released when the disk is freed). `EINVAL` if the number does not fit
    /// the minor space; then `data` is simply dropped and nothing was registered.
    pub(crate) fn add(self, data: T::QueueData, number: u32, part_shift: u32) -> Result<Disk<T>> {
        let first_minor = u32::try_from(u64::from(number) << part_shift)
            .ok()
            .filter(|&m| m <= bindings::MINORMASK)
            .ok_or(EINVAL)?;
        let minors = 1u32 << part_shift;
        let disk = self.disk.as_ptr();
        // SAFETY: We own the not yet added gendisk: nothing else looks at it.
        let d = unsafe { &mut *disk };
        // Not a `&mut`: the queue is already known to others (blk-mq's CPU hotplug callbacks
        // take its usage counter), so only the field is written, through the pointer.
        let q = d.queue;
        d.major = bindings::LOOP_MAJOR as c_int;
        d.first_minor = first_minor as c_int;
        d.minors = minors as c_int;
        d.fops = blkdev::fops::<T>();
        d.events = bindings::DISK_EVENT_MEDIA_CHANGE as u16;
        d.event_flags = bindings::DISK_EVENT_FLAG_UEVENT as u16;
        write_disk_name(&mut d.disk_name, number);
        // From here on `data` belongs to the disk.
        let data = data.into_foreign();
        d.private_data = data;
        // SAFETY: The queue of an allocated disk is set; nothing reads `queuedata` before the
        // disk is added (no request, no sysfs) or after a failed add (cleared below).
        unsafe { (*q).queuedata = data };
        // Partition scanning is off by default; it is requested per device at setup, or for all
        // devices with `max_part` (see loop.c's comment in `loop_add`).
        // SAFETY: The disk is ours and valid; it becomes a `T` disk with `data` set above.
        let handle = unsafe { DiskRef::<T>::from_raw(disk) };
        if part_shift == 0 {
            handle.set_partscan(false);
        }
        // SAFETY: The disk is fully set up; `device_add_disk` with no parent or groups is
        // `add_disk`.
        let ret = unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), disk, core::ptr::null_mut())
        };
        if ret != 0 {
            // A disk that was never added gets no `free_disk`: take the data back here.
            // SAFETY: We still own the not added disk (and `d`, `q` are no longer used).
            let queue = unsafe { (*disk).queue };
            // SAFETY: As above, its queue too.
            unsafe { (*queue).queuedata = core::ptr::null_mut() };
            // SAFETY: As above.
            unsafe { (*disk).private_data = core::ptr::null_mut() };
            // SAFETY: `data` came from `into_foreign` above and nothing released it.
            drop(unsafe { T::QueueData::from_foreign(data) });
            return Err(Error::from_errno(ret));
        }
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the tag set is moved out exactly once.
        let tagset = unsafe { core::ptr::read(&this.tagset) };
        // INVARIANT: The disk was added; `Disk` takes over our ownership of it.
        Ok(Disk {
            disk: this.disk,
            _tagset: tagset,
        })
    }
}

impl<T: blkdev::Operations> Drop for NewDisk<T> {
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
pub(crate) struct Disk<T: blkdev::Operations> {
    disk: NonNull<bindings::gendisk>,
    // Dropped after the disk is deleted and put: the queue uses the tag set until then.
    _tagset: Pin<KBox<TagSet<T>>>,
}

// SAFETY: Deleting a disk may happen from any task.
unsafe impl<T: blkdev::Operations> Send for Disk<T> {}
// SAFETY: `&Disk` only gives `DiskRef`s, which are `Sync`.
unsafe impl<T: blkdev::Operations> Sync for Disk<T> {}

impl<T: blkdev::Operations> Disk<T> {
    /// A handle borrowed from this owner.
    pub(crate) fn get(&self) -> DiskRef<'_, T> {
        // SAFETY: We own the added disk of `T` (type invariant); it lives as long as `self`.
        unsafe { DiskRef::from_raw(self.disk.as_ptr()) }
    }
}

impl<T: blkdev::Operations> Drop for Disk<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the disk is added and ours. After `del_gendisk` no I/O
        // reaches the queue.
        unsafe { bindings::del_gendisk(self.disk.as_ptr()) };
        // SAFETY: Drops our reference; the last one frees the disk (and its `private_data` via
        // `free_disk`).
        unsafe { bindings::put_disk(self.disk.as_ptr()) };
    }
}
