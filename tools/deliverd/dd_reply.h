/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SMTP replies (RFC 5321 4.2) read incrementally from a byte stream.
 *
 * A reply is one or more lines "ddd-text" ending with a line "ddd text"
 * (or a bare "ddd").  Lines end in CRLF; a bare LF is accepted too.  A line
 * longer than DD_REPLY_LINE_MAX bytes with its line end, a line that does
 * not start with a valid code (first digit 2-5, second 0-5), a bad
 * separator, or a code that changes within a multi-line reply are protocol
 * errors; the error is sticky until dd_reply_reset().
 *
 * The reply handed back (struct dd_smtp_reply, dd_smtpc.h) holds the code,
 * the RFC 2034 / RFC 3463 enhanced status code of its first line if there
 * is one ("5.1.1", class equal to the reply's first digit; "" otherwise),
 * and the text: the lines' texts without their enhanced codes, joined with
 * single spaces, printable ASCII only (other bytes become '?'), truncated
 * to fit.  An optional callback sees every line's raw text (EHLO keywords).
 */
#ifndef DD_REPLY_H
#define DD_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "dd_smtpc.h"	/* struct dd_smtp_reply */

#define DD_REPLY_LINE_MAX	4096	/* with the CRLF */

/*
 * Called for each line as it completes: the reply's code, the line's index
 * in its reply (0 for the first), and its raw text after "ddd-"/"ddd "
 * (not sanitised, not terminated; may be empty).
 */
typedef void dd_reply_line_fn(void *arg, int code, unsigned int lineno,
			      const char *text, size_t len);

struct dd_reply_parser {
	dd_reply_line_fn *line_fn;
	void *arg;
	const char *err;		/* NULL, or why the stream is broken */
	unsigned int nlines;		/* lines of the reply being read */
	size_t tlen;			/* strlen(cur.text) */
	struct dd_smtp_reply cur;
	/*
	 * A line split across reads waits here; whole lines are parsed where
	 * they lie.  Allocated only then, and freed once the line is done,
	 * so an idle session holds no line buffer.
	 */
	char *line;
	size_t len, cap;
};

void dd_reply_init(struct dd_reply_parser *p, dd_reply_line_fn *fn, void *arg);
/* Forget any partial reply and any error; keeps the callback. */
void dd_reply_reset(struct dd_reply_parser *p);
/* Free what the parser holds (init or reset makes it usable again). */
void dd_reply_free(struct dd_reply_parser *p);

/*
 * Read from buf[0..len).  Returns 1 with a complete reply in *r and *used
 * the bytes consumed (through that reply's last line end: call again with
 * the rest for the next reply); 0 when all of buf was consumed without
 * completing a reply (partial lines are kept inside p); -EPROTO on a
 * protocol error, -ENOMEM when a split line cannot be kept (p->err says
 * which; *used is how far it read).  Either error sticks until reset.
 */
int dd_reply_parse(struct dd_reply_parser *p, const void *buf, size_t len,
		   size_t *used, struct dd_smtp_reply *r);

/*
 * Whether s[0..len) starts with an enhanced status code of class
 * code / 100 ("x.y.z", x in 2, 4, 5, y and z 1-3 digits) followed by a
 * space or its end.  If so, copies it to enh (terminated) and returns its
 * length, else returns 0.  code 0: any class.
 */
size_t dd_reply_enh(const char *s, size_t len, int code, char enh[16]);

/* Fill r with code, enh (NULL for "") and printf text (sanitised). */
void dd_reply_set(struct dd_smtp_reply *r, int code, const char *enh,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "550 5.1.1 text" (or "550 text", or "text" for code 0) into buf. */
size_t dd_reply_format(const struct dd_smtp_reply *r, char *buf, size_t len);

#endif /* DD_REPLY_H */
