/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The delivery side of SMTP as a state machine without I/O.  One session
 * carries any number of transactions; PIPELINING groups MAIL, RCPT and
 * DATA/BDAT when the server offers it; BDAT ... LAST when it offers
 * CHUNKING (the raw body goes as is), DATA with the dot-stuffed body
 * otherwise.  The body itself never passes through here: run() returns
 * DD_SMTPC_BODY and the caller sends it from the spool with sendfile.
 */
#ifndef DD_SMTPC_H
#define DD_SMTPC_H

#include "dd.h"

struct dd_smtpc;

#define DD_SMTPC_NO_PIPELINING	(1U << 0)	/* do not pipeline even if offered */
#define DD_SMTPC_NO_CHUNKING	(1U << 1)	/* use DATA even if CHUNKING is offered */
#define DD_SMTPC_STARTTLS	(1U << 2)	/* STARTTLS when offered, plain if refused */
#define DD_SMTPC_TLS_REQUIRED	(1U << 3)	/* STARTTLS or fail the session (4.7.4) */

/* The stage a session waits in, for RFC 5321 4.5.3.2 timeouts. */
enum dd_smtpc_stage {
	DD_STAGE_CONNECT = 0,	/* caller's own */
	DD_STAGE_GREETING,	/* 220: initial 5 min */
	DD_STAGE_EHLO,		/* EHLO/HELO: 5 min */
	DD_STAGE_MAIL,		/* MAIL: 5 min */
	DD_STAGE_RCPT,		/* RCPT: 5 min */
	DD_STAGE_DATA,		/* DATA initiation (354): 2 min */
	DD_STAGE_BODY,		/* sending the body: data block, 3 min */
	DD_STAGE_DOT,		/* final reply after the body: 10 min */
	DD_STAGE_RSET,		/* RSET between transactions: 5 min */
	DD_STAGE_QUIT,		/* QUIT: 5 min */
	DD_STAGE_IDLE,		/* between transactions, no command out */
	DD_STAGE_NR,
};

enum dd_smtpc_act {
	DD_SMTPC_READ = 1,	/* write any output, then wait for replies */
	DD_SMTPC_IDLE,		/* ready: dd_smtpc_start() or dd_smtpc_quit() */
	DD_SMTPC_BODY,		/* write output, then send the body, then dd_smtpc_body_sent() */
	DD_SMTPC_DONE,		/* a transaction ended: dd_smtpc_result() */
	DD_SMTPC_CLOSE,		/* write output, then close the connection */
	DD_SMTPC_TLS,		/* TLS handshake now (after 220 to STARTTLS), then dd_smtpc_tls_done() */
};

/* One transaction.  Pointers must stay valid until DD_SMTPC_DONE. */
struct dd_smtpc_msg {
	const char *sender;		/* "" for <> */
	const char *const *rcpts;
	unsigned int nrcpt;
	uint32_t flags;			/* DD_MSG_8BIT, DD_MSG_SMTPUTF8 */
	/* DSN (RFC 3461), sent only if the server offers DSN */
	const char *envid;		/* or NULL */
	uint8_t ret;			/* enum dd_ret */
	const uint8_t *notify;		/* per recipient, or NULL */
	const char *const *orcpt;	/* per recipient (entries may be NULL), or NULL */
	uint64_t raw_len;		/* body for BDAT */
	uint64_t stuffed_len;		/* body for DATA (without the final ".") */
};

/* An SMTP reply: code, enhanced code if any ("4.2.1" or ""), text (last line). */
struct dd_smtp_reply {
	int code;			/* 0: none (connection lost or timeout) */
	char enh[16];
	char text[256];			/* first line's text, printable ASCII */
};

struct dd_smtpc_result {
	/* Whole-transaction reply: to the body, or the failing MAIL/DATA. */
	struct dd_smtp_reply msg;
	/* Per recipient, in order; rcpt[i].code >= 400 means not accepted. */
	const struct dd_smtp_reply *rcpt;
	unsigned int nrcpt;
	/* The server offered DSN: NOTIFY, ORCPT, RET, ENVID went on with it. */
	bool dsn;
};

struct dd_smtpc *dd_smtpc_new(const char *helo, unsigned int flags);
void dd_smtpc_free(struct dd_smtpc *c);

int dd_smtpc_feed(struct dd_smtpc *c, const void *buf, size_t len);
/* Connection lost (or timed out): run() fails the transaction with code 0 and closes. */
void dd_smtpc_eof(struct dd_smtpc *c);
enum dd_smtpc_act dd_smtpc_run(struct dd_smtpc *c);

void dd_smtpc_output(struct dd_smtpc *c, const char **buf, size_t *len);
void dd_smtpc_written(struct dd_smtpc *c, size_t n);

/* From DD_SMTPC_IDLE: begin a transaction (0, or -EINVAL). */
int dd_smtpc_start(struct dd_smtpc *c, const struct dd_smtpc_msg *m);
/* From DD_SMTPC_IDLE: QUIT, then CLOSE. */
void dd_smtpc_quit(struct dd_smtpc *c);

/* From DD_SMTPC_BODY: which body (true: stuffed for DATA) and its length. */
bool dd_smtpc_body_stuffed(const struct dd_smtpc *c);
/* The body is on the wire; the session sends ".\r\n" if DATA, then waits. */
void dd_smtpc_body_sent(struct dd_smtpc *c);

/*
 * From DD_SMTPC_TLS: the handshake is over.  ok: EHLO again, over TLS
 * (what the server said before is forgotten, RFC 3207 4.2); else the
 * session closes without QUIT, why being its reason (code 0).
 */
void dd_smtpc_tls_done(struct dd_smtpc *c, bool ok, const char *why);
/* Is the session encrypted (a handshake succeeded)? */
bool dd_smtpc_tls(const struct dd_smtpc *c);

/* From DD_SMTPC_DONE, valid until the next run(). */
const struct dd_smtpc_result *dd_smtpc_result(const struct dd_smtpc *c);

enum dd_smtpc_stage dd_smtpc_stage(const struct dd_smtpc *c);
/*
 * Complete replies read so far: a stage's timeout runs from the last
 * one, so a server sending a reply a line at a time, for ever, still
 * times out.
 */
unsigned long dd_smtpc_replies(const struct dd_smtpc *c);
/* Greeting or EHLO failed or the session closed: the reply that did it. */
const struct dd_smtp_reply *dd_smtpc_session_reply(const struct dd_smtpc *c);
/* What the server offered (after EHLO). */
#define DD_EXT_PIPELINING	(1U << 0)
#define DD_EXT_CHUNKING		(1U << 1)
#define DD_EXT_8BITMIME		(1U << 2)
#define DD_EXT_SIZE		(1U << 3)
#define DD_EXT_ENHANCED		(1U << 4)
#define DD_EXT_SMTPUTF8		(1U << 5)
#define DD_EXT_DSN		(1U << 6)
#define DD_EXT_STARTTLS		(1U << 7)
unsigned int dd_smtpc_extensions(const struct dd_smtpc *c, uint64_t *size_max);

#endif /* DD_SMTPC_H */
