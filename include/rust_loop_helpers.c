// SPDX-License-Identifier: GPL-2.0
/*
 * Non-inline wrappers of static inline kernel functions for rust_loop; see rust_loop_helpers.h.
 */
#include <linux/blk-cgroup.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/kthread.h>
#include <linux/llist.h>
#include <linux/memcontrol.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/statfs.h>
#include <linux/workqueue.h>
#include <uapi/linux/loop.h>

#include "rust_loop_helpers.h"

/*
 * Constants the Rust code spells out (bindgen does not emit cast macros, and no binding header
 * includes uapi/linux/loop.h). Each value here is the one written in the Rust file named in the
 * comment; if a kernel changes one, the module stops building instead of silently disagreeing.
 */

/* rust_loop/request.rs */
static_assert(REQ_OP_MASK == 0xff);
static_assert(BLK_STS_NOTSUPP == ((__force blk_status_t)1));
static_assert(BLK_STS_IOERR == ((__force blk_status_t)10));
static_assert(BLK_STS_NOSPC == ((__force blk_status_t)3));
static_assert(REQ_NOWAIT == (__force blk_opf_t)(1ULL << __REQ_NOWAIT));
static_assert(REQ_NOUNMAP == (__force blk_opf_t)(1ULL << __REQ_NOUNMAP));

/* rust_loop/blkdev.rs */
static_assert(BLK_OPEN_WRITE == ((__force blk_mode_t)(1 << 1)));
static_assert(BLK_OPEN_EXCL == ((__force blk_mode_t)(1 << 2)));

/* rust_loop/disk.rs */
static_assert(BLK_FEAT_WRITE_CACHE == ((__force blk_features_t)(1u << 0)));

/* rust_loop/file.rs */
static_assert(FMODE_WRITE == ((__force fmode_t)(1 << 1)));
static_assert(FMODE_CAN_ODIRECT == ((__force fmode_t)(1 << 22)));
static_assert(FMODE_NOWAIT == ((__force fmode_t)(1 << 27)));
static_assert(FOP_BUFFER_WASYNC == ((__force fop_flags_t)(1 << 1)));
static_assert(FALLOC_FL_KEEP_SIZE == 0x01);
static_assert(FALLOC_FL_PUNCH_HOLE == 0x02);
static_assert(FALLOC_FL_ZERO_RANGE == 0x10);
static_assert(IOCB_NOWAIT == (1 << 3));
static_assert(IOCB_DIRECT == (1 << 17));


/* rust_loop/uapi.rs: include/uapi/linux/loop.h on x86-64 */
static_assert(LO_NAME_SIZE == 64 && LO_KEY_SIZE == 32);
static_assert(LO_FLAGS_READ_ONLY == 1 && LO_FLAGS_AUTOCLEAR == 4 && LO_FLAGS_PARTSCAN == 8 &&
	      LO_FLAGS_DIRECT_IO == 16);
static_assert(LO_CRYPT_NONE == 0 && LO_CRYPT_XOR == 1 && LO_CRYPT_CRYPTOAPI == 18);
static_assert(LOOP_SET_FD == 0x4C00 && LOOP_CLR_FD == 0x4C01 && LOOP_SET_STATUS == 0x4C02 &&
	      LOOP_GET_STATUS == 0x4C03 && LOOP_SET_STATUS64 == 0x4C04 &&
	      LOOP_GET_STATUS64 == 0x4C05 && LOOP_CHANGE_FD == 0x4C06 &&
	      LOOP_SET_CAPACITY == 0x4C07 && LOOP_SET_DIRECT_IO == 0x4C08 &&
	      LOOP_SET_BLOCK_SIZE == 0x4C09 && LOOP_CONFIGURE == 0x4C0A);
static_assert(LOOP_CTL_ADD == 0x4C80 && LOOP_CTL_REMOVE == 0x4C81 && LOOP_CTL_GET_FREE == 0x4C82);
static_assert(sizeof(struct loop_info64) == 232 && sizeof(struct loop_config) == 304);
static_assert(offsetof(struct loop_info64, lo_offset) == 24 &&
	      offsetof(struct loop_info64, lo_sizelimit) == 32 &&
	      offsetof(struct loop_info64, lo_number) == 40 &&
	      offsetof(struct loop_info64, lo_flags) == 52 &&
	      offsetof(struct loop_info64, lo_file_name) == 56 &&
	      offsetof(struct loop_info64, lo_crypt_name) == 120 &&
	      offsetof(struct loop_info64, lo_encrypt_key) == 184 &&
	      offsetof(struct loop_info64, lo_init) == 216);
