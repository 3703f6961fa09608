// SPDX-License-Identifier: GPL-2.0
/*
 * queue_bench's figures: every name the two-sided benchmark printed
 * (evq_*, epoll_*, none_*, their ratios, harvest_* and register_*), now
 * taken from the sweep's headline point, and the sweep's own figures,
 * the ratios against poll and io_uring, the targets and the probe's.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_fig.h"
#include "qb.h"

#define NAME_LEN	128

/* Per event the workload asked for: each write makes one. */
static void report_counts(const char *prefix, const struct qb_counts *c)
{
	double ev = c->writes ? (double)c->writes : NAN;
	char name[NAME_LEN];

	snprintf(name, sizeof(name), "%s_syscalls_per_event", prefix);
	bench_fig_num(name, (double)qb_counts_syscalls(c) / ev, 3);
	snprintf(name, sizeof(name), "%s_waits_per_event", prefix);
	bench_fig_num(name, (double)c->waits / ev, 4);
	snprintf(name, sizeof(name), "%s_enters_per_event", prefix);
	bench_fig_num(name, (double)c->enters / ev, 4);
	snprintf(name, sizeof(name), "%s_writes_per_event", prefix);
	bench_fig_num(name, (double)c->writes / ev, 3);
	snprintf(name, sizeof(name), "%s_reads_per_event", prefix);
	bench_fig_num(name, (double)c->reads / ev, 3);
	snprintf(name, sizeof(name), "%s_entries_per_event", prefix);
	bench_fig_num(name, (double)c->events / ev, 3);
	snprintf(name, sizeof(name), "%s_spurious_events", prefix);
	bench_fig_num(name, (double)c->spurious, 0);
}

/* <prefix>_ns_per_event with its spread, the other sources beside it. */
static void report_side(const char *prefix, const struct qb_block *b,
			unsigned int pi, enum qb_kind k)
{
	const struct qb_point_res *r = &b->res[k][pi];
	unsigned int i, n = b->reps;
	double v[n];
	char name[NAME_LEN];

	for (i = 0; i < n; i++)
		v[i] = qb_rep_cost(b, pi, r, i);
	snprintf(name, sizeof(name), "%s_ns_per_event", prefix);
	qb_fig_stat(name, v, n, 0);
	for (i = 0; i < n; i++)
		v[i] = r->cost[i].guest;
	snprintf(name, sizeof(name), "%s_guest_ns_per_event", prefix);
	bench_fig_num(name, qb_median(v, n), 0);
	for (i = 0; i < n; i++)
		v[i] = r->cost[i].proc;
	snprintf(name, sizeof(name), "%s_rusage_ns_per_event", prefix);
	bench_fig_num(name, qb_median(v, n), 0);
	for (i = 0; i < n; i++)
		v[i] = r->cost[i].wall;
	snprintf(name, sizeof(name), "%s_wall_ns_per_event", prefix);
	bench_fig_num(name, qb_median(v, n), 0);
	snprintf(name, sizeof(name), "%s_rounds_per_rep", prefix);
	bench_fig_num(name, r->rounds, 0);
	report_counts(prefix, &r->cnt);
}

/*
 * A queue's own cost per event: its side minus the baseline.  Each
 * repetition is differenced with the baseline repetition of the same
 * rotation, and the median of those differences taken, so that drift of
 * the machine over the run cancels out; the difference of the two
 * medians is printed beside it as a check.  Returns the median difference.
 */
static double report_queue(const struct qb_block *b, unsigned int pi,
			   enum qb_kind k, const char *mode)
{
	const struct qb_point_res *q = &b->res[k][pi], *z = &b->res[QB_NONE][pi];
	unsigned int i, n = b->reps;
	double d[n], vq[n], vn[n];
	char name[NAME_LEN];

