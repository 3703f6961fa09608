// SPDX-License-Identifier: GPL-2.0
/*
 * Bounces: RFC 3464 delivery status notifications in an RFC 6522
 * multipart/report.
 *
 *   part 1  text/plain: what happened, one paragraph per failed recipient
 *   part 2  message/delivery-status: Reporting-MTA, X-Queue-ID,
 *           Arrival-Date; then per recipient Final-Recipient, Action:
 *           failed, Status, Remote-MTA (if known), Diagnostic-Code (if
 *           there was a reply), Last-Attempt-Date (if known)
 *   part 3  text/rfc822-headers: the original header block; or, with
 *           message set (RET=FULL), message/rfc822 (message/global for
 *           an SMTPUTF8 original): the whole original as it is
 *
 * DSN (RFC 3461): Original-Envelope-Id (per message) and
 * Original-Recipient (per recipient) carry ENVID and ORCPT decoded from
 * xtext (RFC 3464 2.2.1, 2.3.1).  A relayed notice says "Action:
 * relayed" for each recipient instead of "failed".  Final-Recipient of a
 * UTF-8 address is "utf-8; " with its non-ASCII characters as \x{HEX}
 * (RFC 6533 utf-8-addr-xtext), so the report stays 7-bit.
 *
 * The whole message is 7-bit: CR, LF and other control characters in
 * the values we are given become spaces, bytes over 0x7e become '?'
 * (the original headers too: a bounce must get through to servers
 * without 8BITMIME).  Every line ends in CRLF and is at most 998 octets:
 * header and DSN fields are folded at spaces (aiming at 78 columns) and
 * cut hard only in a word longer than a line; long lines of the original
 * headers are truncated.
 *
 * Status: the caller's enhanced code if it is one (class 2, 4 or 5),
 * else derived from the reply: 5xx gives 5.0.0; a 4xx reply or none at
 * all means the recipient failed only because it was still deferred at
 * max_age, which is 4.4.7 (RFC 3463: delivery time expired).  Action is
 * "failed", or "relayed" in a success notice.
 *
 * Remote-MTA: the host part of remote_mta ("127.0.0.1:2601" gives
 * "dns; [127.0.0.1]", "[::1]:25" gives "dns; [IPv6:::1]", RFC 5321
 * address literals; a name is written as is).
 */
#define _GNU_SOURCE
#include "dd_bounce.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_SOFT	78
#define LINE_HARD	998

struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	sb_add(b, tmp, (size_t)n);
}

/* s as 7-bit printable text (malloc'd, NULL on ENOMEM). */
static char *clean(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *o = malloc(n + 1);

	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c > 0x7e)
			c = '?';
		o[i] = (char)c;
	}
	o[n] = '\0';
	return o;
}

/*
 * Write s, folded: "used" octets of the current line are already out.
 * header: continuation lines start with the space the line was cut at
 * (so unfolding gives s back), or with one inserted space after a hard
 * cut.  Otherwise (body text): spaces at the cut are dropped and each
 * continuation starts with indent.  Ends with CRLF.
 */
static void sb_fold(struct sb *b, size_t used, const char *s, bool header,
		    const char *indent)
{
	size_t len = strlen(s);

	for (;;) {
		size_t soft = used < LINE_SOFT ? LINE_SOFT - used : 1;
		size_t hard = LINE_HARD - used;
		size_t cut = 0, i;
		bool at_space = false;

		if (len <= soft)
			break;
		for (i = soft; i >= 1; i--) {
			if (s[i] == ' ') {
				cut = i;
				break;
			}
		}
		if (!cut) {
			for (i = soft + 1; i < len && i <= hard; i++) {
				if (s[i] == ' ') {
					cut = i;
					break;
				}
			}
		}
		if (!cut && len <= hard)
			break;
		if (cut)
			at_space = true;
		else
			cut = hard;
		sb_add(b, s, cut);
		sb_add(b, "\r\n", 2);
		s += cut;
		len -= cut;
		if (header) {
			used = 0;
			if (!at_space) {
				sb_add(b, " ", 1);
				used = 1;
			}
		} else {
			while (at_space && *s == ' ') {
				s++;
				len--;
			}
			if (!len)
				return;
			sb_str(b, indent);
			used = strlen(indent);
		}
	}
	sb_add(b, s, len);
	sb_add(b, "\r\n", 2);
}

