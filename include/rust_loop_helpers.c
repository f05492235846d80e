// SPDX-License-Identifier: GPL-2.0
/*
 * Non-inline wrappers of static inline kernel functions for rust_loop; see rust_loop_helpers.h.
 */
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/statfs.h>

#include "rust_loop_helpers.h"

void rust_loop_kiocb_start_write(struct kiocb *iocb)
{
	kiocb_start_write(iocb);
}

void rust_loop_kiocb_end_write(struct kiocb *iocb)
{
	kiocb_end_write(iocb);
}

void rust_loop_kthread_init_work(struct kthread_work *work, rust_loop_work_fn fn)
{
	kthread_init_work(work, fn);
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

/* queue_limits_start_update() without waiting: false if another update is in progress. */
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
	current->flags = flags;
}
