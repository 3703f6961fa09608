// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd's logs.
 *
 * The daemon log: "2026-11-24T02:30:00.123Z deliverd[pid] loop0 info: text"
 * lines, UTC, to stderr or an O_APPEND file.  The delivery log: one JSON
 * object per line.  Each line is formatted into one buffer and goes out
 * with one write(2), so lines from different threads never interleave.
 *
 * A delivery-log line is all there or not at all: when the disk fills
 * and only part of a line went out, that part is cut off again (under a
 * lock, so no other line went after it), so the file never holds a torn
 * line for the next one to run into.  Lost lines are counted and said in
 * the daemon log when writing works again.
 *
 * Reopening (log rotation) never closes an fd another thread may be
 * writing to: the new file is dup2()ed over the old fd, which replaces it
 * atomically.
 *
 * JSON strings: '"', '\\' and the control characters (U+0000-U+001F and
 * DEL) are escaped (\", \\, \b, \f, \n, \r, \t, else \u00XX).  Well-formed
 * UTF-8 is copied as is.  A byte that is not part of a well-formed UTF-8
 * sequence (stray continuation, overlong form, surrogate, beyond U+10FFFF,
 * truncated sequence) is written as \u00XX with XX its value, i.e. read
 * as Latin-1, so the output is always valid JSON and valid UTF-8 and the
 * original byte can still be told from it.
 */
#include "dd_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX	4096

static atomic_int log_fd = 2;
static atomic_int log_level = DD_LOG_INFO;
static atomic_int dlog_fd = -1;
static __thread char thread_name[32];
static pthread_mutex_t dlog_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long dlog_lost;		/* lines, under dlog_lock */

static const char *const level_names[] = {
	[DD_LOG_ERR] = "error",
	[DD_LOG_WARN] = "warning",
	[DD_LOG_INFO] = "info",
	[DD_LOG_DEBUG] = "debug",
};

static int parse_level(const char *s)
{
	if (!s || !*s || !strcmp(s, "info"))
		return DD_LOG_INFO;
	if (!strcmp(s, "error") || !strcmp(s, "err"))
		return DD_LOG_ERR;
	if (!strcmp(s, "warning") || !strcmp(s, "warn"))
		return DD_LOG_WARN;
	if (!strcmp(s, "debug"))
		return DD_LOG_DEBUG;
	return -EINVAL;
}

static int open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	return fd < 0 ? -errno : fd;
}

/*
 * Point *slot at path's file.  If *slot is already one of our files, the
 * new one replaces it in place (dup2), so concurrent writers never see a
 * closed or reused fd.
 */
static int install(atomic_int *slot, int fd)
{
	int cur = atomic_load(slot);

	if (fd >= 0 && cur > 2) {
		if (dup2(fd, cur) < 0) {
			int e = -errno;

			close(fd);
			return e;
		}
		close(fd);
		return 0;
	}
	/* cur (if > 2) leaks when switching to stderr or none: harmless. */
	atomic_store(slot, fd);
	return 0;
}

int dd_log_open(const char *path, const char *level)
{
	int lvl = parse_level(level);
	int fd;

	if (lvl < 0)
		return lvl;
	if (path && *path && strcmp(path, "-")) {
		fd = open_append(path);
		if (fd < 0)
			return fd;
		fd = install(&log_fd, fd);
		if (fd < 0)
			return fd;
	} else {
		install(&log_fd, 2);
	}
	atomic_store(&log_level, lvl);
	return 0;
}

void dd_log_thread(const char *name)
{
	size_t n = strlen(name);

	if (n >= sizeof(thread_name))
		n = sizeof(thread_name) - 1;
	memcpy(thread_name, name, n);
	thread_name[n] = '\0';
}