	for (i = 0; i < n; i++) {
		vq[i] = qb_rep_cost(b, pi, q, i);
		vn[i] = qb_rep_cost(b, pi, z, i);
		d[i] = vq[i] - vn[i];
	}
	snprintf(name, sizeof(name), "%s_queue%s_ns_per_event",
		 qb_kind_name(k), mode);
	qb_fig_stat(name, d, n, 0);
	snprintf(name, sizeof(name), "%s_queue%s_ns_per_event_diff_of_medians",
		 qb_kind_name(k), mode);
	bench_fig_num(name, qb_median(vq, n) - qb_median(vn, n), 0);
	snprintf(name, sizeof(name), "%s_queue%s_share", qb_kind_name(k), mode);
	bench_fig_num(name, qb_median(d, n) / qb_median(vq, n), 3);
	return qb_median(d, n);
}

/*
 * evq's queue cost over a peer's.  A cost at or below zero is the
 * baseline's noise, not a queue that is free: no ratio then, "nan" (null
 * in the JSON) and a note saying which side it was.
 */
static void report_queue_ratio(const char *peer, const char *mode,
			       double evq, double other)
{
	char name[NAME_LEN], note[192];

	snprintf(name, sizeof(name), "evq_vs_%s_queue_cost%s_ratio", peer,
		 mode);
	if (evq > 0 && other > 0) {
		bench_fig_num(name, evq / other, 3);
		return;
	}
	bench_fig_num(name, NAN, 3);
	snprintf(name, sizeof(name), "evq_vs_%s_queue_cost%s_note", peer,
		 mode);
	snprintf(note, sizeof(note),
		 "queue cost <= 0 (evq %.0f ns, %s %.0f ns per event): "
		 "within the baseline's noise, no ratio", evq, peer, other);
	bench_fig_str(name, note);
}

static bool block_has(const struct qb_block *b, enum qb_kind k)
{
	unsigned int i;

	for (i = 0; i < b->nr_sides; i++)
		if (b->sides[i].kind == k)
			return true;
	return false;
}

/* All-in harvest CPU per event, evq over a peer, at one point. */
static double harvest_ratio(const struct qb_block *b, unsigned int pi,
			    enum qb_kind peer)
{
	return qb_point_median(b, pi, QB_EVQ) / qb_point_median(b, pi, peer);
}

/*
 * The figures of one mode at the headline point, under the names the
 * two-sided benchmark used (mode "" for edge, "_level"), for every side
 * the block ran.
 */
void qb_report_headline(const struct qb_block *b, unsigned int pi,
			const char *mode)
{
	static const enum qb_kind peers[] = { QB_EPOLL, QB_POLL, QB_URING };
	unsigned int i, rounds = 0;
	double qe = NAN, qp;
	char name[NAME_LEN], pfx[64];

	for (i = 0; i < b->nr_sides; i++)
		if (b->res[b->sides[i].kind][pi].rounds > rounds)
			rounds = b->res[b->sides[i].kind][pi].rounds;
	snprintf(name, sizeof(name), "harvest%s_rounds_per_rep", mode);
	bench_fig_num(name, rounds, 0);
	snprintf(name, sizeof(name), "harvest%s_procstat_ticks_min", mode);
	bench_fig_num(name, (double)b->min_ticks[pi], 0);
	snprintf(name, sizeof(name), "harvest%s_cpu_source", mode);
	bench_fig_str(name, b->procstat[pi] ? "procstat" : "rusage");
	snprintf(name, sizeof(name), "harvest%s_cpu_source_reason", mode);
	bench_fig_str(name, b->why[pi]);
	for (i = 0; i < b->nr_sides; i++) {
		snprintf(pfx, sizeof(pfx), "%s_harvest%s", b->sides[i].name,
			 mode);
		report_side(pfx, b, pi, b->sides[i].kind);
	}
	if (!block_has(b, QB_EVQ))
		goto queues;
	for (i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
		if (!block_has(b, peers[i]))
			continue;
		snprintf(name, sizeof(name), "evq_vs_%s_harvest%s_ratio",
			 qb_kind_name(peers[i]), mode);
		bench_fig_num(name, harvest_ratio(b, pi, peers[i]), 3);
	}
queues:
	if (!block_has(b, QB_NONE))
		return;
	if (block_has(b, QB_EVQ))
		qe = report_queue(b, pi, QB_EVQ, mode);
	for (i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
		if (!block_has(b, peers[i]))
			continue;
		qp = report_queue(b, pi, peers[i], mode);
		if (block_has(b, QB_EVQ))
			report_queue_ratio(qb_kind_name(peers[i]), mode, qe, qp);
	}
}

