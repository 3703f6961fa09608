// SPDX-License-Identifier: GPL-2.0
/*
 * The harvest sweep and the registration figures.
 *
 * All sides take turns on one set of pipes: a side creates its queue and
 * watches the first n pipes, runs its rounds, and removes everything
 * before the next side starts, so one side's writes never wake another
 * side's queue and 100,000 watched fds need 200,000 descriptors rather
 * than a set per side.  Each repetition rotates the order of the sides,
 * so that drift of the machine hits all of them alike.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qb.h"

/* Beyond this, /proc/stat is measuring some other program's work. */
#define MAX_GUEST_OVER_RUSAGE	2.0
/*
 * Idle time after a side drops its queue, so that what the kernel defers
 * (freeing watches after RCU, io_uring's exit worker) runs now and not
 * inside the next side's measured repetition.
 */
#define SETTLE_US		10000
/*
 * Aim this much above -t: a calibrated repetition lands up to 10% below
 * its aim (seen: 50 ticks aiming at 55), and one below 50 ticks sends
 * the whole point to the rusage fallback.
 */
#define CALIBRATION_MARGIN	1.2

static void settle(void)
{
	usleep(SETTLE_US);
}

static unsigned int active_of(unsigned int n, unsigned int pct)
{
	unsigned int a = (unsigned int)((unsigned long long)n * pct / 100);

	return a ? a : 1;
}

static int side_rounds(struct qb_side *s, unsigned int rounds,
		       unsigned int active)
{
	unsigned int i;

	for (i = 0; i < rounds; i++)
		if (qb_round(s, active))
			return -1;
	return 0;
}

/* Rounds of s that cost about ms of process CPU, estimated from n. */
static int scale_rounds(struct qb_side *s, unsigned int n, double ms,
			unsigned int active, unsigned int *out)
{
	uint64_t t0, dt;

	t0 = qb_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (side_rounds(s, n, active))
		return -1;
	dt = qb_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - t0;
	*out = (unsigned int)((double)n * ms * 1e6 / (double)(dt ? dt : 1)) + 1;
	return 0;
}

/*
 * Rounds per repetition for one side: enough that it spends target_ms of
 * CPU, so /proc/stat's 10 ms ticks stay a small error.  A first estimate
 * from a short run, checked by two runs of a quarter of the target: short
 * runs overestimate the cost per round (under TCG, code being translated
 * for the first time).  Each side gets its own count: poll at 1% costs
 * several times the others per event, and the same count for all would
 * spend most of the time budget on it.
 */
static int calibrate(struct qb_side *s, unsigned int active,
		     unsigned int *rounds)
{
	unsigned int n;

	if (scale_rounds(s, 8, 20, active, &n) ||
	    scale_rounds(s, n, qb_opt.target_ms / 4.0, active, &n) ||
	    scale_rounds(s, n, qb_opt.target_ms / 4.0, active, &n))
		return -1;
	*rounds = (unsigned int)(n * 4 * CALIBRATION_MARGIN) + 1;
	return 0;
}

static void counts_add(struct qb_counts *sum, const struct qb_counts *a,
		       const struct qb_counts *b)
{
	sum->writes += b->writes - a->writes;
	sum->reads += b->reads - a->reads;
	sum->waits += b->waits - a->waits;
	sum->enters += b->enters - a->enters;
	sum->events += b->events - a->events;
	sum->spurious += b->spurious - a->spurious;
}

static int run_rep(struct qb_side *s, struct qb_point_res *r,
		   unsigned int rep)
{
	struct qb_counts c0 = s->cnt;
	struct qb_sample a, b;

	qb_sample_take(&a);
	if (side_rounds(s, r->rounds, r->active))
		return -1;
	qb_sample_take(&b);
	qb_cost_of(&a, &b, (double)r->rounds * r->active, &r->cost[rep]);
	counts_add(&r->cnt, &c0, &s->cnt);
	return 0;
}

