/* SPDX-License-Identifier: GPL-2.0 */
/*
 * deliverd: types shared by the daemon's parts.
 *
 * A message lives in a spool segment (dd_spool.h) and, while any of its
 * recipients is not final, in the index in RAM as a struct dd_msg.  Each
 * recipient belongs to one destination (its domain) and each destination
 * to one event-loop thread (hash of the domain), so a recipient's state is
 * only ever touched by that thread and needs no lock; only the message's
 * count of pending recipients is shared, and it is atomic.
 */
#ifndef DD_H
#define DD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DD_ADDR_MAX	256	/* RFC 5321 4.5.3.1.3: path, with the brackets */
#define DD_DOMAIN_MAX	255

/* struct dd_msg.flags */
#define DD_MSG_8BIT	(1U << 0)	/* BODY=8BITMIME at injection */
#define DD_MSG_NULLSENDER (1U << 1)	/* MAIL FROM:<>: a bounce; never bounced */
#define DD_MSG_STUFFED	(1U << 2)	/* a separate dot-stuffed copy is stored */
#define DD_MSG_HELD	(1U << 3)	/* deliverctl hold */
#define DD_MSG_SMTPUTF8	(1U << 4)	/* MAIL ... SMTPUTF8 (RFC 6531) at injection */

/* struct dd_msg.ret: RFC 3461 RET */
enum dd_ret { DD_RET_NONE = 0, DD_RET_FULL, DD_RET_HDRS };

/* struct dd_rcpt.notify: RFC 3461 NOTIFY; 0 when not given */
#define DD_NOTIFY_NEVER	(1U << 0)
#define DD_NOTIFY_SUCCESS	(1U << 1)
#define DD_NOTIFY_FAILURE	(1U << 2)
#define DD_NOTIFY_DELAY	(1U << 3)

/* struct dd_rcpt.state */
enum dd_rcpt_state {
	DD_RCPT_QUEUED = 0,	/* waiting for a delivery attempt */
	DD_RCPT_DEFERRED,	/* temporary failure, next_try set */
	DD_RCPT_ACTIVE,		/* in a transaction now */
	DD_RCPT_DELIVERED,	/* final: 2xx from the server */
	DD_RCPT_FAILED,		/* final: 5xx or expired; bounce sent */
};

static inline bool dd_rcpt_final(unsigned int state)
{
	return state == DD_RCPT_DELIVERED || state == DD_RCPT_FAILED;
}

struct dd_msg;

struct dd_rcpt {
	char *addr;		/* local@domain, no brackets */
	const char *domain;	/* points into addr, after the '@' */
	struct dd_msg *msg;
	uint8_t state;		/* enum dd_rcpt_state */
	uint8_t held;		/* deliverctl hold (owner thread only) */
	uint8_t notify;		/* DD_NOTIFY_*, 0: not given */
	uint16_t attempts;
	uint32_t idx;		/* index in msg->rcpt[] */
	int64_t next_try;	/* CLOCK_REALTIME seconds, for DEFERRED */
	char *orcpt;		/* ORCPT as given ("rfc822;a@b", xtext), or NULL */
	struct dd_rcpt *next;	/* the destination's queue (owner thread only) */
};

/*
 * One message in the index.  Immutable after the spool creates it, except
 * rcpt[i] (owned by the thread of rcpt[i].domain), flags' DD_MSG_HELD (set
 * by the owning threads), and pending.
 */
struct dd_msg {
	uint64_t id;		/* queue id, unique for the spool's life */
	uint32_t seg;		/* segment number */
	uint32_t flags;		/* DD_MSG_* */
	uint64_t raw_off;	/* CRLF body (with our Received:) in the segment */
	uint64_t raw_len;
	uint64_t stuffed_off;	/* dot-stuffed body; == raw_* if no line starts with '.' */
	uint64_t stuffed_len;
	int64_t arrival;	/* CLOCK_REALTIME seconds */
	char *sender;		/* "" for the null reverse-path */
	char *envid;		/* DSN ENVID as given (xtext), or NULL */
	uint8_t ret;		/* enum dd_ret */
	uint32_t nrcpt;
	struct dd_rcpt *rcpt;
	atomic_uint pending;	/* recipients not final */
};

static inline int64_t dd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static inline uint64_t dd_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * FNV-1a (32 bits) over a name with its ASCII letters lowercased, so a
 * domain or host name hashes the same in any case.  seed is
 * DD_HASH_SEED, or another value for a hash independent of that one.
 */
#define DD_HASH_SEED	2166136261u

static inline uint32_t dd_hash_name(const char *s, uint32_t seed)
{
	uint32_t h = seed;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * 16777619u;
	}
	return h;
}

/* Queue ids print as 16 hex digits. */
#define DD_QID_FMT	"%016llX"
#define DD_QID(m)	((unsigned long long)(m)->id)

#endif /* DD_H */
