// SPDX-License-Identifier: GPL-2.0
/*
 * STARTTLS: see dd_tls.h.
 *
 * One SSL_CTX for every worker: made before the workers start and never
 * changed after, which is how OpenSSL allows sharing it between threads;
 * each session has its own SSL.  OpenSSL's error queue is per thread, so
 * every call clears it first and reads it right after a failure.
 *
 * Policy file: "domain policy" lines, '#' to the end of the line is a
 * comment; domain as in routes_file (a name, ".name" for its subdomains,
 * "*"), policy none, may, encrypt or verify.  Looked up like routes (a
 * struct dd_dmap): the domain itself, then its parents as ".suffix", the
 * longest first, then "*", then tls_policy.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "dd.h"
#include "dd_lines.h"
#include "dd_log.h"
#include "dd_tls.h"

/* What a domain pattern of tls_policy_file maps to. */
struct pol {
	enum dd_tls_policy p;
	unsigned int line;
};

static struct {
	SSL_CTX *ctx;
	enum dd_tls_policy def;
	struct dd_dmap pols;	/* tls_policy_file */
	bool ktls;		/* the ktls setting */
	bool kernel_ok;		/* the tls ULP is available */
	atomic_bool told;	/* kTLS use logged once */
} tls;

static const char *const pol_names[] = {
	[DD_TLS_NONE] = "none", [DD_TLS_MAY] = "may",
	[DD_TLS_ENCRYPT] = "encrypt", [DD_TLS_VERIFY] = "verify",
};

const char *dd_tls_policy_name(enum dd_tls_policy p)
{
	return p <= DD_TLS_VERIFY ? pol_names[p] : "?";
}

static int pol_parse(const char *s, enum dd_tls_policy *p)
{
	unsigned int i;

	for (i = 0; i <= DD_TLS_VERIFY; i++)
		if (!strcasecmp(s, pol_names[i])) {
			*p = i;
			return 0;
		}
	return -EINVAL;
}

/* OpenSSL's oldest error on this thread, or fallback. */
static void ssl_reason(char *err, size_t errlen, const char *fallback)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s", buf);
	} else {
		snprintf(err, errlen, "%s", fallback);
	}
	ERR_clear_error();
}

/* ---- policies ---- */

/* One "domain policy" line into the map arg. */
static int pol_line(void *arg, char *line, unsigned int lineno, char *msg,
		    size_t msglen)
{
	enum dd_tls_policy p;
	char *f[2], *dom;
	struct pol *e;
	void *v;
	int ret;

	if (!dd_lines_fields(line, f, 2)) {
		dd_errf(msg, msglen, "expected 'domain policy'");
		return -EINVAL;
	}
	dom = f[0];
	/* The message shows the domain as written, before it is normalized. */
	dd_errf(msg, msglen, "bad domain '%s'", dom);
	if (!dd_domain_pattern(dom))
		return -EINVAL;
	if (pol_parse(f[1], &p)) {
		dd_errf(msg, msglen, "unknown policy '%s' (none, may, encrypt "
			"or verify)", f[1]);
		return -EINVAL;
	}
	ret = dd_dmap_add(arg, dom, sizeof(*e), &v);
	e = v;
	if (ret == -EEXIST) {
		dd_errf(msg, msglen, "domain '%s' again (first on line %u)", dom,
			e->line);
		return -EINVAL;
	}
	if (ret)
		return ret;
	e->p = p;
	e->line = lineno;
	return 0;
}

static int pols_load(const char *path, char *err, size_t errlen)
{
	struct dd_dmap m = { 0 };
	int ret = dd_lines_read(path, pol_line, &m, err, errlen);

	if (ret) {
		dd_dmap_free(&m);
		return ret;
	}
	tls.pols = m;
	return 0;
}

enum dd_tls_policy dd_tls_policy_for(const char *domain)
{
	const struct pol *e = dd_dmap_lookup(&tls.pols, domain);

