// SPDX-License-Identifier: GPL-2.0
/*
 * SMTP reply parser: see dd_reply.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dd_reply.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

void dd_reply_init(struct dd_reply_parser *p, dd_reply_line_fn *fn, void *arg)
{
	p->line_fn = fn;
	p->arg = arg;
	p->line = NULL;
	p->cap = 0;
	dd_reply_reset(p);
}

void dd_reply_free(struct dd_reply_parser *p)
{
	free(p->line);
	p->line = NULL;
	p->cap = 0;
	p->len = 0;
}

void dd_reply_reset(struct dd_reply_parser *p)
{
	p->err = NULL;
	p->nlines = 0;
	p->tlen = 0;
	memset(&p->cur, 0, sizeof(p->cur));
	dd_reply_free(p);
}

size_t dd_reply_enh(const char *s, size_t len, int code, char enh[16])
{
	size_t i = 0, n;
	int part;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
		return 0;
	if (code && s[0] - '0' != code / 100)
		return 0;
	i = 1;
	for (part = 0; part < 2; part++) {
		if (i >= len || s[i] != '.')
			return 0;
		i++;
		for (n = 0; i < len && is_digit(s[i]); i++, n++)
			;
		if (n < 1 || n > 3)
			return 0;
	}
	if (i < len && s[i] != ' ')
		return 0;
	memcpy(enh, s, i);	/* at most 1 + 2 * 4 = 9 bytes */
	enh[i] = '\0';
	return i;
}

/* Append s[0..len) to the reply's text, sanitised, space-separated. */
static void text_add(struct dd_smtp_reply *r, size_t *tlen, const char *s,
		     size_t len)
{
	size_t room, i;

	while (len && s[len - 1] == ' ')
		len--;
	while (len && *s == ' ') {
		s++;
		len--;
	}
	if (!len)
		return;
	if (*tlen) {
		if (*tlen + 1 >= sizeof(r->text))
			return;
		r->text[(*tlen)++] = ' ';
	}
	room = sizeof(r->text) - 1 - *tlen;
	if (len > room)
		len = room;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		r->text[(*tlen)++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	r->text[*tlen] = '\0';
}

/* One complete line l (LF removed): 1 if the reply ends. */
static int line_done(struct dd_reply_parser *p, const char *l, size_t len)
{
	const char *text;
	char enh[16];
	size_t tlen, n;
	int code;
	char sep;

	if (len && l[len - 1] == '\r')
		len--;
	if (len < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]) ||
	    l[0] < '2' || l[0] > '5' || l[1] > '5') {
		p->err = "malformed reply line";
		return -EPROTO;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	sep = len > 3 ? l[3] : ' ';
	if (sep != ' ' && sep != '-') {
		p->err = "malformed reply line";
		return -EPROTO;
	}
	if (p->nlines && code != p->cur.code) {
		p->err = "reply code changed within a multiline reply";
		return -EPROTO;
	}
	text = len > 4 ? l + 4 : l + len;
	tlen = len > 4 ? len - 4 : 0;

	if (p->line_fn)
		p->line_fn(p->arg, code, p->nlines, text, tlen);

	if (!p->nlines) {
		p->cur.code = code;
		p->cur.enh[0] = '\0';
		p->cur.text[0] = '\0';
		p->tlen = 0;
		n = dd_reply_enh(text, tlen, code, p->cur.enh);
	} else {
		n = dd_reply_enh(text, tlen, code, enh);
	}
	text_add(&p->cur, &p->tlen, text + n, tlen - n);
	p->nlines++;
	return sep == '-' ? 0 : 1;
}

int dd_reply_parse(struct dd_reply_parser *p, const void *buf, size_t len,
		   size_t *used, struct dd_smtp_reply *r)
{
	const char *b = buf;
	size_t i = 0;
	int ret;

	*used = 0;
	if (p->err)
		return -EPROTO;
	while (i < len) {
		const char *nl = memchr(b + i, '\n', len - i);
		size_t chunk = nl ? (size_t)(nl - (b + i)) : len - i;

		/* The line with its LF must fit DD_REPLY_LINE_MAX. */
		if (p->len + chunk + 1 > DD_REPLY_LINE_MAX) {
			*used = i + (DD_REPLY_LINE_MAX - p->len);
			p->err = "reply line too long";
			return -EPROTO;
		}
		if (!p->len && nl) {
			/* The whole line is here: no copy. */
			ret = line_done(p, b + i, chunk);
			i += chunk + 1;
		} else {
			if (p->len + chunk > p->cap) {
				size_t cap = p->cap ? p->cap * 2 : 256;
				char *q;

				while (cap < p->len + chunk)
					cap *= 2;
				q = realloc(p->line, cap);
				if (!q) {
					*used = i;
					p->err = "out of memory";
					return -ENOMEM;
				}
				p->line = q;
				p->cap = cap;
			}
			memcpy(p->line + p->len, b + i, chunk);
			p->len += chunk;
			i += chunk;
			if (!nl)
				break;
			i++;	/* the LF */
			ret = line_done(p, p->line, p->len);
			dd_reply_free(p);
		}
		if (ret < 0) {
			*used = i;
			return ret;
		}
		if (ret) {
			*r = p->cur;
			p->nlines = 0;
			*used = i;
			return 1;
		}
	}
	*used = i;
	return 0;
}

void dd_reply_set(struct dd_smtp_reply *r, int code, const char *enh,
		  const char *fmt, ...)
{
	char tmp[sizeof(r->text)];
	size_t tlen = 0;
	va_list ap;
	int n;

	r->code = code;
	snprintf(r->enh, sizeof(r->enh), "%s", enh ? enh : "");
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	r->text[0] = '\0';
	if (n > 0)
		text_add(r, &tlen, tmp, strlen(tmp));
}

size_t dd_reply_format(const struct dd_smtp_reply *r, char *buf, size_t len)
{
	int n;

	if (!r->code)
		n = snprintf(buf, len, "%s", r->text);
	else if (r->enh[0])
		n = snprintf(buf, len, "%03d %s %s", r->code, r->enh, r->text);
	else
		n = snprintf(buf, len, "%03d %s", r->code, r->text);
	return n < 0 ? 0 : (size_t)n;
}
