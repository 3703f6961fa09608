// SPDX-License-Identifier: GPL-2.0
/*
 * dd_lines_test: what deliverd's line-based files share (dd_lines.c): the
 * read loop and its exact error messages, domain patterns, and the domain
 * map's precedence (exact, then the longest ".suffix", then "*").
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dd_lines.h"

/* len octets of text into a new temporary file; its path in path. */
static void tmpfile_len(char *path, const char *text, size_t len)
{
	const char *t = getenv("TMPDIR");
	int fd;

	snprintf(path, PATH_MAX, "%s/dd_lines_test.XXXXXX", t && *t ? t : "/tmp");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* What the callback saw, and what it is to answer on a given line. */
struct seen {
	char out[1024];		/* "LINE:[text]" for each call */
	unsigned int calls;
	unsigned int fail_line;	/* 0: never */
	int fail_ret;
	const char *fail_msg;	/* NULL: leave msg empty */
};

static int collect(void *arg, char *line, unsigned int lineno, char *msg,
		   size_t msglen)
{
	struct seen *s = arg;
	size_t n = strlen(s->out);

	s->calls++;
	if (lineno == s->fail_line) {
		if (s->fail_msg)
			snprintf(msg, msglen, "%s", s->fail_msg);
		return s->fail_ret;
	}
	snprintf(s->out + n, sizeof(s->out) - n, "%u:[%s]", lineno, line);
	return 0;
}

/* Read len octets of text with s; the return value, err filled. */
static int readn(const char *text, size_t len, struct seen *s, char *err,
		 size_t errlen, char *path)
{
	int r;

	tmpfile_len(path, text, len);
	err[0] = '\0';
	r = dd_lines_read(path, collect, s, err, errlen);
	unlink(path);
	return r;
}

#define READ(text, s, err, path) \
	readn(text, sizeof(text) - 1, s, err, sizeof(err), path)

TEST(read_comments_blanks_line_ends)
{
	struct seen s = { 0 };
	char err[512], path[PATH_MAX];

	ASSERT_EQ(0, READ("# a comment\n"
			  "\n"
			  "   \t \n"
			  "one two\n"
			  "three # the rest is a comment\n"
			  "   # indented comment\n"
			  "\r\n"
			  "crlf line\r\n"
			  "crlf # comment\r\n"
			  "\t lead\tand trail \n"
			  "mid\rdle\n"
			  "last, no newline",
			  &s, err, path)) TH_LOG("%s", err);
	EXPECT_STREQ("4:[one two]5:[three ]8:[crlf line]9:[crlf ]"
		     "10:[\t lead\tand trail ]11:[mid\rdle]"
		     "12:[last, no newline]", s.out);
	EXPECT_EQ(7, s.calls);
	EXPECT_STREQ("", err);
}

TEST(read_empty_and_all_blank)
{
	struct seen s = { 0 };
	char err[512], path[PATH_MAX];

	EXPECT_EQ(0, READ("", &s, err, path));
	EXPECT_EQ(0, s.calls);
	EXPECT_EQ(0, READ("\n\r\n# x\n  ", &s, err, path));
	EXPECT_EQ(0, s.calls);
	/* a lone "\r" at the end of the file is a line end too */
	EXPECT_EQ(0, READ("x\r", &s, err, path));
	EXPECT_STREQ("1:[x]", s.out);
}

TEST(read_missing_file)
{
	char err[512], want[PATH_MAX + 64];
	struct seen s = { 0 };
	const char *t = getenv("TMPDIR");

	snprintf(want, PATH_MAX, "%s/dd_lines_test.none.%d",
		 t && *t ? t : "/tmp", (int)getpid());
	EXPECT_EQ(-ENOENT, dd_lines_read(want, collect, &s, err, sizeof(err)));
	strcat(want, ": No such file or directory");
	EXPECT_STREQ(want, err);
	EXPECT_EQ(0, s.calls);
}

TEST(read_error)
{
	char err[512], dir[PATH_MAX], want[PATH_MAX + 64];
	struct seen s = { 0 };
	const char *t = getenv("TMPDIR");

	/* A directory opens, but reading it fails (EISDIR). */
	snprintf(dir, sizeof(dir), "%s/dd_lines_test.XXXXXX",
		 t && *t ? t : "/tmp");
	ASSERT_NE(NULL, mkdtemp(dir));
	EXPECT_EQ(-EIO, dd_lines_read(dir, collect, &s, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: read error", dir);
	EXPECT_STREQ(want, err);
	rmdir(dir);
}

TEST(read_nul_byte)
{
	struct seen s = { 0 };
	char err[512], path[PATH_MAX], want[PATH_MAX + 64];
	int r;

	r = READ("ok\nbad\0line\nnever\n", &s, err, path);
	EXPECT_EQ(-EINVAL, r);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	EXPECT_STREQ(want, err);
	EXPECT_STREQ("1:[ok]", s.out);
	EXPECT_EQ(1, s.calls);

	/* in a comment too: the check comes first */
	memset(&s, 0, sizeof(s));
	r = READ("# a \0 comment\n", &s, err, path);
	EXPECT_EQ(-EINVAL, r);
	snprintf(want, sizeof(want), "%s:1: NUL byte in line", path);
	EXPECT_STREQ(want, err);
	EXPECT_EQ(0, s.calls);
}

TEST(read_callback_errors)
{
	static const struct {
		int ret;
		const char *msg;
		const char *want;	/* after "PATH" */
	} cases[] = {
		{ -EINVAL, "bad domain 'x'", ":3: bad domain 'x'" },
		{ -EHOSTUNREACH, "cannot resolve 'h': Name or service not known",
		  ":3: cannot resolve 'h': Name or service not known" },
		{ -ENOMEM, NULL, ": out of memory" },
		/* even with a message: the line has nothing to do with it */
		{ -ENOMEM, "ignored", ": out of memory" },
		/* no message: the error's name rather than nothing */
		{ -EINVAL, NULL, ":3: Invalid argument" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct seen s = {
			.fail_line = 3, .fail_ret = cases[i].ret,
			.fail_msg = cases[i].msg,
		};
		char err[512], path[PATH_MAX], want[PATH_MAX + 128];

		EXPECT_EQ(cases[i].ret, READ("a\nb\nc\nd\n", &s, err, path));
		snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
		EXPECT_STREQ(want, err) TH_LOG("case %zu", i);
		/* reading stops at the first error */
		EXPECT_EQ(3, s.calls);
		EXPECT_STREQ("1:[a]2:[b]", s.out);
	}
}

TEST(fields)
{
	char line[64], *f[3] = { NULL, NULL, NULL };

	strcpy(line, " a\tb  c\r");
	EXPECT_TRUE(dd_lines_fields(line, f, 3));
	EXPECT_STREQ("a", f[0]);
	EXPECT_STREQ("b", f[1]);
	EXPECT_STREQ("c", f[2]);
	strcpy(line, "a b");
	EXPECT_FALSE(dd_lines_fields(line, f, 3));
	strcpy(line, "a b c d");
	EXPECT_FALSE(dd_lines_fields(line, f, 3));
	strcpy(line, "one");
	EXPECT_TRUE(dd_lines_fields(line, f, 1));
	EXPECT_STREQ("one", f[0]);
}

TEST(domain_pattern)
{
	static const struct {
		const char *in, *out;	/* out NULL: rejected */
	} cases[] = {
		{ "example.com", "example.com" },
		{ "Example.COM", "example.com" },
		{ "example.com.", "example.com" },
		{ ".Example.com", ".example.com" },
		{ ".example.com.", ".example.com" },
		{ "*", "*" },
		{ "localhost", "localhost" },
		{ "a-b_c.example", "a-b_c.example" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		/* UTF-8 kept octet for octet; only ASCII is lowercased */
		{ "B\xc3\xbc" "cher.Example", "b\xc3\xbc" "cher.example" },
		{ "\xc3\x9c" "ber.example", "\xc3\x9c" "ber.example" },
		{ "", NULL },
		{ ".", NULL },
		{ "..", NULL },
		{ "*.", NULL },
		{ "*.example.com", NULL },
		{ "a..example", NULL },
		{ "..example", NULL },
		{ "a.example..", NULL },
		{ "bad/example", NULL },
		{ "bad example", NULL },
		{ "a:25", NULL },
		{ "[127.0.0.1]", NULL },
	};
	char d[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(d, sizeof(d), "%s", cases[i].in);
		EXPECT_EQ(!!cases[i].out, dd_domain_pattern(d))
			TH_LOG("'%s'", cases[i].in);
		if (cases[i].out)
			EXPECT_STREQ(cases[i].out, d);
	}

	/* 255 octets at most, counted without the trailing dot */
	memset(d, 'a', 255);
	d[255] = '\0';
	for (size_t i = 63; i < 255; i += 64)
		d[i] = '.';
	EXPECT_TRUE(dd_domain_pattern(d));
	strcpy(d + 255, ".");
	EXPECT_TRUE(dd_domain_pattern(d));
	EXPECT_EQ(255, strlen(d));
	strcpy(d + 255, "a");
	EXPECT_FALSE(dd_domain_pattern(d));
}

/* add key with value v; the return value */
static int add(struct dd_dmap *m, const char *key, int v)
{
	void *p;
	int r = dd_dmap_add(m, key, sizeof(int), &p);

	if (!r)
		*(int *)p = v;
	return r;
}

static int look(const struct dd_dmap *m, const char *domain)
{
	const int *p = dd_dmap_lookup(m, domain);

	return p ? *p : 0;
}

TEST(dmap_precedence)
{
	struct dd_dmap m = { 0 };

	EXPECT_EQ(0, look(&m, "example.com"));
	EXPECT_EQ(0, dd_dmap_count(&m));

	ASSERT_EQ(0, add(&m, "example.com", 1));
	ASSERT_EQ(0, add(&m, ".example.com", 2));
	ASSERT_EQ(0, add(&m, ".b.example.com", 3));
	ASSERT_EQ(0, add(&m, "b\xc3\xbc" "cher.example", 5));
	EXPECT_EQ(4, dd_dmap_count(&m));

	/* no "*" yet: nothing for the others */
	EXPECT_EQ(0, look(&m, "other.org"));
	EXPECT_EQ(0, look(&m, "com"));
	ASSERT_EQ(0, add(&m, "*", 4));
	EXPECT_EQ(5, dd_dmap_count(&m));

	EXPECT_EQ(1, look(&m, "example.com"));
	EXPECT_EQ(1, look(&m, "EXAMPLE.Com."));
	EXPECT_EQ(2, look(&m, "a.example.com"));
	EXPECT_EQ(2, look(&m, "x.y.Example.COM"));
	/* ".b.example.com" is not b.example.com itself */
	EXPECT_EQ(2, look(&m, "b.example.com"));
	/* the longest suffix wins */
	EXPECT_EQ(3, look(&m, "a.b.example.com"));
	EXPECT_EQ(3, look(&m, "z.a.B.example.com."));
	EXPECT_EQ(4, look(&m, "notexample.com"));
	EXPECT_EQ(4, look(&m, "com"));
	EXPECT_EQ(4, look(&m, ""));
	EXPECT_EQ(4, look(&m, "."));
	EXPECT_EQ(4, look(&m, NULL));
	/* UTF-8 octet for octet; only ASCII has a case */
	EXPECT_EQ(5, look(&m, "B\xc3\xbc" "cher.example"));
	EXPECT_EQ(4, look(&m, "b\xc3\x9c" "cher.example"));

	/* exact keys only, as stored */
	EXPECT_EQ(1, *(int *)dd_dmap_get(&m, "example.com"));
	EXPECT_EQ(2, *(int *)dd_dmap_get(&m, ".example.com"));
	EXPECT_EQ(4, *(int *)dd_dmap_get(&m, "*"));
	EXPECT_EQ(NULL, dd_dmap_get(&m, "a.example.com"));
	EXPECT_EQ(NULL, dd_dmap_get(&m, "Example.com"));

	dd_dmap_free(&m);
	EXPECT_EQ(0, dd_dmap_count(&m));
	EXPECT_EQ(0, look(&m, "example.com"));
}

TEST(dmap_duplicates)
{
	struct dd_dmap m = { 0 };
	void *first, *again;

	ASSERT_EQ(0, dd_dmap_add(&m, "example.com", 16, &first));
	/* a new value is zeroed */
	EXPECT_EQ(0, memcmp(first, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16));
	EXPECT_EQ(-EEXIST, dd_dmap_add(&m, "example.com", 16, &again));
	EXPECT_EQ(first, again);
	/* the subdomain pattern is another key */
	EXPECT_EQ(0, dd_dmap_add(&m, ".example.com", 16, &again));
	EXPECT_NE(first, again);
	ASSERT_EQ(0, dd_dmap_add(&m, "*", 0, &first));
	EXPECT_NE(NULL, first);
	EXPECT_EQ(-EEXIST, dd_dmap_add(&m, "*", 0, &again));
	EXPECT_EQ(first, again);
	EXPECT_EQ(3, dd_dmap_count(&m));
	dd_dmap_free(&m);
}

TEST(dmap_many)
{
	enum { N = 3000 };
	struct dd_dmap m = { 0 };
	void *vals[N];
	char k[64];

	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "%sd%d.example", i % 2 ? "." : "", i);
		ASSERT_EQ(0, dd_dmap_add(&m, k, sizeof(long double), &vals[i]));
		/* aligned for anything */
		EXPECT_EQ(0, (uintptr_t)vals[i] % _Alignof(long double));
		*(int *)vals[i] = i + 1;
	}
	EXPECT_EQ(N, dd_dmap_count(&m));
	/* values stay where they were through the table's growth */
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "%sd%d.example", i % 2 ? "." : "", i);
		EXPECT_EQ(vals[i], dd_dmap_get(&m, k));
		snprintf(k, sizeof(k), "%sd%d.example", i % 2 ? "x." : "", i);
		EXPECT_EQ(i + 1, look(&m, k));
	}
	dd_dmap_free(&m);
}

TEST_HARNESS_MAIN
