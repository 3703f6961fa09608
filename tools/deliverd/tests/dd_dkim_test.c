// SPDX-License-Identifier: GPL-2.0
/*
 * dd_dkim_test: DKIM signing -- relaxed canonicalization of header fields
 * and bodies (RFC 6376 3.4.2, 3.4.4) with the awkward cases, a known
 * answer for an Ed25519 signature (deterministic, RFC 8032), the keys
 * file's errors with FILE:LINE, and sign -> verify round trips checked
 * with OpenSSL's verification over data rebuilt here from the field.
 *
 * Built by tools/deliverd/Makefile, linked with libdd.a and libcrypto.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

#include "../dd_dkim.h"

#define HDRS "from:to:cc:subject:date:message-id"

static char *canon_h(const char *raw, bool crlf)
{
	static struct dd_buf b;

	dd_buf_clear(&b);
	dd_buf_adds(&b, "");
	if (dd_dkim_canon_header(&b, raw, strlen(raw), crlf))
		return NULL;
	return b.p;
}

static char *canon_b(const char *body, size_t len)
{
	static struct dd_buf b;

	dd_buf_clear(&b);
	dd_buf_adds(&b, "");
	if (dd_dkim_canon_body(&b, body, len))
		return NULL;
	return b.p;
}

#define CB(s)	canon_b(s, sizeof(s) - 1)

TEST(canon_header)
{
	/* RFC 6376 3.4.5's example */
	EXPECT_STREQ("a:X\r\n", canon_h("A: X\r\n", true));
	EXPECT_STREQ("b:Y Z\r\n", canon_h("B : Y\t\r\n\tZ  \r\n", true));
	/* folded, WSP runs of spaces and tabs, WSP at both ends */
	EXPECT_STREQ("subject:Is dinner ready? folded and tabbed\r\n",
		     canon_h("SubJect:   Is dinner\t ready?   \r\n"
			     "   folded   and \t tabbed  \r\n", true));
	/* a fold right after the colon */
	EXPECT_STREQ("to:a@b.test, c@d.test\r\n",
		     canon_h("To:\r\n a@b.test,\r\n\tc@d.test\r\n", true));
	/* empty values, even folded */
	EXPECT_STREQ("x-empty:\r\n", canon_h("X-Empty:\r\n", true));
	EXPECT_STREQ("x-empty:\r\n", canon_h("X-Empty: \t\r\n \r\n", true));
	/* 8-bit bytes are bytes */
	EXPECT_STREQ("subject:caf\xc3\xa9 \xff\r\n",
		     canon_h("Subject: caf\xc3\xa9 \t \xff \r\n", true));
	/* LF line ends, and no line end at all */
	EXPECT_STREQ("a:b c\r\n", canon_h("A: b\n c\n", true));
	EXPECT_STREQ("dkim-signature:v=1; b=",
		     canon_h("DKIM-Signature: v=1;\r\n b=", false));
	/* the colon inside the value is not the separator */
	EXPECT_STREQ("x:a: b\r\n", canon_h("X:a:  b\r\n", true));
}

TEST(canon_body)
{
	/* RFC 6376 3.4.5's example */
	EXPECT_STREQ(" C\r\nD E\r\n", CB(" C \r\nD \t E\r\n\r\n\r\n"));
	/* empty bodies stay empty (RFC 6376 errata 1384) */
	EXPECT_STREQ("", CB(""));
	EXPECT_STREQ("", CB("\r\n"));
	EXPECT_STREQ("", CB("\r\n\r\n \r\n\t\r\n"));
	/* no final CRLF: one is added */
	EXPECT_STREQ("abc\r\n", CB("abc"));
	EXPECT_STREQ("abc\r\n", CB("abc  \t"));
	EXPECT_STREQ("a\r\n\r\nb\r\n", CB("a\r\n\r\nb"));
	/* empty lines inside are kept, trailing ones (WSP only too) dropped */
	EXPECT_STREQ("a\r\n\r\n\r\nb\r\n",
		     CB("a\r\n \r\n\t\r\nb\r\n\r\n \r\n"));
	EXPECT_STREQ("\r\nx\r\n", CB("  \r\nx\r\n"));
	/* WSP runs inside a line become one SP, leading WSP too */
	EXPECT_STREQ(" a b c\r\n", CB("\t a  \t b\t\tc \r\n"));
	/* a bare LF or CR is a byte, not a line end */
	EXPECT_STREQ("a\nb c\rd\r\n", CB("a\nb  c\rd \r\n"));
	/* dot lines are not the canonicalizer's business */
	EXPECT_STREQ("..x\r\n.\r\n", CB("..x\r\n.\r\n"));
}

