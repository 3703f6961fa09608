// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: the blocking-sendfile designs, the peers users pick
 * today.
 *
 * One thread: the classic event loop (nginx without thread pools).
 * Non-blocking sockets, edge-triggered epoll, sendfile(2) straight from
 * the loop.  A full socket returns EAGAIN and the loop moves on; a
 * page-cache miss does not return at all until the disk has answered,
 * and every other connection waits meanwhile: the head-of-line blocking
 * this benchmark measures.
 *
 * A pool of N threads: the same loop run by N threads over one epoll set
 * with EPOLLONESHOT, so each connection is served by one thread at a time
 * and re-armed when that thread is done with it.  A miss blocks one
 * thread; the others go on, until N misses are in flight at once.  No
 * hand-off queue between threads: the thread that sees the event does the
 * work, which is the cheapest pool there is.
 *
 * A connection gets one reply per turn, as in the evq loop: the single
 * thread puts it at the back of a run queue, a pool re-arms it for
 * EPOLLIN, so a client that answers fast cannot keep a thread to itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>

#include "sfb.h"

#define STOP_KEY	UINT32_MAX
#define MAX_EVENTS	64

struct ep_conn {
	int fd;
	bool queued;		/* one thread: on the run queue */
	bool sending;
	uint32_t file;
	off_t off, end;
	struct sfb_rbuf rb;
};

struct ep_srv {
	struct sfb_server *s;
	struct ep_conn *c;
	int ep, stopfd;
	bool oneshot;
	unsigned int live;		/* connections not closed yet */
	pthread_mutex_t lock;		/* merging the threads' counters */
	unsigned int *runq;		/* one thread: waiting for a turn */
	unsigned int rq_head, rq_len;
};

enum { WANT_IN, WANT_OUT, REPLIED, CLOSED, FAILED };

/* Serve connection i as far as it goes without waiting on its socket. */
static int ep_advance(struct ep_srv *e, unsigned int i,
		      struct sfb_srv_stats *st)
{
	struct sfb_server *s = e->s;
	struct ep_conn *c = &e->c[i];

	if (c->fd < 0)
		return CLOSED;
	for (;;) {
		int r;

		while (c->sending && c->off < c->end) {
			/* Blocks right here on a page-cache miss. */
			ssize_t n = sendfile(c->fd, s->fs->files[c->file].fd,
					     &c->off, (size_t)(c->end - c->off));

			st->sends++;
			if (n < 0 && errno == EAGAIN) {
				st->sock_full++;
				return WANT_OUT;
			}
			if (n <= 0) {
				sfb_srv_error(s, "sendfile: %s",
					      n ? strerror(errno) : "file ended");
				return FAILED;
			}
		}
		if (c->sending) {
			c->sending = false;
			st->requests++;
			st->bytes += (uint64_t)c->end;
			return REPLIED;
		}
		r = sfb_read_req(s, c->fd, &c->rb);
		if (r == 0)
			return WANT_IN;
		if (r == -1) {
			/* Closing removes it from the epoll set too. */
			close(c->fd);
			s->fds[i] = -1;
			c->fd = -1;
			if (__atomic_sub_fetch(&e->live, 1, __ATOMIC_ACQ_REL) == 0)
				eventfd_write(e->stopfd, 1);
			return CLOSED;
		}
		if (r < 0 || sfb_check_req(s, &c->rb.req))
			return FAILED;
		c->file = c->rb.req.file;
		c->off = 0;
		c->end = s->fs->files[c->file].size;
		c->sending = true;
	}
}

/* What to do with connection ci after ep_advance(); false on failure. */
static bool ep_after(struct ep_srv *e, unsigned int ci, int r)
{
	struct epoll_event re = { .data.u32 = ci };

	if (r == FAILED)
		return false;
	if (r == CLOSED)
		return true;
	if (!e->oneshot) {
		/* Edge-triggered: only a finished reply needs a turn. */
		if (r == REPLIED && !e->c[ci].queued) {
			e->c[ci].queued = true;
			e->runq[(e->rq_head + e->rq_len++) % e->s->nr] = ci;
		}
		return true;
	}
	re.events = (r == WANT_OUT ? EPOLLOUT : EPOLLIN) | EPOLLRDHUP |
		    EPOLLONESHOT;
	if (epoll_ctl(e->ep, EPOLL_CTL_MOD, e->c[ci].fd, &re) < 0) {
		sfb_srv_error(e->s, "epoll_ctl: %s", strerror(errno));
		return false;
	}
	return true;
}

