/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wire-format helpers shared by deliverd's parts: a growable byte buffer,
 * RFC 5321 paths and ESMTP parameters, CRLF normalisation, dot-stuffing,
 * RFC 5322 header blocks and address lists (for sendmail -t), dates.
 *
 * Nothing here does I/O or keeps global state; every function may be
 * called from any thread on its own arguments.
 */
#ifndef DD_WIRE_H
#define DD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dd.h"

/*
 * A growable byte buffer.  p is NULL until the first byte is added; after
 * that p[len] is always '\0' (so text can be used as a C string), and the
 * bytes may contain NULs.  All-zero is a valid empty buffer.
 */
struct dd_buf {
	char *p;
	size_t len;
	size_t cap;		/* allocated, > len when p != NULL */
};

#define DD_BUF_INIT	{ NULL, 0, 0 }

static inline void dd_buf_init(struct dd_buf *b)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

void dd_buf_free(struct dd_buf *b);
/* Room for more bytes (and the '\0') without reallocating.  0 or -ENOMEM. */
int dd_buf_reserve(struct dd_buf *b, size_t more);
/* Append; 0 or -ENOMEM (the buffer is unchanged on failure). */
int dd_buf_add(struct dd_buf *b, const void *data, size_t n);
int dd_buf_addc(struct dd_buf *b, char c);
int dd_buf_adds(struct dd_buf *b, const char *s);
int dd_buf_addf(struct dd_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Remove the first n bytes (n <= len). */
void dd_buf_drop(struct dd_buf *b, size_t n);
/* Cut to n bytes (n <= len). */
void dd_buf_truncate(struct dd_buf *b, size_t n);
static inline void dd_buf_clear(struct dd_buf *b)
{
	dd_buf_truncate(b, 0);
}
/*
 * Hand over the storage (malloc'd, '\0'-terminated, never NULL unless out
 * of memory) and leave the buffer empty; *len gets the length if non-NULL.
 */
char *dd_buf_detach(struct dd_buf *b, size_t *len);

/* A growable vector of malloc'd strings. */
struct dd_strv {
	char **v;
	size_t n;
	size_t cap;
};

#define DD_STRV_INIT	{ NULL, 0, 0 }

/* Append a copy of s[0..len) ('\0' added).  0 or -ENOMEM. */
int dd_strv_add(struct dd_strv *sv, const char *s, size_t len);
void dd_strv_free(struct dd_strv *sv);

/* --- RFC 5321 paths and parameters --- */

/* dd_wire_addr_check() and dd_wire_path() flags */
#define DD_PATH_NULL		(1U << 0)	/* accept "" / "<>" (reverse-path) */
#define DD_PATH_NODOMAIN	(1U << 1)	/* accept a local part alone */
#define DD_PATH_UTF8		(1U << 2)	/* RFC 6531: UTF-8 in local part and domain */

/* Longest local@domain without the brackets, not counting the '\0'. */
#define DD_WIRE_ADDR_LEN	(DD_ADDR_MAX - 2)

/*
 * Is s[0..len) a valid RFC 5321 Mailbox "local@domain" (no brackets)?
 * Local-part: Dot-string or Quoted-string, at most 64 octets.  Domain:
 * LDH labels of 1-63 octets, at most 255, no trailing dot; or an address
 * literal [1.2.3.4] / [IPv6:...].  ASCII only, unless DD_PATH_UTF8:
 * then well-formed UTF-8 characters count as atext and qtext, and as
 * label characters in the domain (no IDNA conversion; lengths in octets).
 * Returns 0, -EINVAL (syntax, a label over 63 octets included),
 * -ENAMETOOLONG (local part over 64, domain over 255 or the whole over
 * DD_WIRE_ADDR_LEN octets), -EDESTADDRREQ (no "@domain" and no
 * DD_PATH_NODOMAIN).
 */
int dd_wire_addr_check(const char *s, size_t len, unsigned int flags);
/* Is s[0..len) well-formed UTF-8 (RFC 3629)? */
bool dd_wire_utf8_ok(const char *s, size_t len);
/* A domain (or address literal) alone: true if valid. */
bool dd_wire_domain_ok(const char *d, size_t len);

/*
 * Parse a Path "<local@domain>" at the start of s[0..len).  On success
 * writes "local@domain" ("" for <> with DD_PATH_NULL) to out, which must
 * hold DD_ADDR_MAX bytes, and sets *rest (if non-NULL) just after the
 * '>'.  Returns 0, -EINVAL (syntax: no brackets, bad characters),
 * -ENAMETOOLONG, -EDESTADDRREQ (see dd_wire_addr_check), or -EOPNOTSUPP
 * for a source route "<@a,@b:x@y>" (never accepted).
 */
int dd_wire_path(const char *s, size_t len, unsigned int flags, char *out,
		 const char **rest);

/* One ESMTP parameter: keyword and value point into the parsed line. */
struct dd_wire_param {
	const char *kw;
	size_t kwlen;
	const char *val;	/* NULL when the keyword has no "=value" */
	size_t vallen;
};

/*
 * Parse the parameters after a path: s[0..len) is "" or " KW[=VAL]..."
 * (SP-separated; esmtp-keyword and esmtp-value of RFC 5321 4.1.2,
 * trailing spaces allowed).  Returns how many were stored in p[0..max),
 * -EINVAL on bad syntax, -E2BIG when there are more than max.
 */
int dd_wire_params(const char *s, size_t len, struct dd_wire_param *p,
		   unsigned int max);
/* Case-insensitive keyword test. */
bool dd_wire_param_is(const struct dd_wire_param *p, const char *kw);

/* --- message bodies --- */

/*
 * Append in[0..len) to out with every bare LF turned into CRLF (a CR not
 * followed by LF is kept as it is).  Works on a body fed in pieces: a CR
 * at the end of out followed by an LF at the start of in is one CRLF.
 * 0 or -ENOMEM.
 */
int dd_wire_crlf(struct dd_buf *out, const void *in, size_t len);
/* Make a non-empty out end with CRLF (a trailing CR gets its LF).  0 or -ENOMEM. */
int dd_wire_end_crlf(struct dd_buf *out);

/*
 * Lines of in[0..len) that start with '.', i.e. how many octets
 * dd_wire_stuff() adds; 0 means the stuffed copy is the same.  A line
 * starts at offset 0 and after every LF (bare or not).
 */
size_t dd_wire_stuff_count(const void *in, size_t len);
/* Append in with a '.' added before every line starting with '.'. */
int dd_wire_stuff(struct dd_buf *out, const void *in, size_t len);
/*
 * Append in with one leading '.' removed from every line that starts with
 * one.  in is the data between DATA's 354 and the final ".\r\n" (which is
 * not part of it).  0 or -ENOMEM.
 */
int dd_wire_unstuff(struct dd_buf *out, const void *in, size_t len);

/* --- RFC 5322 headers --- */

/*
 * The header block of msg[0..len): returns its length (through the line
 * end of its last field) and sets *body (if non-NULL) to where the body
 * starts (after the empty line, or at the first line that is neither a
 * field nor a continuation, or len).  Lines end with LF or CRLF.
 */
size_t dd_wire_header_end(const char *msg, size_t len, size_t *body);

/* One header field, pointing into the block. */
struct dd_wire_field {
	const char *name;	/* field name, without the ':' */
	size_t namelen;
	const char *value;	/* after the ':', folded, without the final line end */
	size_t valuelen;
	const char *raw;	/* the whole field, with its final line end */
	size_t rawlen;
};

/*
 * Iterate over the fields of a header block hdr[0..len) (as returned by
 * dd_wire_header_end), *pos starting at 0.  Returns 1 with *f set, 0 at
 * the end.  A line without a ':' (malformed) is skipped.
 */
int dd_wire_header_next(const char *hdr, size_t len, size_t *pos,
			struct dd_wire_field *f);
/* Case-insensitive field-name test. */
bool dd_wire_field_is(const struct dd_wire_field *f, const char *name);
/*
 * Append the unfolded value (RFC 5322 2.2.3: line ends before WSP
 * removed; leading and trailing WSP trimmed).  0 or -ENOMEM.
 */
int dd_wire_unfold(struct dd_buf *out, const char *value, size_t len);

/*
 * The addresses of an RFC 5322 address-list (unfolded or not): mailboxes
 * "a@b", "Name <a@b>", "\"Q, N\" <a@b> (comment)", groups "G: a@b, c@d;"
 * (and "undisclosed-recipients:;"), obsolete routes "<@x:a@b>" (dropped).
 * Comments and display names are dropped, quoted local parts kept as
 * written.  Each element that is a valid address (dd_wire_addr_check
 * with flags) is appended to good; every other non-empty element to bad
 * (if non-NULL), as found with whitespace and comments removed.
 * 0 or -ENOMEM.
 */
int dd_wire_addr_list(const char *val, size_t len, unsigned int flags,
		      struct dd_strv *good, struct dd_strv *bad);

/*
 * sendmail -t: the recipients of the message msg[0..len): those of every
 * Resent-To, Resent-Cc and Resent-Bcc field if there is any Resent-
 * recipient field, else of every To, Cc and Bcc field.  Same good/bad/
 * flags as dd_wire_addr_list.  0 or -ENOMEM.
 */
int dd_wire_header_rcpts(const char *msg, size_t len, unsigned int flags,
			 struct dd_strv *good, struct dd_strv *bad);
/*
 * Append msg[0..len) to out without the header fields named in names
 * (NULL-terminated, case-insensitive), e.g. { "Bcc", "Resent-Bcc", NULL }.
 * The body is copied unchanged.  0 or -ENOMEM.
 */
int dd_wire_header_remove(struct dd_buf *out, const char *msg, size_t len,
			  const char *const *names);

/*
 * RFC 5322 date-time of t in local time with a numeric zone,
 * "Tue, 3 Jan 2006 15:04:05 +0100" (English names, no locale).  Returns
 * the length written to buf (at most 31 + '\0'); sz >= 32.
 */
size_t dd_wire_date(char *buf, size_t sz, time_t t);

#endif /* DD_WIRE_H */
