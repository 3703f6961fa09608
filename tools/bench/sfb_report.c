// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: figures.  Each is printed at once as "name: value" and
 * kept for the JSON object written at the end, in the same order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sfb.h"
#include "bench_util.h"

#define MAX_FIGS	512

struct fig {
	char name[80];
	char val[200];
	bool num;
};

static struct fig figs[MAX_FIGS];
static unsigned int nr_figs;

static void fig_add(const char *name, const char *val, bool num)
{
	struct fig *f;

	printf("%s: %s\n", name, val);
	fflush(stdout);
	if (nr_figs == MAX_FIGS) {
		fprintf(stderr, "sendfile_bench: figure %s not kept for the "
			"JSON file (more than %d)\n", name, MAX_FIGS);
		return;
	}
	f = &figs[nr_figs++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->val, sizeof(f->val), "%s", val);
	f->num = num;
}

void sfb_fig_num(const char *name, double v, int prec)
{
	char buf[64];

	if (isnan(v) || isinf(v))
		snprintf(buf, sizeof(buf), "nan");
	else
		snprintf(buf, sizeof(buf), "%.*f", prec, v);
	fig_add(name, buf, true);
}

void sfb_fig_str(const char *name, const char *v)
{
	fig_add(name, v, false);
}

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
	sfb_fig_num(name, sfb_median(v, n), prec);
	snprintf(buf, sizeof(buf), "%s_min", name);
	sfb_fig_num(buf, lo, prec);
	snprintf(buf, sizeof(buf), "%s_max", name);
	sfb_fig_num(buf, hi, prec);
}

int sfb_json_write(const char *path)
{
	unsigned int i;
	FILE *f;

	bench_mkdir_parents(path);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "sendfile_bench: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fputs("{\n", f);
	for (i = 0; i < nr_figs; i++) {
		fputs("  ", f);
		bench_json_str(f, figs[i].name);
		fputs(": ", f);
		if (figs[i].num && !strcmp(figs[i].val, "nan"))
			fputs("null", f);	/* JSON has no NaN */
		else if (figs[i].num)
			fputs(figs[i].val, f);
		else
			bench_json_str(f, figs[i].val);
		fputs(i + 1 < nr_figs ? ",\n" : "\n", f);
	}
	fputs("}\n", f);
	if (fclose(f)) {
		fprintf(stderr, "sendfile_bench: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}