/* "Name: value" with value cleaned and folded. */
static void sb_field(struct sb *b, const char *name, const char *value)
{
	char *v = clean(value);

	if (!v) {
		b->oom = true;
		return;
	}
	sb_str(b, name);
	sb_add(b, ": ", 2);
	sb_fold(b, strlen(name) + 2, v, true, NULL);
	free(v);
}

/* xtext (RFC 3461 4) decoded, then cleaned; malloc'd, NULL on ENOMEM. */
static char *xtext_decode(const char *x)
{
	size_t n = strlen(x), j = 0;
	char *o = malloc(n + 1), *c;

	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		static const char hex[] = "0123456789ABCDEF";
		const char *hi = i + 2 < n ? memchr(hex, x[i + 1], 16) : NULL;
		const char *lo = hi ? memchr(hex, x[i + 2], 16) : NULL;

		if (x[i] == '+' && hi && lo) {
			o[j++] = (char)((hi - hex) * 16 + (lo - hex));
			i += 2;
		} else {
			o[j++] = x[i];
		}
	}
	o[j] = '\0';
	c = clean(o);
	free(o);
	return c;
}

/*
 * Final-Recipient value: "rfc822; a@b", or for a UTF-8 address "utf-8; "
 * with each non-ASCII character (and '\\', '+', '=', controls) as \x{HEX}
 * (RFC 6533 3).  Bytes that are not UTF-8 become '?'.
 */
