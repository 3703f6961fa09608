/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DKIM signing (RFC 6376), relaxed/relaxed, with rsa-sha256 and
 * ed25519-sha256 (RFC 8463).  Keys are loaded once at startup from
 * dkim_keys_file; a message is signed with every key of the domain of
 * its From: address, before it is stored, so what the spool holds (and
 * sendfile sends, and a retry sends again) is the signed message.
 *
 * Threads: after dd_dkim_load() the key set is read-only; dd_dkim_sign()
 * may run on any number of threads at once on the same set.
 */
#ifndef DD_DKIM_H
#define DD_DKIM_H

#include <stddef.h>
#include <time.h>

#include "dd_wire.h"

struct dd_dkim;

/*
 * Read "domain selector algorithm keyfile" lines from path ('#' starts a
 * comment, blank lines ignored); algorithm is rsa-sha256 or
 * ed25519-sha256, keyfile a PEM private key (a relative name is taken
 * from path's directory).  headers is dkim_headers (':'-separated, must
 * name From).  *dp is NULL when path is empty or NULL (no signing).
 * Returns 0, or -EINVAL/-ENOENT/-ENOMEM... with "FILE:LINE: message"
 * (or "FILE: message") in err.
 */
int dd_dkim_load(struct dd_dkim **dp, const char *path, const char *headers,
		 char *err, size_t errlen);
void dd_dkim_free(struct dd_dkim *d);
/* Keys loaded (0 for NULL). */
unsigned int dd_dkim_count(const struct dd_dkim *d);

/*
 * Sign msg[0..len) (CRLF lines, as the spool stores it) with every key
 * of its From: domain, t the signature time.  Appends the DKIM-Signature
 * fields (one per key, in the order of the keys file, each ending CRLF)
 * to out; appends nothing when the message has no single From: address
 * or no key exists for its domain.  Returns how many signatures were
 * made, or -ENOMEM / -EIO (the cryptography failed); out is unchanged on
 * error.
 */
int dd_dkim_sign(const struct dd_dkim *d, const char *msg, size_t len,
		 time_t t, struct dd_buf *out);

/* --- canonicalization (RFC 6376 3.4.2, 3.4.4), for tests --- */

/*
 * Relaxed header canonicalization of one field, raw[0..len) as it stands
 * in the message ("Name : value\r\n\tmore\r\n"), appended to out with a
 * final CRLF if crlf.  0 or -ENOMEM.
 */
int dd_dkim_canon_header(struct dd_buf *out, const char *raw, size_t len,
			 bool crlf);
/*
 * Relaxed body canonicalization of body[0..len) appended to out.
 * 0 or -ENOMEM.
 */
int dd_dkim_canon_body(struct dd_buf *out, const char *body, size_t len);

#endif /* DD_DKIM_H */
