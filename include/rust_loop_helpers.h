/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Non-inline wrappers for the `static inline` kernel functions and macros rust_loop needs.
 *
 * bindgen cannot see static inline functions, and an out-of-tree module cannot add to
 * rust/helpers/, so these are linked into the module and declared by hand in
 * rust_loop/helpers.rs. Each wrapper is one call with the same meaning as its kernel original;
 * logic lives in Rust. rust_loop_helpers.c also checks, at build time, every constant the Rust
 * code copies from a kernel header (static_assert), so a kernel change cannot skew one silently.
 */
#ifndef RUST_LOOP_HELPERS_H
#define RUST_LOOP_HELPERS_H

#include <linux/types.h>

struct bio_vec;
struct block_device;
struct cgroup_subsys_state;
struct gendisk;
struct inode;
struct kiocb;
struct kthread_work;
struct llist_head;
struct llist_node;
struct mem_cgroup;
struct mutex;
struct path;
struct queue_limits;
struct request;
struct request_queue;
struct workqueue_struct;
struct cpumask;
struct work_struct;

typedef void (*rust_loop_kwork_fn)(struct kthread_work *work);
typedef void (*rust_loop_work_fn)(struct work_struct *work);

/* Freeze protection of an async write (fs.h). */
bool rust_loop_kiocb_start_write(struct kiocb *iocb);
void rust_loop_kiocb_end_write(struct kiocb *iocb);

/* kthread_init_work() and INIT_WORK() are macros (kthread.h, workqueue.h). */
void rust_loop_kthread_init_work(struct kthread_work *work, rust_loop_kwork_fn fn);
void rust_loop_init_work(struct work_struct *work, rust_loop_work_fn fn);
bool rust_loop_queue_work(struct workqueue_struct *wq, struct work_struct *work);
unsigned int rust_loop_num_online_cpus(void);
unsigned int rust_loop_nr_cpu_ids(void);
/* cond_resched() is a macro (sched.h). */
void rust_loop_cond_resched(void);
bool rust_loop_bdev_file_nowait(struct file *file);
bool rust_loop_can_associate(void);

/* mutex_lock_killable() is a macro with lockdep (mutex.h). */
int rust_loop_mutex_lock_killable(struct mutex *lock);

/* Lock-free lists (llist.h). */
bool rust_loop_llist_add(struct llist_node *node, struct llist_head *head);
struct llist_node *rust_loop_llist_del_all(struct llist_head *head);

/* Request data (blk-mq.h): bvec count, the rq_for_each_bvec() walk, and the single-bio start. */
unsigned int rust_loop_rq_nr_bvec(struct request *rq);
void rust_loop_rq_copy_bvecs(struct request *rq, struct bio_vec *out);
const struct bio_vec *rust_loop_rq_first_bvec(struct request *rq, unsigned int *bvec_done);
void rust_loop_rq_zero_fill(struct request *rq);
unsigned short rust_loop_rq_ioprio(struct request *rq);

/* Gendisk and queue (blkdev.h, blk-mq.h, device.h). */
unsigned int rust_loop_disk_openers(struct gendisk *disk);
void rust_loop_disk_set_uevent_suppress(struct gendisk *disk, int val);
unsigned int rust_loop_freeze_queue(struct request_queue *q);
void rust_loop_unfreeze_queue(struct request_queue *q, unsigned int memflags);
void rust_loop_limits_start_update(struct request_queue *q, struct queue_limits *lim);
bool rust_loop_limits_try_start_update(struct request_queue *q, struct queue_limits *lim);
void rust_loop_limits_cancel_update(struct request_queue *q);
const struct cpumask *rust_loop_hw_queue_cpumask(struct request_queue *q, unsigned int index);
unsigned int rust_loop_queue_logical_block_size(struct request_queue *q);
unsigned int rust_loop_queue_max_discard_sectors(struct request_queue *q);

/* Backing block device properties (blkdev.h). */
unsigned int rust_loop_bdev_logical_block_size(struct block_device *bdev);
bool rust_loop_bdev_rot(struct block_device *bdev);
unsigned int rust_loop_bdev_write_zeroes_sectors(struct block_device *bdev);
unsigned int rust_loop_bdev_discard_granularity(struct block_device *bdev);

/*
 * cgroup attribution of a request's I/O (blk-cgroup.h, cgroup.h, memcontrol.h, sched/mm.h); the
 * NULL-returning variants when the kernel lacks CONFIG_BLK_CGROUP or CONFIG_MEMCG.
 */
struct cgroup_subsys_state *rust_loop_rq_blkcg_css(struct request *rq);
struct cgroup_subsys_state *rust_loop_memcg_css_get(struct cgroup_subsys_state *blkcg_css);
void rust_loop_css_put(struct cgroup_subsys_state *css);
struct mem_cgroup *rust_loop_set_active_memcg(struct cgroup_subsys_state *memcg_css);
void rust_loop_restore_active_memcg(struct mem_cgroup *old);

/* Files, inodes and the current task (fs.h, statfs.h, kdev_t.h, sched.h). */
loff_t rust_loop_i_size_read(const struct inode *inode);
int rust_loop_statfs_bsize(const struct path *path, u32 *bsize);
u64 rust_loop_huge_encode_dev(dev_t dev);
unsigned int rust_loop_io_flags_save(void);
void rust_loop_io_flags_restore(unsigned int flags);

#endif /* RUST_LOOP_HELPERS_H */
