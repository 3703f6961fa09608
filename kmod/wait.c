// SPDX-License-Identifier: GPL-2.0
/*
 * EVQ_IOC_WAIT: poll the watches woken without a mask, move the ready
 * list into the ring, re-check level-mode watches userspace has consumed,
 * then sleep until the ring holds enough.
 */

#include <linux/sched/signal.h>
#include <linux/hrtimer.h>
#include <linux/uaccess.h>
#include <linux/percpu.h>
#include "queue.h"
#include "evq_trace.h"

/*
 * Depth of poll_wq wake-ups on this CPU.  A queue that watches an epoll fd
 * that watches the queue would otherwise wake its own poll_wq again from
 * inside that wake-up, under the lock it holds: nested wake-ups go to a
 * worker, which breaks every such cycle.  The cycle can start on either
 * side: in this queue's poll_wq (evq_wake_pollers()) or in the epoll
 * file's own poll wake-up (evq_wake_nested()).
 */
static DEFINE_PER_CPU(unsigned int, evq_wake_depth);

/*
 * Wake poll_wq with the depth counted, from evq_wake() and from the
 * worker alike: a wake-up that comes back to this queue (it watches an
 * epoll fd that watches it) must find the depth raised and go to the
 * worker, or it would take poll_wq's lock a second time on this CPU.
 */
static void evq_wake_pollers(struct evq_queue *q)
{
	preempt_disable();
	this_cpu_inc(evq_wake_depth);
	wake_up_poll(&q->poll_wq, EPOLLIN | EPOLLRDNORM);
	this_cpu_dec(evq_wake_depth);
	preempt_enable();
}

void evq_wake_work(struct work_struct *work)
{
	evq_wake_pollers(container_of(work, struct evq_queue, wake_work));
}

/**
 * evq_wake() - wake EVQ_IOC_WAIT sleepers (one exclusive one) and pollers
 * @q: the queue
 * @sync: the waker is about to sleep (a sync wake-up of the watched file):
 *	let the sleeper run here rather than at once on another CPU, so it
 *	finds more entries when it does, as epoll does
 */
void evq_wake(struct evq_queue *q, bool sync)
{
	/*
	 * One barrier for both checks: the post is visible before we look
	 * for sleepers, who queue themselves before they look at the ring.
	 */
	smp_mb();
	/* Safe without the lock thanks to the barrier above. */
	if (waitqueue_active(&q->wq)) {
		if (sync)
			wake_up_sync(&q->wq);
		else
			wake_up(&q->wq);
	}
	/* Likewise: pollers queue before they look at the ring. */
	if (!waitqueue_active(&q->poll_wq))
		return;
	preempt_disable();
	if (this_cpu_read(evq_wake_depth))
		queue_work(system_wq, &q->wake_work);
	else
		evq_wake_pollers(q);
	preempt_enable();
}

/**
 * evq_wake_nested() - evq_wake() from inside another file's wake-up that
 *	may lead back to this queue
 * @q: the queue
 * @sync: as for evq_wake()
 *
 * An epoll file X that @q watches wakes @q under X's poll_wait lock; if X
 * also holds @q, waking @q's pollers in place would call epoll's callback
 * for X, which wakes X's poll_wait again: the same lock, on this CPU.
 * epoll's own loop check at EPOLL_CTL_ADD cannot see through @q, so the
 * cycle is broken here: the sleepers in EVQ_IOC_WAIT are woken at once,
 * the pollers from the worker.
 */
void evq_wake_nested(struct evq_queue *q, bool sync)
{
	preempt_disable();
	this_cpu_inc(evq_wake_depth);
	evq_wake(q, sync);
	this_cpu_dec(evq_wake_depth);
	preempt_enable();
}

/* Move the ready list into the ring while it has room.  q->lock held. */
static void evq_flush_ovf(struct evq_queue *q)
{
	struct evq_watch *w;
	__poll_t events;

	while (!list_empty(&q->ovf_list) && evq_ring_room(q)) {
		w = list_first_entry(&q->ovf_list, struct evq_watch, ovf_node);
		list_del_init(&w->ovf_node);
		w->on_ovf = false;
		if (w->closed) {
			evq_ring_write(q, w->user_data, 0, EVQ_CQE_CLOSED);
			/* Only the closed watch's own memory is left. */
			evq_watch_free(w);
			continue;
		}
		events = w->ovf_events & w->events;
		w->ovf_events = 0;
		if (events)
			evq_watch_emit(w, events);
	}
	evq_op_flush(q);
	evq_queue_update_flags(q);
}