/* 8-bit bytes and NUL pass unchanged. */
TEST(canon_body_8bit)
{
	static const char in[] = "\xff\x00 \xfe\r\n\x80\r\n";
	struct dd_buf b = DD_BUF_INIT;

	ASSERT_EQ(0, dd_dkim_canon_body(&b, in, sizeof(in) - 1));
	ASSERT_EQ(sizeof(in) - 1, b.len);
	EXPECT_EQ(0, memcmp(b.p, in, b.len));
	dd_buf_free(&b);
}

/* A long body: one pass, in pieces bigger than the sink's buffer. */
TEST(canon_body_long)
{
	struct dd_buf in = DD_BUF_INIT, out = DD_BUF_INIT, want = DD_BUF_INIT;
	int i;

	for (i = 0; i < 20000; i++) {
		ASSERT_EQ(0, dd_buf_addf(&in, "line %d  \t with  runs\t\r\n",
					 i));
		ASSERT_EQ(0, dd_buf_addf(&want, "line %d with runs\r\n", i));
	}
	for (i = 0; i < 100; i++)
		ASSERT_EQ(0, dd_buf_adds(&in, " \r\n"));
	ASSERT_EQ(0, dd_dkim_canon_body(&out, in.p, in.len));
	ASSERT_EQ(want.len, out.len);
	EXPECT_EQ(0, memcmp(want.p, out.p, out.len));
	dd_buf_free(&in);
	dd_buf_free(&out);
	dd_buf_free(&want);
}

/* --- keys --- */

struct tmp {
	char dir[64];
};

static void tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/dd_dkim_test.XXXXXX");
	if (!mkdtemp(t->dir))
		abort();
}

static void tmp_clean(struct tmp *t)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", t->dir);
}

static char *tmp_path(struct tmp *t, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", t->dir, name) < 0)
		abort();
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		abort();
}

static void write_key(EVP_PKEY *pk, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) ||
	    fclose(f))
		abort();
}

/* RFC 8032 7.1, TEST 1: the secret key. */
static const unsigned char ed_seed[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60,
	0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
	0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
	0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

static EVP_PKEY *ed_key(void)
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ed_seed,
					    sizeof(ed_seed));
}

static EVP_PKEY *rsa_key(unsigned int bits)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static int load(struct tmp *t, const char *keys, struct dd_dkim **d,
		char *err, size_t errlen)
{
	char *p = tmp_path(t, "keys");
	int r;

	write_file(p, keys);
	err[0] = '\0';
	r = dd_dkim_load(d, p, HDRS, err, errlen);
	free(p);
	return r;
}

FIXTURE(keys) {
	struct tmp t;
	char *rsa, *ed, *small, *keys;
	EVP_PKEY *rsa_pk, *ed_pk;
};

FIXTURE_SETUP(keys)
{
	EVP_PKEY *pk;

	tmp_make(&self->t);
	self->rsa = tmp_path(&self->t, "rsa.pem");
	self->ed = tmp_path(&self->t, "ed.pem");
	self->small = tmp_path(&self->t, "small.pem");
	self->keys = tmp_path(&self->t, "keys");
	self->rsa_pk = rsa_key(2048);
	ASSERT_NE(NULL, self->rsa_pk);
	write_key(self->rsa_pk, self->rsa);
	self->ed_pk = ed_key();
	ASSERT_NE(NULL, self->ed_pk);
	write_key(self->ed_pk, self->ed);
	pk = rsa_key(512);
	ASSERT_NE(NULL, pk);
	write_key(pk, self->small);
	EVP_PKEY_free(pk);
}

