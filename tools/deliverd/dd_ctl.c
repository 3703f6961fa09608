// SPDX-License-Identifier: GPL-2.0
/*
 * Control commands on the control socket (deliverctl): XQUEUE, XFLUSH,
 * XHOLD, XRELEASE, XSTATS.  Each worker owns a share of the destinations,
 * so a command visits every worker through its mailbox; the last to
 * answer sends the request back to the session's worker, which replies
 * with JSON lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dd_core.h"
#include "dd_log.h"

/* The Makefile passes the tree's release (lib/Makefile's VERSION). */
#ifndef DD_VERSION
#define DD_VERSION "unknown"
#endif

void dd_ctl_append(struct dd_ctl_req *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		size_t room = r->cap - r->len;

		va_start(ap, fmt);
		n = vsnprintf(r->out ? r->out + r->len : NULL, r->out ? room : 0,
			      fmt, ap);
		va_end(ap);
		if (n < 0)
			break;
		if (r->out && (size_t)n < room) {
			r->len += (size_t)n;
			break;
		}
		{
			size_t cap = (r->cap ? r->cap * 2 : 4096) + (size_t)n;
			char *p = realloc(r->out, cap);

			if (!p)
				break;
			r->out = p;
			r->cap = cap;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

void dd_ctl_answered(struct dd_worker *w, struct dd_ctl_req *r)
{
	struct dd_mail *m;

	(void)w;
	if (atomic_fetch_sub(&r->left, 1) != 1)
		return;
	m = calloc(1, sizeof(*m));
	if (!m) {
		/* Cannot happen often; the session stays waiting: log it. */
		dd_err("control reply lost: out of memory");
		return;
	}
	m->type = DD_MAIL_CTL_DONE;
	m->ctl = r;
	dd_post(r->origin, m);
}

static long rss_kb(void);

static void stats_free(struct dd_stats *st)
{
	if (!st)
		return;
	dd_top_free(&st->top);
	free(st->workers);
	free(st);
}

static struct dd_stats *stats_new(void)
{
	struct dd_stats *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->nworkers = dd_d.nworkers;
	st->workers = calloc(dd_d.nworkers, sizeof(*st->workers));
	if (!st->workers) {
		free(st);
		return NULL;
	}
	dd_top_init(&st->top, DD_STATS_DESTS);
	return st;
}

static void req_free(struct dd_ctl_req *r)
{
	pthread_mutex_destroy(&r->lock);
	stats_free(r->st);
	free(r->out);
	free(r);
}

void dd_ctl_stats_worker(struct dd_worker *w, struct dd_ctl_req *r)
{
	struct dd_stats *st = r->st;
	struct dd_top top;

	if (!st)
		return;
	/* Each worker keeps only its largest: the lock is held briefly. */
	dd_top_init(&top, DD_STATS_DESTS);
	dd_dest_stats(w, &top);
	pthread_mutex_lock(&r->lock);
	st->workers[w->idx].events = w->events;
	st->workers[w->idx].waits = w->waits;
	st->workers[w->idx].out_conns = w->out_conns;
	st->expired += w->expired;
	st->out_opened += w->out_opened;
	dd_top_merge(&st->top, &top);
	pthread_mutex_unlock(&r->lock);
	dd_top_free(&top);
}

static double start_time;

static void start_time_init(void)
{
	struct timespec now;
	double t;

	clock_gettime(CLOCK_REALTIME, &now);
	t = (double)now.tv_sec + now.tv_nsec / 1e9 -
	    (double)(dd_mono_ns() - dd_d.start_ns) / 1e9;
	/* Milliseconds: it is derived, finer would only be noise. */
	start_time = (double)(int64_t)(t * 1000 + 0.5) / 1000;
}

/* Fixed at the first request, so the figure never moves. */
static double get_start_time(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, start_time_init);
	return start_time;
}

/* The figures only the origin adds: the daemon's and the spool's. */
static void stats_finish(struct dd_ctl_req *r)
{
	struct dd_stats *st = r->st;
	struct dd_spool_stats sp;

	dd_spool_stats(dd_d.spool, &sp);
	st->backend = dd_d.kmod ? "evq" : "epoll";
	st->version = DD_VERSION;
	st->uptime = (double)(dd_mono_ns() - dd_d.start_ns) / 1e9;
	st->start_time = get_start_time();
	st->rss_kb = rss_kb();
	st->queued = r->queued;
	st->deferred = r->deferred;
	st->active = r->active;
	st->held = r->held;
	st->delivered = r->delivered;
	st->deferrals = r->deferrals;
	/* The workers count expiries among their bounces. */
	st->bounced = r->bounced - st->expired;
	st->attempts = r->attempts;
	st->injected = atomic_load(&dd_d.injected);
	st->bounces_sent = atomic_load(&dd_d.bounces_sent);
	st->out_conns = r->conns;
	st->out_peak = atomic_load(&dd_d.out_conns_peak);
	st->in_conns = atomic_load(&dd_d.in_conns);
	st->spool_segments = sp.segments;
	st->spool_bytes = sp.bytes;
	st->spool_batches = sp.batches;
	st->spool_records = sp.records;
	st->spool_fsyncs = sp.fsyncs;
	st->spool_skipped = sp.skipped;
	st->spool_reclaimed = sp.reclaimed;
}

static long rss_kb(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

void dd_ctl_done(struct dd_worker *w, struct dd_ctl_req *r)
{
	struct dd_buf b = DD_BUF_INIT;
	char *text;
	size_t len;

	if (r->op == DD_CTL_STATS)
		stats_finish(r);
	if (r->done) {
		r->done(w, r->st, r->done_arg);
		req_free(r);
		return;
	}
	switch (r->op) {
	case DD_CTL_QUEUE:
		dd_ctl_append(r,
			"{\"total_dests\":%" PRIu64 ",\"queued\":%" PRIu64
			",\"deferred\":%" PRIu64 ",\"active\":%" PRIu64
			",\"held\":%" PRIu64 ",\"conns\":%" PRIu64 "}",
			r->dests, r->queued, r->deferred, r->active, r->held,
			r->conns);
		break;
	case DD_CTL_FLUSH:
		dd_ctl_append(r, "{\"flushed\":%" PRIu64 "}", r->n);
		break;
	case DD_CTL_HOLD:
	case DD_CTL_RELEASE:
		if (r->by_qid && !r->n) {
			dd_in_control_done(r->in, 550,
					   "5.1.0 No such message waiting");
			req_free(r);
			return;
		}
		dd_ctl_append(r, "{\"%s\":%" PRIu64 "}",
			      r->op == DD_CTL_HOLD ? "held" : "released", r->n);
		break;
	case DD_CTL_STATS:
		if (dd_stats_json(&b, r->st)) {
			dd_in_control_done(r->in, 451, "4.3.0 Out of memory");
			dd_buf_free(&b);
			req_free(r);
			return;
		}
		dd_ctl_append(r, "%s", b.p);
		dd_buf_free(&b);
		break;
	}
	text = r->out ? r->out : "";
	len = r->len;
	while (len && text[len - 1] == '\n')
		text[--len] = 0;
	dd_in_control_done(r->in, 250, text);
	req_free(r);
}

/* Send r to every worker; the last to answer sends it back to origin. */
static void ctl_post(struct dd_ctl_req *r)
{
	unsigned int i;

	atomic_store(&r->left, dd_d.nworkers);
	for (i = 0; i < dd_d.nworkers; i++) {
		struct dd_mail *m = calloc(1, sizeof(*m));

		if (!m) {
			/* Answer for the worker we cannot reach. */
			dd_ctl_answered(&dd_d.w[i], r);
			continue;
		}
		m->type = DD_MAIL_CTL;
		m->ctl = r;
		dd_post(&dd_d.w[i], m);
	}
}

bool dd_ctl_command(struct dd_worker *w, struct dd_in *in, const char *line)
{
	struct dd_ctl_cmd cmd;
	struct dd_ctl_req *r;
	const char *text;
	int code = dd_ctl_parse(line, &cmd, &text);

	if (code) {
		dd_in_control_done(in, code, text);
		return false;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		dd_in_control_done(in, 451, "4.3.0 Out of memory");
		return false;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->op = cmd.op;
	r->in = in;
	r->origin = w;
	r->by_qid = cmd.by_qid;
	r->qid = cmd.qid;
	memcpy(r->arg, cmd.arg, sizeof(r->arg));
	if (r->op == DD_CTL_STATS) {
		r->st = stats_new();
		if (!r->st) {
			req_free(r);
			dd_in_control_done(in, 451, "4.3.0 Out of memory");
			return false;
		}
	}
	ctl_post(r);
	return true;
}

int dd_ctl_stats(struct dd_worker *w,
		 void (*done)(struct dd_worker *w, struct dd_stats *st,
			      void *arg), void *arg)
{
	struct dd_ctl_req *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->st = stats_new();
	if (!r->st) {
		free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->op = DD_CTL_STATS;
	r->origin = w;
	r->done = done;
	r->done_arg = arg;
	ctl_post(r);
	return 0;
}
