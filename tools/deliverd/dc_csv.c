// SPDX-License-Identifier: GPL-2.0
/*
 * RFC 4180 CSV, read a record at a time: fields separated by commas,
 * records by CRLF or LF (or a lone CR), fields optionally in double
 * quotes, inside which commas and line breaks are data and "" is one
 * quote.  A quote inside an unquoted field is taken literally, as most
 * readers do.  Line numbers are physical lines, so a record with a
 * quoted line break in it moves the next record's number by two.
 */
#define _GNU_SOURCE
#include "dc.h"

#include <stdlib.h>
#include <string.h>

void dc_csv_init(struct dc_csv *c, FILE *f)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
	c->line = 1;
}

void dc_csv_free(struct dc_csv *c)
{
	dc_buf_free(&c->data);
	free(c->off);
	free(c->field);
	c->off = NULL;
	c->field = NULL;
}

static void end_field(struct dc_csv *c, size_t start)
{
	if (c->nfield == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->off = dc_xrealloc(c->off, c->cap * sizeof(*c->off));
		c->field = dc_xrealloc(c->field, c->cap * sizeof(*c->field));
	}
	dc_buf_addc(&c->data, 0);
	c->off[c->nfield++] = start;
}

/* After '\r' outside quotes: eat an '\n' if one follows. */
static void eat_lf(struct dc_csv *c)
{
	int ch = getc_unlocked(c->f);

	if (ch != '\n' && ch != EOF)
		ungetc(ch, c->f);
}

int dc_csv_next(struct dc_csv *c, unsigned long *line, char *err, size_t errlen)
{
	const char *bad = NULL;
	int ch;

	if (!c->started) {
		c->started = true;
		ch = getc_unlocked(c->f);
		if (ch == 0xef) {
			int b = getc_unlocked(c->f), d = getc_unlocked(c->f);

			if (b != 0xbb || d != 0xbf) {
				/* Not a BOM: glibc takes several bytes back. */
				if (d != EOF)
					ungetc(d, c->f);
				if (b != EOF)
					ungetc(b, c->f);
				ungetc(ch, c->f);
			}
		} else if (ch != EOF) {
			ungetc(ch, c->f);
		}
	}
	c->nfield = 0;
	c->data.len = 0;
	if (c->eof)
		return 0;
	/* Skip blank lines. */
	for (;;) {
		*line = c->line;
		ch = getc_unlocked(c->f);
		if (ch == EOF) {
			c->eof = true;
			return 0;
		}
		if (ch == '\n') {
			c->line++;
		} else if (ch == '\r') {
			eat_lf(c);
			c->line++;
		} else {
			break;
		}
	}
	for (;;) {
		size_t start = c->data.len;

		if (ch == '"') {
			for (;;) {
				ch = getc_unlocked(c->f);
				if (ch == EOF) {
					snprintf(err, errlen, "unterminated quoted field (field %u)",
						 c->nfield + 1);
					c->eof = true;
					return -1;
				}
				if (ch == '"') {
					ch = getc_unlocked(c->f);
					if (ch != '"')
						break;
				} else if (ch == '\n') {
					c->line++;
				} else if (ch == 0 && !bad) {
					bad = "NUL byte in a field";
				}
				dc_buf_addc(&c->data, (char)ch);
			}
			if (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
				if (!bad)
					bad = "text after a closing quote";
				while (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF)
					ch = getc_unlocked(c->f);
			}
		} else {
			while (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
				if (ch == 0 && !bad)
					bad = "NUL byte in a field";
				dc_buf_addc(&c->data, (char)ch);
				ch = getc_unlocked(c->f);
			}
		}
		end_field(c, start);
		if (ch == ',') {
			ch = getc_unlocked(c->f);
			continue;
		}
		if (ch == '\r')
			eat_lf(c);
		if (ch == EOF)
			c->eof = true;
		else
			c->line++;
		break;
	}
	for (unsigned int i = 0; i < c->nfield; i++)
		c->field[i] = c->data.p + c->off[i];
	if (bad) {
		snprintf(err, errlen, "%s", bad);
		return -1;
	}
	return 1;
}
