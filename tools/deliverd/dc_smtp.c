// SPDX-License-Identifier: GPL-2.0
/*
 * deliverctl's SMTP client: blocking from the caller's view, but the
 * socket is non-blocking and every write also reads, so a long pipelined
 * batch cannot deadlock against a server whose replies we are not yet
 * reading.
 */
#define _GNU_SOURCE
#include "dc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- buffers ---- */

void *dc_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fputs("deliverctl: out of memory\n", stderr);
		exit(EX_OSERR);
	}
	return p;
}

void *dc_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs("deliverctl: out of memory\n", stderr);
		exit(EX_OSERR);
	}
	return p;
}

void dc_strlcpy(char *dst, const char *src, size_t len)
{
	size_t n = strlen(src);

	if (!len)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

char *dc_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(dc_xmalloc(n), s, n);
}

static void buf_ok(int err)
{
	if (err) {
		fputs("deliverctl: out of memory\n", stderr);
		exit(EX_OSERR);
	}
}

void dc_buf_add(struct dd_buf *b, const void *p, size_t n)
{
	buf_ok(dd_buf_add(b, p, n));
}

void dc_buf_adds(struct dd_buf *b, const char *s)
{
	buf_ok(dd_buf_adds(b, s));
}

void dc_buf_addc(struct dd_buf *b, char c)
{
	buf_ok(dd_buf_addc(b, c));
}

void dc_buf_printf(struct dd_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_ok(dd_buf_reserve(b, (size_t)n));
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *dc_buf_str(struct dd_buf *b)
{
	buf_ok(dd_buf_reserve(b, 0));
	b->p[b->len] = 0;
	return b->p;
}

void dc_buf_free(struct dd_buf *b)
{
	dd_buf_free(b);
}

/* ---- connection ---- */

static int connect_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return -EX_USAGE;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -EX_OSERR;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	e = errno;
	close(fd);
	snprintf(err, errlen, "connect %s: %s%s", path, strerror(e),
		 e == ENOENT || e == ECONNREFUSED ? " (is deliverd running?)" : "");
	return e == EACCES || e == EPERM ? -EX_NOPERM : -EX_UNAVAILABLE;
}

static int connect_tcp(const char *where, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	char host[256];
	const char *port, *h = where;
	size_t hl;
	int fd = -1, e = 0, r;

	if (*h == '[') {
		port = strchr(h, ']');
		if (!port || port[1] != ':')
			goto bad;
		h++;
		hl = (size_t)(port - h);
		port += 2;
	} else {
		port = strrchr(h, ':');
		if (!port)
			goto bad;
		hl = (size_t)(port - h);
		port++;
	}
	if (hl >= sizeof(host) || !*port)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = 0;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r) {
		snprintf(err, errlen, "%s: %s", where, gai_strerror(r));
		return -EX_NOHOST;
	}
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "connect %s: %s", where, strerror(e));
		return -EX_UNAVAILABLE;
	}
	return fd;
bad:
	snprintf(err, errlen, "%s: not a socket path or host:port", where);
	return -EX_USAGE;
}

int dc_connect(struct dc_conn *c, const char *where, char *err, size_t errlen)
{
	int fd;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = 600000;
	if (!where || !*where) {
		snprintf(err, errlen, "no control socket");
		return EX_USAGE;
	}
	if (where[0] == '/' || where[0] == '.' || !strchr(where, ':'))
		fd = connect_unix(where, err, errlen);
	else
		fd = connect_tcp(where, err, errlen);
	if (fd < 0)
		return -fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	return 0;
}

void dc_conn_close(struct dc_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	dc_buf_free(&c->out);
	dc_buf_free(&c->in);
	c->roff = 0;
}

void dc_reply_free(struct dc_reply *r)
{
	dc_buf_free(&r->all);
}

#define DC_LINE_MAX	65536	/* a reply line longer than this is garbage */

/* Read what is there into c->in, which grows; 1 got some (or none yet), 0 EOF/error. */
static int fill(struct dc_conn *c)
{
	ssize_t n;

	if (c->roff && c->roff == c->in.len) {
		c->in.len = c->roff = 0;
	} else if (c->roff > c->in.cap / 2) {
		memmove(c->in.p, c->in.p + c->roff, c->in.len - c->roff);
		c->in.len -= c->roff;
		c->roff = 0;
	}
	if (c->in.cap - c->in.len < 16384)
		buf_ok(dd_buf_reserve(&c->in, 16384));
	n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
	if (n > 0) {
		c->in.len += (size_t)n;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	return 0;
}

/*
 * Write c->out, reading meanwhile (replies pile up in c->in, however
 * many), so a server that answers before it reads on cannot deadlock
 * us.  0, or -1 if the connection is gone.
 */
static int flush(struct dc_conn *c)
{
	size_t off = 0;

	while (off < c->out.len) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT | POLLIN };
		ssize_t n;
		int r;

		r = poll(&pfd, 1, (int)c->timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto lost;
		if ((pfd.revents & POLLIN) && !fill(c))
			goto lost;
		if (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) {
			n = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0)
				goto lost;
			off += (size_t)n;
		}
	}
	c->out.len = 0;
	return 0;
