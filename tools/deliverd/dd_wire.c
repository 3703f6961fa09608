// SPDX-License-Identifier: GPL-2.0
/*
 * Wire-format helpers: see dd_wire.h.
 */
#include "dd_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- struct dd_buf --- */

void dd_buf_free(struct dd_buf *b)
{
	free(b->p);
	dd_buf_init(b);
}

int dd_buf_reserve(struct dd_buf *b, size_t more)
{
	size_t need, cap;
	char *p;

	if (more > SIZE_MAX - 1 - b->len)
		return -ENOMEM;
	need = b->len + more + 1;
	if (b->p && need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	if (!b->p)
		p[0] = '\0';
	b->p = p;
	b->cap = cap;
	return 0;
}

int dd_buf_add(struct dd_buf *b, const void *data, size_t n)
{
	if (dd_buf_reserve(b, n))
		return -ENOMEM;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int dd_buf_addc(struct dd_buf *b, char c)
{
	return dd_buf_add(b, &c, 1);
}

int dd_buf_adds(struct dd_buf *b, const char *s)
{
	return dd_buf_add(b, s, strlen(s));
}

int dd_buf_addf(struct dd_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || dd_buf_reserve(b, (size_t)n))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void dd_buf_drop(struct dd_buf *b, size_t n)
{
	if (!n)
		return;
	if (n >= b->len) {
		dd_buf_truncate(b, 0);
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	b->p[b->len] = '\0';
}

void dd_buf_truncate(struct dd_buf *b, size_t n)
{
	if (n > b->len)
		return;
	b->len = n;
	if (b->p)
		b->p[n] = '\0';
}

char *dd_buf_detach(struct dd_buf *b, size_t *len)
{
	char *p;

	if (!b->p && dd_buf_reserve(b, 0))
		return NULL;
	p = b->p;
	if (len)
		*len = b->len;
	dd_buf_init(b);
	return p;
}

int dd_strv_add(struct dd_strv *sv, const char *s, size_t len)
{
	char *c;

	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 8;
		char **v = realloc(sv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		sv->v = v;
		sv->cap = cap;
	}
	c = malloc(len + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, s, len);
	c[len] = '\0';
	sv->v[sv->n++] = c;
	return 0;
}

void dd_strv_free(struct dd_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

/* --- RFC 5321 addresses --- */

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Octets of the well-formed UTF-8 sequence of a non-ASCII character at
 * s (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF), 0 if
 * there is none.  RFC 6531 allows these in addresses (UTF8-non-ascii).
 */
static size_t utf8_char(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (!len || u[0] < 0xc2 || u[0] > 0xf4)
		return 0;
	n = u[0] < 0xe0 ? 2 : u[0] < 0xf0 ? 3 : 4;
	if (u[0] == 0xe0)
		lo = 0xa0;
	else if (u[0] == 0xed)
		hi = 0x9f;
	else if (u[0] == 0xf0)
		lo = 0x90;
	else if (u[0] == 0xf4)
		hi = 0x8f;
	if (len < n || u[1] < lo || u[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (u[i] < 0x80 || u[i] > 0xbf)
			return 0;
	return n;
}

bool dd_wire_utf8_ok(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = (unsigned char)s[i] < 0x80 ? 1 :
			   utf8_char(s + i, len - i);

		if (!n)
			return false;
		i += n;
	}
	return true;
}

/* Length of a Quoted-string at s (s[0] == '"'), 0 if malformed. */
static size_t quoted_len(const char *s, size_t len, bool utf8)
{
	size_t i = 1;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= len || (unsigned char)s[i + 1] < 32 ||
			    (unsigned char)s[i + 1] > 126)
				return 0;
			i += 2;
			continue;
		}
		if (c > 126 && utf8) {
			size_t n = utf8_char(s + i, len - i);

			if (!n)
				return 0;
			i += n;
			continue;
		}
		/* qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
		if (c < 32 || c > 126)
			return 0;
		i++;
	}
	return 0;
}

/* Length of a local part at s (up to the '@' or the end), 0 if bad. */
static size_t local_len(const char *s, size_t len, bool utf8)
{
	size_t i = 0;

	if (len && s[0] == '"')
		return quoted_len(s, len, utf8);
	for (;;) {
		size_t start = i;

		for (;;) {
			size_t n = 0;

			if (i < len && is_atext((unsigned char)s[i]))
				n = 1;
			else if (i < len && utf8)
				n = utf8_char(s + i, len - i);
			if (!n)
				break;
			i += n;
		}
		if (i == start)
			return 0;	/* empty atom: leading, trailing or double dot */
		if (i < len && s[i] == '.') {
			i++;
			continue;
		}
		return i;
	}
}

static bool addr_literal_ok(const char *d, size_t len)
{
	char tmp[64];
	unsigned char bin[16];

	/* inet_pton() would stop at a NUL and let what follows it through. */
	if (len < 3 || d[0] != '[' || d[len - 1] != ']' || len - 2 >= sizeof(tmp) ||
	    memchr(d + 1, '\0', len - 2))
		return false;
	memcpy(tmp, d + 1, len - 2);
	tmp[len - 2] = '\0';
	if (!strncasecmp(tmp, "IPv6:", 5))
		return inet_pton(AF_INET6, tmp + 5, bin) == 1;
	for (size_t i = 0; tmp[i]; i++)
		if (!is_digit((unsigned char)tmp[i]) && tmp[i] != '.')
			return false;
	return inet_pton(AF_INET, tmp, bin) == 1;
}

/* utf8: labels may hold UTF-8 characters too (RFC 6531 U-labels, as given). */
static bool domain_ok(const char *d, size_t len, bool utf8)
{
	size_t i = 0;

	if (len == 0 || len > DD_DOMAIN_MAX)
		return false;
	if (d[0] == '[')
		return addr_literal_ok(d, len);
	while (i < len) {
		size_t start = i;

		for (;;) {
			size_t n = 0;

			if (i < len && (is_alpha((unsigned char)d[i]) ||
					is_digit((unsigned char)d[i]) ||
					d[i] == '-'))
				n = 1;
			else if (i < len && utf8)
				n = utf8_char(d + i, len - i);
			if (!n)
				break;
			i += n;
		}
		if (i == start || i - start > 63 || d[start] == '-' || d[i - 1] == '-')
			return false;
		if (i == len)
			return true;
		if (d[i] != '.' || i + 1 == len)
			return false;
		i++;
	}
	return false;
}

bool dd_wire_domain_ok(const char *d, size_t len)
{
	return domain_ok(d, len, false);
}

int dd_wire_addr_check(const char *s, size_t len, unsigned int flags)
{
	bool utf8 = flags & DD_PATH_UTF8;
	size_t l;

	if (len == 0)
		return (flags & DD_PATH_NULL) ? 0 : -EINVAL;
	if (len > DD_WIRE_ADDR_LEN)
		return -ENAMETOOLONG;
	l = local_len(s, len, utf8);
	if (!l)
		return -EINVAL;
	if (l > 64)
		return -ENAMETOOLONG;
	if (l == len)
		return (flags & DD_PATH_NODOMAIN) ? 0 : -EDESTADDRREQ;
	if (s[l] != '@')
		return -EINVAL;
	if (len - l - 1 > DD_DOMAIN_MAX)
		return -ENAMETOOLONG;
	/* a label over 63 octets counts as bad syntax */
	return domain_ok(s + l + 1, len - l - 1, utf8) ? 0 : -EINVAL;
}

int dd_wire_path(const char *s, size_t len, unsigned int flags, char *out,
		 const char **rest)
{
	size_t i, end;
	int err;

	out[0] = '\0';
	if (len < 2 || s[0] != '<')
		return -EINVAL;
	/* find the closing '>', skipping a quoted local part */
	i = 1;
	if (s[1] == '"') {
		size_t q = quoted_len(s + 1, len - 1, flags & DD_PATH_UTF8);

		if (!q)
			return -EINVAL;
		i = 1 + q;
	}
	while (i < len && s[i] != '>') {
		if (s[i] == '<' || (unsigned char)s[i] <= ' ' ||
		    ((unsigned char)s[i] > 126 && !(flags & DD_PATH_UTF8)))
			return -EINVAL;
		i++;
	}
	if (i >= len)
		return -EINVAL;
	end = i;
	if (end + 1 > DD_ADDR_MAX)
		return -ENAMETOOLONG;
	if (end > 1 && s[1] == '@')
		return -EOPNOTSUPP;
	err = dd_wire_addr_check(s + 1, end - 1, flags);
	if (err)
		return err;
	memcpy(out, s + 1, end - 1);
	out[end - 1] = '\0';
	if (rest)
		*rest = s + end + 1;
	return 0;
}

static bool is_keychar(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-';
}

int dd_wire_params(const char *s, size_t len, struct dd_wire_param *p,
		   unsigned int max)
{
	unsigned int n = 0;
	size_t i = 0;

	for (;;) {
		size_t k;

		if (i < len && s[i] != ' ')
			return -EINVAL;	/* parameters must be SP-separated */
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			return (int)n;
		k = i;
		if (!is_alpha((unsigned char)s[i]) && !is_digit((unsigned char)s[i]))
			return -EINVAL;
		while (i < len && is_keychar((unsigned char)s[i]))
			i++;
		if (n == max)
			return -E2BIG;
		p[n].kw = s + k;
		p[n].kwlen = i - k;
		p[n].val = NULL;
		p[n].vallen = 0;
		if (i < len && s[i] == '=') {
			size_t v = ++i;

			/* esmtp-value: %d33-60 / %d62-126 */
			while (i < len && (unsigned char)s[i] >= 33 &&
			       (unsigned char)s[i] <= 126 && s[i] != '=')
				i++;
			if (i == v)
				return -EINVAL;
			p[n].val = s + v;
			p[n].vallen = i - v;
		}
		n++;
	}
}

bool dd_wire_param_is(const struct dd_wire_param *p, const char *kw)
{
	return strlen(kw) == p->kwlen && !strncasecmp(p->kw, kw, p->kwlen);
}

/* --- bodies --- */

int dd_wire_crlf(struct dd_buf *out, const void *in, size_t len)
{
	const char *s = in, *end = s + len;
	bool cr = out->len && out->p[out->len - 1] == '\r';

	while (s < end) {
		const char *lf = memchr(s, '\n', (size_t)(end - s));
		size_t n = lf ? (size_t)(lf - s) : (size_t)(end - s);

		if (dd_buf_add(out, s, n))
			return -ENOMEM;
		if (n)
			cr = s[n - 1] == '\r';
		if (!lf)
			break;
		if (cr ? dd_buf_addc(out, '\n') : dd_buf_add(out, "\r\n", 2))
			return -ENOMEM;
		cr = false;
		s = lf + 1;
	}
	return 0;
}

int dd_wire_end_crlf(struct dd_buf *out)
{
	if (!out->len)
		return 0;
	if (out->p[out->len - 1] == '\n') {
		if (out->len >= 2 && out->p[out->len - 2] == '\r')
			return 0;
		/* a bare LF at the end: make it CRLF */
		out->len--;
		return dd_buf_add(out, "\r\n", 2);
	}
	if (out->p[out->len - 1] == '\r')
		return dd_buf_addc(out, '\n');
	return dd_buf_add(out, "\r\n", 2);
}

size_t dd_wire_stuff_count(const void *in, size_t len)
{
	const char *s = in, *end = s + len;
	size_t n = 0;

	if (len && s[0] == '.')
		n++;
	while (s < end) {
		const char *lf = memchr(s, '\n', (size_t)(end - s));

		if (!lf)
			break;
		s = lf + 1;
		if (s < end && *s == '.')
			n++;
	}
	return n;
}

int dd_wire_stuff(struct dd_buf *out, const void *in, size_t len)
{
	const char *s = in, *end = s + len;

	if (dd_buf_reserve(out, len + dd_wire_stuff_count(in, len)))
		return -ENOMEM;
	while (s < end) {
		const char *lf = memchr(s, '\n', (size_t)(end - s));
		size_t n = lf ? (size_t)(lf - s) + 1 : (size_t)(end - s);

		if (*s == '.' && dd_buf_addc(out, '.'))
			return -ENOMEM;
		if (dd_buf_add(out, s, n))
			return -ENOMEM;
		s += n;
	}
	return 0;
}

int dd_wire_unstuff(struct dd_buf *out, const void *in, size_t len)
{
	const char *s = in, *end = s + len;

	if (dd_buf_reserve(out, len))
		return -ENOMEM;
	while (s < end) {
		const char *lf = memchr(s, '\n', (size_t)(end - s));
		size_t n = lf ? (size_t)(lf - s) + 1 : (size_t)(end - s);

		if (*s == '.') {
			s++;
			n--;
		}
		if (dd_buf_add(out, s, n))
			return -ENOMEM;
		s += n;
	}
	return 0;
}

/* --- headers --- */

/* End of the line starting at i (after its LF, or len). */
static size_t line_end(const char *p, size_t len, size_t i)
{
	const char *lf = memchr(p + i, '\n', len - i);

	return lf ? (size_t)(lf - p) + 1 : len;
}

/* Does the line p[i..e) hold only a line end? */
static bool line_empty(const char *p, size_t i, size_t e)
{
	return e == i || (p[i] == '\n') || (p[i] == '\r' && e - i == 2 && p[i + 1] == '\n') ||
	       (p[i] == '\r' && e - i == 1);
}

/* Is the line starting at i "name:" with a valid field name? */
static bool line_is_field(const char *p, size_t i, size_t e)
{
	size_t j = i;

	/* ftext: %d33-57 / %d59-126; obsolete WSP before the ':' allowed */
	while (j < e && (unsigned char)p[j] >= 33 && (unsigned char)p[j] <= 126 &&
	       p[j] != ':')
		j++;
	if (j == i)
		return false;
	while (j < e && is_wsp((unsigned char)p[j]))
		j++;
	return j < e && p[j] == ':';
}

size_t dd_wire_header_end(const char *msg, size_t len, size_t *body)
{
	size_t i = 0, hdr = 0;

	while (i < len) {
		size_t e = line_end(msg, len, i);

		if (line_empty(msg, i, e)) {
			if (body)
				*body = e;
			return hdr;
		}
		if (is_wsp((unsigned char)msg[i]) ? i == 0 : !line_is_field(msg, i, e))
			break;
		hdr = e;
		i = e;
	}
	if (body)
		*body = i < len ? i : len;
	return hdr;
}

int dd_wire_header_next(const char *hdr, size_t len, size_t *pos,
			struct dd_wire_field *f)
{
	size_t i = *pos;

	while (i < len) {
		size_t e = line_end(hdr, len, i), start = i, n, vend;

		/* the field goes on while the next lines start with WSP */
		while (e < len && is_wsp((unsigned char)hdr[e]))
			e = line_end(hdr, len, e);
		*pos = e;
		if (!line_is_field(hdr, start, e)) {
			i = e;
			continue;
		}
		n = start;
		while (hdr[n] != ':' && !is_wsp((unsigned char)hdr[n]))
			n++;
		f->name = hdr + start;
		f->namelen = n - start;
		while (hdr[n] != ':')
			n++;
		n++;
		vend = e;
		if (vend > n && hdr[vend - 1] == '\n')
			vend--;
		if (vend > n && hdr[vend - 1] == '\r')
			vend--;
		f->value = hdr + n;
		f->valuelen = vend - n;
		f->raw = hdr + start;
		f->rawlen = e - start;
		return 1;
	}
	*pos = len;
	return 0;
}

bool dd_wire_field_is(const struct dd_wire_field *f, const char *name)
{
	return strlen(name) == f->namelen && !strncasecmp(f->name, name, f->namelen);
}

int dd_wire_unfold(struct dd_buf *out, const char *value, size_t len)
{
	size_t i = 0, start = out->len;

	while (i < len && is_wsp((unsigned char)value[i]))
		i++;
	for (; i < len; i++) {
		char c = value[i];

		if (c == '\r' && i + 1 < len && value[i + 1] == '\n')
			continue;
		if (c == '\n')
			continue;
		if (dd_buf_addc(out, c))
			return -ENOMEM;
	}
	while (out->len > start && is_wsp((unsigned char)out->p[out->len - 1]))
		dd_buf_truncate(out, out->len - 1);
	return 0;
}

/* Skip a comment at v[i] == '(' (nested, with quoted-pairs); returns the index after it. */
static size_t skip_comment(const char *v, size_t len, size_t i)
{
	int depth = 0;

	for (; i < len; i++) {
		if (v[i] == '\\') {
			i++;
			continue;
		}
		if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && --depth == 0)
			return i + 1;
	}
	return len;
}

struct addr_elem {
	struct dd_buf bare;	/* addr-spec outside <>, or the display name */
	struct dd_buf angle;	/* inside <> */
	bool has_angle;
};

static int emit_elem(struct addr_elem *e, unsigned int flags,
		     struct dd_strv *good, struct dd_strv *bad)
{
	const char *a = e->has_angle ? e->angle.p : e->bare.p;
	size_t n = e->has_angle ? e->angle.len : e->bare.len;
	int ret = 0;

	if (!e->has_angle && n) {
		/* words of an addr-spec: drop the spaces around '.' and '@' */
		char *b = e->bare.p;
		size_t k = 0;

		for (size_t j = 0; j < n; j++) {
			if (b[j] == ' ' && (k == 0 || j + 1 == n || b[k - 1] == '.' ||
					    b[k - 1] == '@' || b[j + 1] == '.' ||
					    b[j + 1] == '@'))
				continue;
			b[k++] = b[j];
		}
		n = k;
	}
	if (a && e->has_angle && n && a[0] == '@') {
		/* obs-route "@a,@b:" before the addr-spec: drop it */
		const char *colon = memchr(a, ':', n);

		if (colon) {
			n -= (size_t)(colon + 1 - a);
			a = colon + 1;
		}
	}
	if (a && n) {
		if (dd_wire_addr_check(a, n, flags & ~DD_PATH_NULL) == 0)
			ret = dd_strv_add(good, a, n);
		else if (bad)
			ret = dd_strv_add(bad, a, n);
	}
	dd_buf_clear(&e->bare);
	dd_buf_clear(&e->angle);
	e->has_angle = false;
	return ret;
}

int dd_wire_addr_list(const char *v, size_t len, unsigned int flags,
		      struct dd_strv *good, struct dd_strv *bad)
{
	struct addr_elem e = { DD_BUF_INIT, DD_BUF_INIT, false };
	bool in_angle = false;
	size_t i = 0;
	int ret = 0;

	while (i < len && !ret) {
		char c = v[i];
		struct dd_buf *t = in_angle ? &e.angle : &e.bare;

		if (c == '(') {
			i = skip_comment(v, len, i);
		} else if (c == '"') {
			size_t j = i + 1;

			while (j < len && v[j] != '"')
				j += v[j] == '\\' ? 2 : 1;
			if (j >= len)
				j = len - 1;
			ret = dd_buf_add(t, v + i, j - i + 1);
			i = j + 1;
		} else if (c == '[') {
			const char *rb = memchr(v + i, ']', len - i);
			size_t j = rb ? (size_t)(rb - v) : len - 1;

			/* domain literal: copy without its whitespace */
			for (; i <= j && !ret; i++)
				if (!is_wsp((unsigned char)v[i]) && v[i] != '\r' && v[i] != '\n')
					ret = dd_buf_addc(t, v[i]);
		} else if (c == '<' && !in_angle) {
			in_angle = true;
			e.has_angle = true;
			dd_buf_clear(&e.angle);
			i++;
		} else if (c == '>' && in_angle) {
			in_angle = false;
			i++;
		} else if (c == ',' && !in_angle) {
			ret = emit_elem(&e, flags, good, bad);
			i++;
		} else if (c == ':' && !in_angle) {
			/* group: what came before was its display name */
			dd_buf_clear(&e.bare);
			i++;
		} else if (c == ';' && !in_angle) {
			ret = emit_elem(&e, flags, good, bad);
			i++;
		} else if (is_wsp((unsigned char)c) || c == '\r' || c == '\n') {
			/* keep one space between words outside <> (see emit_elem) */
			if (!in_angle && e.bare.len && e.bare.p[e.bare.len - 1] != ' ')
				ret = dd_buf_addc(&e.bare, ' ');
			i++;
		} else {
			ret = dd_buf_addc(t, c);
			i++;
		}
	}
	if (!ret)
		ret = emit_elem(&e, flags, good, bad);
	dd_buf_free(&e.bare);
	dd_buf_free(&e.angle);
	return ret;
}

static int header_rcpts_pass(const char *hdr, size_t hlen, bool resent,
			     unsigned int flags, struct dd_strv *good,
			     struct dd_strv *bad, bool *found)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const rs[] = { "Resent-To", "Resent-Cc", "Resent-Bcc" };
	const char *const *names = resent ? rs : plain;
	struct dd_wire_field f;
	size_t pos = 0;

	while (dd_wire_header_next(hdr, hlen, &pos, &f) == 1) {
		for (int k = 0; k < 3; k++) {
			if (!dd_wire_field_is(&f, names[k]))
				continue;
			*found = true;
			if (good && dd_wire_addr_list(f.value, f.valuelen, flags,
						      good, bad))
				return -ENOMEM;
		}
	}
	return 0;
}

int dd_wire_header_rcpts(const char *msg, size_t len, unsigned int flags,
			 struct dd_strv *good, struct dd_strv *bad)
{
	size_t hlen = dd_wire_header_end(msg, len, NULL);
	bool resent = false, any = false;

	if (header_rcpts_pass(msg, hlen, true, flags, NULL, NULL, &resent))
		return -ENOMEM;
	return header_rcpts_pass(msg, hlen, resent, flags, good, bad, &any);
}

int dd_wire_header_remove(struct dd_buf *out, const char *msg, size_t len,
			  const char *const *names)
{
	size_t hlen = dd_wire_header_end(msg, len, NULL), pos = 0, copied = 0;
	struct dd_wire_field f;

	while (dd_wire_header_next(msg, hlen, &pos, &f) == 1) {
		bool drop = false;

		for (size_t k = 0; names[k]; k++)
			drop = drop || dd_wire_field_is(&f, names[k]);
		if (!drop)
			continue;
		/* copy what precedes this field, skip the field */
		if (dd_buf_add(out, msg + copied, (size_t)(f.raw - msg) - copied))
			return -ENOMEM;
		copied = (size_t)(f.raw - msg) + f.rawlen;
	}
	return dd_buf_add(out, msg + copied, len - copied);
}

size_t dd_wire_date(char *buf, size_t sz, time_t t)
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm tm;
	long off;
	int n;

	if (!localtime_r(&t, &tm)) {
		gmtime_r(&t, &tm);
		tm.tm_gmtoff = 0;
	}
	off = tm.tm_gmtoff / 60;
	n = snprintf(buf, sz, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
		     days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
		     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
	if (n < 0)
		return 0;
	return (size_t)n < sz ? (size_t)n : sz - 1;
}
