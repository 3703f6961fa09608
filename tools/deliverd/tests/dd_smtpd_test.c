// SPDX-License-Identifier: GPL-2.0
/*
 * dd_smtpd_test: the SMTP server session fed scripted byte streams, with
 * its exact replies and the messages it hands over checked.
 *
 *   gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -I build/ksft \
 *	-o dd_smtpd_test tools/deliverd/tests/dd_smtpd_test.c \
 *	tools/deliverd/dd_smtpd.c tools/deliverd/dd_wire.c
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

#include "../dd_smtpd.h"
#include "../dd_wire.h"

#define GREETING	"220 mx.test ESMTP deliverd\r\n"
#define EHLO_REPLY	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n" \
			"250-8BITMIME\r\n250-CHUNKING\r\n250-DSN\r\n250-SMTPUTF8\r\n" \
			"250 ENHANCEDSTATUSCODES\r\n"
#define RECEIVED	"Received: from client.test (192.0.2.1)\r\n" \
			"\tby mx.test with ESMTP;\r\n\t"

struct got {
	char *sender;
	char *rcpts;		/* "a,b,c" */
	uint32_t flags;
	char *body;
	size_t body_len;
	char *dsn;		/* "envid=E ret=R notify=a,b orcpt=x|y" */
	const struct dd_smtpd_msg *m;
};

struct t {
	struct dd_smtpd_conf conf;
	struct dd_smtpd *s;
	struct dd_buf out;
	bool autodone;		/* message_done(0) at once */
	uint64_t qid;
	struct got msg[64];
	unsigned int nmsg;
	char *ctl[8];
	unsigned int nctl;
	enum dd_smtpd_act last;
};

static void t_init(struct t *t, bool control, const char *refuse, bool temp)
{
	memset(t, 0, sizeof(*t));
	t->conf.hostname = "mx.test";
	t->conf.max_line = 512;
	t->conf.max_size = 1000;
	t->conf.max_rcpts = 3;
	t->conf.max_errors = 5;
	t->conf.control = control;
	t->autodone = true;
	t->qid = 0x100;
	t->s = dd_smtpd_new(&t->conf, "192.0.2.1", refuse, temp);
}

/* A new session with t->conf as changed by the test. */
static void t_restart(struct t *t)
{
	dd_smtpd_free(t->s);
	t->s = dd_smtpd_new(&t->conf, "192.0.2.1", NULL, false);
}

static void t_drain(struct t *t)
{
	const char *b;
	size_t n;

	dd_smtpd_output(t->s, &b, &n);
	dd_buf_add(&t->out, b, n);
	dd_smtpd_written(t->s, n);
}

/* Run until the session wants input or closes; collect messages. */
static enum dd_smtpd_act t_run(struct t *t)
{
	for (;;) {
		enum dd_smtpd_act a = dd_smtpd_run(t->s);

		if (a == DD_SMTPD_MESSAGE) {
			const struct dd_smtpd_msg *m = dd_smtpd_message(t->s);
			struct got *g = &t->msg[t->nmsg++ % 64];
			struct dd_buf r = DD_BUF_INIT;

			for (unsigned int i = 0; i < m->nrcpt; i++)
				dd_buf_addf(&r, "%s%s", i ? "," : "", m->rcpts[i]);
			g->sender = strdup(m->sender);
			g->rcpts = dd_buf_detach(&r, NULL);
			g->flags = m->flags;
			g->body = malloc(m->body_len + 1);
			memcpy(g->body, m->body, m->body_len);
			g->body[m->body_len] = '\0';
			g->body_len = m->body_len;
			dd_buf_addf(&r, "envid=%s ret=%u notify=",
				    m->envid ? m->envid : "-", m->ret);
			for (unsigned int i = 0; i < m->nrcpt; i++)
				dd_buf_addf(&r, "%s%u", i ? "," : "",
					    m->notify ? m->notify[i] : 99);
			dd_buf_adds(&r, " orcpt=");
			for (unsigned int i = 0; i < m->nrcpt; i++)
				dd_buf_addf(&r, "%s%s", i ? "|" : "",
					    !m->orcpt ? "*" : m->orcpt[i] ?
					    m->orcpt[i] : "-");
			g->dsn = dd_buf_detach(&r, NULL);
			g->m = m;
			if (t->autodone)
				dd_smtpd_message_done(t->s, m, 0, t->qid++);
			continue;
		}
		if (a == DD_SMTPD_CONTROL) {
			t->ctl[t->nctl++ % 8] = strdup(dd_smtpd_control(t->s));
			dd_smtpd_control_done(t->s, 250, "queue: 3\nactive: 1\nheld: 0");
			continue;
		}
		t->last = a;
		t_drain(t);
		return a;
	}
}

static enum dd_smtpd_act t_feedn(struct t *t, const void *p, size_t n)
{
	dd_smtpd_feed(t->s, p, n);
	return t_run(t);
}

static enum dd_smtpd_act t_feed(struct t *t, const char *str)
{
	return t_feedn(t, str, strlen(str));
}

/* The output since the last call, as a string. */
static char *t_out(struct t *t)
{
	static char *last;

	free(last);
	last = dd_buf_detach(&t->out, NULL);
	return last;
}

static void t_free(struct t *t)
{
	for (unsigned int i = 0; i < t->nmsg && i < 64; i++) {
		free(t->msg[i].sender);
		free(t->msg[i].rcpts);
		free(t->msg[i].body);
		free(t->msg[i].dsn);
	}
	for (unsigned int i = 0; i < t->nctl && i < 8; i++)
		free(t->ctl[i]);
	dd_smtpd_free(t->s);
	dd_buf_free(&t->out);
}

/* The body after our Received: field (3 lines, checked when from client.test). */
static const char *after_received(const struct got *g)
{
	const char *p = g->body;

	if (strncmp(p, "Received: from ", 15))
		return NULL;
	if (strstr(p, "client.test") && strncmp(p, RECEIVED, strlen(RECEIVED)))
		return NULL;
	for (int i = 0; i < 3; i++) {
		p = strstr(p, "\r\n");
		if (!p)
			return NULL;
		p += 2;
		if (i < 2 && *p != '\t')
			return NULL;
	}
	return p;
}

TEST(greeting)
{
	struct t t;

	t_init(&t, false, NULL, false);
	ASSERT_NE(NULL, t.s);
	t_drain(&t);
	EXPECT_STREQ(GREETING, t_out(&t));
	EXPECT_EQ(DD_SMTPD_READ, dd_smtpd_run(t.s));
	EXPECT_EQ(0, dd_smtpd_pending(t.s));
	t_free(&t);
}

