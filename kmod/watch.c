// SPDX-License-Identifier: GPL-2.0
/*
 * Watches: interest in one file, hooked on its wait queues.
 *
 * A wake-up that carries an event mask posts straight into the ring from
 * the wake callback, so userspace sees it with no system call.  A watch is
 * on the ready list (q->ovf_list) at most once: when the ring is full its
 * events are merged there and moved in by the next EVQ_IOC_WAIT, so
 * readiness is delayed, never lost.  Wake-ups without a mask, level-mode
 * re-checks and closed-file detection need vfs_poll() or fput(), which
 * cannot run under a wait-queue lock: they run in process context.
 */

#include <linux/file.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/rcupdate.h>
#include <linux/magic.h>
#include <linux/string.h>
#include "queue.h"

static struct kmem_cache *evq_watch_cache;
static struct kmem_cache *evq_pwq_cache;

#define EVQ_EVENTS_ALLOWED (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | \
			    EPOLLHUP | EPOLLRDNORM | EPOLLRDBAND | \
			    EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP)

/*
 * Events a wake-up key reports truthfully.  A socket's data wake-up says
 * EPOLLIN | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND whatever arrived, so a
 * watch that asks for anything else is polled in process context for its
 * exact mask, as epoll does for every event at delivery.
 */
#define EVQ_EVENTS_KEYED (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM | \
			  EPOLLERR | EPOLLHUP | EPOLLRDHUP)

static void evq_watch_set_ovf(struct evq_watch *w, __poll_t events)
{
	struct evq_queue *q = w->q;

	w->ovf_events |= events;
	if (!w->on_ovf) {
		w->on_ovf = true;
		list_add_tail(&w->ovf_node, &q->ovf_list);
	}
	evq_ring_overflow(q, w->user_data);
}

/**
 * evq_watch_emit() - write a READY entry for @w and record it
 * @w: the watch
 * @events: its ready events, already limited to its interest
 *
 * Called with q->lock held and room in the ring.
 */
void evq_watch_emit(struct evq_watch *w, __poll_t events)
{
	struct evq_queue *q = w->q;

	w->posted = true;
	w->posted_seq = q->tail;
	w->posted_events = events;
	evq_ring_write(q, w->user_data, (__force s32)events, EVQ_CQE_READY);
	if (!(w->mode & (EVQ_WATCH_EDGE | EVQ_WATCH_ONESHOT)) && !w->on_level) {
		w->on_level = true;
		list_add_tail(&w->level_node, &q->level_list);
		evq_queue_update_flags(q);
	}
}

/**
 * evq_watch_post() - report @events of @w, coalescing per watch
 * @w: the watch
 * @events: ready events (any mask: limited here to the interest)
 *
 * Called with q->lock held.
 *
 * Return: true if an entry was written or queued, so a waiter should be
 * woken.
 */
bool evq_watch_post(struct evq_watch *w, __poll_t events)
{
	struct evq_queue *q = w->q;

	events &= w->events;
	if (!events || !w->armed || w->closed)
		return false;
	if (w->on_ovf) {
		w->ovf_events |= events;
		return false;
	}
	/* Nothing new for an entry userspace has not consumed yet. */
	if (w->posted && !(events & ~w->posted_events) &&
	    !evq_ring_consumed(q, w->posted_seq))
		return false;
	if (w->mode & EVQ_WATCH_ONESHOT)
		w->armed = false;
	if (!evq_ring_room(q)) {
		evq_watch_set_ovf(w, events);
		return true;
	}
	evq_watch_emit(w, events);
	return true;
}

