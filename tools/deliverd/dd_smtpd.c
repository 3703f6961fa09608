// SPDX-License-Identifier: GPL-2.0
/*
 * The injection side of SMTP as a state machine without I/O: see
 * dd_smtpd.h.
 *
 * Input is kept in one buffer with a read position; run() parses command
 * lines, DATA lines and BDAT chunks from it as far as it can.  Replies
 * go to the output buffer, unless a message is pending (returned to the
 * caller, not done yet): from then on they go behind it, into a queue of
 * pending messages each with the replies that follow its own.  When the
 * message at the head of that queue is done, its reply and the replies
 * behind it move to the output, and so on down the queue.
 *
 * What the caller must know beyond dd_smtpd.h:
 *  - run() returns READ, not CLOSE, while it is closing (QUIT, 421, EOF)
 *    but replies still wait behind pending messages, and while an
 *    X-command waits for dd_smtpd_control_done(); call run() again after
 *    dd_smtpd_message_done() and dd_smtpd_control_done().  CLOSE comes
 *    once every reply is in the output.
 *  - run() also stops (READ, input kept) when DD_SMTPD_PENDING messages
 *    or 64 KiB of replies wait behind a pending message.
 *  - DATA ends only at CRLF "." CRLF where the line before ended with
 *    CRLF too ("\n.\r\n" is not an end: no SMTP smuggling through us);
 *    bare LF becomes CRLF, a bare CR is kept, and a lone "." line that
 *    is no end stays a "." line.  A DATA line may be any length; it is
 *    taken in pieces once max_line octets wait.
 *  - BDAT content is kept as sent; only a message that does not end with
 *    CRLF gets one (a final bare LF or CR is completed to CRLF).  A chunk over
 *    max_size is still read (discarded, as RFC 3030 wants it consumed).
 *  - dd_smtpd_progress() counts records, for a per-record timeout.
 */
#include "dd_smtpd.h"
#include "dd_wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Replies held behind pending messages before run() stops reading. */
#define QUEUED_REPLIES_MAX	(64 * 1024)
/* Most ESMTP parameters on one MAIL or RCPT. */
#define PARAMS_MAX		8
/* RFC 3461 4.4 and 4.2: the longest ENVID and ORCPT values (xtext). */
#define ENVID_MAX		100
#define ORCPT_MAX		500

enum phase {
	PH_CMD = 0,
	PH_DATA,	/* after 354, until CRLF.CRLF */
	PH_BDAT,	/* inside a BDAT chunk */
};

/* A message returned to the caller, and the replies queued behind it. */
struct pmsg {
	struct dd_smtpd_msg m;		/* first: the caller's pointer */
	char *sender;
	struct dd_strv rcpts;
	struct dd_buf body;
	char *envid;
	uint8_t *notify;
	struct dd_strv orcpts;		/* "" for none */
	const char **orcpt;		/* orcpts with NULL for none */
	bool done;
	char reply[80];
	struct dd_buf after;		/* replies to later commands */
	struct pmsg *next;
};

struct dd_smtpd {
	struct dd_smtpd_conf conf;
	char *hostname;
	char *peer;

	struct dd_buf in;
	size_t rpos;			/* parsed up to here */
	struct dd_buf out;
	size_t opos;			/* written up to here */

	/*
	 * Records taken: command lines, DATA lines (or max_line pieces of
	 * one), 4 KiB of BDAT content.  The caller's timeout runs per record
	 * (dd_smtpd_progress()), so a client dribbling a byte at a time
	 * cannot hold its session open.
	 */
	uint64_t records;
	size_t bdat_unit;		/* BDAT octets since the last record */

	bool eof;
	bool closing;			/* no more input; CLOSE once nothing waits */
	bool refused;			/* 554 greeting: 503 to all but QUIT */
	bool discard;			/* skipping the rest of an over-long line */
	unsigned int errors;
	enum phase phase;

	char *helo;
	bool esmtp;

	/* the transaction */
	bool mail;
	char sender[DD_ADDR_MAX];
	uint32_t flags;
	struct dd_strv rcpts;
	/* DSN (RFC 3461): as given, xtext; rcpt_notify/orcpts parallel rcpts */
	char envid[ENVID_MAX + 1];	/* "" for none */
	uint8_t ret;			/* enum dd_ret */
	uint8_t *rcpt_notify;
	struct dd_strv orcpts;		/* "" for none */
	bool bdat;			/* BDAT seen: no DATA any more */
	bool body_started;
	struct dd_buf body;		/* Received: + message */
	size_t size;			/* message octets (without our Received:) */
	bool too_big;
	bool body_err;			/* out of memory storing it */

	/* DATA */
	bool bol;			/* at the start of a line */
	bool prev_crlf;			/* the last line ended with CRLF */

	/* BDAT */
	uint64_t bdat_left;
	uint64_t bdat_n;
	bool bdat_last;
	int bdat_err;			/* reply code for the chunk, 0 if good */

	/* pending messages */
	struct pmsg *qhead, *qtail;
	unsigned int nq;		/* in the queue, done or not */
	unsigned int npending;		/* returned, not done */
	size_t qbytes;			/* replies held in the queue */
	struct pmsg *last;		/* for dd_smtpd_message() */

	/* control */
	char *ctl;
	bool ctl_wait;
};