	return e ? e->p : tls.def;
}

/* ---- failed handshakes under "may" ---- */

#define PLAIN_BUCKETS	256
#define PLAIN_MAX	4096	/* entries; expired ones go first */

struct plain {
	struct plain *next;
	int64_t until;
	char domain[];
};

static pthread_mutex_t plain_lock = PTHREAD_MUTEX_INITIALIZER;
static struct plain *plain_tab[PLAIN_BUCKETS];
static unsigned int plain_n;

static unsigned int plain_hash(const char *s)
{
	return dd_hash_name(s, DD_HASH_SEED) % PLAIN_BUCKETS;
}

/* Drop expired entries (all of them when "all"); lock held. */
static void plain_prune(int64_t now, bool all)
{
	unsigned int i;

	for (i = 0; i < PLAIN_BUCKETS; i++) {
		struct plain **pp = &plain_tab[i];

		while (*pp) {
			struct plain *e = *pp;

			if (all || e->until <= now) {
				*pp = e->next;
				free(e);
				plain_n--;
			} else {
				pp = &e->next;
			}
		}
	}
}

void dd_tls_plain_note(const char *domain)
{
	int64_t now = dd_now();
	unsigned int h = plain_hash(domain);
	struct plain *e;
	size_t len = strlen(domain);

	pthread_mutex_lock(&plain_lock);
	for (e = plain_tab[h]; e; e = e->next)
		if (!strcasecmp(e->domain, domain))
			break;
	if (!e) {
		if (plain_n >= PLAIN_MAX)
			plain_prune(now, false);
		/* Still full: forget them all rather than grow without end. */
		if (plain_n >= PLAIN_MAX)
			plain_prune(now, true);
		e = malloc(sizeof(*e) + len + 1);
		if (e) {
			memcpy(e->domain, domain, len + 1);
			e->next = plain_tab[h];
			plain_tab[h] = e;
			plain_n++;
		}
	}
	if (e)
		e->until = now + DD_TLS_PLAIN_HOLD;
	pthread_mutex_unlock(&plain_lock);
}

bool dd_tls_plain_now(const char *domain)
{
	unsigned int h = plain_hash(domain);
	int64_t now = dd_now();
	struct plain **pp, *e;
	bool r = false;

	pthread_mutex_lock(&plain_lock);
	for (pp = &plain_tab[h]; (e = *pp); pp = &e->next) {
		if (strcasecmp(e->domain, domain))
			continue;
		if (e->until > now) {
			r = true;
		} else {
			*pp = e->next;
			free(e);
			plain_n--;
		}
		break;
	}
	pthread_mutex_unlock(&plain_lock);
	return r;
}

/* ---- the context ---- */

static bool ulp_listed(void)
{
	char buf[256];
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
	bool r = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		char *save = NULL, *w;

		for (w = strtok_r(buf, " \t\n", &save); w;
		     w = strtok_r(NULL, " \t\n", &save))
			if (!strcmp(w, "tls"))
				r = true;
	}
	fclose(f);
	return r;
}

/*
 * The kernel loads the tls module on the first TCP_ULP "tls" when we may
 * load modules; a module already built in or loaded is listed.
 */
static bool kernel_tls(void)
{
	struct utsname u;
	struct stat st;
	char path[400];

	if (ulp_listed())
		return true;
	if (uname(&u))
		return false;
	snprintf(path, sizeof(path), "/lib/modules/%s/kernel/net/tls",
		 u.release);
	/* A loadable module helps only if we may load it. */
	return stat(path, &st) == 0 && geteuid() == 0;
}

bool dd_tls_kernel_ok(void)
{
	return tls.kernel_ok;
}