static int evq_watch_wake(wait_queue_entry_t *wait, unsigned int mode,
			  int sync, void *key)
{
	struct evq_pwq *pwq = container_of(wait, struct evq_pwq, wait);
	struct evq_watch *w = pwq->w;
	struct evq_queue *q = w->q;
	__poll_t events = key_to_poll(key);
	unsigned long flags;
	bool woke = false;
	bool poll = false;

	spin_lock_irqsave(&q->lock, flags);
	if (events && !(w->events & ~EVQ_EVENTS_KEYED)) {
		woke = evq_watch_post(w, events);
	} else if ((!events || (events & w->events)) && w->armed &&
		   !w->closed && !w->on_pollq) {
		/*
		 * No mask, or one we cannot trust: the next EVQ_IOC_WAIT
		 * polls it, in process context, as epoll's harvest does.
		 * A worker here would preempt the waker on its own CPU at
		 * every TCP connect and close (their wake-ups carry no mask).
		 */
		w->on_pollq = true;
		list_add_tail(&w->pollq_node, &q->pollq_list);
		evq_queue_update_flags(q);
		poll = true;
	}
	spin_unlock_irqrestore(&q->lock, flags);

	if (woke || poll) {
		if (w->nests)
			evq_wake_nested(q, sync);
		else
			evq_wake(q, sync);
	}

	if (events & POLLFREE) {
		/* The head is going away: unhook now, tell unhook not to. */
		list_del_init(&wait->entry);
		/* Pairs with the acquire in evq_watch_unhook(). */
		smp_store_release(&pwq->whead, NULL);
	}
	return woke || poll;
}

struct evq_ptable {
	poll_table pt;
	struct evq_watch *w;
};

static void evq_ptable_queue(struct file *file, wait_queue_head_t *whead,
			     poll_table *pt)
{
	struct evq_watch *w = container_of(pt, struct evq_ptable, pt)->w;
	struct evq_pwq *pwq;

	if (w->nwait < 0)
		return;
	if (!w->nwait)
		pwq = &w->pwq0;
	else
		pwq = kmem_cache_alloc(evq_pwq_cache, EVQ_GFP);
	if (!pwq) {
		w->nwait = -1;
		return;
	}
	init_waitqueue_func_entry(&pwq->wait, evq_watch_wake);
	pwq->whead = whead;
	pwq->w = w;
	pwq->next = w->pwq;
	w->pwq = pwq;
	w->nwait++;
	if (w->mode & EVQ_WATCH_EXCLUSIVE)
		add_wait_queue_exclusive(whead, &pwq->wait);
	else
		add_wait_queue(whead, &pwq->wait);
}

/**
 * evq_watch_unhook() - take @w off every wait queue
 * @w: the watch
 *
 * After this no wake callback of @w runs or will run.  Called with
 * q->mtx held.
 */
void evq_watch_unhook(struct evq_watch *w)
{
	struct evq_pwq *pwq;
	wait_queue_head_t *whead;

	while ((pwq = w->pwq)) {
		w->pwq = pwq->next;
		/* A POLLFREE wake-up may have unhooked it already. */
		rcu_read_lock();
		/* Pairs with the release on POLLFREE in evq_watch_wake(). */
		whead = smp_load_acquire(&pwq->whead);
		if (whead)
			remove_wait_queue(whead, &pwq->wait);
		rcu_read_unlock();
		if (pwq != &w->pwq0)
			kmem_cache_free(evq_pwq_cache, pwq);
	}
	w->nwait = 0;
}

/* Take @w off the queue's lists.  Called with q->lock held. */
static void evq_watch_unlist(struct evq_watch *w)
{
	if (w->on_ovf) {
		list_del_init(&w->ovf_node);
		w->on_ovf = false;
		w->ovf_events = 0;
	}
	if (w->on_level) {
		list_del_init(&w->level_node);
		w->on_level = false;
	}
	if (w->on_pollq) {
		list_del_init(&w->pollq_node);
		w->on_pollq = false;
	}
	evq_queue_update_flags(w->q);
}

/**
 * evq_watch_free() - free a watch that is unhooked and off every list
 * @w: the watch
 */
void evq_watch_free(struct evq_watch *w)
{
	if (w->file) {
		evq_pin_put(w->pin);
		fput(w->file);
	}
	evq_user_uncharge(w->q->user);
	kmem_cache_free(evq_watch_cache, w);
}

