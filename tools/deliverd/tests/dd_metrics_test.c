// SPDX-License-Identifier: GPL-2.0
/*
 * dd_metrics_test: what the metrics endpoint and XSTATS are made of
 * (dd_prom.c) -- label escaping, exposition lines, the whole exposition
 * checked line by line, XSTATS's JSON lines, the largest destinations,
 * the HTTP request parser with each bad input and the status it gets --
 * and metrics_listen's validation (dd_conf.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

#include <json.h>

#include "../dd_conf.h"
#include "../dd_prom.h"

static const char *esc(const char *s)
{
	static struct dd_buf b;

	dd_buf_clear(&b);
	dd_buf_adds(&b, "");
	if (dd_prom_escape(&b, s))
		return "(ENOMEM)";
	return b.p;
}

TEST(escape)
{
	EXPECT_STREQ("example.com", esc("example.com"));
	EXPECT_STREQ("", esc(""));
	EXPECT_STREQ("a\\\\b", esc("a\\b"));
	EXPECT_STREQ("a\\\"b", esc("a\"b"));
	EXPECT_STREQ("a\\nb", esc("a\nb"));
	EXPECT_STREQ("\\\\\\\"\\n", esc("\\\"\n"));
	/* Other controls and tabs are allowed in label values as they are. */
	EXPECT_STREQ("a\tb\rc", esc("a\tb\rc"));
	/* UTF-8 passes: 2, 3 and 4 bytes. */
	EXPECT_STREQ("b\xc3\xbc" "cher.example", esc("b\xc3\xbc" "cher.example"));
	EXPECT_STREQ("\xe4\xbe\x8b.\xe6\xb5\x8b\xe8\xaf\x95",
		     esc("\xe4\xbe\x8b.\xe6\xb5\x8b\xe8\xaf\x95"));
	EXPECT_STREQ("\xf0\x9f\x93\xa7", esc("\xf0\x9f\x93\xa7"));
	/* Not UTF-8: each bad byte becomes U+FFFD. */
	EXPECT_STREQ("a\xef\xbf\xbd" "b", esc("a\xff" "b"));
	EXPECT_STREQ("a\xef\xbf\xbd", esc("a\xc3"));		/* cut short */
	EXPECT_STREQ("\xef\xbf\xbd\xef\xbf\xbd", esc("\xc0\xaf"));	/* overlong */
	EXPECT_STREQ("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
		     esc("\xed\xa0\x80"));			/* surrogate */
	EXPECT_STREQ("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
		     esc("\xf4\x90\x80\x80"));			/* > U+10FFFF */
	EXPECT_STREQ("\xef\xbf\xbd\xef\xbf\xbd\\\"",
		     esc("\xe4\xbe\""));			/* cut by a quote */
}

TEST(lines)
{
	struct dd_buf b = DD_BUF_INIT;

	ASSERT_EQ(0, dd_prom_family(&b, "x_total", "counter",
				    "a \\ b\nc \"d\""));
	EXPECT_STREQ("# HELP x_total a \\\\ b\\nc \"d\"\n"
		     "# TYPE x_total counter\n", b.p);
	dd_buf_clear(&b);
	ASSERT_EQ(0, dd_prom_sample(&b, "x_total", NULL, 0));
	ASSERT_EQ(0, dd_prom_sample(&b, "x_total", NULL, 18446744073709551615ULL));
	ASSERT_EQ(0, dd_prom_sample(&b, "x",
				    (const char *const []){ "a", "1", NULL }, 7));
	ASSERT_EQ(0, dd_prom_sample(&b, "x",
				    (const char *const []){ "a", "1", "b",
							    "q\"\\\n", NULL },
				    8));
	EXPECT_STREQ("x_total 0\n"
		     "x_total 18446744073709551615\n"
		     "x{a=\"1\"} 7\n"
		     "x{a=\"1\",b=\"q\\\"\\\\\\n\"} 8\n", b.p);
	dd_buf_clear(&b);
	ASSERT_EQ(0, dd_prom_sample_f(&b, "t", NULL, 1.5));
	ASSERT_EQ(0, dd_prom_sample_f(&b, "t", NULL, 0.1));
	ASSERT_EQ(0, dd_prom_sample_f(&b, "t", NULL, 1795497133.044));
	ASSERT_EQ(0, dd_prom_sample_f(&b, "t", NULL, 0.0 / 0.0));
	ASSERT_EQ(0, dd_prom_sample_f(&b, "t", NULL, 1.0 / 0.0));
	ASSERT_EQ(0, dd_prom_sample_f(&b, "t", NULL, -1.0 / 0.0));
	EXPECT_STREQ("t 1.5\nt 0.1\nt 1795497133.044\nt NaN\nt +Inf\nt -Inf\n",
		     b.p);
	dd_buf_free(&b);
}