static void target(const char *ratio, double v, double goal)
{
	char name[NAME_LEN];

	snprintf(name, sizeof(name), "%s_target", ratio);
	bench_fig_num(name, goal, 2);
	snprintf(name, sizeof(name), "%s_met", ratio);
	bench_fig_str(name, isnan(v) ? "unknown" : v <= goal ? "yes" : "no");
}

/* The targets of issue 8, at the headline point (edge). */
void qb_report_targets(const struct qb_block *b, unsigned int pi)
{
	if (!block_has(b, QB_EVQ))
		return;
	target("evq_vs_epoll_harvest_ratio", harvest_ratio(b, pi, QB_EPOLL),
	       0.5);
	target("evq_vs_io_uring_harvest_ratio",
	       block_has(b, QB_URING) ? harvest_ratio(b, pi, QB_URING) : NAN,
	       1.0);
}

/* Each point of the sweep: sweep_<side>_<N>_<pct>pct_*. */
void qb_report_sweep(const struct qb_block *b)
{
	unsigned int pi, i, r, n = b->reps;
	char name[NAME_LEN];
	double v[n];

	snprintf(name, sizeof(name), "sweep_%u_reps", b->n);
	bench_fig_num(name, n, 0);
	snprintf(name, sizeof(name), "sweep_%u_guest_s", b->n);
	bench_fig_num(name, b->secs, 1);
	for (pi = 0; pi < b->nr_pct; pi++) {
		snprintf(name, sizeof(name), "sweep_%u_%upct_cpu_source", b->n,
			 b->pct[pi]);
		bench_fig_str(name, b->procstat[pi] ? "procstat" : "rusage");
		snprintf(name, sizeof(name), "sweep_%u_%upct_procstat_ticks_min",
			 b->n, b->pct[pi]);
		bench_fig_num(name, (double)b->min_ticks[pi], 0);
		for (i = 0; i < b->nr_sides; i++) {
			const struct qb_point_res *p =
				&b->res[b->sides[i].kind][pi];

			for (r = 0; r < n; r++)
				v[r] = qb_rep_cost(b, pi, p, r);
			snprintf(name, sizeof(name),
				 "sweep_%s_%u_%upct_ns_per_event",
				 b->sides[i].name, b->n, b->pct[pi]);
			qb_fig_stat(name, v, n, 0);
			snprintf(name, sizeof(name),
				 "sweep_%s_%u_%upct_syscalls_per_event",
				 b->sides[i].name, b->n, b->pct[pi]);
			bench_fig_num(name, (double)qb_counts_syscalls(&p->cnt) /
				      (double)p->cnt.writes, 3);
		}
	}
}

/* register_<side>_<N>_ns_per_fd for every side and count. */
void qb_report_register_sweep(const struct qb_reg_res *res, unsigned int n,
			      const struct qb_side *sides,
			      unsigned int nr_sides)
{
	char name[NAME_LEN];
	unsigned int i;

	for (i = 0; i < nr_sides; i++) {
		const struct qb_reg_res *r = &res[sides[i].kind];

		if (!r->done)
			continue;
		snprintf(name, sizeof(name), "register_%s_%u_ns_per_fd",
			 sides[i].name, n);
		qb_fig_stat(name, r->add, r->reps, 0);
		snprintf(name, sizeof(name), "register_%s_%u_syscalls",
			 sides[i].name, n);
		bench_fig_num(name, sides[i].ops->reg_syscalls(n), 0);
	}
}

