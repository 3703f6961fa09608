// SPDX-License-Identifier: GPL-2.0
/*
 * DKIM signing, RFC 6376 with relaxed/relaxed canonicalization, keys
 * rsa-sha256 and ed25519-sha256 (RFC 8463), through OpenSSL 3.
 *
 * A signature covers the canonicalized body (its SHA-256 is bh=) and the
 * canonicalized header fields named in h=, followed by the DKIM-Signature
 * field itself with an empty b=.  The message is in memory in one piece,
 * so the body is canonicalized in one pass straight into the digest, and
 * its hash is shared by all the signatures of the message.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dd_dkim.h"
#include "dd_lines.h"
#include "dd_log.h"

/* Longest line of our DKIM-Signature field (RFC 5322 2.1.1: 78). */
#define DKIM_WIDTH	76
/* RFC 8301: RSA keys under 1024 bits must not be used. */
#define DKIM_RSA_MIN	1024
#define SHA256_LEN	32
/* The base64 of a SHA-256 hash, with its '\0'. */
#define SHA256_B64	45

enum dkim_alg { ALG_RSA, ALG_ED25519 };

static const char *const alg_name[] = {
	[ALG_RSA] = "rsa-sha256",
	[ALG_ED25519] = "ed25519-sha256",
};

struct dkim_key {
	char *domain;		/* lowercase */
	char *selector;
	enum dkim_alg alg;
	EVP_PKEY *pkey;
	unsigned int line;	/* keeps the file's order within a domain */
};

