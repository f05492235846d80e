// SPDX-License-Identifier: GPL-2.0

//! Sleeping locks whose waits a fatal signal can interrupt, and a device's lock together with
//! the configuration its I/O path reads without taking it.
//!
//! Types and the invariants they enforce:
//! - [`KMutex`] / [`StaticKMutex`]: a kernel `struct mutex` guarding a value, with loop.c's
//!   `mutex_lock_killable` (`EINTR` on a fatal signal). The value is reached only through a
//!   [`KGuard`], which is `!Send`: a mutex is released by the task that took it.
//! - [`DevLock`]: a [`KMutex`] guarding a device's configuration `C`, plus an I/O state `I` that
//!   the I/O path reads while it owns an in-flight request of the device's queue
//!   ([`DevLock::io_view`]), everyone else reads under the mutex ([`DevGuard::io`]), and that is
//!   written only with the mutex held *and* the queue frozen ([`FrozenIo`]). A frozen queue has
//!   no request in flight, so no reader of the lock-free view exists while `I` changes. The
//!   queue is checked at run time on both sides (a request of another queue gets no view; a
//!   disk of another queue cannot be frozen for this lock). The backing file in `I` may be in
//!   use by an asynchronous kiocb after the view's borrow ends: a lock dropped while `I` still
//!   holds one leaks `I` rather than close a file that a request may be using.
//! - [`Publish`]: what a [`DevLock`] keeps for readers that take neither the mutex nor a
//!   request (sysfs), refreshed from `C` and `I` when a [`FrozenIo`] goes and when the mutex
//!   is released ([`DevGuard`]'s `Drop`), so no change made under the mutex can be left out of
//!   it; only this module publishes (the [`Held`] token).
//!
//! C header: [`include/linux/mutex.h`](srctree/include/linux/mutex.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::{
    cell::UnsafeCell,
    marker::{PhantomData, PhantomPinned},
    mem::ManuallyDrop,
    ops::{Deref, DerefMut},
    pin::Pin,
};
use kernel::{
    bindings,
    prelude::*,
    str::CStr,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        LockClassKey,
    },
    types::Opaque,
};

use crate::{
    disk::{DiskRef, Frozen},
    file::BackingFile,
    helpers,
    request::{Operations, Rq},
};

/// Takes `raw`, or fails with `EINTR` if a fatal signal arrives first.
///
/// # Safety
///
/// `raw` is an initialised mutex that stays valid while it is held.
unsafe fn lock_killable_raw(raw: *mut bindings::mutex) -> Result {
    // SAFETY: By the function's safety requirements.
    if unsafe { helpers::rust_loop_mutex_lock_killable(raw) } != 0 {
        return Err(EINTR);
    }
    Ok(())
}

/// What the I/O path reads from a device's I/O state: its backing file.
///
/// # Safety
///
/// A file [`IoState::file`] returns is kept open by the value itself (a reference it owns,
/// directly or through what it owns), until the value is dropped: leaking the value keeps the
/// file open. `file` returns the same answer until the value is accessed through `&mut` or
/// dropped. [`DevLock`]'s drop relies on both: it leaks a state that still has a file, which an
/// asynchronous kiocb may be using.
pub(crate) unsafe trait IoState {
    /// The backing file, if the device is bound.
    fn file(&self) -> Option<&BackingFile>;
}

/// A kernel mutex guarding a `T`, initialised in place.
///
/// # Invariants
///
/// `raw` is an initialised `struct mutex`; `data` is accessed only by its holder.
#[pin_data]
pub(crate) struct KMutex<T> {
    #[pin]
    raw: Opaque<bindings::mutex>,
    data: UnsafeCell<T>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The mutex hands `T` from task to task, which `T: Send` allows.
unsafe impl<T: Send> Send for KMutex<T> {}
// SAFETY: Shared references only reach `T` through the mutex, one holder at a time.
unsafe impl<T: Send> Sync for KMutex<T> {}

impl<T> KMutex<T> {
    /// A mutex guarding `data`, of lockdep class `key`.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes while the closure runs; `name` and `key` are
            // static. The mutex is pinned, as a mutex must not move once initialised.
            raw <- Opaque::ffi_init(|slot| unsafe {
                bindings::__mutex_init(slot, name.as_char_ptr(), key.as_ptr())
            }),
            data: UnsafeCell::new(data),
            _pin: PhantomPinned,
        })
    }

    /// Takes the mutex.
    pub(crate) fn lock(&self) -> KGuard<'_, T> {
        // SAFETY: The mutex is initialised (type invariant) and lives as long as `self`.
        unsafe { bindings::mutex_lock(self.raw.get()) };
        // INVARIANT: We hold the mutex.
        KGuard::new(self.raw.get(), &self.data)
    }

    /// Takes the mutex, or fails with `EINTR` on a fatal signal (`mutex_lock_killable`).
    pub(crate) fn lock_killable(&self) -> Result<KGuard<'_, T>> {
        // SAFETY: The mutex is initialised (type invariant) and lives as long as `self`.
        unsafe { lock_killable_raw(self.raw.get()) }?;
        // INVARIANT: We hold the mutex.
        Ok(KGuard::new(self.raw.get(), &self.data))
    }
}

