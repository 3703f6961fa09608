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
#include <unistd.h>

#include "dd_core.h"
#include "dd_log.h"

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

static void req_free(struct dd_ctl_req *r)
{
	pthread_mutex_destroy(&r->lock);
	free(r->out);
	free(r);
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
	char line[1024];
	struct dd_spool_stats st;
	char *text;
	size_t len;

	(void)w;
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
		dd_spool_stats(dd_d.spool, &st);
		snprintf(line, sizeof(line),
			 "{\"backend\":\"%s\",\"threads\":%u,"
			 "\"uptime_s\":%.3f,\"injected\":%lu,\"bounces_sent\":%lu,"
			 "\"delivered\":%" PRIu64 ",\"deferrals\":%" PRIu64
			 ",\"failed\":%" PRIu64 ",\"attempts\":%" PRIu64
			 ",\"queued\":%" PRIu64 ",\"deferred\":%" PRIu64
			 ",\"active\":%" PRIu64 ",\"held\":%" PRIu64
			 ",\"in_conns\":%u,\"out_conns\":%" PRIu64 ",\"out_conns_peak\":%u,"
			 "\"events\":%" PRIu64 ",\"waits\":%" PRIu64
			 ",\"rss_kb\":%ld,\"spool_segments\":%" PRIu64
			 ",\"spool_bytes\":%" PRIu64 ",\"spool_batches\":%" PRIu64
			 ",\"spool_records\":%" PRIu64 ",\"spool_fsyncs\":%" PRIu64
			 ",\"spool_skipped\":%" PRIu64 ",\"spool_reclaimed\":%" PRIu64
			 "}",
			 dd_d.kmod ? "evq" : "epoll", dd_d.nworkers,
			 (double)(dd_mono_ns() - dd_d.start_ns) / 1e9,
			 atomic_load(&dd_d.injected),
			 atomic_load(&dd_d.bounces_sent), r->delivered,
			 r->deferrals, r->bounced, r->attempts, r->queued,
			 r->deferred, r->active, r->held,
			 atomic_load(&dd_d.in_conns), r->conns,
			 atomic_load(&dd_d.out_conns_peak), r->events, r->waits,
			 rss_kb(), st.segments, st.bytes, st.batches, st.records,
			 st.fsyncs, st.skipped, st.reclaimed);
		dd_ctl_append(r, "%s", line);
		break;
	}
	text = r->out ? r->out : "";
	len = r->len;
	while (len && text[len - 1] == '\n')
		text[--len] = 0;
	dd_in_control_done(r->in, 250, text);
	req_free(r);
}

static bool parse_qid(const char *s, uint64_t *qid)
{
	char *end;

	if (strlen(s) != 16)
		return false;
	errno = 0;
	*qid = strtoull(s, &end, 16);
	return !errno && !*end;
}

bool dd_ctl_command(struct dd_worker *w, struct dd_in *in, const char *line)
{
	static const struct { const char *verb; uint8_t op; int args; } cmds[] = {
		{ "XQUEUE", DD_CTL_QUEUE, 0 },
		{ "XFLUSH", DD_CTL_FLUSH, 1 },	/* optional */
		{ "XHOLD", DD_CTL_HOLD, 2 },	/* required */
		{ "XRELEASE", DD_CTL_RELEASE, 2 },
		{ "XSTATS", DD_CTL_STATS, 0 },
	};
	const char *sp = strchr(line, ' ');
	size_t vlen = sp ? (size_t)(sp - line) : strlen(line);
	const char *arg = sp ? sp + 1 : "";
	struct dd_ctl_req *r;
	unsigned int i;

	while (*arg == ' ')
		arg++;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strlen(cmds[i].verb) == vlen &&
		    !strncasecmp(line, cmds[i].verb, vlen))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0])) {
		dd_in_control_done(in, 500, "5.5.1 Unknown control command");
		return false;
	}
	if ((cmds[i].args == 0 && *arg) || (cmds[i].args == 2 && !*arg) ||
	    strlen(arg) > DD_DOMAIN_MAX || strchr(arg, ' ')) {
		dd_in_control_done(in, 501, "5.5.4 Syntax error in arguments");
		return false;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		dd_in_control_done(in, 451, "4.3.0 Out of memory");
		return false;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->op = cmds[i].op;
	r->in = in;
	r->origin = w;
	if ((r->op == DD_CTL_HOLD || r->op == DD_CTL_RELEASE) &&
	    parse_qid(arg, &r->qid)) {
		r->by_qid = true;
	} else {
		char *p;

		snprintf(r->arg, sizeof(r->arg), "%s", *arg == '@' ? arg + 1 : arg);
		for (p = r->arg; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p += 'a' - 'A';
	}
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
	return true;
}
