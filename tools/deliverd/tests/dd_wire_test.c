// SPDX-License-Identifier: GPL-2.0
/*
 * dd_wire_test: the wire-format helpers -- byte buffers, RFC 5321 paths
 * and parameters, CRLF and dot-stuffing, RFC 5322 headers and address
 * lists for sendmail -t, dates.
 *
 *   gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -I build/ksft \
 *	-o dd_wire_test tools/deliverd/tests/dd_wire_test.c tools/deliverd/dd_wire.c
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The harness's generated functions leave parameters unused, and its
 * comparisons put int literals against enums and size_t.
 */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

#include "../dd_wire.h"

static int check(const char *a, unsigned int flags)
{
	return dd_wire_addr_check(a, strlen(a), flags);
}

/* The strings of sv joined with '|'. */
static char *joined(const struct dd_strv *sv)
{
	static struct dd_buf b;

	dd_buf_clear(&b);
	dd_buf_adds(&b, "");
	for (size_t i = 0; i < sv->n; i++)
		dd_buf_addf(&b, "%s%s", i ? "|" : "", sv->v[i]);
	return b.p;
}

TEST(buf)
{
	struct dd_buf b = DD_BUF_INIT;
	char *p;
	size_t n;

	EXPECT_EQ(0, b.len);
	EXPECT_EQ(0, dd_buf_add(&b, "ab\0cd", 5));
	EXPECT_EQ(5, b.len);
	EXPECT_EQ('\0', b.p[5]);
	EXPECT_EQ(0, memcmp(b.p, "ab\0cd", 5));
	EXPECT_EQ(0, dd_buf_addf(&b, "-%d-%s", 42, "x"));
	EXPECT_EQ(0, dd_buf_adds(&b, "yz"));
	EXPECT_EQ(0, dd_buf_addc(&b, '!'));
	EXPECT_EQ(0, memcmp(b.p, "ab\0cd-42-xyz!", 14));
	dd_buf_drop(&b, 3);
	EXPECT_STREQ("cd-42-xyz!", b.p);
	dd_buf_truncate(&b, 2);
	EXPECT_STREQ("cd", b.p);
	for (int i = 0; i < 10000; i++)
		dd_buf_addc(&b, (char)('a' + i % 26));
	EXPECT_EQ(10002, b.len);
	EXPECT_LT(b.len, b.cap);
	EXPECT_EQ('\0', b.p[b.len]);
	dd_buf_drop(&b, b.len);
	EXPECT_EQ(0, b.len);
	EXPECT_STREQ("", b.p);
	dd_buf_addf(&b, "%0300d", 7);
	EXPECT_EQ(300, b.len);
	p = dd_buf_detach(&b, &n);
	EXPECT_EQ(300, n);
	EXPECT_EQ('7', p[299]);
	EXPECT_EQ(NULL, b.p);
	free(p);
	/* detach of an empty buffer: "" */
	p = dd_buf_detach(&b, &n);
	ASSERT_NE(NULL, p);
	EXPECT_STREQ("", p);
	EXPECT_EQ(0, n);
	free(p);
	dd_buf_free(&b);
}

TEST(strv)
{
	struct dd_strv sv = DD_STRV_INIT;

	for (int i = 0; i < 20; i++)
		ASSERT_EQ(0, dd_strv_add(&sv, "abcdef" + i % 3, 2));
	EXPECT_EQ(20, sv.n);
	EXPECT_STREQ("ab", sv.v[0]);
	EXPECT_STREQ("bc", sv.v[1]);
	EXPECT_STREQ("cd", sv.v[2]);
	EXPECT_STREQ("bc", sv.v[19]);
	dd_strv_free(&sv);
	EXPECT_EQ(0, sv.n);
	EXPECT_EQ(NULL, sv.v);
}