/// A kernel mutex guarding a `T` in a `static`: usable once [`StaticKMutex::init`] has run.
///
/// # Invariants
///
/// `raw` is initialised once `ready` is true (set with release ordering after the
/// initialisation); `data` is accessed only by the mutex holder.
pub(crate) struct StaticKMutex<T> {
    raw: Opaque<bindings::mutex>,
    data: UnsafeCell<T>,
    /// 0: not initialised, 1: being initialised, 2: ready.
    state: Atomic<u32>,
}

// SAFETY: As for `KMutex`.
unsafe impl<T: Send> Send for StaticKMutex<T> {}
// SAFETY: As for `KMutex`.
unsafe impl<T: Send> Sync for StaticKMutex<T> {}

impl<T> StaticKMutex<T> {
    /// A mutex for a `static`; [`StaticKMutex::init`] must run before it is used.
    pub(crate) const fn new(data: T) -> Self {
        Self {
            raw: Opaque::uninit(),
            data: UnsafeCell::new(data),
            state: Atomic::new(0),
        }
    }

    /// Initialises the mutex (once; later calls do nothing).
    pub(crate) fn init(&'static self, name: &'static CStr, key: Pin<&'static LockClassKey>) {
        if self.state.cmpxchg(0, 1, Relaxed).is_err() {
            return;
        }
        // SAFETY: We won the transition to 1, so nobody else initialises or uses the mutex yet;
        // a `static` never moves; `name` and `key` are static.
        unsafe { bindings::__mutex_init(self.raw.get(), name.as_char_ptr(), key.as_ptr()) };
        // INVARIANT: Initialised above; the release pairs with the acquire in `lock*`.
        self.state.store(2, Release);
    }

    fn ready(&self) -> Result {
        if self.state.load(Acquire) != 2 {
            // Used before module init ran: cannot happen from the module's own entry points.
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Takes the mutex (`ENODEV` before [`StaticKMutex::init`]).
    pub(crate) fn lock(&self) -> Result<KGuard<'_, T>> {
        self.ready()?;
        // SAFETY: The mutex is initialised (checked above) and `static`.
        unsafe { bindings::mutex_lock(self.raw.get()) };
        // INVARIANT: We hold the mutex.
        Ok(KGuard::new(self.raw.get(), &self.data))
    }

    /// Takes the mutex, or fails with `EINTR` on a fatal signal.
    pub(crate) fn lock_killable(&self) -> Result<KGuard<'_, T>> {
        self.ready()?;
        // SAFETY: The mutex is initialised (checked above) and `static`.
        unsafe { lock_killable_raw(self.raw.get()) }?;
        // INVARIANT: We hold the mutex.
        Ok(KGuard::new(self.raw.get(), &self.data))
    }
}

/// A held [`KMutex`] or [`StaticKMutex`]; releases it on drop, on the task that took it.
///
/// # Invariants
///
/// `raw` is held by this guard and guards `data`.
pub(crate) struct KGuard<'a, T> {
    raw: *mut bindings::mutex,
    data: &'a UnsafeCell<T>,
    // `*mut` makes the guard `!Send` (and `!Sync`): a mutex is released by its owner.
    _not_send: PhantomData<*mut ()>,
}

impl<'a, T> KGuard<'a, T> {
    fn new(raw: *mut bindings::mutex, data: &'a UnsafeCell<T>) -> Self {
        Self {
            raw,
            data,
            _not_send: PhantomData,
        }
    }
}

