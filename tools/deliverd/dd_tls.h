/* SPDX-License-Identifier: GPL-2.0 */
/*
 * STARTTLS for outbound sessions (RFC 3207) with OpenSSL: the policies
 * (tls_policy, tls_policy_file), one SSL_CTX for the whole daemon and one
 * non-blocking SSL per session, driven by the caller's event loop.
 *
 * After the handshake the session may have kernel TLS for sending (ktls
 * setting, the tls module, a cipher the kernel knows): the socket then
 * encrypts what is written to it, so a body still goes out with sendfile.
 */
#ifndef DD_TLS_H
#define DD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dd_conf.h"

enum dd_tls_policy {
	DD_TLS_NONE = 0,	/* never STARTTLS */
	DD_TLS_MAY,		/* when offered; plain text on failure */
	DD_TLS_ENCRYPT,		/* required, certificate not checked */
	DD_TLS_VERIFY,		/* required, certificate and host name checked */
};

/*
 * Read tls_policy_file and, unless nothing can use TLS, make the shared
 * context (CA store, kTLS option).  check: for --check, the policies
 * only.  0, or -errno with "FILE:LINE: message" (or the OpenSSL error)
 * in err.
 */
int dd_tls_init(const struct dd_conf *c, bool check, char *err,
		size_t errlen);
void dd_tls_exit(void);

/* The policy for a destination (domain, any case). */
enum dd_tls_policy dd_tls_policy_for(const char *domain);
const char *dd_tls_policy_name(enum dd_tls_policy p);

/*
 * "may" destinations whose handshake failed go without TLS for a while
 * (DD_TLS_PLAIN_HOLD seconds), so the reconnect can deliver at all.
 */
#define DD_TLS_PLAIN_HOLD	3600
void dd_tls_plain_note(const char *domain);
bool dd_tls_plain_now(const char *domain);

/* Can the kernel do TLS at all here (the tls ULP is available)? */
bool dd_tls_kernel_ok(void);

struct dd_tls;

/*
 * A session on the connected socket fd.  name: the host name to send as
 * SNI and to check the certificate against (NULL or an address: none).
 * NULL on error with the reason in err.
 */
struct dd_tls *dd_tls_new(int fd, const char *name, enum dd_tls_policy p,
			  char *err, size_t errlen);
void dd_tls_free(struct dd_tls *t);

/*
 * One step of the handshake: 1 done, 0 in progress (call again when the
 * socket is readable or writable), -1 failed with the reason in err.
 */
int dd_tls_handshake(struct dd_tls *t, char *err, size_t errlen);

/*
 * Read or write like recv/send without blocking: bytes, 0 at the end of
 * the stream (read), -EAGAIN to retry on the next event (for either
 * direction: TLS may need to read to write), or -EIO (reason in err).
 */
ssize_t dd_tls_read(struct dd_tls *t, void *buf, size_t len, char *err,
		    size_t errlen);
ssize_t dd_tls_write(struct dd_tls *t, const void *buf, size_t len,
		     char *err, size_t errlen);
/* Best effort close_notify, without waiting for the peer's. */
void dd_tls_shutdown(struct dd_tls *t);

/* After the handshake, for the delivery log (static strings). */
const char *dd_tls_version(const struct dd_tls *t);
const char *dd_tls_cipher(const struct dd_tls *t);
const char *dd_tls_verified(const struct dd_tls *t);
/* Does the socket encrypt what is written to it (kTLS TX)? */
bool dd_tls_ktls_send(const struct dd_tls *t);

#endif /* DD_TLS_H */