static void *ep_worker(void *arg)
{
	struct ep_srv *e = arg;
	struct sfb_srv_stats st = { 0 };
	struct epoll_event ev[MAX_EVENTS];
	bool stop = false;

	while (!stop) {
		unsigned int k, turns = e->rq_len;
		int n, i;

		/* Do not sleep while connections wait for their turn. */
		n = epoll_wait(e->ep, ev, e->oneshot ? 1 : MAX_EVENTS,
			       turns ? 0 : -1);
		st.waits++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sfb_srv_error(e->s, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n && !stop; i++) {
			unsigned int ci = ev[i].data.u32;

			if (ci == STOP_KEY)
				stop = true;
			else if (!ep_after(e, ci, ep_advance(e, ci, &st)))
				stop = true;
		}
		for (k = 0; k < turns && e->rq_len && !stop; k++) {
			unsigned int ci = e->runq[e->rq_head];

			e->rq_head = (e->rq_head + 1) % e->s->nr;
			e->rq_len--;
			e->c[ci].queued = false;
			if (!ep_after(e, ci, ep_advance(e, ci, &st)))
				stop = true;
		}
	}
	/* After a failure, make sure the rest of the pool leaves too. */
	if (e->s->err[0])
		eventfd_write(e->stopfd, 1);
	pthread_mutex_lock(&e->lock);
	e->s->st.requests += st.requests;
	e->s->st.bytes += st.bytes;
	e->s->st.sends += st.sends;
	e->s->st.waits += st.waits;
	e->s->st.sock_full += st.sock_full;
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int sfb_serve_epoll(struct sfb_server *s)
{
	struct ep_srv e = { .s = s, .oneshot = s->threads > 1, .live = s->nr };
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = STOP_KEY };
	pthread_t *th = NULL;
	unsigned int i, started = 0;
	int ret = -1;

	pthread_mutex_init(&e.lock, NULL);
	e.c = calloc(s->nr, sizeof(*e.c));
	e.runq = calloc(s->nr, sizeof(*e.runq));
	e.ep = epoll_create1(EPOLL_CLOEXEC);
	e.stopfd = eventfd(0, EFD_CLOEXEC);
	if (!e.c || !e.runq || e.ep < 0 || e.stopfd < 0) {
		sfb_srv_error(s, "setup: %s", strerror(errno));
		goto out;
	}
	/* Level-triggered, so every thread of a pool sees it in turn. */
	if (epoll_ctl(e.ep, EPOLL_CTL_ADD, e.stopfd, &ev) < 0)
		goto ctl_err;
	for (i = 0; i < s->nr; i++) {
		e.c[i].fd = s->fds[i];
		ev.data.u32 = i;
		ev.events = EPOLLIN | EPOLLRDHUP |
			    (e.oneshot ? EPOLLONESHOT : EPOLLOUT | EPOLLET);
		if (epoll_ctl(e.ep, EPOLL_CTL_ADD, s->fds[i], &ev) < 0)
			goto ctl_err;
	}
	if (s->threads <= 1) {
		s->ready(s);
		ep_worker(&e);
	} else {
		th = calloc(s->threads, sizeof(*th));
		if (!th) {
			sfb_srv_error(s, "no memory for %u threads",
				      s->threads);
			goto out;
		}
		for (started = 0; started < s->threads; started++) {
			int err = pthread_create(&th[started], NULL, ep_worker,
						 &e);

			if (err) {
				sfb_srv_error(s, "pthread_create: %s",
					      strerror(err));
				break;
			}
		}
		if (started == s->threads)
			s->ready(s);
		for (i = 0; i < started; i++)
			pthread_join(th[i], NULL);
	}
	ret = s->err[0] ? -1 : 0;
	goto out;
ctl_err:
	sfb_srv_error(s, "epoll_ctl: %s", strerror(errno));
out:
	free(th);
	if (e.ep >= 0)
		close(e.ep);
	if (e.stopfd >= 0)
		close(e.stopfd);
	free(e.c);
	free(e.runq);
	pthread_mutex_destroy(&e.lock);
	return ret;
}
