// SPDX-License-Identifier: GPL-2.0
/*
 * Mail-merge templates: a message (RFC 5322 header section, blank line,
 * body) with "{{column}}" placeholders anywhere.  Blanks around the name
 * are ignored ("{{ first name }}" is the column "first name"); "{{{{"
 * stands for a literal "{{" (so "{{{{name}}" comes out as "{{name}}").
 * A placeholder cannot span lines.
 */
#define _GNU_SOURCE
#include "dc.h"

#include <stdlib.h>
#include <string.h>

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void add_seg(struct dc_template *t, const struct dc_tseg *s)
{
	t->seg = dc_xrealloc(t->seg, (t->nseg + 1) * sizeof(*t->seg));
	t->seg[t->nseg++] = *s;
}

static void add_lit(struct dc_template *t, const char *p, size_t n, bool hdr,
		    unsigned int line)
{
	if (!n)
		return;
	add_seg(t, &(struct dc_tseg){ .lit = p, .len = n, .col = -1, .header = hdr,
				      .line = line });
}

int dc_template_parse(struct dc_template *t, const char *text, size_t len,
		      char *err, size_t errlen)
{
	struct dd_buf b = { 0 };
	const char *p, *end, *lit, *hend;
	unsigned int line = 1;

	memset(t, 0, sizeof(*t));
	dc_crlf(text, len, &b);
	t->text = dc_buf_str(&b);
	p = lit = t->text;
	end = p + b.len;
	/* The header section ends at the first empty line. */
	if (b.len >= 2 && !memcmp(p, "\r\n", 2))
		hend = p;
	else
		hend = memmem(p, b.len, "\r\n\r\n", 4);
	if (!hend)
		hend = end;
	while (p < end) {
		if (*p == '\n') {
			line++;
			p++;
			continue;
		}
		if (p[0] != '{' || p + 1 >= end || p[1] != '{') {
			p++;
			continue;
		}
		if (p + 3 < end && p[2] == '{' && p[3] == '{') {
			add_lit(t, lit, (size_t)(p + 2 - lit), p < hend, line);
			p += 4;
			lit = p;
			continue;
		}
		/* A placeholder: "{{", blanks, name, blanks, "}}". */
		const char *q = p + 2, *e, *ne;

		e = q;
		while (e + 1 < end && !(e[0] == '}' && e[1] == '}') && *e != '\r' && *e != '\n')
			e++;
		if (e + 1 >= end || e[0] != '}') {
			snprintf(err, errlen, "%u: unterminated placeholder \"{{\" "
				 "(write \"{{{{\" for a literal \"{{\")", line);
			dc_template_free(t);
			return -1;
		}
		ne = e;
		while (q < ne && blank(*q))
			q++;
		while (ne > q && blank(ne[-1]))
			ne--;
		if (q == ne) {
			snprintf(err, errlen, "%u: empty placeholder", line);
			dc_template_free(t);
			return -1;
		}
		/* The name is a C string: a NUL would cut it short. */
		if (memchr(q, '\0', (size_t)(ne - q))) {
			snprintf(err, errlen, "%u: NUL byte in a placeholder", line);
			dc_template_free(t);
			return -1;
		}
		add_lit(t, lit, (size_t)(p - lit), p < hend, line);
		char *name = dc_xmalloc((size_t)(ne - q) + 1);

		memcpy(name, q, (size_t)(ne - q));
		name[ne - q] = 0;
		add_seg(t, &(struct dc_tseg){ .col = -1, .name = name, .header = p < hend,
					      .line = line });
		t->seg[t->nseg - 1].col = -2;	/* unbound */
		p = e + 2;
		lit = p;
	}
	add_lit(t, lit, (size_t)(end - lit), false, line);
	return 0;
}

/* Column name compare, ignoring blanks around the column's name. */
static bool col_is(const char *col, const char *name, bool icase)
{
	size_t n;

	while (blank(*col))
		col++;
	n = strlen(col);
	while (n && blank(col[n - 1]))
		n--;
	if (n != strlen(name))
		return false;
	return icase ? !strncasecmp(col, name, n) : !strncmp(col, name, n);
}

int dc_template_bind(struct dc_template *t, char *const *cols, unsigned int ncol,
		     char *err, size_t errlen)
{
	unsigned int i, j;

	for (i = 0; i < t->nseg; i++) {
		struct dc_tseg *s = &t->seg[i];

		if (!s->name)
			continue;
		s->col = -1;
		for (j = 0; j < ncol && s->col < 0; j++)
			if (col_is(cols[j], s->name, false))
				s->col = (int)j;
		for (j = 0; j < ncol && s->col < 0; j++)
			if (col_is(cols[j], s->name, true))
				s->col = (int)j;
		if (s->col < 0) {
			snprintf(err, errlen, "%u: unknown placeholder {{%s}}: no such "
				 "column in the CSV header", s->line, s->name);
			return -1;
		}
	}
	return 0;
}

int dc_template_fill(const struct dc_template *t, char *const *row,
		     unsigned int nrow, struct dd_buf *out, char *err, size_t errlen)
{
	unsigned int i;

	for (i = 0; i < t->nseg; i++) {
		const struct dc_tseg *s = &t->seg[i];
		const char *v;

		if (!s->name) {
			dc_buf_add(out, s->lit, s->len);
			continue;
		}
		if (s->col < 0 || (unsigned int)s->col >= nrow) {
			snprintf(err, errlen, "placeholder {{%s}} has no value", s->name);
			return -1;
		}
		v = row[s->col];
		if (s->header && strpbrk(v, "\r\n")) {
			snprintf(err, errlen, "column \"%s\" has a line break, "
				 "in a header field (template line %u)", s->name, s->line);
			return -1;
		}
		dc_buf_adds(out, v);
	}
	return 0;
}

void dc_template_free(struct dc_template *t)
{
	unsigned int i;

	for (i = 0; i < t->nseg; i++)
		free(t->seg[i].name);
	free(t->seg);
	free(t->text);
	memset(t, 0, sizeof(*t));
}