struct dd_dkim {
	struct dkim_key *keys;	/* sorted by domain, then line */
	unsigned int nkeys;
	char **hdrs;		/* dkim_headers, lowercase */
	unsigned int nhdrs;
	EVP_MD *sha256;		/* fetched once, not on every message */
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* --- canonicalization --- */

int dd_dkim_canon_header(struct dd_buf *out, const char *raw, size_t len,
			 bool crlf)
{
	const char *colon = memchr(raw, ':', len);
	size_t n, i, o;
	bool space = false, started = false;
	char *p;

	/* The field's own line end is not part of it. */
	while (len && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
		len--;
	if (!colon || (size_t)(colon - raw) > len)
		colon = raw + len;
	if (dd_buf_reserve(out, len + 3))
		return -ENOMEM;
	p = out->p;
	o = out->len;
	/* name: lowercase, without the WSP before the colon */
	n = (size_t)(colon - raw);
	while (n && is_wsp(raw[n - 1]))
		n--;
	for (i = 0; i < n; i++)
		p[o++] = (char)tolower((unsigned char)raw[i]);
	p[o++] = ':';
	/*
	 * value: unfolded (the line ends go, the WSP after them stays and
	 * joins the run it starts), WSP runs made one SP, none at the ends.
	 */
	for (i = (size_t)(colon - raw) + 1; i < len; i++) {
		char c = raw[i];

		if (c == '\n' ||
		    (c == '\r' && i + 1 < len && raw[i + 1] == '\n'))
			continue;
		if (is_wsp(c)) {
			space = true;
			continue;
		}
		if (space && started)
			p[o++] = ' ';
		space = false;
		started = true;
		p[o++] = c;
	}
	if (crlf) {
		p[o++] = '\r';
		p[o++] = '\n';
	}
	p[o] = '\0';
	out->len = o;
	return 0;
}

/* Where canonical body bytes go: a buffer, or a digest. */
struct sink {
	char buf[8192];
	size_t n;
	int (*put)(void *arg, const char *p, size_t n);
	void *arg;
};

static int sink_flush(struct sink *s)
{
	int err = s->n ? s->put(s->arg, s->buf, s->n) : 0;

	s->n = 0;
	return err;
}

static int sink_add(struct sink *s, const char *p, size_t n)
{
	if (n > sizeof(s->buf) - s->n) {
		if (sink_flush(s))
			return -ENOMEM;
		if (n > sizeof(s->buf))
			return s->put(s->arg, p, n);
	}
	memcpy(s->buf + s->n, p, n);
	s->n += n;
	return 0;
}

/*
 * RFC 6376 3.4.4: WSP at line ends dropped, other WSP runs made one SP,
 * empty lines at the end dropped; a non-empty last line without CRLF
 * gets one.  Only CRLF ends a line: a bare CR or LF is a byte like any.
 */
static int canon_body(struct sink *s, const char *b, size_t len)
{
	size_t i = 0, empty = 0;

	while (i < len) {
		const char *nl = memmem(b + i, len - i, "\r\n", 2);
		size_t e = nl ? (size_t)(nl - b) : len;
		size_t next = nl ? e + 2 : len, end = e, k, seg;

		while (end > i && is_wsp(b[end - 1]))
			end--;
		if (end == i) {
			/* held back until a line with text follows */
			empty++;
			i = next;
			continue;
		}
		for (; empty; empty--)
			if (sink_add(s, "\r\n", 2))
				return -ENOMEM;
		/*
		 * Most text is canonical already: copy it in long segments,
		 * breaking them only at a TAB or at SP followed by WSP.  No
		 * run reaches end: the WSP before it is gone.
		 */
		for (seg = k = i; k < end; k++) {
			if (b[k] != '\t' && (b[k] != ' ' || !is_wsp(b[k + 1])))
				continue;
			if (sink_add(s, b + seg, k - seg) ||
			    sink_add(s, " ", 1))
				return -ENOMEM;
			while (is_wsp(b[k + 1]))
				k++;
			seg = k + 1;
		}
		/* the line's own CRLF goes with it when nothing was cut */
		if (end == e && nl) {
			if (sink_add(s, b + seg, next - seg))
				return -ENOMEM;
		} else if (sink_add(s, b + seg, end - seg) ||
			   sink_add(s, "\r\n", 2)) {
			return -ENOMEM;
		}
		i = next;
	}
	return sink_flush(s);
}

static int put_buf(void *arg, const char *p, size_t n)
{
	return dd_buf_add(arg, p, n);
}

int dd_dkim_canon_body(struct dd_buf *out, const char *body, size_t len)
{
	struct sink *s = malloc(sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->n = 0;
	s->put = put_buf;
	s->arg = out;
	err = canon_body(s, body, len);
	free(s);
	return err;
}

static int put_digest(void *arg, const char *p, size_t n)
{
	return EVP_DigestUpdate(arg, p, n) == 1 ? 0 : -EIO;
}

/* bh=: base64 of the SHA-256 of the canonical body, into b64. */
static int body_hash(const struct dd_dkim *d, const char *body, size_t len,
		     char b64[SHA256_B64])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct sink *s = malloc(sizeof(*s));
	unsigned char h[SHA256_LEN];
	unsigned int hl = 0;
	int err = -ENOMEM;

	if (!ctx || !s)
		goto out;
	err = -EIO;
	if (EVP_DigestInit_ex(ctx, d->sha256, NULL) != 1)
		goto out;
	s->n = 0;
	s->put = put_digest;
	s->arg = ctx;
	if (canon_body(s, body, len) || EVP_DigestFinal_ex(ctx, h, &hl) != 1 ||
	    hl != SHA256_LEN)
		goto out;
	EVP_EncodeBlock((unsigned char *)b64, h, SHA256_LEN);
	err = 0;
out:
	free(s);
	EVP_MD_CTX_free(ctx);
	return err;
}

/* --- the signature field --- */

/*
 * Append tok to the field being built, after a SP if sp, or on a new
 * line (CRLF SP, which is FWS) if it would pass DKIM_WIDTH.
 */
static int fold_add(struct dd_buf *b, size_t *col, const char *tok, size_t n,
		    bool sp)
{
	if (*col + n + sp > DKIM_WIDTH && *col > 1) {
		if (dd_buf_add(b, "\r\n ", 3))
			return -ENOMEM;
		*col = 1;
	} else if (sp) {
		if (dd_buf_addc(b, ' '))
			return -ENOMEM;
		(*col)++;
	}
	*col += n;
	return dd_buf_add(b, tok, n);
}

static int fold_addf(struct dd_buf *b, size_t *col, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fold_addf(struct dd_buf *b, size_t *col, const char *fmt, ...)
{
	char tok[320];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tok, sizeof(tok), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tok))
		return -EINVAL;
	return fold_add(b, col, tok, (size_t)n, true);
}

/* The signature itself over data[0..len): base64 into b64. */
static int sign_data(const struct dd_dkim *d, const struct dkim_key *k,
		     const char *data, size_t len, struct dd_buf *b64)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char h[SHA256_LEN], *sig = NULL;
	size_t siglen = 0;
	int err = -ENOMEM;