TEST(top)
{
	struct dd_top a, b, m;
	uint64_t sum = 0, kept = 0;
	char name[32];
	unsigned int i;

	/* 150 destinations of backlog 1..150: 51..150 kept, the rest summed. */
	dd_top_init(&a, 100);
	for (i = 1; i <= 150; i++) {
		snprintf(name, sizeof(name), "d%u.example", (i * 37) % 151);
		dd_top_add(&a, name, i, i % 3);
		sum += i;
	}
	ASSERT_EQ(100, a.n);
	EXPECT_EQ(50, a.other_n);
	EXPECT_EQ(50 * 51 / 2, a.other_backlog);
	dd_top_sort(&a);
	for (i = 0; i < a.n; i++) {
		EXPECT_EQ(150 - i, a.v[i].backlog);
		kept += a.v[i].backlog;
	}
	EXPECT_EQ(sum, kept + a.other_backlog);

	/* Ties: more connections first, then by name. */
	dd_top_init(&b, 2);
	dd_top_add(&b, "b.example", 5, 0);
	dd_top_add(&b, "a.example", 5, 0);
	dd_top_add(&b, "c.example", 5, 1);
	dd_top_add(&b, "d.example", 4, 9);
	dd_top_sort(&b);
	ASSERT_EQ(2, b.n);
	EXPECT_STREQ("c.example", b.v[0].dest);
	EXPECT_STREQ("a.example", b.v[1].dest);
	EXPECT_EQ(2, b.other_n);
	EXPECT_EQ(9, b.other_backlog);
	EXPECT_EQ(9, b.other_conns);

	/* Merging the workers' shares keeps the largest of all. */
	dd_top_init(&m, 100);
	dd_top_merge(&m, &a);
	dd_top_merge(&m, &b);
	dd_top_sort(&m);
	EXPECT_EQ(100, m.n);
	EXPECT_EQ(a.n + a.other_n + b.n + b.other_n, m.n + m.other_n);
	EXPECT_EQ(150, m.v[0].backlog);
	EXPECT_EQ(sum + 19, m.other_backlog + ({
		uint64_t s = 0;
		for (i = 0; i < m.n; i++)
			s += m.v[i].backlog;
		s; }));

	/* max 0: only the sum. */
	dd_top_free(&b);
	dd_top_init(&b, 0);
	dd_top_add(&b, "x", 3, 1);
	EXPECT_EQ(0, b.n);
	EXPECT_EQ(3, b.other_backlog);
	EXPECT_EQ(1, b.other_conns);
	dd_top_free(&a);
	dd_top_free(&b);
	dd_top_free(&m);
}

static void sample_stats(struct dd_stats *st, struct dd_stats_worker *w)
{
	memset(st, 0, sizeof(*st));
	st->backend = "evq";
	st->version = "1.0.0";
	st->start_time = 1795497133.044;
	st->uptime = 12.5;
	st->rss_kb = 2048;
	st->queued = 1;
	st->deferred = 2;
	st->active = 3;
	st->held = 4;
	st->delivered = 10;
	st->deferrals = 5;
	st->bounced = 3;
	st->expired = 2;
	st->attempts = 20;
	st->injected = 12;
	st->bounces_sent = 4;
	st->out_conns = 2;
	st->out_opened = 9;
	st->out_peak = 5;
	st->in_conns = 1;
	st->spool_bytes = 65536;
	st->spool_segments = 1;
	st->spool_fsyncs = 7;
	st->spool_batches = 6;
	st->nworkers = 2;
	w[0] = (struct dd_stats_worker){ .events = 100, .waits = 50 };
	w[1] = (struct dd_stats_worker){ .events = 200, .waits = 60,
					 .out_conns = 2 };
	st->workers = w;
	dd_top_init(&st->top, 2);
	dd_top_add(&st->top, "a\"b\\c.example", 5, 1);
	dd_top_add(&st->top, "b\xc3\xbc" "cher.example", 3, 1);
	dd_top_add(&st->top, "small.example", 1, 0);
	dd_top_add(&st->top, "tiny.example", 1, 0);
	dd_top_sort(&st->top);
}