lost:
	c->out.len = 0;
	return -1;
}

/* One line (without CRLF) in *line; 1, 0 lost, -1 too long. */
static int read_line(struct dc_conn *c, char **line, size_t *len)
{
	for (;;) {
		char *s = c->in.p + c->roff;
		char *nl = c->in.len > c->roff ? memchr(s, '\n', c->in.len - c->roff) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - s);

			c->roff += n + 1;
			if (n && s[n - 1] == '\r')
				n--;
			s[n] = 0;
			*line = s;
			*len = n;
			return 1;
		}
		if (c->in.len - c->roff > DC_LINE_MAX)
			return -1;

		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)c->timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		if (!fill(c))
			return 0;
	}
}

static void printable(char *dst, size_t dlen, const char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < dlen; i++)
		dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	dst[o] = 0;
}

/* A whole (multi-line) reply.  Returns its code, 0 lost, -1 garbled. */
static int read_reply(struct dc_conn *c, struct dc_reply *r)
{
	int code = 0;
	bool first = true;

	r->code = 0;
	r->all.len = 0;
	snprintf(r->text, sizeof(r->text), "connection lost");
	for (;;) {
		char *line;
		size_t len;
		int n = read_line(c, &line, &len), lc;

		if (n <= 0) {
			if (n < 0)
				snprintf(r->text, sizeof(r->text), "reply line too long");
			r->code = n;
			return n;
		}
		if (len < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			printable(r->text, sizeof(r->text), line, len);
			r->code = -1;
			return -1;
		}
		lc = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (first)
			code = lc;
		else if (lc != code) {
			snprintf(r->text, sizeof(r->text), "reply codes differ: %d, %d", code, lc);
			r->code = -1;
			return -1;
		}
		if (first) {
			if (len > 4)
				printable(r->text, sizeof(r->text), line + 4, len - 4);
			else
				r->text[0] = 0;
			first = false;
		}
		if (len > 4)
			dc_buf_add(&r->all, line + 4, len - 4);
		dc_buf_addc(&r->all, '\n');
		if (len == 3 || line[3] == ' ') {
			dc_buf_str(&r->all);
			r->code = code;
			return code;
		}
	}
}

int dc_smtp_command(struct dc_conn *c, const char *cmd, struct dc_reply *r)
{
	dc_buf_adds(&c->out, cmd);
	dc_buf_add(&c->out, "\r\n", 2);
	if (flush(c)) {
		r->code = 0;
		snprintf(r->text, sizeof(r->text), "connection lost");
		return 0;
	}
	return read_reply(c, r);
}

int dc_smtp_hello(struct dc_conn *c, const char *helo, char *err, size_t errlen)
{
	struct dc_reply r = { 0 };
	char cmd[300];
	int code;
	const char *p;

	code = read_reply(c, &r);
	if (code != 220) {
		if (code > 0)
			snprintf(err, errlen, "greeting: %d %s", code, r.text);
		else
			snprintf(err, errlen, "greeting: %s", r.text);
		dc_reply_free(&r);
		return code >= 400 && code < 500 ? EX_TEMPFAIL : EX_UNAVAILABLE;
	}
	snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
	code = dc_smtp_command(c, cmd, &r);
	if (code >= 500) {
		snprintf(cmd, sizeof(cmd), "HELO %s", helo);
		code = dc_smtp_command(c, cmd, &r);
	} else if (code / 100 == 2) {
		/* Every line after the first is a keyword and its parameters. */
		p = strchr(dc_buf_str(&r.all), '\n');
		while (p && *++p) {
			const char *e = strchr(p, '\n');
			size_t n = (size_t)(e - p), k = strcspn(p, " \n");

#define KW(s) (k == sizeof(s) - 1 && !strncasecmp(p, s, k))
			if (KW("PIPELINING"))
				c->ext |= DC_EXT_PIPELINING;
			else if (KW("CHUNKING"))
				c->ext |= DC_EXT_CHUNKING;
			else if (KW("8BITMIME"))
				c->ext |= DC_EXT_8BITMIME;
			else if (KW("ENHANCEDSTATUSCODES"))
				c->ext |= DC_EXT_ENHANCED;
			else if (KW("SIZE")) {
				c->ext |= DC_EXT_SIZE;
				if (n > k)
					c->size_max = strtoull(p + k + 1, NULL, 10);
			}
#undef KW
			p = e;
		}
	}
	if (code / 100 != 2) {
		snprintf(err, errlen, "EHLO/HELO: %d %s", code, r.text);
		dc_reply_free(&r);
		return code >= 400 && code < 500 ? EX_TEMPFAIL :
		       code <= 0 ? EX_TEMPFAIL : EX_UNAVAILABLE;
	}
	dc_reply_free(&r);
	return 0;
}