	if (!ctx)
		return -ENOMEM;
	if (k->alg == ALG_RSA) {
		/* RSASSA-PKCS1-v1_5 with SHA-256 over the data */
		err = -EIO;
		if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL,
					  k->pkey, NULL) != 1)
			goto out;
	} else {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the data */
		unsigned int hl = 0;

		err = -EIO;
		if (EVP_Digest(data, len, h, &hl, d->sha256, NULL) != 1 ||
		    hl != SHA256_LEN ||
		    EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL,
					  k->pkey, NULL) != 1)
			goto out;
		data = (const char *)h;
		len = SHA256_LEN;
	}
	if (EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)data,
			   len) != 1)
		goto out;
	err = -ENOMEM;
	sig = malloc(siglen);
	if (!sig || dd_buf_reserve(b64, (siglen + 2) / 3 * 4 + 1))
		goto out;
	err = -EIO;
	if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data,
			   len) != 1)
		goto out;
	b64->len += (size_t)EVP_EncodeBlock((unsigned char *)b64->p + b64->len,
					    sig, (int)siglen);
	err = 0;
out:
	if (err == -EIO)
		ERR_clear_error();
	free(sig);
	EVP_MD_CTX_free(ctx);
	return err;
}

/*
 * One DKIM-Signature field for key k appended to out.  hlist is the h=
 * names (each ending ':' but the last), hdata the canonical header
 * fields they select.
 */
static int sign_one(const struct dd_dkim *d, const struct dkim_key *k,
		    const struct dd_strv *hlist, const struct dd_buf *hdata,
		    const char *bh, time_t t, struct dd_buf *out)
{
	struct dd_buf f = DD_BUF_INIT, data = DD_BUF_INIT, b64 = DD_BUF_INIT;
	size_t col = 0, i, start = out->len;
	int err;

	err = fold_add(&f, &col, "DKIM-Signature:", 15, false) ||
	      fold_addf(&f, &col, "v=1;") ||
	      fold_addf(&f, &col, "a=%s;", alg_name[k->alg]) ||
	      fold_addf(&f, &col, "c=relaxed/relaxed;") ||
	      fold_addf(&f, &col, "d=%s;", k->domain) ||
	      fold_addf(&f, &col, "s=%s;", k->selector) ||
	      fold_addf(&f, &col, "t=%lld;", (long long)t);
	/* FWS may follow each ':' of h= (RFC 6376 3.5) */
	for (i = 0; !err && i < hlist->n; i++) {
		char tok[160];
		int n = snprintf(tok, sizeof(tok), "%s%s%s", i ? "" : "h=",
				 hlist->v[i], i + 1 < hlist->n ? ":" : ";");

		err = n < 0 || (size_t)n >= sizeof(tok) ||
		      fold_add(&f, &col, tok, (size_t)n, !i);
	}
	err = err || fold_addf(&f, &col, "bh=%s;", bh) ||
	      fold_add(&f, &col, "b=", 2, true);
	if (err) {
		err = -ENOMEM;
		goto out;
	}
	/* What is signed: the fields, then this one with b= empty, no CRLF. */
	err = -ENOMEM;
	if (dd_buf_add(&data, hdata->p, hdata->len) ||
	    dd_dkim_canon_header(&data, f.p, f.len, false))
		goto out;
	err = sign_data(d, k, data.p ? data.p : "", data.len, &b64);
	if (err)
		goto out;
	/* base64 may be broken by FWS anywhere: fill each line */
	err = -ENOMEM;
	for (i = 0; i < b64.len;) {
		size_t room = col < DKIM_WIDTH ? DKIM_WIDTH - col : 0;

		if (!room) {
			if (dd_buf_add(&f, "\r\n ", 3))
				goto out;
			col = 1;
			continue;
		}
		if (room > b64.len - i)
			room = b64.len - i;
		if (dd_buf_add(&f, b64.p + i, room))
			goto out;
		col += room;
		i += room;
	}
	if (dd_buf_add(&f, "\r\n", 2) || dd_buf_add(out, f.p, f.len)) {
		dd_buf_truncate(out, start);
		goto out;
	}
	err = 0;
out:
	dd_buf_free(&f);
	dd_buf_free(&data);
	dd_buf_free(&b64);
	return err;
}