/*
 * Re-poll consumed level-mode watches.  q->mtx held.
 *
 * The watches stay marked on_level while they wait on @todo: a wake-up
 * meanwhile that posts a new entry must not link them into level_list
 * while they are still linked here.  Each is unmarked under the lock when
 * its turn comes; one that was posted again meanwhile goes back on
 * level_list to wait for that entry's consumption instead of a poll.
 */
static void evq_recheck_level(struct evq_queue *q)
{
	struct evq_watch *w, *tmp;
	LIST_HEAD(todo);

	spin_lock_irq(&q->lock);
	list_for_each_entry_safe(w, tmp, &q->level_list, level_node) {
		if (evq_ring_consumed(q, w->posted_seq))
			list_move_tail(&w->level_node, &todo);
	}
	while ((w = list_first_entry_or_null(&todo, struct evq_watch,
					     level_node))) {
		if (!evq_ring_consumed(q, w->posted_seq)) {
			list_move_tail(&w->level_node, &q->level_list);
			continue;
		}
		list_del_init(&w->level_node);
		w->on_level = false;
		spin_unlock_irq(&q->lock);
		evq_watch_repoll(w);
		spin_lock_irq(&q->lock);
	}
	evq_queue_update_flags(q);
	spin_unlock_irq(&q->lock);
}

static void evq_enter(struct evq_queue *q)
{
	if (list_empty_careful(&q->ovf_list) &&
	    list_empty_careful(&q->level_list) &&
	    list_empty_careful(&q->op_ovf) &&
	    list_empty_careful(&q->pollq_list))
		return;
	mutex_lock(&q->mtx);
	evq_watch_poll_queued(q);
	spin_lock_irq(&q->lock);
	evq_flush_ovf(q);
	spin_unlock_irq(&q->lock);
	evq_recheck_level(q);
	mutex_unlock(&q->mtx);
}

/*
 * Entries userspace consumed since the last wait, for the trace: the ring
 * head is ours to read, not to trust, and a racing waiter on another
 * thread may count some twice.  Only built when the tracepoint is on.
 */
static u32 evq_wait_harvested(struct evq_queue *q)
{
	u32 head = READ_ONCE(*q->ring.head);
	u32 n = head - READ_ONCE(q->wait_head);

	WRITE_ONCE(q->wait_head, head);
	return min(n, q->ring.entries);
}

static long evq_wait(struct evq_queue *q, const struct evq_wait *wt,
		     bool *slept)
{
	ktime_t expires = 0;
	u32 avail;
	long ret;

	/* Saturate: a deadline centuries away must not wrap into the past. */
	if (wt->timeout_ns > 0)
		expires = ktime_add_safe(ktime_get(), ns_to_ktime(wt->timeout_ns));

	evq_enter(q);
	for (;;) {
		DEFINE_WAIT(wait);

		avail = evq_ring_count(q);
		if (avail >= wt->min_events || !wt->timeout_ns)
			return avail;
		if (signal_pending(current))
			return -EINTR;

		if (wt->flags & EVQ_WAIT_EXCLUSIVE)
			prepare_to_wait_exclusive(&q->wq, &wait,
						  TASK_INTERRUPTIBLE);
		else
			prepare_to_wait(&q->wq, &wait, TASK_INTERRUPTIBLE);
		/* A post between the check above and queueing ourselves. */
		if (evq_ring_count(q) >= wt->min_events) {
			finish_wait(&q->wq, &wait);
			continue;
		}
		*slept = true;
		ret = schedule_hrtimeout_range(wt->timeout_ns > 0 ? &expires :
					       NULL, 0, HRTIMER_MODE_ABS);
		finish_wait(&q->wq, &wait);
		if (!ret)	/* timed out */
			return evq_ring_count(q);
		/* Entries consumed by another thread may free ring room. */
		evq_enter(q);
	}
}

long evq_wait_ioctl(struct evq_queue *q, struct evq_wait __user *arg)
{
	struct evq_wait wt;
	bool slept = false;
	long ret;

	if (copy_from_user(&wt, arg, sizeof(wt)))
		return -EFAULT;
	if (wt.flags & ~EVQ_WAIT_EXCLUSIVE || wt.resv[0] || wt.resv[1])
		return -EINVAL;
	if (wt.min_events > q->ring.entries)
		return -EINVAL;

	atomic64_inc(&q->stats.waits);
	if (trace_evq_wait_enter_enabled())
		trace_evq_wait_enter(q->id, evq_wait_harvested(q),
				     evq_ring_count(q), wt.min_events,
				     wt.timeout_ns);
	ret = evq_wait(q, &wt, &slept);
	if (slept)
		atomic64_inc(&q->stats.waits_slept);
	trace_evq_wait_exit(q->id, ret, slept);
	return ret;
}
