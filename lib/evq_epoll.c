// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The epoll backend: the same queue API on epoll(7) where /dev/evq is
 * absent or not wanted.  epoll_wait() fills a buffer of ring_entries
 * events that stands in for the completion ring; evq_harvest() drains it.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evq_private.h"

/* Events fetched per epoll_wait(): bounded so the buffer lock is short. */
#define EVQ__EP_CHUNK	256U

int evq__ep_open(struct evq *q, unsigned int entries)
{
	unsigned int n = 1;

	/* Same limit and rounding as the module, so callers see one size. */
	if (entries > EVQ__EP_MAX_ENTRIES)
		return -EINVAL;
	while (n < entries)
		n <<= 1;

	q->ep_events = calloc(n, sizeof(struct epoll_event));
	if (!q->ep_events)
		return -ENOMEM;
	q->fd = epoll_create1(EPOLL_CLOEXEC);
	if (q->fd < 0) {
		int err = -errno;

		free(q->ep_events);
		q->ep_events = NULL;
		return err;
	}
	q->backend = EVQ_BACKEND_EPOLL;
	q->ring_entries = n;
	q->ring_mask = n - 1;
	return 0;
}

void evq__ep_close(struct evq *q)
{
	/* First: its helpers post into this queue until they are joined. */
	evq__ep_sf_close(q);
	free(q->ep_events);
	q->ep_events = NULL;
}

/* The module's per-entry validation, as far as epoll can mirror it. */
static int evq__ep_check(const struct evq_ctl *c)
{
	if (c->resv || (c->flags & ~EVQ_WATCH_MODES) ||
	    (c->events & ~EVQ__EVENTS_VALID))
		return -EINVAL;
	switch (c->op) {
	case EVQ_CTL_DEL:
		return 0;
	case EVQ_CTL_MOD:
		if (c->flags & EVQ_WATCH_EXCLUSIVE)
			return -EINVAL;
		/* fall through */
	case EVQ_CTL_ADD:
		/* The sendfile emulation's wake-up travels under this value. */
		return c->user_data == EVQ__EP_SF_DATA ? -EINVAL : 0;
	}
	return -EINVAL;
}

static int evq__ep_ctl_one(struct evq *q, const struct evq_ctl *c)
{
	static const int ops[] = {
		[EVQ_CTL_ADD] = EPOLL_CTL_ADD,
		[EVQ_CTL_MOD] = EPOLL_CTL_MOD,
		[EVQ_CTL_DEL] = EPOLL_CTL_DEL,
	};
	struct epoll_event ev;
	int err;

	err = evq__ep_check(c);
	if (err)
		return err;
	memset(&ev, 0, sizeof(ev));
	ev.events = c->events;
	if (c->flags & EVQ_WATCH_EDGE)
		ev.events |= EPOLLET;
	if (c->flags & EVQ_WATCH_ONESHOT)
		ev.events |= EPOLLONESHOT;
	if (c->flags & EVQ_WATCH_EXCLUSIVE)
		ev.events |= EPOLLEXCLUSIVE;
	ev.data.u64 = c->user_data;
	if (epoll_ctl(q->fd, ops[c->op], c->fd, &ev) < 0)
		return -errno;
	return 0;
}

int evq__ep_ctl(struct evq *q, struct evq_ctl *v, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		v[i].res = evq__ep_ctl_one(q, &v[i]);
	return (int)nr;
}

static int64_t evq__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static unsigned int evq__ep_avail(struct evq *q)
{
	unsigned int n;

	evq__lock(q);
	n = q->ep_nr - q->ep_pos;
	evq__unlock(q);
	return n;
}

/* Entries a harvest would return: buffered events and sendfile completions. */
static unsigned int evq__ep_ready(struct evq *q)
{
	return evq__ep_avail(q) + evq__ep_sf_pending(q);
}

/*
 * Take the sendfile emulation's wake-up out of a fetched chunk: it is not
 * an event of the caller's.  Returns the entries left; *sf is set when it
 * was there.
 */
static unsigned int evq__ep_filter(struct epoll_event *ev, unsigned int n,
				   bool *sf)
{
	unsigned int i, k = 0;

	*sf = false;
	for (i = 0; i < n; i++) {
		if (ev[i].data.u64 == EVQ__EP_SF_DATA)
			*sf = true;
		else
			ev[k++] = ev[i];
	}
	return k;
}

/*
 * Add fetched events to the buffer.  A level-mode watch whose entry is
 * still buffered is reported again by the next epoll_wait(); the module
 * does not re-post an unconsumed entry, so merge by user_data instead of
 * handing the caller a duplicate.
 */
static unsigned int evq__ep_append(struct evq *q,
				   const struct epoll_event *ev, unsigned int n)
{
	struct epoll_event *buf = q->ep_events;
	unsigned int i, j, old, added;

	evq__lock(q);
	if (q->ep_pos) {
		memmove(buf, buf + q->ep_pos,
			(q->ep_nr - q->ep_pos) * sizeof(*buf));
		q->ep_nr -= q->ep_pos;
		q->ep_pos = 0;
	}
	old = q->ep_nr;
	for (i = 0; i < n; i++) {
		for (j = 0; j < old; j++) {
			if (buf[j].data.u64 == ev[i].data.u64) {
				buf[j].events |= ev[i].events;
				break;
			}
		}
		/* Room was checked before the fetch; stay safe if it shrank. */
		if (j == old && q->ep_nr < q->ring_entries)
			buf[q->ep_nr++] = ev[i];
	}
	added = q->ep_nr - old;
	evq__unlock(q);
	return added;
}