void dc_smtp_quit(struct dc_conn *c)
{
	struct dc_reply r = { 0 };

	if (c->fd >= 0) {
		c->timeout_ms = 5000;
		dc_smtp_command(c, "QUIT", &r);
		dc_reply_free(&r);
	}
	dc_conn_close(c);
}

int dc_exit_for(int code)
{
	if (code >= 200 && code < 400)
		return 0;
	if (code >= 500)
		return EX_DATAERR;
	if (code >= 400 || code == 0)
		return EX_TEMPFAIL;
	return EX_PROTOCOL;
}

/* ---- transactions ---- */

enum { K_RSET, K_MAIL, K_RCPT, K_DATA, K_BDAT, K_DOT };

struct exp {
	uint8_t kind;
	unsigned int i, j;
};

struct sess {
	struct dc_conn *c;
	const struct dc_msg *m;
	struct dc_result *res;
	bool *done, *go;
	struct exp *q;
	unsigned int qt;
	bool lost;
	struct dc_reply r;
};

static void expect(struct sess *s, int kind, unsigned int i, unsigned int j)
{
	s->q[s->qt++] = (struct exp){ .kind = (uint8_t)kind, .i = i, .j = j };
}

static void final(struct sess *s, unsigned int i, int code, const char *text)
{
	if (s->done[i])
		return;
	s->done[i] = true;
	s->res[i].code = code;
	dc_strlcpy(s->res[i].text, text, sizeof(s->res[i].text));
}

/* No recipient accepted: the message fails as its best recipient did. */
static void no_rcpt(struct sess *s, unsigned int i)
{
	const struct dc_result *r = &s->res[i];
	unsigned int j, best = 0;

	for (j = 0; j < s->m[i].nrcpt; j++)
		if (r->rcpt[j].code < 500 && r->rcpt[best].code >= 500)
			best = j;
	if (!s->m[i].nrcpt) {
		final(s, i, 554, "5.5.1 no recipients");
		return;
	}
	char t[300];

	snprintf(t, sizeof(t), "%s: %s", s->m[i].rcpt[best], r->rcpt[best].text);
	final(s, i, r->rcpt[best].code, t);
}

/* Write, then read and account for every expected reply. */
static int drain(struct sess *s)
{
	unsigned int k;

	if (s->lost)
		goto out;
	if (flush(s->c))
		s->lost = true;
	for (k = 0; k < s->qt && !s->lost; k++) {
		const struct exp *e = &s->q[k];
		struct dc_result *res = &s->res[e->i];
		int code = read_reply(s->c, &s->r);

		if (code <= 0) {
			s->lost = true;
			break;
		}
		switch (e->kind) {
		case K_RSET:
			break;
		case K_MAIL:
			if (code / 100 != 2) {
				char t[600];

				snprintf(t, sizeof(t), "MAIL FROM: %s", s->r.text);
				final(s, e->i, code, t);
			}
			break;
		case K_RCPT:
			res->rcpt[e->j].code = code;
			{
				char t[600];

				snprintf(t, sizeof(t), "%d %s", code, s->r.text);
				dc_strlcpy(res->rcpt[e->j].text, t, sizeof(res->rcpt[e->j].text));
			}
			if (code / 100 == 2)
				res->nrcpt_ok++;
			break;
		case K_DATA:
			s->go[e->i] = code == 354;
			if (code != 354) {
				if (!res->nrcpt_ok)
					no_rcpt(s, e->i);
				final(s, e->i, code, s->r.text);
			}
			break;
		case K_BDAT:
			s->c->need_rset = code / 100 != 2;
			/* fall through */
		case K_DOT:
			if (!res->nrcpt_ok)
				no_rcpt(s, e->i);
			final(s, e->i, code, s->r.text);
			break;
		}
	}
out:
	s->qt = 0;
	if (s->lost)
		s->c->need_rset = true;
	return s->lost ? -1 : 0;
}