/* --- output --- */

static void reply(struct dd_smtpd *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Queue reply bytes: after the replies still owed to pipelined messages,
 * if any, and counted there.
 */
static void reply_add(struct dd_smtpd *s, const char *p, size_t len)
{
	struct dd_buf *b = s->qtail ? &s->qtail->after : &s->out;

	if (dd_buf_add(b, p, len)) {
		s->closing = true;	/* cannot answer: give up */
		return;
	}
	if (s->qtail)
		s->qbytes += len;
}

static void reply(struct dd_smtpd *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	reply_add(s, line, (size_t)n);
}

/* Move the replies of done messages at the head of the queue to output. */
static void flush_queue(struct dd_smtpd *s)
{
	while (s->qhead && s->qhead->done) {
		struct pmsg *pm = s->qhead;

		if (dd_buf_adds(&s->out, pm->reply) ||
		    dd_buf_add(&s->out, pm->after.p, pm->after.len))
			s->closing = true;
		s->qbytes -= pm->after.len;
		s->qhead = pm->next;
		if (!s->qhead)
			s->qtail = NULL;
		s->nq--;
		dd_buf_free(&pm->after);
		free(pm);
	}
}

static void pmsg_release(struct pmsg *pm)
{
	free(pm->sender);
	pm->sender = NULL;
	dd_strv_free(&pm->rcpts);
	dd_buf_free(&pm->body);
	free(pm->envid);
	pm->envid = NULL;
	free(pm->notify);
	pm->notify = NULL;
	dd_strv_free(&pm->orcpts);
	free(pm->orcpt);
	pm->orcpt = NULL;
	pm->m.rcpts = NULL;
	pm->m.body = NULL;
	pm->m.envid = NULL;
	pm->m.notify = NULL;
	pm->m.orcpt = NULL;
}

/* A bad command: its reply, or 421 and close at max_errors. */
static void error(struct dd_smtpd *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void error(struct dd_smtpd *s, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	if (s->conf.max_errors && ++s->errors >= s->conf.max_errors) {
		reply(s, "421 4.7.0 Too many errors");
		s->closing = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reply(s, "%s", text);
}

/* --- the transaction --- */

static void reset_txn(struct dd_smtpd *s)
{
	s->mail = false;
	s->sender[0] = '\0';
	s->flags = 0;
	dd_strv_free(&s->rcpts);
	s->envid[0] = '\0';
	s->ret = DD_RET_NONE;
	free(s->rcpt_notify);
	s->rcpt_notify = NULL;
	dd_strv_free(&s->orcpts);
	s->bdat = false;
	s->body_started = false;
	dd_buf_free(&s->body);
	s->size = 0;
	s->too_big = false;
	s->body_err = false;
}

/* Printable ASCII without what would end the Received: comment. */
static void sanitise(char *dst, size_t sz, const char *src)
{
	size_t i = 0;

	for (; *src && i + 1 < sz; src++) {
		unsigned char c = (unsigned char)*src;

		dst[i++] = (c > 32 && c < 127 && c != '(' && c != ')' &&
			    c != '\\') ? (char)c : '?';
	}
	dst[i] = '\0';
}

/* Our Received: field, RFC 5321 4.4, folded one clause a line. */
static void start_body(struct dd_smtpd *s)
{
	char helo[128], date[40];

	if (s->body_started)
		return;
	s->body_started = true;
	sanitise(helo, sizeof(helo), s->helo ? s->helo : "unknown");
	dd_wire_date(date, sizeof(date), time(NULL));
	if (dd_buf_addf(&s->body,
			"Received: from %s (%s)\r\n"
			"\tby %s with %s;\r\n"
			"\t%s\r\n",
			helo, s->peer, s->hostname,
			s->esmtp ? "ESMTP" : "SMTP", date))
		s->body_err = true;
}

/* Message octets: count them, store them while within max_size. */
static void body_add(struct dd_smtpd *s, const char *p, size_t n)
{
	if (s->too_big || s->body_err)
		return;
	if (s->conf.max_size && (n > s->conf.max_size ||
				 s->size > s->conf.max_size - n)) {
		s->too_big = true;
		dd_buf_free(&s->body);
		return;
	}
	s->size += n;
	if (dd_buf_add(&s->body, p, n)) {
		s->body_err = true;
		dd_buf_free(&s->body);
	}
}

/*
 * The transaction's DSN fields into pm (copies: the session's are reset
 * right after).  NOTIFY and ORCPT go along only if some recipient has
 * them, so a plain message carries none.  0 or -ENOMEM.
 */
static int dsn_take(struct dd_smtpd *s, struct pmsg *pm)
{
	size_t i, n = s->rcpts.n;
	bool notify = false, orcpt = false;

	if (s->envid[0] && !(pm->envid = strdup(s->envid)))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		notify = notify || s->rcpt_notify[i];
		orcpt = orcpt || s->orcpts.v[i][0];
	}
	if (notify) {
		pm->notify = malloc(n);
		if (!pm->notify)
			return -ENOMEM;
		memcpy(pm->notify, s->rcpt_notify, n);
	}
	if (orcpt) {
		pm->orcpt = calloc(n, sizeof(*pm->orcpt));
		if (!pm->orcpt)
			return -ENOMEM;
		pm->orcpts = s->orcpts;
		memset(&s->orcpts, 0, sizeof(s->orcpts));
		for (i = 0; i < n; i++)
			pm->orcpt[i] = pm->orcpts.v[i][0] ? pm->orcpts.v[i] : NULL;
	}
	return 0;
}

static const char too_big_reply[] =
	"552 5.3.4 Message size exceeds fixed maximum message size";

/* The message is complete: hand it over, or refuse it. */
static enum dd_smtpd_act finish_message(struct dd_smtpd *s)
{
	struct pmsg *pm;

	if (s->too_big) {
		reply(s, "%s", too_big_reply);
		reset_txn(s);
		return 0;
	}
	if (!s->body_err)
		s->body_err = dd_wire_end_crlf(&s->body) != 0;
	pm = s->body_err ? NULL : calloc(1, sizeof(*pm));
	if (!pm || !(pm->sender = strdup(s->sender)) || dsn_take(s, pm)) {
		if (pm)
			pmsg_release(pm);
		free(pm);
		reply(s, "451 4.3.0 Local error");
		reset_txn(s);
		return 0;
	}
	pm->rcpts = s->rcpts;
	memset(&s->rcpts, 0, sizeof(s->rcpts));
	pm->body = s->body;
	dd_buf_init(&s->body);
	pm->m.sender = pm->sender;
	pm->m.rcpts = (const char *const *)pm->rcpts.v;
	pm->m.nrcpt = (unsigned int)pm->rcpts.n;
	pm->m.flags = s->flags;
	pm->m.body = pm->body.p;
	pm->m.body_len = pm->body.len;
	pm->m.envid = pm->envid;
	pm->m.ret = s->ret;
	pm->m.notify = pm->notify;
	pm->m.orcpt = pm->orcpt;
	if (s->qtail)
		s->qtail->next = pm;
	else
		s->qhead = pm;
	s->qtail = pm;
	s->nq++;
	s->npending++;
	s->last = pm;
	reset_txn(s);
	return DD_SMTPD_MESSAGE;
}

/* --- session --- */

struct dd_smtpd *dd_smtpd_new(const struct dd_smtpd_conf *conf,
			      const char *peer, const char *refuse, bool temp)
{
	struct dd_smtpd *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->conf = *conf;
	if (s->conf.max_line < 512)
		s->conf.max_line = 512;
	s->hostname = strdup(conf->hostname ? conf->hostname : "localhost");
	s->peer = strdup(peer ? peer : "unknown");
	if (!s->hostname || !s->peer) {
		dd_smtpd_free(s);
		return NULL;
	}
	s->conf.hostname = s->hostname;
	sanitise(s->peer, strlen(s->peer) + 1, s->peer);
	if (refuse && temp) {
		reply(s, "421 4.7.0 %s", refuse);
		s->closing = true;
	} else if (refuse) {
		reply(s, "554 5.7.1 %s", refuse);
		s->refused = true;
	} else {
		reply(s, "220 %s ESMTP deliverd", s->hostname);
	}
	if (!s->out.p) {
		dd_smtpd_free(s);
		return NULL;
	}
	return s;
}

void dd_smtpd_free(struct dd_smtpd *s)
{
	if (!s)
		return;
	while (s->qhead) {
		struct pmsg *pm = s->qhead;

		s->qhead = pm->next;
		pmsg_release(pm);
		dd_buf_free(&pm->after);
		free(pm);
	}
	reset_txn(s);
	dd_buf_free(&s->in);
	dd_buf_free(&s->out);
	free(s->helo);
	free(s->ctl);
	free(s->hostname);
	free(s->peer);
	free(s);
}

int dd_smtpd_feed(struct dd_smtpd *s, const void *buf, size_t len)
{
	if (s->closing || s->eof)
		return 0;
	if (s->rpos && s->rpos == s->in.len) {
		dd_buf_clear(&s->in);
		s->rpos = 0;
	}
	return dd_buf_add(&s->in, buf, len);
}

size_t dd_smtpd_unread(const struct dd_smtpd *s)
{
	return s->in.len - s->rpos;
}

uint64_t dd_smtpd_progress(const struct dd_smtpd *s)
{
	return s->records;
}

void dd_smtpd_timeout(struct dd_smtpd *s)
{
	if (s->closing)
		return;
	/* Before any queued reply: the client is not reading them anyway. */
	dd_buf_adds(&s->out, "421 4.4.2 Timeout exceeded, closing\r\n");
	reset_txn(s);
	s->closing = true;
}

void dd_smtpd_eof(struct dd_smtpd *s)
{
	s->eof = true;
}

static void compact_input(struct dd_smtpd *s)
{
	if (s->rpos == s->in.len) {
		dd_buf_clear(&s->in);
		s->rpos = 0;
	} else if (s->rpos > s->in.len / 2) {
		dd_buf_drop(&s->in, s->rpos);
		s->rpos = 0;
	}
}

void dd_smtpd_output(struct dd_smtpd *s, const char **buf, size_t *len)
{
	*buf = s->out.p ? s->out.p + s->opos : "";
	*len = s->out.len - s->opos;
}

void dd_smtpd_written(struct dd_smtpd *s, size_t n)
{
	if (n > s->out.len - s->opos)
		n = s->out.len - s->opos;
	s->opos += n;
	if (s->opos == s->out.len) {
		dd_buf_clear(&s->out);
		s->opos = 0;
	} else if (s->opos > 4096 && s->opos > s->out.len / 2) {
		dd_buf_drop(&s->out, s->opos);
		s->opos = 0;
	}
}

const struct dd_smtpd_msg *dd_smtpd_message(struct dd_smtpd *s)
{
	return s->last ? &s->last->m : NULL;
}

void dd_smtpd_message_done(struct dd_smtpd *s, const struct dd_smtpd_msg *m,
			   int err, uint64_t qid)
{
	struct pmsg *pm;

	for (pm = s->qhead; pm; pm = pm->next)
		if (&pm->m == m && !pm->done)
			break;
	if (!pm)
		return;
	if (err == 0)
		snprintf(pm->reply, sizeof(pm->reply),
			 "250 2.0.0 Ok: queued as " DD_QID_FMT "\r\n",
			 (unsigned long long)qid);
	else if (err == -ENOSPC)
		snprintf(pm->reply, sizeof(pm->reply),
			 "452 4.3.1 Insufficient system storage\r\n");
	else
		snprintf(pm->reply, sizeof(pm->reply), "451 4.3.0 Local error\r\n");
	pm->done = true;
	s->npending--;
	if (s->last == pm)
		s->last = NULL;
	pmsg_release(pm);
	flush_queue(s);
}

unsigned int dd_smtpd_pending(const struct dd_smtpd *s)
{
	return s->npending;
}

const char *dd_smtpd_control(struct dd_smtpd *s)
{
	return s->ctl_wait ? s->ctl : NULL;
}

/*
 * Control replies carry JSON objects a line (XSTATS, XQUEUE) for our own
 * clients, which read lines of up to 64 KiB; SMTP's 512-octet reply
 * limit would cut an object whose figures have grown more digits.
 */
#define DD_CTL_LINE_MAX		60000

void dd_smtpd_control_done(struct dd_smtpd *s, int code, const char *text)
{
	const char *p = text ? text : "";
	size_t n = strlen(p);
	char head[8];

	if (!s->ctl_wait)
		return;
	if (code < 200 || code > 599)
		code = 451;
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (!n) {
		reply(s, "%d %s", code, code < 400 ? "Ok" : "Error");
	} else {
		const char *end = p + n;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *e = nl ? nl : end;
			int len = (int)(e - p);

			if (len && p[len - 1] == '\r')
				len--;
			if (len > DD_CTL_LINE_MAX)
				len = DD_CTL_LINE_MAX;
			snprintf(head, sizeof(head), "%03d%c", code,
				 nl ? '-' : ' ');
			reply_add(s, head, 4);
			reply_add(s, p, (size_t)len);
			reply_add(s, "\r\n", 2);
			p = nl ? nl + 1 : end;
		}
	}
	free(s->ctl);
	s->ctl = NULL;
	s->ctl_wait = false;
}

/* --- commands --- */

/* Does the argument text a[0..n) start with "word" (case-insensitive)? */
static bool has_prefix(const char *a, size_t n, const char *word)
{
	size_t w = strlen(word);

	return n >= w && !strncasecmp(a, word, w);
}

static void path_error(struct dd_smtpd *s, int err, bool rcpt)
{
	const char *enh = rcpt ? "5.1.3" : "5.1.7";
	const char *who = rcpt ? "recipient" : "sender";

	switch (err) {
	case -ENAMETOOLONG:
		error(s, "501 %s Path too long", enh);
		break;
	case -EDESTADDRREQ:
		error(s, "501 %s The %s address needs a domain", enh, who);
		break;
	case -EOPNOTSUPP:
		error(s, "501 %s Source routes are not accepted", enh);
		break;
	default:
		error(s, "501 %s Bad %s address syntax", enh, who);
		break;
	}
}

/* Parse MAIL's "<path> params" at a[0..n), after "FROM:", into s->sender. */
static int get_sender(struct dd_smtpd *s, const char *a, size_t n,
		      struct dd_wire_param *params, int *nparams)
{
	const char *rest;
	int err;

	while (n && *a == ' ') {
		a++;
		n--;
	}
	if (!n || *a != '<') {
		error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return -1;
	}
	/* UTF-8 is checked against SMTPUTF8 once the parameters are known. */
	err = dd_wire_path(a, n, DD_PATH_NULL | DD_PATH_UTF8, s->sender, &rest);
	if (err) {
		path_error(s, err, false);
		return -1;
	}
	*nparams = dd_wire_params(rest, n - (size_t)(rest - a), params, PARAMS_MAX);
	if (*nparams < 0) {
		error(s, "501 5.5.4 Bad parameter syntax");
		return -1;
	}
	return 0;
}

/* Any octet over 0x7f: an address that needs SMTPUTF8. */
static bool has8(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a >= 0x80)
			return true;
	return false;
}

