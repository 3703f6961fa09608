/* SPDX-License-Identifier: GPL-2.0 */
/*
 * RFC 3464 delivery status notifications: a multipart/report message
 * (RFC 6522) with a human-readable part, a message/delivery-status part
 * and the original headers (text/rfc822-headers) or, for RET=FULL, the
 * whole original (message/rfc822), CRLF lines, sent from the null
 * reverse-path so it can never be bounced in turn.  Failure notices
 * (bounces) and "relayed" success notices.
 */
#ifndef DD_BOUNCE_H
#define DD_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dd_bounce_rcpt {
	const char *addr;
	const char *status;		/* "5.1.1" (enhanced code, or derived) */
	const char *remote_mta;		/* "127.0.0.1:2601", or NULL */
	int code;			/* SMTP reply code, 0 when none */
	const char *diag;		/* reply text, or our reason */
	int64_t last_attempt;		/* seconds */
	const char *orcpt;		/* DSN ORCPT as received (addr-type;xtext), or NULL */
};

struct dd_bounce {
	const char *reporting_mta;	/* our hostname */
	const char *from;		/* From: header, bounce_from */
	const char *to;			/* the original sender */
	uint64_t qid;
	int64_t arrival;
	const char *headers;		/* original header block (CRLF lines) */
	size_t headers_len;
	const struct dd_bounce_rcpt *rcpts;
	unsigned int nrcpt;
	int64_t now;			/* Date: */
	/* DSN (RFC 3461) */
	const char *envid;		/* ENVID as received (xtext), or NULL */
	bool relayed;			/* a success notice: Action relayed, Status 2.x.x */
	const char *message;		/* RET=FULL: the whole original, or NULL */
	size_t message_len;
	bool message_global;		/* it was sent with SMTPUTF8: message/global */
	size_t full_max;		/* RET=FULL but over this many bytes: 0, or the limit */
};

/* Build the message (malloc'd, CRLF, ends with CRLF).  0 or -ENOMEM. */
int dd_bounce_build(const struct dd_bounce *b, char **out, size_t *len);

#endif /* DD_BOUNCE_H */
