// SPDX-License-Identifier: GPL-2.0
/*
 * The poll side: one pollfd array over every watched fd, passed whole to
 * each poll() call and scanned for revents after it.  poll() is
 * level-triggered by nature and keeps nothing in the kernel between
 * calls, so "registering" is filling the array, and each call pays for
 * every fd watched: that is the design being compared, not a flaw of
 * this loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb.h"

static int poll_side_create(struct qb_side *s, unsigned int n, bool edge)
{
	s->priv = calloc(n, sizeof(struct pollfd));
	if (!s->priv)
		return -ENOMEM;
	s->n = n;
	s->edge = edge;
	return 0;
}

static int poll_side_watch(struct qb_side *s)
{
	struct pollfd *pfd = s->priv;
	unsigned int i;

	for (i = 0; i < s->n; i++) {
		pfd[i].fd = s->p->rfd[i];
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	return 0;
}

/*
 * Reads the fds poll() flagged, stopping the scan once all @ready are
 * found, as a careful caller would.  Returns the bytes read or -1.
 */
static int drain_ready(struct qb_side *s, int ready)
{
	struct pollfd *pfd = s->priv;
	unsigned int i;
	int seen = 0, got = 0, r;

	for (i = 0; i < s->n && seen < ready; i++) {
		if (!pfd[i].revents)
			continue;
		seen++;
		r = qb_drain_one(s, i);
		if (r < 0)
			return -1;
		got += r;
	}
	return got;
}

static int poll_side_collect(struct qb_side *s, unsigned int want)
{
	unsigned int got = 0;
	int n, r;

	while (got < want) {
		s->cnt.waits++;
		n = poll(s->priv, s->n, QB_HANG_TIMEOUT_MS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("queue_bench: poll");
			return -1;
		}
		if (!n) {
			qb_report_hang(s, got, want);
			return -1;
		}
		s->cnt.events += n;
		r = drain_ready(s, n);
		if (r < 0)
			return -1;
		got += r;
	}
	return 0;
}

static void poll_side_close(struct qb_side *s)
{
	free(s->priv);
	s->priv = NULL;
	s->n = 0;
}

static unsigned int poll_reg_syscalls(unsigned int n)
{
	(void)n;
	return 0;
}

const struct qb_side_ops qb_poll_ops = {
	.create = poll_side_create,
	.watch = poll_side_watch,
	.collect = poll_side_collect,
	.close = poll_side_close,
	.reg_syscalls = poll_reg_syscalls,
};
