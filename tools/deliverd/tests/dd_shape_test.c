// SPDX-License-Identifier: GPL-2.0
/*
 * dd_shape_test: the pure half of deliverd's shaping (dd_shape.c): the
 * shaping_file and its errors, lookup precedence, token buckets, the
 * throttle patterns and the throttle's cut and recovery steps.  Times are
 * made up, so nothing here sleeps.
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dd_shape.h"

#define SEC	1000000000ULL
#define T0	(1000 * SEC)		/* a monotonic time that is not 0 */

static const char *const DEF_PATTERNS =
	"421 *|4?? 4.7.* *|4?? * *rate limit*|4?? * *too many*|"
	"4?? * *try again later*|4?? * *throttl*";

/* text into a new temporary file; its path in path (PATH_MAX). */
static void tmpfile_with(char *path, const char *text)
{
	const char *t = getenv("TMPDIR");
	int fd;

	snprintf(path, PATH_MAX, "%s/dd_shape_test.XXXXXX", t && *t ? t : "/tmp");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
}

/* Load text as a shaping_file: the return value, the table, the error. */
static int load(const char *text, struct dd_shape_table **t, char *err,
		size_t errlen, char *path)
{
	int r;

	tmpfile_with(path, text);
	err[0] = 0;
	r = dd_shape_load(t, path, err, errlen);
	unlink(path);
	return r;
}

static const struct dd_shape_limits DEF = {
	.concurrency = 20, .conn_rate = 0, .msg_rate = 0, .max_msgs = 100,
};

TEST(file_and_precedence)
{
	struct dd_shape_table *t;
	struct dd_shape_limits l;
	char err[512], path[PATH_MAX];

	ASSERT_EQ(0, load("# shaping\n"
			  "example.com concurrency=2 msg_rate=5   # exact\n"
			  ".example.com concurrency=3\n"
			  ".b.example.com\tmax_msgs=7 conn_rate=1\n"
			  "\n"
			  "* msg_rate=50\n"
			  "mx:MX1.Example.NET. concurrency=4 conn_rate=2\n"
			  "mx:127.0.0.1:2601 max_msgs=3 msg_rate=9\n",
			  &t, err, sizeof(err), path)) TH_LOG("%s", err);
	EXPECT_EQ(6, dd_shape_count(t));

	dd_shape_lookup_dest(t, "Example.COM.", &DEF, &l);
	EXPECT_EQ(2, l.concurrency);
	EXPECT_EQ(5, l.msg_rate);
	EXPECT_EQ(0, l.conn_rate);	/* not set: the default */
	EXPECT_EQ(100, l.max_msgs);

	/* subdomain: ".example.com", not the exact line, not "*" */
	dd_shape_lookup_dest(t, "a.example.com", &DEF, &l);
	EXPECT_EQ(3, l.concurrency);
	EXPECT_EQ(0, l.msg_rate);

	/* the longest suffix wins */
	dd_shape_lookup_dest(t, "x.b.example.com", &DEF, &l);
	EXPECT_EQ(20, l.concurrency);
	EXPECT_EQ(7, l.max_msgs);
	EXPECT_EQ(1, l.conn_rate);

	/* ".b.example.com" is not b.example.com itself */
	dd_shape_lookup_dest(t, "b.example.com", &DEF, &l);
	EXPECT_EQ(3, l.concurrency);
	EXPECT_EQ(100, l.max_msgs);

	dd_shape_lookup_dest(t, "other.org", &DEF, &l);
	EXPECT_EQ(50, l.msg_rate);
	EXPECT_EQ(20, l.concurrency);

	/* an mx line is not a domain's, nor the other way round */
	dd_shape_lookup_mx(t, "mx1.example.net", &DEF, &l);
	EXPECT_EQ(4, l.concurrency);
	EXPECT_EQ(2, l.conn_rate);
	dd_shape_lookup_mx(t, "MX1.EXAMPLE.NET.", &DEF, &l);
	EXPECT_EQ(4, l.concurrency);
	dd_shape_lookup_mx(t, "127.0.0.1:2601", &DEF, &l);
	EXPECT_EQ(3, l.max_msgs);
	EXPECT_EQ(9, l.msg_rate);
	dd_shape_lookup_mx(t, "example.com", &DEF, &l);
	EXPECT_EQ(20, l.concurrency);	/* "*" is for domains only */
	EXPECT_EQ(0, l.msg_rate);
	dd_shape_lookup_dest(t, "mx1.example.net", &DEF, &l);
	EXPECT_EQ(50, l.msg_rate);	/* "*" */
	dd_shape_free(t);
}

