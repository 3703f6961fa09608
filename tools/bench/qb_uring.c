// SPDX-License-Identifier: GPL-2.0
/*
 * The io_uring side: one multishot poll (io_uring_prep_poll_multishot)
 * per watched fd, submitted in batches of the submission ring's size;
 * completions are read from the mapped completion ring, with one
 * io_uring_enter() to wait only when it is empty.
 *
 * A multishot poll posts a completion for every wake-up of the file, not
 * while it stays ready: it is edge-like, so the sweep compares it with
 * evq's EVQ_WATCH_EDGE and EPOLLET.  A completion without
 * IORING_CQE_F_MORE means the poll ended (the completion ring was full,
 * say) and later events would be lost: the run fails rather than go on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <liburing.h>

#include "qb.h"

/* Submission ring: the registration batch size. */
#define SQ_ENTRIES	4096

static unsigned int sq_entries(unsigned int n)
{
	unsigned int r = 8;

	while (r < n && r < SQ_ENTRIES)
		r <<= 1;
	return r;
}

static int uring_side_create(struct qb_side *s, unsigned int n, bool edge)
{
	struct io_uring_params p;
	struct io_uring *ring;
	unsigned int sq = sq_entries(n);
	int ret;

	ring = calloc(1, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	memset(&p, 0, sizeof(p));
	/* Default task running: how most programs set a ring up. */
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = qb_ring_entries(n);
	if (p.cq_entries < 2 * sq)
		p.cq_entries = 2 * sq;
	ret = io_uring_queue_init_params(sq, ring, &p);
	if (ret) {
		free(ring);
		return ret;
	}
	s->priv = ring;
	s->n = n;
	s->edge = edge;
	return 0;
}

/* io_uring_submit(), counted, and its thread CPU kept for the probe. */
static int submit_counted(struct qb_side *s, struct io_uring *ring,
			  unsigned int want)
{
	uint64_t t0 = qb_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	int ret = io_uring_submit(ring);

	s->reg_enter_ns += qb_clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
	s->reg_enters++;
	if (ret < 0)
		return ret;
	return (unsigned int)ret == want ? 0 : -EIO;
}

static int uring_side_watch(struct qb_side *s)
{
	struct io_uring *ring = s->priv;
	struct io_uring_sqe *sqe;
	unsigned int i, queued = 0;
	int ret;

	for (i = 0; i < s->n; i++) {
		sqe = io_uring_get_sqe(ring);
		if (!sqe) {
			ret = submit_counted(s, ring, queued);
			if (ret)
				return ret;
			queued = 0;
			sqe = io_uring_get_sqe(ring);
			if (!sqe)
				return -EBUSY;
		}
		io_uring_prep_poll_multishot(sqe, s->p->rfd[i], POLLIN);
		io_uring_sqe_set_data64(sqe, i);
		queued++;
	}
	return queued ? submit_counted(s, ring, queued) : 0;
}

/* A completion that is not a live poll's readiness is an error. */
static int check_cqe(struct qb_side *s, const struct io_uring_cqe *cqe)
{
	if (cqe->res < 0) {
		fprintf(stderr, "queue_bench: io_uring: poll on fd index %llu: "
			"%s\n", (unsigned long long)cqe->user_data,
			strerror(-cqe->res));
		return -1;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		fprintf(stderr, "queue_bench: io_uring: multishot poll on fd "
			"index %llu ended (%u watched): events would be lost\n",
			(unsigned long long)cqe->user_data, s->n);
		return -1;
	}
	return 0;
}

/* Read what the completion ring holds; returns the bytes read or -1. */
static int reap(struct qb_side *s, struct io_uring *ring, unsigned int *seen)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	int got = 0, r = 0;

	io_uring_for_each_cqe(ring, head, cqe) {
		n++;
		r = check_cqe(s, cqe);
		if (r)
			break;
		r = qb_drain_one(s, cqe->user_data);
		if (r < 0)
			break;
		got += r;
	}
	io_uring_cq_advance(ring, n);
	s->cnt.events += n;
	*seen = n;
	return r < 0 ? -1 : got;
}

static int uring_side_collect(struct qb_side *s, unsigned int want)
{
	struct __kernel_timespec ts = { .tv_sec = QB_HANG_TIMEOUT_MS / 1000 };
	struct io_uring *ring = s->priv;
	struct io_uring_cqe *cqe;
	unsigned int got = 0, seen;
	int r;

	while (got < want) {
		r = reap(s, ring, &seen);
		if (r < 0)
			return -1;
		got += r;
		if (seen || got >= want)
			continue;
		s->cnt.waits++;
		r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		if (r == -ETIME) {
			qb_report_hang(s, got, want);
			return -1;
		}
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "queue_bench: io_uring wait: %s\n",
				strerror(-r));
			return -1;
		}
	}
	return 0;
}

static void uring_side_close(struct qb_side *s)
{
	struct io_uring *ring = s->priv;

	/*
	 * Closing the ring takes every poll off its pipe before close()
	 * returns (the cancellations' task work runs on the way out); what
	 * is left, freeing the ring, is a kernel worker's, which the sweep
	 * lets run before the next side starts.  One IORING_OP_ASYNC_CANCEL
	 * with IORING_ASYNC_CANCEL_ALL | _ANY would do the same in the ring,
	 * but on 6.1 it searches the poll table from the start for each
	 * request: 0.6 s for 10,000 polls, minutes for 100,000.
	 */
	if (ring) {
		io_uring_queue_exit(ring);
		free(ring);
	}
	s->priv = NULL;
	s->n = 0;
}

static unsigned int uring_reg_syscalls(unsigned int n)
{
	return (n + sq_entries(n) - 1) / sq_entries(n);
}

const struct qb_side_ops qb_uring_ops = {
	.create = uring_side_create,
	.watch = uring_side_watch,
	.collect = uring_side_collect,
	.close = uring_side_close,
	.reg_syscalls = uring_reg_syscalls,
};
