/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libevq: the thin library over /dev/evq.
 *
 * One struct evq is one queue.  With the evq.ko backend, completions are
 * read straight from the mapped ring (evq_harvest() makes no system call
 * while entries are there); without /dev/evq the same API runs on epoll.
 * Every call returns 0 or a count on success and -errno on failure; errno
 * is not used.  A queue is meant to be used by one thread at a time.
 */
#ifndef LIBEVQ_H
#define LIBEVQ_H

#include <stdint.h>
#include <stddef.h>
#include <linux/evq.h>

#ifdef __cplusplus
extern "C" {
#endif

enum evq_backend {
	EVQ_BACKEND_KMOD = 1,	/* /dev/evq */
	EVQ_BACKEND_EPOLL = 2,	/* epoll fallback */
};

/* evq_open() flags */
#define EVQ_OPEN_KMOD	(1U << 0)	/* fail with -ENOENT rather than fall back */
#define EVQ_OPEN_EPOLL	(1U << 1)	/* use the epoll backend even if /dev/evq exists */

/*
 * Fields are public only so evq_harvest() can be inline; treat them as
 * private.
 */
struct evq {
	int fd;				/* /dev/evq or epoll fd */
	enum evq_backend backend;
	unsigned int *khead;
	const unsigned int *ktail;
	const unsigned int *kflags;
	const unsigned int *koverflow;
	unsigned int ring_mask;
	unsigned int ring_entries;
	const struct evq_cqe *cqes;
	void *ring;
	size_t ring_size;
	/* epoll backend */
	void *ep_events;		/* struct epoll_event[ring_entries] */
	unsigned int ep_nr, ep_pos;	/* buffered, not yet harvested */
	int ep_lock;			/* guards ep_*: exclusive waiters share q */
	void *ep_sf;			/* sendfile emulation state, or NULL */
};

int evq_open(struct evq *q, unsigned int entries, unsigned int flags);
void evq_close(struct evq *q);
int evq_fd(const struct evq *q);
const char *evq_backend_name(const struct evq *q);

/* Apply nr changes; each entry's res is set. Returns entries processed. */
int evq_ctl(struct evq *q, struct evq_ctl *v, unsigned int nr);
int evq_add(struct evq *q, int fd, uint32_t events, uint32_t flags,
	    uint64_t user_data);
int evq_mod(struct evq *q, int fd, uint32_t events, uint32_t flags,
	    uint64_t user_data);
int evq_del(struct evq *q, int fd);
/* Remove the watch on fd (if any) and close fd. */
int evq_unwatch_close(struct evq *q, int fd);

/*
 * Sleep until at least min entries can be harvested or timeout_ns passes
 * (negative: no limit; 0: do not sleep).  Returns the count available.
 */
int evq_wait(struct evq *q, unsigned int min, int64_t timeout_ns);
int evq_wait_exclusive(struct evq *q, unsigned int min, int64_t timeout_ns);

int evq_harvest_slow(struct evq *q, struct evq_cqe *out, unsigned int max);

/*
 * Send sf->count bytes of sf->in_fd from sf->offset to the TCP socket
 * sf->out_fd.  Synchronous (no EVQ_SF_ASYNC): sends what is in the page
 * cache without waiting for the disk or for socket space, returns the
 * bytes sent and sets sf->stop, sf->sent and sf->error.  Asynchronous:
 * returns 0 once started; one EVQ_CQE_SENDFILE entry reports the end.
 */
int evq_sendfile(struct evq *q, struct evq_sendfile *sf);
/* Cancel the operations started with user_data; returns how many. */
int evq_cancel(struct evq *q, uint64_t user_data);

/*
 * Copy up to max completions into out and consume them from the ring.
 * Entries are consumed before the caller acts on them, so a new edge on
 * the same fd is never coalesced into an entry already copied out.
 */
static inline int evq_harvest(struct evq *q, struct evq_cqe *out,
			      unsigned int max)
{
	unsigned int head, tail, n = 0;

	if (q->backend != EVQ_BACKEND_KMOD)
		return evq_harvest_slow(q, out, max);
	head = *q->khead;
	tail = __atomic_load_n(q->ktail, __ATOMIC_ACQUIRE);
	while (head != tail && n < max)
		out[n++] = q->cqes[head++ & q->ring_mask];
	if (n) {
		__atomic_store_n(q->khead, head, __ATOMIC_RELEASE);
		return (int)n;
	}
	if (__atomic_load_n(q->kflags, __ATOMIC_ACQUIRE) & EVQ_RING_NEED_ENTER)
		return evq_harvest_slow(q, out, max);
	return 0;
}

#ifdef __cplusplus
}
#endif
#endif /* LIBEVQ_H */
