// SPDX-License-Identifier: GPL-2.0
/*
 * Shaping, the pure half: the shaping_file table, token buckets, reply
 * patterns and the throttle's state machine.  Nothing here knows the
 * event loop or reads a clock, so the unit tests drive it with made-up
 * times.
 *
 * The table is one open-addressing hash of keys: "example.com" for a
 * domain, ".example.com" for its subdomains, "mx:host" for an MX host
 * (a domain has no ':', so they never collide); "*" is kept aside.  A
 * lookup costs one probe per label, whatever the number of lines.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dd_log.h"
#include "dd_shape.h"

#define SH_CONC		(1U << 0)
#define SH_CONN_RATE	(1U << 1)
#define SH_MSG_RATE	(1U << 2)
#define SH_MAX_MSGS	(1U << 3)

struct sh_ent {
	char *key;			/* NULL: empty slot */
	uint64_t hash;
	unsigned int line;		/* where it was given */
	unsigned int set;		/* SH_* keys the line sets */
	struct dd_shape_limits lim;
};

struct dd_shape_table {
	struct sh_ent *v;
	size_t cap, n;			/* cap a power of two, n <= cap / 2 */
	struct sh_ent star;		/* "*", key non-NULL when given */
};

static const struct {
	const char *name;
	unsigned int bit;
	size_t off;
} sh_keys[] = {
	{ "concurrency", SH_CONC, offsetof(struct dd_shape_limits, concurrency) },
	{ "conn_rate", SH_CONN_RATE, offsetof(struct dd_shape_limits, conn_rate) },
	{ "msg_rate", SH_MSG_RATE, offsetof(struct dd_shape_limits, msg_rate) },
	{ "max_msgs", SH_MAX_MSGS, offsetof(struct dd_shape_limits, max_msgs) },
};

static uint64_t sh_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	while (len--) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct sh_ent *sh_find(const struct dd_shape_table *t, const char *key,
			      size_t len)
{
	uint64_t h = sh_hash(key, len);
	size_t i;

	if (!t->cap)
		return NULL;
	for (i = h & (t->cap - 1); t->v[i].key; i = (i + 1) & (t->cap - 1))
		if (t->v[i].hash == h && !strncmp(t->v[i].key, key, len) &&
		    !t->v[i].key[len])
			return &t->v[i];
	return NULL;
}

