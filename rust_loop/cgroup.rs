// SPDX-License-Identifier: GPL-2.0

//! cgroup attribution of I/O done on someone else's behalf: the blkcg and memcg of the task that
//! submitted a request, applied to the worker that does its backing-file I/O, as loop.c's
//! `loop_handle_cmd` does (`kthread_associate_blkcg`, `set_active_memcg`). The backing file's
//! bios are then throttled and accounted (`io.max`, `io.stat`) and its page cache charged
//! (`memory.stat`) to the submitter's cgroup.
//!
//! Types and the invariants they enforce:
//! - [`CssRef`]: one counted reference to a cgroup subsystem state, put exactly once, on drop.
//! - [`Association`]: the current kthread's blkcg and active memcg set for the guard's life and
//!   restored on drop; `!Send`, so it is restored on the task that set it, and made only by
//!   [`Association::with`], which scopes it to a call and makes it only in a kthread in task
//!   context (associations are not meant to nest: the blkcg part is cleared at the end). It
//!   holds its own references (the memcg's as a [`CssRef`], the blkcg's inside the kthread),
//!   so it does not borrow the request it was made from: the request may complete while I/O it
//!   started is still being submitted under the association.
//!
//! C headers: [`include/linux/blk-cgroup.h`](srctree/include/linux/blk-cgroup.h),
//! [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h),
//! [`include/linux/kthread.h`](srctree/include/linux/kthread.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{marker::PhantomData, ptr::NonNull};
use kernel::bindings;

use crate::{
    helpers,
    request::{Operations, Rq},
};

/// A counted reference to a cgroup subsystem state (`css_get`/`css_put`).
///
/// # Invariants
///
/// `css` is a live css on which this value holds one reference.
pub(crate) struct CssRef {
    css: NonNull<bindings::cgroup_subsys_state>,
}

// SAFETY: css reference counts are atomic; a reference may be put from any task.
unsafe impl Send for CssRef {}
// SAFETY: `&CssRef` gives nothing but the pointer.
unsafe impl Sync for CssRef {}

impl Drop for CssRef {
    fn drop(&mut self) {
        // SAFETY: We hold one reference (type invariant), given up here.
        unsafe { helpers::rust_loop_css_put(self.css.as_ptr()) };
    }
}

/// The submitter's cgroups applied to the current kthread (see the module documentation).
///
/// # Invariants
///
/// If `blkcg` is true, this kthread's blkcg association was set by [`Association::of`]; if
/// `memcg` is some, the active memcg was set to it and `old_memcg` is what to restore.
pub(crate) struct Association {
    blkcg: bool,
    memcg: Option<CssRef>,
    old_memcg: *mut bindings::mem_cgroup,
    // `*mut` (in `old_memcg`) also makes the guard `!Send`; this says why.
    _not_send: PhantomData<*mut ()>,
}

impl Association {
    /// Runs `f` on `rq` with what the current task does charged to the cgroups of `rq`'s
    /// submitter (see [`Association::of`]); the previous state is back when `f` returns.
    ///
    /// Only a kthread in task context associates (in an interrupt, the association would be that
    /// of whichever kthread was interrupted); elsewhere `f` runs without. Associations do not
    /// nest: the inner one's end clears the kthread's blkcg (as loop.c's `loop_handle_cmd`).
    pub(crate) fn with<T: Operations, R>(rq: Rq<T>, f: impl FnOnce(Rq<T>) -> R) -> R {
        // SAFETY: Reads the current context and task flags.
        if !unsafe { helpers::rust_loop_can_associate() } {
            return f(rq);
        }
        let _association = Self::of(&rq);
        f(rq)
    }

    /// Charges what the current task does to the cgroups of `rq`'s submitter: its first bio's
    /// blkcg, and the memcg of that blkcg's cgroup (`loop_queue_rq` + `loop_handle_cmd`).
    /// Nothing is associated for a request without data (a flush). Called in a kthread, in task
    /// context (see [`Association::with`]).
    fn of<T: Operations>(rq: &Rq<T>) -> Self {
        // SAFETY: We own the request; its first bio, and so the bio's blkg and css, live while it
        // is in flight, which the borrow of `rq` covers for the calls below.
        let blkcg = unsafe { helpers::rust_loop_rq_blkcg_css(rq.as_raw()) };
        if blkcg.is_null() {
            return Self {
                blkcg: false,
                memcg: None,
                old_memcg: core::ptr::null_mut(),
                _not_send: PhantomData,
            };
        }
        // SAFETY: `blkcg` is live (above); this takes a reference of our own on the memcg css.
        let memcg = NonNull::new(unsafe { helpers::rust_loop_memcg_css_get(blkcg) })
            // INVARIANT: `cgroup_get_e_css` returned a css with a reference for us.
            .map(|css| CssRef { css });
        // SAFETY: `blkcg` is live; the kthread takes its own reference, dropped by the reset in
        // `drop`.
        unsafe { bindings::kthread_associate_blkcg(blkcg) };
        let old_memcg = match &memcg {
            // SAFETY: The memcg css stays live while we hold `memcg` (until after the restore
            // in `drop`), as `set_active_memcg` requires.
            Some(css) => unsafe { helpers::rust_loop_set_active_memcg(css.css.as_ptr()) },
            None => core::ptr::null_mut(),
        };
        // INVARIANT: Set above.
        Self {
            blkcg: true,
            memcg,
            old_memcg,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Association {
    fn drop(&mut self) {
        if self.memcg.is_some() {
            // SAFETY: Restores what `of` replaced, on the same task (`!Send`), before the memcg
            // reference goes (field drop, after this).
            unsafe { helpers::rust_loop_restore_active_memcg(self.old_memcg) };
        }
        if self.blkcg {
            // SAFETY: Drops the kthread's association (and its reference), as loop.c does.
            unsafe { bindings::kthread_associate_blkcg(core::ptr::null_mut()) };
        }
    }
}