int dd_tls_init(const struct dd_conf *c, bool check, char *err,
		size_t errlen)
{
	char why[256];
	int r;

	if (pol_parse(c->tls_policy, &tls.def)) {
		dd_errf(err, errlen, "tls_policy: unknown policy '%s'",
			c->tls_policy);
		return -EINVAL;
	}
	if (c->tls_policy_file && c->tls_policy_file[0]) {
		r = pols_load(c->tls_policy_file, err, errlen);
		if (r)
			return r;
	}
	if (check)
		return 0;
	tls.ktls = c->ktls;
	tls.ctx = SSL_CTX_new(TLS_client_method());
	if (!tls.ctx)
		goto ssl_err;
	/*
	 * Servers often close right after 221 without close_notify: that is
	 * the end of the session, not an error worth a reason.  Partial
	 * writes let a write report what went out; the buffer may move
	 * between retries (the command buffer grows); idle sessions free
	 * OpenSSL's buffers.
	 */
	SSL_CTX_set_options(tls.ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
			    SSL_OP_NO_COMPRESSION |
			    (tls.ktls ? SSL_OP_ENABLE_KTLS : 0));
	SSL_CTX_set_mode(tls.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(tls.ctx, SSL_SESS_CACHE_OFF);
	if (c->tls_ca_file[0] || c->tls_ca_path[0]) {
		if (!SSL_CTX_load_verify_locations(tls.ctx,
				c->tls_ca_file[0] ? c->tls_ca_file : NULL,
				c->tls_ca_path[0] ? c->tls_ca_path : NULL)) {
			ssl_reason(why, sizeof(why), "cannot load");
			dd_errf(err, errlen, "tls_ca_file %s / tls_ca_path %s: %s",
				c->tls_ca_file, c->tls_ca_path, why);
			dd_tls_exit();
			return -EINVAL;
		}
	} else if (!SSL_CTX_set_default_verify_paths(tls.ctx)) {
		goto ssl_err;
	}
	tls.kernel_ok = kernel_tls();
	if (!tls.ktls)
		dd_info("TLS: kernel TLS off (ktls = no): bodies over TLS are "
			"encrypted in userspace");
	else if (tls.kernel_ok)
		dd_info("TLS: kernel TLS possible (tls ULP): bodies over TLS go "
			"with sendfile when the cipher allows");
	else
		dd_info("TLS: kernel TLS not available (no \"tls\" in "
			"/proc/sys/net/ipv4/tcp_available_ulp): bodies over TLS "
			"are encrypted in userspace");
	return 0;
ssl_err:
	ssl_reason(why, sizeof(why), "out of memory");
	dd_errf(err, errlen, "TLS: %s", why);
	dd_tls_exit();
	return -ENOMEM;
}

void dd_tls_exit(void)
{
	SSL_CTX_free(tls.ctx);
	tls.ctx = NULL;
	dd_dmap_free(&tls.pols);
	pthread_mutex_lock(&plain_lock);
	plain_prune(0, true);
	pthread_mutex_unlock(&plain_lock);
}

/* ---- sessions ---- */

struct dd_tls {
	SSL *ssl;
	enum dd_tls_policy p;
	bool ktls_send;
	const char *verified;
};

struct dd_tls *dd_tls_new(int fd, const char *name, enum dd_tls_policy p,
			  char *err, size_t errlen)
{
	struct dd_tls *t;
	unsigned char ip[16];
	bool is_ip = false;

	if (!tls.ctx) {
		snprintf(err, errlen, "TLS is not set up");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->p = p;
	ERR_clear_error();
	t->ssl = SSL_new(tls.ctx);
	if (!t->ssl || !SSL_set_fd(t->ssl, fd))
		goto fail;
	SSL_set_connect_state(t->ssl);
	if (name && *name) {
		is_ip = inet_pton(AF_INET, name, ip) == 1 ||
			inet_pton(AF_INET6, name, ip) == 1;
		/* RFC 6066 3: no address literals as SNI. */
		if (is_ip) {
			if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
							   name))
				goto fail;
		} else if (!SSL_set_tlsext_host_name(t->ssl, name) ||
			   !SSL_set1_host(t->ssl, name)) {
			goto fail;
		}
	}
	/*
	 * verify fails the handshake on a bad chain or name (and tells the
	 * server why with an alert); the others only report what they saw.
	 */
	SSL_set_verify(t->ssl, p == DD_TLS_VERIFY ? SSL_VERIFY_PEER :
		       SSL_VERIFY_NONE, NULL);
	if (p == DD_TLS_VERIFY && !(name && *name)) {
		snprintf(err, errlen, "no host name to verify the certificate "
			 "against");
		dd_tls_free(t);
		return NULL;
	}
	return t;
fail:
	ssl_reason(err, errlen, "out of memory");
	dd_tls_free(t);
	return NULL;
}