static void put_envelope(struct sess *s, unsigned int i, bool sync)
{
	struct dc_conn *c = s->c;
	const struct dc_msg *m = &s->m[i];
	unsigned int j;

	if (c->need_rset) {
		dc_buf_adds(&c->out, "RSET\r\n");
		expect(s, K_RSET, i, 0);
		if (sync)
			drain(s);
	}
	c->need_rset = true;
	dc_buf_printf(&c->out, "MAIL FROM:<%s>", m->sender);
	if (c->ext & DC_EXT_SIZE)
		dc_buf_printf(&c->out, " SIZE=%zu", m->len);
	if (m->eightbit)
		dc_buf_adds(&c->out, " BODY=8BITMIME");
	if (m->mail_params)
		dc_buf_adds(&c->out, m->mail_params);
	dc_buf_adds(&c->out, "\r\n");
	expect(s, K_MAIL, i, 0);
	if (sync && (drain(s) || s->done[i]))
		return;
	for (j = 0; j < m->nrcpt; j++) {
		dc_buf_printf(&c->out, "RCPT TO:<%s>%s\r\n", m->rcpt[j],
			      m->rcpt_params ? m->rcpt_params : "");
		expect(s, K_RCPT, i, j);
		if (sync && drain(s))
			return;
	}
	if (sync && !s->res[i].nrcpt_ok)
		no_rcpt(s, i);
}

static void put_stuffed(struct dd_buf *out, const char *p, size_t len)
{
	const char *end = p + len, *q;

	if (len && *p == '.')
		dc_buf_addc(out, '.');
	while (p < end) {
		q = memmem(p, (size_t)(end - p), "\n.", 2);
		if (!q) {
			dc_buf_add(out, p, (size_t)(end - p));
			break;
		}
		dc_buf_add(out, p, (size_t)(q - p) + 2);
		dc_buf_addc(out, '.');
		p = q + 2;
	}
}

int dc_smtp_send(struct dc_conn *c, const struct dc_msg *m, unsigned int n,
		 struct dc_result *res)
{
	struct sess s = { .c = c, .m = m, .res = res };
	bool pipe = c->ext & DC_EXT_PIPELINING, sync = !pipe;
	size_t nq = 1;
	unsigned int i;

	for (i = 0; i < n; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		res[i].rcpt = calloc(m[i].nrcpt ? m[i].nrcpt : 1, sizeof(*res[i].rcpt));
		if (!res[i].rcpt)
			exit(EX_OSERR);
		nq += 4 + m[i].nrcpt;
	}
	s.q = dc_xmalloc(nq * sizeof(*s.q));
	s.done = calloc(n + 1, sizeof(bool));
	s.go = calloc(n + 1, sizeof(bool));
	if (!s.done || !s.go)
		exit(EX_OSERR);

	if (c->fd < 0)
		s.lost = true;
	for (i = 0; i < n && !s.lost; i++) {
		if (c->ext & DC_EXT_CHUNKING) {
			/* Every BDAT LAST ends the transaction, but not necessarily
			 * cleanly when it failed: RSET before the next. */
			if (pipe && i > 0)
				c->need_rset = true;
			put_envelope(&s, i, sync);
			if (sync && (s.lost || s.done[i]))
				continue;
			dc_buf_printf(&c->out, "BDAT %zu LAST\r\n", m[i].len);
			dc_buf_add(&c->out, m[i].data, m[i].len);
			expect(&s, K_BDAT, i, 0);
			if (sync)
				drain(&s);
			continue;
		}
		/* DATA: wait for 354; the body and its dot go with the next envelope. */
		put_envelope(&s, i, sync);
		if (sync && (s.lost || s.done[i]))
			continue;
		dc_buf_adds(&c->out, "DATA\r\n");
		expect(&s, K_DATA, i, 0);
		if (drain(&s))
			break;
		if (!s.go[i])
			continue;
		if (res[i].nrcpt_ok)
			put_stuffed(&c->out, m[i].data, m[i].len);
		dc_buf_adds(&c->out, ".\r\n");
		expect(&s, K_DOT, i, 0);
		c->need_rset = false;
		if (sync)
			drain(&s);
	}
	drain(&s);
	for (i = 0; i < n; i++)
		if (!s.done[i]) {
			res[i].code = 0;
			snprintf(res[i].text, sizeof(res[i].text), "%s",
				 s.lost ? "connection lost before the final reply" :
				 "not sent");
		}
	dc_reply_free(&s.r);
	free(s.q);
	free(s.done);
	free(s.go);
	if (s.lost) {
		dc_conn_close(c);
		return EX_TEMPFAIL;
	}
	return 0;
}