TEST(ehlo_extensions)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	EXPECT_EQ(DD_SMTPD_READ, t_feed(&t, "EHLO client.test\r\n"));
	EXPECT_STREQ(EHLO_REPLY, t_out(&t));
	t_feed(&t, "ehlo   other.test  \r\nHELO client.test\r\n");
	EXPECT_STREQ(EHLO_REPLY "250 mx.test\r\n", t_out(&t));
	t_feed(&t, "EHLO\r\nHELO \r\n");
	EXPECT_STREQ("501 5.5.4 Syntax: EHLO hostname\r\n"
		     "501 5.5.4 Syntax: HELO hostname\r\n", t_out(&t));
	t_free(&t);
}

TEST(simple_commands)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "noop\r\nNoOp hello\r\nRSET\r\nVRFY bob\r\nHELP\r\nEXPN list\r\n"
	       "\r\nQUIT\r\n");
	EXPECT_STREQ(GREETING
		     "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
		     "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n"
		     "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT\r\n"
		     "500 5.5.1 Command unrecognized\r\n"
		     "500 5.5.1 Command unrecognized\r\n"
		     "221 2.0.0 Bye\r\n", t_out(&t));
	EXPECT_EQ(DD_SMTPD_CLOSE, t.last);
	/* nothing more is read */
	EXPECT_EQ(DD_SMTPD_CLOSE, t_feed(&t, "NOOP\r\n"));
	EXPECT_STREQ("", t_out(&t));
	t_free(&t);
}

TEST(data_transaction)
{
	static const char body[] =
		"Subject: hi\r\n"
		"\r\n"
		"..leading dot\r\n"
		"bare lf\n"
		".\n"
		"...\r\n"
		"cr\rin line\r\n"
		"\n"
		"end\r\n";
	static const char want[] =
		"Subject: hi\r\n"
		"\r\n"
		".leading dot\r\n"
		"bare lf\r\n"
		".\r\n"	/* a lone dot is not stuffing: kept */
		"..\r\n"
		"cr\rin line\r\n"
		"\r\n"
		"end\r\n";
	struct t t;
	const char *b;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO client.test\r\nMAIL FROM:<a@example.org> BODY=8BITMIME\r\n");
	t_feed(&t, "RCPT TO:<b@example.net>\r\nRCPT TO:<\"c d\"@[192.0.2.9]>\r\n");
	t_feed(&t, "DATA\r\n");
	EXPECT_STREQ(GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
		     t_out(&t));
	t_feed(&t, body);
	EXPECT_EQ(0, t.nmsg);
	EXPECT_STREQ("", t_out(&t));
	t_feed(&t, ".\r\nQUIT\r\n");
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("250 2.0.0 Ok: queued as 0000000000000100\r\n221 2.0.0 Bye\r\n",
		     t_out(&t));
	EXPECT_STREQ("a@example.org", t.msg[0].sender);
	EXPECT_STREQ("b@example.net,\"c d\"@[192.0.2.9]", t.msg[0].rcpts);
	EXPECT_EQ(DD_MSG_8BIT, t.msg[0].flags);
	b = after_received(&t.msg[0]);
	ASSERT_NE(NULL, b);
	EXPECT_STREQ(want, b);
	EXPECT_EQ(strlen(t.msg[0].body), t.msg[0].body_len);
	EXPECT_EQ(DD_SMTPD_CLOSE, t.last);
	t_free(&t);
}

TEST(data_received_header)
{
	struct t t;
	const char *b;

	t_init(&t, false, NULL, false);
	t_feed(&t, "HELO we(ird)\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n"
	       "no final newline\r\n.\r\n");
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("", t.msg[0].sender);
	EXPECT_EQ(DD_MSG_NULLSENDER, t.msg[0].flags);
	b = t.msg[0].body;
	EXPECT_EQ(0, strncmp(b, "Received: from we?ird? (192.0.2.1)\r\n"
			     "\tby mx.test with SMTP;\r\n\t", 61));
	/* "\tDay, D Mon YYYY HH:MM:SS +ZZZZ\r\n" */
	b += 61;
	EXPECT_NE(NULL, strchr("SMTWF", b[0]));
	EXPECT_EQ(',', b[3]);
	b = strstr(b, "\r\n");
	ASSERT_NE(NULL, b);
	EXPECT_EQ(' ', b[-6]);
	EXPECT_NE(NULL, strchr("+-", b[-5]));
	EXPECT_STREQ("\r\nno final newline\r\n", b);
	t_free(&t);
}

/* "\n.\r\n" and ".\n" do not end DATA: only CRLF "." CRLF does. */
TEST(data_end_strict)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
	t_feed(&t, "x\n.\r\ny\r\n.\nz\r\n.\r");
	EXPECT_EQ(0, t.nmsg);
	t_feed(&t, "\n");
	ASSERT_EQ(1, t.nmsg);
	/*
	 * The "." lines with a bare LF on either side are no end of data,
	 * and no stuffing either: they are delivered as "." lines.
	 */
	EXPECT_STREQ("x\r\n.\r\ny\r\n.\r\nz\r\n", after_received(&t.msg[0]));
	t_free(&t);
}

/*
 * Progress counts whole records, not bytes: a client dribbling a command
 * line byte by byte makes none until the line is complete, so the
 * caller's per-record timeout fires; the timeout's 421 then closes.
 */
TEST(progress_per_record)
{
	static const char cmd[] = "MAIL FROM:<a@b.c>\r\n";
	struct t t;
	uint64_t p0, p1;
	size_t i;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO c\r\n");
	p0 = dd_smtpd_progress(t.s);
	for (i = 0; i + 1 < sizeof(cmd) - 1; i++) {
		t_feedn(&t, cmd + i, 1);
		EXPECT_EQ(p0, dd_smtpd_progress(t.s));
	}
	t_feedn(&t, cmd + i, 1);
	p1 = dd_smtpd_progress(t.s);
	EXPECT_EQ(p0 + 1, p1);
	/* DATA: one record a line, none for a partial one */
	t_feed(&t, "RCPT TO:<d@e.f>\r\nDATA\r\nline one\r\nline t");
	EXPECT_EQ(p1 + 3, dd_smtpd_progress(t.s));
	t_out(&t);
	dd_smtpd_timeout(t.s);
	EXPECT_EQ(DD_SMTPD_CLOSE, t_run(&t));
	EXPECT_STREQ("421 4.4.2 Timeout exceeded, closing\r\n", t_out(&t));
	EXPECT_EQ(0, t.nmsg);
	t_free(&t);
}

