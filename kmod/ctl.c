// SPDX-License-Identifier: GPL-2.0
/*
 * EVQ_IOC_CTL: a batch of changes in one call, each with its own result.
 * A bad entry fails only itself; a fault stops the batch where it is.
 */

#include <linux/uaccess.h>
#include <linux/sched.h>
#include "queue.h"

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

long evq_ctl_ioctl(struct evq_queue *q, struct evq_ctl_batch __user *arg)
{
	struct evq_ctl_batch b;
	struct evq_ctl __user *uc;
	struct evq_ctl c;
	u32 i;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || !b.nr || b.nr > evq_max_batch)
		return -EINVAL;
	uc = u64_to_user_ptr(b.entries);

	mutex_lock(&q->mtx);
	for (i = 0; i < b.nr; i++) {
		if (copy_from_user(&c, &uc[i], sizeof(c)))
			break;
		c.res = evq_ctl_one(q, &c);
		if (put_user(c.res, &uc[i].res))
			break;
		if (!((i + 1) & 255)) {
			if (fatal_signal_pending(current)) {
				i++;
				break;
			}
			cond_resched();
		}
	}
	mutex_unlock(&q->mtx);
	return i ? i : -EFAULT;
}
