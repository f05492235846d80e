// SPDX-License-Identifier: GPL-2.0

//! Read-only debugfs files whose open keeps the module loaded.
//!
//! The 7.2 `kernel::debugfs` files have no module owner: debugfs's proxy then takes no module
//! reference when one is opened, so a file held open across `rmmod` runs its `release` through
//! the freed module's table when it is closed (an oops). The table here names this module as
//! its owner, as `THIS_MODULE` does in C: an open file keeps the module loaded (`rmmod` is
//! refused meanwhile, as for an open `/dev/loop-control`).
//!
//! Types and the invariants they enforce:
//! - [`DebugDir`]: a directory, removed with what is left in it when its last handle goes; a
//!   subdirectory holds its parent's handle, so a parent never goes first.
//! - [`DebugFiles`]: read-only files in a directory, each showing one view ([`DebugView`]) of
//!   a value owned with them. The files are removed before the value is dropped, and a removal
//!   waits for the reads in progress (debugfs's proxy brackets each read; a later read of a file
//!   still open fails with `EIO`), so no read sees the value gone.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
// Without debugfs, nothing is made: the directories and file tables go unused.
#![cfg_attr(not(CONFIG_DEBUG_FS), allow(dead_code))]

use core::marker::PhantomData;
use kernel::{
    bindings,
    ffi::{c_int, c_void},
    fmt,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    str::CStr,
    sync::Arc,
};

/// One read-only file's contents, shown from the value `T` of its [`DebugFiles`].
pub(crate) trait DebugView<T>: 'static {
    /// Writes the file's contents.
    fn show(data: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// A debugfs directory.
///
/// # Invariants
///
/// `dentry` is a directory made by `debugfs_create_dir` and not removed until this is dropped;
/// `_parent` is the directory it was made in, if any.
struct Entry {
    dentry: *mut bindings::dentry,
    _parent: Option<Arc<Entry>>,
}

// SAFETY: debugfs's calls on a directory may come from any task; `Entry` only removes it.
unsafe impl Send for Entry {}
// SAFETY: `&Entry` only gives out the pointer, for making files and directories in it (which
// debugfs serialises itself).
unsafe impl Sync for Entry {}

impl Drop for Entry {
    fn drop(&mut self) {
        #[cfg(CONFIG_DEBUG_FS)]
        {
            // SAFETY: The directory is not removed yet (type invariant); nothing uses it after
            // this (every subdirectory holds this entry, and every file set its directory's).
            unsafe { bindings::debugfs_remove(self.dentry) };
        }
    }
}

/// A debugfs directory, or nothing if debugfs is not there (a device works without it).
pub(crate) struct DebugDir(Option<Arc<Entry>>);

impl DebugDir {
    /// `/sys/kernel/debug/<name>/`.
    pub(crate) fn root(name: &CStr) -> Self {
        Self::create(name, None)
    }

    /// No directory.
    pub(crate) const fn none() -> Self {
        Self(None)
    }

    /// `<name>/` in this directory.
    pub(crate) fn subdir(&self, name: &CStr) -> Self {
        match &self.0 {
            Some(parent) => Self::create(name, Some(parent.clone())),
            None => Self(None),
        }
    }

    fn create(name: &CStr, parent: Option<Arc<Entry>>) -> Self {
        #[cfg(CONFIG_DEBUG_FS)]
        {
            let p = parent.as_ref().map_or(core::ptr::null_mut(), |e| e.dentry);
            // SAFETY: `name` is a C string; `p` is null (the debugfs root) or a directory that
            // is not removed (type invariant of `Entry`).
            let dentry = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), p) };
            let dentry = match kernel::error::from_err_ptr(dentry) {
                Ok(dentry) if !dentry.is_null() => dentry,
                _ => return Self(None),
            };
            // INVARIANT: A directory just made in `parent`.
            let entry = Entry {
                dentry,
                _parent: parent,
            };
            // Without room for the handle, `entry` is dropped here, which removes the directory
            // (a root left behind would keep the next load from making its own).
            Self(Arc::new(entry, GFP_KERNEL).ok())
        }
        #[cfg(not(CONFIG_DEBUG_FS))]
        {
            let _ = (name, parent);
            Self(None)
        }
    }
}

/// Read-only files in a directory showing views of `T`; removed when this is dropped.
///
/// # Invariants
///
/// Every element of `files` is a file made in `dir` by `debugfs_create_file_full` with
/// `data`'s address as its private data, not removed until this is dropped.
pub(crate) struct DebugFiles<T: Send + Sync + 'static> {
    // Dropped in this order, after `Drop::drop` removed the files: the directory's handle,
    // then the value the files showed.
    files: KVec<*mut bindings::dentry>,
    dir: DebugDir,
    /// Boxed, so that it stays in place when `Self` moves.
    data: KBox<T>,
}

// SAFETY: The files only show `T` (`Sync`) from whatever task reads them; `T` moves with this
// (`Send`); the file pointers are only used to remove the files.
unsafe impl<T: Send + Sync + 'static> Send for DebugFiles<T> {}
// SAFETY: `&Self` gives nothing.
unsafe impl<T: Send + Sync + 'static> Sync for DebugFiles<T> {}