static int block_calibrate(struct qb_block *b)
{
	struct qb_side *s;
	unsigned int i, pi;

	for (i = 0; i < b->nr_sides; i++) {
		s = &b->sides[i];
		if (qb_side_open(s, b->n, b->edge))
			return -1;
		for (pi = 0; pi < b->nr_pct; pi++) {
			struct qb_point_res *r = &b->res[s->kind][pi];

			r->active = active_of(b->n, b->pct[pi]);
			if (calibrate(s, r->active, &r->rounds))
				goto fail;
		}
		s->ops->close(s);
		settle();
	}
	return 0;
fail:
	s->ops->close(s);
	return -1;
}

/* One repetition of one side: watch, every percentage, drop. */
static int block_side_rep(struct qb_block *b, struct qb_side *s,
			  unsigned int rep)
{
	unsigned int pi;
	int ret = 0;

	if (qb_side_open(s, b->n, b->edge))
		return -1;
	for (pi = 0; pi < b->nr_pct && !ret; pi++)
		ret = run_rep(s, &b->res[s->kind][pi], rep);
	s->ops->close(s);
	settle();
	return ret;
}

/*
 * /proc/stat unless a repetition had too few ticks to resolve, or (auto
 * only) the epoll side, which defers no work of its own, shows far more
 * guest-wide CPU than its own: then other load pollutes the count.
 */
static void choose_source(struct qb_block *b, unsigned int pi)
{
	const struct qb_point_res *ep = &b->res[QB_EPOLL][pi];
	double g[b->reps], p[b->reps];
	uint64_t min_ticks = UINT64_MAX;
	unsigned int i, r;

	for (i = 0; i < b->nr_sides; i++)
		for (r = 0; r < b->reps; r++)
			if (b->res[b->sides[i].kind][pi].cost[r].ticks <
			    min_ticks)
				min_ticks = b->res[b->sides[i].kind][pi]
						    .cost[r].ticks;
	b->min_ticks[pi] = min_ticks;
	b->why[pi] = "forced by -c";
	b->procstat[pi] = !strcmp(qb_opt.cpu_source, "procstat");
	if (strcmp(qb_opt.cpu_source, "auto"))
		return;
	b->procstat[pi] = false;
	if (min_ticks < QB_MIN_TICKS_PER_REP) {
		b->why[pi] = "too few /proc/stat ticks per repetition";
		return;
	}
	if (ep->done) {
		for (r = 0; r < b->reps; r++) {
			g[r] = ep->cost[r].guest;
			p[r] = ep->cost[r].proc;
		}
		if (qb_median(g, b->reps) >
		    MAX_GUEST_OVER_RUSAGE * qb_median(p, b->reps)) {
			b->why[pi] = "other load on the machine: /proc/stat "
				     "> 2x own CPU";
			return;
		}
	}
	b->why[pi] = "enough ticks per repetition";
	b->procstat[pi] = true;
}

