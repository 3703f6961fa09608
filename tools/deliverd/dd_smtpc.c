// SPDX-License-Identifier: GPL-2.0
/*
 * The delivery side of an SMTP session, without I/O: see dd_smtpc.h.
 *
 * Replies are matched to commands in order.  A transaction's commands are
 * MAIL, one RCPT per recipient, then DATA or BDAT; with PIPELINING they all
 * go out in one write and the replies are read as they come, without it
 * each waits for the reply to the one before.  "expect" says which reply
 * comes next, "sent" how far the commands went out.
 *
 * Outcome of a transaction (dd_smtpc_result):
 *  - msg is the reply that applies to the message as a whole: the final
 *    reply to the body (DATA's "." or BDAT LAST), or the first failing one
 *    of RSET, MAIL, DATA, BDAT; when no recipient was accepted and that
 *    reply is not a failure, the last RCPT reply; code 0 (with our reason
 *    as text) when the connection was lost, timed out, or the server broke
 *    the protocol.
 *  - rcpt[i] is the reply to recipient i's RCPT, except: when MAIL failed
 *    (or was never answered, or RSET failed, or the message was not even
 *    tried) it is msg for every recipient, since the RCPT replies then
 *    only say "no MAIL"; on 421, on a lost connection and on a protocol
 *    error, recipients accepted or not answered yet get msg too, while
 *    those already rejected keep their own reply.
 *  - A recipient is delivered iff rcpt[i].code is 2xx and msg.code is 2xx.
 *    Otherwise the reply that applies to it is rcpt[i] if that is not 2xx,
 *    else msg.
 *
 * For the caller:
 *  - run() keeps returning DD_SMTPC_BODY until dd_smtpc_body_sent();
 *    replies fed meanwhile are kept and read after it.  A lost connection
 *    (dd_smtpc_eof) meanwhile ends the transaction (DONE, then CLOSE).
 *  - DONE and CLOSE may come from any run(); after DONE, run() again.
 *    The result stays valid until the next run() or start().
 *  - After a transaction that ended half way (MAIL, all RCPTs, DATA or
 *    BDAT refused) the next start() sends RSET first and waits for it
 *    (stage RSET); QUIT needs no RSET.
 *  - With pipelined BDAT everything, body included, is out before any
 *    reply: the stage is then DOT (10 min) until the last reply.
 *  - Greeting other than 220, EHLO and HELO both refused (or EHLO 4xx),
 *    RSET refused, a protocol error: QUIT is written, then CLOSE.  After
 *    421 or a lost connection: CLOSE without QUIT.  The reply that closed
 *    the session is dd_smtpc_session_reply() (code 0: ours).
 *  - STARTTLS (flags DD_SMTPC_STARTTLS or DD_SMTPC_TLS_REQUIRED): after
 *    the EHLO reply offering it, STARTTLS; on 220 run() returns
 *    DD_SMTPC_TLS until dd_smtpc_tls_done(), then EHLO again.  Input that
 *    came after the 220 and before the handshake is dropped (RFC 3207 5:
 *    it could have been injected by a man in the middle).  Not offered,
 *    or refused, or no EHLO at all: plain text with DD_SMTPC_STARTTLS;
 *    with DD_SMTPC_TLS_REQUIRED QUIT and CLOSE, the session reply being
 *    the server's refusal or ours (code 0, 4.7.4).
 *  - More than 1 MiB of unread input (only possible while BODY is out or
 *    from a server babbling): feed() returns -EPROTO and the session fails
 *    as on a protocol error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dd_reply.h"
#include "dd_smtpc.h"

#define IN_MAX		(1U << 20)	/* unread input we keep at most */

enum st {
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,	/* STARTTLS sent, waiting for 220 */
	S_HANDSHAKE,	/* the caller does the TLS handshake */
	S_IDLE,
	S_TX,		/* a transaction: see expect */
	S_QUIT,		/* QUIT sent, waiting for 221 or EOF */
	S_CLOSING,	/* next run() returns CLOSE */
	S_CLOSED,
};