/* The first key of domain dom[0..len) (case-insensitive), or NULL. */
static const struct dkim_key *key_find(const struct dd_dkim *d,
				       const char *dom, size_t len)
{
	unsigned int lo = 0, hi = d->nkeys;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		const char *kd = d->keys[mid].domain;
		size_t kl = strlen(kd);
		int c = strncasecmp(kd, dom, kl < len ? kl : len);

		if (!c)
			c = kl < len ? -1 : kl > len;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < d->nkeys && strlen(d->keys[lo].domain) == len &&
	    !strncasecmp(d->keys[lo].domain, dom, len))
		return &d->keys[lo];
	return NULL;
}

/*
 * The keys for the message's From: domain: there must be one From: field
 * with one address (RFC 5322 allows several, but then which domain
 * signs is not ours to guess).
 */
static const struct dkim_key *from_key(const struct dd_dkim *d,
				       const struct dd_wire_field *fields,
				       size_t nf)
{
	struct dd_strv good = DD_STRV_INIT;
	const struct dd_wire_field *from = NULL;
	const struct dkim_key *k = NULL;
	const char *at;
	size_t i;

	for (i = 0; i < nf; i++) {
		if (!dd_wire_field_is(&fields[i], "From"))
			continue;
		if (from)
			return NULL;
		from = &fields[i];
	}
	if (!from || dd_wire_addr_list(from->value, from->valuelen, 0, &good,
				       NULL))
		goto out;
	if (good.n != 1)
		goto out;
	at = strrchr(good.v[0], '@');
	if (at)
		k = key_find(d, at + 1, strlen(at + 1));
out:
	dd_strv_free(&good);
	return k;
}

int dd_dkim_sign(const struct dd_dkim *d, const char *msg, size_t len,
		 time_t t, struct dd_buf *out)
{
	struct dd_wire_field *fields = NULL, f;
	struct dd_strv hlist = DD_STRV_INIT;
	struct dd_buf hdata = DD_BUF_INIT, sigs = DD_BUF_INIT;
	size_t nf = 0, cap = 0, pos = 0, body, hlen, *idx = NULL;
	const struct dkim_key *k, *first, *end;
	char bh[SHA256_B64];
	int err = 0, made = 0;
	unsigned int h;

	if (!d || !d->nkeys)
		return 0;
	hlen = dd_wire_header_end(msg, len, &body);
	/*
	 * Only a header block closed by an empty line (or a message that is
	 * all header): any other split a verifier might make differently.
	 */
	if (body != len && !(body > hlen && (msg[hlen] == '\r' ||
					     msg[hlen] == '\n')))
		return 0;
	while (dd_wire_header_next(msg, hlen, &pos, &f) == 1) {
		if (nf == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			void *p = realloc(fields, ncap * sizeof(*fields));

			if (!p) {
				err = -ENOMEM;
				goto out;
			}
			fields = p;
			cap = ncap;
		}
		fields[nf++] = f;
	}
	k = from_key(d, fields, nf);
	if (!k)
		goto out;
	err = -ENOMEM;
	idx = malloc((nf ? nf : 1) * sizeof(*idx));
	if (!idx)
		goto out;
	/*
	 * h=: every instance of a configured name, bottom up (RFC 6376
	 * 5.4.2), then the name once more: it selects nothing, so a field of
	 * that name added later breaks the signature.
	 */
	for (h = 0; h < d->nhdrs; h++) {
		const char *nm = d->hdrs[h];
		size_t n = 0, i;

		for (i = 0; i < nf; i++)
			if (dd_wire_field_is(&fields[i], nm))
				idx[n++] = i;
		if (!n)
			continue;
		while (n--) {
			if (dd_strv_add(&hlist, nm, strlen(nm)) ||
			    dd_dkim_canon_header(&hdata, fields[idx[n]].raw,
						 fields[idx[n]].rawlen, true))
				goto out;
		}
		if (dd_strv_add(&hlist, nm, strlen(nm)))
			goto out;
	}
	err = body_hash(d, msg + body, len - body, bh);
	if (err)
		goto out;
	/* the keys of one domain are next to each other, in file order */
	for (first = k, end = d->keys + d->nkeys;
	     k < end && !strcmp(k->domain, first->domain); k++) {
		err = sign_one(d, k, &hlist, &hdata, bh, t, &sigs);
		if (err)
			goto out;
		made++;
	}
	err = dd_buf_add(out, sigs.p, sigs.len);
out:
	free(fields);
	free(idx);
	dd_strv_free(&hlist);
	dd_buf_free(&hdata);
	dd_buf_free(&sigs);
	return err ? err : made;
}

