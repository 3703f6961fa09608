// SPDX-License-Identifier: GPL-2.0
/*
 * The delivery client's session (dd_smtpc.c) against a hostile server:
 * the greeting, EHLO keywords and their arguments (SIZE), STARTTLS, and
 * the replies to pipelined MAIL, RCPT, DATA and BDAT, split across reads
 * at any byte.
 *
 * Input: one byte of session flags (DD_SMTPC_*; bit 4 makes the TLS
 * handshake fail), one byte of read size (0: all at once), then what
 * the server says.  The client sends up to three messages, then QUIT.
 *
 * Checked: every command the client writes is one line ending in CRLF
 * with no other CR or LF in it, at most 1000 octets (RFC 5321 4.5.3.1.4);
 * a result has a reply per recipient and codes that are 0 or 200-599;
 * the session ends (CLOSE) when the server's bytes run out.
 */
#include "fuzz.h"

#include "dd_smtpc.h"

static const char *const rcpts[] = { "a@example.com", "b@example.com",
				     "c@example.org" };
static const uint8_t notify[] = { DD_NOTIFY_SUCCESS, 0, DD_NOTIFY_FAILURE };
static const char *const orcpt[] = { "rfc822;a@example.com", NULL, NULL };

static void drain(struct dd_smtpc *c)
{
	const char *b, *p;
	size_t n;

	dd_smtpc_output(c, &b, &n);
	for (p = b; p < b + n;) {
		const char *lf = memchr(p, '\n', (size_t)(b + n - p));
		size_t len;

		FUZZ_CHECK(lf, "output ends inside a line: %.*s",
			   (int)(b + n - p), p);
		len = (size_t)(lf - p) + 1;
		FUZZ_CHECK(len >= 2 && p[len - 2] == '\r' && len <= 1000 &&
			   !memchr(p, '\r', len - 2),
			   "bad command line: %.*s", (int)len, p);
		p += len;
	}
	dd_smtpc_written(c, n);
}

static void check_result(const struct dd_smtpc_result *r, unsigned int nrcpt)
{
	unsigned int i;

	FUZZ_CHECK(!r->msg.code || (r->msg.code >= 200 && r->msg.code <= 599),
		   "message code %d", r->msg.code);
	FUZZ_CHECK(r->nrcpt == nrcpt, "%u results for %u", r->nrcpt, nrcpt);
	for (i = 0; i < r->nrcpt; i++)
		FUZZ_CHECK(!r->rcpt[i].code ||
			   (r->rcpt[i].code >= 200 && r->rcpt[i].code <= 599),
			   "rcpt %u code %d", i, r->rcpt[i].code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int opts = (unsigned int)fuzz_take(&data, &size, 1);
	size_t step = (size_t)fuzz_take(&data, &size, 1), off = 0;
	struct dd_smtpc_msg m = {
		.sender = "bounce@example.net",
		.rcpts = rcpts,
		.flags = opts & 0x20 ? DD_MSG_8BIT : 0,
		.envid = opts & 0x40 ? "env+2Bid" : NULL,
		.ret = DD_RET_HDRS,
		.notify = opts & 0x80 ? notify : NULL,
		.orcpt = opts & 0x80 ? orcpt : NULL,
		.raw_len = 1234,
		.stuffed_len = 1240,
	};
	unsigned int sent = 0, i;
	bool eof = false;
	struct dd_smtpc *c = dd_smtpc_new("client.example.net", opts & 15);

	if (!c)
		return 0;
	for (i = 0; i < 10000; i++) {
		enum dd_smtpc_act a = dd_smtpc_run(c);

		drain(c);
		if (a == DD_SMTPC_CLOSE)
			break;
		switch (a) {
		case DD_SMTPC_READ:
			if (off < size) {
				size_t n = step && step < size - off ? step : size - off;

				if (dd_smtpc_feed(c, data + off, n))
					abort();
				off += n;
			} else {
				FUZZ_CHECK(!eof, "READ again after EOF");
				dd_smtpc_eof(c);
				eof = true;
			}
			break;
		case DD_SMTPC_IDLE:
			if (sent == 3) {
				dd_smtpc_quit(c);
				break;
			}
			m.nrcpt = 1 + sent % 3;
			FUZZ_CHECK(!dd_smtpc_start(c, &m), "start refused");
			sent++;
			break;
		case DD_SMTPC_BODY:
			dd_smtpc_body_sent(c);
			break;
		case DD_SMTPC_DONE:
			check_result(dd_smtpc_result(c), m.nrcpt);
			break;
		case DD_SMTPC_TLS:
			dd_smtpc_tls_done(c, !(opts & 16), "handshake failed");
			break;
		default:
			FUZZ_CHECK(0, "run() returned %d", a);
		}
	}
	FUZZ_CHECK(i < 10000, "session never ends");
	dd_smtpc_free(c);
	return 0;
}