static_assert(offsetof(struct loop_config, block_size) == 4 &&
	      offsetof(struct loop_config, info) == 8 &&
	      offsetof(struct loop_config, __reserved) == 240);
/*
 * The legacy struct loop_info and loop.c's compat_loop_info are laid out per architecture
 * (__kernel_old_dev_t, compat_dev_t); rust_loop/uapi.rs and rust_loop.rs spell out x86-64's.
 * Elsewhere LOOP_GET_STATUS would write past the caller's struct: refuse to build.
 */
#ifndef CONFIG_X86_64
#error "rust_loop's legacy and compat loop_info layouts are x86-64's"
#else
static_assert(sizeof(struct loop_info) == 168);
static_assert(offsetof(struct loop_info, lo_device) == 8 &&
	      offsetof(struct loop_info, lo_offset) == 32 &&
	      offsetof(struct loop_info, lo_flags) == 44 &&
	      offsetof(struct loop_info, lo_name) == 48 &&
	      offsetof(struct loop_info, lo_encrypt_key) == 112 &&
	      offsetof(struct loop_info, lo_init) == 144 &&
	      offsetof(struct loop_info, reserved) == 160);
#endif

/*
 * Freeze protection for a write through iocb. A non-blocking one does not wait for a frozen
 * file system (io_uring's io_kiocb_start_write): false, and the caller retries where it may
 * block.
 */
bool rust_loop_kiocb_start_write(struct kiocb *iocb)
{
	struct super_block *sb = file_inode(iocb->ki_filp)->i_sb;

	if (!(iocb->ki_flags & IOCB_NOWAIT)) {
		kiocb_start_write(iocb);
		return true;
	}
	if (!sb_start_write_trylock(sb))
		return false;
	__sb_writers_release(sb, SB_FREEZE_WRITE);
	return true;
}

void rust_loop_kiocb_end_write(struct kiocb *iocb)
{
	kiocb_end_write(iocb);
}

void rust_loop_kthread_init_work(struct kthread_work *work, rust_loop_kwork_fn fn)
{
	kthread_init_work(work, fn);
}

void rust_loop_init_work(struct work_struct *work, rust_loop_work_fn fn)
{
	INIT_WORK(work, fn);
}

bool rust_loop_queue_work(struct workqueue_struct *wq, struct work_struct *work)
{
	return queue_work(wq, work);
}

unsigned int rust_loop_num_online_cpus(void)
{
	return num_online_cpus();
}

/* A block device file whose queue takes REQ_NOWAIT bios (a dm table may not). */
bool rust_loop_bdev_file_nowait(struct file *file)
{
	return bdev_nowait(I_BDEV(file->f_mapping->host));
}

unsigned int rust_loop_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

void rust_loop_cond_resched(void)
{
	cond_resched();
}

int rust_loop_mutex_lock_killable(struct mutex *lock)
{
	return mutex_lock_killable(lock);
}

bool rust_loop_llist_add(struct llist_node *node, struct llist_head *head)
{
	return llist_add(node, head);
}

struct llist_node *rust_loop_llist_del_all(struct llist_head *head)
{
	return llist_del_all(head);
}

unsigned int rust_loop_rq_nr_bvec(struct request *rq)
{
	return blk_rq_nr_bvec(rq);
}

void rust_loop_rq_copy_bvecs(struct request *rq, struct bio_vec *out)
{
	struct req_iterator iter;
	struct bio_vec bv;

	rq_for_each_bvec(bv, rq, iter)
		*out++ = bv;
}

const struct bio_vec *rust_loop_rq_first_bvec(struct request *rq, unsigned int *bvec_done)
{
	*bvec_done = rq->bio->bi_iter.bi_bvec_done;
	return __bvec_iter_bvec(rq->bio->bi_io_vec, rq->bio->bi_iter);
}

void rust_loop_rq_zero_fill(struct request *rq)
{
	struct bio *bio;

	for (bio = rq->bio; bio; bio = bio->bi_next)
		zero_fill_bio(bio);
}

unsigned short rust_loop_rq_ioprio(struct request *rq)
{
	return req_get_ioprio(rq);
}

unsigned int rust_loop_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
}

void rust_loop_disk_set_uevent_suppress(struct gendisk *disk, int val)
{
	dev_set_uevent_suppress(disk_to_dev(disk), val);
}

unsigned int rust_loop_freeze_queue(struct request_queue *q)
{
	return blk_mq_freeze_queue(q);
}