/* A DATA line longer than max_line is taken in pieces. */
TEST(data_long_line)
{
	struct t t;
	char line[1200];

	t_init(&t, false, NULL, false);
	t.conf.max_size = 5000;
	t_restart(&t);
	t_feed(&t, "EHLO client.test\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
	memset(line, 'x', sizeof(line));
	line[0] = '.';
	line[1] = '.';
	line[sizeof(line) - 2] = '\r';
	t_feedn(&t, line, sizeof(line) - 1);	/* ends in the CR */
	EXPECT_EQ(0, t.nmsg);
	t_feed(&t, "\n.\r\n");
	ASSERT_EQ(1, t.nmsg);
	ASSERT_NE(NULL, after_received(&t.msg[0]));
	EXPECT_EQ(sizeof(line) - 1, t.msg[0].body_len -
		  (size_t)(after_received(&t.msg[0]) - t.msg[0].body));
	EXPECT_EQ('.', after_received(&t.msg[0])[0]);
	EXPECT_EQ('x', after_received(&t.msg[0])[1]);
	EXPECT_EQ(0, memcmp(t.msg[0].body + t.msg[0].body_len - 3, "x\r\n", 3));
	t_free(&t);
}

TEST(bdat_chunks)
{
	static const char chunk1[] = "Subject: bin\r\n\r\n\0\x01\xff";
	static const char chunk2[] = "bare\nlf\r\n.\r\n";
	static const char chunk3[] = "BDAT 3";	/* data, not a command */
	struct t t;
	struct dd_buf in = DD_BUF_INIT;
	const char *b;

	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	dd_buf_adds(&in, "EHLO client.test\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
	dd_buf_addf(&in, "BDAT %zu\r\n", sizeof(chunk1) - 1);
	dd_buf_add(&in, chunk1, sizeof(chunk1) - 1);
	dd_buf_addf(&in, "BDAT %zu\r\n", sizeof(chunk2) - 1);
	dd_buf_add(&in, chunk2, sizeof(chunk2) - 1);
	dd_buf_addf(&in, "bdat %zu last\r\n", sizeof(chunk3) - 1);
	dd_buf_add(&in, chunk3, sizeof(chunk3) - 1);
	dd_buf_adds(&in, "DATA\r\n");
	t_feedn(&t, in.p, in.len);
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ(EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 19 octets received\r\n"
		     "250 2.0.0 12 octets received\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000100\r\n"
		     "503 5.5.1 Need MAIL command\r\n", t_out(&t));
	b = after_received(&t.msg[0]);
	ASSERT_NE(NULL, b);
	/* as sent, plus the CRLF it lacked */
	ASSERT_EQ(19 + 12 + 6 + 2, t.msg[0].body_len - (size_t)(b - t.msg[0].body));
	EXPECT_EQ(0, memcmp(b, chunk1, 19));
	EXPECT_EQ(0, memcmp(b + 19, chunk2, 12));
	EXPECT_EQ(0, memcmp(b + 31, "BDAT 3\r\n", 8));
	dd_buf_free(&in);
	t_free(&t);
}

TEST(bdat_zero_last)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO client.test\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n"
	       "BDAT 0 LAST\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n"
	       "BDAT 4\r\nab\r\nBDAT 0 LAST\r\n");
	ASSERT_EQ(2, t.nmsg);
	EXPECT_STREQ("", after_received(&t.msg[0]));
	EXPECT_STREQ("ab\r\n", after_received(&t.msg[1]));
	EXPECT_STREQ(GREETING EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000100\r\n"
		     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 4 octets received\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000101\r\n", t_out(&t));
	t_free(&t);
}

/* BDAT in the wrong place still takes its octets, then says why. */
TEST(bdat_errors)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	t.conf.max_errors = 100;
	t_restart(&t);
	t_drain(&t);
	t_out(&t);
	/* the octets of a refused chunk are never taken as commands */
	t_feed(&t, "EHLO c\r\nBDAT 6\r\nNOOP\r\nBDAT x\r\nBDAT 1 FIRST\r\n"
	       "MAIL FROM:<a@b.c>\r\nRCPT TO:<bad>\r\nBDAT 6 LAST\r\nRSET\r\n"
	       "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 2\r\nx\nDATA\r\n"
	       "RSET\r\nBDAT 2 LAST\r\nzz");
	EXPECT_STREQ(EHLO_REPLY
		     "503 5.5.1 Need MAIL command\r\n"
		     "501 5.5.4 Syntax: BDAT size [LAST]\r\n"
		     "501 5.5.4 Syntax: BDAT size [LAST]\r\n"
		     "250 2.1.0 Ok\r\n"
		     "501 5.1.3 The recipient address needs a domain\r\n"
		     "554 5.5.1 No valid recipients\r\n"
		     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 2 octets received\r\n"
		     "503 5.5.1 DATA after BDAT\r\n"
		     "250 2.0.0 Ok\r\n"
		     "503 5.5.1 Need MAIL command\r\n", t_out(&t));
	EXPECT_EQ(0, t.nmsg);
	t_free(&t);
}

TEST(pipelined_replies_in_order)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c> SIZE=100\r\nRCPT TO:<d@e.f>\r\n"
	       "RCPT TO:<bad@>\r\nRCPT TO:<g@h.i>\r\nDATA\r\n");
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "501 5.1.3 Bad recipient address syntax\r\n250 2.1.5 Ok\r\n"
		     "354 End data with <CR><LF>.<CR><LF>\r\n", t_out(&t));
	t_feed(&t, "hello\r\n.\r\nMAIL FROM:<x@y.z>\r\nRCPT TO:<q@r.s>\r\nDATA\r\n");
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("d@e.f,g@h.i", t.msg[0].rcpts);
	EXPECT_STREQ("250 2.0.0 Ok: queued as 0000000000000100\r\n"
		     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "354 End data with <CR><LF>.<CR><LF>\r\n", t_out(&t));
	t_free(&t);
}

/* Two messages pending, done in the reverse order: replies stay in order. */
TEST(pending_out_of_order)
{
	struct t t;
	const struct dd_smtpd_msg *m1, *m2;
	const char *b;
	size_t n;

	t_init(&t, false, NULL, false);
	t.autodone = false;
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 3 LAST\r\none"
	       "MAIL FROM:<a@b.c>\r\nRCPT TO:<g@h.i>\r\nBDAT 3 LAST\r\ntwo"
	       "NOOP\r\n");
	ASSERT_EQ(2, t.nmsg);
	EXPECT_EQ(2, dd_smtpd_pending(t.s));
	m1 = t.msg[0].m;
	m2 = t.msg[1].m;
	EXPECT_STREQ("one\r\n", after_received(&t.msg[0]));
	EXPECT_STREQ("two\r\n", after_received(&t.msg[1]));
	/* only what precedes the first message's reply is out */
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", t_out(&t));
	/* the second's pointer is still valid */
	EXPECT_STREQ("g@h.i", m2->rcpts[0]);
	dd_smtpd_message_done(t.s, m2, -ENOSPC, 0);
	EXPECT_EQ(1, dd_smtpd_pending(t.s));
	dd_smtpd_output(t.s, &b, &n);
	EXPECT_EQ(0, n);
	EXPECT_EQ(DD_SMTPD_READ, t_feed(&t, "QUIT\r\n"));
	EXPECT_STREQ("", t_out(&t));
	dd_smtpd_message_done(t.s, m1, 0, 0xabcdef);
	EXPECT_EQ(0, dd_smtpd_pending(t.s));
	EXPECT_EQ(DD_SMTPD_CLOSE, t_run(&t));
	EXPECT_STREQ("250 2.0.0 Ok: queued as 0000000000ABCDEF\r\n"
		     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "452 4.3.1 Insufficient system storage\r\n"
		     "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n", t_out(&t));
	t_free(&t);
}

