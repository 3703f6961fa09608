/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The injection side of SMTP as a state machine without I/O: the caller
 * feeds what it read, runs the session, writes what the session has to
 * send, and acts on what run() returns.  ESMTP (RFC 5321) with
 * PIPELINING (2920), SIZE (1870), 8BITMIME (6152), CHUNKING (3030),
 * ENHANCEDSTATUSCODES (2034/3463), DSN (3461: RET, ENVID, NOTIFY, ORCPT
 * kept as given) and SMTPUTF8 (6531: UTF-8 addresses only with it).
 *
 * Pipelined commands are processed in order and their replies leave in
 * order.  When a message is complete run() returns DD_SMTPD_MESSAGE; the
 * caller hands it to the spool and reports the outcome later with
 * dd_smtpd_message_done() (250 only once the spool has it durable).
 * Meanwhile the session goes on with pipelined commands, so one client
 * can have several messages in one group commit, but no reply after the
 * message's leaves before it.  At most DD_SMTPD_PENDING messages wait;
 * then run() returns DD_SMTPD_READ without consuming input.
 */
#ifndef DD_SMTPD_H
#define DD_SMTPD_H

#include "dd.h"

#define DD_SMTPD_PENDING	32

struct dd_smtpd_conf {
	const char *hostname;		/* in the greeting, EHLO and Received: */
	size_t max_line;		/* command line, CRLF included (>= 512) */
	size_t max_size;		/* message bytes (SIZE, DATA, BDAT) */
	unsigned int max_rcpts;		/* recipients per message */
	unsigned int max_errors;	/* bad commands before 421 and close */
	bool control;			/* control socket: X-commands allowed */
};

struct dd_smtpd;

enum dd_smtpd_act {
	DD_SMTPD_READ = 1,	/* need more input (flush output first) */
	DD_SMTPD_MESSAGE,	/* a message is complete: dd_smtpd_message() */
	DD_SMTPD_CONTROL,	/* an X-command: dd_smtpd_control() */
	DD_SMTPD_CLOSE,		/* flush output, then close */
};

/*
 * peer: "1.2.3.4" or "unix", for Received:.  Greeting goes to output at
 * once; refuse != NULL makes the greeting "554 5.7.1 <refuse>" (or 421
 * 4.7.0 when temp) and the session answers every command 503 until QUIT,
 * as RFC 5321 3.1 asks.
 */
struct dd_smtpd *dd_smtpd_new(const struct dd_smtpd_conf *conf,
			      const char *peer, const char *refuse, bool temp);
void dd_smtpd_free(struct dd_smtpd *s);

/* Append received bytes (copied).  0, or -ENOMEM. */
int dd_smtpd_feed(struct dd_smtpd *s, const void *buf, size_t len);
/* Bytes fed and not processed yet (the caller bounds it: run() may be
 * waiting for the spool while a client goes on pipelining). */
size_t dd_smtpd_unread(const struct dd_smtpd *s);
/*
 * Records (command lines, DATA lines, 4 KiB of BDAT content) taken so far:
 * a timeout should run from the last change, not from the last byte.
 */
uint64_t dd_smtpd_progress(const struct dd_smtpd *s);
/*
 * The client took too long: "421 4.4.2" goes out (ahead of replies still
 * owed to pending messages), the transaction is dropped, run() closes.
 */
void dd_smtpd_timeout(struct dd_smtpd *s);
/* The peer closed its side: run() ends the session after what is buffered. */
void dd_smtpd_eof(struct dd_smtpd *s);
enum dd_smtpd_act dd_smtpd_run(struct dd_smtpd *s);

/* Bytes waiting to be written, and how many were written. */
void dd_smtpd_output(struct dd_smtpd *s, const char **buf, size_t *len);
void dd_smtpd_written(struct dd_smtpd *s, size_t n);

struct dd_smtpd_msg {
	const char *sender;		/* "" for <> */
	const char *const *rcpts;	/* local@domain, nrcpt of them */
	unsigned int nrcpt;
	uint32_t flags;			/* DD_MSG_8BIT, DD_MSG_NULLSENDER, DD_MSG_SMTPUTF8 */
	const char *body;		/* Received: + message, CRLF, ends CRLF, unstuffed */
	size_t body_len;
	/* DSN (RFC 3461), as the client gave them (xtext) */
	const char *envid;		/* or NULL */
	uint8_t ret;			/* enum dd_ret */
	const uint8_t *notify;		/* DD_NOTIFY_* per recipient, or NULL if none has it */
	const char *const *orcpt;	/* per recipient (NULL: none), or NULL if none has it */
};
/*
 * The message run() just returned DD_SMTPD_MESSAGE for; valid until
 * dd_smtpd_message_done() for it (or dd_smtpd_free()).
 */
const struct dd_smtpd_msg *dd_smtpd_message(struct dd_smtpd *s);
/*
 * Its outcome, in any order among pending messages.  err == 0: "250
 * 2.0.0 Ok: queued as <qid as DD_QID_FMT>"; -ENOSPC: "452 4.3.1 Insufficient
 * system storage"; other: "451 4.3.0 Local error".  Frees m; its reply,
 * and the replies queued after it, become output once every earlier
 * message is done too.
 */
void dd_smtpd_message_done(struct dd_smtpd *s, const struct dd_smtpd_msg *m,
			   int err, uint64_t qid);
/* Messages returned and not yet done. */
unsigned int dd_smtpd_pending(const struct dd_smtpd *s);

/* From DD_SMTPD_CONTROL: the command line without CRLF ("XQUEUE ..."). */
const char *dd_smtpd_control(struct dd_smtpd *s);
/* Answer it: code 250 or an error; text may hold several lines ("\n"). */
void dd_smtpd_control_done(struct dd_smtpd *s, int code, const char *text);

#endif /* DD_SMTPD_H */