void dc_result_free(struct dc_result *r)
{
	free(r->rcpt);
	r->rcpt = NULL;
}

/* ---- JSON, just enough for the control replies ---- */

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* A string at p ('"'): unescaped into out (if any); returns the end or NULL. */
static const char *json_str(const char *p, struct dd_buf *out)
{
	p++;
	while (*p && *p != '"') {
		char ch = *p++;

		if (ch == '\\') {
			ch = *p++;
			switch (ch) {
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'u': {
				unsigned int u = 0, k;

				for (k = 0; k < 4; k++) {
					if (!isxdigit((unsigned char)p[k]))
						return NULL;
					u = u * 16 + (unsigned int)(isdigit((unsigned char)p[k]) ?
						p[k] - '0' : (tolower((unsigned char)p[k]) - 'a' + 10));
				}
				p += 4;
				if (out) {
					if (u < 0x80) {
						dc_buf_addc(out, (char)u);
					} else if (u < 0x800) {
						dc_buf_addc(out, (char)(0xc0 | (u >> 6)));
						dc_buf_addc(out, (char)(0x80 | (u & 0x3f)));
					} else {
						dc_buf_addc(out, (char)(0xe0 | (u >> 12)));
						dc_buf_addc(out, (char)(0x80 | ((u >> 6) & 0x3f)));
						dc_buf_addc(out, (char)(0x80 | (u & 0x3f)));
					}
				}
				continue;
			}
			case 0:
				return NULL;
			default:
				break;	/* \" \\ \/ */
			}
		}
		if (out)
			dc_buf_addc(out, ch);
	}
	return *p == '"' ? p + 1 : NULL;
}

/* Skip any value; returns its end or NULL. */
static const char *json_skip(const char *p)
{
	int depth = 0;

	p = json_ws(p);
	if (*p == '"')
		return json_str(p, NULL);
	do {
		if (*p == '"') {
			p = json_str(p, NULL);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']') {
			if (!depth)
				return p;
			depth--;
		} else if (*p == ',' && !depth)
			return p;
		else if (!*p)
			return NULL;
		p++;
	} while (depth || (*p && *p != ',' && *p != '}' && *p != ']'));
	return p;
}

bool dc_json_get(const char *obj, const char *key, char *val, size_t vlen)
{
	struct dd_buf k = { 0 }, v = { 0 };
	const char *p = json_ws(obj), *e;
	bool found = false;

	if (*p++ != '{')
		return false;
	for (;;) {
		p = json_ws(p);
		if (*p != '"')
			break;
		k.len = 0;
		p = json_str(p, &k);
		if (!p)
			break;
		p = json_ws(p);
		if (*p++ != ':')
			break;
		p = json_ws(p);
		if (!strcmp(dc_buf_str(&k), key)) {
			if (*p == '"') {
				if (!json_str(p, &v))
					break;
			} else {
				e = json_skip(p);
				if (!e)
					break;
				while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
					e--;
				dc_buf_add(&v, p, (size_t)(e - p));
			}
			snprintf(val, vlen, "%s", dc_buf_str(&v));
			found = true;
			break;
		}
		p = json_skip(p);
		if (!p)
			break;
		p = json_ws(p);
		if (*p++ != ',')
			break;
	}
	dc_buf_free(&k);
	dc_buf_free(&v);
	return found;
}

bool dc_json_member(const char *obj, unsigned int idx, struct dd_buf *key,
		    struct dd_buf *val)
{
	const char *p = json_ws(obj), *e;
	unsigned int i;

	if (*p++ != '{')
		return false;
	for (i = 0;; i++) {
		p = json_ws(p);
		if (*p != '"')
			return false;
		key->len = 0;
		p = json_str(p, key);
		if (!p)
			return false;
		p = json_ws(p);
		if (*p++ != ':')
			return false;
		p = json_ws(p);
		if (i == idx) {
			val->len = 0;
			if (*p == '"')
				return json_str(p, val) != NULL;
			e = json_skip(p);
			if (!e)
				return false;
			while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			dc_buf_add(val, p, (size_t)(e - p));
			return true;
		}
		p = json_skip(p);
		if (!p)
			return false;
		p = json_ws(p);
		if (*p++ != ',')
			return false;
	}
}
