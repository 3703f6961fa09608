/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Logs: the daemon's own (lines with time, level and thread to stderr or
 * a file) and the delivery log (one JSON object per line per delivery
 * attempt per recipient).  Both are safe from any thread: one write(2)
 * per line on an O_APPEND fd.
 */
#ifndef DD_LOG_H
#define DD_LOG_H

#include <stdint.h>
#include <stdio.h>

enum dd_log_level { DD_LOG_ERR = 0, DD_LOG_WARN, DD_LOG_INFO, DD_LOG_DEBUG };

/* path NULL or "": stderr.  level by name; -EINVAL for an unknown one. */
int dd_log_open(const char *path, const char *level);
/* Name of the calling thread in its lines ("main", "loop0", "commit"). */
void dd_log_thread(const char *name);
void dd_log(enum dd_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define dd_err(...)	dd_log(DD_LOG_ERR, __VA_ARGS__)
#define dd_warn(...)	dd_log(DD_LOG_WARN, __VA_ARGS__)
#define dd_info(...)	dd_log(DD_LOG_INFO, __VA_ARGS__)
#define dd_debug(...)	dd_log(DD_LOG_DEBUG, __VA_ARGS__)

/* Format an error for a caller's buffer (err may be NULL). */
void dd_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One delivery attempt for one recipient. */
struct dd_attempt {
	uint64_t qid;
	const char *rcpt;
	const char *sender;
	const char *dest;		/* the destination (domain) */
	const char *host;		/* "127.0.0.1:25", or NULL if never connected */
	const char *status;		/* delivered | deferred | bounced | expired | held */
	int code;			/* SMTP reply code, 0 for none */
	const char *enh;		/* "4.4.1" or "" */
	const char *reply;		/* reply text, or our reason when code == 0 */
	uint64_t duration_us;		/* connect or transaction start to result */
	unsigned int attempt;		/* 1 for the first */
	const char *transport;		/* "bdat" | "data" | NULL */
	const char *mx;			/* MX host name, NULL for a static route */
	const char *tls;		/* "TLSv1.3", NULL: no TLS */
	const char *tls_cipher;		/* "TLS_AES_256_GCM_SHA384" */
	const char *tls_verify;		/* "verified" | "unverified" | "failed: why" */
	const char *body_io;		/* "evq-sendfile" | "sendfile" | "ktls-sendfile" | "buffered" */
};

/* path: file, "-" for stderr, "none"/NULL for no delivery log. */
int dd_dlog_open(const char *path);
void dd_dlog(const struct dd_attempt *a);
/* At a stop: say how many delivery-log lines were lost and not said yet. */
void dd_dlog_report_lost(void);
/* Escape s as a JSON string body into out (always terminated). */
size_t dd_json_escape(char *out, size_t outlen, const char *s);

#endif /* DD_LOG_H */
