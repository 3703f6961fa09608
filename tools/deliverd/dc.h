/* SPDX-License-Identifier: GPL-2.0 */
/*
 * deliverctl: the control and submission client of deliverd.
 *
 * dc_smtp.c	a small blocking ESMTP client (unix or TCP), pipelined
 *		batches, BDAT ... LAST when offered, else DATA, dot-stuffed
 * dc_csv.c	an RFC 4180 CSV reader with physical line numbers
 * dc_template.c {{column}} templates
 * dc_submit.c	addresses, message headers (Date, Message-ID, From,
 *		-t recipients), and the sendmail-compatible `submit`
 * dc_merge.c	`merge`: a template times a CSV of recipients
 * deliverctl.c	main: options, config, the control subcommands
 */
#ifndef DC_H
#define DC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#include "dd_wire.h"

#define DC_ADDR_MAX	254	/* RFC 5321 4.5.3.1.3: 256 with the brackets */

/* ---- growable byte buffer: dd_wire's, aborting on out of memory ---- */

/* A CLI has nothing better to do when memory runs out. */
void dc_buf_add(struct dd_buf *b, const void *p, size_t n);
void dc_buf_adds(struct dd_buf *b, const char *s);
void dc_buf_addc(struct dd_buf *b, char c);
void dc_buf_printf(struct dd_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* NUL-terminates (not counted in len) and returns b->p. */
char *dc_buf_str(struct dd_buf *b);
void dc_buf_free(struct dd_buf *b);
void *dc_xmalloc(size_t n);
void *dc_xrealloc(void *p, size_t n);
char *dc_xstrdup(const char *s);
/* Copy, truncating. */
void dc_strlcpy(char *dst, const char *src, size_t len);

/* ---- SMTP client (dc_smtp.c) ---- */

/* A reply: code (0: connection lost, -1: garbled), first line's text. */
struct dc_reply {
	int code;
	char text[512];		/* "4.2.1 text" of the first line, printable */
	struct dd_buf all;	/* every line's text, each ending "\n" (control) */
};

struct dc_conn {
	int fd;
	unsigned int ext;	/* DC_EXT_* */
	uint64_t size_max;
	bool need_rset;		/* a transaction may be open on the server */
	struct dd_buf in;	/* received, from roff on not yet consumed */
	size_t roff;
	struct dd_buf out;
	unsigned int timeout_ms;
};

#define DC_EXT_PIPELINING	(1U << 0)
#define DC_EXT_CHUNKING		(1U << 1)
#define DC_EXT_8BITMIME		(1U << 2)
#define DC_EXT_SIZE		(1U << 3)
#define DC_EXT_ENHANCED		(1U << 4)

/*
 * "/path" or "./path": unix socket; "host:port" or "[v6]:port": TCP.
 * Returns 0, or an EX_* code with a message in err.
 */
int dc_connect(struct dc_conn *c, const char *where, char *err, size_t errlen);
/* Greeting and EHLO (HELO if EHLO is refused).  0 or EX_*; err set. */
int dc_smtp_hello(struct dc_conn *c, const char *helo, char *err, size_t errlen);
/* One command (no CRLF) and its reply; r->all is reset and filled. */
int dc_smtp_command(struct dc_conn *c, const char *cmd, struct dc_reply *r);
void dc_smtp_quit(struct dc_conn *c);
void dc_conn_close(struct dc_conn *c);
void dc_reply_free(struct dc_reply *r);

/* One message to inject. */
struct dc_msg {
	const char *sender;		/* "" for <> */
	char *const *rcpt;
	unsigned int nrcpt;
	const char *data;		/* CRLF lines, ends with CRLF, unstuffed */
	size_t len;
	bool eightbit;			/* BODY=8BITMIME */
	const char *mail_params;	/* appended to MAIL (" RET=FULL ..."), or NULL */
	const char *rcpt_params;	/* appended to each RCPT, or NULL */
};

struct dc_rcpt_reply {
	int code;
	char text[200];
};

struct dc_result {
	int code;			/* the message's: 250 means durable */
	char text[512];			/* its reply, or the failing MAIL/DATA/BDAT */
	unsigned int nrcpt_ok;
	struct dc_rcpt_reply *rcpt;	/* nrcpt of them (dc_result_free) */
};

/*
 * Inject n messages on one connection.  With PIPELINING every command of
 * the batch goes in one write (BDAT LAST with the body when CHUNKING is
 * offered; with DATA one round trip per message, the body and its dot
 * travelling with the next message's commands).  Returns 0 if the
 * connection is still usable, else EX_TEMPFAIL (lost: messages without
 * a result have code 0).
 */
int dc_smtp_send(struct dc_conn *c, const struct dc_msg *m, unsigned int n,
		 struct dc_result *res);
void dc_result_free(struct dc_result *r);

/* The exit code for a reply code: 2xx 0, 4xx/0 EX_TEMPFAIL, 5xx EX_DATAERR. */
int dc_exit_for(int code);

/*
 * A flat JSON object's member as text (strings unescaped, numbers as
 * written).  Returns true if found.
 */
bool dc_json_get(const char *obj, const char *key, char *val, size_t vlen);
/* Member idx (from 0) of a flat JSON object, as dc_json_get gives it. */
bool dc_json_member(const char *obj, unsigned int idx, struct dd_buf *key,
		    struct dd_buf *val);

/* ---- CSV (dc_csv.c) ---- */

struct dc_csv {
	FILE *f;
	unsigned long line;		/* physical line of the next byte, 1-based */
	struct dd_buf data;		/* field bytes, each NUL-terminated */
	size_t *off;			/* field starts in data */
	char **field;			/* valid after dc_csv_next() */
	unsigned int nfield, cap;
	bool eof;
	bool started;
};

void dc_csv_init(struct dc_csv *c, FILE *f);
void dc_csv_free(struct dc_csv *c);
/*
 * Next record: 1 (c->field[0..nfield)), 0 at the end, -1 a bad record
 * (reason in err; the record was consumed, so go on reading).  *line is
 * the physical line the record starts on.  Blank lines are skipped.  A
 * UTF-8 byte order mark at the start is ignored.
 */
int dc_csv_next(struct dc_csv *c, unsigned long *line, char *err, size_t errlen);

/* ---- templates (dc_template.c) ---- */

struct dc_tseg {
	const char *lit;		/* literal bytes (into the template's copy) */
	size_t len;
	int col;			/* >= 0: a placeholder; its column */
	char *name;			/* the placeholder's name */
	bool header;			/* in the header section */
	unsigned int line;		/* template line, for messages */
};

struct dc_template {
	char *text;			/* copy, literals point here */
	struct dc_tseg *seg;
	unsigned int nseg;
};

/*
 * Parse: "{{ name }}" is a placeholder (spaces around the name are
 * ignored), "{{{{" a literal "{{".  Returns 0, or -1 with "LINE: reason".
 */
int dc_template_parse(struct dc_template *t, const char *text, size_t len,
		      char *err, size_t errlen);
/* Map placeholders to columns; -1 and "LINE: unknown placeholder" if one is missing. */
int dc_template_bind(struct dc_template *t, char *const *cols, unsigned int ncol,
		     char *err, size_t errlen);
/*
 * Fill with a row (bound first).  A value with CR or LF in the header
 * section is refused (-1, reason in err): it would forge header fields.
 */
int dc_template_fill(const struct dc_template *t, char *const *row,
		     unsigned int nrow, struct dd_buf *out, char *err, size_t errlen);
void dc_template_free(struct dc_template *t);

/* ---- addresses and messages (dc_submit.c) ---- */

/* local@domain, RFC 5321 syntax (dot-atom or quoted local part; domain or [literal]). */
bool dc_addr_valid(const char *addr);
/*
 * An RFC 5322 address-list (header value, unfolded or not) into
 * addresses: display names, comments, groups, angle brackets and route
 * removed.  Appends malloc'd strings to *v (count *n).  Returns the
 * number added.
 */
unsigned int dc_addr_list(const char *s, size_t len, char ***v, unsigned int *n);
/* Like dc_addr_list of one address; NULL unless exactly one. */
char *dc_addr_one(const char *s);

/* Normalise LF, CR or CRLF to CRLF; ensure a final CRLF. */
void dc_crlf(const char *in, size_t len, struct dd_buf *out);

/* Header handling for a CRLF message. */
struct dc_prep {
	const char *hostname;		/* for Message-ID */
	const char *from;		/* From: value to add if missing (NULL: none) */
	const char *msgid_tag;		/* NULL: "<time.random.pid@host>"; else "<time.rand.TAG@host>" */
	bool want_rcpts;		/* -t: collect To/Cc/Bcc */
	bool drop_bcc;			/* remove Bcc: */
};

struct dc_hdrinfo {
	char **rcpt;			/* with want_rcpts */
	unsigned int nrcpt;
	char *from_addr;		/* the From: address if exactly one */
	bool had_date, had_msgid, had_from;
	bool eightbit;
};

/*
 * in: CRLF message.  Writes it to out with Date/Message-ID/From added at
 * the end of the header section when missing (and a blank line if the
 * message had no header/body separator), Bcc removed if asked.
 */
void dc_prepare(const struct dc_prep *p, const char *in, size_t len,
		struct dd_buf *out, struct dc_hdrinfo *info);
void dc_hdrinfo_free(struct dc_hdrinfo *h);
/* Is the message's header section (until the blank line) well formed?  0 or the bad line (1-based). */
unsigned int dc_header_check(const char *in, size_t len);

/* RFC 5322 date of t into buf (>= 40). */
void dc_date(int64_t t, char *buf, size_t len);
/* "<sec.rand.tag@host>" */
void dc_msgid(const char *tag, const char *host, char *buf, size_t len);
/* user@hostname of the caller. */
void dc_default_sender(const char *host, char *buf, size_t len);
const char *dc_hostname(void);

/*
 * sendmail mode: read stdin up to EOF (or a "." line unless ignore_dots)
 * into out, CRLF.  Strips a leading mbox "From " line.
 */
void dc_read_message(FILE *in, bool ignore_dots, struct dd_buf *out);

/* ---- subcommands, given the socket to use ---- */

struct dc_global {
	const char *sock;		/* control socket, or host:port; NULL: resolve */
	const char *config;		/* deliverd's config file (-c, sendmail -C) */
	/* Sets sock (and hostname) from config; 0 or EX_*, message printed. */
	int (*resolve)(struct dc_global *g);
	const char *hostname;		/* for EHLO, Message-ID, default sender */
	const char *prog;		/* for messages */
};

int dc_submit_main(struct dc_global *g, int argc, char **argv);
int dc_merge_main(struct dc_global *g, int argc, char **argv);

/* Connect, EHLO; prints the error and returns EX_* on failure. */
int dc_open(struct dc_global *g, struct dc_conn *c);

#endif /* DC_H */