/* Drop @w for good: unhook, unlist, forget.  Called with q->mtx held. */
static void evq_watch_remove(struct evq_watch *w)
{
	struct evq_queue *q = w->q;

	evq_watch_unhook(w);
	spin_lock_irq(&q->lock);
	evq_watch_unlist(w);
	spin_unlock_irq(&q->lock);
	xa_erase(&q->watches, w->fd);
	q->nr_watches--;
	evq_watch_free(w);
}

/**
 * evq_watch_close() - drop @w and post EVQ_CQE_CLOSED
 * @w: the watch, whose file nobody but the queue holds any more
 *
 * The entry goes on the ready list when the ring is full, so it is
 * delivered exactly once either way.  Called with q->mtx held.
 */
void evq_watch_close(struct evq_watch *w)
{
	struct evq_queue *q = w->q;
	struct file *file = w->file;
	bool dead = evq_pin_dead(w->pin);
	bool free = false;

	evq_watch_unhook(w);
	xa_erase(&q->watches, w->fd);
	q->nr_watches--;
	w->file = NULL;
	evq_pin_put(w->pin);
	/*
	 * Release the file before saying so.  fput() from the reaper, a
	 * kthread, would defer the release to another worker, and the peer
	 * of a socket could still find it open after the CLOSED entry; from
	 * a system call fput() releases it on the way back to userspace.
	 */
	if (current->flags & PF_KTHREAD)
		__fput_sync(file);
	else
		fput(file);
	if (dead)
		evq_inflight_dropped();

	spin_lock_irq(&q->lock);
	evq_watch_unlist(w);
	w->closed = true;
	if (evq_ring_room(q)) {
		evq_ring_write(q, w->user_data, 0, EVQ_CQE_CLOSED);
		free = true;
	} else {
		w->on_ovf = true;
		list_add_tail(&w->ovf_node, &q->ovf_list);
		evq_ring_overflow(q, w->user_data);
	}
	spin_unlock_irq(&q->lock);

	if (free)
		evq_watch_free(w);
	evq_wake(q, false);
}

/* Poll @w without hooking and post what is ready.  q->mtx held. */
void evq_watch_repoll(struct evq_watch *w)
{
	struct evq_queue *q = w->q;
	poll_table pt;
	__poll_t events;
	bool woke;

	init_poll_funcptr(&pt, NULL);
	pt._key = w->events;
	events = vfs_poll(w->file, &pt);
	spin_lock_irq(&q->lock);
	woke = evq_watch_post(w, events);
	spin_unlock_irq(&q->lock);
	if (woke)
		evq_wake(q, false);
}

static int evq_ctl_check(const struct evq_ctl *c, bool add)
{
	if (c->resv)
		return -EINVAL;
	if (c->flags & ~EVQ_WATCH_MODES)
		return -EINVAL;
	if (c->events & ~(__force u32)EVQ_EVENTS_ALLOWED)
		return -EINVAL;
	/* As with EPOLLEXCLUSIVE: fixed at ADD, not with ONESHOT. */
	if ((c->flags & EVQ_WATCH_EXCLUSIVE) &&
	    (!add || (c->flags & EVQ_WATCH_ONESHOT)))
		return -EINVAL;
	return 0;
}

static void evq_watch_set(struct evq_watch *w, const struct evq_ctl *c)
{
	w->events = (__force __poll_t)c->events | EPOLLERR | EPOLLHUP;
	w->mode = c->flags;
	w->user_data = c->user_data;
	w->armed = true;
	w->posted = false;
}

/*
 * The watch on @fd if it names the file @fd names now.  A watch whose fd
 * was closed and reused is stale: drop it with a CLOSED entry.
 */
static struct evq_watch *evq_watch_find(struct evq_queue *q, int fd,
					struct file *file)
{
	struct evq_watch *w = xa_load(&q->watches, fd);

