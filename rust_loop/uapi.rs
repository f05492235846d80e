// SPDX-License-Identifier: GPL-2.0

//! The user-space ABI of `include/uapi/linux/loop.h`, which no binding header includes.
//!
//! Every constant, size and field offset here is checked against the header at build time by
//! `include/rust_loop_helpers.c` (`static_assert`).
//!
//! C header: [`include/uapi/linux/loop.h`](srctree/include/uapi/linux/loop.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use kernel::transmute::{AsBytes, FromBytes};

pub(crate) const LO_NAME_SIZE: usize = 64;
pub(crate) const LO_KEY_SIZE: usize = 32;

pub(crate) const LO_FLAGS_READ_ONLY: u32 = 1;
pub(crate) const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub(crate) const LO_FLAGS_PARTSCAN: u32 = 8;
pub(crate) const LO_FLAGS_DIRECT_IO: u32 = 16;

pub(crate) const LO_CRYPT_NONE: u32 = 0;
pub(crate) const LO_CRYPT_XOR: u32 = 1;
pub(crate) const LO_CRYPT_CRYPTOAPI: u32 = 18;

pub(crate) const LOOP_SET_FD: u32 = 0x4C00;
pub(crate) const LOOP_CLR_FD: u32 = 0x4C01;
pub(crate) const LOOP_SET_STATUS: u32 = 0x4C02;
pub(crate) const LOOP_GET_STATUS: u32 = 0x4C03;
pub(crate) const LOOP_SET_STATUS64: u32 = 0x4C04;
pub(crate) const LOOP_GET_STATUS64: u32 = 0x4C05;
pub(crate) const LOOP_CHANGE_FD: u32 = 0x4C06;
pub(crate) const LOOP_SET_CAPACITY: u32 = 0x4C07;
pub(crate) const LOOP_SET_DIRECT_IO: u32 = 0x4C08;
pub(crate) const LOOP_SET_BLOCK_SIZE: u32 = 0x4C09;
pub(crate) const LOOP_CONFIGURE: u32 = 0x4C0A;

pub(crate) const LOOP_CTL_ADD: u32 = 0x4C80;
pub(crate) const LOOP_CTL_REMOVE: u32 = 0x4C81;
pub(crate) const LOOP_CTL_GET_FREE: u32 = 0x4C82;

/// `struct loop_info64`: 232 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LoopInfo64 {
    pub(crate) lo_device: u64,
    pub(crate) lo_inode: u64,
    pub(crate) lo_rdevice: u64,
    pub(crate) lo_offset: u64,
    pub(crate) lo_sizelimit: u64,
    pub(crate) lo_number: u32,
    pub(crate) lo_encrypt_type: u32,
    pub(crate) lo_encrypt_key_size: u32,
    pub(crate) lo_flags: u32,
    pub(crate) lo_file_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_crypt_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_encrypt_key: [u8; LO_KEY_SIZE],
    pub(crate) lo_init: [u64; 2],
}

/// `struct loop_config`: 304 bytes, no padding. `__reserved` is not checked (as loop.c).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LoopConfig {
    pub(crate) fd: u32,
    pub(crate) block_size: u32,
    pub(crate) info: LoopInfo64,
    pub(crate) reserved: [u64; 8],
}

/// `struct loop_info` of the legacy LOOP_{GET,SET}_STATUS as laid out on x86-64, where
/// `__kernel_old_dev_t` is `unsigned long`. The padding C leaves after `lo_number` and
/// `reserved` is spelled out so that every byte is initialised.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LoopInfo {
    pub(crate) lo_number: i32,
    pub(crate) pad0: [u8; 4],
    pub(crate) lo_device: u64,
    pub(crate) lo_inode: u64,
    pub(crate) lo_rdevice: u64,
    pub(crate) lo_offset: i32,
    pub(crate) lo_encrypt_type: i32,
    pub(crate) lo_encrypt_key_size: i32,
    pub(crate) lo_flags: i32,
    pub(crate) lo_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_encrypt_key: [u8; LO_KEY_SIZE],
    pub(crate) lo_init: [u64; 2],
    pub(crate) reserved: [u8; 4],
    pub(crate) pad1: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(core::mem::size_of::<LoopConfig>() == 304);
const _: () = assert!(core::mem::size_of::<LoopInfo>() == 168);

// SAFETY: `LoopInfo64` is `repr(C)` of integers and byte arrays with no padding (the size
// assertion above), so every bit pattern is valid and every byte is initialised.
unsafe impl FromBytes for LoopInfo64 {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo64 {}
// SAFETY: `LoopConfig` is `repr(C)` of integers and a `LoopInfo64`, with no padding.
unsafe impl FromBytes for LoopConfig {}
// SAFETY: `LoopInfo` is `repr(C)` of integers and byte arrays with explicit padding fields, so
// it has no implicit padding and every bit pattern is valid.
unsafe impl FromBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo {}

impl LoopInfo64 {
    /// An all-zero `loop_info64`.
    pub(crate) const fn zeroed() -> Self {
        Self {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }
}

impl LoopInfo {
    /// An all-zero `loop_info`.
    pub(crate) const fn zeroed() -> Self {
        Self {
            lo_number: 0,
            pad0: [0; 4],
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
            pad1: [0; 4],
        }
    }
}
