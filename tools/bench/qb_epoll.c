// SPDX-License-Identifier: GPL-2.0
/*
 * The epoll side: epoll_ctl() and epoll_wait() called directly (not
 * libevq's epoll backend), as programs use epoll.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "qb.h"

/* The epoll fd lives in priv as an integer: it is all the state there is. */
static int epfd_of(const struct qb_side *s)
{
	return (int)(intptr_t)s->priv - 1;
}

static int epoll_side_create(struct qb_side *s, unsigned int n, bool edge)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return -errno;
	s->priv = (void *)(intptr_t)(fd + 1);
	s->n = n;
	s->edge = edge;
	return 0;
}

static int epoll_side_watch(struct qb_side *s)
{
	struct epoll_event ev;
	unsigned int i;

	for (i = 0; i < s->n; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | (s->edge ? EPOLLET : 0);
		ev.data.u64 = i;
		if (epoll_ctl(epfd_of(s), EPOLL_CTL_ADD, s->p->rfd[i], &ev) < 0)
			return -errno;
	}
	return 0;
}

static int epoll_side_collect(struct qb_side *s, unsigned int want)
{
	struct epoll_event ev[QB_HARVEST_BATCH];
	unsigned int got = 0;
	int i, n, r;

	while (got < want) {
		s->cnt.waits++;
		n = epoll_wait(epfd_of(s), ev, QB_HARVEST_BATCH,
			       QB_HANG_TIMEOUT_MS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("queue_bench: epoll_wait");
			return -1;
		}
		if (!n) {
			qb_report_hang(s, got, want);
			return -1;
		}
		s->cnt.events += n;
		for (i = 0; i < n; i++) {
			r = qb_drain_one(s, ev[i].data.u64);
			if (r < 0)
				return -1;
			got += r;
		}
	}
	return 0;
}

static int epoll_side_unwatch(struct qb_side *s)
{
	struct epoll_event ev = { 0 };
	unsigned int i;

	for (i = 0; i < s->n; i++)
		if (epoll_ctl(epfd_of(s), EPOLL_CTL_DEL, s->p->rfd[i], &ev) < 0)
			return -errno;
	return 0;
}

static void epoll_side_close(struct qb_side *s)
{
	if (s->priv)
		close(epfd_of(s));
	s->priv = NULL;
	s->n = 0;
}

static unsigned int epoll_reg_syscalls(unsigned int n)
{
	return n;
}

const struct qb_side_ops qb_epoll_ops = {
	.create = epoll_side_create,
	.watch = epoll_side_watch,
	.collect = epoll_side_collect,
	.unwatch = epoll_side_unwatch,
	.close = epoll_side_close,
	.reg_syscalls = epoll_reg_syscalls,
};