/*
 * Every line of the exposition is a HELP, a TYPE or a sample of the
 * family last typed; a family is typed once; samples are unique.
 */
TEST(exposition)
{
	static const char *const want[] = {
		"deliverd_info{backend=\"evq\",version=\"1.0.0\"} 1\n",
		"deliverd_start_time_seconds 1795497133.044\n",
		"deliverd_uptime_seconds 12.5\n",
		"deliverd_threads 2\n",
		"deliverd_queue_recipients{state=\"queued\"} 1\n",
		"deliverd_queue_recipients{state=\"deferred\"} 2\n",
		"deliverd_queue_recipients{state=\"active\"} 3\n",
		"deliverd_queue_recipients{state=\"held\"} 4\n",
		"deliverd_deliveries_total{outcome=\"delivered\"} 10\n",
		"deliverd_deliveries_total{outcome=\"deferred\"} 5\n",
		"deliverd_deliveries_total{outcome=\"bounced\"} 3\n",
		"deliverd_deliveries_total{outcome=\"expired\"} 2\n",
		"deliverd_delivery_attempts_total 20\n",
		"deliverd_messages_injected_total 12\n",
		"deliverd_bounces_sent_total 4\n",
		"deliverd_outbound_connections 2\n",
		"deliverd_outbound_connections_opened_total 9\n",
		"deliverd_outbound_connections_peak 5\n",
		"deliverd_inbound_connections 1\n",
		"deliverd_destinations 4\n",
		"deliverd_destination_backlog{dest=\"a\\\"b\\\\c.example\"} 5\n",
		"deliverd_destination_backlog{dest=\"b\xc3\xbc" "cher.example\"} 3\n",
		"deliverd_destination_backlog{dest=\"(other)\"} 2\n",
		"deliverd_destination_connections{dest=\"(other)\"} 0\n",
		"deliverd_spool_bytes 65536\n",
		"deliverd_spool_segments 1\n",
		"deliverd_spool_fsyncs_total 7\n",
		"deliverd_spool_batches_total 6\n",
		"deliverd_loop_events_total{worker=\"0\"} 100\n",
		"deliverd_loop_events_total{worker=\"1\"} 200\n",
		"deliverd_loop_waits_total{worker=\"1\"} 60\n",
		"deliverd_resident_memory_bytes 2097152\n",
	};
	struct dd_stats_worker w[2];
	struct dd_buf b = DD_BUF_INIT, seen = DD_BUF_INIT;
	struct dd_stats st;
	regex_t sample, help, type;
	char family[128] = "";
	char *line, *save = NULL;
	unsigned int i, nsamples = 0;

	sample_stats(&st, w);
	ASSERT_EQ(0, dd_prom_format(&b, &st));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *w1 = want[i] ? want[i] : "";

		EXPECT_NE(NULL, strstr(b.p, w1)) TH_LOG("%s", w1);
	}
	ASSERT_EQ('\n', b.p[b.len - 1]);
	ASSERT_EQ(0, regcomp(&sample,
		"^([a-zA-Z_:][a-zA-Z0-9_:]*)"
		"(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
		"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})?"
		" (-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf)$",
		REG_EXTENDED));
	ASSERT_EQ(0, regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$",
			     REG_EXTENDED));
	ASSERT_EQ(0, regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) "
			     "(counter|gauge|untyped)$", REG_EXTENDED));
	dd_buf_adds(&seen, "\n");
	for (line = strtok_r(b.p, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[2];
		char key[1024];

		if (!regexec(&help, line, 2, m, 0))
			continue;
		if (!regexec(&type, line, 2, m, 0)) {
			snprintf(family, sizeof(family), "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so),
				 line + m[1].rm_so);
			snprintf(key, sizeof(key), "\n# %s\n", family);
			EXPECT_EQ(NULL, strstr(seen.p, key)) TH_LOG("%s", line);
			dd_buf_adds(&seen, key + 1);
			/* Counters end in _total. */
			if (strstr(line, " counter"))
				EXPECT_EQ(0, strcmp(family + strlen(family) - 6,
						    "_total"));
			continue;
		}
		ASSERT_EQ(0, regexec(&sample, line, 2, m, 0)) TH_LOG("%s", line);
		EXPECT_EQ(strlen(family), m[1].rm_eo) TH_LOG("%s", line);
		EXPECT_EQ(0, strncmp(line, family, strlen(family)));
		/* The series, less the value, is not repeated. */
		snprintf(key, sizeof(key), "\n%.*s\n",
			 (int)(strrchr(line, ' ') - line), line);
		EXPECT_EQ(NULL, strstr(seen.p, key)) TH_LOG("%s", line);
		dd_buf_adds(&seen, key + 1);
		nsamples++;
	}
	EXPECT_LT(30, nsamples);
	regfree(&sample);
	regfree(&help);
	regfree(&type);
	dd_buf_free(&b);
	dd_buf_free(&seen);
	dd_top_free(&st.top);
}

