// SPDX-License-Identifier: GPL-2.0

//! A read-only sysfs attribute group on a driver's disks (loop's `/sys/block/loopN/loop/`).
//!
//! Types and the invariants they enforce:
//! - [`AttrGroup`]: the driver names the group and its attributes and shows them; the tables are
//!   built per driver at compile time, and the `show` trampolines recover the disk as a
//!   [`DiskRef`] of that driver, since [`add_group`] puts a driver's group only on its own disks.
//! - [`SysfsBuf`]: the one-page `show` buffer; writes past its end fail, they never overflow.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::marker::PhantomData;
use kernel::{
    bindings,
    ffi::{c_char, CStr},
    prelude::*,
    str::as_char_ptr_in_const_context,
};

use crate::{blkdev, disk::DiskRef};

/// The most attributes a group can have.
const MAX_ATTRS: usize = 8;

/// A driver's attribute group on its disks.
pub(crate) trait AttrGroup: blkdev::Operations {
    /// The group's directory name.
    const GROUP_NAME: &'static CStr;
    /// The attributes, in order (at most 8); `show` gets the index into this list.
    const ATTR_NAMES: &'static [&'static CStr];

    /// Shows attribute `index` of `disk`'s group.
    fn show(disk: DiskRef<'_, Self>, index: usize, out: &mut SysfsBuf<'_>) -> Result;
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

/// Creates `T`'s group on one of its disks; false if that failed (then there is nothing to
/// remove).
pub(crate) fn add_group<T: AttrGroup>(disk: DiskRef<'_, T>) -> bool {
    // SAFETY: The disk's device is registered; the group is a constant table of `T`.
    unsafe { bindings::sysfs_create_group(disk.kobj(), &Group::<T>::GROUP) == 0 }
}

/// Removes `T`'s group. Waits for readers: never call with a lock their `show` takes.
pub(crate) fn remove_group<T: AttrGroup>(disk: DiskRef<'_, T>) {
    // SAFETY: The disk's device is registered; removing a group that is not there is a no-op.
    unsafe { bindings::sysfs_remove_group(disk.kobj(), &Group::<T>::GROUP) };
}

struct Group<T: AttrGroup>(PhantomData<T>);

impl<T: AttrGroup> Group<T> {
    const fn attr(
        index: usize,
        show: unsafe extern "C" fn(
            *mut bindings::device,
            *mut bindings::device_attribute,
            *mut c_char,
        ) -> isize,
    ) -> bindings::device_attribute {
        // SAFETY: All-zero is a valid `device_attribute` (no methods; with lockdep, no explicit
        // key, so sysfs uses the `skey` inside the attribute).
        let mut a: bindings::device_attribute = unsafe { core::mem::zeroed() };
        if index < T::ATTR_NAMES.len() {
            a.attr.name = as_char_ptr_in_const_context(T::ATTR_NAMES[index]);
            a.attr.mode = 0o444;
            a.__bindgen_anon_1.show = Some(show);
        }
        a
    }

    const A0: bindings::device_attribute = Self::attr(0, show::<T, 0>);
    const A1: bindings::device_attribute = Self::attr(1, show::<T, 1>);
    const A2: bindings::device_attribute = Self::attr(2, show::<T, 2>);
    const A3: bindings::device_attribute = Self::attr(3, show::<T, 3>);
    const A4: bindings::device_attribute = Self::attr(4, show::<T, 4>);
    const A5: bindings::device_attribute = Self::attr(5, show::<T, 5>);
    const A6: bindings::device_attribute = Self::attr(6, show::<T, 6>);
    const A7: bindings::device_attribute = Self::attr(7, show::<T, 7>);

    const fn entry(
        index: usize,
        a: &'static bindings::device_attribute,
    ) -> *const bindings::attribute {
        if index < T::ATTR_NAMES.len() {
            &a.attr
        } else {
            core::ptr::null()
        }
    }

    /// The NULL-terminated attribute list.
    const ATTRS: [*const bindings::attribute; MAX_ATTRS + 1] = {
        assert!(T::ATTR_NAMES.len() <= MAX_ATTRS);
        [
            Self::entry(0, &Self::A0),
            Self::entry(1, &Self::A1),
            Self::entry(2, &Self::A2),
            Self::entry(3, &Self::A3),
            Self::entry(4, &Self::A4),
            Self::entry(5, &Self::A5),
            Self::entry(6, &Self::A6),
            Self::entry(7, &Self::A7),
            core::ptr::null(),
        ]
    };

    const GROUP: bindings::attribute_group = bindings::attribute_group {
        name: as_char_ptr_in_const_context(T::GROUP_NAME),
        __bindgen_anon_1: bindings::attribute_group__bindgen_ty_1 { is_visible: None },
        is_bin_visible: None,
        bin_size: None,
        __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
            // Sysfs only reads the array; it is declared mutable in C for historical reasons.
            attrs: core::ptr::from_ref(&Self::ATTRS).cast_mut().cast(),
        },
        bin_attrs: core::ptr::null(),
    };
}

/// # Safety
///
/// Called by sysfs for attribute `I` of `T`'s group on the device of an added disk of `T`
/// (`disk_to_dev`), with a one-page buffer.
unsafe extern "C" fn show<T: AttrGroup, const I: usize>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: `dev` is `&part0->bd_device` of the disk (`dev_to_disk`).
    #[expect(
        clippy::multiple_unsafe_ops_per_block,
        reason = "container_of! is one operation; its type check names the field through the pointer"
    )]
    let bdev = unsafe { kernel::container_of!(dev, bindings::block_device, bd_device) };
    // SAFETY: As above; `bd_disk` of `part0` is the disk.
    let disk = unsafe { (*bdev).bd_disk };
    // SAFETY: The group exists only on added disks of `T` (`add_group`), and sysfs drains
    // readers before the group (and so the disk) goes.
    let disk = unsafe { DiskRef::<T>::from_raw(disk) };
    // SAFETY: Sysfs gives a page-sized buffer, ours for the call.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE) };
    let mut out = SysfsBuf { buf: page, len: 0 };
    match T::show(disk, I, &mut out) {
        Ok(()) => out.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}
