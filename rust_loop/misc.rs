// SPDX-License-Identifier: GPL-2.0

//! A misc character device with a fixed minor whose only method is `ioctl` (loop's
//! `/dev/loop-control`, misc 10:237).
//!
//! The 7.2 `kernel::miscdevice` registration always asks for a dynamic minor and has no module
//! owner; `/dev/loop-control` must be 10:237 (udev, `devname:` autoloading) and must keep the
//! module loaded while open, hence this small wrapper.
//!
//! Types and the invariants they enforce:
//! - [`MiscOps`]: the driver's ioctl handler, reached through a constant table with this module
//!   as owner (an open file keeps the module loaded).
//! - [`MiscRegistration`]: registered while it lives (pinned: `misc_register` links it into a
//!   list), deregistered on drop.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{
    marker::{PhantomData, PhantomPinned},
    pin::Pin,
};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_long, c_uint, c_ulong, CStr},
    prelude::*,
    types::Opaque,
};

/// The ioctls of a misc device.
pub(crate) trait MiscOps: 'static {
    /// `->unlocked_ioctl` and `->compat_ioctl` (the argument is an integer, not a pointer).
    fn ioctl(cmd: u32, arg: usize) -> Result<i32>;
}

/// A misc device registered with a fixed minor while this lives.
///
/// # Invariants
///
/// `misc` is registered with `misc_register` from construction until drop.
#[pin_data(PinnedDrop)]
pub(crate) struct MiscRegistration<M: MiscOps> {
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    #[pin]
    _pin: PhantomPinned,
    _p: PhantomData<M>,
}

// SAFETY: The misc device is only touched by `misc_register`/`misc_deregister`, which lock.
unsafe impl<M: MiscOps> Send for MiscRegistration<M> {}
// SAFETY: As above; `&self` gives nothing.
unsafe impl<M: MiscOps> Sync for MiscRegistration<M> {}

impl<M: MiscOps> MiscRegistration<M> {
    /// Registers `/dev/<name>` as misc `minor` (`EBUSY` while another driver has the minor).
    pub(crate) fn register(name: &'static CStr, minor: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                // SAFETY: All-zero is a valid unregistered `miscdevice`.
                let mut m: bindings::miscdevice = unsafe { core::mem::zeroed() };
                m.minor = minor as c_int;
                m.name = name.as_char_ptr();
                m.fops = &Fops::<M>::FOPS;
                // SAFETY: `slot` is valid for writes and pinned.
                unsafe { slot.write(m) };
                // INVARIANT: Registered in place on success (it must not move afterwards).
                // SAFETY: `slot` holds a filled-in device that stays in place while registered.
                let res = to_result(unsafe { bindings::misc_register(slot) });
                if res == Err(EBUSY) {
                    pr_err!(
                        "/dev/{} (misc 10:{}) is taken: unload the other driver first\n",
                        name.to_str().unwrap_or("?"),
                        minor
                    );
                }
                res
            }),
            _pin: PhantomPinned,
            _p: PhantomData,
        })
    }
}

#[pinned_drop]
impl<M: MiscOps> PinnedDrop for MiscRegistration<M> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the device is registered.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}

struct Fops<M: MiscOps>(PhantomData<M>);

impl<M: MiscOps> Fops<M> {
    const FOPS: bindings::file_operations = {
        // SAFETY: All-zero is a valid `file_operations` (every method absent).
        let mut f: bindings::file_operations = unsafe { core::mem::zeroed() };
        f.owner = (&raw const bindings::__this_module).cast_mut();
        f.open = Some(bindings::nonseekable_open);
        f.unlocked_ioctl = Some(ioctl::<M>);
        f.compat_ioctl = Some(ioctl::<M>);
        f.llseek = Some(bindings::noop_llseek);
        f
    };
}

/// # Safety
///
/// Called by the VFS as `->unlocked_ioctl` or `->compat_ioctl` of a file of the device.
unsafe extern "C" fn ioctl<M: MiscOps>(
    _file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    match M::ioctl(cmd, arg) {
        Ok(v) => v as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}