/* At DD_SMTPD_PENDING messages waiting, input stays where it is. */
TEST(pending_limit)
{
	struct t t;
	struct dd_buf in = DD_BUF_INIT;
	unsigned int i;

	t_init(&t, false, NULL, false);
	t.autodone = false;
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	for (i = 0; i < DD_SMTPD_PENDING + 2; i++)
		dd_buf_adds(&in, "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 1 LAST\r\nx");
	EXPECT_EQ(DD_SMTPD_READ, t_feedn(&t, in.p, in.len));
	EXPECT_EQ(DD_SMTPD_PENDING, t.nmsg);
	EXPECT_EQ(DD_SMTPD_PENDING, dd_smtpd_pending(t.s));
	EXPECT_EQ(DD_SMTPD_READ, t_run(&t));
	EXPECT_EQ(DD_SMTPD_PENDING, t.nmsg);
	dd_smtpd_message_done(t.s, t.msg[0].m, 0, 1);
	EXPECT_EQ(DD_SMTPD_READ, t_run(&t));
	EXPECT_EQ(DD_SMTPD_PENDING + 1, t.nmsg);
	for (i = 1; i < t.nmsg; i++)
		dd_smtpd_message_done(t.s, t.msg[i].m, 0, 1);
	EXPECT_EQ(DD_SMTPD_READ, t_run(&t));
	EXPECT_EQ(DD_SMTPD_PENDING + 2, t.nmsg);
	dd_smtpd_message_done(t.s, t.msg[t.nmsg - 1].m, 0, 1);
	EXPECT_EQ(0, dd_smtpd_pending(t.s));
	t_drain(&t);
	/* 3 replies a message, all out */
	do {
		const char *o = t_out(&t);
		unsigned int lines = 0;

		for (; *o; o++)
			lines += *o == '\n';
		EXPECT_EQ(3 * (DD_SMTPD_PENDING + 2), lines);
	} while (0);
	dd_buf_free(&in);
	t_free(&t);
}

TEST(line_too_long)
{
	struct t t;
	char line[700];

	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	memset(line, 'A', sizeof(line));
	memcpy(line, "NOOP ", 5);
	/* 510 + CRLF = 512: fits */
	t_feedn(&t, line, 510);
	t_feed(&t, "\r\n");
	EXPECT_STREQ("250 2.0.0 Ok\r\n", t_out(&t));
	/* 511 + CRLF: too long, found whole */
	t_feedn(&t, line, 511);
	t_feed(&t, "\r\nNOOP\r\n");
	EXPECT_STREQ("500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n", t_out(&t));
	/* too long, arriving in pieces without a line end for a while */
	t_feedn(&t, line, 700);
	EXPECT_STREQ("", t_out(&t));
	t_feedn(&t, line, 700);
	t_feed(&t, "RCPT TO:<x@y.z>\r\nNOOP\r\n");
	EXPECT_STREQ("500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n", t_out(&t));
	t_free(&t);
}

TEST(size_limits)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c> SIZE=1001\r\n"
	       "MAIL FROM:<a@b.c> SIZE=1000 BODY=7BIT\r\nRSET\r\n"
	       "MAIL FROM:<a@b.c> SIZE=99999999999999999999\r\n"
	       "MAIL FROM:<a@b.c> SIZE=\r\n"
	       "MAIL FROM:<a@b.c> SIZE=1 SIZE=2\r\n"
	       "MAIL FROM:<a@b.c> AUTH=<>\r\n"
	       "MAIL FROM:<a@b.c> XFOO\r\n"
	       "MAIL FROM:<a@b.c> BODY=9BIT\r\n"
	       "MAIL FROM:<a@b.c> size=1000 body=8bitmime\r\n");
	EXPECT_STREQ("552 5.3.4 Message size exceeds fixed maximum message size\r\n"
		     "250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n"
		     "501 5.5.4 Bad parameter value\r\n"
		     "501 5.5.4 Bad parameter syntax\r\n"
		     "501 5.5.4 Bad parameter value\r\n"
		     "555 5.5.4 Unsupported parameter AUTH\r\n"
		     "555 5.5.4 Unsupported parameter XFOO\r\n"
		     "501 5.5.4 Bad parameter value\r\n"
		     "250 2.1.0 Ok\r\n", t_out(&t));
	EXPECT_EQ(DD_SMTPD_READ, t.last);
	t_feed(&t, "RCPT TO:<d@e.f>\r\nBDAT 1 LAST\r\n\x80");
	ASSERT_EQ(1, t.nmsg);
	EXPECT_EQ(DD_MSG_8BIT, t.msg[0].flags);
	t_out(&t);
	/* HELO: no ESMTP parameters at all */
	t_feed(&t, "HELO client.test\r\nMAIL FROM:<a@b.c> SIZE=10\r\n");
	EXPECT_STREQ("250 mx.test\r\n555 5.5.4 Unsupported parameter SIZE\r\n",
		     t_out(&t));
	t_free(&t);
}

TEST(data_too_big)
{
	struct t t;
	char big[1100];

	t_init(&t, false, NULL, false);
	memset(big, 'y', sizeof(big));
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
	t_out(&t);
	for (int i = 0; i < 3; i++) {
		t_feedn(&t, big, 300);
		t_feed(&t, "\r\n");
	}
	t_feedn(&t, big, 100);
	t_feed(&t, "\r\n");
	EXPECT_STREQ("", t_out(&t));
	t_feed(&t, ".\r\nNOOP\r\n");
	EXPECT_EQ(0, t.nmsg);
	EXPECT_STREQ("552 5.3.4 Message size exceeds fixed maximum message size\r\n"
		     "250 2.0.0 Ok\r\n", t_out(&t));
	/* exactly max_size is fine: 3 * 300 + 3 * CRLF + 92 + CRLF */
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
	for (int i = 0; i < 3; i++) {
		t_feedn(&t, big, 300);
		t_feed(&t, "\r\n");
	}
	t_feedn(&t, big, 92);
	t_feed(&t, "\r\n.\r\n");
	EXPECT_EQ(1, t.nmsg);
	t_free(&t);
}