enum expect {
	E_RSET,
	E_MAIL,
	E_RCPT,		/* tx_rcpt says which */
	E_DATA,
	E_BDAT,
	E_DOT,
};

struct dd_smtpc {
	char *helo;
	unsigned int flags;
	enum st st;
	bool eof;
	bool need_rset;		/* a transaction ended half way */
	bool done_pending;	/* start() decided the result without a word */
	bool tls;		/* a TLS handshake succeeded */

	unsigned int ext;
	uint64_t size_max;
	unsigned int ehlo_ext;	/* gathered while the EHLO reply comes */
	uint64_t ehlo_size;

	struct dd_reply_parser rp;
	unsigned long nreplies;		/* complete replies read */
	char *in;
	size_t in_off, in_len, in_cap;
	char *out;
	size_t out_off, out_len, out_cap;
	bool oom;

	struct dd_smtp_reply session;

	/* The transaction. */
	struct dd_smtpc_msg m;
	bool pipelined, bdat;
	enum expect expect;
	unsigned int tx_rcpt;	/* E_RCPT: which one */
	bool body_pending;	/* BODY until dd_smtpc_body_sent() */
	bool body_sent;
	bool mail_ok, failed;
	unsigned int naccepted;
	struct dd_smtpc_result res;
	struct dd_smtp_reply *rcpt;
	unsigned int rcpt_cap;
};

static const char *const stage_name[DD_STAGE_NR] = {
	[DD_STAGE_CONNECT] = "connect",
	[DD_STAGE_GREETING] = "greeting",
	[DD_STAGE_EHLO] = "EHLO",
	[DD_STAGE_MAIL] = "MAIL",
	[DD_STAGE_RCPT] = "RCPT",
	[DD_STAGE_DATA] = "DATA",
	[DD_STAGE_BODY] = "message body",
	[DD_STAGE_DOT] = "end of data",
	[DD_STAGE_RSET] = "RSET",
	[DD_STAGE_QUIT] = "QUIT",
	[DD_STAGE_IDLE] = "idle",
};

static bool ok2(const struct dd_smtp_reply *r)
{
	return r->code >= 200 && r->code < 300;
}

/* ---- output ---- */

