// SPDX-License-Identifier: GPL-2.0
/*
 * What every side shares: the pipes (one set, watched by one side at a
 * time), making fds ready, draining them, and the baseline side "none",
 * which does the same writes and reads with nothing watching.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qb.h"

int qb_pipes_open(struct qb_pipes *p, unsigned int n)
{
	unsigned int i;
	int fds[2];

	p->n = 0;
	p->rfd = calloc(n, sizeof(int));
	p->wfd = calloc(n, sizeof(int));
	if (!p->rfd || !p->wfd)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
			return -errno;
		p->rfd[i] = fds[0];
		p->wfd[i] = fds[1];
		p->n++;
	}
	return 0;
}

void qb_pipes_close(struct qb_pipes *p)
{
	unsigned int i;

	for (i = 0; i < p->n; i++) {
		close(p->rfd[i]);
		close(p->wfd[i]);
	}
	free(p->rfd);
	free(p->wfd);
	p->n = 0;
}

static const char *const kind_names[QB_NR_KINDS] = {
	[QB_NONE] = "none", [QB_EVQ] = "evq", [QB_EPOLL] = "epoll",
	[QB_POLL] = "poll", [QB_URING] = "io_uring",
};

/* The kinds waitstat reports the side's wait calls under. */
static const char *const wait_kinds[QB_NR_KINDS] = {
	[QB_EVQ] = "evq", [QB_EPOLL] = "epoll", [QB_POLL] = "poll",
	[QB_URING] = "io_uring",
};

static const struct qb_side_ops *const kind_ops[QB_NR_KINDS] = {
	[QB_NONE] = &qb_none_ops, [QB_EVQ] = &qb_evq_ops,
	[QB_EPOLL] = &qb_epoll_ops, [QB_POLL] = &qb_poll_ops,
	[QB_URING] = &qb_uring_ops,
};

const char *qb_kind_name(enum qb_kind k)
{
	return kind_names[k];
}

void qb_side_init(struct qb_side *s, enum qb_kind k, struct qb_pipes *p)
{
	memset(s, 0, sizeof(*s));
	s->kind = k;
	s->name = kind_names[k];
	s->wait_kind = wait_kinds[k];
	s->ops = kind_ops[k];
	s->p = p;
}

int qb_side_open(struct qb_side *s, unsigned int n, bool edge)
{
	int err = s->ops->create(s, n, edge);

	if (!err)
		err = s->ops->watch(s);
	if (!err)
		return 0;
	fprintf(stderr, "queue_bench: %s: watching %u fds: %s\n", s->name, n,
		strerror(-err));
	s->ops->close(s);
	return -1;
}

int qb_fill(struct qb_side *s, unsigned int active)
{
	unsigned int i, idx;

	for (i = 0; i < active; i++) {
		idx = (s->next + i) % s->n;
		if (write(s->p->wfd[idx], "x", 1) != 1) {
			fprintf(stderr, "queue_bench: %s: write: %s\n",
				s->name, strerror(errno));
			return -1;
		}
	}
	s->cnt.writes += active;
	return 0;
}

int qb_drain_one(struct qb_side *s, uint64_t idx)
{
	char buf[16];
	ssize_t n;

	if (idx >= s->n) {
		fprintf(stderr, "queue_bench: %s: bad user_data %" PRIu64 "\n",
			s->name, idx);
		return -1;
	}
	s->cnt.reads++;
	n = read(s->p->rfd[idx], buf, sizeof(buf));
	if (n == 1)
		return 1;
	if (n < 0 && errno == EAGAIN) {
		s->cnt.spurious++;
		return 0;
	}
	fprintf(stderr, "queue_bench: %s: read fd index %" PRIu64 ": %zd %s\n",
		s->name, idx, n, n < 0 ? strerror(errno) : "bytes");
	return -1;
}

void qb_report_hang(struct qb_side *s, unsigned int got, unsigned int want)
{
	fprintf(stderr,
		"queue_bench: %s: no event for %d ms with %u of %u harvested "
		"(%u watched, round starting at fd index %u)\n",
		s->name, QB_HANG_TIMEOUT_MS, got, want, s->n, s->next);
}

int qb_round(struct qb_side *s, unsigned int active)
{
	if (qb_fill(s, active) || s->ops->collect(s, active))
		return -1;
	s->next = (s->next + active) % s->n;
	return 0;
}

/* ---- none: the baseline ---- */

static int none_create(struct qb_side *s, unsigned int n, bool edge)
{
	s->n = n;
	s->edge = edge;
	return 0;
}

static int none_watch(struct qb_side *s)
{
	(void)s;
	return 0;
}

/* The same reads the queues make, each byte read straight back. */
static int none_collect(struct qb_side *s, unsigned int want)
{
	unsigned int i, idx;

	for (i = 0; i < want; i++) {
		idx = (s->next + i) % s->n;
		if (qb_drain_one(s, idx) != 1) {
			fprintf(stderr, "queue_bench: none: fd index %u: the "
				"byte just written is not there\n", idx);
			return -1;
		}
	}
	return 0;
}

static void none_close(struct qb_side *s)
{
	s->n = 0;
}

static unsigned int none_reg_syscalls(unsigned int n)
{
	(void)n;
	return 0;
}

const struct qb_side_ops qb_none_ops = {
	.create = none_create,
	.watch = none_watch,
	.collect = none_collect,
	.close = none_close,
	.reg_syscalls = none_reg_syscalls,
};

/*
 * Ring size for a queue watching n fds: room for twice the largest round
 * of the sweep, so that neither evq nor io_uring ever overflows (evq would
 * hold the rest in the kernel, io_uring would end a multishot poll) and
 * both are measured on their fast path; at least 1024, as before.
 */
unsigned int qb_ring_entries(unsigned int n)
{
	unsigned int i, maxpct = 1, want, r = 1024;

	for (i = 0; i < qb_opt.nr_pct; i++)
		if (qb_opt.pct[i] > maxpct)
			maxpct = qb_opt.pct[i];
	want = (unsigned int)((uint64_t)n * maxpct / 100) * 2;
	while (r < want && r < 65536)
		r <<= 1;
	return r;
}
