// SPDX-License-Identifier: GPL-2.0
/*
 * The listener's SMTP session (dd_smtpd.c) fed what a hostile client
 * sends: command lines with their paths and ESMTP parameters, DATA and
 * BDAT bodies, pipelined, split across reads at any byte.
 *
 * Input: one byte of options (bit 0 the control socket's X-commands,
 * bit 1 finish pending messages newest first, bit 2 fail every other
 * one), one byte of read size (0: all at once), then the stream.
 *
 * Checked: every line the session writes is a reply "ddd" + SP or '-'
 * of printable text ending in CRLF; a message has 1 to max_rcpts valid
 * recipients, a valid sender or <>, and a body that starts with our
 * Received: field and ends with CRLF; after EOF the session closes.
 */
#include "fuzz.h"

#include "dd_smtpd.h"
#include "dd_wire.h"

#define MAX_RCPTS	4

struct run {
	struct dd_smtpd *s;
	struct dd_buf line;		/* an output line not yet complete */
	const struct dd_smtpd_msg *pend[DD_SMTPD_PENDING];
	unsigned int npend;
	unsigned int opts;
	uint64_t qid;
};

static void check_line(const char *l, size_t n)
{
	size_t i;

	FUZZ_CHECK(n >= 5 && l[n - 2] == '\r' && l[n - 1] == '\n',
		   "reply line without CRLF: %.*s", (int)n, l);
	FUZZ_CHECK(l[0] >= '2' && l[0] <= '5' && l[1] >= '0' && l[1] <= '5' &&
		   l[2] >= '0' && l[2] <= '9' && (l[3] == ' ' || l[3] == '-'),
		   "not a reply: %.*s", (int)n, l);
	for (i = 4; i < n - 2; i++)
		FUZZ_CHECK(l[i] >= 0x20 && l[i] < 0x7f,
			   "byte %#x in reply: %.*s", (unsigned char)l[i],
			   (int)n, l);
}

static void drain(struct run *r)
{
	const char *b, *lf;
	size_t n;

	dd_smtpd_output(r->s, &b, &n);
	if (dd_buf_add(&r->line, b, n))
		abort();
	dd_smtpd_written(r->s, n);
	while ((lf = memchr(r->line.p ? r->line.p : "", '\n', r->line.len))) {
		size_t len = (size_t)(lf - r->line.p) + 1;

		check_line(r->line.p, len);
		dd_buf_drop(&r->line, len);
	}
}

static void check_msg(const struct dd_smtpd_msg *m)
{
	unsigned int flags = DD_PATH_NULL, i;

	if (m->flags & DD_MSG_SMTPUTF8)
		flags |= DD_PATH_UTF8;
	FUZZ_CHECK(m->nrcpt >= 1 && m->nrcpt <= MAX_RCPTS, "%u recipients",
		   m->nrcpt);
	FUZZ_CHECK(!dd_wire_addr_check(m->sender, strlen(m->sender), flags),
		   "sender <%s>", m->sender);
	for (i = 0; i < m->nrcpt; i++)
		FUZZ_CHECK(!dd_wire_addr_check(m->rcpts[i], strlen(m->rcpts[i]),
					       flags & ~DD_PATH_NULL),
			   "recipient <%s>", m->rcpts[i]);
	FUZZ_CHECK(m->body_len >= 12 && !memcmp(m->body, "Received: ", 10) &&
		   !memcmp(m->body + m->body_len - 2, "\r\n", 2),
		   "body of %zu bytes", m->body_len);
}

/* Finish every pending message, in the order the options say. */
static void finish(struct run *r)
{
	while (r->npend) {
		unsigned int k = r->opts & 2 ? r->npend - 1 : 0;
		const struct dd_smtpd_msg *m = r->pend[k];
		int err = (r->opts & 4) && (r->qid & 1) ? -ENOSPC : 0;

		memmove(&r->pend[k], &r->pend[k + 1],
			(r->npend - k - 1) * sizeof(r->pend[0]));
		r->npend--;
		dd_smtpd_message_done(r->s, m, err, r->qid++);
	}
}

/* Run until the session wants input (READ) or closes. */
static enum dd_smtpd_act run(struct run *r)
{
	for (;;) {
		enum dd_smtpd_act a = dd_smtpd_run(r->s);

		drain(r);
		if (a == DD_SMTPD_MESSAGE) {
			const struct dd_smtpd_msg *m = dd_smtpd_message(r->s);

			check_msg(m);
			FUZZ_CHECK(r->npend < DD_SMTPD_PENDING, "pending over %u",
				   DD_SMTPD_PENDING);
			r->pend[r->npend++] = m;
			continue;
		}
		if (a == DD_SMTPD_CONTROL) {
			const char *c = dd_smtpd_control(r->s);

			FUZZ_CHECK(!strpbrk(c, "\r\n"), "control line %s", c);
			dd_smtpd_control_done(r->s, 250, "queue: 1\nheld: 0");
			continue;
		}
		if (a == DD_SMTPD_READ && r->npend) {
			/* The spool answers; the session goes on. */
			finish(r);
			continue;
		}
		return a;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_smtpd_conf conf = {
		.hostname = "mx.fuzz.test",
		.max_line = 512,
		.max_size = 4096,
		.max_rcpts = MAX_RCPTS,
		.max_errors = 8,
	};
	struct run r = { .line = DD_BUF_INIT };
	size_t step, off = 0;
	enum dd_smtpd_act a = DD_SMTPD_READ;
	unsigned int i;

	r.opts = (unsigned int)fuzz_take(&data, &size, 1);
	step = (size_t)fuzz_take(&data, &size, 1);
	conf.control = r.opts & 1;
	r.s = dd_smtpd_new(&conf, "192.0.2.7", NULL, false);
	if (!r.s)
		return 0;
	drain(&r);
	while (off < size && a == DD_SMTPD_READ) {
		size_t n = step && step < size - off ? step : size - off;

		if (dd_smtpd_feed(r.s, data + off, n))
			abort();
		off += n;
		a = run(&r);
	}
	if (a == DD_SMTPD_READ) {
		dd_smtpd_eof(r.s);
		for (i = 0; i < 4 && a == DD_SMTPD_READ; i++)
			a = run(&r);
		FUZZ_CHECK(a == DD_SMTPD_CLOSE, "no close after EOF (%d)", a);
	}
	FUZZ_CHECK(r.line.len == 0, "output ends inside a line: %.*s",
		   (int)r.line.len, r.line.p);
	dd_smtpd_free(r.s);
	dd_buf_free(&r.line);
	return 0;
}