FIXTURE_TEARDOWN(keys)
{
	tmp_clean(&self->t);
	free(self->rsa);
	free(self->ed);
	free(self->small);
	free(self->keys);
	EVP_PKEY_free(self->rsa_pk);
	EVP_PKEY_free(self->ed_pk);
}

/* Each bad line (the 3rd) must be named FILE:3 with a word of why. */
TEST_F(keys, errors)
{
	static const struct {
		const char *line, *word;
	} bad[] = {
		{ "ex.test x rsa-sha1 rsa.pem", "unknown algorithm" },
		{ "ex.test x rsa-sha256 missing.pem", "No such file" },
		{ "ex.test x rsa-sha256 ed.pem", "needs an RSA key" },
		{ "ex.test x ed25519-sha256 rsa.pem", "needs an Ed25519 key" },
		{ "ex.test x rsa-sha256 small.pem", "512 bits" },
		{ "ex.test x rsa-sha256 keys", "not a PEM private key" },
		{ "ex.test x rsa-sha256", "expected" },
		{ "ex.test x rsa-sha256 rsa.pem extra", "expected" },
		{ "ex..test x rsa-sha256 rsa.pem", "bad domain" },
		{ "ex.test -x rsa-sha256 rsa.pem", "bad selector" },
		{ "ex.test a_b rsa-sha256 rsa.pem", "bad selector" },
		{ "ex.test OK ed25519-sha256 ed.pem", "twice" },
	};
	struct dd_dkim *d;
	char err[600], text[300], want[300];
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 "# keys\nex.test ok rsa-sha256 rsa.pem\n%s\n",
			 bad[i].line);
		d = (void *)1;
		EXPECT_NE(0, load(&self->t, text, &d, err, sizeof(err)))
			TH_LOG("%s", bad[i].line);
		EXPECT_EQ(NULL, d);
		snprintf(want, sizeof(want), "%s:3: ", self->keys);
		EXPECT_EQ(0, strncmp(err, want, strlen(want)))
			TH_LOG("%s: %s", bad[i].line, err);
		EXPECT_NE(NULL, strstr(err, bad[i].word))
			TH_LOG("%s: %s", bad[i].line, err);
	}
	/* the keys file itself missing: FILE: why */
	EXPECT_EQ(-ENOENT, dd_dkim_load(&d, "/nonexistent/keys", HDRS, err,
					sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "/nonexistent/keys: "));
	/* From: must be signed */
	write_file(self->keys, "ex.test s ed25519-sha256 ed.pem\n");
	EXPECT_EQ(-EINVAL, dd_dkim_load(&d, self->keys, "to:subject", err,
					sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "From"));
	EXPECT_EQ(-EINVAL, dd_dkim_load(&d, self->keys, "from:sub ject", err,
					sizeof(err)));
	/* none configured: no set, no error */
	d = (void *)1;
	EXPECT_EQ(0, dd_dkim_load(&d, "", HDRS, err, sizeof(err)));
	EXPECT_EQ(NULL, d);
	EXPECT_EQ(0, dd_dkim_count(NULL));
}

