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

/* sendfile emulation on the epoll backend (evq_ep_sendfile.c) */
int evq__ep_sendfile(struct evq *q, struct evq_sendfile *sf);
int evq__ep_cancel(struct evq *q, uint64_t user_data);

/*
 * The emulation's own events reach the queue's epoll set through one
 * nested epoll fd registered under this data value, so evq_ctl() on the
 * epoll backend refuses it as a watch's user_data: an entry with it could
 * not be told apart from the emulation's wake-up.
 */
#define EVQ__EP_SF_DATA		UINT64_MAX

/* The module's defaults for max_ops and sendfile_window. */
#define EVQ__EP_MAX_OPS		4096U
#define EVQ__EP_SF_WINDOW	(512U * 1024)

/* Called from the epoll backend (evq_epoll.c). */
void evq__ep_sf_close(struct evq *q);
unsigned int evq__ep_sf_pending(struct evq *q);
unsigned int evq__ep_sf_take(struct evq *q, struct evq_cqe *out,
			     unsigned int max);
void evq__ep_sf_drive(struct evq *q);

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
