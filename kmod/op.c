// SPDX-License-Identifier: GPL-2.0
/*
 * Operations in flight: asynchronous sends and the page-ins behind
 * EVQ_SF_NOTIFY.
 *
 * An operation runs in its caller's ioctl first and never sleeps there on
 * the disk or the socket.  When it has to wait it hooks itself where the
 * wake-up will come from and returns:
 *   - on a folio's wait queue, through ->read_iter() with IOCB_WAITQ, as
 *     io_uring's buffered reads do: the callback fires when the read that
 *     holds the folio locked completes;
 *   - on the socket's wait queue, until it is writable again.
 * Either callback runs under a wait-queue lock, so it only queues the
 * operation's work item, which takes the next step.  Files whose
 * ->read_iter() cannot arm a callback are read by the work item itself:
 * a kernel worker sleeps on the disk, never the caller's thread.
 *
 * The work item is the one executor: a callback hands the operation over
 * only by moving @state out of ARMED_*, so cancel, the callbacks and the
 * executor never run a step at the same time.
 */

#include <linux/file.h>
#include <linux/memcontrol.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/poll.h>
#include <net/sock.h>
#include "queue.h"
#include "evq_trace.h"

static struct kmem_cache *evq_op_cache;

/* Bytes one run of the work item sends before it yields to other work. */
#define EVQ_OP_RUN_BUDGET	(8U << 20)

/*
 * Page-ins in a row after which nothing could be sent.  Reclaim may take
 * pages back between the read and the send, so one is not an error; a
 * long run of them means the pages are not staying, and the send fails
 * rather than spin.
 */
#define EVQ_OP_MAX_IDLE_PAGEINS	64

static void evq_op_queue(struct evq_op *op)
{
	atomic_set(&op->state, EVQ_OP_QUEUED);
	queue_work(evq_wq, &op->work);
}

static int evq_op_page_wake(wait_queue_entry_t *wait, unsigned int mode,
			    int sync, void *arg)
{
	struct wait_page_queue *wpq = container_of(wait, struct wait_page_queue,
						   wait);
	struct evq_op *op = container_of(wpq, struct evq_op, wpq);

	/* The folio wait queues are hashed: this may be another folio. */
	if (!wake_page_match(wpq, arg))
		return 0;
	list_del_init(&wait->entry);
	evq_op_queue(op);
	return 1;
}