void dd_tls_free(struct dd_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

static void tell_ktls(struct dd_tls *t)
{
	bool no = false;

	if (!tls.ktls || !atomic_compare_exchange_strong(&tls.told, &no, true))
		return;
	if (t->ktls_send)
		dd_info("TLS: kernel TLS in use (%s %s): bodies go with "
			"sendfile", SSL_get_version(t->ssl),
			SSL_get_cipher_name(t->ssl));
	else
		dd_info("TLS: no kernel TLS for %s %s%s: bodies are encrypted "
			"in userspace", SSL_get_version(t->ssl),
			SSL_get_cipher_name(t->ssl), tls.kernel_ok ? "" :
			" (no tls ULP)");
}

int dd_tls_handshake(struct dd_tls *t, char *err, size_t errlen)
{
	int r, e, saved;
	long v;

	ERR_clear_error();
	errno = 0;
	r = SSL_connect(t->ssl);
	saved = errno;
	if (r == 1) {
		v = SSL_get_verify_result(t->ssl);
		t->verified = v == X509_V_OK &&
			      SSL_get0_peer_certificate(t->ssl) ?
			      "verified" : "unverified";
		t->ktls_send = BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0;
		tell_ktls(t);
		return 1;
	}
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return 0;
	}
	v = SSL_get_verify_result(t->ssl);
	if (t->p == DD_TLS_VERIFY && v != X509_V_OK) {
		snprintf(err, errlen, "certificate verification failed: %s",
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
		return -1;
	}
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
		snprintf(err, errlen, "%s", saved ? strerror(saved) :
			 "connection closed by the server");
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(err, errlen, "connection closed by the server");
		ERR_clear_error();
		return -1;
	}
	ssl_reason(err, errlen, "handshake failed");
	return -1;
}

/* What a failed read or write means. */
static ssize_t io_error(struct dd_tls *t, int r, int saved, bool rd,
			char *err, size_t errlen)
{
	int e = SSL_get_error(t->ssl, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		if (rd)
			return 0;
		snprintf(err, errlen, "TLS session closed");
		return -EIO;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error()) {
			if (rd && !saved)
				return 0;
			snprintf(err, errlen, "%s", saved ? strerror(saved) :
				 "connection closed");
			return -EIO;
		}
		break;
	}
	ssl_reason(err, errlen, "TLS error");
	return -EIO;
}

ssize_t dd_tls_read(struct dd_tls *t, void *buf, size_t len, char *err,
		    size_t errlen)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(t->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return io_error(t, r, errno, true, err, errlen);
}

ssize_t dd_tls_write(struct dd_tls *t, const void *buf, size_t len,
		     char *err, size_t errlen)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(t->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return io_error(t, r, errno, false, err, errlen);
}

void dd_tls_shutdown(struct dd_tls *t)
{
	if (!t || !SSL_is_init_finished(t->ssl))
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}

const char *dd_tls_version(const struct dd_tls *t)
{
	return SSL_get_version(t->ssl);
}

const char *dd_tls_cipher(const struct dd_tls *t)
{
	return SSL_get_cipher_name(t->ssl);
}

const char *dd_tls_verified(const struct dd_tls *t)
{
	return t->verified ? t->verified : "unverified";
}

bool dd_tls_ktls_send(const struct dd_tls *t)
{
	return t->ktls_send;
}
