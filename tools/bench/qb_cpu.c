// SPDX-License-Identifier: GPL-2.0
/*
 * queue_bench's CPU accounting: /proc/stat across the whole guest (so
 * the kernel's work on behalf of a side is charged to it wherever it
 * runs), getrusage() of this process beside it, and the medians with
 * their spread that every figure is reported as.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_fig.h"
#include "bench_util.h"
#include "qb.h"

long qb_clk_tck;

uint64_t qb_clock_ns(int clockid)
{
	struct timespec ts;

	clock_gettime((clockid_t)clockid, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * guest and guest_nice are already inside user and nice, so they are not
 * added again; idle and iowait are the only non-busy states.
 */
static uint64_t procstat_busy(void)
{
	unsigned long long v[8] = { 0 };
	char line[512];
	FILE *f;

	f = fopen("/proc/stat", "r");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f) ||
	    sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		   &v[7]) < 7)
		memset(v, 0, sizeof(v));
	fclose(f);
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

void qb_sample_take(struct qb_sample *s)
{
	s->busy_ticks = procstat_busy();
	s->proc_ns = bench_rusage_ns();
	s->wall_ns = qb_clock_ns(CLOCK_MONOTONIC);
}

void qb_cost_of(const struct qb_sample *a, const struct qb_sample *b,
		double units, struct qb_cost *c)
{
	c->ticks = b->busy_ticks - a->busy_ticks;
	c->guest = (double)c->ticks * 1e9 / (double)qb_clk_tck / units;
	c->proc = (double)(b->proc_ns - a->proc_ns) / units;
	c->wall = (double)(b->wall_ns - a->wall_ns) / units;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct qb_stat3 qb_stat3_of(const double *v, unsigned int n)
{
	double s[n];
	struct qb_stat3 r;

	memcpy(s, v, sizeof(s));
	qsort(s, n, sizeof(*s), cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

double qb_median(const double *v, unsigned int n)
{
	return qb_stat3_of(v, n).med;
}

void qb_fig_stat(const char *name, const double *v, unsigned int n, int prec)
{
	struct qb_stat3 s = qb_stat3_of(v, n);
	char buf[128];

	bench_fig_num(name, s.med, prec);
	snprintf(buf, sizeof(buf), "%s_min", name);
	bench_fig_num(buf, s.min, prec);
	snprintf(buf, sizeof(buf), "%s_max", name);
	bench_fig_num(buf, s.max, prec);
}