TEST(xstats_json)
{
	struct dd_stats_worker w[2];
	struct dd_buf b = DD_BUF_INIT;
	struct dd_stats st;
	json_object *o, *v;
	char *line, *save = NULL;
	unsigned int n = 0, nworker = 0, ndest = 0;

	sample_stats(&st, w);
	ASSERT_EQ(0, dd_stats_json(&b, &st));
	for (line = strtok_r(b.p, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		o = json_tokener_parse(line);
		ASSERT_NE(NULL, o) TH_LOG("not JSON: %s", line);
		if (n == 0) {
			/* The fields XSTATS always had, and the new ones. */
			static const char *const keys[] = {
				"backend", "threads", "uptime_s", "injected",
				"bounces_sent", "delivered", "deferrals",
				"failed", "attempts", "queued", "deferred",
				"active", "held", "in_conns", "out_conns",
				"out_conns_peak", "events", "waits", "rss_kb",
				"spool_segments", "spool_bytes",
				"spool_batches", "spool_records",
				"spool_fsyncs", "spool_skipped",
				"spool_reclaimed", "version", "start_time",
				"bounced", "expired", "out_conns_opened",
				"dests",
			};
			for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
				const char *key = keys[k];

				EXPECT_TRUE(json_object_object_get_ex(o, key, &v))
					TH_LOG("%s", key);
			}
			json_object_object_get_ex(o, "failed", &v);
			EXPECT_EQ(5, json_object_get_int64(v));
			json_object_object_get_ex(o, "events", &v);
			EXPECT_EQ(300, json_object_get_int64(v));
			json_object_object_get_ex(o, "dests", &v);
			EXPECT_EQ(4, json_object_get_int64(v));
		} else if (json_object_object_get_ex(o, "worker", &v)) {
			EXPECT_EQ(nworker, json_object_get_int(v));
			nworker++;
		} else {
			ASSERT_TRUE(json_object_object_get_ex(o, "dest", &v));
			if (ndest == 0)
				EXPECT_STREQ("a\"b\\c.example",
					     json_object_get_string(v));
			if (ndest == 2) {
				EXPECT_STREQ("(other)", json_object_get_string(v));
				json_object_object_get_ex(o, "backlog", &v);
				EXPECT_EQ(2, json_object_get_int64(v));
				json_object_object_get_ex(o, "dests", &v);
				EXPECT_EQ(2, json_object_get_int64(v));
			}
			ndest++;
		}
		json_object_put(o);
	}
	EXPECT_EQ(2, nworker);
	EXPECT_EQ(3, ndest);
	dd_buf_free(&b);
	dd_top_free(&st.top);
}

