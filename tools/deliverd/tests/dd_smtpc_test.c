// SPDX-License-Identifier: GPL-2.0
/*
 * dd_smtpc and dd_reply against a scripted server: feed replies, check the
 * exact bytes the client writes and the actions and results it reports.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The harness's generated functions leave parameters unused, and its
 * comparisons put int literals against enums and size_t.
 */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

#include "../dd_reply.h"
#include "../dd_smtpc.h"

#define HELO	"client.example"

/* Output the client wants written, as a string; marks it written. */
static char outbuf[65536];

static const char *take(struct dd_smtpc *c)
{
	const char *b;
	size_t n;

	dd_smtpc_output(c, &b, &n);
	if (n >= sizeof(outbuf))
		n = sizeof(outbuf) - 1;
	memcpy(outbuf, b, n);
	outbuf[n] = '\0';
	dd_smtpc_written(c, n);
	return outbuf;
}

static void feed(struct dd_smtpc *c, const char *s)
{
	if (dd_smtpc_feed(c, s, strlen(s)))
		abort();
}

#define EXT_ALL	"250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n" \
		"250-SIZE 10000\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EXT_DATA_PIPE "250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE\r\n"
#define EXT_DATA "250-8BITMIME\r\n250 SIZE 0\r\n"

/* Greeting and EHLO; the EHLO reply's lines after the first in ext. */
#define SESSION(c, ext) do {						\
	(c) = dd_smtpc_new(HELO, 0);					\
	ASSERT_NE(NULL, (c));						\
	ASSERT_EQ(DD_STAGE_GREETING, dd_smtpc_stage(c));		\
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));			\
	ASSERT_STREQ("", take(c));					\
	feed((c), "220 mx.example ESMTP\r\n");				\
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));			\
	ASSERT_STREQ("EHLO " HELO "\r\n", take(c));			\
	ASSERT_EQ(DD_STAGE_EHLO, dd_smtpc_stage(c));			\
	feed((c), "250-mx.example hello\r\n" ext);			\
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));			\
	ASSERT_EQ(DD_STAGE_IDLE, dd_smtpc_stage(c));			\
} while (0)

static const char *const rcpts3[] = {
	"a@dest.example", "b@dest.example", "c@dest.example",
};

static struct dd_smtpc_msg msg3(void)
{
	struct dd_smtpc_msg m = {
		.sender = "s@src.example",
		.rcpts = rcpts3,
		.nrcpt = 3,
		.flags = DD_MSG_8BIT,
		.raw_len = 1234,
		.stuffed_len = 1240,
	};
	return m;
}

/* The same, 7-bit: for servers that do not offer 8BITMIME. */
static struct dd_smtpc_msg msg3_7bit(void)
{
	struct dd_smtpc_msg m = msg3();

	m.flags = 0;
	return m;
}

#define RCPTS3 "RCPT TO:<a@dest.example>\r\nRCPT TO:<b@dest.example>\r\n" \
	       "RCPT TO:<c@dest.example>\r\n"

/* ---------------- reply parser ---------------- */

static int parse1(struct dd_reply_parser *p, const char *s,
		  struct dd_smtp_reply *r, size_t *used)
{
	return dd_reply_parse(p, s, strlen(s), used, r);
}

TEST(reply_enhanced)
{
	struct dd_reply_parser p;
	struct dd_smtp_reply r;
	size_t used;

	dd_reply_init(&p, NULL, NULL);
	ASSERT_EQ(1, parse1(&p, "250 2.1.5 Ok\r\n", &r, &used));
	EXPECT_EQ(14, used);
	EXPECT_EQ(250, r.code);
	EXPECT_STREQ("2.1.5", r.enh);
	EXPECT_STREQ("Ok", r.text);

	ASSERT_EQ(1, parse1(&p, "451 4.123.456   try later  \r\n", &r, &used));
	EXPECT_STREQ("4.123.456", r.enh);
	EXPECT_STREQ("try later", r.text);

	/* Only the enhanced code. */
	ASSERT_EQ(1, parse1(&p, "550 5.1.1\r\n", &r, &used));
	EXPECT_STREQ("5.1.1", r.enh);
	EXPECT_STREQ("", r.text);

	/* Not enhanced codes: wrong class, too few parts, too many digits. */
	ASSERT_EQ(1, parse1(&p, "550 2.1.1 x\r\n", &r, &used));
	EXPECT_STREQ("", r.enh);
	EXPECT_STREQ("2.1.1 x", r.text);
	ASSERT_EQ(1, parse1(&p, "250 2.0 Ok\r\n", &r, &used));
	EXPECT_STREQ("", r.enh);
	EXPECT_STREQ("2.0 Ok", r.text);
	ASSERT_EQ(1, parse1(&p, "250 2.0.1234 Ok\r\n", &r, &used));
	EXPECT_STREQ("", r.enh);
	ASSERT_EQ(1, parse1(&p, "250 2.0.0Ok\r\n", &r, &used));
	EXPECT_STREQ("", r.enh);
	EXPECT_STREQ("2.0.0Ok", r.text);

	/* A bare code, and a bare LF. */
	ASSERT_EQ(1, parse1(&p, "250\n", &r, &used));
	EXPECT_EQ(250, r.code);
	EXPECT_STREQ("", r.enh);
	EXPECT_STREQ("", r.text);
}

TEST(reply_multiline)
{
	struct dd_reply_parser p;
	struct dd_smtp_reply r;
	const char *s = "550-5.1.1 The account\r\n550-5.1.1 does not\r\n"
			"550 5.1.1 exist\r\n250 ok\r\n";
	size_t used;

	dd_reply_init(&p, NULL, NULL);
	ASSERT_EQ(1, parse1(&p, s, &r, &used));
	EXPECT_EQ(550, r.code);
	EXPECT_STREQ("5.1.1", r.enh);
	EXPECT_STREQ("The account does not exist", r.text);
	EXPECT_EQ(strlen(s) - 8, used);
	ASSERT_EQ(1, parse1(&p, s + used, &r, &used));
	EXPECT_EQ(250, r.code);
	EXPECT_STREQ("ok", r.text);
	EXPECT_EQ(8, used);

	/* Empty continuation lines. */
	ASSERT_EQ(1, parse1(&p, "250-\r\n250-x\r\n250\r\n", &r, &used));
	EXPECT_STREQ("x", r.text);

	/* The code may not change within a reply. */
	ASSERT_EQ(-EPROTO, parse1(&p, "250-a\r\n251 b\r\n", &r, &used));
	EXPECT_NE(NULL, p.err);
}