TEST(addr_valid)
{
	static const char *const good[] = {
		"a@b.c", "a.b+c-d_e@x-y.example", "!#$%&'*+-/=?^_`{|}~@x.y",
		"\"a b\"@c.d", "\"a\\\"b\"@c.d", "\"\"@c.d", "\"a@b\"@c.d",
		"a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "a@[ipv6:::1]",
		"1@2", "A@B.C", "x@xn--bcher-kva.example", NULL,
	};
	static const char *const bad[] = {
		".a@b.c", "a.@b.c", "a..b@c.d", "a@b..c", "a@-b.c", "a@b-.c",
		"a@b.c.", "a@.b.c", "a b@c.d", "a@b c", "a@[1.2.3]", "a@[300.1.1.1]",
		"a@[IPv6:zz]", "a@[x:y]", "a@b@c", "\"a@b", "a@", "@b.c", "a\"b\"@c.d",
		"a@b_c.d", "\xc3\xa9@x.y", "a@\xc3\xa9.y", "\"a\x01\"@b.c", "<a@b.c>",
		NULL,
	};

	for (int i = 0; good[i]; i++) {
		EXPECT_EQ(0, check(good[i], 0)) TH_LOG("%s", good[i]);
	}
	for (int i = 0; bad[i]; i++) {
		EXPECT_EQ(-EINVAL, check(bad[i], 0)) TH_LOG("%s", bad[i]);
	}
	EXPECT_EQ(-EINVAL, check("", 0));
	EXPECT_EQ(0, check("", DD_PATH_NULL));
	EXPECT_EQ(-EDESTADDRREQ, check("postmaster", 0));
	EXPECT_EQ(0, check("postmaster", DD_PATH_NODOMAIN));
	EXPECT_EQ(0, check("\"post master\"", DD_PATH_NODOMAIN));
	EXPECT_TRUE(dd_wire_domain_ok("example.com", 11));
	EXPECT_FALSE(dd_wire_domain_ok("", 0));
	EXPECT_FALSE(dd_wire_domain_ok("a..b", 4));
}

/*
 * A NUL inside an address literal (found by fuzz_wire): inet_pton()
 * stopped at it, so "[192.0.2.1\0junk]" passed, and as a C string the
 * address lost its ']'.
 */
TEST(addr_literal_nul)
{
	static const char lit[] = "a@[192.0.2.1\0junk]";
	static const char path[] = "<a@[192.0.2.1\0x]>";
	char out[DD_ADDR_MAX];
	struct dd_strv good = DD_STRV_INIT, bad = DD_STRV_INIT;

	EXPECT_EQ(-EINVAL, dd_wire_addr_check(lit, sizeof(lit) - 1, 0));
	EXPECT_FALSE(dd_wire_domain_ok(lit + 2, sizeof(lit) - 3));
	EXPECT_EQ(-EINVAL, dd_wire_path(path, sizeof(path) - 1, 0, out, NULL));
	ASSERT_EQ(0, dd_wire_addr_list(lit, sizeof(lit) - 1, 0, &good, &bad));
	EXPECT_EQ(0, good.n);
	EXPECT_EQ(1, bad.n);
	dd_strv_free(&good);
	dd_strv_free(&bad);
}

TEST(addr_lengths)
{
	char a[400];

	/* local part: 64 octets */
	memset(a, 'l', 64);
	strcpy(a + 64, "@x.y");
	EXPECT_EQ(0, check(a, 0));
	memset(a, 'l', 65);
	strcpy(a + 65, "@x.y");
	EXPECT_EQ(-ENAMETOOLONG, check(a, 0));
	/* label: 63 octets */
	strcpy(a, "u@");
	memset(a + 2, 'd', 63);
	strcpy(a + 65, ".y");
	EXPECT_EQ(0, check(a, 0));
	memset(a + 2, 'd', 64);
	strcpy(a + 66, ".y");
	EXPECT_EQ(-EINVAL, check(a, 0));
	/* the whole address: 254 octets, so the path is 256 */
	strcpy(a, "u@");
	for (int i = 0; i < 4; i++) {
		memset(a + 2 + i * 62, 'd', 61);
		a[2 + i * 62 + 61] = '.';
	}
	memset(a + 250, 'e', 4);
	a[254] = '\0';
	EXPECT_EQ(254, strlen(a));
	EXPECT_EQ(0, check(a, 0));
	a[254] = 'e';
	a[255] = '\0';
	EXPECT_EQ(-ENAMETOOLONG, check(a, 0));
}