TEST(bdat_too_big)
{
	struct t t;
	char big[1100];

	t_init(&t, false, NULL, false);
	memset(big, 'z', sizeof(big));
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 600\r\n");
	t_feedn(&t, big, 600);
	t_feed(&t, "BDAT 500\r\n");
	t_feedn(&t, big, 499);
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 600 octets received\r\n", t_out(&t));
	t_feedn(&t, big, 1);
	EXPECT_STREQ("552 5.3.4 Message size exceeds fixed maximum message size\r\n",
		     t_out(&t));
	t_feed(&t, "BDAT 5 LAST\r\nzzzzzNOOP\r\n");
	EXPECT_STREQ("552 5.3.4 Message size exceeds fixed maximum message size\r\n"
		     "250 2.0.0 Ok\r\n", t_out(&t));
	/* one chunk over the limit, LAST at once */
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 1001 LAST\r\n");
	t_feedn(&t, big, 1001);
	t_feed(&t, "RCPT TO:<d@e.f>\r\n");
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
		     "503 5.5.1 Need MAIL command\r\n", t_out(&t));
	EXPECT_EQ(0, t.nmsg);
	t_free(&t);
}

TEST(too_many_rcpts)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<1@e.f>\r\nRCPT TO:<2@e.f>\r\n"
	       "RCPT TO:<3@e.f>\r\nRCPT TO:<4@e.f>\r\nRCPT TO:<5@e.f>\r\n"
	       "DATA\r\nx\r\n.\r\n");
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
		     "452 4.5.3 Too many recipients\r\n"
		     "452 4.5.3 Too many recipients\r\n"
		     "354 End data with <CR><LF>.<CR><LF>\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000100\r\n", t_out(&t));
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("1@e.f,2@e.f,3@e.f", t.msg[0].rcpts);
	t_free(&t);
}

TEST(too_many_errors)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	EXPECT_EQ(DD_SMTPD_CLOSE,
		  t_feed(&t, "FOO\r\nXQUEUE\r\nRCPT TO:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\n"
			 "DATA x\r\nNOOP\r\n"));
	EXPECT_STREQ("500 5.5.1 Command unrecognized\r\n"
		     "500 5.5.1 Command unrecognized\r\n"
		     "503 5.5.1 Need MAIL command\r\n"
		     "503 5.5.1 Send EHLO or HELO first\r\n"
		     "421 4.7.0 Too many errors\r\n", t_out(&t));
	t_free(&t);
}

TEST(sequence_errors)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t.conf.max_errors = 100;
	t_restart(&t);
	t_drain(&t);
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nDATA\r\nEHLO c\r\nRCPT TO:<a@b.c>\r\n"
	       "DATA\r\nMAIL FROM:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\nDATA\r\n"
	       "RCPT TO:<x@y.z>\r\nEHLO c\r\nRCPT TO:<x@y.z>\r\n");
	EXPECT_STREQ("503 5.5.1 Send EHLO or HELO first\r\n"
		     "503 5.5.1 Need MAIL command\r\n"
		     EHLO_REPLY
		     "503 5.5.1 Need MAIL command\r\n"
		     "503 5.5.1 Need MAIL command\r\n"
		     "250 2.1.0 Ok\r\n"
		     "503 5.5.1 Nested MAIL command\r\n"
		     "554 5.5.1 No valid recipients\r\n"
		     "250 2.1.5 Ok\r\n"
		     EHLO_REPLY
		     "503 5.5.1 Need MAIL command\r\n", t_out(&t));
	/* DATA after BDAT */
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 1\r\nxDATA\r\n"
	       "BDAT 1 LAST\r\ny");
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 1 octets received\r\n"
		     "503 5.5.1 DATA after BDAT\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000100\r\n", t_out(&t));
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("xy\r\n", after_received(&t.msg[0]));
	t_free(&t);
}

TEST(address_syntax)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t.conf.max_errors = 100;
	t_restart(&t);
	t_feed(&t, "EHLO c\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:a@b.c\r\nMAIL TO:<a@b.c>\r\nMAIL FROM:<a@b..c>\r\n"
	       "MAIL FROM:<@r.s:a@b.c>\r\nMAIL FROM:<a>\r\n"
	       "MAIL FROM: <a@b.c>\r\n"
	       "RCPT TO:<>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<@r:x@y.z>\r\n"
	       "RCPT TO:x@y.z\r\nRCPT TO:<x@y.z> XFOO=1\r\n"
	       "RCPT TO:<x@-y.z>\r\nRCPT TO:<x@y.z>x\r\nrcpt to:<X@Y.Z>\r\n");
	EXPECT_STREQ("501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
		     "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
		     "501 5.1.7 Bad sender address syntax\r\n"
		     "501 5.1.7 Source routes are not accepted\r\n"
		     "501 5.1.7 The sender address needs a domain\r\n"
		     "250 2.1.0 Ok\r\n"
		     "501 5.1.3 Bad recipient address syntax\r\n"
		     "501 5.1.3 The recipient address needs a domain\r\n"
		     "501 5.1.3 Source routes are not accepted\r\n"
		     "501 5.5.4 Syntax: RCPT TO:<address>\r\n"
		     "555 5.5.4 Unsupported parameter XFOO\r\n"
		     "501 5.1.3 Bad recipient address syntax\r\n"
		     "501 5.5.4 Bad parameter syntax\r\n"
		     "250 2.1.5 Ok\r\n", t_out(&t));
	t_free(&t);
}