TEST(reply_split_anywhere)
{
	const char *s = "220-mx.example ESMTP\r\n220 second\r\n"
			"421 4.3.2 going down\r\n";
	size_t n = strlen(s), cut, used, off;
	struct dd_reply_parser p;
	struct dd_smtp_reply r[2];
	int nr;

	for (cut = 0; cut <= n; cut++) {
		dd_reply_init(&p, NULL, NULL);
		nr = 0;
		off = 0;
		/* First up to cut, then the rest, then byte by byte. */
		while (off < cut) {
			int ret = dd_reply_parse(&p, s + off, cut - off,
						 &used, &r[nr]);

			ASSERT_LE(0, ret);
			off += used;
			nr += ret;
		}
		while (off < n) {
			int ret = dd_reply_parse(&p, s + off, 1, &used, &r[nr]);

			ASSERT_LE(0, ret);
			ASSERT_EQ(1, used);
			off += used;
			nr += ret;
		}
		ASSERT_EQ(2, nr);
		EXPECT_EQ(220, r[0].code);
		EXPECT_STREQ("mx.example ESMTP second", r[0].text);
		EXPECT_EQ(421, r[1].code);
		EXPECT_STREQ("4.3.2", r[1].enh);
		EXPECT_STREQ("going down", r[1].text);
		/* No split line left: an idle session holds no buffer. */
		EXPECT_EQ(NULL, p.line);
		dd_reply_free(&p);
	}
}

TEST(reply_long_line)
{
	static char buf[DD_REPLY_LINE_MAX + 16];
	struct dd_reply_parser p;
	struct dd_smtp_reply r;
	size_t used;

	/* Exactly DD_REPLY_LINE_MAX bytes with the CRLF: fine. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "250 ", 4);
	memcpy(buf + DD_REPLY_LINE_MAX - 2, "\r\n", 2);
	dd_reply_init(&p, NULL, NULL);
	ASSERT_EQ(1, dd_reply_parse(&p, buf, DD_REPLY_LINE_MAX, &used, &r));
	EXPECT_EQ(DD_REPLY_LINE_MAX, used);
	EXPECT_EQ(sizeof(r.text) - 1, strlen(r.text));

	/* One more: an error, in one piece or in two. */
	memcpy(buf + DD_REPLY_LINE_MAX - 2, "x\r\n", 3);
	ASSERT_EQ(-EPROTO, dd_reply_parse(&p, buf, DD_REPLY_LINE_MAX + 1,
					  &used, &r));
	EXPECT_STREQ("reply line too long", p.err);
	dd_reply_reset(&p);
	ASSERT_EQ(0, dd_reply_parse(&p, buf, 100, &used, &r));
	ASSERT_EQ(-EPROTO, dd_reply_parse(&p, buf + 100,
					  DD_REPLY_LINE_MAX + 1 - 100,
					  &used, &r));

	/* No line end at all: caught as soon as it cannot fit. */
	dd_reply_reset(&p);
	ASSERT_EQ(0, dd_reply_parse(&p, buf, DD_REPLY_LINE_MAX - 1, &used, &r));
	ASSERT_EQ(-EPROTO, dd_reply_parse(&p, "x", 1, &used, &r));
	dd_reply_free(&p);
}

TEST(reply_garbage)
{
	static const char *const bad[] = {
		"hello\r\n", "25\r\n", "2500 x\r\n", "250x\r\n", "150 x\r\n",
		"650 x\r\n", "260 x\r\n", "\r\n", "x250 ok\r\n",
	};
	struct dd_reply_parser p;
	struct dd_smtp_reply r;
	size_t used, i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dd_reply_init(&p, NULL, NULL);
		EXPECT_EQ(-EPROTO, parse1(&p, bad[i], &r, &used)) {
			TH_LOG("%s", bad[i]);
		}
		/* Sticky until reset. */
		EXPECT_EQ(-EPROTO, parse1(&p, "250 ok\r\n", &r, &used));
		dd_reply_reset(&p);
		EXPECT_EQ(1, parse1(&p, "250 ok\r\n", &r, &used));
		dd_reply_free(&p);
	}
}

TEST(reply_sanitise)
{
	struct dd_reply_parser p;
	struct dd_smtp_reply r;
	char buf[300];
	size_t used;

	dd_reply_init(&p, NULL, NULL);
	ASSERT_EQ(1, dd_reply_parse(&p, "550 bad\x01\xff\0\tx\r\n", 15, &used, &r));
	EXPECT_STREQ("bad????x", r.text);

	dd_reply_set(&r, 552, "5.3.4", "size %d", 7);
	dd_reply_format(&r, buf, sizeof(buf));
	EXPECT_STREQ("552 5.3.4 size 7", buf);
	dd_reply_set(&r, 0, NULL, "lost\n");
	dd_reply_format(&r, buf, sizeof(buf));
	EXPECT_STREQ("lost?", buf);
}

static unsigned int nlines_seen;

static void count_line(void *arg, int code, unsigned int lineno,
		       const char *text, size_t len)
{
	(void)arg;
	(void)text;
	(void)len;
	if (code == 250 && lineno == nlines_seen)
		nlines_seen++;
}

TEST(reply_line_callback)
{
	struct dd_reply_parser p;
	struct dd_smtp_reply r;
	size_t used;

	nlines_seen = 0;
	dd_reply_init(&p, count_line, NULL);
	ASSERT_EQ(1, parse1(&p, "250-a\r\n250-b\r\n250 c\r\n", &r, &used));
	EXPECT_EQ(3, nlines_seen);
}

