// SPDX-License-Identifier: GPL-2.0
/*
 * Shaping, the pure half: the shaping_file table, token buckets, reply
 * patterns and the throttle's state machine.  Nothing here knows the
 * event loop or reads a clock, so the unit tests drive it with made-up
 * times.
 *
 * The table is two struct dd_dmap: the domain lines ("example.com",
 * ".example.com" for its subdomains, "*"), looked up like routes_file, and
 * the "mx:host" lines by exact host name.  A lookup costs one probe per
 * label, whatever the number of lines.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dd_lines.h"
#include "dd_log.h"
#include "dd_shape.h"

#define SH_CONC		(1U << 0)
#define SH_CONN_RATE	(1U << 1)
#define SH_MSG_RATE	(1U << 2)
#define SH_MAX_MSGS	(1U << 3)

/* What a shaping_file line gives. */
struct sh_ent {
	unsigned int line;		/* where it was given */
	unsigned int set;		/* SH_* keys the line sets */
	struct dd_shape_limits lim;
};

struct dd_shape_table {
	struct dd_dmap dom;		/* domain patterns */
	struct dd_dmap mx;		/* MX hosts, without "mx:" */
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

void dd_shape_free(struct dd_shape_table *t)
{
	if (!t)
		return;
	dd_dmap_free(&t->dom);
	dd_dmap_free(&t->mx);
	free(t);
}

unsigned int dd_shape_count(const struct dd_shape_table *t)
{
	return t ? (unsigned int)(dd_dmap_count(&t->dom) +
				  dd_dmap_count(&t->mx)) : 0;
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

	while ((pair = strtok_r(NULL, DD_LINES_WS, save))) {
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

/* One line into the table arg. */
static int sh_line(void *arg, char *line, unsigned int lineno, char *msg,
		   size_t msglen)
{
	struct dd_shape_table *t = arg;
	char *save = NULL, *name = strtok_r(line, DD_LINES_WS, &save);
	struct sh_ent e = { .line = lineno };
	const char *what = "";
	struct dd_dmap *m;
	void *v;
	int ret;

	if (!strncasecmp(name, "mx:", 3)) {
		if (!sh_host(name + 3)) {
			dd_errf(msg, msglen, "bad host name '%s'", name + 3);
			return -EINVAL;
		}
		m = &t->mx;
		what = "mx:";
		name += 3;
	} else {
		/* The message shows the domain as written. */
		dd_errf(msg, msglen, "bad domain '%s'", name);
		if (!dd_domain_pattern(name))
			return -EINVAL;
		m = &t->dom;
	}
	ret = sh_fields(&e, &save, msg, msglen);
	if (ret)
		return ret;
	ret = dd_dmap_add(m, name, sizeof(e), &v);
	if (ret == -EEXIST) {
		dd_errf(msg, msglen, "duplicate entry for '%s%s' (first at line "
			"%u)", what, name, ((struct sh_ent *)v)->line);
		return -EINVAL;
	}
	if (ret)
		return ret;
	*(struct sh_ent *)v = e;
	return 0;
}

int dd_shape_load(struct dd_shape_table **tp, const char *path, char *err,
		  size_t errlen)
{
	struct dd_shape_table *t = calloc(1, sizeof(*t));
	int ret;

	*tp = NULL;
	if (!t) {
		dd_errf(err, errlen, "shaping_file: out of memory");
		return -ENOMEM;
	}
	if (path && *path) {
		ret = dd_lines_read(path, sh_line, t, err, errlen);
		if (ret) {
			dd_shape_free(t);
			return ret;
		}
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
	sh_overlay(t ? dd_dmap_lookup(&t->dom, domain) : NULL, def, out);
}

void dd_shape_lookup_mx(const struct dd_shape_table *t, const char *host,
			const struct dd_shape_limits *def,
			struct dd_shape_limits *out)
{
	const struct sh_ent *e = NULL;
	char k[297];
	size_t len = host ? strlen(host) : 0, i;

	/* As sh_host() stored it: lowercase, no trailing dot. */
	if (t && len && host[len - 1] == '.')
		len--;
	if (t && len && len < sizeof(k)) {
		for (i = 0; i < len; i++)
			k[i] = (char)tolower((unsigned char)host[i]);
		k[len] = 0;
		e = dd_dmap_get(&t->mx, k);
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