TEST(path)
{
	char out[DD_ADDR_MAX], in[400];
	const char *rest;
	const char *s;

	s = "<a@b.c> SIZE=1";
	EXPECT_EQ(0, dd_wire_path(s, strlen(s), 0, out, &rest));
	EXPECT_STREQ("a@b.c", out);
	EXPECT_STREQ(" SIZE=1", rest);
	s = "<>";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, 2, 0, out, &rest));
	EXPECT_EQ(0, dd_wire_path(s, 2, DD_PATH_NULL, out, &rest));
	EXPECT_STREQ("", out);
	EXPECT_STREQ("", rest);
	s = "<\"x> y\"@b.c>x";
	EXPECT_EQ(0, dd_wire_path(s, strlen(s), 0, out, &rest));
	EXPECT_STREQ("\"x> y\"@b.c", out);
	EXPECT_STREQ("x", rest);
	EXPECT_EQ(-EINVAL, dd_wire_path("a@b.c", 5, 0, out, NULL));
	EXPECT_EQ(-EINVAL, dd_wire_path("<a@b.c", 6, 0, out, NULL));
	EXPECT_EQ(-EINVAL, dd_wire_path("<a@b.c >", 8, 0, out, NULL));
	EXPECT_EQ(-EINVAL, dd_wire_path("<<a@b.c>>", 9, 0, out, NULL));
	EXPECT_EQ(-EOPNOTSUPP, dd_wire_path("<@r.s:a@b.c>", 12, 0, out, NULL));
	EXPECT_EQ(-EOPNOTSUPP, dd_wire_path("<@r,@s:a@b.c>", 13, 0, out, NULL));
	EXPECT_EQ(-EDESTADDRREQ, dd_wire_path("<postmaster>", 12, 0, out, NULL));
	EXPECT_EQ(0, dd_wire_path("<postmaster>", 12, DD_PATH_NODOMAIN, out, NULL));
	/* length: the path takes 256 octets with its brackets */
	strcpy(in, "<u@");
	for (int i = 0; i < 4; i++) {
		memset(in + 3 + i * 62, 'd', 61);
		in[3 + i * 62 + 61] = '.';
	}
	memset(in + 251, 'e', 4);
	strcpy(in + 255, ">");
	EXPECT_EQ(256, strlen(in));
	EXPECT_EQ(0, dd_wire_path(in, 256, 0, out, NULL));
	EXPECT_EQ(254, strlen(out));
	strcpy(in + 255, "e>");
	EXPECT_EQ(-ENAMETOOLONG, dd_wire_path(in, 257, 0, out, NULL));
	EXPECT_STREQ("", out);
}

