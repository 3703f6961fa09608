// SPDX-License-Identifier: GPL-2.0
/*
 * evqstat_out: a sample as a table for people or as one JSON line for
 * programs.  An attribute the module did not send is "-" in the table and
 * no key at all in JSON, never a zero that was not measured.
 */
#include <inttypes.h>
#include <string.h>

#include "evqstat.h"

enum evqstat_how {
	EVQSTAT_RAW,
	EVQSTAT_AVG_US,		/* pagein_ns / pageins, in microseconds */
	EVQSTAT_US,		/* nanoseconds shown in microseconds */
};

static const struct {
	const char *head;
	uint16_t attr;
	uint8_t how;
} evqstat_cols[] = {
	{ "ID",			EVQ_A_QUEUE_ID,		EVQSTAT_RAW },
	{ "PID",		EVQ_A_OWNER_PID,	EVQSTAT_RAW },
	{ "UID",		EVQ_A_OWNER_UID,	EVQSTAT_RAW },
	{ "RING",		EVQ_A_RING_ENTRIES,	EVQSTAT_RAW },
	{ "WATCHES",		EVQ_A_WATCHES,		EVQSTAT_RAW },
	{ "OPS",		EVQ_A_OPS,		EVQSTAT_RAW },
	{ "POSTED",		EVQ_A_POSTED,		EVQSTAT_RAW },
	{ "HARVESTED",		EVQ_A_HARVESTED,	EVQSTAT_RAW },
	{ "OVERFLOWS",		EVQ_A_OVERFLOWS,	EVQSTAT_RAW },
	{ "WAITS",		EVQ_A_WAITS,		EVQSTAT_RAW },
	{ "SLEPT",		EVQ_A_WAITS_SLEPT,	EVQSTAT_RAW },
	{ "CTL",		EVQ_A_CTL_CALLS,	EVQSTAT_RAW },
	{ "CHANGES",		EVQ_A_CTL_CHANGES,	EVQSTAT_RAW },
	{ "SF",			EVQ_A_SF_CALLS,		EVQSTAT_RAW },
	{ "SF-BYTES",		EVQ_A_SF_BYTES,		EVQSTAT_RAW },
	{ "NOT-RES",		EVQ_A_SF_NOT_RESIDENT,	EVQSTAT_RAW },
	{ "PAGEINS",		EVQ_A_PAGEINS,		EVQSTAT_RAW },
	{ "PAGEIN-AVG-us",	EVQ_A_PAGEIN_NS,	EVQSTAT_AVG_US },
	{ "PAGEIN-MAX-us",	EVQ_A_PAGEIN_MAX_NS,	EVQSTAT_US },
};
#define EVQSTAT_NR_COLS	(sizeof(evqstat_cols) / sizeof(evqstat_cols[0]))

_Static_assert(EVQSTAT_NR_COLS <= sizeof(((struct evqstat_table *)0)->width) /
		sizeof(int), "struct evqstat_table has a width per column");

/* One cell of @v's row; @label replaces the queue id (the totals row). */
static void evqstat_cell(char *buf, size_t len, const struct evqstat_vals *v,
			 unsigned int col, const char *label)
{
	unsigned int a = evqstat_cols[col].attr;
	uint64_t x = v->v[a];

	if (a == EVQ_A_QUEUE_ID && label) {
		snprintf(buf, len, "%s", label);
		return;
	}
	if (!evqstat_has(v, a)) {
		snprintf(buf, len, "-");
		return;
	}
	switch (evqstat_cols[col].how) {
	case EVQSTAT_AVG_US:
		/* No page-in, no average: "-" rather than a made-up 0. */
		if (!evqstat_has(v, EVQ_A_PAGEINS) || !v->v[EVQ_A_PAGEINS]) {
			snprintf(buf, len, "-");
			return;
		}
		x = (x / v->v[EVQ_A_PAGEINS] + 500) / 1000;
		break;
	case EVQSTAT_US:
		x = (x + 500) / 1000;
		break;
	}
	snprintf(buf, len, "%" PRIu64 "%s", x,
		 a == EVQ_A_QUEUE_ID && v->fresh ? "+" : "");
}

static void evqstat_row(FILE *f, const struct evqstat_vals *v,
			const char *label, const struct evqstat_table *t)
{
	char cell[32];

	for (unsigned int c = 0; c < EVQSTAT_NR_COLS; c++) {
		evqstat_cell(cell, sizeof(cell), v, c, label);
		/* The id reads best on the left, numbers on the right. */
		fprintf(f, c ? " %*s" : "%-*s", t->width[c], cell);
	}
	fputc('\n', f);
}