static void out_printf(struct dd_smtpc *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_printf(struct dd_smtpc *c, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	for (;;) {
		room = c->out_cap - c->out_len;
		va_start(ap, fmt);
		n = vsnprintf(c->out + c->out_len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			c->oom = true;
			return;
		}
		if ((size_t)n < room) {
			c->out_len += (size_t)n;
			return;
		}
		{
			size_t cap = c->out_cap ? c->out_cap : 512;
			char *p;

			while (cap - c->out_len <= (size_t)n)
				cap *= 2;
			p = realloc(c->out, cap);
			if (!p) {
				c->oom = true;
				return;
			}
			c->out = p;
			c->out_cap = cap;
		}
	}
}

void dd_smtpc_output(struct dd_smtpc *c, const char **buf, size_t *len)
{
	*buf = c->out + c->out_off;
	*len = c->out_len - c->out_off;
}

void dd_smtpc_written(struct dd_smtpc *c, size_t n)
{
	if (n > c->out_len - c->out_off)
		n = c->out_len - c->out_off;
	c->out_off += n;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

/* ---- life ---- */

struct dd_smtpc *dd_smtpc_new(const char *helo, unsigned int flags)
{
	struct dd_smtpc *c;

	if (!helo || !*helo || strpbrk(helo, "\r\n") ||
	    strlen(helo) > DD_DOMAIN_MAX + 2) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->helo = strdup(helo);
	c->out_cap = 512;
	c->out = malloc(c->out_cap);
	c->in_cap = 1024;
	c->in = malloc(c->in_cap);
	if (!c->helo || !c->out || !c->in) {
		free(c->helo);
		free(c->out);
		free(c->in);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->flags = flags;
	c->st = S_GREETING;
	dd_reply_init(&c->rp, NULL, NULL);
	return c;
}

void dd_smtpc_free(struct dd_smtpc *c)
{
	if (!c)
		return;
	dd_reply_free(&c->rp);
	free(c->helo);
	free(c->in);
	free(c->out);
	free(c->rcpt);
	free(c);
}

/* ---- input ---- */

int dd_smtpc_feed(struct dd_smtpc *c, const void *buf, size_t len)
{
	size_t have = c->in_len - c->in_off;

	if (!len)
		return 0;
	if (c->in_off) {
		memmove(c->in, c->in + c->in_off, have);
		c->in_off = 0;
		c->in_len = have;
	}
	if (have + len > IN_MAX) {
		c->rp.err = "too much unsolicited input";
		return -EPROTO;
	}
	if (have + len > c->in_cap) {
		size_t cap = c->in_cap;
		char *p;

		while (cap < have + len)
			cap *= 2;
		p = realloc(c->in, cap);
		if (!p)
			return -ENOMEM;
		c->in = p;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, buf, len);
	c->in_len += len;
	return 0;
}

void dd_smtpc_eof(struct dd_smtpc *c)
{
	c->eof = true;
}

/* ---- EHLO keywords ---- */

static bool kw(const char *t, size_t len, const char *word, const char **rest,
	       size_t *rlen)
{
	size_t n = strlen(word);

	if (len < n || strncasecmp(t, word, n) || (len > n && t[n] != ' '))
		return false;
	*rest = t + n;
	*rlen = len - n;
	while (*rlen && **rest == ' ') {
		(*rest)++;
		(*rlen)--;
	}
	return true;
}

static void ehlo_line(void *arg, int code, unsigned int lineno,
		      const char *t, size_t len)
{
	static const struct {
		const char *word;
		unsigned int bit;
	} kws[] = {
		{ "PIPELINING", DD_EXT_PIPELINING },
		{ "CHUNKING", DD_EXT_CHUNKING },
		{ "8BITMIME", DD_EXT_8BITMIME },
		{ "ENHANCEDSTATUSCODES", DD_EXT_ENHANCED },
		{ "SMTPUTF8", DD_EXT_SMTPUTF8 },
		{ "DSN", DD_EXT_DSN },
		{ "STARTTLS", DD_EXT_STARTTLS },
	};
	struct dd_smtpc *c = arg;
	const char *rest;
	size_t rlen, i;

	if (code != 250 || lineno == 0)
		return;
	if (kw(t, len, "SIZE", &rest, &rlen)) {
		uint64_t v = 0;

		for (i = 0; i < rlen && rest[i] >= '0' && rest[i] <= '9'; i++) {
			if (v > (UINT64_MAX - 9) / 10) {
				v = 0;	/* absurd: as good as no limit */
				break;
			}
			v = v * 10 + (uint64_t)(rest[i] - '0');
		}
		c->ehlo_ext |= DD_EXT_SIZE;
		c->ehlo_size = v;
		return;
	}
	for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		if (kw(t, len, kws[i].word, &rest, &rlen)) {
			c->ehlo_ext |= kws[i].bit;
			return;
		}
	}
}

unsigned int dd_smtpc_extensions(const struct dd_smtpc *c, uint64_t *size_max)
{
	if (size_max)
		*size_max = c->size_max;
	return c->ext;
}

/* ---- transactions ---- */

static bool has8(const char *s);

/*
 * RFC 3461 parameters go on only to a server that offers DSN (it then
 * takes over the notices); values as received, xtext already.
 */
static void out_mail(struct dd_smtpc *c)
{
	const struct dd_smtpc_msg *m = &c->m;
	bool dsn = c->ext & DD_EXT_DSN;
	char size[32] = "";
	bool utf8 = false;
	unsigned int i;

	if (c->ext & DD_EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%" PRIu64, m->raw_len);
	if (c->ext & DD_EXT_SMTPUTF8) {
		utf8 = (m->flags & DD_MSG_SMTPUTF8) || has8(m->sender);
		for (i = 0; i < m->nrcpt && !utf8; i++)
			utf8 = has8(m->rcpts[i]);
	}
	out_printf(c, "MAIL FROM:<%s>%s%s%s%s%s%s\r\n", m->sender, size,
		   (m->flags & DD_MSG_8BIT) && (c->ext & DD_EXT_8BITMIME) ?
		   " BODY=8BITMIME" : "", utf8 ? " SMTPUTF8" : "",
		   dsn && m->ret == DD_RET_FULL ? " RET=FULL" :
		   dsn && m->ret == DD_RET_HDRS ? " RET=HDRS" : "",
		   dsn && m->envid ? " ENVID=" : "",
		   dsn && m->envid ? m->envid : "");
}

static void out_rcpt(struct dd_smtpc *c, unsigned int i)
{
	uint8_t n = c->m.notify ? c->m.notify[i] : 0;
	const char *orcpt = c->m.orcpt ? c->m.orcpt[i] : NULL;
	char notify[48] = "";

	if (!(c->ext & DD_EXT_DSN)) {
		n = 0;
		orcpt = NULL;
	}
	if (n & DD_NOTIFY_NEVER)
		snprintf(notify, sizeof(notify), " NOTIFY=NEVER");
	else if (n)
		snprintf(notify, sizeof(notify), " NOTIFY=%s%s%s%s%s",
			 n & DD_NOTIFY_SUCCESS ? "SUCCESS" : "",
			 (n & DD_NOTIFY_SUCCESS) && (n & ~DD_NOTIFY_SUCCESS) ?
			 "," : "",
			 n & DD_NOTIFY_FAILURE ? "FAILURE" : "",
			 (n & DD_NOTIFY_FAILURE) && (n & DD_NOTIFY_DELAY) ?
			 "," : "",
			 n & DD_NOTIFY_DELAY ? "DELAY" : "");
	out_printf(c, "RCPT TO:<%s>%s%s%s\r\n", c->m.rcpts[i], notify,
		   orcpt ? " ORCPT=" : "", orcpt ? orcpt : "");
}

/* DATA, or BDAT and the body. */
static void out_data(struct dd_smtpc *c)
{
	if (c->bdat) {
		out_printf(c, "BDAT %" PRIu64 " LAST\r\n", c->m.raw_len);
		c->body_pending = true;
	} else {
		out_printf(c, "DATA\r\n");
	}
}

/* The commands after RSET (or at once). */
static void tx_begin(struct dd_smtpc *c)
{
	unsigned int i;

	c->expect = E_MAIL;
	out_mail(c);
	if (c->pipelined) {
		for (i = 0; i < c->m.nrcpt; i++)
			out_rcpt(c, i);
		out_data(c);
	}
}

static bool has8(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static bool bad_addr(const char *s)
{
	size_t n = strlen(s);

	return n > DD_ADDR_MAX - 2 || strpbrk(s, "\r\n<>") != NULL;
}

/* An ESMTP parameter value (RFC 5321 esmtp-value): nothing to break the line. */
static bool bad_value(const char *s)
{
	if (!s)
		return false;
	if (!*s)
		return true;
	for (; *s; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126 || *s == '=')
			return true;
	return false;
}

/* Every recipient gets msg (not tried, or MAIL failed). */
static void rcpt_all(struct dd_smtpc *c)
{
	unsigned int i;

	for (i = 0; i < c->m.nrcpt; i++)
		c->rcpt[i] = c->res.msg;
}

/* Recipients accepted or not answered get msg; rejected ones keep theirs. */
static void rcpt_open(struct dd_smtpc *c)
{
	unsigned int i;

	if (!c->mail_ok) {
		rcpt_all(c);
		return;
	}
	for (i = 0; i < c->m.nrcpt; i++)
		if (c->rcpt[i].code == 0 || ok2(&c->rcpt[i]))
			c->rcpt[i] = c->res.msg;
}

int dd_smtpc_start(struct dd_smtpc *c, const struct dd_smtpc_msg *m)
{
	unsigned int i;
	bool utf8;

	if (c->st != S_IDLE || c->done_pending || !m || !m->sender ||
	    !m->rcpts || !m->nrcpt || bad_addr(m->sender))
		return -EINVAL;
	utf8 = (m->flags & DD_MSG_SMTPUTF8) || has8(m->sender);
	if (bad_value(m->envid) || m->ret > DD_RET_HDRS)
		return -EINVAL;
	for (i = 0; i < m->nrcpt; i++) {
		if (!m->rcpts[i] || !*m->rcpts[i] || bad_addr(m->rcpts[i]) ||
		    (m->orcpt && bad_value(m->orcpt[i])))
			return -EINVAL;
		utf8 = utf8 || has8(m->rcpts[i]);
	}
	if (m->nrcpt > c->rcpt_cap) {
		struct dd_smtp_reply *p = realloc(c->rcpt, m->nrcpt * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->rcpt = p;
		c->rcpt_cap = m->nrcpt;
	}
	memset(c->rcpt, 0, m->nrcpt * sizeof(*c->rcpt));
	memset(&c->res, 0, sizeof(c->res));
	c->res.rcpt = c->rcpt;
	c->res.nrcpt = m->nrcpt;
	c->res.dsn = c->ext & DD_EXT_DSN;
	c->m = *m;
	c->pipelined = (c->ext & DD_EXT_PIPELINING) &&
		       !(c->flags & DD_SMTPC_NO_PIPELINING);
	c->bdat = (c->ext & DD_EXT_CHUNKING) &&
		  !(c->flags & DD_SMTPC_NO_CHUNKING);
	c->tx_rcpt = 0;
	c->body_pending = c->body_sent = false;
	c->mail_ok = c->failed = false;
	c->naccepted = 0;

	if (c->size_max && m->raw_len > c->size_max) {
		dd_reply_set(&c->res.msg, 552, "5.3.4",
			     "message size exceeds server limit");
		rcpt_all(c);
		c->done_pending = true;
		return 0;
	}
	/*
	 * RFC 6152 3: an 8-bit body may go only to a server that offers
	 * 8BITMIME; it is sent from the spool as stored, so it cannot be
	 * downgraded here: return it (X.6.3, conversion not supported).
	 */
	if ((m->flags & DD_MSG_8BIT) && !(c->ext & DD_EXT_8BITMIME)) {
		dd_reply_set(&c->res.msg, 554, "5.6.3",
			     "8-bit message and no 8BITMIME at the server");
		rcpt_all(c);
		c->done_pending = true;
		return 0;
	}
	/*
	 * RFC 6531 3.2: a message injected with SMTPUTF8 (or a UTF-8
	 * address) cannot be downgraded, as with 8BITMIME above.
	 */
	if (utf8 && !(c->ext & DD_EXT_SMTPUTF8)) {
		dd_reply_set(&c->res.msg, 553, "5.6.7",
			     "SMTPUTF8 required but not offered");
		rcpt_all(c);
		c->done_pending = true;
		return 0;
	}
	c->st = S_TX;
	if (c->need_rset) {
		c->expect = E_RSET;
		out_printf(c, "RSET\r\n");
	} else {
		tx_begin(c);
	}
	return 0;
}

void dd_smtpc_quit(struct dd_smtpc *c)
{
	if (c->st != S_IDLE || c->done_pending)
		return;
	out_printf(c, "QUIT\r\n");
	c->st = S_QUIT;
}

bool dd_smtpc_body_stuffed(const struct dd_smtpc *c)
{
	return !c->bdat;
}

void dd_smtpc_body_sent(struct dd_smtpc *c)
{
	if (c->st != S_TX || !c->body_pending)
		return;
	c->body_pending = false;
	c->body_sent = true;
	if (!c->bdat) {
		out_printf(c, ".\r\n");
		c->expect = E_DOT;
	}
	/* BDAT: the reply follows whatever the pipeline still holds. */
}

const struct dd_smtpc_result *dd_smtpc_result(const struct dd_smtpc *c)
{
	return &c->res;
}

unsigned long dd_smtpc_replies(const struct dd_smtpc *c)
{
	return c->nreplies;
}

const struct dd_smtp_reply *dd_smtpc_session_reply(const struct dd_smtpc *c)
{
	return &c->session;
}

enum dd_smtpc_stage dd_smtpc_stage(const struct dd_smtpc *c)
{
	switch (c->st) {
	case S_GREETING:
		return DD_STAGE_GREETING;
	case S_EHLO:
	case S_HELO:
	case S_STARTTLS:
	case S_HANDSHAKE:
		return DD_STAGE_EHLO;
	case S_QUIT:
		return DD_STAGE_QUIT;
	case S_TX:
		break;
	default:
		return DD_STAGE_IDLE;
	}
	if (c->body_pending)
		return DD_STAGE_BODY;
	/* Pipelined BDAT: all is out, the server may read the body first. */
	if (c->bdat && c->body_sent)
		return DD_STAGE_DOT;
	switch (c->expect) {
	case E_RSET:
		return DD_STAGE_RSET;
	case E_MAIL:
		return DD_STAGE_MAIL;
	case E_RCPT:
		return DD_STAGE_RCPT;
	case E_DATA:
		return DD_STAGE_DATA;
	default:
		return DD_STAGE_DOT;
	}
}

/* ---- the machine ---- */

/* The transaction ends with res.msg set; "then" is the state after. */
static enum dd_smtpc_act tx_end(struct dd_smtpc *c, bool rset, enum st then)
{
	c->need_rset = rset;
	c->body_pending = false;
	c->st = then;
	return DD_SMTPC_DONE;
}

/* Close: QUIT first unless the server is gone or said 421. */
static void closing(struct dd_smtpc *c, bool quit)
{
	if (quit && !c->eof)
		out_printf(c, "QUIT\r\n");
	c->st = S_CLOSING;
}

/* The session fails (421, EOF, protocol error): DONE if in a transaction. */
static enum dd_smtpc_act session_fail(struct dd_smtpc *c,
				      const struct dd_smtp_reply *r, bool quit)
{
	c->session = *r;
	if (c->st == S_TX) {
		c->res.msg = *r;
		rcpt_open(c);
		closing(c, quit);
		return tx_end(c, false, S_CLOSING);
	}
	closing(c, quit);
	return 0;
}

static enum dd_smtpc_act proto_error(struct dd_smtpc *c, const char *why)
{
	struct dd_smtp_reply r;

	dd_reply_set(&r, 0, NULL, "protocol error during %s: %s",
		     stage_name[dd_smtpc_stage(c)], why);
	return session_fail(c, &r, true);
}

/* When no recipient was accepted, a 2xx msg must not stand. */
static void msg_final(struct dd_smtpc *c, const struct dd_smtp_reply *r)
{
	if (!c->failed)
		c->res.msg = *r;
	if (!c->naccepted && ok2(&c->res.msg) && c->m.nrcpt)
		c->res.msg = c->rcpt[c->m.nrcpt - 1];
}

static enum dd_smtpc_act tx_reply(struct dd_smtpc *c,
				  const struct dd_smtp_reply *r)
{
	unsigned int i;

	switch (c->expect) {
	case E_RSET:
		if (!ok2(r)) {
			struct dd_smtp_reply z;

			/* Says nothing about the message: no code. */
			dd_reply_set(&z, 0, NULL, "RSET failed: %03d %s",
				     r->code, r->text);
			c->session = *r;
			c->res.msg = z;
			rcpt_all(c);
			closing(c, true);
			return tx_end(c, false, S_CLOSING);
		}
		c->need_rset = false;
		tx_begin(c);
		return c->body_pending ? DD_SMTPC_BODY : 0;

	case E_MAIL:
		c->mail_ok = ok2(r);
		if (!c->mail_ok) {
			c->res.msg = *r;
			c->failed = true;
			rcpt_all(c);
			if (!c->pipelined)
				return tx_end(c, true, S_IDLE);
		} else if (!c->pipelined) {
			out_rcpt(c, 0);
		}
		c->expect = E_RCPT;
		c->tx_rcpt = 0;
		return 0;

	case E_RCPT:
		i = c->tx_rcpt++;
		if (c->mail_ok) {
			c->rcpt[i] = *r;
			if (ok2(r))
				c->naccepted++;
		}
		if (c->tx_rcpt < c->m.nrcpt) {
			if (!c->pipelined)
				out_rcpt(c, c->tx_rcpt);
			return 0;
		}
		c->expect = c->bdat ? E_BDAT : E_DATA;
		if (c->pipelined)
			return 0;
		if (!c->naccepted) {
			c->res.msg = *r;
			return tx_end(c, true, S_IDLE);
		}
		out_data(c);
		return c->body_pending ? DD_SMTPC_BODY : 0;

	case E_DATA:
		if (r->code == 354) {
			if (c->failed || !c->naccepted) {
				/* Nobody to deliver to: end it empty. */
				if (!c->failed) {
					c->res.msg = c->rcpt[c->m.nrcpt - 1];
					c->failed = true;
				}
				out_printf(c, ".\r\n");
				c->expect = E_DOT;
				return 0;
			}
			c->body_pending = true;
			return DD_SMTPC_BODY;
		}
		if (r->code < 400)
			return proto_error(c, "unexpected reply to DATA");
		msg_final(c, r);
		return tx_end(c, true, S_IDLE);

	case E_BDAT:
		if (r->code >= 300 && r->code < 400)
			return proto_error(c, "unexpected reply to BDAT");
		msg_final(c, r);
		return tx_end(c, !ok2(r), S_IDLE);

	case E_DOT:
		if (r->code >= 300 && r->code < 400)
			return proto_error(c, "unexpected reply to end of data");
		msg_final(c, r);
		return tx_end(c, false, S_IDLE);
	}
	return 0;
}

static void send_ehlo(struct dd_smtpc *c)
{
	out_printf(c, "EHLO %s\r\n", c->helo);
	c->ehlo_ext = 0;
	c->ehlo_size = 0;
	c->rp.line_fn = ehlo_line;
	c->rp.arg = c;
	c->st = S_EHLO;
}

/* The server's extensions are known: STARTTLS first if we want it. */
static void ehlo_done(struct dd_smtpc *c)
{
	c->st = S_IDLE;
	if (c->tls || !(c->flags & (DD_SMTPC_STARTTLS | DD_SMTPC_TLS_REQUIRED)))
		return;
	if (c->ext & DD_EXT_STARTTLS) {
		out_printf(c, "STARTTLS\r\n");
		c->st = S_STARTTLS;
		return;
	}
	if (c->flags & DD_SMTPC_TLS_REQUIRED) {
		dd_reply_set(&c->session, 0, "4.7.4",
			     "TLS is required but STARTTLS was not offered");
		closing(c, true);
	}
}

void dd_smtpc_tls_done(struct dd_smtpc *c, bool ok, const char *why)
{
	if (c->st != S_HANDSHAKE)
		return;
	if (!ok) {
		/* The stream is in an unknown state: no QUIT. */
		dd_reply_set(&c->session, 0, NULL, "%s",
			     why ? why : "TLS handshake failed");
		closing(c, false);
		return;
	}
	c->tls = true;
	c->ext = 0;
	c->size_max = 0;
	c->in_off = c->in_len = 0;
	send_ehlo(c);
}

bool dd_smtpc_tls(const struct dd_smtpc *c)
{
	return c->tls;
}

/* One reply; 0 to go on reading. */
static enum dd_smtpc_act on_reply(struct dd_smtpc *c,
				  const struct dd_smtp_reply *r)
{
	if (r->code == 421 && c->st != S_QUIT)
		return session_fail(c, r, false);

	switch (c->st) {
	case S_GREETING:
		if (r->code != 220) {
			c->session = *r;
			closing(c, true);
			return 0;
		}
		send_ehlo(c);
		return 0;

	case S_EHLO:
		c->rp.line_fn = NULL;
		if (ok2(r)) {
			c->ext = c->ehlo_ext;
			c->size_max = c->ehlo_size;
			ehlo_done(c);
			return 0;
		}
		if (r->code >= 500) {
			out_printf(c, "HELO %s\r\n", c->helo);
			c->st = S_HELO;
			return 0;
		}
		c->session = *r;
		closing(c, true);
		return 0;

	case S_HELO:
		if (ok2(r)) {
			c->ext = 0;
			c->size_max = 0;
			ehlo_done(c);
			return 0;
		}
		c->session = *r;
		closing(c, true);
		return 0;

	case S_STARTTLS:
		if (r->code == 220) {
			c->in_off = c->in_len = 0;
			c->st = S_HANDSHAKE;
			return DD_SMTPC_TLS;
		}
		if (c->flags & DD_SMTPC_TLS_REQUIRED) {
			c->session = *r;
			closing(c, true);
			return 0;
		}
		/* Opportunistic: go on in plain text with what EHLO said. */
		c->st = S_IDLE;
		return 0;

	case S_QUIT:
		c->session = *r;
		c->st = S_CLOSING;
		return 0;

	case S_TX:
		return tx_reply(c, r);

	case S_IDLE:
		return proto_error(c, "unexpected reply");

	default:
		return 0;
	}
}

enum dd_smtpc_act dd_smtpc_run(struct dd_smtpc *c)
{
	struct dd_smtp_reply r;
	enum dd_smtpc_act act;
	size_t used;
	int ret;

	if (c->done_pending) {
		c->done_pending = false;
		return DD_SMTPC_DONE;
	}
	for (;;) {
		if (c->oom) {
			/* Cannot say what we must: give up the session. */
			c->oom = false;
			dd_reply_set(&r, 0, NULL, "out of memory");
			c->out_off = c->out_len = 0;
			c->eof = true;	/* no QUIT either */
			act = session_fail(c, &r, false);
			if (act)
				return act;
		}
		if (c->st == S_CLOSING || c->st == S_CLOSED) {
			c->st = S_CLOSED;
			return DD_SMTPC_CLOSE;
		}
		if (c->st == S_HANDSHAKE)
			return DD_SMTPC_TLS;
		if (c->st == S_TX && c->body_pending) {
			if (!c->eof)
				return DD_SMTPC_BODY;
			dd_reply_set(&r, 0, NULL,
				     "connection lost during message body");
			return session_fail(c, &r, false);
		}

		ret = dd_reply_parse(&c->rp, c->in + c->in_off,
				     c->in_len - c->in_off, &used, &r);
		c->in_off += used;
		if (c->in_off == c->in_len)
			c->in_off = c->in_len = 0;
		if (ret < 0) {
			act = proto_error(c, c->rp.err);
			if (act)
				return act;
			continue;
		}
		if (ret == 0) {
			if (c->eof) {
				if (c->st == S_QUIT) {
					c->st = S_CLOSED;
					return DD_SMTPC_CLOSE;
				}
				dd_reply_set(&r, 0, NULL,
					     "connection lost during %s",
					     stage_name[dd_smtpc_stage(c)]);
				act = session_fail(c, &r, false);
				if (act)
					return act;
				continue;
			}
			return c->st == S_IDLE ? DD_SMTPC_IDLE : DD_SMTPC_READ;
		}
		c->nreplies++;
		act = on_reply(c, &r);
		if (act)
			return act;
	}
}