#define OKREQ	"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n" \
		"User-Agent: Prometheus/2.45.0\r\nAccept: text/plain\r\n\r\n"

static int parse(const char *s)
{
	return dd_http_parse(s, strlen(s), DD_HTTP_REQ_MAX);
}

TEST(http_parse)
{
	static const struct { const char *req; int status; } cases[] = {
		{ OKREQ, 200 },
		{ "GET /metrics HTTP/1.0\r\n\r\n", 200 },
		{ "GET /metrics?name[]=x HTTP/1.1\r\nHost: h\r\n\r\n", 200 },
		{ "GET http://h:9100/metrics HTTP/1.1\r\nHost: h\r\n\r\n", 200 },
		{ "GET /metrics HTTP/1.1\nHost: h\n\n", 200 },	/* bare LF */
		{ "\r\n\r\nGET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 200 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n", 200 },
		{ "GET /metrics HTTP/1.1\r\nhOsT: h\r\n\r\n", 200 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE", 200 },
		/* other paths */
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 404 },
		{ "GET /metricsx HTTP/1.1\r\nHost: h\r\n\r\n", 404 },
		{ "GET /metrics/ HTTP/1.1\r\nHost: h\r\n\r\n", 404 },
		{ "GET /METRICS HTTP/1.1\r\nHost: h\r\n\r\n", 404 },
		{ "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", 404 },
		{ "POST /other HTTP/1.1\r\nHost: h\r\n\r\n", 404 },
		/* other methods */
		{ "POST /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 405 },
		{ "HEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 405 },
		{ "get /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 405 },
		{ "DELETE /metrics HTTP/1.0\r\n\r\n", 405 },
		/* versions */
		{ "GET /metrics HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
		{ "GET /metrics HTTP/0.9\r\n\r\n", 505 },
		/* malformed */
		{ "GET /metrics\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\n\r\n", 400 },		/* no Host */
		{ "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
		{ "GET  /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /metrics  HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1 \r\nHost: h\r\n\r\n", 400 },
		{ " GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /metrics http/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.10\r\nHost: h\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1\r\nHost: h\r\n\r\n", 400 },
		{ "G@T /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET metrics HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /met\x01rics HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /m\xc3\xa9trics HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\rHost: h\r\n\r\n", 400 },	/* bare CR */
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nHost : h\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\nNo-Colon\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", 400 },
		{ "\x16\x03\x01\x02\x01\x01\xfc\x03\x03\r\n\r\n", 400 },	/* TLS */
		/* not complete yet */
		{ "", 0 },
		{ "GET /metrics HTTP/1.1", 0 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\n", 0 },
		{ "GET /metrics HTTP/1.1\r\nHost: h\r\n\r", 0 },
		{ "\r\n", 0 },
		/* a bad request line is answered without waiting for more */
		{ "BAD REQUEST LINE\r\n", 400 },
	};
	struct dd_buf big = DD_BUF_INIT;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *r = cases[i].req ? cases[i].req : "";

		EXPECT_EQ(cases[i].status, parse(r))
			TH_LOG("case %zu: %s", i, r);
	}
	/* Every prefix of a good request waits for more. */
	for (i = 0; i < strlen(OKREQ); i++)
		EXPECT_EQ(0, dd_http_parse(OKREQ, i, DD_HTTP_REQ_MAX))
			TH_LOG("prefix %zu", i);
	EXPECT_EQ(200, dd_http_parse(OKREQ, strlen(OKREQ), strlen(OKREQ)));
	/* A NUL is not a line's end. */
	EXPECT_EQ(400, dd_http_parse("GET /metrics HTTP/1.1\r\nHost: h\0\r\n\r\n",
				     35, DD_HTTP_REQ_MAX));

	/* Oversized: a header section past max is refused when max is in. */
	dd_buf_adds(&big, "GET /metrics HTTP/1.1\r\nHost: h\r\nX-Big: ");
	while (big.len < DD_HTTP_REQ_MAX + 10)
		dd_buf_addc(&big, 'a');
	EXPECT_EQ(0, dd_http_parse(big.p, DD_HTTP_REQ_MAX - 1, DD_HTTP_REQ_MAX));
	EXPECT_EQ(400, dd_http_parse(big.p, DD_HTTP_REQ_MAX, DD_HTTP_REQ_MAX));
	dd_buf_adds(&big, "\r\n\r\n");
	EXPECT_EQ(400, dd_http_parse(big.p, big.len, DD_HTTP_REQ_MAX));
	/* A request line alone past max */
	dd_buf_clear(&big);
	dd_buf_adds(&big, "GET /");
	while (big.len < DD_HTTP_REQ_MAX)
		dd_buf_addc(&big, 'm');
	EXPECT_EQ(400, dd_http_parse(big.p, big.len, DD_HTTP_REQ_MAX));
	/* Too many headers, though short */
	dd_buf_clear(&big);
	dd_buf_adds(&big, "GET /metrics HTTP/1.1\r\nHost: h\r\n");
	for (i = 0; i < DD_HTTP_HEADERS_MAX; i++)
		dd_buf_addf(&big, "X%zu: v\r\n", i);
	dd_buf_adds(&big, "\r\n");
	EXPECT_EQ(400, dd_http_parse(big.p, big.len, DD_HTTP_REQ_MAX));
	dd_buf_free(&big);

	EXPECT_STREQ("Not Found", dd_http_reason(404));
	EXPECT_STREQ("Method Not Allowed", dd_http_reason(405));
	EXPECT_STREQ("Bad Request", dd_http_reason(400));
}

TEST(conf_metrics_listen)
{
	static const char *const bad[][2] = {
		{ "localhost:9100", "metrics_listen: bad address 'localhost:9100' "
		  "(expected numeric address:port, [ipv6]:port or none)" },
		{ "127.0.0.1", NULL },
		{ "127.0.0.1:0", NULL },
		{ "127.0.0.1:65536", NULL },
		{ "127.0.0.1:http", NULL },
		{ "::1:9100", NULL },
		{ "[::1]9100", NULL },
		{ "[127.0.0.1]:9100", NULL },
		{ "", NULL },
		{ "127.0.0.1:9100,127.0.0.1:9101", NULL },
		{ "127.0.0.1:2525", "metrics_listen: 127.0.0.1:2525 is also in "
		  "listen" },
	};
	struct dd_conf c;
	char err[512];
	size_t i;

	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_STREQ("none", c.metrics_listen);
	EXPECT_EQ(AF_UNSPEC, c.metrics_addr.ss_family);
	ASSERT_EQ(0, dd_conf_set(&c, "metrics_listen", "127.0.0.1:9100", err,
				 sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(AF_INET, c.metrics_addr.ss_family);
	EXPECT_EQ(9100, ntohs(((struct sockaddr_in *)&c.metrics_addr)->sin_port));
	ASSERT_EQ(0, dd_conf_set(&c, "metrics_listen", "[::1]:9101", err,
				 sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(AF_INET6, c.metrics_addr.ss_family);
	EXPECT_EQ(9101, ntohs(((struct sockaddr_in6 *)&c.metrics_addr)->sin6_port));
	dd_conf_free(&c);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[512];

		ASSERT_EQ(0, dd_conf_init(&c));
		ASSERT_EQ(0, dd_conf_set(&c, "metrics_listen", bad[i][0], err,
					 sizeof(err)));
		err[0] = 0;
		EXPECT_EQ(-EINVAL, dd_conf_finish(&c, err, sizeof(err)))
			TH_LOG("%s", bad[i][0]);
		snprintf(want, sizeof(want), "metrics_listen: bad address '%s' "
			 "(expected numeric address:port, [ipv6]:port or none)",
			 bad[i][0]);
		EXPECT_STREQ(bad[i][1] ? bad[i][1] : want, err);
		EXPECT_EQ(AF_UNSPEC, c.metrics_addr.ss_family);
		dd_conf_free(&c);
	}
}

TEST_HARNESS_MAIN