static int sh_grow(struct dd_shape_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 32, i, j;
	struct sh_ent *v = calloc(cap, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (i = 0; i < t->cap; i++) {
		if (!t->v[i].key)
			continue;
		for (j = t->v[i].hash & (cap - 1); v[j].key; j = (j + 1) & (cap - 1))
			;
		v[j] = t->v[i];
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return 0;
}

/* A new entry for key, which is not in t; NULL without memory. */
static struct sh_ent *sh_add(struct dd_shape_table *t, const char *key)
{
	uint64_t h = sh_hash(key, strlen(key));
	size_t i;

	if ((t->n + 1) * 2 > t->cap && sh_grow(t))
		return NULL;
	for (i = h & (t->cap - 1); t->v[i].key; i = (i + 1) & (t->cap - 1))
		;
	t->v[i].key = strdup(key);
	if (!t->v[i].key)
		return NULL;
	t->v[i].hash = h;
	t->n++;
	return &t->v[i];
}

void dd_shape_free(struct dd_shape_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->cap; i++)
		free(t->v[i].key);
	free(t->v);
	free(t->star.key);
	free(t);
}

unsigned int dd_shape_count(const struct dd_shape_table *t)
{
	return t ? (unsigned int)t->n + !!t->star.key : 0;
}

/* Lowercase and check a domain ("a.b", ".a.b" or "*") in place. */
static bool sh_domain(char *d)
{
	size_t len = strlen(d);
	char *p = d, *q;

	if (!strcmp(d, "*"))
		return true;
	if (len > 1 && d[len - 1] == '.')
		d[--len] = 0;
	if (*p == '.')
		p++;
	if (!*p || len > 255)
		return false;
	for (q = p; *q; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '.') {
			if (q == p || q[1] == '.' || !q[1])
				return false;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		*q = (char)tolower(c);
	}
	return true;
}

/*
 * An MX host name ("mx1.example.com") or a route's "addr:port" name:
 * printable, no spaces, lowercased, without a trailing dot.
 */
static bool sh_host(char *h)
{
	size_t len = strlen(h);
	char *q;

	if (len > 1 && h[len - 1] == '.')
		h[--len] = 0;
	if (!len || len > 255)
		return false;
	for (q = h; *q; q++) {
		unsigned char c = (unsigned char)*q;

		if (c <= ' ' || c >= 127)
			return false;
		*q = (char)tolower(c);
	}
	return true;
}

/* "key=value" into e; a message in msg on error. */
static int sh_pair(struct sh_ent *e, char *pair, char *msg, size_t msglen)
{
	char *eq = strchr(pair, '='), *end;
	unsigned long long v;
	size_t i;

	if (!eq) {
		dd_errf(msg, msglen, "expected key=value, got '%s'", pair);
		return -EINVAL;
	}
	*eq = 0;
	for (i = 0; i < sizeof(sh_keys) / sizeof(sh_keys[0]); i++)
		if (!strcmp(pair, sh_keys[i].name))
			break;
	if (i == sizeof(sh_keys) / sizeof(sh_keys[0])) {
		dd_errf(msg, msglen, "unknown key '%s' (concurrency, conn_rate, "
			"msg_rate or max_msgs)", pair);
		return -EINVAL;
	}
	if (e->set & sh_keys[i].bit) {
		dd_errf(msg, msglen, "%s given twice", pair);
		return -EINVAL;
	}
	errno = 0;
	v = isdigit((unsigned char)eq[1]) ? strtoull(eq + 1, &end, 10) : 0;
	if (!isdigit((unsigned char)eq[1]) || *end || errno || v > UINT_MAX) {
		dd_errf(msg, msglen, "bad number '%s' for %s (0 to %u)", eq + 1,
			pair, UINT_MAX);
		return -EINVAL;
	}
	e->set |= sh_keys[i].bit;
	*(unsigned int *)((char *)&e->lim + sh_keys[i].off) = (unsigned int)v;
	return 0;
}

/* One line's fields (after the name) into e. */
static int sh_fields(struct sh_ent *e, char **save, char *msg, size_t msglen)
{
	char *pair;
	int ret;

	while ((pair = strtok_r(NULL, " \t\r\n", save))) {
		ret = sh_pair(e, pair, msg, msglen);
		if (ret)
			return ret;
	}
	if (!e->set) {
		dd_errf(msg, msglen, "no limits (key=value) given");
		return -EINVAL;
	}
	return 0;
}

static int sh_line(struct dd_shape_table *t, char *line, unsigned int lineno,
		   char *msg, size_t msglen)
{
	char *save = NULL, *name = strtok_r(line, " \t\r\n", &save);
	char key[300];
	struct sh_ent e = { .line = lineno }, *old;
	int ret;

	if (!name)
		return 0;
	if (!strncasecmp(name, "mx:", 3)) {
		if (!sh_host(name + 3)) {
			dd_errf(msg, msglen, "bad host name '%s'", name + 3);
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "mx:%s", name + 3);
	} else {
		snprintf(key, sizeof(key), "%s", name);
		if (!sh_domain(key)) {
			dd_errf(msg, msglen, "bad domain '%s'", name);
			return -EINVAL;
		}
	}
	ret = sh_fields(&e, &save, msg, msglen);
	if (ret)
		return ret;
	old = !strcmp(key, "*") ? (t->star.key ? &t->star : NULL) :
	      sh_find(t, key, strlen(key));
	if (old) {
		dd_errf(msg, msglen, "duplicate entry for '%s' (first at line %u)",
			key, old->line);
		return -EINVAL;
	}
	if (!strcmp(key, "*")) {
		e.key = strdup(key);
		if (!e.key)
			goto nomem;
		t->star = e;
		return 0;
	}
	old = sh_add(t, key);
	if (!old)
		goto nomem;
	e.key = old->key;
	e.hash = old->hash;
	*old = e;
	return 0;
nomem:
	dd_errf(msg, msglen, "out of memory");
	return -ENOMEM;
}

int dd_shape_load(struct dd_shape_table **tp, const char *path, char *err,
		  size_t errlen)
{
	struct dd_shape_table *t = calloc(1, sizeof(*t));
	unsigned int lineno = 0;
	char msg[400], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int ret = 0;

	*tp = NULL;
	if (!t) {
		dd_errf(err, errlen, "shaping_file: out of memory");
		return -ENOMEM;
	}
	if (!path || !*path) {
		*tp = t;
		return 0;
	}
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		dd_errf(err, errlen, "%s: %s", path, strerror(errno));
		dd_shape_free(t);
		return ret;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *hash;

		lineno++;
		if (strlen(line) != (size_t)n) {
			dd_errf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
			ret = -EINVAL;
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		ret = sh_line(t, line, lineno, msg, sizeof(msg));
		if (ret) {
			dd_errf(err, errlen, "%s:%u: %s", path, lineno, msg);
			break;
		}
	}
	if (!ret && ferror(f)) {
		ret = -EIO;
		dd_errf(err, errlen, "%s: read error", path);
	}
	free(line);
	fclose(f);
	if (ret) {
		dd_shape_free(t);
		return ret;
	}
	*tp = t;
	return 0;
}

static void sh_overlay(const struct sh_ent *e, const struct dd_shape_limits *def,
		       struct dd_shape_limits *out)
{
	*out = *def;
	if (!e)
		return;
	if (e->set & SH_CONC)
		out->concurrency = e->lim.concurrency;
	if (e->set & SH_CONN_RATE)
		out->conn_rate = e->lim.conn_rate;
	if (e->set & SH_MSG_RATE)
		out->msg_rate = e->lim.msg_rate;
	if (e->set & SH_MAX_MSGS)
		out->max_msgs = e->lim.max_msgs;
}

void dd_shape_lookup_dest(const struct dd_shape_table *t, const char *domain,
			  const struct dd_shape_limits *def,
			  struct dd_shape_limits *out)
{
	const struct sh_ent *e = NULL;
	char d[258];
	size_t len = domain ? strlen(domain) : 0, i;

	if (t && len && domain[len - 1] == '.')
		len--;
	if (t && len && len < sizeof(d)) {
		for (i = 0; i < len; i++)
			d[i] = (char)tolower((unsigned char)domain[i]);
		d[len] = 0;
		e = sh_find(t, d, len);
		/* ".suffix" keys, longest first */
		for (i = 1; !e && i + 1 < len; i++)
			if (d[i] == '.')
				e = sh_find(t, d + i, len - i);
	}
	if (!e && t && t->star.key)
		e = &t->star;
	sh_overlay(e, def, out);
}

void dd_shape_lookup_mx(const struct dd_shape_table *t, const char *host,
			const struct dd_shape_limits *def,
			struct dd_shape_limits *out)
{
	const struct sh_ent *e = NULL;
	char k[300];
	size_t len = host ? strlen(host) : 0, i;

	if (t && len && host[len - 1] == '.')
		len--;
	if (t && len && len + 3 < sizeof(k)) {
		memcpy(k, "mx:", 3);
		for (i = 0; i < len; i++)
			k[3 + i] = (char)tolower((unsigned char)host[i]);
		k[3 + len] = 0;
		e = sh_find(t, k, len + 3);
	}
	sh_overlay(e, def, out);
}

/* --- token buckets --- */

static void bucket_refill(struct dd_bucket *b, double rate, uint64_t now)
{
	double burst = rate > 1 ? rate : 1;

	if (!b->t_ns) {
		b->tokens = 1;
		b->t_ns = now;
		return;
	}
	if (now > b->t_ns)
		b->tokens += (double)(now - b->t_ns) * rate / 1e9;
	b->t_ns = now;
	if (b->tokens > burst)
		b->tokens = burst;
}

bool dd_bucket_ready(struct dd_bucket *b, double rate, uint64_t now)
{
	if (rate <= 0)
		return true;
	bucket_refill(b, rate, now);
	/* a hair under one: rounding must not cost a timer round */
	return b->tokens >= 1 - 1e-9;
}

bool dd_bucket_take(struct dd_bucket *b, double rate, uint64_t now)
{
	if (!dd_bucket_ready(b, rate, now))
		return false;
	if (rate > 0)
		b->tokens -= 1;
	return true;
}

uint64_t dd_bucket_wait(struct dd_bucket *b, double rate, uint64_t now)
{
	if (dd_bucket_ready(b, rate, now))
		return 0;
	return (uint64_t)((1 - b->tokens) * 1e9 / rate) + 1;
}

void dd_obs_note(struct dd_rate_obs *o, uint64_t now)
{
	dd_obs_rate(o, now);
	o->cur++;
}

double dd_obs_rate(struct dd_rate_obs *o, uint64_t now)
{
	uint64_t sec = 1000000000ULL;

	if (!o->t0 || now >= o->t0 + 2 * sec) {
		/* new, or nothing went for a whole second */
		o->prev = 0;
		o->cur = 0;
		o->t0 = now;
	} else if (now >= o->t0 + sec) {
		o->prev = o->cur;
		o->cur = 0;
		o->t0 += sec;
	}
	/* prev spans a whole second, cur the part of this one gone by */
	return (o->prev + o->cur) / (1.0 + (double)(now - o->t0) / 1e9);
}

/* --- patterns --- */

bool dd_shape_match(const char *patterns, int code, const char *enh,
		    const char *text)
{
	char subject[400], pat[256];
	const char *p, *bar;

	if (!patterns || code / 100 != 4)
		return false;
	snprintf(subject, sizeof(subject), "%d %s %s", code,
		 enh && *enh ? enh : "-", text ? text : "");
	for (p = patterns; *p; p = bar + 1) {
		size_t len;

		bar = strchr(p, '|');
		if (!bar)
			bar = p + strlen(p);
		len = (size_t)(bar - p);
		if (len && len < sizeof(pat)) {
			memcpy(pat, p, len);
			pat[len] = 0;
			if (!fnmatch(pat, subject, FNM_CASEFOLD))
				return true;
		}
		if (!*bar)
			break;
	}
	return false;
}

/* --- throttle --- */

unsigned int dd_throttle_conc(const struct dd_throttle *t,
			      const struct dd_shape_limits *cfg)
{
	return t->on ? t->conc : cfg->concurrency;
}

double dd_throttle_rate(const struct dd_throttle *t,
			const struct dd_shape_limits *cfg)
{
	return t->on ? t->rate : cfg->msg_rate;
}

bool dd_throttle_hit(struct dd_throttle *t, const struct dd_shape_limits *cfg,
		     unsigned int nconns, double observed, bool force,
		     uint64_t now)
{
	unsigned int conc = dd_throttle_conc(t, cfg);
	double rate = dd_throttle_rate(t, cfg);

	t->last_hit = now;
	if (t->on && !force && now - t->last_cut < DD_THROTTLE_SETTLE_NS)
		return false;
	/* Halve what is used, not a limit far above it. */
	if (!conc || conc > nconns)
		conc = nconns ? nconns : 1;
	if (observed < DD_THROTTLE_RATE_BASE)
		observed = DD_THROTTLE_RATE_BASE;
	if (rate <= 0 || rate > observed)
		rate = observed;
	if (!t->on) {
		/* where recovery ends: the limits, or where we were */
		t->conc_top = cfg->concurrency ? cfg->concurrency : conc;
		t->rate_top = cfg->msg_rate ? cfg->msg_rate : rate;
		t->on = true;
	}
	t->conc = conc / 2 ? conc / 2 : 1;
	t->rate = rate / 2 > DD_THROTTLE_RATE_MIN ? rate / 2 :
		  DD_THROTTLE_RATE_MIN;
	t->last_cut = now;
	t->last_step = now;
	t->cuts++;
	return true;
}

enum dd_throttle_step dd_throttle_tick(struct dd_throttle *t,
				       uint64_t hold_ns, uint64_t now)
{
	uint64_t since = t->last_hit > t->last_step ? t->last_hit : t->last_step;
	unsigned int up;

	if (!t->on || now - since < hold_ns)
		return DD_THROTTLE_SAME;
	up = t->conc / 2 ? t->conc / 2 : 1;
	t->conc = t->conc + up < t->conc_top ? t->conc + up : t->conc_top;
	t->rate = t->rate * 1.5 < t->rate_top ? t->rate * 1.5 : t->rate_top;
	t->last_step = now;
	if (t->conc >= t->conc_top && t->rate >= t->rate_top) {
		t->on = false;
		return DD_THROTTLE_LIFTED;
	}
	return DD_THROTTLE_UP;
}
