// SPDX-License-Identifier: GPL-2.0
/*
 * EVQ_IOC_CTL: a batch of changes in one call, each with its own result.
 * A bad entry fails only itself; a fault stops the batch where it is.
 */

#include <linux/uaccess.h>
#include <linux/sched.h>
#include "queue.h"
#include "evq_trace.h"

static int evq_ctl_one(struct evq_queue *q, const struct evq_ctl *c)
{
	switch (c->op) {
	case EVQ_CTL_ADD:
		return evq_watch_add(q, c);
	case EVQ_CTL_MOD:
		return evq_watch_mod(q, c);
	case EVQ_CTL_DEL:
		return evq_watch_del(q, c);
	default:
		return -EINVAL;
	}
}

/* Entries read, applied and written back at a time: 512 bytes of stack. */
#define EVQ_CTL_CHUNK 16

long evq_ctl_ioctl(struct evq_queue *q, struct evq_ctl_batch __user *arg)
{
	struct evq_ctl c[EVQ_CTL_CHUNK];
	struct evq_ctl_batch b;
	struct evq_ctl __user *uc;
	u32 done = 0, applied = 0, chunk = EVQ_CTL_CHUNK, n, i;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || !b.nr || b.nr > evq_max_batch)
		return -EINVAL;
	uc = u64_to_user_ptr(b.entries);

	mutex_lock(&q->mtx);
	while (done < b.nr) {
		n = min_t(u32, b.nr - done, chunk);
		/*
		 * Writing the chunk back unchanged first proves the results
		 * can be stored, so a read-only array fails before any of
		 * its changes is applied rather than after.  On a fault, go
		 * on one entry at a time to stop exactly at the bad one.
		 */
		if (copy_from_user(c, uc + done, n * sizeof(*c)) ||
		    copy_to_user(uc + done, c, n * sizeof(*c))) {
			if (n == 1)
				break;
			chunk = 1;
			continue;
		}
		for (i = 0; i < n; i++) {
			c[i].res = evq_ctl_one(q, &c[i]);
			applied += !c[i].res;
		}
		if (copy_to_user(uc + done, c, n * sizeof(*c)))
			break;
		done += n;
		if (fatal_signal_pending(current))
			break;
		cond_resched();
	}
	mutex_unlock(&q->mtx);
	atomic64_inc(&q->stats.ctl_calls);
	atomic64_add(applied, &q->stats.ctl_changes);
	trace_evq_ctl(q->id, b.nr, done ? done : -EFAULT);
	return done ? done : -EFAULT;
}