/*
 * One epoll_wait() into a private chunk, then into the buffer.  Returns
 * the number of new buffer entries, plus one when the sendfile emulation
 * was woken and ran (it consumes its own readiness, so its event is never
 * a mere re-report), or -errno; *got is the number of events epoll
 * returned, and *more is set when the chunk came back full of new
 * entries, so more may be ready.  The chunk is private so that several
 * threads may sleep here at once (evq_wait_exclusive()).
 */
static int evq__ep_fetch(struct evq *q, int timeout_ms, bool *more,
			 unsigned int *got)
{
	struct epoll_event chunk[EVQ__EP_CHUNK];
	unsigned int room, added, kept;
	bool sf;
	int n;

	*more = false;
	*got = 0;
	room = q->ring_entries - evq__ep_avail(q);
	if (!room)
		return 0;
	if (room > EVQ__EP_CHUNK)
		room = EVQ__EP_CHUNK;
	n = epoll_wait(q->fd, chunk, (int)room, timeout_ms);
	if (n < 0)
		return -errno;
	*got = (unsigned int)n;
	kept = evq__ep_filter(chunk, (unsigned int)n, &sf);
	added = evq__ep_append(q, chunk, kept) + sf;
	*more = n == (int)room && added == room;
	/* Sends continue and completions post here, in the caller's call. */
	if (sf)
		evq__ep_sf_drive(q);
	return (int)added;
}

/*
 * epoll reports a ready level-mode watch on every call, even while its
 * entry sits unharvested in the buffer, so a wait for more entries than
 * are buffered would spin.  Sleep a little between such fetches instead.
 */
static int evq__ep_backoff(int64_t deadline)
{
	struct timespec ts = { .tv_nsec = 1000000 };
	int64_t left;

	if (deadline) {
		left = deadline - evq__now_ns();
		if (left <= 0)
			return 0;
		if (left < ts.tv_nsec)
			ts.tv_nsec = (long)left;
	}
	if (nanosleep(&ts, NULL) < 0)
		return -errno;
	return 0;
}

/*
 * Milliseconds left until deadline, rounded up: epoll_wait() must not
 * return before the caller's timeout.  -1 when the deadline has passed.
 */
static int evq__left_ms(int64_t deadline)
{
	int64_t left = deadline - evq__now_ns();

	if (left <= 0)
		return -1;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int evq__ep_wait(struct evq *q, unsigned int min, int64_t timeout_ns)
{
	bool nonblock = !min || !timeout_ns;
	bool polled = false, more = false, dup = false;
	int64_t deadline = 0;
	unsigned int avail, got;
	int ms, n;

	if (min > q->ring_entries)
		return -EINVAL;
	if (timeout_ns > 0) {
		deadline = evq__now_ns();
		/* Saturate: a huge timeout is as good as none. */
		deadline = timeout_ns > INT64_MAX - deadline ?
			   INT64_MAX : deadline + timeout_ns;
	}

	for (;;) {
		avail = evq__ep_ready(q);
		/* Enough already buffered: no system call, as with the ring. */
		if (!polled && avail && avail >= min)
			return (int)avail;
		if (polled && !more && (avail >= min || nonblock))
			return (int)avail;

		if (more || nonblock) {
			ms = 0;
		} else if (timeout_ns < 0) {
			ms = -1;
		} else {
			ms = evq__left_ms(deadline);
			if (ms < 0)
				return (int)avail;
		}
		if (dup && ms) {
			n = evq__ep_backoff(deadline);
			if (n < 0)
				return n;
			ms = 0;
		}
		n = evq__ep_fetch(q, ms, &more, &got);
		if (n < 0)
			return n;
		/* Only re-reports of buffered entries: nothing new woke us. */
		dup = got && !n;
		polled = true;
	}
}

int evq__ep_harvest(struct evq *q, struct evq_cqe *out, unsigned int max)
{
	const struct epoll_event *buf = q->ep_events;
	unsigned int n = 0;
	int ret;

	/*
	 * Nothing reaches the buffer without a system call: fetch once,
	 * without sleeping, so harvest loops work as on the ring.
	 */
	if (!evq__ep_ready(q)) {
		unsigned int got;
		bool more;

		ret = evq__ep_fetch(q, 0, &more, &got);
		if (ret < 0)
			return ret;
	}

	/* Operation completions first: they are final, readiness may recur. */
	n = evq__ep_sf_take(q, out, max);
	evq__lock(q);
	while (q->ep_pos < q->ep_nr && n < max) {
		out[n].user_data = buf[q->ep_pos].data.u64;
		out[n].res = (__s32)buf[q->ep_pos].events;
		out[n].flags = EVQ_CQE_READY;
		n++;
		q->ep_pos++;
	}
	if (q->ep_pos == q->ep_nr)
		q->ep_pos = q->ep_nr = 0;
	evq__unlock(q);
	return (int)n;
}
