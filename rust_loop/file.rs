// SPDX-License-Identifier: GPL-2.0

//! The backing file of a loop device: what loop.c asks of it (type, size, direct-I/O support and
//! alignment, discard support, identity, path), `fsync` and `fallocate`, and the page-cache gfp
//! mask a bound file gets. Reads and writes of request data are in `request.rs`.
//!
//! Types and the invariants they enforce:
//! - [`BackingFile`]: a counted reference to an open file (`ARef<File>`), so everything it reads
//!   through the file (mapping, inode, super block) stays valid while it lives.
//! - [`BoundFile`]: a file bound to a device, whose mapping has `__GFP_IO | __GFP_FS` masked out
//!   (no reclaim recursion through the loop device) until it is unbound, which restores the mask
//!   saved at binding. Rebinding ([`BoundFile::rebind`]) restores the old file's mask *before*
//!   masking the new one, so two opens of one file (one mapping) end up masked while bound and
//!   restored after.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use core::ops::Deref;
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    ffi::c_int,
    fs::{File, LocalFile},
    prelude::*,
    sync::aref::ARef,
};

use crate::{blkdev, disk::DiskRef, helpers};

/// `FMODE_WRITE` (`include/linux/fs.h`; checked in `include/rust_loop_helpers.c`).
const FMODE_WRITE: u32 = 1 << 1;
/// `FMODE_CAN_ODIRECT` (checked in `include/rust_loop_helpers.c`).
const FMODE_CAN_ODIRECT: u32 = 1 << 22;
/// `FMODE_NOWAIT` (checked in `include/rust_loop_helpers.c`).
const FMODE_NOWAIT: u32 = 1 << 27;
/// `FOP_BUFFER_WASYNC` (checked in `include/rust_loop_helpers.c`).
const FOP_BUFFER_WASYNC: u32 = 1 << 1;
/// `FALLOC_FL_KEEP_SIZE` (`include/uapi/linux/falloc.h`; checked in the C helpers).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
/// `FALLOC_FL_PUNCH_HOLE` (checked in the C helpers).
pub(crate) const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
/// `FALLOC_FL_ZERO_RANGE` (checked in the C helpers).
pub(crate) const FALLOC_FL_ZERO_RANGE: i32 = 0x10;
/// `__GFP_IO | __GFP_FS`.
const GFP_IO_FS: bindings::gfp_t = (1 << bindings::___GFP_IO_BIT) | (1 << bindings::___GFP_FS_BIT);

/// `-EOPNOTSUPP`, which `kernel::error::code` does not name.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// A file a loop device reads and writes through.
///
/// # Invariants
///
/// `file` is an open file, so it has a mapping with a host inode, an inode with a super block,
/// and an operations table, all valid while it is.
#[derive(Clone)]
pub(crate) struct BackingFile {
    file: ARef<File>,
}

/// The identity of a file as `LOOP_GET_STATUS64` reports it.
pub(crate) struct FileIdentity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) rdev: u64,
}

impl BackingFile {
    /// Takes a reference to the file behind `fd` of the calling process (`EBADF` if none).
    pub(crate) fn fget(fd: u32) -> Result<Self> {
        let file = LocalFile::fget(fd)?;
        // SAFETY: We are in an ioctl on a block device, not in a read/write of `fd`, so no
        // `fdget_pos` is active on this thread.
        let file = unsafe { LocalFile::assume_no_fdget_pos(file) };
        Ok(Self { file })
    }

    /// The C file, for a kiocb on it; valid while `self` is.
    pub(crate) fn as_raw(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    /// `file->f_mapping`.
    fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: An open file's `f_mapping` is set and lives as long as the file.
        unsafe { (*self.as_raw()).f_mapping }
    }