static int evq_op_sock_wake(wait_queue_entry_t *wait, unsigned int mode,
			    int sync, void *key)
{
	struct evq_op *op = container_of(wait, struct evq_op, sock_wait);
	__poll_t events = key_to_poll(key);

	if (events && !(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		return 0;
	/* Not armed yet (evq_op_arm_sock() re-checks), or someone won. */
	if (atomic_cmpxchg(&op->state, EVQ_OP_ARMED_SOCK, EVQ_OP_QUEUED) !=
	    EVQ_OP_ARMED_SOCK)
		return 0;
	list_del_init(&wait->entry);
	queue_work(evq_wq, &op->work);
	return 1;
}

static void evq_op_sock_queue(struct file *file, wait_queue_head_t *head,
			      poll_table *pt)
{
	struct evq_op *op = container_of(pt, struct evq_op, pt);

	/* A socket has one wait queue; hook it once per arm. */
	if (op->sock_queued)
		return;
	op->sock_head = head;
	op->sock_queued = true;
	add_wait_queue(head, &op->sock_wait);
}

static void evq_op_sock_unhook(struct evq_op *op)
{
	if (op->sock_queued)
		remove_wait_queue(op->sock_head, &op->sock_wait);
	op->sock_queued = false;
}

#define EVQ_OP_WRITABLE	(EPOLLOUT | EPOLLERR | EPOLLHUP)

/*
 * Wait for the socket to take more.  Return: true if the operation now
 * belongs to the wake-up (or to cancel), false if the socket is writable
 * already and the caller goes on.
 */
static bool evq_op_arm_sock(struct evq_op *op)
{
	op->sock_queued = false;
	/* Hooks the entry; while we are RUNNING its callback ignores us. */
	if (vfs_poll(op->out, &op->pt) & EVQ_OP_WRITABLE) {
		evq_op_sock_unhook(op);
		return false;
	}
	atomic_set(&op->state, EVQ_OP_ARMED_SOCK);
	/*
	 * A wake-up between the poll above and the store was ignored: look
	 * again.  Pairs with the barrier a socket's wake-up path has before
	 * it looks for sleepers (skwq_has_sleeper()).
	 */
	smp_mb__after_atomic();
	if (!(vfs_poll(op->out, NULL) & EVQ_OP_WRITABLE))
		return true;
	if (atomic_cmpxchg(&op->state, EVQ_OP_ARMED_SOCK, EVQ_OP_RUNNING) !=
	    EVQ_OP_ARMED_SOCK)
		return true;
	evq_op_sock_unhook(op);
	return false;
}

enum { EVQ_PG_DONE, EVQ_PG_ARMED, EVQ_PG_ERROR };

/*
 * Bring [pg_pos, pg_end) into the page cache by reading it into a discard
 * iterator: ->read_iter() starts readahead for what is missing and, with
 * IOCB_WAITQ, hooks @op->wpq on the first folio still under read.  Runs
 * in the work item only (see evq_op_run()).
 */
static int evq_op_pagein(struct evq_op *op, int *err)
{
	struct file *in = op->in;
	bool block = !evq_file_buf_rasync(in);

	while (op->pg_pos < op->pg_end) {
		struct iov_iter iter;
		struct kiocb kiocb;
		ssize_t ret;

		init_sync_kiocb(&kiocb, in);
		/* Fill the page cache even if the file is open O_DIRECT. */
		kiocb.ki_flags &= ~IOCB_DIRECT;
		kiocb.ki_pos = op->pg_pos;
		if (!block) {
			kiocb.ki_flags |= IOCB_WAITQ;
			kiocb.ki_waitq = &op->wpq;
			atomic_set(&op->state, EVQ_OP_ARMED_PAGE);
		}
		iov_iter_discard(&iter, ITER_DEST, op->pg_end - op->pg_pos);
		ret = in->f_op->read_iter(&kiocb, &iter);
		/* Hooked: the callback may already own @op, do not touch it. */
		if (ret == -EIOCBQUEUED)
			return EVQ_PG_ARMED;
		atomic_set(&op->state, EVQ_OP_RUNNING);
		if (ret > 0) {
			op->pg_pos += ret;
			continue;
		}
		if (!ret) {		/* end of file */
			op->pg_end = op->pg_pos;
			break;
		}
		/* No folio to hook on (readahead made none): read it here. */
		if (ret == -EAGAIN && !block) {
			block = true;
			continue;
		}
		*err = ret;
		return EVQ_PG_ERROR;
	}
	return EVQ_PG_DONE;
}

static void evq_op_free(struct evq_op *op)
{
	atomic_dec(&op->q->nr_ops);
	mem_cgroup_put(op->memcg);
	kmem_cache_free(evq_op_cache, op);
}

/*
 * Called with q->lock held: write what fits.  Return: true once every
 * entry of @op is in the ring.
 */
static bool evq_op_write(struct evq_queue *q, struct evq_op *op)
{
	while (op->cqe_done < op->ncqe && evq_ring_room(q)) {
		evq_ring_write(q, op->user_data, op->cqe[op->cqe_done].res,
			       op->cqe[op->cqe_done].flags);
		op->cqe_done++;
	}
	return op->cqe_done == op->ncqe;
}

static void evq_op_add_cqe(struct evq_op *op, s32 res, u32 flags)
{
	op->cqe[op->ncqe].res = res;
	op->cqe[op->ncqe].flags = flags;
	op->ncqe++;
}

/* Post @op's completion and let go of it.  @err: 0 or -errno. */
static void evq_op_finish(struct evq_op *op, int err)
{
	struct evq_queue *q = op->q;
	bool parked = false, done;

	mutex_lock(&q->mtx);
	list_del(&op->node);
	/*
	 * Cancel counted us while we were still listed: it promised the
	 * caller a -ECANCELED, even if the work got done meanwhile.
	 */
	if (!err && op->cancelled)
		err = -ECANCELED;
	mutex_unlock(&q->mtx);

	if (op->async) {
		trace_evq_sf_done(q->id, op->user_data, op->sent,
				  err ? EVQ_SF_STOP_ERROR : EVQ_SF_STOP_DONE,
				  err, true);
		/* sent <= EVQ_SENDFILE_MAX: fits in res. */
		if (!err)
			evq_op_add_cqe(op, op->sent, EVQ_CQE_SENDFILE);
		else if (op->sent)
			evq_op_add_cqe(op, op->sent,
				       EVQ_CQE_SENDFILE | EVQ_CQEF_MORE);
		if (err)
			evq_op_add_cqe(op, err, EVQ_CQE_SENDFILE);
	} else {
		evq_op_add_cqe(op, err ? err : op->pg_pos - op->pg_start,
			       EVQ_CQE_PAGES_READY);
	}

	fput(op->in);
	if (op->out)
		fput(op->out);

	spin_lock_irq(&q->lock);
	done = evq_op_write(q, op);
	/* A released queue has no one to flush the rest to. */
	if (!done && !q->dead) {
		list_add_tail(&op->ovf_node, &q->op_ovf);
		evq_ring_overflow(q, op->user_data);
		parked = true;
	}
	spin_unlock_irq(&q->lock);
	evq_wake(q, false);
	if (!parked)
		evq_op_free(op);
	/* A parked op needs no reference: release frees it. */
	evq_queue_put(q);
}

/**
 * evq_op_flush() - move finished operations' entries into the ring
 * @q: the queue, with q->lock held
 *
 * Return: true if some are still waiting for room.
 */
bool evq_op_flush(struct evq_queue *q)
{
	struct evq_op *op, *tmp;

	list_for_each_entry_safe(op, tmp, &q->op_ovf, ovf_node) {
		if (!evq_op_write(q, op))
			return true;
		list_del(&op->ovf_node);
		evq_op_free(op);
	}
	return false;
}

/**
 * evq_op_window() - the next page-in: from @pos, a window's worth
 * @op: the operation, stopped at a page not in memory
 * @pos: that page's offset
 * @end: end of the range wanted
 */
void evq_op_window(struct evq_op *op, loff_t pos, loff_t end)
{
	op->pg_start = pos;
	op->pg_pos = pos;
	op->pg_end = min_t(loff_t, end, pos + evq_sf_window());
	op->pg_t0 = ktime_get_ns();
	atomic64_inc(&op->q->stats.sf_not_resident);
	trace_evq_sf_not_resident(op->q->id, op->user_data, pos,
				  op->pg_end - pos, op->async);
}

/* The window is in: count how long it took. */
static void evq_op_paged_in(struct evq_op *op)
{
	u64 t0 = op->pg_t0;

	evq_stats_pagein(op->q, t0);
	trace_evq_sf_pages_ready(op->q->id, op->user_data,
				 op->pg_pos - op->pg_start,
				 ktime_get_ns() - t0);
}

/* One step after another until the operation waits or ends. */
static void evq_op_run(struct evq_op *op, bool inline_ctx)
{
	unsigned int idle = 0;
	u64 ran = 0;
	int err = 0;

	for (;;) {
		loff_t before;
		int stop;

		if (READ_ONCE(op->cancelled)) {
			evq_op_finish(op, -ECANCELED);
			return;
		}
		if (op->pg_pos < op->pg_end) {
			/*
			 * Not in the caller's thread: even starting readahead
			 * (allocating the window's folios, building and
			 * submitting the bios) costs several times the send
			 * that stopped.
			 */
			if (inline_ctx) {
				evq_op_queue(op);
				return;
			}
			switch (evq_op_pagein(op, &err)) {
			case EVQ_PG_ARMED:
				return;
			case EVQ_PG_ERROR:
				evq_op_finish(op, err);
				return;
			}
			evq_op_paged_in(op);
			if (!op->async) {
				evq_op_finish(op, 0);
				return;
			}
			op->pg_pos = 0;
			op->pg_end = 0;
		}

		before = op->pos;
		stop = evq_sf_push(op->sock, op->in, &op->pos, op->end,
				   op->flags, &err);
		op->sent += op->pos - before;
		atomic64_add(op->pos - before, &op->q->stats.sf_bytes);
		switch (stop) {
		case EVQ_SF_STOP_DONE:
			/* Short of the end fixed at the start: truncated. */
			evq_op_finish(op, op->pos < op->end ? -ENODATA : 0);
			return;
		case EVQ_SF_STOP_ERROR:
			evq_op_finish(op, err);
			return;
		case EVQ_SF_STOP_SOCK_FULL:
			if (evq_op_arm_sock(op))
				return;
			break;
		case EVQ_SF_STOP_NOT_RESIDENT:
			idle = op->pos == before ? idle + 1 : 0;
			if (idle > EVQ_OP_MAX_IDLE_PAGEINS) {
				evq_op_finish(op, -EIO);
				return;
			}
			evq_op_window(op, op->pos, op->end);
			break;
		}
		ran += op->pos - before;
		if (!inline_ctx && ran >= EVQ_OP_RUN_BUDGET) {
			evq_op_queue(op);
			return;
		}
	}
}

static void evq_op_work(struct work_struct *work)
{
	struct evq_op *op = container_of(work, struct evq_op, work);
	struct mem_cgroup *old;

	/*
	 * Page-ins allocate the page cache here, in a kernel worker of the
	 * root cgroup: charge it to the caller's instead, or any user could
	 * fill memory beyond its memory.max through EVQ_SF_NOTIFY.  @op may
	 * be freed, and its reference to the cgroup dropped, before
	 * evq_op_run() returns; nothing is charged after that, and the
	 * pointer is only replaced, never used.
	 */
	old = set_active_memcg(op->memcg);
	atomic_set(&op->state, EVQ_OP_RUNNING);
	evq_op_run(op, false);
	set_active_memcg(old);
}

/**
 * evq_op_reserve() - count an operation against max_ops before anything
 *	is sent, so that a refusal leaves nothing done
 * @q: the queue
 *
 * Only a count: a synchronous send allocates its page-in only if it
 * meets a miss, which most calls do not.
 *
 * Return: 0, or -EBUSY when max_ops are in flight.
 */
int evq_op_reserve(struct evq_queue *q)
{
	if (atomic_inc_return(&q->nr_ops) > READ_ONCE(evq_max_ops)) {
		atomic_dec(&q->nr_ops);
		return -EBUSY;
	}
	return 0;
}

/* Give back a reservation no operation was made of. */
void evq_op_unreserve(struct evq_queue *q)
{
	atomic_dec(&q->nr_ops);
}

/**
 * evq_op_alloc() - make a reserved operation
 * @q: the queue, with a reservation from evq_op_reserve()
 * @sf: the request
 * @in: the file (a reference is taken)
 * @out: the socket for an asynchronous send, else NULL (likewise)
 *
 * The operation takes over the reservation; on failure it stays the
 * caller's.
 *
 * Return: the operation, or ERR_PTR(-ENOMEM).
 */
struct evq_op *evq_op_alloc(struct evq_queue *q, const struct evq_sendfile *sf,
			    struct file *in, struct file *out)
{
	struct evq_op *op;

	op = kmem_cache_zalloc(evq_op_cache, EVQ_GFP);
	if (!op)
		return ERR_PTR(-ENOMEM);
	op->q = q;
	refcount_inc(&q->refs);
	INIT_WORK(&op->work, evq_op_work);
	atomic_set(&op->state, EVQ_OP_RUNNING);
	op->async = out;
	op->flags = sf->flags;
	op->user_data = sf->user_data;
	op->memcg = get_mem_cgroup_from_mm(current->mm);
	op->in = get_file(in);
	if (out)
		op->out = get_file(out);
	op->pos = sf->offset;
	/* The range an asynchronous send owes, fixed now. */
	op->end = min_t(loff_t, sf->offset + sf->count,
			max_t(loff_t, i_size_read(file_inode(in)), sf->offset));
	init_waitqueue_func_entry(&op->wpq.wait, evq_op_page_wake);
	init_waitqueue_func_entry(&op->sock_wait, evq_op_sock_wake);
	init_poll_funcptr(&op->pt, evq_op_sock_queue);
	return op;
}

/* Make the operation visible to cancel and take its first steps here. */
void evq_op_start(struct evq_op *op)
{
	struct evq_queue *q = op->q;

	mutex_lock(&q->mtx);
	list_add_tail(&op->node, &q->ops);
	mutex_unlock(&q->mtx);
	evq_op_run(op, true);
}

/* Called with q->mtx held. */
static void evq_op_kick(struct evq_op *op)
{
	WRITE_ONCE(op->cancelled, true);
	/*
	 * A socket may never become writable: unhook and run the cancel
	 * now.  A folio always unlocks when its read ends, so an operation
	 * hooked there finishes then.
	 */
	if (atomic_cmpxchg(&op->state, EVQ_OP_ARMED_SOCK, EVQ_OP_QUEUED) ==
	    EVQ_OP_ARMED_SOCK) {
		remove_wait_queue(op->sock_head, &op->sock_wait);
		queue_work(evq_wq, &op->work);
	}
}

/**
 * evq_cancel_ioctl() - EVQ_IOC_CANCEL: cancel operations by user_data
 * @q: the queue
 * @arg: the user's __u64 user_data
 *
 * Return: how many were cancelled, or -ENOENT if none matched.  Each one
 * posts its completion with -ECANCELED.
 */
long evq_cancel_ioctl(struct evq_queue *q, u64 __user *arg)
{
	struct evq_op *op;
	u64 user_data;
	long n = 0;

	if (get_user(user_data, arg))
		return -EFAULT;
	mutex_lock(&q->mtx);
	list_for_each_entry(op, &q->ops, node) {
		if (op->user_data != user_data || READ_ONCE(op->cancelled))
			continue;
		evq_op_kick(op);
		n++;
	}
	mutex_unlock(&q->mtx);
	return n ? n : -ENOENT;
}

/**
 * evq_op_cancel_all() - the queue's file is released: end every operation
 * @q: the queue
 *
 * Operations finish in their work items and drop their references to @q;
 * entries that no longer fit the ring are dropped.
 */
void evq_op_cancel_all(struct evq_queue *q)
{
	struct evq_op *op, *tmp;
	LIST_HEAD(parked);

	mutex_lock(&q->mtx);
	list_for_each_entry(op, &q->ops, node)
		evq_op_kick(op);
	mutex_unlock(&q->mtx);

	spin_lock_irq(&q->lock);
	q->dead = true;
	list_splice_init(&q->op_ovf, &parked);
	spin_unlock_irq(&q->lock);
	list_for_each_entry_safe(op, tmp, &parked, ovf_node)
		evq_op_free(op);
}

int evq_op_cache_init(void)
{
	evq_op_cache = KMEM_CACHE(evq_op, SLAB_ACCOUNT);
	return evq_op_cache ? 0 : -ENOMEM;
}

void evq_op_cache_exit(void)
{
	kmem_cache_destroy(evq_op_cache);
}