	if (w && w->file != file) {
		evq_watch_close(w);
		w = NULL;
	}
	return w;
}

/*
 * An epoll file: its poll wake-ups run under its poll_wait lock and it may
 * hold this queue (see evq_wake_nested()).  is_file_epoll() is private to
 * fs/eventpoll.c; an epoll file is the anonymous inode it names
 * "[eventpoll]", a name userspace cannot give a file.
 */
static bool evq_file_nests(struct file *file)
{
	return file_inode(file)->i_sb->s_magic == ANON_INODE_FS_MAGIC &&
	       !strcmp(file->f_path.dentry->d_name.name, "[eventpoll]");
}

int evq_watch_add(struct evq_queue *q, const struct evq_ctl *c)
{
	struct evq_ptable ept;
	struct evq_watch *w;
	struct file *file;
	__poll_t events;
	int ret;

	ret = evq_ctl_check(c, true);
	if (ret)
		return ret;
	file = fget(c->fd);
	if (!file)
		return -EBADF;
	ret = -EINVAL;
	if (file->f_op == &evq_fops)
		goto out_fput;
	ret = -EPERM;
	if (!file_can_poll(file))
		goto out_fput;
	ret = -EEXIST;
	if (evq_watch_find(q, c->fd, file))
		goto out_fput;
	ret = -ENOSPC;
	if (!evq_user_charge(q->user))
		goto out_fput;

	ret = -ENOMEM;
	w = kmem_cache_zalloc(evq_watch_cache, EVQ_GFP);
	if (!w)
		goto out_uncharge;
	w->pin = evq_pin_get(file);
	if (!w->pin)
		goto out_free;
	w->q = q;
	w->file = file;
	w->fd = c->fd;
	w->nests = evq_file_nests(file);
	INIT_LIST_HEAD(&w->ovf_node);
	INIT_LIST_HEAD(&w->level_node);
	INIT_LIST_HEAD(&w->pollq_node);
	evq_watch_set(w, c);
	ret = xa_err(xa_store(&q->watches, c->fd, w, EVQ_GFP));
	if (ret)
		goto out_unpin;
	q->nr_watches++;

	ept.w = w;
	init_poll_funcptr(&ept.pt, evq_ptable_queue);
	ept.pt._key = w->events;
	events = vfs_poll(file, &ept.pt);
	if (w->nwait < 0) {
		evq_watch_remove(w);
		return -ENOMEM;
	}
	spin_lock_irq(&q->lock);
	ret = evq_watch_post(w, events);
	spin_unlock_irq(&q->lock);
	if (ret)
		evq_wake(q, false);
	evq_reap_schedule(q);
	return 0;

out_unpin:
	evq_pin_put(w->pin);
out_free:
	kmem_cache_free(evq_watch_cache, w);
out_uncharge:
	evq_user_uncharge(q->user);
out_fput:
	fput(file);
	return ret;
}

/* Look up the watch a MOD or DEL names.  q->mtx held. */
static int evq_watch_lookup(struct evq_queue *q, int fd,
			    struct evq_watch **wp)
{
	struct file *file = fget(fd);
	int ret = 0;

	if (!file)
		return -EBADF;
	*wp = evq_watch_find(q, fd, file);
	if (!*wp)
		ret = -ENOENT;
	fput(file);
	return ret;
}

int evq_watch_mod(struct evq_queue *q, const struct evq_ctl *c)
{
	struct evq_watch *w;
	int ret;

	ret = evq_ctl_check(c, false);
	if (ret)
		return ret;
	ret = evq_watch_lookup(q, c->fd, &w);
	if (ret)
		return ret;
	if (w->mode & EVQ_WATCH_EXCLUSIVE)
		return -EINVAL;

	spin_lock_irq(&q->lock);
	evq_watch_unlist(w);
	evq_watch_set(w, c);
	spin_unlock_irq(&q->lock);
	evq_watch_repoll(w);
	return 0;
}

