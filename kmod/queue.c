// SPDX-License-Identifier: GPL-2.0
/*
 * The queue: creation, release, the ring's NEED_ENTER flag and poll() on
 * the queue fd (so a queue nests inside epoll).
 */

#include <linux/slab.h>
#include <linux/cred.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include "queue.h"

/* Queues not yet freed: module exit waits for operations to drain them. */
atomic_t evq_nr_queues = ATOMIC_INIT(0);

struct evq_queue *evq_queue_create(void)
{
	struct evq_queue *q;

	q = kzalloc(sizeof(*q), EVQ_GFP);
	if (!q)
		return NULL;
	q->user = evq_user_get(current_uid());
	if (!q->user) {
		kfree(q);
		return NULL;
	}
	mutex_init(&q->mtx);
	spin_lock_init(&q->lock);
	init_waitqueue_head(&q->wq);
	init_waitqueue_head(&q->poll_wq);
	INIT_LIST_HEAD(&q->ovf_list);
	INIT_LIST_HEAD(&q->level_list);
	INIT_LIST_HEAD(&q->pollq_list);
	INIT_DELAYED_WORK(&q->reap_work, evq_reap_work);
	INIT_WORK(&q->wake_work, evq_wake_work);
	xa_init(&q->watches);
	refcount_set(&q->refs, 1);
	INIT_LIST_HEAD(&q->ops);
	INIT_LIST_HEAD(&q->op_ovf);
	q->owner_pid = get_pid(task_tgid(current));
	q->owner_uid = current_euid();
	if (evq_registry_add(q)) {
		put_pid(q->owner_pid);
		evq_user_put(q->user);
		kfree(q);
		return NULL;
	}
	atomic_inc(&evq_nr_queues);
	return q;
}

/**
 * evq_queue_release() - the queue's file is closed
 * @q: the queue
 *
 * Watches go now.  Operations in flight are cancelled and hold the queue
 * (and its ring, which userspace may still have mapped) until they end.
 */
void evq_queue_release(struct evq_queue *q)
{
	struct evq_watch *w, *tmp;
	unsigned long fd;

	/* No wake callback may queue work once the hooks are gone. */
	mutex_lock(&q->mtx);
	xa_for_each(&q->watches, fd, w)
		evq_watch_unhook(w);
	mutex_unlock(&q->mtx);
	cancel_delayed_work_sync(&q->reap_work);
	cancel_work_sync(&q->wake_work);

	/* Closed watches live only on the ready list. */
	list_for_each_entry_safe(w, tmp, &q->ovf_list, ovf_node)
		if (w->closed)
			evq_watch_free(w);
	xa_for_each(&q->watches, fd, w)
		evq_watch_free(w);
	xa_destroy(&q->watches);

	evq_op_cancel_all(q);
	evq_queue_put(q);
}

/* Drop a reference; the last one frees the ring and the queue. */
void evq_queue_put(struct evq_queue *q)
{
	if (!refcount_dec_and_test(&q->refs))
		return;
	cancel_work_sync(&q->wake_work);
	evq_registry_del(q);
	evq_ring_free(&q->ring);
	put_pid(q->owner_pid);
	evq_user_put(q->user);
	kfree(q);
	if (atomic_dec_and_test(&evq_nr_queues))
		wake_up_var(&evq_nr_queues);
}

/* Called with q->lock held. */
void evq_queue_update_flags(struct evq_queue *q)
{
	u32 flags = 0;

	if (!list_empty(&q->ovf_list) || !list_empty(&q->level_list) ||
	    !list_empty(&q->op_ovf) || !list_empty(&q->pollq_list))
		flags |= EVQ_RING_NEED_ENTER;
	if (READ_ONCE(*q->ring.flags) == flags)
		return;
	/* Userspace loads flags with acquire when it finds the ring empty. */
	smp_store_release(q->ring.flags, flags);
}

__poll_t evq_queue_poll(struct evq_queue *q, struct file *file,
			poll_table *pt)
{
	poll_wait(file, &q->poll_wq, pt);
	/* Pairs with the release in evq_ring_setup(). */
	if (!smp_load_acquire(&q->ready))
		return 0;
	if (evq_ring_count(q) || !list_empty_careful(&q->ovf_list) ||
	    !list_empty_careful(&q->level_list) ||
	    !list_empty_careful(&q->op_ovf) ||
	    !list_empty_careful(&q->pollq_list))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}
