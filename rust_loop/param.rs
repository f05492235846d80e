// SPDX-License-Identifier: GPL-2.0

//! Integer module parameters as loop.c has them: shown read-only in sysfs
//! (`/sys/module/loop/parameters/<name>`, mode 0444), set at load (`modprobe loop max_loop=16`,
//! `options loop ...` in modprobe.d, `loop.max_loop=` on the kernel command line), refused at
//! load below a minimum (loop.c's `hw_queue_depth`), and remembering whether they were given
//! (loop.c's `max_loop_specified`).
//!
//! The 7.2 `module!` parameters are not in sysfs (`perm: 0`), cannot validate at parse time and
//! cannot tell a given value from the default; scripts and container runtimes read
//! `/sys/module/loop/parameters/max_loop`, hence this file.
//!
//! Types and the invariants they enforce:
//! - [`IntParam`]: the value lives in an atomic, so the kernel's parser (at load), sysfs readers
//!   and the driver never race; [`int_param!`] ties one `static` to its `struct kernel_param`
//!   entry, whose `arg` points to it for as long as the module is loaded.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h).

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use kernel::{
    bindings,
    ffi::{c_char, c_int},
    sync::atomic::{Atomic, Relaxed},
};

/// An integer module parameter (see the module documentation).
///
/// `repr(C)` with the value first: the kernel's `param_get_int` reads an `int` at the address
/// of the parameter, which is the value's (an `Atomic<i32>` has the layout of an `i32`).
#[repr(C)]
pub(crate) struct IntParam {
    value: Atomic<i32>,
    given: Atomic<bool>,
    min: i32,
}

impl IntParam {
    /// A parameter with a default, refusing values below `min` at load.
    pub(crate) const fn new(default: i32, min: i32) -> Self {
        Self {
            value: Atomic::new(default),
            given: Atomic::new(false),
            min,
        }
    }

    /// The value.
    pub(crate) fn get(&self) -> i32 {
        self.value.load(Relaxed)
    }

    /// Whether the value was given at load, rather than the default.
    pub(crate) fn given(&self) -> bool {
        self.given.load(Relaxed)
    }

    /// Replaces the value shown in sysfs (loop.c rounds `max_part` at init).
    pub(crate) fn store(&self, value: i32) {
        self.value.store(value, Relaxed);
    }
}

/// `kernel_param_ops` of [`IntParam`]s.
pub(crate) static INT_PARAM_OPS: bindings::kernel_param_ops = bindings::kernel_param_ops {
    flags: 0,
    set: Some(set_int),
    get: Some(get_int),
    free: None,
};

/// # Safety
///
/// Called by the kernel's parameter parser with a NUL-terminated `val` and a `kp` whose `arg`
/// is an [`IntParam`] (the only kind of parameter using [`INT_PARAM_OPS`]).
unsafe extern "C" fn set_int(val: *const c_char, kp: *const bindings::kernel_param) -> c_int {
    let mut v: c_int = 0;
    // SAFETY: `val` is a NUL-terminated string (caller's guarantee); `v` is writable.
    let ret = unsafe { bindings::kstrtoint(val, 0, &mut v) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: `kp` is valid for the call.
    let kp = unsafe { &*kp };
    // SAFETY: The `arg` member is the one `int_param!` initialises (a union of pointers).
    let arg = unsafe { kp.__bindgen_anon_1.arg };
    // SAFETY: `arg` points to the static `IntParam` of this parameter (`int_param!`).
    let param = unsafe { &*arg.cast::<IntParam>() };
    if v < param.min {
        return -(bindings::EINVAL as c_int);
    }
    param.value.store(v, Relaxed);
    param.given.store(true, Relaxed);
    0
}

/// # Safety
///
/// Called by sysfs with a page-sized `buffer` and a `kp` whose `arg` is an [`IntParam`].
unsafe extern "C" fn get_int(buffer: *mut c_char, kp: *const bindings::kernel_param) -> c_int {
    // SAFETY: `param_get_int` prints the `int` at `arg`, the value of an `IntParam` (first field
    // of a `repr(C)` struct, the layout of an `int`).
    unsafe { bindings::param_get_int(buffer, kp) }
}

/// A `.modinfo` entry (`key=value\0`) as a byte array of its exact length.
pub(crate) const fn modinfo<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N && i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// A `struct kernel_param` in the `__param` section: the module loader finds it there.
#[repr(transparent)]
pub(crate) struct ParamEntry(pub(crate) bindings::kernel_param);

// SAFETY: The entry is read by the module loader and sysfs only; its pointers are to statics.
unsafe impl Sync for ParamEntry {}

/// Declares an integer module parameter:
/// `int_param!(STATIC, "name", default, min, "description" [, typed])`. `STATIC` is the
/// [`IntParam`]; `name` is what `modprobe` and sysfs call it. `typed` records the type in
/// `.modinfo` (`parmtype=name:int`, shown by `modinfo` as ` (int)`), as C's `module_param()`
/// does; C's `module_param_cb()` records none.
macro_rules! int_param {
    ($param:ident, $name:literal, $default:expr, $min:expr, $desc:literal, typed) => {
        $crate::param::int_param!($param, $name, $default, $min, $desc);

        const _: () = {
            const TYPE_TEXT: &str = concat!("parmtype=", $name, ":int\0");
            #[link_section = ".modinfo"]
            #[used]
            static PARMTYPE: [u8; TYPE_TEXT.len()] = $crate::param::modinfo(TYPE_TEXT);
        };
    };
    ($param:ident, $name:literal, $default:expr, $min:expr, $desc:literal) => {
        pub(crate) static $param: $crate::param::IntParam =
            $crate::param::IntParam::new($default, $min);

        const _: () = {
            #[link_section = "__param"]
            #[used]
            static ENTRY: $crate::param::ParamEntry =
                $crate::param::ParamEntry(::kernel::bindings::kernel_param {
                    name: ::kernel::str::as_char_ptr_in_const_context(::kernel::c_str!($name)),
                    mod_: (&raw const ::kernel::bindings::__this_module).cast_mut(),
                    ops: &$crate::param::INT_PARAM_OPS,
                    perm: 0o444,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: ::kernel::bindings::kernel_param__bindgen_ty_1 {
                        arg: (&raw const $param).cast_mut().cast(),
                    },
                });

            const PARM_TEXT: &str = concat!("parm=", $name, ":", $desc, "\0");
            #[link_section = ".modinfo"]
            #[used]
            static PARM: [u8; PARM_TEXT.len()] = $crate::param::modinfo(PARM_TEXT);
        };
    };
}
pub(crate) use int_param;
