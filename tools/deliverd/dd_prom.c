// SPDX-License-Identifier: GPL-2.0
/*
 * The figures of XSTATS and of the metrics endpoint, formatted: the
 * Prometheus text exposition format 0.0.4 and JSON lines; the largest
 * destinations; and the HTTP request parser of the endpoint.  See
 * dd_prom.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dd_log.h"
#include "dd_prom.h"

/* --- the largest destinations --- */

void dd_top_init(struct dd_top *t, unsigned int max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

void dd_top_free(struct dd_top *t)
{
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

/* Does a come before b in the report (bigger backlog first)? */
static bool top_before(const struct dd_stats_dest *a,
		       const struct dd_stats_dest *b)
{
	if (a->backlog != b->backlog)
		return a->backlog > b->backlog;
	if (a->conns != b->conns)
		return a->conns > b->conns;
	return strcmp(a->dest, b->dest) < 0;
}

static void top_swap(struct dd_top *t, unsigned int a, unsigned int b)
{
	struct dd_stats_dest x = t->v[a];

	t->v[a] = t->v[b];
	t->v[b] = x;
}

/* The heap's root is the entry reported last: the first to give way. */
static void top_down(struct dd_top *t, unsigned int i)
{
	for (;;) {
		unsigned int l = 2 * i + 1, r = l + 1, m = i;

		if (l < t->n && top_before(&t->v[m], &t->v[l]))
			m = l;
		if (r < t->n && top_before(&t->v[m], &t->v[r]))
			m = r;
		if (m == i)
			return;
		top_swap(t, i, m);
		i = m;
	}
}

static void top_up(struct dd_top *t, unsigned int i)
{
	while (i > 0) {
		unsigned int p = (i - 1) / 2;

		if (!top_before(&t->v[p], &t->v[i]))
			return;
		top_swap(t, i, p);
		i = p;
	}
}

static void top_other(struct dd_top *t, uint64_t backlog, uint64_t conns)
{
	t->other_n++;
	t->other_backlog += backlog;
	t->other_conns += conns;
}

void dd_top_add(struct dd_top *t, const char *dest, uint64_t backlog,
		uint64_t conns)
{
	struct dd_stats_dest e = { .backlog = backlog, .conns = conns };

	snprintf(e.dest, sizeof(e.dest), "%s", dest);
	if (!t->v && t->max && !t->nomem) {
		t->v = calloc(t->max, sizeof(*t->v));
		/* Without room the figures still add up, in the sum. */
		t->nomem = !t->v;
	}
	if (!t->v) {
		top_other(t, backlog, conns);
		return;
	}
	if (t->n < t->max) {
		t->v[t->n++] = e;
		top_up(t, t->n - 1);
		return;
	}
	if (!top_before(&e, &t->v[0])) {
		top_other(t, backlog, conns);
		return;
	}
	top_other(t, t->v[0].backlog, t->v[0].conns);
	t->v[0] = e;
	top_down(t, 0);
}

void dd_top_merge(struct dd_top *t, const struct dd_top *from)
{
	unsigned int i;

	for (i = 0; i < from->n; i++)
		dd_top_add(t, from->v[i].dest, from->v[i].backlog,
			   from->v[i].conns);
	t->other_n += from->other_n;
	t->other_backlog += from->other_backlog;
	t->other_conns += from->other_conns;
}

static int top_cmp(const void *a, const void *b)
{
	const struct dd_stats_dest *x = a, *y = b;

	if (top_before(x, y))
		return -1;
	return top_before(y, x) ? 1 : 0;
}

void dd_top_sort(struct dd_top *t)
{
	if (t->n)
		qsort(t->v, t->n, sizeof(*t->v), top_cmp);
}

/* --- the exposition format --- */

/* Length of the UTF-8 sequence at s (RFC 3629), 0 if there is none. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned int c = s[0], min, n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the '\0' */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int dd_prom_escape(struct dd_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int err = 0;

	while (*p && !err) {
		size_t n;

		switch (*p) {
		case '\\':
			err = dd_buf_add(b, "\\\\", 2);
			p++;
			continue;
		case '"':
			err = dd_buf_add(b, "\\\"", 2);
			p++;
			continue;
		case '\n':
			err = dd_buf_add(b, "\\n", 2);
			p++;
			continue;
		}
		n = utf8_len(p);
		if (n) {
			err = dd_buf_add(b, p, n);
			p += n;
		} else {
			err = dd_buf_add(b, "\xef\xbf\xbd", 3);
			p++;
		}
	}
	return err;
}

int dd_prom_family(struct dd_buf *b, const char *name, const char *type,
		   const char *help)
{
	int err = dd_buf_addf(b, "# HELP %s ", name);

	/* HELP text escapes backslash and line feed only. */
	for (; *help && !err; help++) {
		if (*help == '\\')
			err = dd_buf_add(b, "\\\\", 2);
		else if (*help == '\n')
			err = dd_buf_add(b, "\\n", 2);
		else
			err = dd_buf_addc(b, *help);
	}
	return err ? err : dd_buf_addf(b, "\n# TYPE %s %s\n", name, type);
}

static int labels_add(struct dd_buf *b, const char *name,
		      const char *const *labels)
{
	int err = dd_buf_adds(b, name);
	bool first = true;

	for (; !err && labels && labels[0] && labels[1]; labels += 2) {
		err = dd_buf_addf(b, "%s%s=\"", first ? "{" : ",", labels[0]);
		if (!err)
			err = dd_prom_escape(b, labels[1]);
		if (!err)
			err = dd_buf_addc(b, '"');
		first = false;
	}
	if (!err && !first)
		err = dd_buf_addc(b, '}');
	return err;
}

int dd_prom_sample(struct dd_buf *b, const char *name,
		   const char *const *labels, uint64_t value)
{
	int err = labels_add(b, name, labels);

	return err ? err : dd_buf_addf(b, " %" PRIu64 "\n", value);
}

int dd_prom_sample_f(struct dd_buf *b, const char *name,
		     const char *const *labels, double value)
{
	char v[40];
	int err = labels_add(b, name, labels);

	if (err)
		return err;
	if (isnan(value)) {
		snprintf(v, sizeof(v), "NaN");
	} else if (isinf(value)) {
		snprintf(v, sizeof(v), "%sInf", value < 0 ? "-" : "+");
	} else {
		/* The shortest of these that reads back the same. */
		snprintf(v, sizeof(v), "%.15g", value);
		if (strtod(v, NULL) != value)
			snprintf(v, sizeof(v), "%.17g", value);
	}
	return dd_buf_addf(b, " %s\n", v);
}

#define L(...)	((const char *const []){ __VA_ARGS__, NULL })

int dd_prom_format(struct dd_buf *b, const struct dd_stats *st)
{
	char idx[16];
	unsigned int i;
	int err = 0;

#define FAM(name, type, help) \
	do { if (!err) err = dd_prom_family(b, name, type, help); } while (0)
#define S(name, labels, v) \
	do { if (!err) err = dd_prom_sample(b, name, labels, v); } while (0)
#define SF(name, labels, v) \
	do { if (!err) err = dd_prom_sample_f(b, name, labels, v); } while (0)

	FAM("deliverd_info", "gauge",
	    "Always 1: the event backend and the daemon's version.");
	S("deliverd_info", L("backend", st->backend, "version", st->version),
	  1);
	FAM("deliverd_start_time_seconds", "gauge",
	    "When the daemon started, seconds since the Unix epoch.");
	SF("deliverd_start_time_seconds", NULL, st->start_time);
	FAM("deliverd_uptime_seconds", "gauge",
	    "Seconds since the daemon started.");
	SF("deliverd_uptime_seconds", NULL, st->uptime);
	FAM("deliverd_threads", "gauge", "Event-loop threads.");
	S("deliverd_threads", NULL, st->nworkers);

	FAM("deliverd_queue_recipients", "gauge",
	    "Recipients in the queue by state: queued (due now), deferred "
	    "(waiting for a retry), active (in a transaction), held.");
	S("deliverd_queue_recipients", L("state", "queued"), st->queued);
	S("deliverd_queue_recipients", L("state", "deferred"), st->deferred);
	S("deliverd_queue_recipients", L("state", "active"), st->active);
	S("deliverd_queue_recipients", L("state", "held"), st->held);

	FAM("deliverd_deliveries_total", "counter",
	    "Delivery attempts' outcomes per recipient: delivered, deferred "
	    "(temporary failure, retried), bounced (permanent failure), "
	    "expired (temporary failures until max_age).");
	S("deliverd_deliveries_total", L("outcome", "delivered"),
	  st->delivered);
	S("deliverd_deliveries_total", L("outcome", "deferred"),
	  st->deferrals);
	S("deliverd_deliveries_total", L("outcome", "bounced"), st->bounced);
	S("deliverd_deliveries_total", L("outcome", "expired"), st->expired);
	FAM("deliverd_delivery_attempts_total", "counter",
	    "Delivery attempts per recipient, whatever their outcome.");
	S("deliverd_delivery_attempts_total", NULL, st->attempts);
	FAM("deliverd_messages_injected_total", "counter",
	    "Messages accepted by SMTP (listeners and the control socket).");
	S("deliverd_messages_injected_total", NULL, st->injected);
	FAM("deliverd_bounces_sent_total", "counter",
	    "Bounce messages (delivery status notifications) queued.");
	S("deliverd_bounces_sent_total", NULL, st->bounces_sent);

	FAM("deliverd_outbound_connections", "gauge",
	    "Outbound SMTP connections open or opening.");
	S("deliverd_outbound_connections", NULL, st->out_conns);
	FAM("deliverd_outbound_connections_opened_total", "counter",
	    "Outbound SMTP connections opened.");
	S("deliverd_outbound_connections_opened_total", NULL, st->out_opened);
	FAM("deliverd_outbound_connections_peak", "gauge",
	    "Most outbound connections open at once since the start.");
	S("deliverd_outbound_connections_peak", NULL, st->out_peak);
	FAM("deliverd_inbound_connections", "gauge",
	    "Inbound SMTP sessions open on the listeners.");
	S("deliverd_inbound_connections", NULL, st->in_conns);

	FAM("deliverd_destinations", "gauge",
	    "Destinations (recipient domains) with recipients not final or "
	    "connections.");
	S("deliverd_destinations", NULL, st->top.n + st->top.other_n);
	FAM("deliverd_destination_backlog", "gauge",
	    "Recipients not final by destination: the 100 largest, the rest "
	    "summed as dest=\"(other)\".");
	for (i = 0; i < st->top.n; i++)
		S("deliverd_destination_backlog",
		  L("dest", st->top.v[i].dest), st->top.v[i].backlog);
	S("deliverd_destination_backlog", L("dest", DD_STATS_OTHER),
	  st->top.other_backlog);
	FAM("deliverd_destination_connections", "gauge",
	    "Outbound connections by destination, for the destinations of "
	    "deliverd_destination_backlog.");
	for (i = 0; i < st->top.n; i++)
		S("deliverd_destination_connections",
		  L("dest", st->top.v[i].dest), st->top.v[i].conns);
	S("deliverd_destination_connections", L("dest", DD_STATS_OTHER),
	  st->top.other_conns);

	FAM("deliverd_spool_bytes", "gauge", "Bytes of spool segments on disk.");
	S("deliverd_spool_bytes", NULL, st->spool_bytes);
	FAM("deliverd_spool_segments", "gauge", "Spool segments on disk.");
	S("deliverd_spool_segments", NULL, st->spool_segments);
	FAM("deliverd_spool_batches_total", "counter",
	    "Batches written by the spool's committer (group commits).");
	S("deliverd_spool_batches_total", NULL, st->spool_batches);
	FAM("deliverd_spool_records_total", "counter",
	    "Message records written to the spool.");
	S("deliverd_spool_records_total", NULL, st->spool_records);
	FAM("deliverd_spool_fsyncs_total", "counter",
	    "fsync calls of the spool.");
	S("deliverd_spool_fsyncs_total", NULL, st->spool_fsyncs);
	FAM("deliverd_spool_reclaimed_segments_total", "counter",
	    "Spool segments unlinked once all their messages were final.");
	S("deliverd_spool_reclaimed_segments_total", NULL,
	  st->spool_reclaimed);
	FAM("deliverd_spool_skipped_records", "gauge",
	    "Corrupt or torn records skipped when the spool was opened.");
	S("deliverd_spool_skipped_records", NULL, st->spool_skipped);

	FAM("deliverd_loop_events_total", "counter",
	    "Events harvested by each event-loop thread.");
	for (i = 0; i < st->nworkers; i++) {
		snprintf(idx, sizeof(idx), "%u", i);
		S("deliverd_loop_events_total", L("worker", idx),
		  st->workers[i].events);
	}
	FAM("deliverd_loop_waits_total", "counter",
	    "Times each event-loop thread slept waiting for events.");
	for (i = 0; i < st->nworkers; i++) {
		snprintf(idx, sizeof(idx), "%u", i);
		S("deliverd_loop_waits_total", L("worker", idx),
		  st->workers[i].waits);
	}
	if (st->rss_kb >= 0) {
		FAM("deliverd_resident_memory_bytes", "gauge",
		    "Resident set size of the daemon.");
		S("deliverd_resident_memory_bytes", NULL,
		  (uint64_t)st->rss_kb * 1024);
	}
#undef FAM
#undef S
#undef SF
	return err;
}

/* --- XSTATS --- */

static int json_str(struct dd_buf *b, const char *s)
{
	char tmp[4 * (DD_DOMAIN_MAX + 1) + 8];

	dd_json_escape(tmp, sizeof(tmp), s);
	return dd_buf_addf(b, "\"%s\"", tmp);
}

int dd_stats_json(struct dd_buf *b, struct dd_stats *st)
{
	uint64_t events = 0, waits = 0;
	unsigned int i;
	int err;

	dd_top_sort(&st->top);
	for (i = 0; i < st->nworkers; i++) {
		events += st->workers[i].events;
		waits += st->workers[i].waits;
	}
	/* The fields XSTATS always had come first, as they were. */
	err = dd_buf_addf(b,
		"{\"backend\":\"%s\",\"threads\":%u,"
		"\"uptime_s\":%.3f,\"injected\":%" PRIu64
		",\"bounces_sent\":%" PRIu64
		",\"delivered\":%" PRIu64 ",\"deferrals\":%" PRIu64
		",\"failed\":%" PRIu64 ",\"attempts\":%" PRIu64
		",\"queued\":%" PRIu64 ",\"deferred\":%" PRIu64
		",\"active\":%" PRIu64 ",\"held\":%" PRIu64
		",\"in_conns\":%" PRIu64 ",\"out_conns\":%" PRIu64
		",\"out_conns_peak\":%" PRIu64
		",\"events\":%" PRIu64 ",\"waits\":%" PRIu64
		",\"rss_kb\":%ld,\"spool_segments\":%" PRIu64
		",\"spool_bytes\":%" PRIu64 ",\"spool_batches\":%" PRIu64
		",\"spool_records\":%" PRIu64 ",\"spool_fsyncs\":%" PRIu64
		",\"spool_skipped\":%" PRIu64 ",\"spool_reclaimed\":%" PRIu64,
		st->backend, st->nworkers, st->uptime, st->injected,
		st->bounces_sent, st->delivered, st->deferrals,
		st->bounced + st->expired, st->attempts, st->queued,
		st->deferred, st->active, st->held, st->in_conns,
		st->out_conns, st->out_peak, events, waits,
		st->rss_kb, st->spool_segments, st->spool_bytes,
		st->spool_batches, st->spool_records, st->spool_fsyncs,
		st->spool_skipped, st->spool_reclaimed);
	if (err)
		return err;
	err = dd_buf_addf(b, ",\"version\":");
	if (!err)
		err = json_str(b, st->version);
	if (!err)
		err = dd_buf_addf(b, ",\"start_time\":%.3f,\"bounced\":%" PRIu64
				  ",\"expired\":%" PRIu64
				  ",\"out_conns_opened\":%" PRIu64
				  ",\"dests\":%" PRIu64 "}\n",
				  st->start_time, st->bounced, st->expired,
				  st->out_opened,
				  (uint64_t)st->top.n + st->top.other_n);
	for (i = 0; !err && i < st->nworkers; i++)
		err = dd_buf_addf(b, "{\"worker\":%u,\"events\":%" PRIu64
				  ",\"waits\":%" PRIu64 ",\"out_conns\":%" PRIu64
				  "}\n", i, st->workers[i].events,
				  st->workers[i].waits,
				  st->workers[i].out_conns);
	for (i = 0; !err && i <= st->top.n; i++) {
		bool other = i == st->top.n;

		err = dd_buf_adds(b, "{\"dest\":");
		if (!err)
			err = json_str(b, other ? DD_STATS_OTHER :
				       st->top.v[i].dest);
		if (!err && other)
			err = dd_buf_addf(b, ",\"backlog\":%" PRIu64
					  ",\"conns\":%" PRIu64
					  ",\"dests\":%" PRIu64 "}\n",
					  st->top.other_backlog,
					  st->top.other_conns, st->top.other_n);
		else if (!err)
			err = dd_buf_addf(b, ",\"backlog\":%" PRIu64
					  ",\"conns\":%" PRIu64 "}\n",
					  st->top.v[i].backlog,
					  st->top.v[i].conns);
	}
	return err;
}

/* --- HTTP requests (RFC 9112) --- */

static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A header value's bytes: visible, space, tab or obs-text. */
static bool field_ok(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* The request line: 0 if well-formed, else the status for it. */
static int request_line(const char *s, size_t n, bool *get, bool *metrics,
			bool *v11)
{
	const char *sp1 = memchr(s, ' ', n), *sp2, *t, *q;
	size_t mlen, tlen;

	if (!sp1 || sp1 == s)
		return 400;
	mlen = (size_t)(sp1 - s);
	for (size_t i = 0; i < mlen; i++)
		if (!tchar((unsigned char)s[i]))
			return 400;
	t = sp1 + 1;
	sp2 = memchr(t, ' ', n - (size_t)(t - s));
	if (!sp2 || sp2 == t)
		return 400;
	tlen = (size_t)(sp2 - t);
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return 400;
	/* HTTP-version: exactly "HTTP/" DIGIT "." DIGIT, nothing after. */
	q = sp2 + 1;
	if ((size_t)(s + n - q) != 8 || memcmp(q, "HTTP/", 5) ||
	    q[5] < '0' || q[5] > '9' || q[6] != '.' || q[7] < '0' || q[7] > '9')
		return 400;
	if (q[5] != '1')
		return 505;
	*v11 = q[7] >= '1';
	*get = mlen == 3 && !memcmp(s, "GET", 3);
	/* absolute-form: the path follows the authority. */
	if (tlen > 7 && (!strncasecmp(t, "http://", 7) ||
			 (tlen > 8 && !strncasecmp(t, "https://", 8)))) {
		const char *a = memchr(t, ':', tlen) + 3;
		const char *slash = memchr(a, '/', (size_t)(t + tlen - a));

		if (!slash) {
			*metrics = false;
			return 0;
		}
		tlen -= (size_t)(slash - t);
		t = slash;
	} else if (t[0] != '/') {
		return 400;
	}
	q = memchr(t, '?', tlen);
	if (q)
		tlen = (size_t)(q - t);
	*metrics = tlen == strlen(DD_HTTP_PATH) &&
		   !memcmp(t, DD_HTTP_PATH, tlen);
	return 0;
}

int dd_http_parse(const char *buf, size_t len, size_t max)
{
	bool get = false, metrics = false, v11 = false, first = true;
	unsigned int nhdr = 0, nhost = 0;
	size_t pos = 0, lim = len < max ? len : max;
	int st;

	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	while (pos < lim && (buf[pos] == '\n' ||
			     (buf[pos] == '\r' && pos + 1 < lim &&
			      buf[pos + 1] == '\n')))
		pos += buf[pos] == '\r' ? 2 : 1;
	for (;;) {
		const char *s = buf + pos;
		const char *lf = memchr(s, '\n', lim - pos);
		size_t n;

		if (!lf)
			return len >= max ? 400 : 0;
		n = (size_t)(lf - s);
		pos += n + 1;
		if (n && s[n - 1] == '\r')
			n--;
		if (memchr(s, '\r', n) || memchr(s, '\0', n))
			return 400;
		if (first) {
			st = request_line(s, n, &get, &metrics, &v11);
			if (st)
				return st;
			first = false;
			continue;
		}
		if (!n)
			break;
		/* A folded line (obsolete) or a name that is not a token. */
		{
			const char *colon = memchr(s, ':', n);

			if (!colon || colon == s || ++nhdr > DD_HTTP_HEADERS_MAX)
				return 400;
			for (const char *c = s; c < colon; c++)
				if (!tchar((unsigned char)*c))
					return 400;
			if (!field_ok(colon + 1, n - (size_t)(colon + 1 - s)))
				return 400;
			if (colon - s == 4 && !strncasecmp(s, "host", 4))
				nhost++;
		}
	}
	/* RFC 9112 3.2: HTTP/1.1 requests name one Host. */
	if (nhost > 1 || (v11 && !nhost))
		return 400;
	if (!metrics)
		return 404;
	return get ? 200 : 405;
}

const char *dd_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "";
}