TEST(no_file_no_table)
{
	struct dd_shape_table *t = NULL;
	struct dd_shape_limits l;
	char err[128];

	ASSERT_EQ(0, dd_shape_load(&t, "", err, sizeof(err)));
	ASSERT_NE(NULL, t);
	EXPECT_EQ(0, dd_shape_count(t));
	dd_shape_lookup_dest(t, "example.com", &DEF, &l);
	EXPECT_EQ(0, memcmp(&l, &DEF, sizeof(l)));
	dd_shape_free(t);
	dd_shape_lookup_dest(NULL, "example.com", &DEF, &l);
	EXPECT_EQ(20, l.concurrency);
	EXPECT_EQ(-ENOENT, dd_shape_load(&t, "/nonexistent/shaping", err,
					 sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "/nonexistent/shaping"));
}

TEST(file_errors)
{
	static const struct {
		const char *text;
		unsigned int line;
		const char *msg;
	} cases[] = {
		{ "a.com concurrency=2\nb.com speed=3\n", 2, "unknown key 'speed'" },
		{ "a.com concurrency=two\n", 1, "bad number 'two'" },
		{ "a.com concurrency=-1\n", 1, "bad number" },
		{ "a.com concurrency=4294967296\n", 1, "bad number" },
		{ "a.com concurrency=\n", 1, "bad number" },
		{ "a.com concurrency=1x\n", 1, "bad number" },
		{ "# c\na.com concurrency=1\nA.com. msg_rate=2\n", 3,
		  "duplicate entry for 'a.com' (first at line 2)" },
		{ "* concurrency=1\n* concurrency=2\n", 2, "duplicate entry for '*'" },
		{ "mx:h concurrency=1\nmx:H msg_rate=1\n", 2,
		  "duplicate entry for 'mx:h'" },
		{ "a.com concurrency=1 concurrency=2\n", 1, "given twice" },
		{ "a.com\n", 1, "no limits" },
		{ "a.com concurrency\n", 1, "expected key=value" },
		{ "a..com concurrency=1\n", 1, "bad domain" },
		{ "mx: concurrency=1\n", 1, "bad host name" },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dd_shape_table *t = (void *)1;
		char err[512], path[PATH_MAX], want[PATH_MAX + 32];

		EXPECT_EQ(-EINVAL, load(cases[i].text, &t, err, sizeof(err),
					path)) TH_LOG("case %u", i);
		EXPECT_EQ(NULL, t);
		snprintf(want, sizeof(want), "%s:%u: ", path, cases[i].line);
		EXPECT_EQ(0, strncmp(err, want, strlen(want)))
			TH_LOG("case %u: '%s', want '%s...'", i, err, want);
		EXPECT_NE(NULL, strstr(err, cases[i].msg))
			TH_LOG("case %u: '%s', want '%s'", i, err, cases[i].msg);
	}
}

TEST(bucket_math)
{
	struct dd_bucket b = { 0 };
	uint64_t now = T0;
	unsigned int n, i;

	/* no limit: always */
	for (i = 0; i < 1000; i++)
		ASSERT_TRUE(dd_bucket_take(&b, 0, now));
	EXPECT_EQ(0, dd_bucket_wait(&b, 0, now));

	/* a new bucket holds one token */
	b = (struct dd_bucket){ 0 };
	EXPECT_TRUE(dd_bucket_take(&b, 10, now));
	EXPECT_FALSE(dd_bucket_take(&b, 10, now));
	/* 10/s: the next in 100 ms */
	EXPECT_GE(dd_bucket_wait(&b, 10, now), 99 * 1000000ULL);
	EXPECT_LE(dd_bucket_wait(&b, 10, now), 101 * 1000000ULL);
	EXPECT_FALSE(dd_bucket_take(&b, 10, now + 99 * 1000000ULL));
	EXPECT_TRUE(dd_bucket_take(&b, 10, now + 100 * 1000000ULL));

	/* idle for a minute: the burst is one second's worth, no more */
	now += 60 * SEC;
	for (n = 0; dd_bucket_take(&b, 10, now); n++)
		;
	EXPECT_EQ(10, n);

	/* over 10 s at 10/s: 100 more, whatever the steps */
	for (n = 0, i = 1; i <= 1000; i++)
		while (dd_bucket_take(&b, 10, now + i * 10 * 1000000ULL))
			n++;
	EXPECT_EQ(100, n);

	/* below one a second: 0.5/s is one every 2 s, burst one */
	b = (struct dd_bucket){ 0 };
	EXPECT_TRUE(dd_bucket_take(&b, 0.5, T0));
	EXPECT_FALSE(dd_bucket_take(&b, 0.5, T0 + SEC));
	EXPECT_TRUE(dd_bucket_take(&b, 0.5, T0 + 2 * SEC));
	EXPECT_TRUE(dd_bucket_take(&b, 0.5, T0 + 100 * SEC));
	EXPECT_FALSE(dd_bucket_take(&b, 0.5, T0 + 100 * SEC));

	/* a lower rate caps what was saved at the higher one */
	b = (struct dd_bucket){ 0 };
	dd_bucket_ready(&b, 100, T0);
	dd_bucket_ready(&b, 100, T0 + 5 * SEC);		/* 100 saved */
	for (n = 0; dd_bucket_take(&b, 4, T0 + 5 * SEC); n++)
		;
	EXPECT_EQ(4, n);
}