/* --- keys --- */

unsigned int dd_dkim_count(const struct dd_dkim *d)
{
	return d ? d->nkeys : 0;
}

void dd_dkim_free(struct dd_dkim *d)
{
	unsigned int i;

	if (!d)
		return;
	for (i = 0; i < d->nkeys; i++) {
		free(d->keys[i].domain);
		free(d->keys[i].selector);
		EVP_PKEY_free(d->keys[i].pkey);
	}
	for (i = 0; i < d->nhdrs; i++)
		free(d->hdrs[i]);
	free(d->keys);
	free(d->hdrs);
	EVP_MD_free(d->sha256);
	free(d);
}

static int key_cmp(const void *a, const void *b)
{
	const struct dkim_key *x = a, *y = b;
	int c = strcmp(x->domain, y->domain);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* RFC 6376 3.1: a selector is one or more dot-separated labels. */
static bool selector_ok(const char *s)
{
	size_t lab = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '.') {
			if (!lab || s[-1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && lab))
			return false;
		if (++lab > 63)
			return false;
	}
	return lab && s[-1] != '-';
}

/* dkim_headers into d->hdrs; "from" is required (RFC 6376 5.4). */
static int parse_headers(struct dd_dkim *d, const char *headers, char *err,
			 size_t errlen)
{
	const char *p = headers ? headers : "";
	bool from = false;

	while (*p) {
		size_t n = strcspn(p, ":"), i, a = 0;
		char *nm;
		void *v;

		/* blanks around names are forgiven */
		while (a < n && isspace((unsigned char)p[a]))
			a++;
		while (n > a && isspace((unsigned char)p[n - 1]))
			n--;
		if (n > a) {
			for (i = a; i < n; i++) {
				unsigned char c = (unsigned char)p[i];

				if (c <= 32 || c >= 127) {
					dd_errf(err, errlen,
						"dkim_headers: bad field name '%.*s'",
						(int)(n - a), p + a);
					return -EINVAL;
				}
			}
			v = realloc(d->hdrs, (d->nhdrs + 1) * sizeof(*d->hdrs));
			if (!v)
				return -ENOMEM;
			d->hdrs = v;
			nm = strndup(p + a, n - a);
			if (!nm)
				return -ENOMEM;
			for (i = 0; nm[i]; i++)
				nm[i] = (char)tolower((unsigned char)nm[i]);
			from = from || !strcmp(nm, "from");
			d->hdrs[d->nhdrs++] = nm;
		}
		p += strcspn(p, ":");
		if (*p)
			p++;
	}
	if (!from) {
		dd_errf(err, errlen, "dkim_headers: From must be signed "
			"(RFC 6376 5.4)");
		return -EINVAL;
	}
	return 0;
}

/* keyfile relative to the keys file's directory. */
static char *key_path(const char *path, const char *file)
{
	const char *slash = strrchr(path, '/');
	char *out;

	if (file[0] == '/' || !slash)
		return strdup(file);
	if (asprintf(&out, "%.*s/%s", (int)(slash - path), path, file) < 0)
		return NULL;
	return out;
}

/* Read and check one key; on error a message in msg. */
static EVP_PKEY *load_pem(const char *file, enum dkim_alg alg, char *msg,
			  size_t len)
{
	EVP_PKEY *pk = NULL;
	FILE *f = fopen(file, "re");
	int id;

	if (!f) {
		snprintf(msg, len, "key file %s: %s", file, strerror(errno));
		return NULL;
	}
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pk) {
		unsigned long e = ERR_peek_last_error();

		snprintf(msg, len, "key file %s: not a PEM private key (%s)",
			 file, e ? ERR_reason_error_string(e) : "?");
		ERR_clear_error();
		return NULL;
	}
	id = EVP_PKEY_get_base_id(pk);
	if (alg == ALG_RSA && id != EVP_PKEY_RSA) {
		snprintf(msg, len, "key file %s: an %s key, rsa-sha256 needs an "
			 "RSA key", file, EVP_PKEY_get0_type_name(pk));
		goto bad;
	}
	if (alg == ALG_ED25519 && id != EVP_PKEY_ED25519) {
		snprintf(msg, len, "key file %s: an %s key, ed25519-sha256 needs "
			 "an Ed25519 key", file, EVP_PKEY_get0_type_name(pk));
		goto bad;
	}
	if (alg == ALG_RSA && EVP_PKEY_get_bits(pk) < DKIM_RSA_MIN) {
		snprintf(msg, len, "key file %s: RSA key of %d bits, at least "
			 "%d needed (RFC 8301)", file, EVP_PKEY_get_bits(pk),
			 DKIM_RSA_MIN);
		goto bad;
	}
	return pk;