impl<T> Deref for KGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: We hold the mutex that guards `data` (type invariant).
        unsafe { &*self.data.get() }
    }
}

impl<T> DerefMut for KGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: We hold the mutex that guards `data`, and `&mut self` is exclusive.
        unsafe { &mut *self.data.get() }
    }
}

impl<T> Drop for KGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: We hold the mutex (type invariant), on this task (`!Send`).
        unsafe { bindings::mutex_unlock(self.raw) };
    }
}

/// A copy of parts of a device's configuration `C` and I/O state `I` that its readers take
/// without the device mutex (so it is `Sync`: atomics, typically).
pub(crate) trait Publish<C, I>: Sync {
    /// Records `config` and `io`. Only this module calls it (only it can make a [`Held`]), with
    /// the device mutex held, when a [`FrozenIo`] or a [`DevGuard`] goes.
    fn publish(&self, config: &C, io: &I, held: Held);
}

/// The token of [`Publish::publish`]: only this module makes one (the field is private), and
/// only with the device mutex held.
pub(crate) struct Held(());

/// A device's mutex (loop.c's `lo_mutex`) guarding its configuration `C`, plus the I/O state
/// `I` that the I/O path reads without taking it, plus `P`, a copy of parts of both for readers
/// that take neither (see the module documentation).
///
/// What `io` holds may outlive a borrow of it: [`Rq::rw_direct`] hands the backing file to an
/// asynchronous kiocb, which uses it until the request completes. So `io` is only ever dropped
/// or changed with no request in flight: through [`FrozenIo`], or when the lock is dropped with
/// no file in it. A lock dropped while its state still has a file (its queue may have requests
/// in flight: the lock does not know) leaks the state instead, with a warning; the driver
/// unbinds, under a freeze, before it frees a device.
///
/// # Invariants
///
/// `io` is written only through [`FrozenIo`], which holds the mutex and a freeze of the queue
/// identified by `queue`; it is read without the mutex only through [`DevLock::io_view`], while
/// an in-flight request of that queue is borrowed; it is dropped (on drop) only if it holds no
/// file.
#[pin_data(PinnedDrop)]
pub(crate) struct DevLock<C, I: IoState, P> {
    #[pin]
    mutex: KMutex<C>,
    io: UnsafeCell<ManuallyDrop<I>>,
    /// The address of the device's request queue, as an identity (never dereferenced).
    queue: usize,
    /// As of the last change under the mutex (see [`Publish`]).
    published: P,
}

// SAFETY: `io` is read from several tasks at once (the I/O path), hence `I: Sync`, and handed
// between tasks under the rules above, hence `I: Send`; `C` moves with the mutex; `P` is only
// ever shared.
unsafe impl<C: Send, I: IoState + Send + Sync, P: Sync> Sync for DevLock<C, I, P> {}
// SAFETY: As above.
unsafe impl<C: Send, I: IoState + Send + Sync, P: Send> Send for DevLock<C, I, P> {}

#[pinned_drop]
impl<C, I: IoState, P> PinnedDrop for DevLock<C, I, P> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `self` is being dropped: nothing else refers to it.
        let io = unsafe { &mut *self.io.get() };
        if io.file().is_some() {
            pr_warn!(
                "rust_loop: a device's lock was dropped while bound: its I/O state is leaked\n"
            );
            return;
        }
        // INVARIANT: No file in it (the answer cannot change meanwhile: `IoState`'s contract).
        // SAFETY: Dropped once, here, and never used again.
        unsafe { ManuallyDrop::drop(io) };
    }
}

impl<C, I: IoState, P> DevLock<C, I, P> {
    /// The copy of the configuration for readers that take no lock: as of the last change
    /// under the mutex, so possibly stale (as loop.c's lock-free reads of its fields).
    pub(crate) fn published(&self) -> &P {
        &self.published
    }

    /// The I/O path's view, valid while `rq` is borrowed; `None` if `rq` is not a request of
    /// this device's queue.
    pub(crate) fn io_view<'a, T: Operations>(&'a self, rq: &'a Rq<T>) -> Option<&'a I> {
        if rq.queue_id() != self.queue {
            return None;
        }
        // SAFETY: `rq` is an in-flight request of our queue (checked above) and stays so while
        // borrowed, so the queue cannot finish freezing meanwhile, and writers need it frozen
        // (type invariant).
        Some(unsafe { &**self.io.get() })
    }
}