TEST(observed_rate)
{
	struct dd_rate_obs o = { 0 };
	uint64_t now = T0;
	unsigned int i;

	EXPECT_EQ(0, (int)dd_obs_rate(&o, now));
	/* 20 a second for 3 s */
	for (i = 0; i < 60; i++)
		dd_obs_note(&o, now + i * (SEC / 20));
	now += 3 * SEC;
	EXPECT_GE(dd_obs_rate(&o, now - 1), 15.0);
	EXPECT_LE(dd_obs_rate(&o, now - 1), 25.0);
	/* nothing for 5 s: nothing observed */
	EXPECT_EQ(0, (int)dd_obs_rate(&o, now + 5 * SEC));
}

TEST(patterns)
{
	/* the default throttle_patterns */
	EXPECT_TRUE(dd_shape_match(DEF_PATTERNS, 421, "4.7.0",
				   "Too many connections"));
	EXPECT_TRUE(dd_shape_match(DEF_PATTERNS, 421, "", "busy"));
	EXPECT_TRUE(dd_shape_match(DEF_PATTERNS, 451, "4.7.1", "rate limited"));
	EXPECT_TRUE(dd_shape_match(DEF_PATTERNS, 450, "4.2.1",
				   "Rate LIMIT exceeded, try later"));
	EXPECT_TRUE(dd_shape_match(DEF_PATTERNS, 452, "", "TOO MANY recipients"));
	EXPECT_TRUE(dd_shape_match(DEF_PATTERNS, 450, "4.3.2",
				   "you are being throttled"));
	EXPECT_FALSE(dd_shape_match(DEF_PATTERNS, 450, "4.2.1", "mailbox busy"));
	EXPECT_FALSE(dd_shape_match(DEF_PATTERNS, 451, "4.3.0", "queue full"));
	/* only 4xx, whatever the patterns say */
	EXPECT_FALSE(dd_shape_match(DEF_PATTERNS, 550, "5.7.1",
				    "rate limited"));
	EXPECT_FALSE(dd_shape_match("*", 250, "", "ok"));
	EXPECT_TRUE(dd_shape_match("*", 450, "", "x"));
	/* ENH "-" when absent, so patterns can ask for one or none */
	EXPECT_TRUE(dd_shape_match("4?? - *", 450, "", "no enh"));
	EXPECT_FALSE(dd_shape_match("4?? - *", 450, "4.2.0", "enh"));
	/* empty alternatives and lists match nothing */
	EXPECT_FALSE(dd_shape_match("", 421, "4.7.0", "x"));
	EXPECT_FALSE(dd_shape_match("||", 421, "4.7.0", "x"));
	EXPECT_TRUE(dd_shape_match("|421 *|", 421, "4.7.0", "x"));
	EXPECT_FALSE(dd_shape_match(NULL, 421, "4.7.0", "x"));
}