TEST(refuse_554)
{
	struct t t;

	t_init(&t, false, "Go away", false);
	t_drain(&t);
	EXPECT_STREQ("554 5.7.1 Go away\r\n", t_out(&t));
	EXPECT_EQ(DD_SMTPD_READ, t_feed(&t, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nNOOP\r\n"));
	EXPECT_STREQ("503 5.5.1 Bad sequence of commands\r\n"
		     "503 5.5.1 Bad sequence of commands\r\n"
		     "503 5.5.1 Bad sequence of commands\r\n", t_out(&t));
	EXPECT_EQ(DD_SMTPD_CLOSE, t_feed(&t, "quit\r\n"));
	EXPECT_STREQ("221 2.0.0 Bye\r\n", t_out(&t));
	t_free(&t);
}

TEST(refuse_421)
{
	struct t t;

	t_init(&t, false, "Busy, try later", true);
	EXPECT_EQ(DD_SMTPD_CLOSE, t_run(&t));
	EXPECT_STREQ("421 4.7.0 Busy, try later\r\n", t_out(&t));
	EXPECT_EQ(DD_SMTPD_CLOSE, t_feed(&t, "EHLO c\r\n"));
	EXPECT_STREQ("", t_out(&t));
	t_free(&t);
}

TEST(control)
{
	struct t t;

	t_init(&t, true, NULL, false);
	t_drain(&t);
	t_out(&t);
	EXPECT_EQ(DD_SMTPD_READ, t_feed(&t, "XQUEUE all\r\nxstats\r\nNOOP\r\n"));
	ASSERT_EQ(2, t.nctl);
	EXPECT_STREQ("XQUEUE all", t.ctl[0]);
	EXPECT_STREQ("xstats", t.ctl[1]);
	EXPECT_STREQ("250-queue: 3\r\n250-active: 1\r\n250 held: 0\r\n"
		     "250-queue: 3\r\n250-active: 1\r\n250 held: 0\r\n"
		     "250 2.0.0 Ok\r\n", t_out(&t));
	t_free(&t);

	/* by hand: run() waits for the answer; errors and empty text */
	t_init(&t, true, NULL, false);
	t_drain(&t);
	t_out(&t);
	dd_smtpd_feed(t.s, "XHOLD 1\r\nXFLUSH\r\nNOOP\r\n", 23);
	EXPECT_EQ(DD_SMTPD_CONTROL, dd_smtpd_run(t.s));
	EXPECT_STREQ("XHOLD 1", dd_smtpd_control(t.s));
	EXPECT_EQ(DD_SMTPD_READ, dd_smtpd_run(t.s));
	dd_smtpd_control_done(t.s, 550, "no such message\n");
	EXPECT_EQ(DD_SMTPD_CONTROL, dd_smtpd_run(t.s));
	EXPECT_STREQ("XFLUSH", dd_smtpd_control(t.s));
	dd_smtpd_control_done(t.s, 250, "");
	EXPECT_EQ(DD_SMTPD_READ, dd_smtpd_run(t.s));
	t_drain(&t);
	EXPECT_STREQ("550 no such message\r\n250 Ok\r\n250 2.0.0 Ok\r\n", t_out(&t));
	/* the control socket takes mail too */
	t_feed(&t, "EHLO deliverctl\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n"
	       "BDAT 2 LAST\r\nhi");
	EXPECT_EQ(1, t.nmsg);
	t_free(&t);

	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	t_feed(&t, "XQUEUE\r\n");
	EXPECT_EQ(0, t.nctl);
	EXPECT_STREQ("500 5.5.1 Command unrecognized\r\n", t_out(&t));
	t_free(&t);
}

/*
 * XSTATS answers a JSON object a line, longer than SMTP's 512 octets once
 * its figures grow: the line comes back whole; one past 60,000 bytes is
 * cut there (our clients read lines of up to 64 KiB).
 */
TEST(control_long_lines)
{
	static char text[70000];
	size_t n;
	const char *out;
	struct t t;

	t_init(&t, true, NULL, false);
	t_drain(&t);
	t_out(&t);
	memset(text, 'x', 2000);
	memcpy(text + 2000, "\nshort", 7);
	dd_smtpd_feed(t.s, "XSTATS\r\n", 8);
	EXPECT_EQ(DD_SMTPD_CONTROL, dd_smtpd_run(t.s));
	dd_smtpd_control_done(t.s, 250, text);
	t_drain(&t);
	out = t_out(&t);
	n = strlen(out);
	ASSERT_EQ(4 + 2000 + 2 + 4 + 5 + 2, n);
	EXPECT_EQ(0, strncmp(out, "250-xxx", 7));
	EXPECT_EQ(0, strcmp(out + 4 + 2000, "\r\n250 short\r\n"));

	memset(text, 'y', sizeof(text) - 1);
	dd_smtpd_feed(t.s, "XSTATS\r\n", 8);
	EXPECT_EQ(DD_SMTPD_CONTROL, dd_smtpd_run(t.s));
	dd_smtpd_control_done(t.s, 250, text);
	t_drain(&t);
	out = t_out(&t);
	ASSERT_EQ(4 + 60000 + 2, strlen(out));
	EXPECT_EQ(0, strncmp(out, "250 yyy", 7));
	t_free(&t);
}

/* The whole conversation, one byte at a time, as in one feed. */
static const char script[] =
	"EHLO client.test\r\n"
	"MAIL FROM:<a@b.c> BODY=8BITMIME SIZE=50\r\n"
	"RCPT TO:<d@e.f>\r\nRCPT TO:<g@h.i>\r\nDATA\r\n"
	"Subject: x\r\n\r\n..dot\nbare\r\n.\r\n"
	"MAIL FROM:<>\r\nRCPT TO:<d@e.f>\r\nBDAT 7\r\n\r\n.\r\n\0\nBDAT 0 LAST\r\n"
	"NOOP\r\nFOO\r\nXSTATS\r\nRSET\r\nQUIT\r\nNOOP\r\n";

static void by_bytes(struct t *t, size_t step)
{
	t_init(t, true, NULL, false);
	for (size_t i = 0; i < sizeof(script) - 1; i += step) {
		size_t n = sizeof(script) - 1 - i < step ? sizeof(script) - 1 - i : step;

		t_feedn(t, script + i, n);
	}
	dd_smtpd_eof(t->s);
	t_run(t);
}

TEST(byte_by_byte)
{
	struct t one, bytes, threes;

	by_bytes(&one, sizeof(script));
	by_bytes(&bytes, 1);
	by_bytes(&threes, 3);
	EXPECT_EQ(DD_SMTPD_CLOSE, one.last);
	EXPECT_EQ(DD_SMTPD_CLOSE, bytes.last);
	ASSERT_EQ(2, one.nmsg);
	ASSERT_EQ(2, bytes.nmsg);
	ASSERT_EQ(2, threes.nmsg);
	EXPECT_EQ(1, one.nctl);
	EXPECT_EQ(1, bytes.nctl);
	for (int i = 0; i < 2; i++) {
		EXPECT_STREQ(one.msg[i].rcpts, bytes.msg[i].rcpts);
		EXPECT_EQ(one.msg[i].flags, bytes.msg[i].flags);
		ASSERT_EQ(one.msg[i].body_len, bytes.msg[i].body_len);
		ASSERT_EQ(one.msg[i].body_len, threes.msg[i].body_len);
		/* the dates may differ by a second: compare after them */
		EXPECT_STREQ(after_received(&one.msg[i]), after_received(&bytes.msg[i]));
		EXPECT_STREQ(after_received(&one.msg[i]), after_received(&threes.msg[i]));
	}
	EXPECT_STREQ("Subject: x\r\n\r\n.dot\r\nbare\r\n", after_received(&one.msg[0]));
	/* as sent, but the final bare LF made CRLF */
	EXPECT_EQ(0, memcmp("\r\n.\r\n\0\r\n", after_received(&one.msg[1]), 8));
	EXPECT_EQ(8, one.msg[1].body_len -
		  (size_t)(after_received(&one.msg[1]) - one.msg[1].body));
	EXPECT_EQ(DD_MSG_8BIT, one.msg[0].flags);
	EXPECT_EQ(DD_MSG_NULLSENDER, one.msg[1].flags);
	do {
		char *a = strdup(t_out(&one));

		EXPECT_STREQ(a, t_out(&bytes));
		EXPECT_STREQ(a, t_out(&threes));
		EXPECT_STREQ(GREETING EHLO_REPLY
			     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
			     "354 End data with <CR><LF>.<CR><LF>\r\n"
			     "250 2.0.0 Ok: queued as 0000000000000100\r\n"
			     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			     "250 2.0.0 7 octets received\r\n"
			     "250 2.0.0 Ok: queued as 0000000000000101\r\n"
			     "250 2.0.0 Ok\r\n"
			     "500 5.5.1 Command unrecognized\r\n"
			     "250-queue: 3\r\n250-active: 1\r\n250 held: 0\r\n"
			     "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n", a);
		free(a);
	} while (0);
	t_free(&one);
	t_free(&bytes);
	t_free(&threes);
}

TEST(eof)
{
	struct t t;

	/* buffered commands are answered, then CLOSE */
	t_init(&t, false, NULL, false);
	t_drain(&t);
	t_out(&t);
	dd_smtpd_feed(t.s, "NOOP\r\nNOOP\r\nNOO", 15);
	dd_smtpd_eof(t.s);
	EXPECT_EQ(DD_SMTPD_CLOSE, t_run(&t));
	EXPECT_STREQ("250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n", t_out(&t));
	t_free(&t);

	/* in the middle of DATA: no message */
	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nabc\r\n");
	dd_smtpd_eof(t.s);
	EXPECT_EQ(DD_SMTPD_CLOSE, t_run(&t));
	EXPECT_EQ(0, t.nmsg);
	t_free(&t);

	/* with a message pending: READ until it is done */
	t_init(&t, false, NULL, false);
	t.autodone = false;
	t_feed(&t, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 1 LAST\r\nx");
	dd_smtpd_eof(t.s);
	EXPECT_EQ(DD_SMTPD_READ, t_run(&t));
	ASSERT_EQ(1, t.nmsg);
	dd_smtpd_message_done(t.s, t.msg[0].m, -EIO, 0);
	EXPECT_EQ(DD_SMTPD_CLOSE, t_run(&t));
	EXPECT_NE(NULL, strstr(t_out(&t), "250 2.1.5 Ok\r\n451 4.3.0 Local error\r\n"));
	t_free(&t);
}

/* RFC 3461 parameters are kept as given and handed on with the message. */
TEST(dsn_params)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t_feed(&t, "EHLO client.test\r\n");
	EXPECT_STREQ(GREETING EHLO_REPLY, t_out(&t));
	t_feed(&t, "MAIL FROM:<a@b.c> RET=hdrs ENVID=QQ+2Bid+3D1\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=success,Failure ORCPT=rfc822;x+2Bt@y.z\r\n"
	       "RCPT TO:<u@y.z>\r\n"
	       "RCPT TO:<v@y.z> NOTIFY=NEVER\r\n"
	       "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
	EXPECT_STREQ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000100\r\n", t_out(&t));
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("x@y.z,u@y.z,v@y.z", t.msg[0].rcpts);
	/* DD_NOTIFY_SUCCESS | DD_NOTIFY_FAILURE = 6, none = 0, NEVER = 1 */
	EXPECT_STREQ("envid=QQ+2Bid+3D1 ret=2 notify=6,0,1 "
		     "orcpt=rfc822;x+2Bt@y.z|-|-", t.msg[0].dsn);
	EXPECT_EQ(0, t.msg[0].flags);

	/* RET=FULL, NOTIFY=DELAY alone; no ORCPT at all gives a NULL array */
	t_feed(&t, "MAIL FROM:<a@b.c> RET=FULL\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=DELAY\r\nBDAT 3 LAST\r\nx\r\n");
	ASSERT_EQ(2, t.nmsg);
	EXPECT_STREQ("envid=- ret=1 notify=8 orcpt=*", t.msg[1].dsn);

	/* nothing given: no arrays, no ENVID (no leftovers from before) */
	t_feed(&t, "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n"
	       "BDAT 3 LAST\r\nx\r\n");
	ASSERT_EQ(3, t.nmsg);
	EXPECT_STREQ("envid=- ret=0 notify=99 orcpt=*", t.msg[2].dsn);
	t_out(&t);

	/* a MAIL refused after its ENVID leaves none behind */
	t_feed(&t, "MAIL FROM:<a@b.c> ENVID=stale SIZE=5000\r\n"
	       "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 3 LAST\r\nx\r\n");
	EXPECT_STREQ("552 5.3.4 Message size exceeds fixed maximum message size\r\n"
		     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000103\r\n", t_out(&t));
	ASSERT_EQ(4, t.nmsg);
	EXPECT_STREQ("envid=- ret=0 notify=99 orcpt=*", t.msg[3].dsn);

	/* RSET forgets the ENVID */
	t_feed(&t, "MAIL FROM:<a@b.c> ENVID=old\r\nRSET\r\n"
	       "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 3 LAST\r\nx\r\n");
	ASSERT_EQ(5, t.nmsg);
	EXPECT_STREQ("envid=- ret=0 notify=99 orcpt=*", t.msg[4].dsn);
	t_free(&t);
}

/* Each malformed DSN parameter and its reply. */
TEST(dsn_bad)
{
	char envid[120], orcpt[520], line[600];
	struct t t;

	t_init(&t, false, NULL, false);
	t.conf.max_errors = 0;
	t.conf.max_line = 1000;
	t_restart(&t);
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<a@b.c> RET=BODY\r\n"
	       "MAIL FROM:<a@b.c> RET\r\n"
	       "MAIL FROM:<a@b.c> RET=FULL RET=HDRS\r\n"
	       "MAIL FROM:<a@b.c> ENVID=a+2\r\n"
	       "MAIL FROM:<a@b.c> ENVID=a+2b\r\n"
	       "MAIL FROM:<a@b.c> ENVID=a+00\r\n"
	       "MAIL FROM:<a@b.c> ENVID\r\n"
	       "MAIL FROM:<a@b.c> ENVID=a ENVID=b\r\n"
	       "MAIL FROM:<a@b.c> SMTPUTF8=yes\r\n"
	       "MAIL FROM:<a@b.c> SMTPUTF8 SMTPUTF8\r\n");
	EXPECT_STREQ("501 5.5.4 RET must be FULL or HDRS\r\n"
		     "501 5.5.4 RET must be FULL or HDRS\r\n"
		     "501 5.5.4 Duplicate RET parameter\r\n"
		     "501 5.5.4 ENVID is not valid xtext\r\n"
		     "501 5.5.4 ENVID is not valid xtext\r\n"
		     "501 5.5.4 ENVID is not valid xtext\r\n"
		     "501 5.5.4 ENVID is not valid xtext\r\n"
		     "501 5.5.4 Duplicate ENVID parameter\r\n"
		     "501 5.5.4 SMTPUTF8 takes no value\r\n"
		     "501 5.5.4 Duplicate SMTPUTF8 parameter\r\n", t_out(&t));
	/* ENVID: 100 characters are fine, 101 are not */
	memset(envid, 'e', 101);
	envid[101] = '\0';
	snprintf(line, sizeof(line), "MAIL FROM:<a@b.c> ENVID=%s\r\n", envid);
	t_feed(&t, line);
	EXPECT_STREQ("501 5.5.4 ENVID longer than 100 characters\r\n", t_out(&t));
	envid[100] = '\0';
	snprintf(line, sizeof(line), "MAIL FROM:<a@b.c> ENVID=%s\r\n", envid);
	t_feed(&t, line);
	EXPECT_STREQ("250 2.1.0 Ok\r\n", t_out(&t));

	t_feed(&t, "RCPT TO:<x@y.z> NOTIFY=NEVER,SUCCESS\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=FAILURE,NEVER\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=SUCCESS,SUCCESS\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=SOMETIMES\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=SUCCESS,\r\n"
	       "RCPT TO:<x@y.z> NOTIFY\r\n"
	       "RCPT TO:<x@y.z> NOTIFY=DELAY NOTIFY=DELAY\r\n"
	       "RCPT TO:<x@y.z> ORCPT=x@y.z\r\n"
	       "RCPT TO:<x@y.z> ORCPT=rfc822;\r\n"
	       "RCPT TO:<x@y.z> ORCPT=;x@y.z\r\n"
	       "RCPT TO:<x@y.z> ORCPT=rfc822;x+4@y.z\r\n"
	       "RCPT TO:<x@y.z> ORCPT=rfc822;a ORCPT=rfc822;b\r\n"
	       "RCPT TO:<x@y.z> FOO=BAR\r\n");
	EXPECT_STREQ("501 5.5.4 NOTIFY=NEVER cannot be combined with other values\r\n"
		     "501 5.5.4 NOTIFY=NEVER cannot be combined with other values\r\n"
		     "501 5.5.4 NOTIFY lists a value twice\r\n"
		     "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY\r\n"
		     "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY\r\n"
		     "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY\r\n"
		     "501 5.5.4 Duplicate NOTIFY parameter\r\n"
		     "501 5.5.4 ORCPT must be addr-type;xtext\r\n"
		     "501 5.5.4 ORCPT must be addr-type;xtext\r\n"
		     "501 5.5.4 ORCPT must be addr-type;xtext\r\n"
		     "501 5.5.4 ORCPT must be addr-type;xtext\r\n"
		     "501 5.5.4 Duplicate ORCPT parameter\r\n"
		     "555 5.5.4 Unsupported parameter FOO\r\n", t_out(&t));
	/* ORCPT: 500 characters are fine, 501 are not */
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'o', 494);
	orcpt[501] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<x@y.z> ORCPT=%s\r\n", orcpt);
	t_feed(&t, line);
	EXPECT_STREQ("501 5.5.4 ORCPT longer than 500 characters\r\n", t_out(&t));
	orcpt[500] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<x@y.z> ORCPT=%s\r\n", orcpt);
	t_feed(&t, line);
	EXPECT_STREQ("250 2.1.5 Ok\r\n", t_out(&t));

	/* HELO: no DSN (no ESMTP at all) */
	t_feed(&t, "HELO client.test\r\nMAIL FROM:<a@b.c> RET=FULL\r\n"
	       "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z> NOTIFY=NEVER\r\n");
	EXPECT_STREQ("250 mx.test\r\n555 5.5.4 Unsupported parameter RET\r\n"
		     "250 2.1.0 Ok\r\n555 5.5.4 Unsupported parameter NOTIFY\r\n",
		     t_out(&t));
	t_free(&t);
}

/* RFC 6531: UTF-8 addresses with SMTPUTF8 only, and well-formed only. */
TEST(smtputf8)
{
	struct t t;

	t_init(&t, false, NULL, false);
	t.conf.max_errors = 0;
	t_restart(&t);
	t_feed(&t, "EHLO client.test\r\n");
	t_out(&t);
	t_feed(&t, "MAIL FROM:<j\xc3\xb6rg@b.c>\r\n"
	       "MAIL FROM:<a@b.c>\r\n"
	       "RCPT TO:<\xe5\x8f\x97@y.z>\r\n"
	       "RCPT TO:<x@\xc3\xbc.z>\r\n"
	       "RSET\r\n"
	       "MAIL FROM:<j\xc3\xb6rg@b.c> SMTPUTF8\r\n"
	       "RCPT TO:<\xe5\x8f\x97@\xe4\xbe\x8b.z>\r\n"
	       "RCPT TO:<bad\xff@y.z>\r\n"
	       "RCPT TO:<bad@\xc3.z>\r\n"
	       "BDAT 3 LAST\r\nx\r\n");
	EXPECT_STREQ("553 5.6.7 Non-ASCII sender address requires SMTPUTF8\r\n"
		     "250 2.1.0 Ok\r\n"
		     "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8\r\n"
		     "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8\r\n"
		     "250 2.0.0 Ok\r\n"
		     "250 2.1.0 Ok\r\n"
		     "250 2.1.5 Ok\r\n"
		     "501 5.1.3 Bad recipient address syntax\r\n"
		     "501 5.1.3 Bad recipient address syntax\r\n"
		     "250 2.0.0 Ok: queued as 0000000000000100\r\n", t_out(&t));
	ASSERT_EQ(1, t.nmsg);
	EXPECT_STREQ("j\xc3\xb6rg@b.c", t.msg[0].sender);
	EXPECT_STREQ("\xe5\x8f\x97@\xe4\xbe\x8b.z", t.msg[0].rcpts);
	EXPECT_EQ(DD_MSG_SMTPUTF8, t.msg[0].flags);
	/* an ASCII message with SMTPUTF8 keeps the flag too */
	t_feed(&t, "MAIL FROM:<a@b.c> SMTPUTF8 BODY=8BITMIME\r\n"
	       "RCPT TO:<x@y.z>\r\nBDAT 3 LAST\r\nx\r\n");
	ASSERT_EQ(2, t.nmsg);
	EXPECT_EQ(DD_MSG_SMTPUTF8 | DD_MSG_8BIT, t.msg[1].flags);
	t_free(&t);
}

TEST_HARNESS_MAIN