TEST(path_utf8)
{
	char out[DD_ADDR_MAX];
	const char *s, *rest;

	/* RFC 6531: UTF-8 in the local part and the domain, when allowed */
	s = "<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, strlen(s), 0, out, &rest));
	EXPECT_EQ(0, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, &rest));
	EXPECT_STREQ("j\xc3\xb6rg@b\xc3\xbc" "cher.example", out);
	EXPECT_STREQ(" SMTPUTF8", rest);
	s = "<\"\xe2\x82\xac x\"@d.example>";
	EXPECT_EQ(0, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	s = "<\xf0\x9f\x93\xa7@\xe4\xbe\x8b\xe3\x81\x88.test>";
	EXPECT_EQ(0, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	/* not well-formed: a lone continuation byte, an overlong '/', a
	 * surrogate, a truncated sequence, Latin-1 */
	s = "<a\x80" "b@c.example>";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	s = "<a\xc0\xaf" "b@c.example>";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	s = "<a@\xed\xa0\x80.example>";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	s = "<a\xe2\x82@c.example>";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	s = "<j\xf6rg@c.example>";
	EXPECT_EQ(-EINVAL, dd_wire_path(s, strlen(s), DD_PATH_UTF8, out, NULL));
	EXPECT_TRUE(dd_wire_utf8_ok("a\xc3\xa9\xf4\x8f\xbf\xbf", 7));
	EXPECT_FALSE(dd_wire_utf8_ok("\xf4\x90\x80\x80", 4));
	EXPECT_FALSE(dd_wire_utf8_ok("\xc3", 1));
}

TEST(params)
{
	struct dd_wire_param p[3];
	const char *s;

	EXPECT_EQ(0, dd_wire_params("", 0, p, 3));
	EXPECT_EQ(0, dd_wire_params("   ", 3, p, 3));
	s = " SIZE=10  BODY=8BITMIME SMTPUTF8 ";
	ASSERT_EQ(3, dd_wire_params(s, strlen(s), p, 3));
	EXPECT_TRUE(dd_wire_param_is(&p[0], "size"));
	EXPECT_FALSE(dd_wire_param_is(&p[0], "SIZ"));
	EXPECT_EQ(2, p[0].vallen);
	EXPECT_EQ(0, strncmp(p[0].val, "10", 2));
	EXPECT_TRUE(dd_wire_param_is(&p[1], "BODY"));
	EXPECT_EQ(0, strncmp(p[1].val, "8BITMIME", p[1].vallen));
	EXPECT_TRUE(dd_wire_param_is(&p[2], "SMTPUTF8"));
	EXPECT_EQ(NULL, p[2].val);
	s = " A=1 B=2 C=3 D=4";
	EXPECT_EQ(-E2BIG, dd_wire_params(s, strlen(s), p, 3));
	s = "SIZE=1";
	EXPECT_EQ(-EINVAL, dd_wire_params(s, strlen(s), p, 3));
	s = " =x";
	EXPECT_EQ(-EINVAL, dd_wire_params(s, strlen(s), p, 3));
	s = " A=";
	EXPECT_EQ(-EINVAL, dd_wire_params(s, strlen(s), p, 3));
	s = " A=b=c";
	EXPECT_EQ(-EINVAL, dd_wire_params(s, strlen(s), p, 3));
	s = " -A=b";
	EXPECT_EQ(-EINVAL, dd_wire_params(s, strlen(s), p, 3));
	s = " A_B=1";
	EXPECT_EQ(-EINVAL, dd_wire_params(s, strlen(s), p, 3));
	s = " X-Y=<a+2Bb>";
	EXPECT_EQ(1, dd_wire_params(s, strlen(s), p, 3));
}

static char *crlf(struct dd_buf *b, const char *in)
{
	dd_wire_crlf(b, in, strlen(in));
	return b->p;
}

TEST(crlf_normalise)
{
	struct dd_buf b = DD_BUF_INIT;

	EXPECT_STREQ("a\r\nb\r\nc\rd\r\n\r\n\r\n",
		     crlf(&b, "a\nb\r\nc\rd\n\n\r\n"));
	dd_buf_clear(&b);
	/* in pieces: a CR at the end of one and the LF at the start of the next */
	crlf(&b, "x\r");
	crlf(&b, "\ny\n");
	crlf(&b, "\n");
	EXPECT_STREQ("x\r\ny\r\n\r\n", b.p);
	dd_buf_clear(&b);
	EXPECT_EQ(0, dd_wire_crlf(&b, "", 0));
	EXPECT_EQ(0, b.len);
	/* binary survives */
	EXPECT_EQ(0, dd_wire_crlf(&b, "\0\n\0", 3));
	EXPECT_EQ(4, b.len);
	EXPECT_EQ(0, memcmp(b.p, "\0\r\n\0", 4));

	static const char *const ends[][2] = {
		{ "", "" }, { "x", "x\r\n" }, { "x\r", "x\r\n" },
		{ "x\n", "x\r\n" }, { "x\r\n", "x\r\n" }, { "\n", "\r\n" },
	};
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		dd_buf_clear(&b);
		dd_buf_adds(&b, ends[i][0]);
		EXPECT_EQ(0, dd_wire_end_crlf(&b));
		EXPECT_STREQ(ends[i][1], b.p ? b.p : "") TH_LOG("%zu", i);
	}
	dd_buf_free(&b);
}