impl<T: Send + Sync + 'static> DebugFiles<T> {
    /// No files yet, in `dir`, over `data`.
    pub(crate) fn new(dir: DebugDir, data: T) -> Result<Self> {
        Ok(Self {
            files: KVec::new(),
            dir,
            data: KBox::new(data, GFP_KERNEL)?,
        })
    }

    /// Adds `name`, mode 0400, showing `V`'s view of the value; `ENODEV` without debugfs.
    pub(crate) fn add<V: DebugView<T>>(&mut self, name: &CStr) -> Result {
        let Some(dir) = self.dir.0.as_ref() else {
            return Err(ENODEV);
        };
        self.files.reserve(1, GFP_KERNEL)?;
        #[cfg(CONFIG_DEBUG_FS)]
        {
            let data: *const T = &*self.data;
            // A constant promoted to a static: the table outlives every file made with it.
            let fops: &'static bindings::file_operations = &Fops::<T, V>::FOPS;
            // SAFETY: `name` is a C string; `dir.dentry` is a directory not removed (type
            // invariant of `Entry`, which we hold); `data` stays in place and alive until the
            // file is removed (`Drop`), which `open` and `show` need; the table is a constant
            // of this module, which an open file keeps loaded (its owner).
            let dentry = unsafe {
                bindings::debugfs_create_file_full(
                    name.as_char_ptr(),
                    0o400,
                    dir.dentry,
                    data.cast_mut().cast(),
                    core::ptr::null(),
                    fops,
                )
            };
            let dentry = kernel::error::from_err_ptr(dentry)?;
            // INVARIANT: A file just made in `dir` over `data` (room reserved above).
            if self.files.push_within_capacity(dentry).is_err() {
                // SAFETY: The file just made, which nothing else knows of.
                unsafe { bindings::debugfs_remove(dentry) };
                return Err(ENOMEM);
            }
        }
        #[cfg(not(CONFIG_DEBUG_FS))]
        let _ = (dir, name);
        Ok(())
    }
}

impl<T: Send + Sync + 'static> Drop for DebugFiles<T> {
    fn drop(&mut self) {
        for &dentry in self.files.iter() {
            #[cfg(CONFIG_DEBUG_FS)]
            {
                // SAFETY: A file not removed yet (type invariant), in a directory we hold. Its
                // removal waits for the reads in progress; later ones fail, so `data` (dropped
                // after this) is no longer used.
                unsafe { bindings::debugfs_remove(dentry) };
            }
            #[cfg(not(CONFIG_DEBUG_FS))]
            let _ = dentry;
        }
    }
}

/// The file operations of a [`DebugView`]: a `seq_file` of one record.
struct Fops<T, V>(PhantomData<(T, V)>);

impl<T: Sync + 'static, V: DebugView<T>> Fops<T, V> {
    const FOPS: bindings::file_operations = {
        // SAFETY: All-zero is a valid `file_operations` (every method absent).
        let mut f: bindings::file_operations = unsafe { core::mem::zeroed() };
        // Opening takes a reference to this module: its code and this table stay while open.
        f.owner = (&raw const bindings::__this_module).cast_mut();
        f.open = Some(open::<T, V>);
        f.read = Some(bindings::seq_read);
        f.llseek = Some(bindings::seq_lseek);
        f.release = Some(bindings::single_release);
        f
    };
}

/// `->open`: a `seq_file` over the inode's value.
///
/// # Safety
///
/// Called by debugfs's proxy (which keeps the file from being removed meanwhile) for a file
/// made by [`DebugFiles::add`] with `V`; `inode` and `file` are valid.
unsafe extern "C" fn open<T: Sync + 'static, V: DebugView<T>>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `inode` is valid (caller's guarantee).
    let data = unsafe { (*inode).i_private };
    // SAFETY: `file` is being opened; `show::<T, V>` gets `data`, a `T` that outlives every read
    // (removal waits for the reads in progress).
    unsafe { bindings::single_open(file, Some(show::<T, V>), data) }
}

/// `seq_file`'s `->show`: `V`'s view of the value.
///
/// # Safety
///
/// `m` is the `seq_file` of a file opened by [`open`] with `T` and `V`, being read (so the file
/// is not removed meanwhile) by this task alone.
unsafe extern "C" fn show<T: Sync + 'static, V: DebugView<T>>(
    m: *mut bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // SAFETY: `m` is valid (caller's guarantee).
    let private = unsafe { (*m).private };
    // SAFETY: The private data is the `T` of the file (`open`), alive while the file is not
    // removed (caller's guarantee); only shared references to it exist.
    let data = unsafe { &*private.cast::<T>() };
    // SAFETY: `m` is valid and used by this task alone for the call.
    let seq = unsafe { SeqFile::from_raw(m) };
    let shown = Shown::<T, V>(data, PhantomData);
    seq_print!(seq, "{}", shown);
    0
}

/// Formats `V`'s view of a `T`.
struct Shown<'a, T, V>(&'a T, PhantomData<V>);

impl<T, V: DebugView<T>> fmt::Display for Shown<'_, T, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        V::show(self.0, f)
    }
}
