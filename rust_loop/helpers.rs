// SPDX-License-Identifier: GPL-2.0

//! Declarations of `include/rust_loop_helpers.c`: non-inline wrappers of the `static inline`
//! kernel functions and macros the typed layer needs, which bindgen cannot see.
//!
//! Each declaration has the signature of its C definition in `include/rust_loop_helpers.h`;
//! each wrapper is one call of its kernel original, so its contract is that function's.
//! Only the files of `rust_loop/` call these.

// The kernel structs are only passed by pointer; some contain config-dependent empty structs,
// which the lint flags the same way it would in the generated bindings.
#![expect(improper_ctypes)]

use kernel::{bindings, ffi::*};

extern "C" {
    pub(crate) fn rust_loop_kiocb_start_write(iocb: *mut bindings::kiocb) -> bool;
    pub(crate) fn rust_loop_kiocb_end_write(iocb: *mut bindings::kiocb);
    pub(crate) fn rust_loop_kthread_init_work(
        work: *mut bindings::kthread_work,
        f: unsafe extern "C" fn(*mut bindings::kthread_work),
    );
    pub(crate) fn rust_loop_init_work(
        work: *mut bindings::work_struct,
        f: unsafe extern "C" fn(*mut bindings::work_struct),
    );
    pub(crate) fn rust_loop_queue_work(
        wq: *mut bindings::workqueue_struct,
        work: *mut bindings::work_struct,
    ) -> bool;
    pub(crate) fn rust_loop_num_online_cpus() -> c_uint;
    pub(crate) fn rust_loop_nr_cpu_ids() -> c_uint;
    pub(crate) fn rust_loop_cond_resched();
    pub(crate) fn rust_loop_bdev_file_nowait(file: *mut bindings::file) -> bool;
    pub(crate) fn rust_loop_can_associate() -> bool;
    pub(crate) fn rust_loop_hw_queue_cpumask(
        q: *mut bindings::request_queue,
        index: c_uint,
    ) -> *const bindings::cpumask;
    pub(crate) fn rust_loop_mutex_lock_killable(lock: *mut bindings::mutex) -> c_int;
    pub(crate) fn rust_loop_llist_add(
        node: *mut bindings::llist_node,
        head: *mut bindings::llist_head,
    ) -> bool;
    pub(crate) fn rust_loop_llist_del_all(
        head: *mut bindings::llist_head,
    ) -> *mut bindings::llist_node;
    pub(crate) fn rust_loop_rq_nr_bvec(rq: *mut bindings::request) -> c_uint;
    pub(crate) fn rust_loop_rq_copy_bvecs(rq: *mut bindings::request, out: *mut bindings::bio_vec);
    pub(crate) fn rust_loop_rq_first_bvec(
        rq: *mut bindings::request,
        bvec_done: *mut c_uint,
    ) -> *const bindings::bio_vec;
    pub(crate) fn rust_loop_rq_zero_fill(rq: *mut bindings::request);
    pub(crate) fn rust_loop_rq_ioprio(rq: *mut bindings::request) -> c_ushort;
    pub(crate) fn rust_loop_disk_openers(disk: *mut bindings::gendisk) -> c_uint;
    pub(crate) fn rust_loop_disk_set_uevent_suppress(disk: *mut bindings::gendisk, val: c_int);
    pub(crate) fn rust_loop_freeze_queue(q: *mut bindings::request_queue) -> c_uint;
    pub(crate) fn rust_loop_unfreeze_queue(q: *mut bindings::request_queue, memflags: c_uint);
    pub(crate) fn rust_loop_limits_start_update(
        q: *mut bindings::request_queue,
        lim: *mut bindings::queue_limits,
    );
    pub(crate) fn rust_loop_limits_try_start_update(
        q: *mut bindings::request_queue,
        lim: *mut bindings::queue_limits,
    ) -> bool;
    pub(crate) fn rust_loop_limits_cancel_update(q: *mut bindings::request_queue);
    pub(crate) fn rust_loop_queue_logical_block_size(q: *mut bindings::request_queue) -> c_uint;
    pub(crate) fn rust_loop_queue_max_discard_sectors(q: *mut bindings::request_queue) -> c_uint;
    pub(crate) fn rust_loop_bdev_logical_block_size(bdev: *mut bindings::block_device) -> c_uint;
    pub(crate) fn rust_loop_bdev_rot(bdev: *mut bindings::block_device) -> bool;
    pub(crate) fn rust_loop_bdev_write_zeroes_sectors(bdev: *mut bindings::block_device) -> c_uint;
    pub(crate) fn rust_loop_bdev_discard_granularity(bdev: *mut bindings::block_device) -> c_uint;
    pub(crate) fn rust_loop_rq_blkcg_css(
        rq: *mut bindings::request,
    ) -> *mut bindings::cgroup_subsys_state;
    pub(crate) fn rust_loop_memcg_css_get(
        blkcg_css: *mut bindings::cgroup_subsys_state,
    ) -> *mut bindings::cgroup_subsys_state;
    pub(crate) fn rust_loop_css_put(css: *mut bindings::cgroup_subsys_state);
    pub(crate) fn rust_loop_set_active_memcg(
        memcg_css: *mut bindings::cgroup_subsys_state,
    ) -> *mut bindings::mem_cgroup;
    pub(crate) fn rust_loop_restore_active_memcg(old: *mut bindings::mem_cgroup);
    pub(crate) fn rust_loop_i_size_read(inode: *const bindings::inode) -> i64;
    pub(crate) fn rust_loop_statfs_bsize(path: *const bindings::path, bsize: *mut u32) -> c_int;
    pub(crate) fn rust_loop_huge_encode_dev(dev: bindings::dev_t) -> u64;
    pub(crate) fn rust_loop_io_flags_save() -> c_uint;
    pub(crate) fn rust_loop_io_flags_restore(flags: c_uint);
}
