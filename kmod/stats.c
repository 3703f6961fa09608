// SPDX-License-Identifier: GPL-2.0
/*
 * The registry of open queues, for generic netlink, and their counters.
 *
 * A queue is registered from open to its last reference.  The global
 * counters are the sum of the registered queues and of those gone; both
 * parts are read and changed under the registry's lock, so a queue going
 * away never makes a global counter step back.
 */

#include <linux/ktime.h>
#include <linux/pid.h>
#include "queue.h"

DEFINE_XARRAY_ALLOC1(evq_queues);

/* Counters of the queues gone, and how many there were; xa_lock(evq_queues). */
static struct evq_counters evq_retired;
static u64 evq_created;
static u32 evq_next_id;

static void evq_counters_add(struct evq_counters *sum,
			     const struct evq_counters *c)
{
	sum->posted += c->posted;
	sum->harvested += c->harvested;
	sum->overflows += c->overflows;
	sum->waits += c->waits;
	sum->waits_slept += c->waits_slept;
	sum->ctl_calls += c->ctl_calls;
	sum->ctl_changes += c->ctl_changes;
	sum->sf_calls += c->sf_calls;
	sum->sf_bytes += c->sf_bytes;
	sum->sf_not_resident += c->sf_not_resident;
	sum->pageins += c->pageins;
	sum->pagein_ns += c->pagein_ns;
	sum->pagein_max_ns = max(sum->pagein_max_ns, c->pagein_max_ns);
}

/**
 * evq_registry_add() - give a new queue its id and make it visible
 * @q: the queue, with its owner set
 *
 * Return: 0, or -ENOMEM (or -EBUSY with 2^31 queues open).
 */
int evq_registry_add(struct evq_queue *q)
{
	int ret;

	xa_lock(&evq_queues);
	/* Cyclic: a trace or a reader's previous sample never mixes two queues. */
	ret = __xa_alloc_cyclic(&evq_queues, &q->id, q, xa_limit_31b,
				&evq_next_id, EVQ_GFP);
	if (ret >= 0) {
		evq_created++;
		ret = 0;
	}
	xa_unlock(&evq_queues);
	return ret;
}

/**
 * evq_registry_del() - a queue's last reference is gone
 * @q: the queue
 *
 * Its counters join the retired ones under the same lock that takes it
 * out, and no reader can reach it afterwards.
 */
void evq_registry_del(struct evq_queue *q)
{
	struct evq_counters c;

	xa_lock(&evq_queues);
	__xa_erase(&evq_queues, q->id);
	evq_queue_counters(q, &c);
	evq_counters_add(&evq_retired, &c);
	xa_unlock(&evq_queues);
}

/**
 * evq_queue_counters() - snapshot one queue's counters
 * @q: a registered queue (the caller holds xa_lock(evq_queues) or a
 *	reference)
 * @c: filled in
 *
 * Harvested entries are those posted and no longer in the ring: userspace
 * consumes them through the mapping, with no call the module could count.
 */
void evq_queue_counters(struct evq_queue *q, struct evq_counters *c)
{
	const struct evq_stats *s = &q->stats;
	unsigned long flags;
	u32 in_ring = 0;

	spin_lock_irqsave(&q->lock, flags);
	/* Pairs with the release in evq_ring_setup(). */
	if (smp_load_acquire(&q->ready))
		in_ring = evq_ring_count(q);
	c->posted = s->posted;
	c->harvested = s->posted - min_t(u64, in_ring, s->posted);
	c->overflows = s->overflows;
	c->pageins = s->pageins;
	c->pagein_ns = s->pagein_ns;
	c->pagein_max_ns = s->pagein_max_ns;
	spin_unlock_irqrestore(&q->lock, flags);
	c->waits = atomic64_read(&s->waits);
	c->waits_slept = atomic64_read(&s->waits_slept);
	c->ctl_calls = atomic64_read(&s->ctl_calls);
	c->ctl_changes = atomic64_read(&s->ctl_changes);
	c->sf_calls = atomic64_read(&s->sf_calls);
	c->sf_bytes = atomic64_read(&s->sf_bytes);
	c->sf_not_resident = atomic64_read(&s->sf_not_resident);
}

/**
 * evq_global_counters() - every queue's counters since the module loaded
 * @sum: filled in
 * @open: queues registered now
 * @created: queues registered since load
 */
void evq_global_counters(struct evq_counters *sum, u32 *open, u64 *created)
{
	struct evq_counters c;
	struct evq_queue *q;
	unsigned long id;

	*open = 0;
	xa_lock(&evq_queues);
	*sum = evq_retired;
	*created = evq_created;
	xa_for_each(&evq_queues, id, q) {
		evq_queue_counters(q, &c);
		evq_counters_add(sum, &c);
		(*open)++;
	}
	xa_unlock(&evq_queues);
}

/**
 * evq_stats_pagein() - a page-in window has been read to its end
 * @q: the queue
 * @t0: ktime_get_ns() when the window was asked for
 */
void evq_stats_pagein(struct evq_queue *q, u64 t0)
{
	u64 ns = ktime_get_ns() - t0;

	spin_lock_irq(&q->lock);
	q->stats.pageins++;
	q->stats.pagein_ns += ns;
	q->stats.pagein_max_ns = max(q->stats.pagein_max_ns, ns);
	spin_unlock_irq(&q->lock);
}