static double reg_ratio(const struct qb_reg_res *a, const struct qb_reg_res *b,
			bool del)
{
	if (!a->done || !b->done)
		return NAN;
	return del ? qb_median(a->del, a->reps) / qb_median(b->del, b->reps) :
		     qb_median(a->add, a->reps) / qb_median(b->add, b->reps);
}

/* The registration figures at the headline count, as they were named. */
void qb_report_register(const struct qb_reg_res *res, unsigned int n,
			const struct qb_side *sides, unsigned int nr_sides)
{
	char name[NAME_LEN];
	unsigned int i;

	bench_fig_num("register_fds", n, 0);
	bench_fig_num("register_reps", res[QB_EPOLL].reps, 0);
	bench_fig_str("register_cpu_source", "process_cputime");
	for (i = 0; i < nr_sides; i++) {
		const struct qb_reg_res *r = &res[sides[i].kind];

		if (!r->done)
			continue;
		snprintf(name, sizeof(name), "%s_register_ns_per_fd",
			 sides[i].name);
		qb_fig_stat(name, r->add, r->reps, 0);
		if (sides[i].ops->unwatch) {
			snprintf(name, sizeof(name), "%s_unregister_ns_per_fd",
				 sides[i].name);
			qb_fig_stat(name, r->del, r->reps, 0);
		}
		snprintf(name, sizeof(name), "%s_register_procstat_ms_per_rep",
			 sides[i].name);
		bench_fig_num(name, (double)r->ticks * 1e3 / qb_clk_tck /
			      r->reps, 2);
		snprintf(name, sizeof(name), "%s_register_rusage_ms_per_rep",
			 sides[i].name);
		bench_fig_num(name, (double)r->cpu_ns / 1e6 / r->reps, 2);
		snprintf(name, sizeof(name), "%s_register_syscalls",
			 sides[i].name);
		bench_fig_num(name, sides[i].ops->reg_syscalls(n), 0);
	}
	if (!res[QB_EVQ].done)
		return;
	bench_fig_num("evq_vs_epoll_register_ratio",
		      reg_ratio(&res[QB_EVQ], &res[QB_EPOLL], false), 3);
	bench_fig_num("evq_vs_epoll_unregister_ratio",
		      reg_ratio(&res[QB_EVQ], &res[QB_EPOLL], true), 3);
	bench_fig_num("evq_vs_io_uring_register_ratio",
		      reg_ratio(&res[QB_EVQ], &res[QB_URING], false), 3);
}

/* <side>_ctxsw_per_event and the rest of the wake-up probe's figures. */
void qb_report_probe(enum qb_kind k, const struct qb_probe_res *p)
{
	const char *s = qb_kind_name(k);
	char name[NAME_LEN];

	snprintf(name, sizeof(name), "%s_ctxsw_per_event", s);
	bench_fig_num(name, p->ctxsw, 3);
	snprintf(name, sizeof(name), "%s_ivcsw_per_event", s);
	bench_fig_num(name, p->ivcsw, 3);
	snprintf(name, sizeof(name), "%s_probe_process_ctxsw_per_event", s);
	bench_fig_num(name, p->proc_ctxsw, 3);
	snprintf(name, sizeof(name), "%s_wait_calls_per_event", s);
	bench_fig_num(name, p->wait_calls, 3);
	snprintf(name, sizeof(name), "%s_wait_oncpu_ns_per_event", s);
	bench_fig_num(name, p->wait_oncpu_ns, 0);
	snprintf(name, sizeof(name), "%s_wait_offcpu_ns_per_event", s);
	bench_fig_num(name, p->wait_offcpu_ns, 0);
	snprintf(name, sizeof(name), "%s_probe_oncpu_ns_per_event", s);
	bench_fig_num(name, p->oncpu_ns, 0);
}