bad:
	EVP_PKEY_free(pk);
	return NULL;
}

struct keys_load {
	struct dd_dkim *d;
	const char *path;	/* key files are relative to its directory */
};

/* One "domain selector algorithm keyfile" line into l->d. */
static int parse_line(void *arg, char *line, unsigned int lineno, char *msg,
		      size_t len)
{
	struct keys_load *l = arg;
	struct dd_dkim *d = l->d;
	char *f[4], *dom, *sel, *alg, *file, *full;
	struct dkim_key *k;
	enum dkim_alg a;
	unsigned int i;
	void *v;

	if (!dd_lines_fields(line, f, 4)) {
		snprintf(msg, len, "expected 'domain selector algorithm keyfile'");
		return -EINVAL;
	}
	dom = f[0];
	sel = f[1];
	alg = f[2];
	file = f[3];
	for (char *q = dom; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	if (dom[0] == '[' || !dd_wire_domain_ok(dom, strlen(dom))) {
		snprintf(msg, len, "bad domain '%s'", dom);
		return -EINVAL;
	}
	if (!selector_ok(sel)) {
		snprintf(msg, len, "bad selector '%s'", sel);
		return -EINVAL;
	}
	if (!strcasecmp(alg, "rsa-sha256")) {
		a = ALG_RSA;
	} else if (!strcasecmp(alg, "ed25519-sha256")) {
		a = ALG_ED25519;
	} else {
		snprintf(msg, len, "unknown algorithm '%s' (rsa-sha256 or "
			 "ed25519-sha256)", alg);
		return -EINVAL;
	}
	for (i = 0; i < d->nkeys; i++) {
		if (!strcmp(d->keys[i].domain, dom) &&
		    !strcasecmp(d->keys[i].selector, sel)) {
			snprintf(msg, len, "selector %s of %s given twice (line "
				 "%u): one DNS record cannot hold two keys",
				 sel, dom, d->keys[i].line);
			return -EINVAL;
		}
	}
	v = realloc(d->keys, (d->nkeys + 1) * sizeof(*d->keys));
	if (!v)
		return -ENOMEM;
	d->keys = v;
	k = &d->keys[d->nkeys];
	full = key_path(l->path, file);
	if (!full)
		return -ENOMEM;
	k->pkey = load_pem(full, a, msg, len);
	free(full);
	if (!k->pkey)
		return -EINVAL;
	k->domain = strdup(dom);
	k->selector = strdup(sel);
	k->alg = a;
	k->line = lineno;
	d->nkeys++;
	if (!k->domain || !k->selector)
		return -ENOMEM;
	return 0;
}

int dd_dkim_load(struct dd_dkim **dp, const char *path, const char *headers,
		 char *err, size_t errlen)
{
	struct keys_load l = { .path = path };
	struct dd_dkim *d;
	int ret;

	*dp = NULL;
	if (!path || !*path)
		return 0;
	d = l.d = calloc(1, sizeof(*d));
	if (!d) {
		dd_errf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	ret = parse_headers(d, headers, err, errlen);
	if (ret) {
		if (ret == -ENOMEM)
			dd_errf(err, errlen, "dkim_headers: out of memory");
		dd_dkim_free(d);
		return ret;
	}
	d->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!d->sha256) {
		dd_errf(err, errlen, "%s: OpenSSL has no SHA256", path);
		dd_dkim_free(d);
		return -EIO;
	}
	ret = dd_lines_read(path, parse_line, &l, err, errlen);
	if (ret) {
		dd_dkim_free(d);
		return ret;
	}
	qsort(d->keys, d->nkeys, sizeof(*d->keys), key_cmp);
	*dp = d;
	return 0;
}
