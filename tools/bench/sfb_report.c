// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: statistics over repetitions (median, spread) turned
 * into figures (bench_fig.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sfb.h"
#include "bench_fig.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double sfb_median(const double *v, unsigned int n)
{
	double *s;
	double m;

	if (!n)
		return NAN;
	s = malloc(n * sizeof(*s));
	if (!s)
		return NAN;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

void sfb_minmax(const double *v, unsigned int n, double *min, double *max)
{
	unsigned int i;

	*min = *max = n ? v[0] : NAN;
	for (i = 1; i < n; i++) {
		if (v[i] < *min)
			*min = v[i];
		if (v[i] > *max)
			*max = v[i];
	}
}

void sfb_fig_stat(const char *name, const double *v, unsigned int n,
		  int prec)
{
	char buf[96];
	double lo, hi;

	sfb_minmax(v, n, &lo, &hi);
	bench_fig_num(name, sfb_median(v, n), prec);
	snprintf(buf, sizeof(buf), "%s_min", name);
	bench_fig_num(buf, lo, prec);
	snprintf(buf, sizeof(buf), "%s_max", name);
	bench_fig_num(buf, hi, prec);
}

