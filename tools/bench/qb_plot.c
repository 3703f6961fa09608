// SPDX-License-Identifier: GPL-2.0
/*
 * The "plots" member of queue_bench's JSON (the contract is in
 * tools/bench/bench_plot's docstring), built from the same results the
 * figures are printed from:
 *
 *   queue-harvest.png    CPU per harvested event against watched fds
 *   queue-syscalls.png   system calls per event, the same way
 *   queue-register.png   registration CPU per fd against watched fds
 *   queue-probes.png     the wake-up probe: switches and on-CPU wait
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "qb.h"

static void num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static void array(FILE *f, const char *key, const double *v, unsigned int n)
{
	unsigned int i;

	fprintf(f, ", \"%s\": [", key);
	for (i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		num(f, v[i]);
	}
	fputc(']', f);
}

static void series(FILE *f, const char *title, const double *x,
		   const double *y, const double *lo, const double *hi,
		   unsigned int n, bool first)
{
	fprintf(f, "%s\n        {\"title\": \"%s\"", first ? "" : ",", title);
	array(f, "x", x, n);
	array(f, "y", y, n);
	if (lo)
		array(f, "ylow", lo, n);
	if (hi)
		array(f, "yhigh", hi, n);
	fputc('}', f);
}

static void panel_open(FILE *f, bool first, const char *title,
		       const char *xlabel, const char *ylabel, bool logx,
		       bool logy, const char *style)
{
	fprintf(f, "%s\n     {\"title\": \"%s\", \"xlabel\": \"%s\", "
		"\"ylabel\": \"%s\", \"logx\": %s, \"logy\": %s, "
		"\"style\": \"%s\", \"series\": [", first ? "" : ",", title,
		xlabel, ylabel, logx ? "true" : "false",
		logy ? "true" : "false", style);
}

static void panel_close(FILE *f)
{
	fputs("]}", f);
}

enum sweep_fig { SWEEP_NS, SWEEP_SYSCALLS };

/* One side's points of one percentage across the sweep. */
static void sweep_series(FILE *f, const struct qb_results *res,
			 enum qb_kind k, unsigned int pi, enum sweep_fig what,
			 bool first)
{
	unsigned int nr = qb_opt.nr_n, i, r;
	double x[nr], y[nr], lo[nr], hi[nr];

	for (i = 0; i < nr; i++) {
		const struct qb_block *b = &res->sweep[i];
		const struct qb_point_res *p = &b->res[k][pi];
		double v[b->reps ? b->reps : 1];
		struct qb_stat3 s;

		x[i] = qb_opt.n[i];
		y[i] = lo[i] = hi[i] = NAN;
		if (!p->done)
			continue;
		if (what == SWEEP_SYSCALLS) {
			y[i] = lo[i] = hi[i] = (double)qb_counts_syscalls(
				&p->cnt) / (double)p->cnt.writes;
			continue;
		}
		for (r = 0; r < b->reps; r++)
			v[r] = qb_rep_cost(b, pi, p, r);
		s = qb_stat3_of(v, b->reps);
		y[i] = s.med;
		lo[i] = s.min;
		hi[i] = s.max;
	}
	series(f, qb_kind_name(k), x, y, what == SWEEP_NS ? lo : NULL,
	       what == SWEEP_NS ? hi : NULL, nr, first);
}

static void sweep_plot(FILE *f, const struct qb_results *res,
		       const char *file, const char *title,
		       const char *ylabel, enum sweep_fig what, bool first)
{
	unsigned int pi, i;
	char ptitle[64];

	fprintf(f, "%s\n  {\"file\": \"%s\", \"title\": \"%s\", \"panels\": [",
		first ? "" : ",", file, title);
	for (pi = 0; pi < qb_opt.nr_pct; pi++) {
		snprintf(ptitle, sizeof(ptitle), "%u%% of them ready per round",
			 qb_opt.pct[pi]);
		/*
		 * poll's cost per event at 1% is ten times the others': on
		 * a linear scale it would flatten them into one line.
		 */
		panel_open(f, !pi, ptitle, "watched fds", ylabel, true,
			   what == SWEEP_NS, "linespoints");
		for (i = 0; i < res->nr_sides; i++)
			sweep_series(f, res, res->kinds[i], pi, what, !i);
		panel_close(f);
	}
	fputs("]}", f);
}

static void register_plot(FILE *f, const struct qb_results *res)
{
	unsigned int nr = qb_opt.nr_n, i, j, first = 1;
	double x[nr], y[nr], lo[nr], hi[nr];

	fputs(",\n  {\"file\": \"queue-register.png\", \"title\": "
	      "\"Registration: CPU per fd watched\", \"panels\": [", f);
	panel_open(f, true, "evq: one batch; epoll: a call per fd; io_uring: "
		   "SQEs in batches; poll: filling its array", "watched fds",
		   "ns (instructions under --icount) per fd", true, false,
		   "linespoints");
	for (j = 0; j < res->nr_sides; j++) {
		enum qb_kind k = res->kinds[j];

		if (k == QB_NONE)
			continue;
		for (i = 0; i < nr; i++) {
			const struct qb_reg_res *r = &res->reg[i][k];
			struct qb_stat3 s = { NAN, NAN, NAN };

			if (r->done)
				s = qb_stat3_of(r->add, r->reps);
			x[i] = qb_opt.n[i];
			y[i] = s.med;
			lo[i] = s.min;
			hi[i] = s.max;
		}
		series(f, qb_kind_name(k), x, y, lo, hi, nr, first);
		first = 0;
	}
	panel_close(f);
	fputs("]}", f);
}

static void probe_panel(FILE *f, const struct qb_results *res, bool first,
			const char *title, const char *ylabel, bool oncpu)
{
	unsigned int j, idx = 0;
	double x, y;

	panel_open(f, first, title, "side", ylabel, false, false, "boxes");
	for (j = 0; j < res->nr_sides; j++) {
		const struct qb_probe_res *p = &res->probe[res->kinds[j]];

		if (res->kinds[j] == QB_NONE)
			continue;
		x = ++idx;
		y = !p->done ? NAN : oncpu ? p->wait_oncpu_ns : p->ctxsw;
		series(f, qb_kind_name(res->kinds[j]), &x, &y, NULL, NULL, 1,
		       idx == 1);
	}
	panel_close(f);
}

static void probe_plot(FILE *f, const struct qb_results *res)
{
	char title[160];

	snprintf(title, sizeof(title), "Wake-up probe (waitstat): %u watched, "
		 "%u made ready per round by a writer thread",
		 QB_PROBE_FDS, QB_PROBE_ACTIVE);
	fprintf(f, ",\n  {\"file\": \"queue-probes.png\", \"title\": \"%s\", "
		"\"panels\": [", title);
	probe_panel(f, res, true, "harvesting thread's context switches",
		    "switches per event", false);
	probe_panel(f, res, false, "on-CPU time inside the wait calls",
		    "ns (instructions) per event", true);
	fputs("]}", f);
}

char *qb_plots_json(const struct qb_results *res)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fputc('[', f);
	sweep_plot(f, res, "queue-harvest.png",
		   "Harvest: all-in CPU per event (write + wait + read), "
		   "edge-triggered; poll level", "ns (instructions) per event",
		   SWEEP_NS, true);
	sweep_plot(f, res, "queue-syscalls.png",
		   "System calls per harvested event, its write and read "
		   "included (evq, io_uring and none coincide at 2)",
		   "system calls per event", SWEEP_SYSCALLS,
		   false);
	register_plot(f, res);
	probe_plot(f, res);
	fputs("\n]", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
