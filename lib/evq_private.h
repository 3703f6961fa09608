/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libevq internals shared by the library's source files: the backend
 * entry points, the epoll backend's buffer lock, and small helpers.
 * Nothing here is installed or exported.
 */
#ifndef EVQ_PRIVATE_H
#define EVQ_PRIVATE_H

#include <sched.h>
#include <sys/epoll.h>

#include "libevq.h"

/*
 * Poll bits a watch may ask for.  Mode bits (EPOLLET, EPOLLONESHOT,
 * EPOLLEXCLUSIVE) and EPOLLWAKEUP are refused in events: modes travel in
 * evq_ctl.flags so that both backends read them from the same place.
 */
#define EVQ__EVENTS_VALID	(EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | \
				 EPOLLHUP | EPOLLRDNORM | EPOLLRDBAND | \
				 EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | \
				 EPOLLRDHUP)

/* The module's default max_cq_entries; the epoll backend keeps the same cap. */
#define EVQ__EP_MAX_ENTRIES	65536U

/* epoll backend (evq_epoll.c) */
int evq__ep_open(struct evq *q, unsigned int entries);
void evq__ep_close(struct evq *q);
int evq__ep_ctl(struct evq *q, struct evq_ctl *v, unsigned int nr);
int evq__ep_wait(struct evq *q, unsigned int min, int64_t timeout_ns);
int evq__ep_harvest(struct evq *q, struct evq_cqe *out, unsigned int max);

/*
 * Threads sharing a queue through evq_wait_exclusive() append to the
 * epoll backend's buffer while another thread may harvest from it, so the
 * buffer needs a lock.  Critical sections are copies of a few entries;
 * a spin that yields is enough and keeps pthread out of the public header.
 */
static inline void evq__lock(struct evq *q)
{
	while (__atomic_exchange_n(&q->ep_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static inline void evq__unlock(struct evq *q)
{
	__atomic_store_n(&q->ep_lock, 0, __ATOMIC_RELEASE);
}

#endif /* EVQ_PRIVATE_H */
