// SPDX-License-Identifier: GPL-2.0
/*
 * Line-based files, domain patterns and the domain map: see dd_lines.h.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "dd_lines.h"
#include "dd_log.h"

#define DOMAIN_MAX	255
#define DOMAIN_BUF	(DOMAIN_MAX + 2)	/* a trailing dot, NUL */

/* ---- the read loop ---- */

int dd_lines_read(const char *path, dd_line_fn fn, void *arg, char *err,
		  size_t errlen)
{
	char msg[512], *line = NULL;
	unsigned int lineno = 0;
	size_t cap = 0, len;
	ssize_t n;
	FILE *f;
	int ret = 0;

	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		dd_errf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		/* C strings would silently end the line there */
		if (strlen(line) != (size_t)n) {
			dd_errf(err, errlen, "%s:%u: NUL byte in line", path,
				lineno);
			ret = -EINVAL;
			break;
		}
		len = strcspn(line, "#");
		line[len] = '\0';
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		if (!line[strspn(line, DD_LINES_WS)])
			continue;
		msg[0] = '\0';
		ret = fn(arg, line, lineno, msg, sizeof(msg));
		if (ret == -ENOMEM) {
			dd_errf(err, errlen, "%s: out of memory", path);
			break;
		}
		if (ret) {
			dd_errf(err, errlen, "%s:%u: %s", path, lineno,
				msg[0] ? msg : strerror(-ret));
			break;
		}
	}
	if (!ret && ferror(f)) {
		ret = -EIO;
		dd_errf(err, errlen, "%s: read error", path);
	}
	free(line);
	fclose(f);
	return ret;
}

bool dd_lines_fields(char *line, char **f, unsigned int n)
{
	char *save = NULL, *w = strtok_r(line, DD_LINES_WS, &save);
	unsigned int i;

	for (i = 0; i < n && w; i++) {
		f[i] = w;
		w = strtok_r(NULL, DD_LINES_WS, &save);
	}
	return i == n && !w;
}

/* ---- domain patterns ---- */

bool dd_domain_pattern(char *d)
{
	size_t len = strlen(d);
	char *p = d;

	if (!strcmp(d, "*"))
		return true;
	if (len && d[len - 1] == '.')
		d[--len] = '\0';
	if (*p == '.')
		p++;
	if (!*p || len > DOMAIN_MAX)
		return false;
	for (char *q = p; *q; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '.') {
			if (q == p || q[1] == '.' || !q[1])
				return false;
			continue;
		}
		/* UTF-8 (SMTPUTF8 domains) is kept as is: no IDNA here */
		if (!isalnum(c) && c != '-' && c != '_' && c < 0x80)
			return false;
		*q = (char)tolower(c);
	}
	return true;
}

/* ---- the domain map ---- */

/*
 * The subdomain keys keep their leading dot, so they never collide with
 * exact ones, and a suffix of the domain looked up is probed in place.
 */
struct dd_dmap_ent {
	uint64_t hash;
	const char *key;	/* NULL: empty slot; inside val's block */
	void *val;
};

static uint64_t dmap_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 32);
}

static struct dd_dmap_ent *dmap_find(const struct dd_dmap *m, const char *key,
				     size_t len)
{
	uint64_t h = dmap_hash(key, len);
	size_t mask = m->cap - 1;

	if (!m->cap)
		return NULL;
	for (size_t i = h & mask; m->v[i].key; i = (i + 1) & mask) {
		struct dd_dmap_ent *e = &m->v[i];

		if (e->hash == h && !strncmp(e->key, key, len) && !e->key[len])
			return e;
	}
	return NULL;
}

static int dmap_grow(struct dd_dmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct dd_dmap_ent *v = calloc(cap, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (!m->v[i].key)
			continue;
		for (j = m->v[i].hash & (cap - 1); v[j].key;
		     j = (j + 1) & (cap - 1))
			;
		v[j] = m->v[i];
	}
	free(m->v);
	m->v = v;
	m->cap = cap;
	return 0;
}

int dd_dmap_add(struct dd_dmap *m, const char *key, size_t size,
		void **value)
{
	size_t klen = strlen(key), off, i;
	uint64_t h = dmap_hash(key, klen);
	char *blk;

	*value = dd_dmap_get(m, key);
	if (*value)
		return -EEXIST;
	/* One block: the value first (aligned for anything), then the key. */
	off = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
	if (!strcmp(key, "*")) {
		m->star = calloc(1, off ? off : 1);
		*value = m->star;
		return m->star ? 0 : -ENOMEM;
	}
	if ((m->n + 1) * 2 > m->cap && dmap_grow(m))
		return -ENOMEM;
	blk = calloc(1, off + klen + 1);
	if (!blk)
		return -ENOMEM;
	memcpy(blk + off, key, klen + 1);
	for (i = h & (m->cap - 1); m->v[i].key; i = (i + 1) & (m->cap - 1))
		;
	m->v[i].hash = h;
	m->v[i].key = blk + off;
	m->v[i].val = blk;
	m->n++;
	*value = blk;
	return 0;
}

void *dd_dmap_get(const struct dd_dmap *m, const char *key)
{
	const struct dd_dmap_ent *e;

	if (!strcmp(key, "*"))
		return m->star;
	e = dmap_find(m, key, strlen(key));
	return e ? e->val : NULL;
}

void *dd_dmap_lookup(const struct dd_dmap *m, const char *domain)
{
	char d[DOMAIN_BUF];
	const struct dd_dmap_ent *e;
	size_t len;

	len = domain ? strlen(domain) : 0;
	if (len && domain[len - 1] == '.')
		len--;
	/* Longer is no domain: only "*" can match it. */
	if (len && len < sizeof(d)) {
		for (size_t i = 0; i < len; i++)
			d[i] = (char)tolower((unsigned char)domain[i]);
		d[len] = '\0';
		e = dmap_find(m, d, len);
		if (e)
			return e->val;
		/* ".suffix" keys, longest first; never the bare ".". */
		for (size_t i = 1; i + 1 < len; i++) {
			if (d[i] != '.')
				continue;
			e = dmap_find(m, d + i, len - i);
			if (e)
				return e->val;
		}
	}
	return m->star;
}

size_t dd_dmap_count(const struct dd_dmap *m)
{
	return m->n + !!m->star;
}

void dd_dmap_free(struct dd_dmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].val);
	free(m->v);
	free(m->star);
	memset(m, 0, sizeof(*m));
}