/* "2026-11-24T02:30:00.123Z" into buf (at least 25 bytes); its length. */
static size_t iso_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
	return n;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void dd_log(enum dd_log_level lvl, const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	size_t n, start;
	va_list ap;
	int r;

	if ((int)lvl > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	if ((unsigned int)lvl > DD_LOG_DEBUG)
		lvl = DD_LOG_DEBUG;
	n = iso_time(buf, sizeof(buf));
	n += snprintf(buf + n, sizeof(buf) - n, " deliverd[%d] %s %s: ",
		      (int)getpid(), thread_name[0] ? thread_name : "main",
		      level_names[lvl]);
	start = n;
	va_start(ap, fmt);
	r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	n += (size_t)r;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;		/* truncated */
	/* One line per message: no line breaks from the text. */
	for (size_t i = start; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	while (n > start && buf[n - 1] == ' ')
		n--;
	buf[n++] = '\n';
	write_all(atomic_load_explicit(&log_fd, memory_order_relaxed), buf, n);
}

/*
 * One delivery-log line, whole or not at all.  The lock costs little:
 * appends to one file serialise in the kernel anyway.
 */
static void dlog_write(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	int err = 0;

	pthread_mutex_lock(&dlog_lock);
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			break;
		}
		done += (size_t)n;
	}
	if (err) {
		struct stat st;

		if (done && !fstat(fd, &st) && S_ISREG(st.st_mode) &&
		    st.st_size >= (off_t)done &&
		    ftruncate(fd, st.st_size - (off_t)done) < 0)
			dd_err("delivery log: cannot cut a torn line: %s",
			       strerror(errno));
		if (!dlog_lost++)
			dd_err("delivery log: %s; lines are lost until it can "
			       "be written again", strerror(err));
	} else if (dlog_lost) {
		dd_warn("delivery log: written again, %lu lines lost",
			dlog_lost);
		dlog_lost = 0;
	}
	pthread_mutex_unlock(&dlog_lock);
}

void dd_dlog_report_lost(void)
{
	pthread_mutex_lock(&dlog_lock);
	if (dlog_lost)
		dd_warn("delivery log: %lu lines lost, not written again "
			"before the stop", dlog_lost);
	dlog_lost = 0;
	pthread_mutex_unlock(&dlog_lock);
}

int dd_dlog_open(const char *path)
{
	int fd;

	if (!path || !*path || !strcmp(path, "none"))
		return install(&dlog_fd, -1);
	if (!strcmp(path, "-"))
		return install(&dlog_fd, 2);
	fd = open_append(path);
	if (fd < 0)
		return fd;
	return install(&dlog_fd, fd);
}

/*
 * Length of the well-formed UTF-8 sequence at s (1..4), or 0 if the
 * byte at s does not start one.
 */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)		/* overlong */
			return 0;
		if (c == 0xed && s[1] >= 0xa0)		/* surrogate */
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)		/* overlong */
			return 0;
		if (c == 0xf4 && s[1] >= 0x90)		/* > U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

/*
 * The escaped form of the character at *s into esc (at most 6 bytes);
 * advances *s; returns the length.  The NUL terminator stops each check
 * in utf8_len before it reads past the string.
 */
static size_t escape_one(const unsigned char **sp, char *esc)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = *sp;
	unsigned char c = *s;
	size_t n;

	switch (c) {
	case '"':  esc[0] = '\\'; esc[1] = '"';  *sp = s + 1; return 2;
	case '\\': esc[0] = '\\'; esc[1] = '\\'; *sp = s + 1; return 2;
	case '\b': esc[0] = '\\'; esc[1] = 'b';  *sp = s + 1; return 2;
	case '\f': esc[0] = '\\'; esc[1] = 'f';  *sp = s + 1; return 2;
	case '\n': esc[0] = '\\'; esc[1] = 'n';  *sp = s + 1; return 2;
	case '\r': esc[0] = '\\'; esc[1] = 'r';  *sp = s + 1; return 2;
	case '\t': esc[0] = '\\'; esc[1] = 't';  *sp = s + 1; return 2;
	}
	if (c >= 0x20 && c < 0x7f) {
		esc[0] = (char)c;
		*sp = s + 1;
		return 1;
	}
	n = c >= 0x80 ? utf8_len(s) : 0;
	if (n) {
		memcpy(esc, s, n);
		*sp = s + n;
		return n;
	}
	/* Control character, DEL or a byte outside well-formed UTF-8. */
	memcpy(esc, "\\u00", 4);
	esc[4] = hex[c >> 4];
	esc[5] = hex[c & 15];
	*sp = s + 1;
	return 6;
}