TEST(stuffing)
{
	static const char *const cases[][2] = {
		{ "", "" },
		{ ".", ".." },
		{ "..\r\n", "...\r\n" },
		{ "a\r\n.b\r\n", "a\r\n..b\r\n" },
		{ ".\r\n.\r\n", "..\r\n..\r\n" },
		{ "a.b\r\n", "a.b\r\n" },
		{ "x\n.y\n", "x\n..y\n" },		/* bare LF ends a line too */
		{ "x\r.y\r\n", "x\r.y\r\n" },		/* bare CR does not */
		{ "no dot\r\n", "no dot\r\n" },
		{ "\r\n.", "\r\n.." },
	};
	struct dd_buf st = DD_BUF_INIT, un = DD_BUF_INIT;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i][0];

		dd_buf_clear(&st);
		dd_buf_clear(&un);
		EXPECT_EQ(0, dd_wire_stuff(&st, in, strlen(in)));
		EXPECT_STREQ(cases[i][1], st.p ? st.p : "") TH_LOG("%zu", i);
		EXPECT_EQ(strlen(cases[i][1]) - strlen(in),
			  dd_wire_stuff_count(in, strlen(in)));
		EXPECT_EQ(0, dd_wire_unstuff(&un, st.p, st.len));
		EXPECT_STREQ(in, un.p ? un.p : "") TH_LOG("%zu", i);
	}
	/* random bodies of '.', CR, LF and 'a' round-trip */
	srandom(1);
	for (int r = 0; r < 2000; r++) {
		char in[64];
		size_t n = (size_t)(random() % 64);

		for (size_t i = 0; i < n; i++)
			in[i] = ".\r\na"[random() % 4];
		dd_buf_clear(&st);
		dd_buf_clear(&un);
		dd_wire_stuff(&st, in, n);
		ASSERT_EQ(n + dd_wire_stuff_count(in, n), st.len);
		dd_wire_unstuff(&un, st.p, st.len);
		ASSERT_EQ(n, un.len);
		ASSERT_EQ(0, memcmp(in, un.p, n));
	}
	dd_buf_free(&st);
	dd_buf_free(&un);
}

