// SPDX-License-Identifier: GPL-2.0
/*
 * The evq side: libevq on /dev/evq (EVQ_OPEN_KMOD), one evq_ctl() batch
 * to watch, harvesting from the mapped ring with the inline
 * evq_harvest(), evq_wait() only when the ring is empty.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "libevq.h"
#include "qb.h"

/* The module's documented default max_batch. */
#define CTL_CHUNK	65536

struct evq_priv {
	struct evq q;
};

/* Apply a long change list in chunks the module accepts. */
static int ctl_all(struct evq *q, struct evq_ctl *v, unsigned int nr)
{
	unsigned int done = 0, i, chunk;
	int ret;

	while (done < nr) {
		chunk = nr - done < CTL_CHUNK ? nr - done : CTL_CHUNK;
		ret = evq_ctl(q, v + done, chunk);
		if (ret < 0)
			return ret;
		if ((unsigned int)ret != chunk)
			return -EIO;
		done += chunk;
	}
	for (i = 0; i < nr; i++)
		if (v[i].res)
			return v[i].res;
	return 0;
}

/*
 * One change list for the n fds, built and applied in one go: building
 * it is part of what a program pays to register, as epoll's callers pay
 * for filling their struct epoll_event.
 */
static int ctl_fds(struct qb_side *s, uint32_t op, uint32_t flags)
{
	struct evq_priv *e = s->priv;
	struct evq_ctl *v;
	unsigned int i;
	int ret;

	v = calloc(s->n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		v[i].op = op;
		v[i].fd = s->p->rfd[i];
		v[i].events = op == EVQ_CTL_DEL ? 0 : EPOLLIN;
		v[i].flags = flags;
		v[i].user_data = i;
	}
	ret = ctl_all(&e->q, v, s->n);
	free(v);
	return ret;
}

static int evq_side_create(struct qb_side *s, unsigned int n, bool edge)
{
	struct evq_priv *e;
	int ret;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	ret = evq_open(&e->q, qb_ring_entries(n), EVQ_OPEN_KMOD);
	if (ret) {
		free(e);
		return ret;
	}
	s->priv = e;
	s->n = n;
	s->edge = edge;
	return 0;
}

static int evq_side_watch(struct qb_side *s)
{
	return ctl_fds(s, EVQ_CTL_ADD, s->edge ? EVQ_WATCH_EDGE : 0);
}

/*
 * evq_harvest() enters the kernel (a zero-timeout EVQ_IOC_WAIT) only when
 * the ring is empty and the kernel flags events it still holds.  Look at
 * the same two words first, so the hidden system call is counted too.
 */
static int harvest_counted(struct evq *q, struct evq_cqe *out,
			   unsigned int max, struct qb_counts *c)
{
	unsigned int tail = __atomic_load_n(q->ktail, __ATOMIC_ACQUIRE);

	if (tail == *q->khead &&
	    (__atomic_load_n(q->kflags, __ATOMIC_ACQUIRE) &
	     EVQ_RING_NEED_ENTER))
		c->enters++;
	return evq_harvest(q, out, max);
}

static void report_ring(struct evq *q)
{
	fprintf(stderr,
		"queue_bench: evq ring: head %u tail %u flags %#x overflow %u\n",
		*q->khead, __atomic_load_n(q->ktail, __ATOMIC_ACQUIRE),
		__atomic_load_n(q->kflags, __ATOMIC_ACQUIRE),
		__atomic_load_n(q->koverflow, __ATOMIC_ACQUIRE));
}

/* Drain one harvested batch; returns the bytes read or -1. */
static int drain_cqes(struct qb_side *s, const struct evq_cqe *cqe, int n)
{
	int i, r, got = 0;

	for (i = 0; i < n; i++) {
		if ((cqe[i].flags & EVQ_CQE_TYPE_MASK) != EVQ_CQE_READY) {
			s->cnt.spurious++;
			continue;
		}
		r = qb_drain_one(s, cqe[i].user_data);
		if (r < 0)
			return -1;
		got += r;
	}
	return got;
}

static int evq_side_collect(struct qb_side *s, unsigned int want)
{
	struct evq_cqe cqe[QB_HARVEST_BATCH];
	struct evq_priv *e = s->priv;
	unsigned int got = 0;
	int n, r;

	while (got < want) {
		n = harvest_counted(&e->q, cqe, QB_HARVEST_BATCH, &s->cnt);
		if (n < 0) {
			fprintf(stderr, "queue_bench: evq_harvest: %s\n",
				strerror(-n));
			return -1;
		}
		if (!n) {
			s->cnt.waits++;
			n = evq_wait(&e->q, 1,
				     (int64_t)QB_HANG_TIMEOUT_MS * 1000000);
			if (n < 0 && n != -EINTR) {
				fprintf(stderr, "queue_bench: evq_wait: %s\n",
					strerror(-n));
				return -1;
			}
			if (!n) {
				qb_report_hang(s, got, want);
				report_ring(&e->q);
				return -1;
			}
			continue;
		}
		s->cnt.events += n;
		r = drain_cqes(s, cqe, n);
		if (r < 0)
			return -1;
		got += r;
	}
	return 0;
}

static int evq_side_unwatch(struct qb_side *s)
{
	return ctl_fds(s, EVQ_CTL_DEL, 0);
}

/* Closing the queue drops every watch left: nothing stays on a pipe. */
static void evq_side_close(struct qb_side *s)
{
	struct evq_priv *e = s->priv;

	if (e) {
		evq_close(&e->q);
		free(e);
	}
	s->priv = NULL;
	s->n = 0;
}

static unsigned int evq_reg_syscalls(unsigned int n)
{
	return (n + CTL_CHUNK - 1) / CTL_CHUNK;
}

const struct qb_side_ops qb_evq_ops = {
	.create = evq_side_create,
	.watch = evq_side_watch,
	.collect = evq_side_collect,
	.unwatch = evq_side_unwatch,
	.close = evq_side_close,
	.reg_syscalls = evq_reg_syscalls,
};