static char *final_recipient(const char *addr)
{
	const unsigned char *p = (const unsigned char *)addr;
	bool utf8 = false;
	struct sb b = { 0 };

	for (const unsigned char *q = p; *q; q++)
		utf8 = utf8 || *q >= 0x80;
	if (!utf8) {
		char *a = clean(addr), *out = NULL;

		if (a && asprintf(&out, "rfc822; %s", a) < 0)
			out = NULL;
		free(a);
		return out;
	}
	sb_str(&b, "utf-8; ");
	while (*p) {
		unsigned int cp = *p, n = 1;

		if (*p >= 0xc2 && *p <= 0xf4) {
			n = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;
			cp = *p & (0x7f >> n);
			for (unsigned int k = 1; k < n; k++) {
				if ((p[k] & 0xc0) != 0x80) {
					n = 0;
					break;
				}
				cp = cp << 6 | (p[k] & 0x3f);
			}
		} else if (*p >= 0x80) {
			n = 0;
		}
		if (!n) {
			sb_add(&b, "?", 1);
			p++;
		} else if (cp < 0x21 || cp > 0x7e || cp == '\\' || cp == '+' ||
			   cp == '=') {
			sb_printf(&b, "\\x{%X}", cp);
			p += n;
		} else {
			sb_add(&b, (const char *)p, 1);
			p++;
		}
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* RFC 5322 date, in UTC, independent of the locale. */
static void rfc5322_date(int64_t t, char *buf, size_t len)
{
	static const char days[][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
					"Fri", "Sat" };
	static const char mons[][4] = { "Jan", "Feb", "Mar", "Apr", "May",
					"Jun", "Jul", "Aug", "Sep", "Oct",
					"Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm)) {
		snprintf(buf, len, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(buf, len, "%s, %d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool valid_status(const char *s)
{
	int digits = 0, parts = 0;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	parts = 1;
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9') {
			if (++digits > 3)
				return false;
		} else if (*s == '.' && digits && parts < 2) {
			parts++;
			digits = 0;
		} else {
			return false;
		}
	}
	return parts == 2 && digits;
}

static const char *rcpt_status(const struct dd_bounce_rcpt *r)
{
	if (valid_status(r->status))
		return r->status;
	if (r->code >= 500 && r->code < 600)
		return "5.0.0";
	return "4.4.7";		/* deferred until max_age: expired */
}

/* Remote-MTA value from "host:port", "[v6]:port" or a name. */
static void remote_mta(const char *in, char *out, size_t len)
{
	char *c = clean(in);
	char *colon;

	if (!c) {
		snprintf(out, len, "unknown");
		return;
	}
	if (c[0] == '[') {
		char *close = strchr(c, ']');

		if (close)
			*close = '\0';
		snprintf(out, len, "[IPv6:%s]", c + 1);
	} else {
		bool numeric = true;

		colon = strrchr(c, ':');
		if (colon)
			*colon = '\0';
		for (char *p = c; *p; p++)
			if (!(*p >= '0' && *p <= '9') && *p != '.')
				numeric = false;
		if (numeric && *c)
			snprintf(out, len, "[%s]", c);
		else
			snprintf(out, len, "%s", c);
	}
	free(c);
}

/* The original headers: up to the first empty line, 7-bit, CRLF, <= 998. */
static void sb_headers(struct sb *b, const char *h, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t e = i, n;
		char line[LINE_HARD];

		while (e < len && h[e] != '\n')
			e++;
		n = e - i;
		if (n && h[i + n - 1] == '\r')
			n--;
		if (!n)
			break;			/* end of the header block */
		if (n > LINE_HARD)
			n = LINE_HARD;
		for (size_t k = 0; k < n; k++) {
			unsigned char c = (unsigned char)h[i + k];

			if (c == '\t')
				;
			else if (c < 0x20 || c == 0x7f)
				c = ' ';
			else if (c > 0x7e)
				c = '?';
			line[k] = (char)c;
		}
		sb_add(b, line, n);
		sb_add(b, "\r\n", 2);
		i = e + 1;
	}
}

static atomic_uint msgid_seq;

int dd_bounce_build(const struct dd_bounce *b, char **out, size_t *outlen)
{
	struct sb text = { 0 }, dsn = { 0 }, hdrs = { 0 }, m = { 0 };
	char date[64], boundary[96], tmp[1200], mta[300];
	char *host = clean(b->reporting_mta ? b->reporting_mta : "localhost");
	unsigned int seq = atomic_fetch_add(&msgid_seq, 1);
	int ret = -ENOMEM;

	*out = NULL;
	*outlen = 0;
	if (!host)
		return -ENOMEM;

	/* Part 1: for people. */
	snprintf(tmp, sizeof(tmp), "This is the mail delivery system at %s.",
		 host);
	sb_fold(&text, 0, tmp, false, "");
	sb_str(&text, "\r\n");
	if (b->relayed)
		sb_fold(&text, 0, b->nrcpt == 1 ?
			"Your message was relayed to the recipient below, to a "
			"server that does not offer delivery status "
			"notifications: no further notice of its delivery will "
			"come from there." :
			"Your message was relayed to the recipients below, to a "
			"server that does not offer delivery status "
			"notifications: no further notice of its delivery will "
			"come from there.", false, "");
	else
		sb_fold(&text, 0, b->nrcpt == 1 ?
			"Your message could not be delivered to the recipient below. "
			"This is a permanent error; it will not be retried." :
			"Your message could not be delivered to the recipients below. "
			"This is a permanent error; it will not be retried.",
			false, "");
	sb_str(&text, "\r\n");
	for (unsigned int i = 0; i < b->nrcpt; i++) {
		const struct dd_bounce_rcpt *r = &b->rcpts[i];
		const char *st = rcpt_status(r);
		char *addr = clean(r->addr), *diag = clean(r->diag);
		char *line;
		int n;

		if (!addr || !diag) {
			free(addr);
			free(diag);
			text.oom = true;
			break;
		}
		if (r->code && r->remote_mta)
			n = asprintf(&line, "<%s>: host %s said: %d %s", addr,
				     r->remote_mta, r->code, diag);
		else if (r->code)
			n = asprintf(&line, "<%s>: the server said: %d %s",
				     addr, r->code, diag);
		else if (st[0] == '4' && *diag)
			n = asprintf(&line, "<%s>: delivery time expired; last "
				     "error: %s", addr, diag);
		else if (st[0] == '4')
			n = asprintf(&line, "<%s>: delivery time expired", addr);
		else
			n = asprintf(&line, "<%s>: %s", addr,
				     *diag ? diag : "delivery failed");
		free(addr);
		free(diag);
		if (n < 0) {
			text.oom = true;
			break;
		}
		{
			/* remote_mta came in unclean: clean the whole line. */
			char *cl = clean(line);

			free(line);
			if (!cl) {
				text.oom = true;
				break;
			}
			sb_fold(&text, 0, cl, false, "    ");
			free(cl);
		}
		sb_str(&text, "\r\n");
	}
	if (b->message && !b->relayed) {
		sb_fold(&text, 0, "Your message is attached below.", false, "");
	} else if (b->full_max && !b->relayed) {
		snprintf(tmp, sizeof(tmp), "Your message is larger than %zu "
			 "bytes, so only its headers are attached below.",
			 b->full_max);
		sb_fold(&text, 0, tmp, false, "");
	} else {
		sb_fold(&text, 0, "The headers of your message are attached "
			"below.", false, "");
	}

	/* Part 2: for programs. */
	sb_field(&dsn, "Reporting-MTA", (snprintf(tmp, sizeof(tmp), "dns; %s",
						   host), tmp));
	if (b->envid) {
		char *e = xtext_decode(b->envid);

		if (!e)
			dsn.oom = true;
		else
			sb_field(&dsn, "Original-Envelope-Id", e);
		free(e);
	}
	snprintf(tmp, sizeof(tmp), "%016llX", (unsigned long long)b->qid);
	sb_field(&dsn, "X-Queue-ID", tmp);
	if (b->arrival) {
		rfc5322_date(b->arrival, date, sizeof(date));
		sb_field(&dsn, "Arrival-Date", date);
	}
	for (unsigned int i = 0; i < b->nrcpt; i++) {
		const struct dd_bounce_rcpt *r = &b->rcpts[i];
		char *fr = final_recipient(r->addr);

		if (!fr) {
			dsn.oom = true;
			break;
		}
		sb_str(&dsn, "\r\n");
		if (r->orcpt && strchr(r->orcpt, ';')) {
			/* "addr-type;xtext" as "addr-type; decoded" */
			const char *semi = strchr(r->orcpt, ';');
			char *o = xtext_decode(semi + 1);
			char *t = strndup(r->orcpt, (size_t)(semi - r->orcpt));

			if (o && t) {
				snprintf(tmp, sizeof(tmp), "%s; %s", t, o);
				sb_field(&dsn, "Original-Recipient", tmp);
			} else {
				dsn.oom = true;
			}
			free(o);
			free(t);
		}
		sb_field(&dsn, "Final-Recipient", fr);
		free(fr);
		sb_field(&dsn, "Action", b->relayed ? "relayed" : "failed");
		sb_field(&dsn, "Status", rcpt_status(r));
		if (r->remote_mta && *r->remote_mta) {
			remote_mta(r->remote_mta, mta, sizeof(mta));
			snprintf(tmp, sizeof(tmp), "dns; %s", mta);
			sb_field(&dsn, "Remote-MTA", tmp);
		}
		if (r->code) {
			char *d = clean(r->diag);

			if (!d) {
				dsn.oom = true;
				break;
			}
			sb_printf(&dsn, "Diagnostic-Code: smtp; %d", r->code);
			if (*d) {
				/* Fold the text after the code. */
				size_t used = strlen("Diagnostic-Code: smtp; ") + 3;

				sb_add(&dsn, " ", 1);
				sb_fold(&dsn, used + 1, d, true, NULL);
			} else {
				sb_str(&dsn, "\r\n");
			}
			free(d);
		}
		if (r->last_attempt) {
			rfc5322_date(r->last_attempt, date, sizeof(date));
			sb_field(&dsn, "Last-Attempt-Date", date);
		}
	}

	/* Part 3: the original headers. */
	if (b->headers && b->headers_len)
		sb_headers(&hdrs, b->headers, b->headers_len);

	if (text.oom || dsn.oom || hdrs.oom)
		goto out;

	/* A boundary in none of the parts. */
	for (unsigned int k = 0;; k++) {
		snprintf(boundary, sizeof(boundary), "=_dd_%016llX_%lld_%u_%u",
			 (unsigned long long)b->qid, (long long)b->now, seq, k);
		if ((!text.p || !strstr(text.p, boundary)) &&
		    (!dsn.p || !strstr(dsn.p, boundary)) &&
		    (!hdrs.p || !strstr(hdrs.p, boundary)) &&
		    (!b->message || !memmem(b->message, b->message_len,
					    boundary, strlen(boundary))))
			break;
	}

	/* The message. */
	rfc5322_date(b->now, date, sizeof(date));
	snprintf(tmp, sizeof(tmp), "Mail Delivery System <%s>",
		 b->from ? b->from : "MAILER-DAEMON");
	sb_field(&m, "From", tmp);
	snprintf(tmp, sizeof(tmp), "<%s>", b->to ? b->to : "");
	sb_field(&m, "To", tmp);
	sb_field(&m, "Subject", b->relayed ? "Successful Mail Delivery Report" :
		 "Undelivered Mail Returned to Sender");
	sb_field(&m, "Date", date);
	snprintf(tmp, sizeof(tmp), "<%016llX.%lld.%u@%s>",
		 (unsigned long long)b->qid, (long long)b->now, seq, host);
	sb_field(&m, "Message-ID", tmp);
	sb_field(&m, "Auto-Submitted", "auto-replied");
	sb_field(&m, "MIME-Version", "1.0");
	snprintf(tmp, sizeof(tmp), "multipart/report; report-type=delivery-status; "
		 "boundary=\"%s\"", boundary);
	sb_field(&m, "Content-Type", tmp);
	sb_str(&m, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	sb_printf(&m, "--%s\r\n", boundary);
	sb_str(&m, "Content-Description: Notification\r\n"
		   "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	sb_add(&m, text.p, text.len);
	sb_printf(&m, "\r\n--%s\r\n", boundary);
	sb_str(&m, "Content-Description: Delivery report\r\n"
		   "Content-Type: message/delivery-status\r\n\r\n");
	sb_add(&m, dsn.p, dsn.len);
	sb_printf(&m, "\r\n--%s\r\n", boundary);
	if (b->message && !b->relayed) {
		bool eight = false;

		for (size_t i = 0; i < b->message_len && !eight; i++)
			eight = (unsigned char)b->message[i] >= 0x80;
		sb_printf(&m, "Content-Description: Undelivered message\r\n"
			  "Content-Type: %s\r\n%s\r\n",
			  b->message_global ? "message/global" : "message/rfc822",
			  eight ? "Content-Transfer-Encoding: 8bit\r\n" : "");
		sb_add(&m, b->message, b->message_len);
		/* the boundary's CRLF must not be taken for the message's */
		if (b->message_len < 2 ||
		    memcmp(b->message + b->message_len - 2, "\r\n", 2))
			sb_str(&m, "\r\n");
	} else {
		sb_printf(&m, "Content-Description: %s message headers\r\n"
			  "Content-Type: text/rfc822-headers\r\n\r\n",
			  b->relayed ? "Relayed" : "Undelivered");
		if (hdrs.len)
			sb_add(&m, hdrs.p, hdrs.len);
	}
	sb_printf(&m, "\r\n--%s--\r\n", boundary);
	if (m.oom)
		goto out;
	*out = m.p;
	*outlen = m.len;
	m.p = NULL;
	ret = 0;
out:
	free(m.p);
	free(text.p);
	free(dsn.p);
	free(hdrs.p);
	free(host);
	return ret;
}
