/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's figures (what XSTATS and the metrics endpoint report), the
 * largest destinations among many, the Prometheus text exposition format
 * (0.0.4) and XSTATS's JSON lines made from them, and the parser of the
 * metrics endpoint's HTTP requests.
 *
 * Nothing here does I/O or keeps global state (dd_metrics.c serves the
 * endpoint from worker 0's event loop), so all of it is unit-tested.
 */
#ifndef DD_PROM_H
#define DD_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dd.h"
#include "dd_wire.h"

/* Destinations reported one by one; the others are summed as one. */
#define DD_STATS_DESTS		100
/* The label of that sum: parentheses are in no domain, so it names none. */
#define DD_STATS_OTHER		"(other)"

struct dd_stats_dest {
	char dest[DD_DOMAIN_MAX + 1];
	uint64_t backlog;		/* recipients not final */
	uint64_t conns;			/* outbound connections open or opening */
};

/*
 * The max largest destinations by backlog (then connections, then name),
 * with the rest summed.  A min-heap while filling, so adding is
 * O(log max) and the memory is bounded whatever the number of domains.
 */
struct dd_top {
	struct dd_stats_dest *v;
	unsigned int n, max;
	bool nomem;			/* v could not be allocated: all in other */
	uint64_t other_n, other_backlog, other_conns;
};

/* max 0: everything goes to the sum.  Allocates lazily. */
void dd_top_init(struct dd_top *t, unsigned int max);
void dd_top_free(struct dd_top *t);
void dd_top_add(struct dd_top *t, const char *dest, uint64_t backlog,
		uint64_t conns);
/* Add from's entries and sum into t. */
void dd_top_merge(struct dd_top *t, const struct dd_top *from);
/* Sort t->v largest first (after which t is not to be added to). */
void dd_top_sort(struct dd_top *t);

struct dd_stats_worker {
	uint64_t events;		/* completions harvested */
	uint64_t waits;			/* sleeps in evq_wait (or epoll_wait) */
	uint64_t out_conns;		/* outbound connections open now */
};

/* One snapshot of every figure; counters count since the start. */
struct dd_stats {
	const char *backend;		/* "evq" | "epoll" */
	const char *version;
	double start_time;		/* Unix time of the start, seconds */
	double uptime;			/* seconds */
	long rss_kb;			/* -1: unknown */
	/* recipients in the queue by state */
	uint64_t queued, deferred, active, held;
	/* delivery outcomes (per recipient) and attempts */
	uint64_t delivered, deferrals, bounced, expired, attempts;
	uint64_t injected, bounces_sent;
	/* connections */
	uint64_t out_conns, out_opened, out_peak, in_conns;
	/* the spool (dd_spool_stats) */
	uint64_t spool_segments, spool_bytes, spool_batches, spool_records;
	uint64_t spool_fsyncs, spool_skipped, spool_reclaimed;
	/* by event-loop thread */
	unsigned int nworkers;
	struct dd_stats_worker *workers;
	/* destinations with a backlog or connections */
	struct dd_top top;
};

/*
 * Label values: backslash, double quote and line feed escaped; UTF-8
 * passes, bytes that are not UTF-8 become U+FFFD (the format is UTF-8).
 * 0 or -ENOMEM.
 */
int dd_prom_escape(struct dd_buf *b, const char *s);

/* "# HELP name help\n# TYPE name type\n"; help escaped as HELP text. */
int dd_prom_family(struct dd_buf *b, const char *name, const char *type,
		   const char *help);
/*
 * One sample line: name{k1="v1",...} value.  labels: pairs of name and
 * value ending with NULL (NULL itself: no labels).
 */
int dd_prom_sample(struct dd_buf *b, const char *name,
		   const char *const *labels, uint64_t value);
int dd_prom_sample_f(struct dd_buf *b, const char *name,
		     const char *const *labels, double value);

/* The whole exposition of st (text format 0.0.4).  0 or -ENOMEM. */
int dd_prom_format(struct dd_buf *b, const struct dd_stats *st);

/*
 * XSTATS's answer: a line with the totals (the fields it always had, and
 * more), a line per worker ({"worker":N,...}) and a line per reported
 * destination ({"dest":"...",...}, the sum last).  Sorts st->top.
 */
int dd_stats_json(struct dd_buf *b, struct dd_stats *st);

/* HTTP requests to the metrics endpoint */
#define DD_HTTP_REQ_MAX		4096	/* the request line and headers */
#define DD_HTTP_HEADERS_MAX	64
#define DD_HTTP_PATH		"/metrics"

/*
 * Look at the first len bytes received.  0: the header section is not
 * complete yet (and fits in max); else the status to answer: 200 for
 * GET /metrics, 404 another path, 405 another method, 505 an HTTP
 * version other than 1.x, 400 a malformed or oversized request.
 */
int dd_http_parse(const char *buf, size_t len, size_t max);
/* The reason phrase of the statuses above ("" for others). */
const char *dd_http_reason(int status);

#endif /* DD_PROM_H */
