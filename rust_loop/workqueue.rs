// SPDX-License-Identifier: GPL-2.0

//! A driver's own workqueue (`alloc_workqueue`), for work that may block.
//!
//! The 7.2 `kernel::workqueue` queues `Arc`/`KBox`-owned items; a loop command's work item lives
//! in its request's PDU and is owned through the request (`Rq::punt_blocking` in `request.rs`), hence
//! this small owner of a `workqueue_struct`.
//!
//! Types and the invariants they enforce:
//! - [`WorkQueue`]: a workqueue that exists from construction to drop; dropping it drains it
//!   (`destroy_workqueue` runs every queued work first), so no work queued on it can outlive it.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{fmt, ptr::NonNull};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_int, c_uint},
    prelude::*,
    str::CString,
};

use crate::helpers;

/// A workqueue (see the module documentation).
///
/// # Invariants
///
/// `wq` was allocated by `alloc_workqueue` and is destroyed only in `drop`.
pub(crate) struct WorkQueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: A workqueue is used through functions that take its own locks, from any task.
unsafe impl Send for WorkQueue {}
// SAFETY: As above.
unsafe impl Sync for WorkQueue {}

impl WorkQueue {
    /// An unbound, freezable workqueue named `name` running at most `max_active` works at once
    /// (`WQ_UNBOUND | WQ_FREEZABLE`, like loop.c's and zloop's).
    pub(crate) fn new_unbound_freezable(name: fmt::Arguments<'_>, max_active: u32) -> Result<Self> {
        let name = CString::try_from_fmt(name)?;
        let max_active = max_active.clamp(1, bindings::wq_consts_WQ_MAX_ACTIVE);
        let flags = bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags_WQ_FREEZABLE;
        // SAFETY: The format takes one string, which we pass (copied by the call).
        let wq = from_err_ptr(unsafe {
            bindings::alloc_workqueue_noprof(
                c"%s".as_char_ptr(),
                flags as c_uint,
                max_active as c_int,
                name.as_char_ptr(),
            )
        })?;
        // INVARIANT: Allocated above (`alloc_workqueue` returns NULL on failure).
        Ok(Self {
            wq: NonNull::new(wq).ok_or(ENOMEM)?,
        })
    }

    /// Waits until every work queued so far has run (`flush_workqueue`).
    pub(crate) fn flush(&self) {
        // SAFETY: The workqueue is live (type invariant).
        unsafe { bindings::__flush_workqueue(self.wq.as_ptr()) };
    }

    /// The C workqueue, for [`WorkQueue::queue_raw`].
    pub(crate) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.wq.as_ptr()
    }

    /// Queues `work` on `wq`; false if it was pending already. Takes the raw workqueue, not a
    /// reference: once the work is linked it may run, end what owns the workqueue and free it
    /// while this call returns (what `queue_work` touches after linking is RCU-protected
    /// against `destroy_workqueue`), and a reference argument would have to stay valid.
    ///
    /// # Safety
    ///
    /// `wq` is the workqueue of a live [`WorkQueue`] whose `destroy_workqueue` cannot begin
    /// before `work` is linked (for example because the queued work keeps its owner alive);
    /// `work` is an initialised `work_struct` that stays valid, and is not freed or reused,
    /// until its function has run.
    pub(crate) unsafe fn queue_raw(
        wq: *mut bindings::workqueue_struct,
        work: *mut bindings::work_struct,
    ) -> bool {
        // SAFETY: By the caller's guarantees.
        unsafe { helpers::rust_loop_queue_work(wq, work) }
    }
}

impl Drop for WorkQueue {
    fn drop(&mut self) {
        // SAFETY: Allocated in `new_*` (type invariant); this drains the queued works first.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}