/*
 * Returns the length of the whole escaped string (as snprintf does); out
 * holds as much of it as fits without splitting an escape, terminated.
 */
size_t dd_json_escape(char *out, size_t outlen, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t total = 0, used = 0;
	bool full = outlen == 0;
	char esc[8];

	while (*p) {
		size_t n = escape_one(&p, esc);

		if (!full && used + n < outlen) {
			memcpy(out + used, esc, n);
			used += n;
		} else {
			full = true;
		}
		total += n;
	}
	if (outlen)
		out[used] = '\0';
	return total;
}

/* A growing buffer that starts on the stack. */
struct jbuf {
	char *p;
	size_t len, cap;
	bool heap, oom;
	char stack[2048];
};

static bool jb_reserve(struct jbuf *b, size_t more)
{
	size_t cap;
	char *n;

	if (b->oom)
		return false;
	if (b->len + more <= b->cap)
		return true;
	cap = b->cap * 2;
	while (cap < b->len + more)
		cap *= 2;
	n = b->heap ? realloc(b->p, cap) : malloc(cap);
	if (!n) {
		b->oom = true;
		return false;
	}
	if (!b->heap)
		memcpy(n, b->p, b->len);
	b->p = n;
	b->cap = cap;
	b->heap = true;
	return true;
}

static void jb_add(struct jbuf *b, const char *s, size_t n)
{
	if (!jb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void jb_printf(struct jbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void jb_printf(struct jbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		jb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ,"key":"escaped" or ,"key":null */
static void jb_str(struct jbuf *b, const char *key, const char *s, bool nullable)
{
	const unsigned char *p;
	char esc[8];

	jb_printf(b, ",\"%s\":", key);
	if (!s && nullable) {
		jb_add(b, "null", 4);
		return;
	}
	p = (const unsigned char *)(s ? s : "");
	jb_add(b, "\"", 1);
	while (*p) {
		size_t n = escape_one(&p, esc);

		jb_add(b, esc, n);
	}
	jb_add(b, "\"", 1);
}

void dd_dlog(const struct dd_attempt *a)
{
	int fd = atomic_load_explicit(&dlog_fd, memory_order_relaxed);
	struct jbuf b = { .cap = sizeof(b.stack) };
	char t[40];

	if (fd < 0)
		return;
	b.p = b.stack;
	iso_time(t, sizeof(t));
	jb_printf(&b, "{\"time\":\"%s\",\"qid\":\"%016llX\"", t,
		  (unsigned long long)a->qid);
	jb_str(&b, "rcpt", a->rcpt, false);
	jb_str(&b, "sender", a->sender, false);
	jb_str(&b, "dest", a->dest, false);
	jb_str(&b, "host", a->host, true);
	jb_str(&b, "status", a->status, false);
	jb_printf(&b, ",\"code\":%d", a->code);
	jb_str(&b, "enh", a->enh, false);
	jb_str(&b, "reply", a->reply, false);
	jb_printf(&b, ",\"duration_ms\":%llu.%03llu,\"attempt\":%u",
		  (unsigned long long)(a->duration_us / 1000),
		  (unsigned long long)(a->duration_us % 1000), a->attempt);
	jb_str(&b, "transport", a->transport, true);
	if (a->mx)
		jb_str(&b, "mx", a->mx, false);
	if (a->tls) {
		jb_str(&b, "tls", a->tls, false);
		jb_str(&b, "tls_cipher", a->tls_cipher, true);
		jb_str(&b, "tls_verify", a->tls_verify, true);
	}
	if (a->body_io)
		jb_str(&b, "body_io", a->body_io, false);
	jb_add(&b, "}\n", 2);
	if (!b.oom)
		dlog_write(fd, b.p, b.len);
	if (b.heap)
		free(b.p);
}

void dd_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