TEST(header_end)
{
	const char *m;
	size_t body;

	m = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
	EXPECT_EQ(12, dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(14, body);
	m = "A: 1\nB: 2\n\nbody\n";
	EXPECT_EQ(10, dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(11, body);
	/* folded, and no body at all */
	m = "Subject: a\r\n b\r\n\tc\r\nX-Y:z\r\n";
	EXPECT_EQ(strlen(m), dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(strlen(m), body);
	/* no empty line: the body starts at the first non-field line */
	m = "A: 1\r\nnot a field\r\nB: 2\r\n";
	EXPECT_EQ(6, dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(6, body);
	m = "\r\nbody";
	EXPECT_EQ(0, dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(2, body);
	m = " A: 1\r\n";
	EXPECT_EQ(0, dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(0, body);
	m = "A: no line end";
	EXPECT_EQ(strlen(m), dd_wire_header_end(m, strlen(m), &body));
	EXPECT_EQ(0, dd_wire_header_end("", 0, &body));
	EXPECT_EQ(0, body);
}

TEST(header_fields)
{
	const char *m = "Received: x\r\n"
		"To: a@b.c,\r\n"
		"\t\"Doe, J\" <j@d.e>\r\n"
		"Subject : hello\r\n"
		"  world  \r\n"
		"bogus line\r\n"
		"\r\n"
		"To: body@x.y\r\n";
	size_t hlen = dd_wire_header_end(m, strlen(m), NULL), pos = 0;
	struct dd_wire_field f;
	struct dd_buf v = DD_BUF_INIT;

	/* "bogus line" ends the header block */
	EXPECT_EQ(strlen(m) - strlen("bogus line\r\n\r\nTo: body@x.y\r\n"), hlen);
	ASSERT_EQ(1, dd_wire_header_next(m, hlen, &pos, &f));
	EXPECT_TRUE(dd_wire_field_is(&f, "received"));
	ASSERT_EQ(1, dd_wire_header_next(m, hlen, &pos, &f));
	EXPECT_TRUE(dd_wire_field_is(&f, "TO"));
	EXPECT_EQ(0, strncmp(f.raw, "To: a@b.c,\r\n\t\"Doe, J\" <j@d.e>\r\n", f.rawlen));
	EXPECT_EQ(31, f.rawlen);
	dd_wire_unfold(&v, f.value, f.valuelen);
	EXPECT_STREQ("a@b.c,\t\"Doe, J\" <j@d.e>", v.p);
	ASSERT_EQ(1, dd_wire_header_next(m, hlen, &pos, &f));
	EXPECT_TRUE(dd_wire_field_is(&f, "Subject"));
	dd_buf_clear(&v);
	dd_wire_unfold(&v, f.value, f.valuelen);
	EXPECT_STREQ("hello  world", v.p);
	EXPECT_EQ(0, dd_wire_header_next(m, hlen, &pos, &f));
	EXPECT_EQ(0, dd_wire_header_next(m, hlen, &pos, &f));
	dd_buf_free(&v);
}

TEST(addr_list)
{
	static const struct {
		const char *in, *good, *bad;
	} cases[] = {
		{ "a@b.c", "a@b.c", "" },
		{ " a@b.c , d@e.f,,", "a@b.c|d@e.f", "" },
		{ "\"Doe, John\" <j@d.e> (work, mostly), Jane <jane@x.y>",
		  "j@d.e|jane@x.y", "" },
		{ "a@b.c (Comment (nested, \\) too))", "a@b.c", "" },
		{ "Team: x@y.z, W <w@v.u>;, last@l.m", "x@y.z|w@v.u|last@l.m", "" },
		{ "undisclosed-recipients:;", "", "" },
		{ "<@r1,@r2:q@r.s>", "q@r.s", "" },
		{ "john . smith @ example . com", "john.smith@example.com", "" },
		{ "\"quoted local\"@q.r", "\"quoted local\"@q.r", "" },
		{ "a@[192.0.2.1], b@[IPv6:::1]", "a@[192.0.2.1]|b@[IPv6:::1]", "" },
		{ "Some Name a@b.c, ok@d.e", "ok@d.e", "Some Name a@b.c" },
		{ "<bad@@x>, plain", "", "bad@@x|plain" },
		{ "x@y.z\r\n\t, w@v.u", "x@y.z|w@v.u", "" },
		{ "", "", "" },
	};
	struct dd_strv good = DD_STRV_INIT, bad = DD_STRV_INIT;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(0, dd_wire_addr_list(cases[i].in, strlen(cases[i].in), 0,
					       &good, &bad));
		EXPECT_STREQ(cases[i].good, joined(&good)) TH_LOG("%s", cases[i].in);
		EXPECT_STREQ(cases[i].bad, joined(&bad)) TH_LOG("%s", cases[i].in);
		dd_strv_free(&good);
		dd_strv_free(&bad);
	}
	/* with DD_PATH_NODOMAIN a bare local part is an address */
	ASSERT_EQ(0, dd_wire_addr_list("root, Bob <bob>", 15, DD_PATH_NODOMAIN,
				       &good, NULL));
	EXPECT_STREQ("root|bob", joined(&good));
	dd_strv_free(&good);
}

TEST(header_rcpts)
{
	const char *m = "From: me@here.org\r\n"
		"To: a@b.c,\r\n"
		"  \"B, Bee\" <b@b.c>\r\n"
		"cc: <c@c.c>\r\n"
		"Subject: To: not@this.one\r\n"
		"BCC: hidden@d.e\r\n"
		"To: second@to.field\r\n"
		"\r\n"
		"To: body@not.header\r\n";
	struct dd_strv good = DD_STRV_INIT, bad = DD_STRV_INIT;
	struct dd_buf out = DD_BUF_INIT;
	static const char *const bcc[] = { "Bcc", "Resent-Bcc", NULL };

	ASSERT_EQ(0, dd_wire_header_rcpts(m, strlen(m), 0, &good, &bad));
	EXPECT_STREQ("a@b.c|b@b.c|c@c.c|hidden@d.e|second@to.field", joined(&good));
	EXPECT_EQ(0, bad.n);
	dd_strv_free(&good);

	ASSERT_EQ(0, dd_wire_header_remove(&out, m, strlen(m), bcc));
	EXPECT_STREQ("From: me@here.org\r\n"
		     "To: a@b.c,\r\n"
		     "  \"B, Bee\" <b@b.c>\r\n"
		     "cc: <c@c.c>\r\n"
		     "Subject: To: not@this.one\r\n"
		     "To: second@to.field\r\n"
		     "\r\n"
		     "To: body@not.header\r\n", out.p);
	dd_buf_free(&out);

	/* Resent- fields win when there are any */
	m = "To: old@x.y\n"
		"Resent-To: new@x.y,\n"
		"\tnewer@x.y\n"
		"Resent-Bcc: Secret <s@x.y>\n"
		"Bcc: (folded\n"
		" comment) b@x.y\n"
		"\n";
	ASSERT_EQ(0, dd_wire_header_rcpts(m, strlen(m), 0, &good, &bad));
	EXPECT_STREQ("new@x.y|newer@x.y|s@x.y", joined(&good));
	dd_strv_free(&good);
	ASSERT_EQ(0, dd_wire_header_remove(&out, m, strlen(m), bcc));
	EXPECT_STREQ("To: old@x.y\nResent-To: new@x.y,\n\tnewer@x.y\n\n", out.p);
	dd_buf_free(&out);

	/* no recipient fields, invalid ones reported */
	m = "Subject: x\r\nTo: nobody, ok@o.k\r\n\r\n";
	ASSERT_EQ(0, dd_wire_header_rcpts(m, strlen(m), 0, &good, &bad));
	EXPECT_STREQ("ok@o.k", joined(&good));
	EXPECT_STREQ("nobody", joined(&bad));
	dd_strv_free(&good);
	dd_strv_free(&bad);
	m = "Subject: x\r\n\r\n";
	ASSERT_EQ(0, dd_wire_header_rcpts(m, strlen(m), 0, &good, &bad));
	EXPECT_EQ(0, good.n);
}

TEST(date)
{
	char buf[40];

	setenv("TZ", "UTC", 1);
	tzset();
	EXPECT_EQ(30, dd_wire_date(buf, sizeof(buf), 0));
	EXPECT_STREQ("Thu, 1 Jan 1970 00:00:00 +0000", buf);
	EXPECT_EQ(31, dd_wire_date(buf, sizeof(buf), 1700000000));
	EXPECT_STREQ("Tue, 14 Nov 2023 22:13:20 +0000", buf);
	setenv("TZ", "XST-5:30", 1);
	tzset();
	dd_wire_date(buf, sizeof(buf), 1700000000);
	EXPECT_STREQ("Wed, 15 Nov 2023 03:43:20 +0530", buf);
	setenv("TZ", "EST5", 1);
	tzset();
	dd_wire_date(buf, sizeof(buf), 0);
	EXPECT_STREQ("Wed, 31 Dec 1969 19:00:00 -0500", buf);
}

TEST_HARNESS_MAIN
