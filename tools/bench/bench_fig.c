// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark figures, shared by queue_bench and sendfile_bench: printed as
 * they come, so a run that dies still shows what it measured, and written
 * as one JSON object at the end for the plots and the documentation.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_fig.h"
#include "bench_util.h"

#define MAX_FIGS	1024
#define MAX_RAW		16

struct fig {
	char name[80];
	char val[200];
	bool num;
};

static struct fig figs[MAX_FIGS];
static unsigned int nr_figs;

static struct {
	char name[80];
	char *json;
} raws[MAX_RAW];
static unsigned int nr_raws;

static void fig_add(const char *name, const char *val, bool num)
{
	struct fig *f;

	printf("%s: %s\n", name, val);
	fflush(stdout);
	if (nr_figs == MAX_FIGS) {
		fprintf(stderr, "bench: figure %s not kept for the JSON file "
			"(more than %d)\n", name, MAX_FIGS);
		return;
	}
	f = &figs[nr_figs++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->val, sizeof(f->val), "%s", val);
	f->num = num;
}

void bench_fig_num(const char *name, double v, int prec)
{
	char buf[64];

	if (isnan(v) || isinf(v))
		snprintf(buf, sizeof(buf), "nan");
	else
		snprintf(buf, sizeof(buf), "%.*f", prec, v);
	fig_add(name, buf, true);
}

void bench_fig_str(const char *name, const char *v)
{
	fig_add(name, v, false);
}

void bench_fig_raw(const char *name, const char *json)
{
	char *copy = json ? strdup(json) : NULL;

	if (!copy || nr_raws == MAX_RAW) {
		fprintf(stderr, "bench: member %s not kept for the JSON file\n",
			name);
		free(copy);
		return;
	}
	snprintf(raws[nr_raws].name, sizeof(raws[nr_raws].name), "%s", name);
	raws[nr_raws++].json = copy;
}

int bench_fig_json(const char *path, const char *prog)
{
	unsigned int i;
	FILE *f;

	bench_mkdir_parents(path);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
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
		fputs(i + 1 < nr_figs || nr_raws ? ",\n" : "\n", f);
	}
	for (i = 0; i < nr_raws; i++) {
		fputs("  ", f);
		bench_json_str(f, raws[i].name);
		fputs(": ", f);
		fputs(raws[i].json, f);
		fputs(i + 1 < nr_raws ? ",\n" : "\n", f);
	}
	fputs("}\n", f);
	if (fclose(f)) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	return 0;
}