/*
 * RFC 3461 4: xtext is printable ASCII but '+' and '=', with "+XX"
 * (upper-case hex) for any other octet; what it encodes must be
 * printable ASCII (graphic or space) too, since it ends up in a
 * delivery status notification.  dd_wire_params() already kept '='
 * and octets outside 33..126 out of the value.
 */
static bool xtext_ok(const char *v, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		const char *hi, *lo;
		int c;

		if (v[i] != '+')
			continue;
		if (i + 2 >= n)
			return false;
		hi = memchr(hex, v[i + 1], 16);
		lo = memchr(hex, v[i + 2], 16);
		if (!hi || !lo)
			return false;
		c = (int)((hi - hex) * 16 + (lo - hex));
		if (c < 0x20 || c > 0x7e)
			return false;
		i += 2;
	}
	return true;
}

/* RFC 3461 4.2 ORCPT: addr-type ";" xtext; addr-type an atom. */
static bool orcpt_ok(const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);
	size_t t;

	if (!semi || semi == v || semi == v + n - 1)
		return false;
	t = (size_t)(semi - v);
	for (size_t i = 0; i < t; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c)))
			return false;
	}
	return xtext_ok(semi + 1, n - t - 1);
}

/*
 * RFC 3461 4.1 NOTIFY: "NEVER", or a comma-separated list of SUCCESS,
 * FAILURE and DELAY, each at most once.  DD_NOTIFY_* or 0 with the
 * reply text in *why.
 */