/* ---------------- session ---------------- */

TEST(ehlo_extensions)
{
	struct dd_smtpc *c;
	uint64_t size;

	SESSION(c, "250-PIPELINING\r\n250-chunking\r\n250-8BITMIME\r\n"
		   "250-SIZE 35882577\r\n250-ENHANCEDSTATUSCODES\r\n"
		   "250-SMTPUTF8\r\n250-DSN\r\n250-AUTH PLAIN LOGIN\r\n"
		   "250-PIPELININGX\r\n250 STARTTLS\r\n");
	EXPECT_EQ(DD_EXT_PIPELINING | DD_EXT_CHUNKING | DD_EXT_8BITMIME |
		  DD_EXT_SIZE | DD_EXT_ENHANCED | DD_EXT_SMTPUTF8 |
		  DD_EXT_DSN | DD_EXT_STARTTLS, dd_smtpc_extensions(c, &size));
	EXPECT_EQ(35882577, size);
	dd_smtpc_free(c);

	/* The first line is the server's name, not a keyword. */
	SESSION(c, "250 SIZE\r\n");
	EXPECT_EQ(DD_EXT_SIZE, dd_smtpc_extensions(c, &size));
	EXPECT_EQ(0, size);
	dd_smtpc_free(c);

	c = dd_smtpc_new(HELO, 0);
	feed(c, "220 x\r\n");
	dd_smtpc_run(c);
	take(c);
	feed(c, "250 PIPELINING\r\n");
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_EQ(0, dd_smtpc_extensions(c, NULL));
	dd_smtpc_free(c);
}