impl<C, I: IoState, P: Publish<C, I>> DevLock<C, I, P> {
    /// The lock of the device whose request queue is identified by `queue` (see
    /// [`DiskRef::queue_id`]). Any value is sound: both the lock-free readers and the writers
    /// are checked against the same queue. `published` starts as given: it should describe
    /// `config` and `io`.
    pub(crate) fn new(
        config: C,
        io: I,
        published: P,
        queue: usize,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            mutex <- KMutex::new(config, name, key),
            io: UnsafeCell::new(ManuallyDrop::new(io)),
            queue,
            published,
        })
    }

    /// Takes the device mutex.
    pub(crate) fn lock(&self) -> DevGuard<'_, C, I, P> {
        DevGuard {
            guard: self.mutex.lock(),
            lock: self,
        }
    }

    /// Takes the device mutex, or fails with `EINTR` on a fatal signal.
    pub(crate) fn lock_killable(&self) -> Result<DevGuard<'_, C, I, P>> {
        Ok(DevGuard {
            guard: self.mutex.lock_killable()?,
            lock: self,
        })
    }
}

/// The device mutex, held. Dropping it publishes the configuration, then releases the mutex.
pub(crate) struct DevGuard<'a, C, I: IoState, P: Publish<C, I>> {
    guard: KGuard<'a, C>,
    lock: &'a DevLock<C, I, P>,
}

impl<C, I: IoState, P: Publish<C, I>> Deref for DevGuard<'_, C, I, P> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.guard
    }
}

impl<C, I: IoState, P: Publish<C, I>> DerefMut for DevGuard<'_, C, I, P> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.guard
    }
}

impl<C, I: IoState, P: Publish<C, I>> Drop for DevGuard<'_, C, I, P> {
    fn drop(&mut self) {
        // Before `guard` (a field, dropped after this) releases the mutex.
        self.publish();
    }
}

impl<'a, C, I: IoState, P: Publish<C, I>> DevGuard<'a, C, I, P> {
    /// The I/O state, read under the mutex.
    pub(crate) fn io(&self) -> &I {
        // SAFETY: Writers hold the mutex, which we hold.
        unsafe { &*self.lock.io.get() }
    }

    /// Publishes the configuration (see [`Publish`]).
    fn publish(&self) {
        // We hold the mutex of `guard` and `io`.
        self.lock
            .published
            .publish(&self.guard, self.io(), Held(()));
    }

    /// Freezes the queue so the I/O state can change (drains in-flight I/O first). `EINVAL` if
    /// `disk` is not this device's disk.
    pub(crate) fn freeze<'g, 'd, B: Operations>(
        &'g mut self,
        disk: DiskRef<'d, B>,
    ) -> Result<FrozenIo<'g, 'a, 'd, C, I, P>> {
        if disk.queue_id() != self.lock.queue {
            return Err(EINVAL);
        }
        let frozen = disk.freeze();
        Ok(FrozenIo {
            guard: self,
            _frozen: frozen,
        })
    }
}

/// The device mutex held and the device's queue frozen: the I/O state may change. Dropping it
/// publishes the configuration (so readers see a change before anything that follows it, as
/// the uevent of a new size), then unfreezes the queue.
pub(crate) struct FrozenIo<'g, 'a, 'd, C, I: IoState, P: Publish<C, I>> {
    guard: &'g mut DevGuard<'a, C, I, P>,
    // Unfreezes on drop, after the writes are done.
    _frozen: Frozen<'d>,
}

impl<C, I: IoState, P: Publish<C, I>> Drop for FrozenIo<'_, '_, '_, C, I, P> {
    fn drop(&mut self) {
        // Before `_frozen` (a field, dropped after this) unfreezes the queue.
        self.guard.publish();
    }
}

impl<C, I: IoState, P: Publish<C, I>> FrozenIo<'_, '_, '_, C, I, P> {
    /// The configuration and the I/O state, both writable.
    pub(crate) fn parts(&mut self) -> (&mut C, &mut I) {
        // SAFETY: We hold the mutex and the device's queue is frozen: no reader of `io` exists
        // (type invariant of `DevLock`).
        let io = unsafe { &mut **self.guard.lock.io.get() };
        (&mut self.guard.guard, io)
    }
}