    /// `file->f_mapping->host`, the inode loop.c looks at.
    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: The mapping of an open file has its host inode (type invariant).
        unsafe { (*self.mapping()).host }
    }

    fn mode_bits(&self) -> u32 {
        // SAFETY: The inode is valid (type invariant); `i_mode` does not change for an open
        // file's type bits.
        u32::from(unsafe { (*self.inode()).i_mode })
    }

    fn f_mode(&self) -> u32 {
        // SAFETY: `f_mode` is set at open and only gains flags that do not concern us.
        unsafe { (*self.as_raw()).f_mode }
    }

    fn fops(&self) -> &bindings::file_operations {
        // SAFETY: An open file always has `f_op`, set at open.
        let fops = unsafe { (*self.as_raw()).f_op };
        // SAFETY: `f_op` is a static table of the file system that outlives the file.
        unsafe { &*fops }
    }

    fn path(&self) -> *const bindings::path {
        // `f_path` of an open file is valid while it is.
        let file = self.as_raw();
        // SAFETY: Only the address of the union holding `f_path` is taken.
        let anon = unsafe { &raw const (*file).__bindgen_anon_1 };
        // `f_path` is a member of that union, which, as every union member, starts at the
        // union's address.
        anon.cast::<bindings::path>()
    }

    fn super_block_bdev(&self) -> *mut bindings::block_device {
        // SAFETY: The inode's super block is valid while the file is open.
        let sb = unsafe { (*self.inode()).i_sb };
        // SAFETY: As above; `s_bdev` (maybe null) is fixed while the file system is mounted.
        unsafe { (*sb).s_bdev }
    }

    /// Whether this is a block device.
    pub(crate) fn is_block_device(&self) -> bool {
        self.mode_bits() & bindings::S_IFMT == bindings::S_IFBLK
    }

    /// Whether this is a regular file.
    pub(crate) fn is_regular(&self) -> bool {
        self.mode_bits() & bindings::S_IFMT == bindings::S_IFREG
    }

    /// Whether the file can serve as a backing file at all (`loop_check_backing_file`).
    pub(crate) fn check_ops(&self) -> Result {
        let fops = self.fops();
        if fops.read_iter.is_none() || (self.writable() && fops.write_iter.is_none()) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Opened for writing.
    pub(crate) fn writable(&self) -> bool {
        self.f_mode() & FMODE_WRITE != 0
    }

    /// The file system can write it at all (`->write_iter`).
    pub(crate) fn has_write_iter(&self) -> bool {
        self.fops().write_iter.is_some()
    }

    /// The file supports `O_DIRECT` (`FMODE_CAN_ODIRECT`).
    pub(crate) fn can_direct_io(&self) -> bool {
        self.f_mode() & FMODE_CAN_ODIRECT != 0
    }

    /// The file system supports `IOCB_NOWAIT` on it (`FMODE_NOWAIT`); for a block device, its
    /// queue also takes `REQ_NOWAIT` bios now (`FMODE_NOWAIT` says so only as of the open: a
    /// device-mapper table swapped in later may not, and fails such bios with `EOPNOTSUPP`).
    pub(crate) fn supports_nowait(&self) -> bool {
        if self.f_mode() & FMODE_NOWAIT == 0 {
            return false;
        }
        // SAFETY: An open block device file: its mapping's host is the bdev inode, whose disk
        // and queue live while the file is open.
        !self.is_block_device() || unsafe { helpers::rust_loop_bdev_file_nowait(self.as_raw()) }
    }

    /// The file system takes non-blocking buffered writes (`FOP_BUFFER_WASYNC`: XFS; btrfs,
    /// but only to files without copy-on-write, `EAGAIN` otherwise). Others refuse them though
    /// they take `IOCB_NOWAIT` otherwise: ext4, ocfs2 and block devices with `EOPNOTSUPP`, and
    /// the write checks (`generic_write_checks_count`) with `EINVAL` those of f2fs, ntfs3,
    /// ntfs or ext4 on DAX.
    pub(crate) fn supports_nowait_buffered_writes(&self) -> bool {
        self.fops().fop_flags & FOP_BUFFER_WASYNC != 0
    }

    /// The file was opened with `O_DIRECT`.
    pub(crate) fn opened_direct(&self) -> bool {
        self.file.flags() & bindings::O_DIRECT != 0
    }

    /// The file system can flush it (`->fsync`), so the device advertises a write cache.
    pub(crate) fn has_fsync(&self) -> bool {
        self.fops().fsync.is_some()
    }

    fn getattr(&self, mask: u32, flags: u32, nosec: bool) -> Result<bindings::kstat> {
        let mut stat = pin_init::zeroed::<bindings::kstat>();
        let ret = if nosec {
            // SAFETY: The path is valid (open file); `stat` is writable.
            unsafe { bindings::vfs_getattr_nosec(self.path(), &mut stat, mask, flags) }
        } else {
            // SAFETY: As above.
            unsafe { bindings::vfs_getattr(self.path(), &mut stat, mask, flags) }
        };
        to_result(ret).map(|()| stat)
    }

    /// The size in bytes: `i_size` for a block device, a fresh `getattr` for a file (which
    /// network file systems need), 0 if that fails (as `lo_calculate_size`).
    pub(crate) fn size(&self) -> i64 {
        if self.is_block_device() {
            // SAFETY: The inode is valid; `i_size_read` handles concurrent updates.
            return unsafe { helpers::rust_loop_i_size_read(self.inode()) };
        }
        self.getattr(bindings::STATX_SIZE, 0, true)
            .map_or(0, |stat| stat.size)
    }

    /// The smallest direct-I/O alignment of the file (`loop_query_min_dio_size`): the file
    /// system's `STATX_DIOALIGN` if it reports one, else the logical block size of its device,
    /// else 512.
    pub(crate) fn min_dio_size(&self) -> u32 {
        if let Ok(stat) = self.getattr(bindings::STATX_DIOALIGN, 0, false) {
            if stat.result_mask & bindings::STATX_DIOALIGN != 0 {
                return stat.dio_offset_align;
            }
        }
        let sb_bdev = self.super_block_bdev();
        if sb_bdev.is_null() {
            return 512;
        }
        // SAFETY: A mounted file system's `s_bdev` lives as long as the super block.
        unsafe { helpers::rust_loop_bdev_logical_block_size(sb_bdev) }
    }

    /// Writes back and waits for the file's dirty data and metadata (`vfs_fsync`).
    pub(crate) fn fsync(&self) -> Result {
        // SAFETY: The file is open.
        to_result(unsafe { bindings::vfs_fsync(self.as_raw(), 0) })
    }

    /// Calls the file system's `->fallocate` directly, as loop.c does (`EOPNOTSUPP` without
    /// one), always keeping the size.
    pub(crate) fn fallocate(&self, mode: i32, pos: u64, len: u64) -> Result {
        let Some(fallocate) = self.fops().fallocate else {
            return Err(eopnotsupp());
        };
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let len = i64::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The file is open and `fallocate` is its file system's method.
        let ret = unsafe { fallocate(self.as_raw(), mode | FALLOC_FL_KEEP_SIZE, pos, len) };
        to_result(c_int::try_from(ret).unwrap_or(-(bindings::EIO as c_int)))
    }

    /// The device, inode and represented device of the file (`vfs_getattr(STATX_INO)`).
    pub(crate) fn identity(&self) -> Result<FileIdentity> {
        let stat = self.getattr(bindings::STATX_INO, bindings::AT_STATX_SYNC_AS_STAT, false)?;
        // SAFETY: `huge_encode_dev` is arithmetic.
        let dev = unsafe { helpers::rust_loop_huge_encode_dev(stat.dev) };
        // SAFETY: As above.
        let rdev = unsafe { helpers::rust_loop_huge_encode_dev(stat.rdev) };
        Ok(FileIdentity {
            dev,
            ino: stat.ino,
            rdev,
        })
    }

    /// Writes the file's path plus a newline into `buf` (sysfs `loop/backing_file`) and returns
    /// the length written.
    pub(crate) fn write_path(&self, buf: &mut [u8]) -> Result<usize> {
        let cap = c_int::try_from(buf.len().saturating_sub(1)).map_err(|_| EINVAL)?;
        // SAFETY: `buf` is writable for `cap` bytes; `file_path` writes the path at the end of it
        // and returns a pointer into it, or an error pointer.
        let p = unsafe { bindings::file_path(self.as_raw(), buf.as_mut_ptr().cast(), cap) };
        let p = from_err_ptr(p)?;
        // The path is a NUL-terminated string inside `buf`, starting at `p`.
        let start = (p as usize).wrapping_sub(buf.as_ptr() as usize);
        let len = buf
            .get(start..)
            .and_then(|path| path.iter().position(|&b| b == 0))
            .ok_or(EINVAL)?;
        buf.copy_within(start..start + len, 0);
        *buf.get_mut(len).ok_or(EINVAL)? = b'\n';
        Ok(len + 1)
    }

    /// The block device under the file: the file itself if it is one, else the device of its
    /// file system, if any.
    fn backing_bdev(&self) -> *mut bindings::block_device {
        if self.is_block_device() {
            // SAFETY: The inode of a block device file is a bdev inode.
            return unsafe { bindings::I_BDEV(self.inode()) };
        }
        self.super_block_bdev()
    }

    /// Whether the storage under the file rotates (the loop device's `rotational`).
    pub(crate) fn rotational(&self) -> bool {
        let bdev = self.backing_bdev();
        // SAFETY: The bdev lives as long as the file (or its file system).
        !bdev.is_null() && unsafe { helpers::rust_loop_bdev_rot(bdev) }
    }

    /// Discard limits for the loop device (`loop_get_discard_config`): `(granularity,
    /// max_discard_sectors)`. A block device's zeroing capability is mirrored, because loop
    /// discards are zeroouts there; a file with `->fallocate` can punch holes anywhere.
    pub(crate) fn discard_config(&self) -> (u32, u32) {
        if self.is_block_device() {
            let bdev = self.backing_bdev();
            // SAFETY: The bdev is live while the file is open.
            let granularity = unsafe { helpers::rust_loop_bdev_discard_granularity(bdev) };
            // SAFETY: As above.
            let max = unsafe { helpers::rust_loop_bdev_write_zeroes_sectors(bdev) };
            return (granularity, max);
        }
        if self.fops().fallocate.is_none() {
            return (0, 0);
        }
        let mut bsize = 0u32;
        // SAFETY: The path is valid; `bsize` is writable.
        if unsafe { helpers::rust_loop_statfs_bsize(self.path(), &mut bsize) } != 0 {
            return (0, 0);
        }
        (bsize, u32::MAX >> 9)
    }

    /// If the file is a block device of the same driver as `ours` (one of our loop devices),
    /// its device number and disk. The disk stays valid while `self` is: an open block device
    /// file keeps its disk.
    pub(crate) fn loop_disk<'f, T: blkdev::Operations>(
        &'f self,
        ours: DiskRef<'_, T>,
    ) -> Option<(u32, DiskRef<'f, T>)> {
        if !self.is_block_device() {
            return None;
        }
        let inode = self.inode();
        // SAFETY: The inode is valid; `i_rdev` is fixed for a device inode.
        let rdev = unsafe { (*inode).i_rdev };
        if rdev >> bindings::MINORBITS != bindings::LOOP_MAJOR {
            return None;
        }
        // SAFETY: A block device inode is embedded in its bdev.
        let bdev = unsafe { bindings::I_BDEV(inode) };
        // SAFETY: `bd_disk` of an open bdev is set and stays while it is open.
        let disk = unsafe { (*bdev).bd_disk };
        if disk.is_null() {
            return None;
        }
        // SAFETY: `disk` is a live gendisk; `fops` is set before it is added.
        let fops = unsafe { (*disk).fops };
        // The same operations table as a disk of `T` means a disk of `T`: the table is `T`'s
        // alone (its trampolines are `T`'s). Anything else is not ours.
        if fops != ours.fops() {
            return None;
        }
        // SAFETY: An added disk of `T` (same table), kept alive by this open file for `'f`.
        Some((rdev, unsafe { DiskRef::from_raw(disk) }))
    }

    /// Binds the file to a device: masks `__GFP_IO | __GFP_FS` out of its page-cache
    /// allocations to avoid reclaim recursion through the loop device, until unbound.
    pub(crate) fn bind(self) -> BoundFile {
        let mapping = self.mapping();
        // SAFETY: The mapping is valid while the file is open; loop.c changes its gfp mask the
        // same way, without locks (`mapping_set_gfp_mask`).
        let old_gfp = unsafe { (*mapping).gfp_mask };
        // SAFETY: As above.
        unsafe { (*mapping).gfp_mask = old_gfp & !GFP_IO_FS };
        BoundFile {
            file: self,
            old_gfp,
        }
    }
}

