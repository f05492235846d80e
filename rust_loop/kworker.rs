// SPDX-License-Identifier: GPL-2.0

//! A kthread worker (`kthread_create_worker`) that runs one function of its data on demand.
//!
//! Types and the invariants they enforce:
//! - [`KWorker`]: owns the kthread, one `kthread_work` and the data the work runs on, in one
//!   pinned allocation. [`KWorker::kick`] queues the work (a no-op if it is pending already;
//!   if it is running it runs again afterwards, so no kick is lost). Dropping the worker flushes
//!   and stops the thread before the data goes, so the work never runs on freed data. The thread
//!   is freezable (`KTW_FREEZABLE`, like loop.c's `WQ_FREEZABLE` workqueue): it does not run
//!   while the system is frozen for suspend or hibernation.
//!
//! C header: [`include/linux/kthread.h`](srctree/include/linux/kthread.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{fmt, marker::PhantomPinned, pin::Pin, ptr::NonNull};
use kernel::{bindings, error::from_err_ptr, ffi::c_uint, prelude::*, str::CString, types::Opaque};

use crate::{disk::CpuMask, helpers};

/// What a [`KWorker`] runs.
pub(crate) trait Work: Send + Sync {
    /// Runs in the worker's thread each time the worker was kicked.
    fn run(this: Pin<&Self>);
}

/// A kthread worker running `W::run` on its data when kicked (see the module documentation).
///
/// # Invariants
///
/// `worker` comes from `kthread_create_worker_on_node` and is destroyed only in `drop`; `work`
/// is initialised with [`work_fn::<W>`] and embedded, with `data`, in this pinned value.
#[pin_data(PinnedDrop)]
pub(crate) struct KWorker<W: Work> {
    worker: NonNull<bindings::kthread_worker>,
    #[pin]
    work: Opaque<bindings::kthread_work>,
    #[pin]
    data: W,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: A kthread worker is driven through functions that take its lock; `W` is shared with
// the worker thread (`W: Send + Sync`).
unsafe impl<W: Work> Send for KWorker<W> {}
// SAFETY: As above.
unsafe impl<W: Work> Sync for KWorker<W> {}

impl<W: Work> KWorker<W> {
    /// A freezable worker thread named `name` at nice level 0 (that of loop.c's workqueue
    /// workers), running on `data`, preferably on `cpus` (`kthread_affine_preferred`: a
    /// preference that CPU hotplug and isolation may override; it must be given before the
    /// thread first runs, which is why it is given here, as is the nice level, so that the
    /// thread never runs at another).
    pub(crate) fn new<'a>(
        name: fmt::Arguments<'_>,
        cpus: Option<CpuMask<'a>>,
        data: impl PinInit<W> + 'a,
    ) -> impl PinInit<Self, Error> + 'a
    where
        W: 'a,
    {
        let name = CString::try_from_fmt(name);
        try_pin_init!(Self {
            // The thread is created last, so that nothing after it can fail: a failed
            // initialiser drops the fields made so far, and a thread has no `Drop` of its own
            // until `Self` is complete.
            data <- data,
            work <- Opaque::ffi_init(|w| {
                // SAFETY: `w` is valid for writes; `kthread_init_work` initialises it fully.
                unsafe { helpers::rust_loop_kthread_init_work(w, work_fn::<W>) }
            }),
            worker: {
                let name = name?;
                // SAFETY: The format takes one string, which we pass (copied by the call).
                let w = from_err_ptr(unsafe {
                    bindings::kthread_create_worker_on_node(
                        bindings::KTW_FREEZABLE as c_uint,
                        bindings::NUMA_NO_NODE,
                        c"%s".as_char_ptr(),
                        name.as_char_ptr(),
                    )
                })?;
                NonNull::new(w).ok_or(ENOMEM)?
            },
            _pin: PhantomPinned,
        })
        .pin_chain(move |this| {
            // SAFETY: The worker's thread was just created and is not running yet.
            let task = unsafe { (*this.worker.as_ptr()).task };
            if let Some(cpus) = cpus {
                // SAFETY: A kthread created above and not yet woken; the mask is valid for the
                // call (it is copied). Failing (ENOMEM) only loses the preference.
                let _ = unsafe { bindings::kthread_affine_preferred(task, cpus.as_raw()) };
            }
            // Set, not assumed: a kthread starts at kthreadd's level, which an administrator
            // may have changed (the workqueue code sets its workers' levels so, too).
            // SAFETY: `task` is the kthread created above, not woken yet (so it cannot have
            // exited), and owned by the worker until `kthread_destroy_worker`; `set_user_nice`
            // takes a task in any state, and 0 is a valid level.
            unsafe { bindings::set_user_nice(task, 0) };
            // SAFETY: A created, not yet started task.
            unsafe { bindings::wake_up_process(task) };
            Ok(())
        })
    }

    /// The data the work runs on.
    pub(crate) fn data(&self) -> &W {
        &self.data
    }

    /// Waits until the work, if queued or running, has finished.
    pub(crate) fn flush(&self) {
        // SAFETY: The worker is live (type invariant).
        unsafe { bindings::kthread_flush_worker(self.worker.as_ptr()) };
    }

    /// Queues the work (see the module documentation).
    pub(crate) fn kick(&self) {
        // SAFETY: The worker is live and the work initialised and pinned with it (type
        // invariant); queueing an already pending work is a no-op.
        unsafe { bindings::kthread_queue_work(self.worker.as_ptr(), self.work.get()) };
    }
}

#[pinned_drop]
impl<W: Work> PinnedDrop for KWorker<W> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The worker is live (type invariant); this runs queued work to completion, then
        // stops the thread, before `work` and `data` are dropped.
        unsafe { bindings::kthread_destroy_worker(self.worker.as_ptr()) };
    }
}

/// # Safety
///
/// Called by a kthread worker for the `work` of a live [`KWorker<W>`].
unsafe extern "C" fn work_fn<W: Work>(work: *mut bindings::kthread_work) {
    // SAFETY: `work` is the `work` field of a `KWorker<W>` (only `KWorker` uses this function).
    #[expect(
        clippy::multiple_unsafe_ops_per_block,
        reason = "container_of! is one operation; its type check names the field through the pointer"
    )]
    let this = unsafe {
        kernel::container_of!(
            work.cast::<Opaque<bindings::kthread_work>>(),
            KWorker<W>,
            work
        )
    };
    // SAFETY: The worker outlives its work runs (destroyed in `drop` first).
    let this = unsafe { &*this };
    // SAFETY: The worker is pinned (it is only ever created pinned).
    let this = unsafe { Pin::new_unchecked(this) };
    // SAFETY: Structural pinning of `data`.
    let data = unsafe { this.map_unchecked(|w| &w.data) };
    W::run(data);
}