int qb_block_run(struct qb_block *b)
{
	uint64_t t0 = qb_clock_ns(CLOCK_MONOTONIC);
	unsigned int i, k, r, pi;

	for (i = 0; i < b->nr_sides; i++)
		for (pi = 0; pi < b->nr_pct; pi++) {
			b->res[b->sides[i].kind][pi].cost =
				calloc(b->reps, sizeof(struct qb_cost));
			if (!b->res[b->sides[i].kind][pi].cost)
				return -1;
		}
	if (block_calibrate(b))
		return -1;
	for (r = 0; r < b->reps; r++)
		for (k = 0; k < b->nr_sides; k++)
			if (block_side_rep(b, &b->sides[(k + r) % b->nr_sides],
					   r))
				return -1;
	for (i = 0; i < b->nr_sides; i++)
		for (pi = 0; pi < b->nr_pct; pi++)
			b->res[b->sides[i].kind][pi].done = true;
	for (pi = 0; pi < b->nr_pct; pi++)
		choose_source(b, pi);
	b->secs = (double)(qb_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	return 0;
}

void qb_block_free(struct qb_block *b)
{
	unsigned int k, pi;

	for (k = 0; k < QB_NR_KINDS; k++)
		for (pi = 0; pi < QB_MAX_PCTS; pi++) {
			free(b->res[k][pi].cost);
			b->res[k][pi].cost = NULL;
		}
}

double qb_rep_cost(const struct qb_block *b, unsigned int pi,
		   const struct qb_point_res *r, unsigned int rep)
{
	return b->procstat[pi] ? r->cost[rep].guest : r->cost[rep].proc;
}

double qb_point_median(const struct qb_block *b, unsigned int pi,
		       enum qb_kind k)
{
	const struct qb_point_res *r = &b->res[k][pi];
	double v[b->reps];
	unsigned int i;

	if (!r->done)
		return NAN;
	for (i = 0; i < b->reps; i++)
		v[i] = qb_rep_cost(b, pi, r, i);
	return qb_median(v, b->reps);
}

/* ---- registration ---- */

/*
 * -R repetitions up to 10,000 fds; fewer above, as a repetition grows
 * with n (at 100,000, a few hundred ms a side under TCG), but never
 * fewer than 5, so the median still has a spread around it.
 */
unsigned int qb_reg_reps(unsigned int n)
{
	unsigned int r = qb_opt.reg_reps;

	if (n > 10000)
		r = (unsigned int)((unsigned long long)r * 10000 / n);
	return r < 5 ? (qb_opt.reg_reps < 5 ? qb_opt.reg_reps : 5) : r;
}

/*
 * Registration is single-threaded and short (tens of ms even under TCG),
 * below what /proc/stat's ticks resolve, so adds and removals are timed
 * with CLOCK_PROCESS_CPUTIME_ID; the /proc/stat total over all of them
 * is kept as a check that nothing else (kernel workers freeing watches,
 * say) was left out.
 */
static int reg_one(struct qb_side *s, unsigned int n, struct qb_reg_res *res,
		   int rep)
{
	uint64_t t0, t1, t2;
	struct qb_sample a, b;
	int err;

	err = s->ops->create(s, n, true);
	if (err)
		goto fail;
	qb_sample_take(&a);
	t0 = qb_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	err = s->ops->watch(s);
	t1 = qb_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (!err && s->ops->unwatch)
		err = s->ops->unwatch(s);
	t2 = qb_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	qb_sample_take(&b);
	s->ops->close(s);
	settle();
	if (err)
		goto fail;
	if (rep < 0)
		return 0;
	res->add[rep] = (double)(t1 - t0) / n;
	res->del[rep] = s->ops->unwatch ? (double)(t2 - t1) / n : NAN;
	res->ticks += b.busy_ticks - a.busy_ticks;
	res->cpu_ns += b.proc_ns - a.proc_ns;
	return 0;
fail:
	fprintf(stderr, "queue_bench: register %u fds, %s: %s\n", n, s->name,
		strerror(-err));
	s->ops->close(s);
	return -1;
}

/* res is indexed by kind; the baseline registers nothing and is skipped. */
int qb_register_run(struct qb_side *sides, unsigned int nr_sides,
		    unsigned int n, struct qb_reg_res *res)
{
	unsigned int reps = qb_reg_reps(n), i, k;
	int r;

	for (i = 0; i < nr_sides; i++) {
		struct qb_reg_res *x = &res[sides[i].kind];

		x->reps = reps;
		x->add = calloc(reps, sizeof(double));
		x->del = calloc(reps, sizeof(double));
		if (!x->add || !x->del)
			return -1;
	}
	/* Repetition -1 is untimed: it warms the allocators' caches. */
	for (r = -1; r < (int)reps; r++)
		for (k = 0; k < nr_sides; k++) {
			struct qb_side *s = &sides[(k + r + 1) % nr_sides];

			if (s->kind == QB_NONE)
				continue;
			if (reg_one(s, n, &res[s->kind], r))
				return -1;
		}
	for (i = 0; i < nr_sides; i++)
		res[sides[i].kind].done = sides[i].kind != QB_NONE;
	return 0;
}

void qb_reg_free(struct qb_reg_res *res)
{
	free(res->add);
	free(res->del);
	res->add = res->del = NULL;
}