int evq_watch_del(struct evq_queue *q, const struct evq_ctl *c)
{
	struct evq_watch *w;
	int ret;

	/* As with epoll, DEL ignores events, flags and user_data. */
	if (c->resv)
		return -EINVAL;
	ret = evq_watch_lookup(q, c->fd, &w);
	if (ret)
		return ret;
	evq_watch_remove(w);
	return 0;
}

/**
 * evq_watch_poll_queued() - poll the watches woken without a usable mask
 * @q: the queue, with q->mtx held
 */
void evq_watch_poll_queued(struct evq_queue *q)
{
	struct evq_watch *w;
	LIST_HEAD(todo);

	/*
	 * The watches stay marked on_pollq while they wait on @todo, so a
	 * wake-up meanwhile leaves them alone (they are about to be polled);
	 * each is unmarked under the lock just before its poll, so a wake-up
	 * after that queues it again for the next pass.  Clearing them all
	 * at the splice let a wake-up link a watch into pollq_list while it
	 * was still linked in @todo, and the walk then ran into the queue.
	 */
	spin_lock_irq(&q->lock);
	list_splice_init(&q->pollq_list, &todo);
	while ((w = list_first_entry_or_null(&todo, struct evq_watch,
					     pollq_node))) {
		list_del_init(&w->pollq_node);
		w->on_pollq = false;
		spin_unlock_irq(&q->lock);
		evq_watch_repoll(w);
		spin_lock_irq(&q->lock);
	}
	spin_unlock_irq(&q->lock);
}

void evq_reap_schedule(struct evq_queue *q)
{
	if (q->nr_watches && !delayed_work_pending(&q->reap_work))
		schedule_delayed_work(&q->reap_work,
				      msecs_to_jiffies(max(READ_ONCE(evq_reap_interval_ms), 10U)));
}

/*
 * A module cannot hook the final fput() as epoll does, so look for files
 * whose only references are watches' (this queue's or others', see
 * kmod/pin.c): their fds were closed.  A pass looks through at most
 * reap_batch watches and the next one resumes after them, so the cost
 * per interval stays bounded however many fds a queue watches (a full
 * walk every 100 ms of 100,000 watches, each a cache miss or two, would
 * keep a fifth of a CPU busy); a queue that large sees a closed fd
 * within N / reap_batch intervals.  A watched UNIX socket in flight may
 * be unreachable though held: kmod/inflight.c looks for those.
 */
void evq_reap_work(struct work_struct *work)
{
	struct evq_queue *q = container_of(to_delayed_work(work),
					   struct evq_queue, reap_work);
	unsigned int batch = max(READ_ONCE(evq_reap_batch), 64U);
	unsigned int n = 0;
	struct evq_watch *w;
	unsigned long fd;

	mutex_lock(&q->mtx);
	fd = q->reap_next;
	q->reap_next = 0;	/* the end reached: start again from 0 */
	xa_for_each_start(&q->watches, fd, w, fd) {
		if (n == batch) {
			q->reap_next = fd;
			break;
		}
		if (evq_pin_alone(w->pin))
			evq_watch_close(w);
		else
			evq_pin_check(w->pin);
		if (!(++n & 1023))
			cond_resched();
	}
	evq_reap_schedule(q);
	mutex_unlock(&q->mtx);
}

int evq_watch_cache_init(void)
{
	evq_watch_cache = KMEM_CACHE(evq_watch, SLAB_ACCOUNT);
	evq_pwq_cache = KMEM_CACHE(evq_pwq, SLAB_ACCOUNT);
	if (!evq_watch_cache || !evq_pwq_cache) {
		evq_watch_cache_exit();
		return -ENOMEM;
	}
	return 0;
}

void evq_watch_cache_exit(void)
{
	kmem_cache_destroy(evq_pwq_cache);
	kmem_cache_destroy(evq_watch_cache);
}
