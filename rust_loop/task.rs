// SPDX-License-Identifier: GPL-2.0

//! The calling task and this module: capabilities, module references, the I/O task flags.
//!
//! Types and the invariants they enforce:
//! - [`ModuleRef`]: one reference on this module, put exactly once (on drop).
//! - [`IoTaskFlags`]: `PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE` set on the current task for the
//!   guard's life; `!Send`, so it is restored on the task that set it.
//!
//! C headers: [`include/linux/module.h`](srctree/include/linux/module.h),
//! [`include/linux/capability.h`](srctree/include/linux/capability.h),
//! [`include/linux/sched.h`](srctree/include/linux/sched.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::marker::PhantomData;
use kernel::{bindings, ffi::c_int};

use crate::helpers;

/// A raw pointer to `struct module` of this module, for the C tables' `owner` fields.
pub(crate) fn this_module() -> *mut bindings::module {
    crate::THIS_MODULE.as_ptr()
}

/// Whether the caller has `CAP_SYS_ADMIN`.
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}

/// A held reference on this module: bound devices keep the module loaded, as in loop.c.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference.
    pub(crate) fn get() -> Self {
        // SAFETY: This code runs, so the module is loaded: from `init` until `exit` returns its
        // `struct module` is valid, and `__module_get` only increments its count (it does not
        // need the count to be positive; a module being unloaded stays so).
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

/// The task flags of a loop worker while it does backing-file I/O (`loop_process_work`): no
/// reclaim that recurses into I/O, and dirty throttling of this task by its own dirtying only.
/// The previous flags come back on drop.
pub(crate) struct IoTaskFlags {
    old: u32,
    // The flags belong to the task that set them.
    _not_send: PhantomData<*mut ()>,
}

impl IoTaskFlags {
    /// Sets the flags on the current task.
    pub(crate) fn set() -> Self {
        // SAFETY: Changes the current task's own flags; undone on drop, on the same task
        // (`IoTaskFlags` is `!Send`).
        let old = unsafe { helpers::rust_loop_io_flags_save() };
        Self {
            old,
            _not_send: PhantomData,
        }
    }
}

impl Drop for IoTaskFlags {
    fn drop(&mut self) {
        // SAFETY: Restores the two flags `set` changed, on the task that changed them.
        unsafe { helpers::rust_loop_io_flags_restore(self.old) };
    }
}

/// Lets another task run if one is due (`cond_resched`): a worker's long batch must not hold
/// its CPU on a kernel without full preemption. It may sleep: for process context outside
/// spinlocks and RCU read-side sections, as every sleeping function (`Mutex::lock`,
/// `kernel::task::might_sleep`), which `CONFIG_DEBUG_ATOMIC_SLEEP` checks.
pub(crate) fn cond_resched() {
    // SAFETY: An FFI call without arguments. Like `kernel::task::might_sleep`, calling it in
    // atomic or RCU read-side context is a context bug outside Rust's safety model (klint and
    // `DEBUG_ATOMIC_SLEEP` catch it); no guard of this crate is atomic.
    unsafe { helpers::rust_loop_cond_resched() };
}

/// The number of CPUs online now.
pub(crate) fn online_cpus() -> u32 {
    // SAFETY: Reads the weight of the online mask.
    unsafe { helpers::rust_loop_num_online_cpus() }
}

/// The number of possible CPU ids (`nr_cpu_ids`): blk-mq makes no more hardware queues.
pub(crate) fn cpu_ids() -> u32 {
    // SAFETY: Reads a value set at boot.
    unsafe { helpers::rust_loop_nr_cpu_ids() }
}