TEST_F(keys, good)
{
	struct dd_dkim *d = NULL;
	char err[600], *text;

	/* relative and absolute key paths, comments, blanks, case */
	ASSERT_LE(0, asprintf(&text, "  # a comment\n\nEx.Test r1 RSA-SHA256 "
			      "rsa.pem # trailing\nex.test e1 ed25519-sha256 "
			      "%s\n\tother.test r1 rsa-sha256 rsa.pem\n",
			      self->ed));
	ASSERT_EQ(0, load(&self->t, text, &d, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(3, dd_dkim_count(d));
	dd_dkim_free(d);
	free(text);
}

/* --- signing --- */

static const char msg1[] =
	"Received: from x (y)\r\n\tby z; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
	"From: Joe SixPack <joe@ex.test>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@ex.test>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game. Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n";

/*
 * The value of tag name in field f (FWS removed), malloc'd, or NULL.
 * Tags are split at ';', values at the first '='.
 */
static char *tag(const char *f, const char *name)
{
	const char *v = strchr(f, ':') + 1;
	struct dd_buf b = DD_BUF_INIT;
	char *p, *save = NULL, *t, *out = NULL;

	for (; *v; v++)
		if (*v != ' ' && *v != '\t' && *v != '\r' && *v != '\n')
			dd_buf_addc(&b, *v);
	for (t = strtok_r(b.p, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
		p = strchr(t, '=');
		if (p && (size_t)(p - t) == strlen(name) &&
		    !strncmp(t, name, strlen(name)))
			out = strdup(p + 1);
	}
	dd_buf_free(&b);
	return out;
}

/*
 * Verify the signature field sig (ending CRLF) over msg independently of
 * the signer's header selection: rebuild the signed data from h= (each
 * name's instances bottom up), then the field with b='s value cut out,
 * and check b= with OpenSSL's verification and bh= with SHA-256 over the
 * canonical body.
 */
static bool verify(const char *sig, const char *msg, size_t len,
		   EVP_PKEY *pub, bool ed)
{
	struct dd_buf data = DD_BUF_INIT, body = DD_BUF_INIT,
		      field = DD_BUF_INIT;
	char *h = tag(sig, "h"), *bh = tag(sig, "bh"), *b = tag(sig, "b");
	char *save = NULL, *nm, bhx[64];
	const char *bstart;
	unsigned char raw[512], dig[32];
	unsigned int used[64] = { 0 }, dl, nnames = 0;
	char names[64][64];
	size_t bodyoff, hlen = dd_wire_header_end(msg, len, &bodyoff);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;
	int rawlen;

	if (!h || !bh || !b || !ctx)
		goto out;
	for (nm = strtok_r(h, ":", &save); nm;
	     nm = strtok_r(NULL, ":", &save)) {
		struct dd_wire_field f, last = { 0 };
		size_t pos = 0;
		unsigned int n = 0, k, want, idx = 0;

		/* which instance of nm comes next: count those used */
		for (k = 0; k < nnames && strcmp(names[k], nm); k++)
			;
		if (k == nnames) {
			if (nnames == 64)
				goto out;
			snprintf(names[nnames++], 64, "%s", nm);
			used[k] = 0;
		}
		idx = k;
		while (dd_wire_header_next(msg, hlen, &pos, &f) == 1)
			if (dd_wire_field_is(&f, nm))
				n++;
		if (used[idx] >= n) {
			used[idx]++;
			continue;
		}
		want = n - 1 - used[idx]++;
		pos = 0;
		n = 0;
		while (dd_wire_header_next(msg, hlen, &pos, &f) == 1)
			if (dd_wire_field_is(&f, nm) && n++ == want)
				last = f;
		if (dd_dkim_canon_header(&data, last.raw, last.rawlen, true))
			goto out;
	}
	/* the field without b='s value (and its FWS) and without CRLF */
	bstart = strstr(sig, " b=");
	if (!bstart)
		goto out;
	dd_buf_add(&field, sig, (size_t)(bstart - sig) + 3);
	if (dd_dkim_canon_header(&data, field.p, field.len, false))
		goto out;
	/* bh= */
	if (dd_dkim_canon_body(&body, msg + bodyoff, len - bodyoff))
		goto out;
	EVP_Digest(body.p ? body.p : "", body.len, dig, &dl, EVP_sha256(), NULL);
	EVP_EncodeBlock((unsigned char *)bhx, dig, 32);
	if (strcmp(bhx, bh))
		goto out;
	rawlen = EVP_DecodeBlock(raw, (unsigned char *)b, (int)strlen(b));
	if (rawlen < 0)
		goto out;
	rawlen -= (b[strlen(b) - 1] == '=') + (b[strlen(b) - 2] == '=');
	if (ed) {
		EVP_Digest(data.p, data.len, dig, &dl, EVP_sha256(), NULL);
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
		     EVP_DigestVerify(ctx, raw, (size_t)rawlen, dig, 32) == 1;
	} else {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
					  pub) == 1 &&
		     EVP_DigestVerify(ctx, raw, (size_t)rawlen,
				      (unsigned char *)data.p, data.len) == 1;
	}
out:
	EVP_MD_CTX_free(ctx);
	dd_buf_free(&data);
	dd_buf_free(&body);
	dd_buf_free(&field);
	free(h);
	free(bh);
	free(b);
	return ok;
}

/* The n-th (0-based) DKIM-Signature field of out, malloc'd. */
static char *nth_sig(const char *out, int n)
{
	const char *p = out, *e;

	for (;;) {
		p = strstr(p, "DKIM-Signature:");
		if (!p)
			return NULL;
		e = p;
		do {
			e = strstr(e, "\r\n") + 2;
		} while (*e == ' ' || *e == '\t');
		if (!n--)
			return strndup(p, (size_t)(e - p));
		p = e;
	}
}

TEST_F(keys, round_trip)
{
	struct dd_buf out = DD_BUF_INIT, m = DD_BUF_INIT;
	struct dd_dkim *d;
	char err[600], *s0, *s1, *h, *line;
	size_t col = 0;

	ASSERT_EQ(0, load(&self->t, "ex.test rsa rsa-sha256 rsa.pem\n"
			  "ex.test ed ed25519-sha256 ed.pem\n"
			  "other.test o ed25519-sha256 ed.pem\n",
			  &d, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(2, dd_dkim_sign(d, msg1, sizeof(msg1) - 1, 1700000000, &out));
	s0 = nth_sig(out.p, 0);
	s1 = nth_sig(out.p, 1);
	ASSERT_NE(NULL, s0);
	ASSERT_NE(NULL, s1);
	EXPECT_EQ(NULL, nth_sig(out.p, 2));
	EXPECT_EQ(strlen(s0) + strlen(s1), out.len);
	EXPECT_NE(NULL, strstr(s0, "a=rsa-sha256;"));
	EXPECT_NE(NULL, strstr(s1, "a=ed25519-sha256;"));
	EXPECT_TRUE(verify(s0, msg1, sizeof(msg1) - 1, self->rsa_pk, false));
	EXPECT_TRUE(verify(s1, msg1, sizeof(msg1) - 1, self->ed_pk, true));
	/* over-signed: each present name once more, absent ones not */
	h = tag(s0, "h");
	EXPECT_STREQ("from:from:to:to:subject:subject:date:date:"
		     "message-id:message-id", h);
	free(h);
	/* folded under 78 columns */
	for (line = out.p; *line; line++) {
		if (*line == '\n') {
			col = 0;
			continue;
		}
		EXPECT_LT(++col, 78);
	}
	/* the verifier can say no: another body, another header */
	dd_buf_adds(&m, msg1);
	m.p[m.len - 4] = 'x';
	EXPECT_FALSE(verify(s0, m.p, m.len, self->rsa_pk, false));
	EXPECT_FALSE(verify(s1, m.p, m.len, self->ed_pk, true));
	dd_buf_clear(&m);
	dd_buf_adds(&m, msg1);
	memcpy(strstr(m.p, "dinner"), "lunch!", 6);
	EXPECT_FALSE(verify(s0, m.p, m.len, self->rsa_pk, false));
	EXPECT_FALSE(verify(s1, m.p, m.len, self->ed_pk, true));
	/* relaxed: WSP changes within lines do not matter */
	dd_buf_clear(&m);
	dd_buf_adds(&m, msg1);
	memcpy(strstr(m.p, "game. Are"), "game.\tAre", 9);
	EXPECT_TRUE(verify(s0, m.p, m.len, self->rsa_pk, false));
	free(s0);
	free(s1);
	dd_buf_free(&m);
	dd_buf_free(&out);
	dd_dkim_free(d);
}

TEST_F(keys, not_signed)
{
	static const char *const msgs[] = {
		/* no key for the domain, nor for a subdomain */
		"From: a@none.test\r\n\r\nx\r\n",
		"From: a@sub.ex.test\r\n\r\nx\r\n",
		/* no From:, two From: fields, two addresses */
		"To: a@ex.test\r\n\r\nx\r\n",
		"From: a@ex.test\r\nFrom: b@ex.test\r\n\r\nx\r\n",
		"From: a@ex.test, b@ex.test\r\n\r\nx\r\n",
		/* a header block that does not end with an empty line */
		"From: a@ex.test\r\nnot a field\r\n\r\nx\r\n",
	};
	struct dd_buf out = DD_BUF_INIT;
	struct dd_dkim *d;
	char err[600];
	unsigned int i;

	ASSERT_EQ(0, load(&self->t, "ex.test ed ed25519-sha256 ed.pem\n", &d,
			  err, sizeof(err))) TH_LOG("%s", err);
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		EXPECT_EQ(0, dd_dkim_sign(d, msgs[i], strlen(msgs[i]), 1, &out))
			TH_LOG("%s", msgs[i]);
		EXPECT_EQ(0, out.len);
	}
	/* the domain matches whatever its case; a message all header */
	EXPECT_EQ(1, dd_dkim_sign(d, "From: A <a@EX.Test>\r\n", 21, 1, &out));
	EXPECT_NE(NULL, strstr(out.p, " d=ex.test;"));
	/* no keys at all */
	EXPECT_EQ(0, dd_dkim_sign(NULL, msg1, sizeof(msg1) - 1, 1, &out));
	dd_buf_free(&out);
	dd_dkim_free(d);
}

/*
 * Known answer: Ed25519 is deterministic, so with RFC 8032's TEST 1 key
 * and a fixed t the whole field is fixed.  The expected text was checked
 * with dkimpy (python3-dkim), an independent verifier.  The body is RFC
 * 6376's example; bh= of an empty body is the SHA-256 of nothing.
 */
TEST_F(keys, known_answer)
{
	static const char empty[] = "From: joe@ex.test\r\nSubject: x\r\n\r\n";
	static const char want_msg1[] =
		"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=ex.test;\r\n"
		" s=brisbane; t=1528637909; h=from:from:to:to:subject:subject:date:date:\r\n"
		" message-id:message-id; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=g\r\n"
		" uZZWU7c923XQbCJeBwm5viMjS48+kXouNNv28Eh2KoGwMb7rH42zhEj5967x6AcqNyFx4DsDWLR\r\n"
		" bhCdR4+4AA==\r\n";
	static const char want_empty[] =
		"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=ex.test;\r\n"
		" s=brisbane; t=1528637909; h=from:from:subject:subject;\r\n"
		" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=Fu2CLmdWMoByY2m+xJFjlHUo\r\n"
		" IxXzj3IPcI5VPia+ChIYkCy+rwDTCTKwWU4mi/Nn/hPRpnB4aZjK/keERXTIBQ==\r\n";
	struct dd_buf out = DD_BUF_INIT;
	struct dd_dkim *d;
	char err[600], *bh;

	ASSERT_EQ(0, load(&self->t, "ex.test brisbane ed25519-sha256 ed.pem\n",
			  &d, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(1, dd_dkim_sign(d, msg1, sizeof(msg1) - 1, 1528637909, &out));
	EXPECT_STREQ(want_msg1, out.p);
	dd_buf_clear(&out);
	ASSERT_EQ(1, dd_dkim_sign(d, empty, sizeof(empty) - 1, 1528637909,
				  &out));
	bh = tag(out.p, "bh");
	EXPECT_STREQ("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", bh);
	free(bh);
	EXPECT_STREQ(want_empty, out.p);
	dd_buf_free(&out);
	dd_dkim_free(d);
}

TEST_HARNESS_MAIN