TEST(throttle_cut_and_recover)
{
	struct dd_shape_limits cfg = { .concurrency = 20, .msg_rate = 40 };
	struct dd_throttle t = { 0 };
	uint64_t hold = 10 * SEC, now = T0;
	unsigned int steps;

	EXPECT_EQ(20, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(40, (int)dd_throttle_rate(&t, &cfg));
	/* nothing to recover from */
	EXPECT_EQ(DD_THROTTLE_SAME, dd_throttle_tick(&t, hold, now + hold));

	/* 16 sessions open, 30/s observed: 8 and 15/s */
	ASSERT_TRUE(dd_throttle_hit(&t, &cfg, 16, 30.0, false, now));
	EXPECT_TRUE(t.on);
	EXPECT_EQ(8, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(15, (int)dd_throttle_rate(&t, &cfg));

	/* within the settle time: no second cut ... */
	EXPECT_FALSE(dd_throttle_hit(&t, &cfg, 16, 30.0, false,
				     now + SEC / 2));
	EXPECT_EQ(8, dd_throttle_conc(&t, &cfg));
	/* ... unless forced (a refused connection) */
	EXPECT_TRUE(dd_throttle_hit(&t, &cfg, 16, 30.0, true, now + SEC / 2));
	EXPECT_EQ(4, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(7, (int)dd_throttle_rate(&t, &cfg));
	now += SEC / 2;

	/* later: cut again, never below one connection */
	EXPECT_TRUE(dd_throttle_hit(&t, &cfg, 4, 7.5, false, now + 2 * SEC));
	EXPECT_TRUE(dd_throttle_hit(&t, &cfg, 2, 3.75, false, now + 4 * SEC));
	EXPECT_TRUE(dd_throttle_hit(&t, &cfg, 1, 1.8, false, now + 6 * SEC));
	EXPECT_EQ(1, dd_throttle_conc(&t, &cfg));
	now += 6 * SEC;
	EXPECT_GE(dd_throttle_rate(&t, &cfg), DD_THROTTLE_RATE_MIN);
	EXPECT_EQ(5, t.cuts);

	/* hold after the last matching reply: nothing yet ... */
	EXPECT_EQ(DD_THROTTLE_SAME, dd_throttle_tick(&t, hold, now + hold - 1));
	/* ... a reply now and then keeps it where it is */
	EXPECT_FALSE(dd_throttle_hit(&t, &cfg, 1, 0, false, now + SEC / 2));
	now += SEC / 2;
	EXPECT_EQ(DD_THROTTLE_SAME, dd_throttle_tick(&t, hold, now + hold - 1));

	/* then step by step back to the limits, one step per hold */
	now += hold;
	for (steps = 1;; steps++) {
		unsigned int c = t.conc;
		double r = t.rate;
		enum dd_throttle_step st = dd_throttle_tick(&t, hold, now);

		ASSERT_NE(DD_THROTTLE_SAME, st);
		if (st == DD_THROTTLE_LIFTED)
			break;
		EXPECT_GT(t.conc + 0.0 + t.rate, c + 0.0 + r);
		/* not again before another hold */
		EXPECT_EQ(DD_THROTTLE_SAME, dd_throttle_tick(&t, hold,
							     now + hold - 1));
		now += hold;
		ASSERT_LT(steps, 40);
	}
	EXPECT_FALSE(t.on);
	EXPECT_GT(steps, 3);
	EXPECT_EQ(20, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(40, (int)dd_throttle_rate(&t, &cfg));
}

TEST(throttle_unlimited)
{
	/* no rate limit: start from what was observed, or from the base */
	struct dd_shape_limits cfg = { .concurrency = 0, .msg_rate = 0 };
	struct dd_throttle t = { 0 };
	uint64_t hold = 5 * SEC, now = T0;

	ASSERT_TRUE(dd_throttle_hit(&t, &cfg, 6, 100.0, false, now));
	EXPECT_EQ(3, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(50, (int)dd_throttle_rate(&t, &cfg));
	/* recovery ends where the cut started, then no limit again */
	while (dd_throttle_tick(&t, hold, now += hold) != DD_THROTTLE_LIFTED)
		ASSERT_TRUE(t.on);
	EXPECT_EQ(0, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(0, (int)dd_throttle_rate(&t, &cfg));

	/* nothing observed (and no session open): the floor */
	t = (struct dd_throttle){ 0 };
	ASSERT_TRUE(dd_throttle_hit(&t, &cfg, 0, 0, false, now));
	EXPECT_EQ(1, dd_throttle_conc(&t, &cfg));
	EXPECT_EQ(1, (int)dd_throttle_rate(&t, &cfg));
}

TEST_HARNESS_MAIN
