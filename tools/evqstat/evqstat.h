/* SPDX-License-Identifier: GPL-2.0 */
/*
 * evqstat: the evq module's counters, read over generic netlink.
 *
 * Every value evqstat knows is one attribute of the "evq" family
 * (uapi/linux/evq.h), described once in evqstat_fields[]: its netlink
 * type, how it behaves between two samples, and its JSON key.  Parsing,
 * deltas and both output formats are driven by that table, so a new
 * attribute is one row here plus, if it deserves one, a table column.
 *
 *   evqstat.c       options, the sampling loop, per-interval deltas
 *   evqstat_nl.c    the family: resolve, GET_STATS, GET_QUEUE dump, parse
 *   evqstat_out.c   the table and the JSON lines
 */
#ifndef EVQSTAT_H
#define EVQSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <linux/evq.h>

struct nlmsghdr;

/* One bit per attribute in evqstat_vals.have. */
_Static_assert(EVQ_A_MAX < 64, "evqstat_vals.have is a 64-bit mask");

/* How a value moves from one sample to the next. */
enum evqstat_kind {
	EVQSTAT_KEY,	/* names the queue: id, owner pid and uid */
	EVQSTAT_LEVEL,	/* a level now (watches, ops, ring size, queues) */
	EVQSTAT_COUNT,	/* only grows: an interval shows its increase */
	EVQSTAT_PEAK,	/* a high-water mark: shown as it is */
};

/**
 * struct evqstat_field - one attribute evqstat understands
 * @attr: EVQ_A_*
 * @nla_type: NLA_U32 or NLA_U64, for the parsing policy
 * @kind: enum evqstat_kind
 * @key: JSON key: the attribute's name without EVQ_A_, in lower case
 */
struct evqstat_field {
	uint16_t attr;
	uint8_t nla_type;
	uint8_t kind;
	const char *key;
};

extern const struct evqstat_field evqstat_fields[];
extern const size_t evqstat_nr_fields;

/**
 * struct evqstat_vals - the attributes of one reply
 * @v: values by EVQ_A_* number; zero when absent
 * @have: bit n set when attribute n was in the reply
 * @fresh: interval output: the queue opened during the interval, so its
 *	counters are since it opened
 */
struct evqstat_vals {
	uint64_t v[EVQ_A_MAX + 1];
	uint64_t have;
	bool fresh;
};

static inline bool evqstat_has(const struct evqstat_vals *s, unsigned int a)
{
	return a <= EVQ_A_MAX && (s->have >> a) & 1;
}

/**
 * struct evqstat_sample - the module's state at one moment
 * @time: CLOCK_REALTIME of the sample, seconds
 * @mono: CLOCK_MONOTONIC of the sample, to measure intervals
 * @interval: seconds since the previous sample when the counters are the
 *	increase over that interval; negative when they are totals (since
 *	load for the global ones, since open for a queue's)
 * @global: GET_STATS: counters of every queue since load, queues,
 *	queues_created
 * @queues: one GET_QUEUE message per queue, sorted by queue id
 * @nr: entries in @queues
 * @cap: room in @queues
 * @closed: interval output: ids of queues in the previous sample that are
 *	gone (or were replaced by a new queue under the same id)
 * @nr_closed: entries in @closed
 */
struct evqstat_sample {
	double time;
	struct timespec mono;
	double interval;
	struct evqstat_vals global;
	struct evqstat_vals *queues;
	size_t nr;
	size_t cap;
	uint32_t *closed;
	size_t nr_closed;
};

void evqstat_sample_free(struct evqstat_sample *s);

/* evqstat_nl.c */
struct evqstat_nl;

#define EVQSTAT_NL_NOFAMILY	1	/* evqstat_nl_open(): module not loaded */

int evqstat_nl_open(struct evqstat_nl **nlp, char *err, size_t errlen);
int evqstat_nl_sample(struct evqstat_nl *nl, struct evqstat_sample *s,
		      char *err, size_t errlen);
void evqstat_nl_close(struct evqstat_nl *nl);
int evqstat_nl_parse(struct nlmsghdr *nlh, struct evqstat_vals *out,
		     char *err, size_t errlen);

/* evqstat_out.c */

/* Column widths, kept across samples so the table does not jitter. */
struct evqstat_table {
	int width[24];
};

void evqstat_print_table(FILE *f, const struct evqstat_sample *s,
			 struct evqstat_table *t);
void evqstat_print_json(FILE *f, const struct evqstat_sample *s);

#endif /* EVQSTAT_H */