static void evqstat_fit(struct evqstat_table *t, const struct evqstat_vals *v,
			const char *label)
{
	char cell[32];

	for (unsigned int c = 0; c < EVQSTAT_NR_COLS; c++) {
		int w;

		evqstat_cell(cell, sizeof(cell), v, c, label);
		w = (int)strlen(cell);
		if (w > t->width[c])
			t->width[c] = w;
	}
}

static void evqstat_u64_or_unknown(FILE *f, const struct evqstat_vals *v,
				   unsigned int a)
{
	if (evqstat_has(v, a))
		fprintf(f, "%" PRIu64, v->v[a]);
	else
		fputc('?', f);
}

/**
 * evqstat_print_table() - a summary line, the totals row, a row per queue
 * @f: where to
 * @s: the sample (totals, or increases over s->interval)
 * @t: column widths; they only grow, so successive samples line up
 */
void evqstat_print_table(FILE *f, const struct evqstat_sample *s,
			 struct evqstat_table *t)
{
	const bool delta = s->interval >= 0;

	fputs("evq: ", f);
	evqstat_u64_or_unknown(f, &s->global, EVQ_A_QUEUES);
	fputs(" queues open, ", f);
	evqstat_u64_or_unknown(f, &s->global, EVQ_A_QUEUES_CREATED);
	if (delta)
		fprintf(f, " opened in the last %.2f s; counts are per interval, + marks a queue opened in it\n",
			s->interval);
	else
		fputs(" opened since load; counts since load (all), since open (a queue)\n", f);

	for (unsigned int c = 0; c < EVQSTAT_NR_COLS; c++) {
		int w = (int)strlen(evqstat_cols[c].head);

		if (w > t->width[c])
			t->width[c] = w;
	}
	evqstat_fit(t, &s->global, "all");
	for (size_t i = 0; i < s->nr; i++)
		evqstat_fit(t, &s->queues[i], NULL);

	for (unsigned int c = 0; c < EVQSTAT_NR_COLS; c++)
		fprintf(f, c ? " %*s" : "%-*s", t->width[c],
			evqstat_cols[c].head);
	fputc('\n', f);
	evqstat_row(f, &s->global, "all", t);
	for (size_t i = 0; i < s->nr; i++)
		evqstat_row(f, &s->queues[i], NULL, t);
	if (s->nr_closed) {
		fputs("closed:", f);
		for (size_t i = 0; i < s->nr_closed; i++)
			fprintf(f, " %" PRIu32, s->closed[i]);
		fputc('\n', f);
	}
}

/* The attributes @v holds, as "key":value pairs, in evqstat_fields order. */
static void evqstat_json_vals(FILE *f, const struct evqstat_vals *v)
{
	const char *sep = "";

	for (size_t i = 0; i < evqstat_nr_fields; i++) {
		const struct evqstat_field *fl = &evqstat_fields[i];

		if (!evqstat_has(v, fl->attr))
			continue;
		fprintf(f, "%s\"%s\":%" PRIu64, sep, fl->key, v->v[fl->attr]);
		sep = ",";
	}
}

/**
 * evqstat_print_json() - the sample as one line of JSON
 * @f: where to
 * @s: the sample
 *
 * {"time":T,"interval":null|S,"global":{...},"queues":[{...},...]}; an
 * interval sample adds "new" to every queue and a "closed" list of ids.
 * Documentation/probes.rst, "evqstat", has the schema.
 */
void evqstat_print_json(FILE *f, const struct evqstat_sample *s)
{
	const bool delta = s->interval >= 0;

	fprintf(f, "{\"time\":%.3f,\"interval\":", s->time);
	if (delta)
		fprintf(f, "%.3f", s->interval);
	else
		fputs("null", f);
	fputs(",\"global\":{", f);
	evqstat_json_vals(f, &s->global);
	fputs("},\"queues\":[", f);
	for (size_t i = 0; i < s->nr; i++) {
		fputs(i ? ",{" : "{", f);
		evqstat_json_vals(f, &s->queues[i]);
		if (delta)
			fprintf(f, ",\"new\":%s",
				s->queues[i].fresh ? "true" : "false");
		fputc('}', f);
	}
	fputc(']', f);
	if (delta) {
		fputs(",\"closed\":[", f);
		for (size_t i = 0; i < s->nr_closed; i++)
			fprintf(f, "%s%" PRIu32, i ? "," : "", s->closed[i]);
		fputc(']', f);
	}
	fputs("}\n", f);
}