void rust_loop_unfreeze_queue(struct request_queue *q, unsigned int memflags)
{
	blk_mq_unfreeze_queue(q, memflags);
}

void rust_loop_limits_start_update(struct request_queue *q, struct queue_limits *lim)
{
	*lim = queue_limits_start_update(q);
}

/*
 * queue_limits_start_update() without waiting: false if another update is in progress. The
 * block layer has no such helper; this is its body with mutex_trylock().
 */
bool rust_loop_limits_try_start_update(struct request_queue *q, struct queue_limits *lim)
{
	if (!mutex_trylock(&q->limits_lock))
		return false;
	*lim = q->limits;
	return true;
}

void rust_loop_limits_cancel_update(struct request_queue *q)
{
	queue_limits_cancel_update(q);
}

/* The CPUs blk-mq maps to hardware queue @index of @q (queue_for_each_hw_ctx()). */
const struct cpumask *rust_loop_hw_queue_cpumask(struct request_queue *q, unsigned int index)
{
	struct blk_mq_hw_ctx *hctx;
	unsigned long i;

	queue_for_each_hw_ctx(q, hctx, i)
		if (hctx->queue_num == index)
			return hctx->cpumask;
	return NULL;
}

/* The limits are written under limits_lock and read without it, as the block layer does. */
unsigned int rust_loop_queue_logical_block_size(struct request_queue *q)
{
	return READ_ONCE(q->limits.logical_block_size);
}

unsigned int rust_loop_queue_max_discard_sectors(struct request_queue *q)
{
	return READ_ONCE(q->limits.max_discard_sectors);
}

unsigned int rust_loop_bdev_logical_block_size(struct block_device *bdev)
{
	return bdev_logical_block_size(bdev);
}

bool rust_loop_bdev_rot(struct block_device *bdev)
{
	return bdev_rot(bdev);
}

unsigned int rust_loop_bdev_write_zeroes_sectors(struct block_device *bdev)
{
	return bdev_write_zeroes_sectors(bdev);
}

unsigned int rust_loop_bdev_discard_granularity(struct block_device *bdev)
{
	return bdev_discard_granularity(bdev);
}

loff_t rust_loop_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

u64 rust_loop_huge_encode_dev(dev_t dev)
{
	return huge_encode_dev(dev);
}

int rust_loop_statfs_bsize(const struct path *path, u32 *bsize)
{
	struct kstatfs sbuf;
	int ret = vfs_statfs(path, &sbuf);

	if (!ret)
		*bsize = sbuf.f_bsize;
	return ret;
}

/*
 * The worker's task flags while it does backing-file I/O, as loop_process_work() sets them:
 * no I/O-recursive reclaim, and dirty throttling of this task only by its own dirtying.
 */
unsigned int rust_loop_io_flags_save(void)
{
	unsigned int old = current->flags;

	current->flags |= PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO;
	return old;
}

void rust_loop_io_flags_restore(unsigned int flags)
{
	current->flags = (current->flags & ~(PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO)) |
			 (flags & (PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO));
}

/* The blkcg of the request's first bio (loop_queue_rq: "always use the first bio's css"). */
struct cgroup_subsys_state *rust_loop_rq_blkcg_css(struct request *rq)
{
#ifdef CONFIG_BLK_CGROUP
	return rq->bio ? bio_blkcg_css(rq->bio) : NULL;
#else
	return NULL;
#endif
}

/* A reference to the memcg of the blkcg's cgroup, as loop_queue_rq() takes it. */
struct cgroup_subsys_state *rust_loop_memcg_css_get(struct cgroup_subsys_state *blkcg_css)
{
#ifdef CONFIG_MEMCG
	return cgroup_get_e_css(blkcg_css->cgroup, &memory_cgrp_subsys);
#else
	return NULL;
#endif
}

/*
 * Whether a cgroup association may be made here: in a kthread, in task context. In an interrupt,
 * kthread_associate_blkcg() would change the association of whichever kthread was interrupted.
 */
bool rust_loop_can_associate(void)
{
	return in_task() && (current->flags & PF_KTHREAD);
}

void rust_loop_css_put(struct cgroup_subsys_state *css)
{
	css_put(css);
}

struct mem_cgroup *rust_loop_set_active_memcg(struct cgroup_subsys_state *memcg_css)
{
#ifdef CONFIG_MEMCG
	return set_active_memcg(mem_cgroup_from_css(memcg_css));
#else
	return NULL;
#endif
}

void rust_loop_restore_active_memcg(struct mem_cgroup *old)
{
#ifdef CONFIG_MEMCG
	set_active_memcg(old);
#endif
}