static uint8_t parse_notify(const char *v, size_t n, const char **why)
{
	static const struct { const char *kw; uint8_t bit; } kws[] = {
		{ "NEVER", DD_NOTIFY_NEVER }, { "SUCCESS", DD_NOTIFY_SUCCESS },
		{ "FAILURE", DD_NOTIFY_FAILURE }, { "DELAY", DD_NOTIFY_DELAY },
	};
	uint8_t bits = 0;
	size_t i = 0;

	*why = "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY";
	while (i <= n) {
		const char *e = memchr(v + i, ',', n - i);
		size_t len = (e ? (size_t)(e - v) : n) - i;
		uint8_t bit = 0;

		for (size_t k = 0; k < sizeof(kws) / sizeof(kws[0]); k++)
			if (strlen(kws[k].kw) == len &&
			    !strncasecmp(v + i, kws[k].kw, len))
				bit = kws[k].bit;
		if (!bit)
			return 0;
		if (bits & bit) {
			*why = "NOTIFY lists a value twice";
			return 0;
		}
		bits |= bit;
		i += len + 1;
	}
	if ((bits & DD_NOTIFY_NEVER) && bits != DD_NOTIFY_NEVER) {
		*why = "NOTIFY=NEVER cannot be combined with other values";
		return 0;
	}
	return bits;
}

