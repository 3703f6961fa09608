// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Waiting and harvesting: evq_wait(), evq_wait_exclusive() and
 * evq_harvest_slow(), the out-of-line half of evq_harvest().
 */
#include <errno.h>
#include <sys/ioctl.h>

#include "evq_private.h"

static int evq__km_wait(struct evq *q, unsigned int min, int64_t timeout_ns,
			unsigned int flags)
{
	struct evq_wait w = {
		.timeout_ns = timeout_ns,
		.min_events = min,
		.flags = flags,
	};
	int ret;

	ret = ioctl(q->fd, EVQ_IOC_WAIT, &w);
	return ret < 0 ? -errno : ret;
}

int evq_wait(struct evq *q, unsigned int min, int64_t timeout_ns)
{
	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		return evq__km_wait(q, min, timeout_ns, 0);
	case EVQ_BACKEND_EPOLL:
		return evq__ep_wait(q, min, timeout_ns);
	}
	return -EBADF;
}

/*
 * epoll_wait() callers sharing one epoll fd already sleep as exclusive
 * waiters, so the epoll backend needs no separate path.
 */
int evq_wait_exclusive(struct evq *q, unsigned int min, int64_t timeout_ns)
{
	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		return evq__km_wait(q, min, timeout_ns, EVQ_WAIT_EXCLUSIVE);
	case EVQ_BACKEND_EPOLL:
		return evq__ep_wait(q, min, timeout_ns);
	}
	return -EBADF;
}

/* Same as the inline fast path in libevq.h, without the fallback. */
static unsigned int evq__ring_take(struct evq *q, struct evq_cqe *out,
				   unsigned int max)
{
	unsigned int head, tail, n = 0;

	head = *q->khead;
	tail = __atomic_load_n(q->ktail, __ATOMIC_ACQUIRE);
	while (head != tail && n < max)
		out[n++] = q->cqes[head++ & q->ring_mask];
	if (n)
		__atomic_store_n(q->khead, head, __ATOMIC_RELEASE);
	return n;
}

/*
 * With the ring empty, events the kernel holds back (ring overflow,
 * level-mode re-checks) only move in on EVQ_IOC_WAIT: enter once without
 * sleeping so a harvest loop never stalls on them.
 */
static int evq__km_harvest(struct evq *q, struct evq_cqe *out,
			   unsigned int max)
{
	unsigned int n;
	int ret;

	n = evq__ring_take(q, out, max);
	if (n)
		return (int)n;
	if (!(__atomic_load_n(q->kflags, __ATOMIC_ACQUIRE) &
	      EVQ_RING_NEED_ENTER))
		return 0;
	ret = evq__km_wait(q, 0, 0, 0);
	if (ret < 0)
		return ret;
	return (int)evq__ring_take(q, out, max);
}

int evq_harvest_slow(struct evq *q, struct evq_cqe *out, unsigned int max)
{
	if (!max)
		return 0;
	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		return evq__km_harvest(q, out, max);
	case EVQ_BACKEND_EPOLL:
		return evq__ep_harvest(q, out, max);
	}
	return -EBADF;
}
