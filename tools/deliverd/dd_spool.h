/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The spool: messages appended in batches to segment files, delivery
 * states appended to a journal per segment, one committer thread that
 * writes and fsyncs each batch for every message and state queued since
 * the last (group commit).  Documentation/deliverd.rst, "Spool format".
 *
 * Threads: dd_spool_submit(), dd_spool_final(), dd_spool_defer(),
 * dd_spool_hold() may be called from any thread.  Callbacks run on the
 * committer thread and must only hand their argument on (to a mailbox).
 */
#ifndef DD_SPOOL_H
#define DD_SPOOL_H

#include "dd.h"

struct dd_spool;

struct dd_spool_conf {
	const char *dir;		/* created if missing */
	uint64_t segment_size;		/* start a new segment past this */
	unsigned int commit_max;	/* most messages in one batch */
	unsigned int commit_delay_us;	/* wait this long for more before fsync (0: none) */
	bool fsync;			/* false only for tests and benchmarks */
};

/* One message to store.  The spool copies what it needs before returning. */
struct dd_submit {
	const char *sender;		/* "" for <> */
	const char *const *rcpts;	/* local@domain */
	unsigned int nrcpt;
	uint32_t flags;			/* DD_MSG_8BIT, DD_MSG_NULLSENDER, DD_MSG_SMTPUTF8 */
	const char *body;		/* CRLF lines, ends with CRLF, not stuffed */
	size_t body_len;
	/*
	 * Header fields stored before body (DKIM-Signature), CRLF lines;
	 * NULL for none.  Separate so that a signature costs no copy of
	 * the message: the record is the one place it is copied to.
	 */
	const char *head;
	size_t head_len;
	const char *envid;		/* DSN ENVID (xtext) or NULL */
	uint8_t ret;			/* enum dd_ret */
	const uint8_t *notify;		/* per recipient DD_NOTIFY_*, or NULL */
	const char *const *orcpt;	/* per recipient ORCPT or NULL; or NULL */
	/*
	 * Called once, on the committer thread, after the record is durable
	 * (msg != NULL, err == 0) or failed (msg == NULL, err < 0: -ENOSPC,
	 * -EIO, ...).  msg is the new index entry: its recipients are
	 * QUEUED and owned by whoever the callback hands them to.
	 */
	void (*done)(void *arg, struct dd_msg *msg, int err);
	void *arg;
};

/*
 * Open (creating) the spool and rebuild the index: for every message with
 * a recipient not final, call found(arg, msg) on the calling thread
 * before returning; recipients DEFERRED keep attempts and next_try, held
 * messages keep DD_MSG_HELD.  Corrupt or torn records are skipped with a
 * log line each (dd_log).  Starts the committer thread.
 */
int dd_spool_open(struct dd_spool **sp, const struct dd_spool_conf *conf,
		  void (*found)(void *arg, struct dd_msg *msg), void *arg);
/* Commit what is queued, stop the committer, close.  Index entries still
 * held by callers stay valid until dd_spool_free_msgs (exit only). */
void dd_spool_close(struct dd_spool *sp);
/*
 * After dd_spool_close(sp) (exit only): free every index entry still
 * pending, then sp itself.  After close only dd_spool_stats() and this.
 */
void dd_spool_free_msgs(struct dd_spool *sp);

/* Queue a message for the next batch; 0 or -errno (-EINVAL, -ENOMEM). */
int dd_spool_submit(struct dd_spool *sp, const struct dd_submit *sub);

/*
 * Journal recipient idx of msg final (DD_RCPT_DELIVERED or
 * DD_RCPT_FAILED).  The caller sets rcpt->state itself first.  When the
 * last pending recipient goes final the spool owns msg: the caller must
 * not touch it afterwards.  A segment whose messages are all final (and
 * which is not the one being appended to) is unlinked with its journal.
 */
void dd_spool_final(struct dd_spool *sp, struct dd_msg *msg, uint32_t idx);
/* Journal a deferral (rcpt attempts and next_try already set). */
void dd_spool_defer(struct dd_spool *sp, struct dd_msg *msg, uint32_t idx);
/* Journal hold (on=true) or release of the whole message. */
void dd_spool_hold(struct dd_spool *sp, struct dd_msg *msg, bool on);

/* Read-only fd of segment seg for sendfile, valid while msg is pending. */
int dd_spool_seg_fd(struct dd_spool *sp, uint32_t seg);

struct dd_spool_stats {
	uint64_t segments, bytes;		/* on disk now */
	uint64_t batches, records, fsyncs;	/* since open */
	uint64_t journal;			/* journal records written since open */
	uint64_t skipped;			/* corrupt/torn at open */
	uint64_t reclaimed;			/* segments unlinked */
};
void dd_spool_stats(struct dd_spool *sp, struct dd_spool_stats *st);

#endif /* DD_SPOOL_H */