static void cmd_mail(struct dd_smtpd *s, const char *a, size_t n)
{
	struct dd_wire_param p[PARAMS_MAX];
	bool have_size = false, have_body = false, have_utf8 = false;
	bool have_envid = false;
	uint8_t ret = DD_RET_NONE;
	const char *why;
	uint32_t flags = 0;
	int np;

	if (!s->helo) {
		error(s, "503 5.5.1 Send EHLO or HELO first");
		return;
	}
	if (s->mail) {
		error(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	s->envid[0] = '\0';	/* nothing left from a refused MAIL */
	if (!has_prefix(a, n, "FROM:")) {
		error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (get_sender(s, a + 5, n - 5, p, &np)) {
		s->sender[0] = '\0';
		return;
	}
	for (int i = 0; i < np; i++) {
		if (s->esmtp && dd_wire_param_is(&p[i], "SIZE") && !have_size) {
			uint64_t v = 0;

			have_size = true;
			if (!p[i].val || p[i].vallen > 19)
				goto bad;
			for (size_t k = 0; k < p[i].vallen; k++) {
				if (p[i].val[k] < '0' || p[i].val[k] > '9')
					goto bad;
				v = v * 10 + (uint64_t)(p[i].val[k] - '0');
			}
			if (s->conf.max_size && v > s->conf.max_size) {
				reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
				s->sender[0] = '\0';
				return;
			}
		} else if (s->esmtp && dd_wire_param_is(&p[i], "BODY") && !have_body) {
			have_body = true;
			if (p[i].val && p[i].vallen == 8 &&
			    !strncasecmp(p[i].val, "8BITMIME", 8))
				flags |= DD_MSG_8BIT;
			else if (!p[i].val || p[i].vallen != 4 ||
				 strncasecmp(p[i].val, "7BIT", 4))
				goto bad;
		} else if (s->esmtp && (dd_wire_param_is(&p[i], "SIZE") ||
					dd_wire_param_is(&p[i], "BODY"))) {
			goto bad;	/* twice */
		} else if (s->esmtp && dd_wire_param_is(&p[i], "SMTPUTF8")) {
			if (have_utf8 || p[i].val) {
				why = have_utf8 ? "Duplicate SMTPUTF8 parameter" :
				      "SMTPUTF8 takes no value";
				goto bad_dsn;
			}
			have_utf8 = true;
			flags |= DD_MSG_SMTPUTF8;
		} else if (s->esmtp && dd_wire_param_is(&p[i], "RET")) {
			if (ret) {
				why = "Duplicate RET parameter";
				goto bad_dsn;
			}
			if (p[i].val && p[i].vallen == 4 &&
			    !strncasecmp(p[i].val, "FULL", 4)) {
				ret = DD_RET_FULL;
			} else if (p[i].val && p[i].vallen == 4 &&
				   !strncasecmp(p[i].val, "HDRS", 4)) {
				ret = DD_RET_HDRS;
			} else {
				why = "RET must be FULL or HDRS";
				goto bad_dsn;
			}
		} else if (s->esmtp && dd_wire_param_is(&p[i], "ENVID")) {
			if (have_envid) {
				why = "Duplicate ENVID parameter";
				goto bad_dsn;
			}
			have_envid = true;
			if (!p[i].val || !xtext_ok(p[i].val, p[i].vallen)) {
				why = "ENVID is not valid xtext";
				goto bad_dsn;
			}
			if (p[i].vallen > ENVID_MAX) {
				why = "ENVID longer than 100 characters";
				goto bad_dsn;
			}
			memcpy(s->envid, p[i].val, p[i].vallen);
			s->envid[p[i].vallen] = '\0';
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %.*s",
			      (int)(p[i].kwlen > 64 ? 64 : p[i].kwlen), p[i].kw);
			s->sender[0] = '\0';
			s->envid[0] = '\0';
			return;
		}
	}
	/* RFC 6531 3.5: no UTF-8 address without SMTPUTF8. */
	if (!have_utf8 && has8(s->sender)) {
		reply(s, "553 5.6.7 Non-ASCII sender address requires SMTPUTF8");
		s->sender[0] = '\0';
		s->envid[0] = '\0';
		return;
	}
	s->mail = true;
	s->flags = flags | (s->sender[0] ? 0 : DD_MSG_NULLSENDER);
	s->ret = ret;
	reply(s, "250 2.1.0 Ok");
	return;
bad:
	why = "Bad parameter value";
bad_dsn:
	s->sender[0] = '\0';
	s->envid[0] = '\0';
	error(s, "501 5.5.4 %s", why);
}

static void cmd_rcpt(struct dd_smtpd *s, const char *a, size_t n)
{
	struct dd_wire_param p[PARAMS_MAX];
	char addr[DD_ADDR_MAX];
	const char *rest, *orcpt = NULL, *why;
	size_t orcpt_len = 0;
	uint8_t notify = 0, *nv;
	bool have_notify = false;
	int np, err;

	if (!s->mail) {
		error(s, "503 5.5.1 Need MAIL command");
		return;
	}
	if (!has_prefix(a, n, "TO:")) {
		error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	a += 3;
	n -= 3;
	while (n && *a == ' ') {
		a++;
		n--;
	}
	if (!n || *a != '<') {
		error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	err = dd_wire_path(a, n, DD_PATH_UTF8, addr, &rest);
	if (err) {
		path_error(s, err, true);
		return;
	}
	np = dd_wire_params(rest, n - (size_t)(rest - a), p, PARAMS_MAX);
	if (np < 0) {
		error(s, "501 5.5.4 Bad parameter syntax");
		return;
	}
	for (int i = 0; i < np; i++) {
		if (s->esmtp && dd_wire_param_is(&p[i], "NOTIFY")) {
			if (have_notify) {
				error(s, "501 5.5.4 Duplicate NOTIFY parameter");
				return;
			}
			have_notify = true;
			notify = p[i].val ? parse_notify(p[i].val, p[i].vallen,
							 &why) : 0;
			if (!notify) {
				if (!p[i].val)
					why = "NOTIFY must be NEVER or a list of "
					      "SUCCESS, FAILURE, DELAY";
				error(s, "501 5.5.4 %s", why);
				return;
			}
		} else if (s->esmtp && dd_wire_param_is(&p[i], "ORCPT")) {
			if (orcpt) {
				error(s, "501 5.5.4 Duplicate ORCPT parameter");
				return;
			}
			if (!p[i].val || !orcpt_ok(p[i].val, p[i].vallen)) {
				error(s, "501 5.5.4 ORCPT must be addr-type;xtext");
				return;
			}
			if (p[i].vallen > ORCPT_MAX) {
				error(s, "501 5.5.4 ORCPT longer than 500 characters");
				return;
			}
			orcpt = p[i].val;
			orcpt_len = p[i].vallen;
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %.*s",
			      (int)(p[i].kwlen > 64 ? 64 : p[i].kwlen), p[i].kw);
			return;
		}
	}
	/* RFC 6531 3.5: no UTF-8 address without SMTPUTF8. */
	if (!(s->flags & DD_MSG_SMTPUTF8) && has8(addr)) {
		reply(s, "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8");
		return;
	}
	if (s->conf.max_rcpts && s->rcpts.n >= s->conf.max_rcpts) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	nv = realloc(s->rcpt_notify, s->rcpts.n + 1);
	if (!nv) {
		reply(s, "451 4.3.0 Local error");
		return;
	}
	s->rcpt_notify = nv;
	/* rcpts, orcpts and rcpt_notify stay the same length */
	if (dd_strv_add(&s->orcpts, orcpt ? orcpt : "", orcpt_len)) {
		reply(s, "451 4.3.0 Local error");
		return;
	}
	if (dd_strv_add(&s->rcpts, addr, strlen(addr))) {
		free(s->orcpts.v[--s->orcpts.n]);
		reply(s, "451 4.3.0 Local error");
		return;
	}
	nv[s->rcpts.n - 1] = notify;
	reply(s, "250 2.1.5 Ok");
}

static void cmd_data(struct dd_smtpd *s, size_t n)
{
	if (n) {
		error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->mail) {
		error(s, "503 5.5.1 Need MAIL command");
		return;
	}
	if (s->bdat) {
		error(s, "503 5.5.1 DATA after BDAT");
		return;
	}
	if (!s->rcpts.n) {
		reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	start_body(s);
	s->phase = PH_DATA;
	s->bol = true;
	s->prev_crlf = true;
}

static void cmd_bdat(struct dd_smtpd *s, const char *a, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && a[i] == ' ')
		i++;
	if (i == n || a[i] < '0' || a[i] > '9')
		goto syntax;
	for (; i < n && a[i] >= '0' && a[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			goto syntax;
		v = v * 10 + (uint64_t)(a[i] - '0');
	}
	s->bdat_last = false;
	while (i < n && a[i] == ' ')
		i++;
	if (i < n) {
		if (n - i < 4 || strncasecmp(a + i, "LAST", 4))
			goto syntax;
		i += 4;
		while (i < n && a[i] == ' ')
			i++;
		if (i < n)
			goto syntax;
		s->bdat_last = true;
	}
	s->bdat_left = v;
	s->bdat_n = v;
	s->phase = PH_BDAT;
	s->bdat_err = 0;
	if (!s->mail) {
		s->bdat_err = 503;
	} else if (!s->rcpts.n) {
		s->bdat_err = 554;
	} else {
		s->bdat = true;
		start_body(s);
		if (s->conf.max_size && v > s->conf.max_size - s->size) {
			s->too_big = true;
			dd_buf_free(&s->body);
		}
	}
	return;
syntax:
	error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
}

static void cmd_ehlo(struct dd_smtpd *s, const char *a, size_t n, bool esmtp)
{
	char *h;

	while (n && *a == ' ') {
		a++;
		n--;
	}
	while (n && a[n - 1] == ' ')
		n--;
	if (!n) {
		error(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	h = strndup(a, n > 255 ? 255 : n);
	if (!h) {
		reply(s, "451 4.3.0 Local error");
		return;
	}
	free(s->helo);
	s->helo = h;
	s->esmtp = esmtp;
	reset_txn(s);
	if (!esmtp) {
		reply(s, "250 %s", s->hostname);
		return;
	}
	reply(s, "250-%s", s->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %zu", s->conf.max_size);
	reply(s, "250-8BITMIME");
	reply(s, "250-CHUNKING");
	reply(s, "250-DSN");
	reply(s, "250-SMTPUTF8");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

/* One command line, without its line end. */
static enum dd_smtpd_act command(struct dd_smtpd *s, const char *line, size_t len)
{
	size_t v = 0, n;
	const char *a;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 32 && c != '\t') || c == 127) {
			error(s, "500 5.5.2 Invalid characters in command");
			return 0;
		}
	}
	while (v < len && line[v] != ' ')
		v++;
	a = line + v;
	n = len - v;
	if (n) {		/* the argument, after one SP */
		a++;
		n--;
	}
#define IS(word) (v == sizeof(word) - 1 && !strncasecmp(line, word, v))
	if (IS("QUIT")) {
		reply(s, "221 2.0.0 Bye");
		s->closing = true;
		return 0;
	}
	if (s->refused) {
		error(s, "503 5.5.1 Bad sequence of commands");
		return 0;
	}
	if (IS("EHLO") || IS("HELO")) {
		cmd_ehlo(s, a, n, IS("EHLO"));
	} else if (IS("MAIL")) {
		cmd_mail(s, a, n);
	} else if (IS("RCPT")) {
		cmd_rcpt(s, a, n);
	} else if (IS("DATA")) {
		cmd_data(s, n);
	} else if (IS("BDAT")) {
		cmd_bdat(s, a, n);
	} else if (IS("RSET")) {
		reset_txn(s);
		reply(s, "250 2.0.0 Ok");
	} else if (IS("NOOP")) {
		reply(s, "250 2.0.0 Ok");
	} else if (IS("VRFY")) {
		reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	} else if (IS("HELP")) {
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT");
	} else if (v && (line[0] == 'X' || line[0] == 'x') && s->conf.control) {
		s->ctl = strndup(line, len);
		if (!s->ctl) {
			reply(s, "451 4.3.0 Local error");
			return 0;
		}
		s->ctl_wait = true;
		return DD_SMTPD_CONTROL;
	} else {
		error(s, "500 5.5.1 Command unrecognized");
	}
#undef IS
	return 0;
}

/* --- input --- */

enum step { STEP_MORE = 0, STEP_END };

/* DATA lines until CRLF.CRLF: unstuffed, bare LF made CRLF. */
static enum step data_step(struct dd_smtpd *s)
{
	for (;;) {
		const char *p = s->in.p + s->rpos, *lf;
		size_t avail = s->in.len - s->rpos, l, clen;
		bool crlf;

		if (!avail)
			return STEP_MORE;
		lf = memchr(p, '\n', avail);
		if (!lf) {
			size_t k = avail, skip = 0;

			/* wait for the whole line while it is short */
			if (avail < s->conf.max_line)
				return STEP_MORE;
			if (p[k - 1] == '\r')
				k--;	/* may be the CR of a CRLF */
			if (s->bol && p[0] == '.')
				skip = 1;
			body_add(s, p + skip, k - skip);
			s->rpos += k;
			s->bol = false;
			s->records++;
			continue;
		}
		l = (size_t)(lf - p) + 1;
		if (s->bol && s->prev_crlf && l == 3 && p[0] == '.' && p[1] == '\r') {
			s->rpos += 3;
			return STEP_END;
		}
		clen = l - 1;
		crlf = clen && p[clen - 1] == '\r';
		if (crlf)
			clen--;
		/*
		 * Unstuff a leading dot only with more on the line (RFC 5321
		 * 4.5.2): a lone "." here is no end of data (its line end or
		 * the one before is bare), and was not stuffed by any client,
		 * so it stays, and "\n.\n" is delivered as a "." line.
		 */
		if (s->bol && clen > 1 && p[0] == '.') {
			p++;
			clen--;
		}
		body_add(s, p, clen);
		body_add(s, "\r\n", 2);
		s->rpos += l;
		s->bol = true;
		s->prev_crlf = crlf;
		s->records++;
	}
}

/* The octets of a BDAT chunk, as they are. */
static enum step bdat_step(struct dd_smtpd *s)
{
	size_t avail = s->in.len - s->rpos;
	size_t k = avail < s->bdat_left ? avail : (size_t)s->bdat_left;

	if (!s->bdat_err)
		body_add(s, s->in.p + s->rpos, k);
	s->rpos += k;
	s->bdat_left -= k;
	s->bdat_unit += k;
	if (s->bdat_unit >= 4096 || !s->bdat_left) {
		s->records++;
		s->bdat_unit = 0;
	}
	return s->bdat_left ? STEP_MORE : STEP_END;
}

static enum dd_smtpd_act bdat_end(struct dd_smtpd *s)
{
	s->phase = PH_CMD;
	if (s->bdat_err == 503) {
		error(s, "503 5.5.1 Need MAIL command");
		return 0;
	}
	if (s->bdat_err == 554) {
		reply(s, "554 5.5.1 No valid recipients");
		if (s->bdat_last)
			reset_txn(s);
		return 0;
	}
	if (s->bdat_last)
		return finish_message(s);
	if (s->too_big)
		reply(s, "%s", too_big_reply);
	else if (s->body_err)
		reply(s, "451 4.3.0 Local error");
	else
		reply(s, "250 2.0.0 %llu octets received",
		      (unsigned long long)s->bdat_n);
	return 0;
}

/* One command line from the input, if complete; handles over-long ones. */
static bool get_line(struct dd_smtpd *s, const char **line, size_t *len)
{
	size_t avail = s->in.len - s->rpos, l;
	const char *p, *lf;

	/* Nothing fed yet: in.p is NULL, and NULL + 0 is undefined. */
	if (!avail)
		return false;
	p = s->in.p + s->rpos;
	for (;;) {
		if (!avail)
			return false;
		lf = memchr(p, '\n', avail);
		if (s->discard) {
			if (!lf) {
				s->rpos += avail;
				return false;
			}
			s->rpos += (size_t)(lf - p) + 1;
			s->discard = false;
			error(s, "500 5.5.2 Line too long");
			if (s->closing)
				return false;
			p = s->in.p + s->rpos;
			avail = s->in.len - s->rpos;
			continue;
		}
		if (!lf) {
			if (avail >= s->conf.max_line) {
				s->discard = true;
				continue;
			}
			return false;
		}
		l = (size_t)(lf - p) + 1;
		if (l > s->conf.max_line) {
			s->discard = true;
			continue;
		}
		s->rpos += l;
		s->records++;
		*line = p;
		*len = l - 1;
		if (*len && p[*len - 1] == '\r')
			(*len)--;
		return true;
	}
}

static enum dd_smtpd_act run(struct dd_smtpd *s)
{
	enum dd_smtpd_act act;

	if (s->ctl_wait)
		return DD_SMTPD_READ;
	for (;;) {
		const char *line;
		size_t len;

		if (s->closing) {
			s->rpos = s->in.len;
			/* nothing more comes in; wait for what must go out */
			return s->nq ? DD_SMTPD_READ : DD_SMTPD_CLOSE;
		}
		switch (s->phase) {
		case PH_DATA:
			if (data_step(s) == STEP_MORE) {
				if (!s->eof)
					return DD_SMTPD_READ;
				reset_txn(s);
				s->closing = true;
				continue;
			}
			s->phase = PH_CMD;
			act = finish_message(s);
			if (act)
				return act;
			continue;
		case PH_BDAT:
			if (bdat_step(s) == STEP_MORE) {
				if (!s->eof)
					return DD_SMTPD_READ;
				reset_txn(s);
				s->closing = true;
				continue;
			}
			act = bdat_end(s);
			if (act)
				return act;
			continue;
		case PH_CMD:
			break;
		}
		if (s->nq >= DD_SMTPD_PENDING || s->qbytes > QUEUED_REPLIES_MAX)
			return DD_SMTPD_READ;	/* until messages are done */
		if (!get_line(s, &line, &len)) {
			if (!s->eof)
				return DD_SMTPD_READ;
			s->closing = true;
			continue;
		}
		act = command(s, line, len);
		if (act)
			return act;
	}
}

enum dd_smtpd_act dd_smtpd_run(struct dd_smtpd *s)
{
	enum dd_smtpd_act act = run(s);

	compact_input(s);
	return act;
}