/// A backing file bound to a device; unbinding (or dropping) restores the page-cache gfp mask.
///
/// Dropping the last reference to a file may take a block device's `open_mutex`: never drop one
/// while holding a device mutex (see `__loop_clr_fd`); [`BoundFile::unbind`] restores the mask
/// and returns the file for dropping later.
pub(crate) struct BoundFile {
    file: BackingFile,
    old_gfp: bindings::gfp_t,
}

impl BoundFile {
    /// Restores the mask and gives the file back.
    pub(crate) fn unbind(self) -> BackingFile {
        let this = core::mem::ManuallyDrop::new(self);
        this.restore();
        // SAFETY: `this` is never dropped, so the file is moved out exactly once.
        unsafe { core::ptr::read(&this.file) }
    }

    /// Binds `new` in place of this file (`LOOP_CHANGE_FD`): restores this file's mask first,
    /// then masks the new one, and returns the old file for dropping later.
    pub(crate) fn rebind(&mut self, new: BackingFile) -> BackingFile {
        self.restore();
        let bound = new.bind();
        core::mem::replace(self, bound).into_file_without_restore()
    }

    /// Whether page-cache allocations of the file may do I/O and file-system reclaim
    /// (`__GFP_IO | __GFP_FS`): now, and once unbound (the saved mask). For diagnostics.
    pub(crate) fn reclaim_io_fs(&self) -> (bool, bool) {
        // SAFETY: The mapping is valid while the file is open; a racy read of a mask.
        let now = unsafe { (*self.file.mapping()).gfp_mask };
        (
            now & GFP_IO_FS == GFP_IO_FS,
            self.old_gfp & GFP_IO_FS == GFP_IO_FS,
        )
    }

    fn restore(&self) {
        let mapping = self.file.mapping();
        // SAFETY: The mapping is valid while the file is open (we hold it).
        unsafe { (*mapping).gfp_mask = self.old_gfp };
    }

    fn into_file_without_restore(self) -> BackingFile {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the file is moved out exactly once.
        unsafe { core::ptr::read(&this.file) }
    }
}

impl Deref for BoundFile {
    type Target = BackingFile;
    fn deref(&self) -> &BackingFile {
        &self.file
    }
}

impl Drop for BoundFile {
    fn drop(&mut self) {
        self.restore();
    }
}