TEST(bdat_pipelined)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_ALL);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_EQ(false, dd_smtpc_body_stuffed(c));
	EXPECT_EQ(DD_STAGE_BODY, dd_smtpc_stage(c));
	/* One write: MAIL, the RCPTs, BDAT; the body follows it. */
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 BODY=8BITMIME\r\n"
		     RCPTS3 "BDAT 1234 LAST\r\n", take(c));
	/* Replies read meanwhile wait for the body. */
	feed(c, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_EQ(DD_STAGE_DOT, dd_smtpc_stage(c));
	feed(c, "550 5.1.1 No such user\r\n250 2.1.5 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	feed(c, "250 2.0.0 Ok: queued as 4XYZ\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(250, res->msg.code);
	EXPECT_STREQ("2.0.0", res->msg.enh);
	EXPECT_STREQ("Ok: queued as 4XYZ", res->msg.text);
	ASSERT_EQ(3, res->nrcpt);
	EXPECT_EQ(250, res->rcpt[0].code);
	EXPECT_EQ(550, res->rcpt[1].code);
	EXPECT_STREQ("5.1.1", res->rcpt[1].enh);
	EXPECT_STREQ("No such user", res->rcpt[1].text);
	EXPECT_EQ(250, res->rcpt[2].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	dd_smtpc_free(c);
}

TEST(bdat_pipelined_no_rcpt)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_ALL);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	take(c);
	dd_smtpc_body_sent(c);
	feed(c, "250 ok\r\n550 no\r\n450 later\r\n550 no\r\n"
		"554 5.5.1 no valid recipients\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(554, res->msg.code);
	EXPECT_EQ(550, res->rcpt[0].code);
	EXPECT_EQ(450, res->rcpt[1].code);
	EXPECT_EQ(550, res->rcpt[2].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	/* A failed BDAT: RSET before the next. */
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RSET\r\n", take(c));
	EXPECT_EQ(DD_STAGE_RSET, dd_smtpc_stage(c));
	feed(c, "250 2.0.0 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 BODY=8BITMIME\r\n"
		     RCPTS3 "BDAT 1234 LAST\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(bdat_not_pipelined)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, "250-CHUNKING\r\n250 SIZE 2000\r\n");
	m.flags = 0;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234\r\n", take(c));
	feed(c, "250 ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<a@dest.example>\r\n", take(c));
	feed(c, "550 no\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<b@dest.example>\r\n", take(c));
	feed(c, "250 ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<c@dest.example>\r\n", take(c));
	feed(c, "250 ok\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_STREQ("BDAT 1234 LAST\r\n", take(c));
	EXPECT_EQ(false, dd_smtpc_body_stuffed(c));
	dd_smtpc_body_sent(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_EQ(DD_STAGE_DOT, dd_smtpc_stage(c));
	feed(c, "250 done\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(250, res->msg.code);
	EXPECT_EQ(550, res->rcpt[0].code);
	EXPECT_EQ(250, res->rcpt[1].code);

	/* All RCPTs rejected: no BDAT, RSET before the next one. */
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234\r\n", take(c));
	feed(c, "250 ok\r\n550 no\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	feed(c, "452 4.5.3 too many\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "551 no\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(551, res->msg.code);
	EXPECT_EQ(550, res->rcpt[0].code);
	EXPECT_EQ(452, res->rcpt[1].code);
	EXPECT_EQ(551, res->rcpt[2].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RSET\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(data_step_by_step)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_DATA);
	m.nrcpt = 2;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	/* SIZE 0: no limit, but the parameter is given. */
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 BODY=8BITMIME\r\n",
		     take(c));
	EXPECT_EQ(DD_STAGE_MAIL, dd_smtpc_stage(c));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	feed(c, "250 2.1.0 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<a@dest.example>\r\n", take(c));
	EXPECT_EQ(DD_STAGE_RCPT, dd_smtpc_stage(c));
	feed(c, "250 2.1.5 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<b@dest.example>\r\n", take(c));
	feed(c, "250 2.1.5 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("DATA\r\n", take(c));
	EXPECT_EQ(DD_STAGE_DATA, dd_smtpc_stage(c));
	feed(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_EQ(true, dd_smtpc_body_stuffed(c));
	EXPECT_EQ(DD_STAGE_BODY, dd_smtpc_stage(c));
	EXPECT_STREQ("", take(c));
	dd_smtpc_body_sent(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ(".\r\n", take(c));
	EXPECT_EQ(DD_STAGE_DOT, dd_smtpc_stage(c));
	feed(c, "250 2.0.0 Ok: queued\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(250, res->msg.code);
	EXPECT_EQ(2, res->nrcpt);
	EXPECT_EQ(250, res->rcpt[0].code);
	EXPECT_EQ(250, res->rcpt[1].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	dd_smtpc_free(c);
}

TEST(data_pipelined_mixed_rcpts)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_DATA_PIPE);
	m.sender = "";
	m.flags = 0;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<> SIZE=1234\r\n" RCPTS3 "DATA\r\n", take(c));
	feed(c, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n450 4.2.0 greylisted\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_EQ(DD_STAGE_DATA, dd_smtpc_stage(c));
	feed(c, "354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_EQ(true, dd_smtpc_body_stuffed(c));
	dd_smtpc_body_sent(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ(".\r\n", take(c));
	feed(c, "250 queued\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(250, res->msg.code);
	EXPECT_EQ(250, res->rcpt[0].code);
	EXPECT_EQ(550, res->rcpt[1].code);
	EXPECT_STREQ("5.1.1", res->rcpt[1].enh);
	EXPECT_EQ(450, res->rcpt[2].code);
	EXPECT_STREQ("greylisted", res->rcpt[2].text);
	/* The final reply says 452: it applies to the accepted one. */
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<> SIZE=1234\r\n" RCPTS3 "DATA\r\n", take(c));
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "452 4.3.1 disk full\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ(".\r\n", take(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(452, res->msg.code);
	EXPECT_EQ(250, res->rcpt[0].code);
	/* The transaction is over after the final reply: no RSET. */
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_EQ(0, strncmp(take(c), "MAIL ", 5));
	dd_smtpc_free(c);
}

TEST(data_pipelined_rejected)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_DATA_PIPE);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n554 5.7.1 no\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(554, res->msg.code);
	EXPECT_EQ(250, res->rcpt[0].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RSET\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(mail_rejected_then_rset)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	unsigned int i;

	SESSION(c, EXT_DATA);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "451 4.7.1 greylisted, try later\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(451, res->msg.code);
	EXPECT_STREQ("4.7.1", res->msg.enh);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(451, res->rcpt[i].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));

	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RSET\r\n", take(c));
	EXPECT_EQ(DD_STAGE_RSET, dd_smtpc_stage(c));
	feed(c, "250 2.0.0 Ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 BODY=8BITMIME\r\n",
		     take(c));
	EXPECT_EQ(DD_STAGE_MAIL, dd_smtpc_stage(c));
	feed(c, "250 ok\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<a@dest.example>\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(mail_rejected_pipelined)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	unsigned int i;

	/* The RCPT replies only say "need MAIL": MAIL's applies to all. */
	SESSION(c, EXT_DATA_PIPE);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "451 4.3.0 later\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
		"503 5.5.1 need MAIL\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	feed(c, "503 5.5.1 need RCPT\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(451, res->msg.code);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(451, res->rcpt[i].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));

	/* BDAT pipelined too. */
	dd_smtpc_free(c);
	SESSION(c, EXT_ALL);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	take(c);
	dd_smtpc_body_sent(c);
	feed(c, "550 5.7.1 sender refused\r\n503 no\r\n503 no\r\n503 no\r\n"
		"503 no\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(550, res->msg.code);
	EXPECT_STREQ("sender refused", res->msg.text);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(550, res->rcpt[i].code);
	dd_smtpc_free(c);
}

TEST(all_rcpts_rejected_354)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_DATA_PIPE);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "250 ok\r\n550 5.1.1 a\r\n550 5.1.1 b\r\n450 4.2.2 full\r\n"
		"354 go ahead\r\n");
	/* No body: just end it. */
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ(".\r\n", take(c));
	EXPECT_EQ(DD_STAGE_DOT, dd_smtpc_stage(c));
	feed(c, "554 5.5.1 no valid recipients\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_GE(res->msg.code, 400);
	EXPECT_EQ(550, res->rcpt[0].code);
	EXPECT_EQ(550, res->rcpt[1].code);
	EXPECT_EQ(450, res->rcpt[2].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));

	/* Even if the server accepts the empty message. */
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_EQ(0, strncmp(take(c), "MAIL ", 5));
	feed(c, "250 ok\r\n550 a\r\n550 b\r\n550 c\r\n354 go\r\n250 ok\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ(".\r\n", take(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(550, res->msg.code);
	EXPECT_STREQ("c", res->msg.text);
	dd_smtpc_free(c);
}

TEST(split_byte_by_byte)
{
	const char *srv[] = {
		"220-mx.example ESMTP\r\n220-more\r\n220 last\r\n",
		"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 9999\r\n"
		"250 ENHANCEDSTATUSCODES\r\n",
		"250 2.1.0 Ok\r\n"
		"550-5.1.1 The email account that you tried to reach does\r\n"
		"550-5.1.1 not exist. Please try\r\n"
		"550 5.1.1 again https://x.example/\r\n"
		"250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n",
	};
	struct dd_smtpc_msg m = msg3_7bit();	/* no 8BITMIME here */
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	enum dd_smtpc_act act = 0;
	unsigned int i;
	size_t j;

	c = dd_smtpc_new(HELO, 0);
	ASSERT_NE(NULL, c);
	for (i = 0; i < 3; i++) {
		if (i == 2) {
			ASSERT_EQ(0, dd_smtpc_start(c, &m));
			ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
			EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234\r\n"
				     RCPTS3 "DATA\r\n", take(c));
		}
		for (j = 0; srv[i][j]; j++) {
			ASSERT_EQ(0, dd_smtpc_feed(c, &srv[i][j], 1));
			act = dd_smtpc_run(c);
			if (srv[i][j + 1])
				ASSERT_EQ(DD_SMTPC_READ, act);
		}
		if (i == 0)
			EXPECT_STREQ("EHLO " HELO "\r\n", take(c));
	}
	ASSERT_EQ(DD_SMTPC_BODY, act);
	dd_smtpc_body_sent(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ(".\r\n", take(c));
	ASSERT_EQ(0, dd_smtpc_feed(c, "2", 1));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_feed(c, "50 ok\r", 6));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	ASSERT_EQ(0, dd_smtpc_feed(c, "\n", 1));
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(250, res->msg.code);
	EXPECT_EQ(550, res->rcpt[0].code);
	EXPECT_STREQ("5.1.1", res->rcpt[0].enh);
	EXPECT_STREQ("The email account that you tried to reach does not exist."
		     " Please try again https://x.example/", res->rcpt[0].text);
	EXPECT_EQ(250, res->rcpt[1].code);
	EXPECT_EQ(250, res->rcpt[2].code);
	dd_smtpc_free(c);
}

/*
 * Only whole replies count: a server trickling "250-" lines for ever
 * never moves the count on, so the caller's reply timeout, which runs
 * from the last change, fires.
 */
TEST(replies_counted_whole)
{
	struct dd_smtpc *c = dd_smtpc_new(HELO, 0);
	int i;

	EXPECT_EQ(0, dd_smtpc_replies(c));
	feed(c, "220 x");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_EQ(0, dd_smtpc_replies(c));
	feed(c, "\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_EQ(1, dd_smtpc_replies(c));
	EXPECT_EQ(DD_STAGE_EHLO, dd_smtpc_stage(c));
	take(c);
	for (i = 0; i < 1000; i++) {
		feed(c, "250-and another thing\r\n");
		ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	}
	EXPECT_EQ(1, dd_smtpc_replies(c));
	EXPECT_EQ(DD_STAGE_EHLO, dd_smtpc_stage(c));
	feed(c, "250 done\r\n");
	EXPECT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_EQ(2, dd_smtpc_replies(c));
	dd_smtpc_free(c);
}

TEST(ehlo_rejected_helo)
{
	struct dd_smtpc_msg m = msg3_7bit();	/* no 8BITMIME here */
	struct dd_smtpc *c;

	c = dd_smtpc_new(HELO, 0);
	feed(c, "220 old.example SMTP\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("EHLO " HELO "\r\n", take(c));
	feed(c, "502 5.5.2 command not recognised\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("HELO " HELO "\r\n", take(c));
	EXPECT_EQ(DD_STAGE_EHLO, dd_smtpc_stage(c));
	feed(c, "250 old.example\r\n");
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_EQ(0, dd_smtpc_extensions(c, NULL));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	/* No SIZE, no BODY=8BITMIME, no pipelining. */
	EXPECT_STREQ("MAIL FROM:<s@src.example>\r\n", take(c));
	dd_smtpc_free(c);

	/* HELO rejected as well: the session fails with that reply. */
	c = dd_smtpc_new(HELO, 0);
	feed(c, "220 x\r\n");
	dd_smtpc_run(c);
	take(c);
	feed(c, "500 what\r\n");
	dd_smtpc_run(c);
	EXPECT_STREQ("HELO " HELO "\r\n", take(c));
	feed(c, "550 go away\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_EQ(550, dd_smtpc_session_reply(c)->code);
	dd_smtpc_free(c);

	/* A 4xx to EHLO is no reason for HELO. */
	c = dd_smtpc_new(HELO, 0);
	feed(c, "220 x\r\n");
	dd_smtpc_run(c);
	take(c);
	feed(c, "451 busy\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_EQ(451, dd_smtpc_session_reply(c)->code);
	dd_smtpc_free(c);
}

TEST(greeting_fails)
{
	struct dd_smtpc *c;

	c = dd_smtpc_new(HELO, 0);
	feed(c, "554 5.7.1 no mail from you\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_EQ(554, dd_smtpc_session_reply(c)->code);
	EXPECT_STREQ("no mail from you", dd_smtpc_session_reply(c)->text);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	dd_smtpc_free(c);

	c = dd_smtpc_new(HELO, 0);
	feed(c, "421 4.3.2 too busy\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_EQ(421, dd_smtpc_session_reply(c)->code);
	dd_smtpc_free(c);

	c = dd_smtpc_new(HELO, 0);
	dd_smtpc_eof(c);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_EQ(0, dd_smtpc_session_reply(c)->code);
	EXPECT_STREQ("connection lost during greeting",
		     dd_smtpc_session_reply(c)->text);
	dd_smtpc_free(c);

	/* Garbage: a protocol error. */
	c = dd_smtpc_new(HELO, 0);
	feed(c, "hello\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_EQ(0, dd_smtpc_session_reply(c)->code);
	dd_smtpc_free(c);
}

TEST(reply_421_mid_transaction)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_DATA_PIPE);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n"
		"421 4.4.2 idle too long\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(421, res->msg.code);
	EXPECT_STREQ("4.4.2", res->msg.enh);
	EXPECT_EQ(421, res->rcpt[0].code);	/* accepted */
	EXPECT_EQ(550, res->rcpt[1].code);	/* kept: already final */
	EXPECT_EQ(421, res->rcpt[2].code);	/* never answered */
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));	/* no QUIT after 421 */
	EXPECT_EQ(421, dd_smtpc_session_reply(c)->code);
	ASSERT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	dd_smtpc_free(c);

	/* In the idle session: close. */
	SESSION(c, EXT_DATA);
	feed(c, "421 4.4.2 timeout\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	dd_smtpc_free(c);

	/* After the body. */
	SESSION(c, EXT_DATA);
	m.nrcpt = 1;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	dd_smtpc_run(c);
	feed(c, "250 ok\r\n");
	dd_smtpc_run(c);
	feed(c, "250 ok\r\n");
	dd_smtpc_run(c);
	feed(c, "354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "421 shutting down\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(421, res->msg.code);
	EXPECT_EQ(421, res->rcpt[0].code);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 BODY=8BITMIME\r\n"
		     "RCPT TO:<a@dest.example>\r\nDATA\r\n.\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(eof_mid_body)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	unsigned int i;

	SESSION(c, EXT_DATA_PIPE);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_eof(c);
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(0, res->msg.code);
	EXPECT_STREQ("connection lost during message body", res->msg.text);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0, res->rcpt[i].code);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	dd_smtpc_free(c);

	/* Waiting for the final reply. */
	SESSION(c, EXT_ALL);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "250 ok\r\n550 no\r\n");
	dd_smtpc_eof(c);
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(0, res->msg.code);
	EXPECT_STREQ("connection lost during end of data", res->msg.text);
	EXPECT_EQ(550, res->rcpt[0].code);
	EXPECT_EQ(0, res->rcpt[1].code);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	dd_smtpc_free(c);

	/* The final reply and the EOF together: the reply counts. */
	SESSION(c, EXT_ALL);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 queued\r\n");
	dd_smtpc_eof(c);
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_EQ(250, dd_smtpc_result(c)->msg.code);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	dd_smtpc_free(c);

	/* In RCPT, not pipelined. */
	SESSION(c, EXT_DATA);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	dd_smtpc_run(c);
	feed(c, "250 ok\r\n");
	dd_smtpc_run(c);
	dd_smtpc_eof(c);
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ("connection lost during RCPT",
		     dd_smtpc_result(c)->msg.text);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	dd_smtpc_free(c);
}

TEST(size_limit)
{
	struct dd_smtpc_msg m = msg3_7bit();	/* no 8BITMIME here */
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	unsigned int i;

	SESSION(c, "250-PIPELINING\r\n250 SIZE 1000\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(552, res->msg.code);
	EXPECT_STREQ("5.3.4", res->msg.enh);
	EXPECT_STREQ("message size exceeds server limit", res->msg.text);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(552, res->rcpt[i].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	/* It fits. */
	m.raw_len = 1000;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1000\r\n" RCPTS3
		     "DATA\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(eightbit_needs_8bitmime)
{
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	unsigned int i;

	/* RFC 6152 3: an 8-bit body is returned, not sent, without 8BITMIME. */
	SESSION(c, "250-PIPELINING\r\n250 SIZE 100000\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(554, res->msg.code);
	EXPECT_STREQ("5.6.3", res->msg.enh);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(554, res->rcpt[i].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	/* A 7-bit one goes on the same session. */
	m.flags = 0;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234\r\n" RCPTS3
		     "DATA\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(two_transactions)
{
	static const char *const r1[] = { "x@d.example" };
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;

	SESSION(c, EXT_ALL);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	take(c);
	dd_smtpc_body_sent(c);
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 queued 1\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_STREQ("queued 1", dd_smtpc_result(c)->msg.text);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));

	m.rcpts = r1;
	m.nrcpt = 1;
	m.raw_len = 77;
	m.flags = 0;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=77\r\n"
		     "RCPT TO:<x@d.example>\r\nBDAT 77 LAST\r\n", take(c));
	dd_smtpc_body_sent(c);
	feed(c, "250 ok\r\n250 ok\r\n250 queued 2\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_STREQ("queued 2", res->msg.text);
	EXPECT_EQ(1, res->nrcpt);
	EXPECT_EQ(250, res->rcpt[0].code);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	dd_smtpc_free(c);
}

TEST(no_chunking_no_pipelining_flags)
{
	struct dd_smtpc_msg m = msg3();
	struct dd_smtpc *c;

	c = dd_smtpc_new(HELO, DD_SMTPC_NO_CHUNKING | DD_SMTPC_NO_PIPELINING);
	feed(c, "220 x\r\n");
	dd_smtpc_run(c);
	take(c);
	feed(c, "250-x\r\n" EXT_ALL);
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	m.nrcpt = 1;
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 BODY=8BITMIME\r\n",
		     take(c));
	feed(c, "250 ok\r\n");
	dd_smtpc_run(c);
	EXPECT_STREQ("RCPT TO:<a@dest.example>\r\n", take(c));
	feed(c, "250 ok\r\n");
	dd_smtpc_run(c);
	EXPECT_STREQ("DATA\r\n", take(c));
	feed(c, "354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	EXPECT_EQ(true, dd_smtpc_body_stuffed(c));
	dd_smtpc_free(c);
}

TEST(quit)
{
	struct dd_smtpc *c;

	SESSION(c, EXT_ALL);
	dd_smtpc_quit(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_EQ(DD_STAGE_QUIT, dd_smtpc_stage(c));
	feed(c, "221 2.0.0 Bye\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	dd_smtpc_free(c);

	/* EOF instead of 221 is fine too. */
	SESSION(c, EXT_ALL);
	dd_smtpc_quit(c);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	dd_smtpc_eof(c);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	dd_smtpc_free(c);
}

TEST(bad_calls)
{
	static const char *const crlf[] = { "a@b\r\nDATA" };
	struct dd_smtpc_msg m = msg3();
	struct dd_smtpc *c;

	EXPECT_EQ(NULL, dd_smtpc_new("a\r\nb", 0));
	c = dd_smtpc_new(HELO, 0);
	/* Not idle yet. */
	EXPECT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	dd_smtpc_free(c);

	SESSION(c, EXT_ALL);
	m.rcpts = crlf;
	m.nrcpt = 1;
	EXPECT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	m = msg3();
	m.nrcpt = 0;
	EXPECT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	m = msg3();
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	EXPECT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_free(c);

	/* Unsolicited garbage in a transaction: protocol error, code 0. */
	SESSION(c, EXT_DATA);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	dd_smtpc_run(c);
	take(c);
	feed(c, "250 ok\r\nxyz\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_EQ(0, dd_smtpc_result(c)->msg.code);
	EXPECT_EQ(0, dd_smtpc_result(c)->rcpt[0].code);
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("RCPT TO:<a@dest.example>\r\nQUIT\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(smtputf8)
{
	static const char *const u[] = { "j\xc3\xb6rg@d.example" };
	struct dd_smtpc_msg m = msg3();
	struct dd_smtpc *c;

	m.rcpts = u;
	m.nrcpt = 1;
	m.flags = 0;
	SESSION(c, "250 SIZE\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_EQ(553, dd_smtpc_result(c)->msg.code);
	EXPECT_STREQ("5.6.7", dd_smtpc_result(c)->rcpt[0].enh);
	EXPECT_STREQ("SMTPUTF8 required but not offered",
		     dd_smtpc_result(c)->rcpt[0].text);
	EXPECT_STREQ("", take(c));
	dd_smtpc_free(c);

	SESSION(c, "250 SMTPUTF8\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SMTPUTF8\r\n", take(c));
	dd_smtpc_free(c);

	/* ASCII addresses, but injected with SMTPUTF8: the flag decides */
	m = msg3();
	m.nrcpt = 1;
	m.flags = DD_MSG_SMTPUTF8;
	SESSION(c, "250-SMTPUTF8\r\n250 8BITMIME\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SMTPUTF8\r\n", take(c));
	dd_smtpc_free(c);
	SESSION(c, "250-8BITMIME\r\n250 DSN\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_EQ(553, dd_smtpc_result(c)->rcpt[0].code);
	EXPECT_STREQ("5.6.7", dd_smtpc_result(c)->rcpt[0].enh);
	dd_smtpc_free(c);
}

/* RFC 3461: RET, ENVID, NOTIFY, ORCPT byte-exact when DSN is offered. */
TEST(dsn_offered)
{
	static const uint8_t notify[3] = {
		DD_NOTIFY_SUCCESS | DD_NOTIFY_FAILURE | DD_NOTIFY_DELAY,
		DD_NOTIFY_NEVER, 0,
	};
	static const char *const orcpt[3] = { "rfc822;a+2Bx@dest.example",
					      NULL, "rfc822;c@dest.example" };
	struct dd_smtpc_msg m = msg3_7bit();
	struct dd_smtpc *c;

	m.envid = "QQ+2Bid+3D1";
	m.ret = DD_RET_FULL;
	m.notify = notify;
	m.orcpt = orcpt;
	SESSION(c, "250-PIPELINING\r\n250-DSN\r\n250 SIZE\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234 RET=FULL ENVID=QQ+2Bid+3D1\r\n"
		     "RCPT TO:<a@dest.example> NOTIFY=SUCCESS,FAILURE,DELAY "
		     "ORCPT=rfc822;a+2Bx@dest.example\r\n"
		     "RCPT TO:<b@dest.example> NOTIFY=NEVER\r\n"
		     "RCPT TO:<c@dest.example> ORCPT=rfc822;c@dest.example\r\n"
		     "DATA\r\n", take(c));
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "250 done\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_TRUE(dd_smtpc_result(c)->dsn);
	dd_smtpc_free(c);

	/* the other combinations of NOTIFY, and RET=HDRS without ENVID */
	{
		static const uint8_t n2[3] = {
			DD_NOTIFY_FAILURE | DD_NOTIFY_DELAY, DD_NOTIFY_SUCCESS,
			DD_NOTIFY_SUCCESS | DD_NOTIFY_DELAY,
		};

		m.envid = NULL;
		m.ret = DD_RET_HDRS;
		m.notify = n2;
		m.orcpt = NULL;
		SESSION(c, "250-PIPELINING\r\n250 DSN\r\n");
		ASSERT_EQ(0, dd_smtpc_start(c, &m));
		ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
		EXPECT_STREQ("MAIL FROM:<s@src.example> RET=HDRS\r\n"
			     "RCPT TO:<a@dest.example> NOTIFY=FAILURE,DELAY\r\n"
			     "RCPT TO:<b@dest.example> NOTIFY=SUCCESS\r\n"
			     "RCPT TO:<c@dest.example> NOTIFY=SUCCESS,DELAY\r\n"
			     "DATA\r\n", take(c));
		dd_smtpc_free(c);
	}

	/* a value that would break the command line is refused */
	m.envid = "a b";
	SESSION(c, "250 DSN\r\n");
	EXPECT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	m.envid = NULL;
	{
		static const char *const bad[3] = { NULL, "rfc822;x\r\nQUIT", NULL };

		m.orcpt = bad;
		EXPECT_EQ(-EINVAL, dd_smtpc_start(c, &m));
	}
	dd_smtpc_free(c);
}

/* Without DSN at the server none of them goes out. */
TEST(dsn_not_offered)
{
	static const uint8_t notify[3] = { DD_NOTIFY_SUCCESS, DD_NOTIFY_NEVER, 0 };
	static const char *const orcpt[3] = { "rfc822;a@dest.example", NULL, NULL };
	struct dd_smtpc_msg m = msg3_7bit();
	struct dd_smtpc *c;

	m.envid = "QQ";
	m.ret = DD_RET_FULL;
	m.notify = notify;
	m.orcpt = orcpt;
	SESSION(c, "250-PIPELINING\r\n250-SMTPUTF8\r\n250 SIZE\r\n");
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> SIZE=1234\r\n" RCPTS3
		     "DATA\r\n", take(c));
	feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "250 done\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	EXPECT_FALSE(dd_smtpc_result(c)->dsn);
	dd_smtpc_free(c);
}

TEST(many_rcpts_output_grows)
{
	static char addr[2000][40];
	static const char *rc[2000];
	struct dd_smtpc_msg m = msg3();
	const struct dd_smtpc_result *res;
	struct dd_smtpc *c;
	const char *b;
	size_t n;
	unsigned int i;

	for (i = 0; i < 2000; i++) {
		snprintf(addr[i], sizeof(addr[i]), "user%u@dest.example", i);
		rc[i] = addr[i];
	}
	m.rcpts = rc;
	m.nrcpt = 2000;
	SESSION(c, EXT_DATA_PIPE);
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	dd_smtpc_output(c, &b, &n);
	EXPECT_LT(2000 * 30, n);
	EXPECT_EQ(0, memcmp(b + n - 6, "DATA\r\n", 6));
	/* Written in pieces. */
	dd_smtpc_written(c, 100);
	dd_smtpc_output(c, &b, &n);
	dd_smtpc_written(c, n);
	dd_smtpc_output(c, &b, &n);
	EXPECT_EQ(0, n);
	feed(c, "250 ok\r\n");
	for (i = 0; i < 2000; i++)
		feed(c, i % 2 ? "250 ok\r\n" : "452 4.5.3 too many\r\n");
	feed(c, "354 go\r\n");
	ASSERT_EQ(DD_SMTPC_BODY, dd_smtpc_run(c));
	dd_smtpc_body_sent(c);
	feed(c, "250 ok\r\n");
	ASSERT_EQ(DD_SMTPC_DONE, dd_smtpc_run(c));
	res = dd_smtpc_result(c);
	EXPECT_EQ(452, res->rcpt[1998].code);
	EXPECT_EQ(250, res->rcpt[1999].code);
	dd_smtpc_free(c);
}

/* Greeting and the first EHLO of a session that may use STARTTLS. */
static struct dd_smtpc *tls_session(unsigned int flags, const char *ext)
{
	struct dd_smtpc *c = dd_smtpc_new(HELO, flags);

	if (!c)
		abort();
	feed(c, "220 mx.example ESMTP\r\n");
	if (dd_smtpc_run(c) != DD_SMTPC_READ ||
	    strcmp(take(c), "EHLO " HELO "\r\n"))
		abort();
	feed(c, "250-mx.example hello\r\n");
	feed(c, ext);
	return c;
}

TEST(starttls_may)
{
	struct dd_smtpc_msg m = msg3();
	struct dd_smtpc *c;

	c = tls_session(DD_SMTPC_STARTTLS,
			"250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("STARTTLS\r\n", take(c));
	EXPECT_EQ(DD_STAGE_EHLO, dd_smtpc_stage(c));
	EXPECT_FALSE(dd_smtpc_tls(c));
	/* What follows the 220 in plain text could be injected: dropped. */
	feed(c, "220 2.0.0 go ahead\r\n250 injected\r\n");
	ASSERT_EQ(DD_SMTPC_TLS, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_EQ(DD_STAGE_EHLO, dd_smtpc_stage(c));
	/* Until the caller says the handshake is over. */
	ASSERT_EQ(DD_SMTPC_TLS, dd_smtpc_run(c));
	dd_smtpc_tls_done(c, true, NULL);
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("EHLO " HELO "\r\n", take(c));
	EXPECT_TRUE(dd_smtpc_tls(c));
	/* What the server offers now counts, STARTTLS is not sent twice. */
	feed(c, "250-mx.example hello again\r\n250-STARTTLS\r\n"
		"250-CHUNKING\r\n250 8BITMIME\r\n");
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_EQ(DD_EXT_STARTTLS | DD_EXT_CHUNKING | DD_EXT_8BITMIME,
		  dd_smtpc_extensions(c, NULL));
	ASSERT_EQ(0, dd_smtpc_start(c, &m));
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("MAIL FROM:<s@src.example> BODY=8BITMIME\r\n", take(c));
	dd_smtpc_free(c);
}

TEST(starttls_may_refused)
{
	struct dd_smtpc *c;

	c = tls_session(DD_SMTPC_STARTTLS,
			"250-PIPELINING\r\n250 STARTTLS\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("STARTTLS\r\n", take(c));
	feed(c, "454 4.7.0 TLS not available due to temporary reason\r\n");
	/* Plain text, with what the first EHLO said. */
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	EXPECT_FALSE(dd_smtpc_tls(c));
	EXPECT_EQ(DD_EXT_PIPELINING | DD_EXT_STARTTLS,
		  dd_smtpc_extensions(c, NULL));
	dd_smtpc_free(c);

	/* Not offered: plain text at once. */
	c = tls_session(DD_SMTPC_STARTTLS, "250 PIPELINING\r\n");
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	dd_smtpc_free(c);

	/* Offered but not wanted (policy none). */
	c = tls_session(0, "250 STARTTLS\r\n");
	ASSERT_EQ(DD_SMTPC_IDLE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	dd_smtpc_free(c);
}

TEST(starttls_required)
{
	const struct dd_smtp_reply *r;
	struct dd_smtpc *c;

	/* Not offered: the session fails with our reason, after QUIT. */
	c = tls_session(DD_SMTPC_TLS_REQUIRED, "250 PIPELINING\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	r = dd_smtpc_session_reply(c);
	EXPECT_EQ(0, r->code);
	EXPECT_STREQ("4.7.4", r->enh);
	EXPECT_STREQ("TLS is required but STARTTLS was not offered", r->text);
	dd_smtpc_free(c);

	/* Refused: the server's reply ends it. */
	c = tls_session(DD_SMTPC_TLS_REQUIRED, "250 STARTTLS\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("STARTTLS\r\n", take(c));
	feed(c, "454 4.7.0 not now\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_EQ(454, dd_smtpc_session_reply(c)->code);
	dd_smtpc_free(c);

	/* No EHLO, no STARTTLS: HELO is not enough. */
	c = dd_smtpc_new(HELO, DD_SMTPC_TLS_REQUIRED);
	feed(c, "220 old\r\n");
	dd_smtpc_run(c);
	take(c);
	feed(c, "500 what\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	EXPECT_STREQ("HELO " HELO "\r\n", take(c));
	feed(c, "250 old\r\n");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("QUIT\r\n", take(c));
	EXPECT_STREQ("4.7.4", dd_smtpc_session_reply(c)->enh);
	dd_smtpc_free(c);

	/* The handshake fails: closed without a word, our reason kept. */
	c = tls_session(DD_SMTPC_TLS_REQUIRED, "250 STARTTLS\r\n");
	ASSERT_EQ(DD_SMTPC_READ, dd_smtpc_run(c));
	take(c);
	feed(c, "220 go\r\n");
	ASSERT_EQ(DD_SMTPC_TLS, dd_smtpc_run(c));
	dd_smtpc_tls_done(c, false, "certificate verification failed");
	ASSERT_EQ(DD_SMTPC_CLOSE, dd_smtpc_run(c));
	EXPECT_STREQ("", take(c));
	r = dd_smtpc_session_reply(c);
	EXPECT_EQ(0, r->code);
	EXPECT_STREQ("certificate verification failed", r->text);
	EXPECT_FALSE(dd_smtpc_tls(c));
	dd_smtpc_free(c);
}

TEST_HARNESS_MAIN
