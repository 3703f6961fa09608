// SPDX-License-Identifier: GPL-2.0
/*
 * dc_test: deliverctl's parts (CSV, templates, addresses, headers, the
 * SMTP client) and the deliverctl binary itself: merge --dry-run, exit
 * codes, a scripted server offering CHUNKING (BDAT and the control
 * commands), and Postfix's smtp-sink on a unix socket (DATA path).
 *
 * The binary is $DELIVERCTL, else deliverctl next to this program
 * (deliverctl-san next to dc_test-san).  The smtp-sink cases SKIP when
 * it is not installed.
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dc.h"

/* The 6.1 harness's TEST() passes a variant that plain tests never use. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ---- helpers ---- */

static FILE *mem(const char *s)
{
	return fmemopen((void *)s, strlen(s), "r");
}

static char *slurp(const char *path, size_t *len)
{
	struct dd_buf b = { 0 };
	char tmp[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		dc_buf_add(&b, tmp, n);
	fclose(f);
	if (len)
		*len = b.len;
	return dc_buf_str(&b);
}

static void spit(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	if (!f)
		abort();
	fputs(s, f);
	fclose(f);
}

static const char *binary(void)
{
	static char path[4096];
	const char *env = getenv("DELIVERCTL");
	ssize_t n;
	char *slash;
	bool san;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n <= 0)
		return "deliverctl";
	path[n] = 0;
	san = n > 4 && !strcmp(path + n - 4, "-san");
	slash = strrchr(path, '/');
	strcpy(slash + 1, san ? "deliverctl-san" : "deliverctl");
	return path;
}

/*
 * Run deliverctl (argv[0] as given: "sendmail" picks the sendmail mode)
 * with stdin from in (or /dev/null), stdout and stderr into files.
 * Returns the exit status, or -1.
 */
static int run(const char *dir, const char *in, char *const argv[])
{
	char out[4096], err[4096];
	pid_t pid;
	int st;

	snprintf(out, sizeof(out), "%s/stdout", dir);
	snprintf(err, sizeof(err), "%s/stderr", dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		int fd = open(in ? in : "/dev/null", O_RDONLY);

		dup2(fd, 0);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		execv(binary(), argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *file_in(const char *dir, const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return slurp(p, NULL);
}

static unsigned int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && (!suffix || (strlen(e->d_name) > strlen(suffix) &&
			!strcmp(e->d_name + strlen(e->d_name) - strlen(suffix), suffix))))
			n++;
	closedir(d);
	return n;
}

static bool starts(const char *s, const char *prefix)
{
	return s && !strncmp(s, prefix, strlen(prefix));
}

/* The value of header name in a message (first one), malloc'd, or NULL. */
static char *header(const char *msg, const char *name)
{
	size_t n = strlen(name);
	const char *p = msg;

	while (*p && strncmp(p, "\r\n", 2)) {
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			return strndup(v, e ? (size_t)(e - v) : strlen(v));
		}
		p = strstr(p, "\r\n");
		if (!p)
			break;
		p += 2;
	}
	return NULL;
}

FIXTURE(tmp) {
	char dir[64];
	pid_t server;
};

FIXTURE_SETUP(tmp)
{
	strcpy(self->dir, "/tmp/dc_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	chmod(self->dir, 0755);
	self->server = 0;
}

FIXTURE_TEARDOWN(tmp)
{
	char cmd[128];

	if (self->server > 0) {
		kill(self->server, SIGTERM);
		waitpid(self->server, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		fprintf(stderr, "# could not remove %s\n", self->dir);
}

/* ---- CSV ---- */

static int csv_all(const char *text, char *out, size_t outlen)
{
	struct dc_csv c;
	FILE *f = mem(text);
	char err[256];
	unsigned long line;
	size_t o = 0;
	int r, n = 0;

	dc_csv_init(&c, f);
	out[0] = 0;
	while ((r = dc_csv_next(&c, &line, err, sizeof(err))) != 0) {
		o += (size_t)snprintf(out + o, outlen - o, "%lu:", line);
		if (r < 0)
			o += (size_t)snprintf(out + o, outlen - o, "ERR(%s)", err);
		else
			for (unsigned int i = 0; i < c.nfield; i++)
				o += (size_t)snprintf(out + o, outlen - o, "[%s]", c.field[i]);
		o += (size_t)snprintf(out + o, outlen - o, ";");
		n++;
	}
	dc_csv_free(&c);
	fclose(f);
	return n;
}

TEST(csv_quotes)
{
	char out[1024];

	ASSERT_EQ(3, csv_all("a,b,c\n\"x,y\",\"say \"\"hi\"\"\",\n\"\",plain\"q,z\n",
			     out, sizeof(out)));
	EXPECT_STREQ("1:[a][b][c];2:[x,y][say \"hi\"][];3:[][plain\"q][z];", out);
}

TEST(csv_embedded_newlines_and_line_numbers)
{
	char out[1024];

	ASSERT_EQ(4, csv_all("h1,h2\r\n\"two\r\nlines\",x\r\n\"three\nline\ns\",y\r\nlast,z\r\n",
			     out, sizeof(out)));
	EXPECT_STREQ("1:[h1][h2];2:[two\r\nlines][x];4:[three\nline\ns][y];7:[last][z];", out);
}

TEST(csv_no_trailing_newline_blank_lines_bom)
{
	char out[1024];

	ASSERT_EQ(3, csv_all("\xef\xbb\xbf" "a,b\n\n\r\nc,d\n\ne,f", out, sizeof(out)));
	EXPECT_STREQ("1:[a][b];4:[c][d];6:[e][f];", out);
	ASSERT_EQ(1, csv_all("only", out, sizeof(out)));
	EXPECT_STREQ("1:[only];", out);
	ASSERT_EQ(1, csv_all("a,\n", out, sizeof(out)));
	EXPECT_STREQ("1:[a][];", out);
	ASSERT_EQ(0, csv_all("", out, sizeof(out)));
}

TEST(csv_bad_records)
{
	char out[1024];

	/* Text after a closing quote: that record only. */
	ASSERT_EQ(3, csv_all("a,b\n\"x\"y,z\nc,d\n", out, sizeof(out)));
	EXPECT_STREQ("1:[a][b];2:ERR(text after a closing quote);3:[c][d];", out);
	/* An unterminated quote eats the rest: reported at its record's start. */
	ASSERT_EQ(2, csv_all("a,b\nc,\"open\nmore\nstuff\n", out, sizeof(out)));
	EXPECT_STREQ("1:[a][b];2:ERR(unterminated quoted field (field 2));", out);
}

TEST(csv_field_counts)
{
	char out[1024];

	ASSERT_EQ(3, csv_all("a,b,c\n1,2\n1,2,3,4\n", out, sizeof(out)));
	EXPECT_STREQ("1:[a][b][c];2:[1][2];3:[1][2][3][4];", out);
}

/* ---- templates ---- */

static char *fill(const char *tmpl, char *const *cols, char *const *row, unsigned int n,
		  char *err, size_t errlen, int *rc)
{
	struct dc_template t;
	struct dd_buf out = { 0 };

	*rc = dc_template_parse(&t, tmpl, strlen(tmpl), err, errlen);
	if (*rc)
		return NULL;
	*rc = dc_template_bind(&t, cols, n, err, errlen);
	if (!*rc)
		*rc = dc_template_fill(&t, row, n, &out, err, errlen);
	dc_template_free(&t);
	if (*rc) {
		dc_buf_free(&out);
		return NULL;
	}
	return dc_buf_str(&out);
}

TEST(template_fill)
{
	char *cols[] = { "email", " name ", "code" };
	char *row[] = { "a@example.com", "Ann", "X1\nY2" };
	char err[256];
	int rc;
	char *s = fill("To: {{email}}\nSubject: Hi {{  name }}!\n\nDear {{name}},\n"
		       "your code: {{code}} {{{{not}} }}\n", cols, row, 3, err, sizeof(err), &rc);

	ASSERT_EQ(0, rc);
	EXPECT_STREQ("To: a@example.com\r\nSubject: Hi Ann!\r\n\r\nDear Ann,\r\n"
		     "your code: X1\nY2 {{not}} }}\r\n", s);
	free(s);
}

TEST(template_errors)
{
	char *cols[] = { "email", "name" };
	char *row[] = { "a@example.com", "Evil\r\nBcc: x@y" };
	char err[256];
	int rc;

	EXPECT_EQ(NULL, fill("To: {{email}}\n\nHi {{ nmae }}\n", cols, row, 2, err,
			     sizeof(err), &rc));
	EXPECT_NE(0, rc);
	EXPECT_STREQ("3: unknown placeholder {{nmae}}: no such column in the CSV header", err);

	EXPECT_EQ(NULL, fill("To: {{email\n\nx\n", cols, row, 2, err, sizeof(err), &rc));
	EXPECT_NE(NULL, strstr(err, "1: unterminated placeholder"));

	EXPECT_EQ(NULL, fill("To: {{ }}\n\nx\n", cols, row, 2, err, sizeof(err), &rc));
	EXPECT_STREQ("1: empty placeholder", err);

	/* A line break from the data may not make new header fields... */
	EXPECT_EQ(NULL, fill("Subject: {{name}}\n\nx\n", cols, row, 2, err, sizeof(err), &rc));
	EXPECT_NE(NULL, strstr(err, "line break"));
	/* ...but is fine in the body. */
	char *s = fill("Subject: x\n\n{{name}}\n", cols, row, 2, err, sizeof(err), &rc);

	ASSERT_NE(NULL, s);
	EXPECT_STREQ("Subject: x\r\n\r\nEvil\r\nBcc: x@y\r\n", s);
	free(s);
}

/*
 * A NUL inside a placeholder (found by fuzz_template): the name was cut
 * at it as a C string, so "{{ a\0b }}" looked for the column "a" with
 * what followed lost; now the template is refused, saying why.
 */
TEST(template_nul_in_placeholder)
{
	static const char tmpl[] = "To: {{ a\0b }}\n\nx\n";
	struct dc_template t;
	char err[256];

	EXPECT_EQ(-1, dc_template_parse(&t, tmpl, sizeof(tmpl) - 1, err,
					sizeof(err)));
	EXPECT_STREQ("1: NUL byte in a placeholder", err);
	/* Elsewhere a NUL is text, kept as it is. */
	ASSERT_EQ(0, dc_template_parse(&t, "x\0y\n", 4, err, sizeof(err)));
	dc_template_free(&t);
}

/* ---- addresses ---- */

TEST(addr_valid)
{
	static const char *good[] = {
		"a@example.com", "first.last+tag@sub.example.co.uk", "x@localhost",
		"\"john doe\"@example.com", "\"a\\\"b\"@example.com", "u@[192.0.2.1]",
		"o'neil@example.com", "a-b@x-y.example", "!#$%&'*+-/=?^_`{|}~@example.com",
	};
	static const char *bad[] = {
		"", "a", "@example.com", "a@", "a@@b", "a..b@example.com", ".a@example.com",
		"a.@example.com", "a b@example.com", "a@-example.com", "a@example-.com",
		"a@exa_mple.com", "a@example..com", "a@.example.com", "\"a@example.com",
		"a@[1.2.3.4", "caf\xc3\xa9@example.com",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
	};
	unsigned int i, wrong = 0;


	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		if (!dc_addr_valid(good[i])) {
			fprintf(stderr, "# refused: %s\n", good[i]);
			wrong++;
		}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (dc_addr_valid(bad[i])) {
			fprintf(stderr, "# accepted: %s\n", bad[i]);
			wrong++;
		}
	EXPECT_EQ(0, wrong);
}

TEST(addr_list)
{
	const char *s = "\"Doe, John\" <john@example.com>, plain@example.org (comment, x),\r\n"
			"\tundisclosed:;, team: a@x.example, b@y.example;, <@r1,@r2:c@z.example>,"
			" Name (c) <d@w.example> , \"q@not\" <e@v.example>";
	char **v = NULL;
	unsigned int n = 0, i;

	ASSERT_EQ(7, dc_addr_list(s, strlen(s), &v, &n));
	ASSERT_EQ(7, n);
	EXPECT_STREQ("john@example.com", v[0]);
	EXPECT_STREQ("plain@example.org", v[1]);
	EXPECT_STREQ("a@x.example", v[2]);
	EXPECT_STREQ("b@y.example", v[3]);
	EXPECT_STREQ("c@z.example", v[4]);
	EXPECT_STREQ("d@w.example", v[5]);
	EXPECT_STREQ("e@v.example", v[6]);
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);

	char *one = dc_addr_one("Ann <ann@example.com>");

	EXPECT_STREQ("ann@example.com", one);
	free(one);
	EXPECT_EQ(NULL, dc_addr_one("a@x.example, b@x.example"));
	EXPECT_EQ(NULL, dc_addr_one(""));
}

/* ---- messages ---- */

static char *prep(const char *in, const struct dc_prep *p, struct dc_hdrinfo *info)
{
	struct dd_buf crlf = { 0 }, out = { 0 };

	dc_crlf(in, strlen(in), &crlf);
	dc_prepare(p, crlf.p ? crlf.p : "", crlf.len, &out, info);
	dc_buf_free(&crlf);
	return dc_buf_str(&out);
}

TEST(sendmail_t_recipients)
{
	struct dc_prep p = { .hostname = "h.example", .want_rcpts = true, .drop_bcc = true };
	struct dc_hdrinfo info;
	char *m = prep("To: a@example.com,\n  \"B\" <b@example.com>\nSubject: s\n"
		       "bcc: hidden@example.com,\n\tother@example.com\nCC: c@example.com\n"
		       "X-Note: To: not@example.com\n\nTo: body@example.com\n", &p, &info);

	ASSERT_EQ(5, info.nrcpt);
	EXPECT_STREQ("a@example.com", info.rcpt[0]);
	EXPECT_STREQ("b@example.com", info.rcpt[1]);
	EXPECT_STREQ("hidden@example.com", info.rcpt[2]);
	EXPECT_STREQ("other@example.com", info.rcpt[3]);
	EXPECT_STREQ("c@example.com", info.rcpt[4]);
	EXPECT_EQ(NULL, strcasestr(m, "bcc"));
	EXPECT_EQ(NULL, strstr(m, "hidden"));
	EXPECT_EQ(NULL, strstr(m, "other@"));
	EXPECT_NE(NULL, strstr(m, "To: a@example.com,\r\n  \"B\" <b@example.com>\r\n"
			       "Subject: s\r\nCC: c@example.com\r\n"));
	EXPECT_NE(NULL, strstr(m, "\r\n\r\nTo: body@example.com\r\n"));
	dc_hdrinfo_free(&info);
	free(m);
}

TEST(headers_added_when_missing)
{
	struct dc_prep p = { .hostname = "h.example", .from = "Me <me@h.example>" };
	struct dc_hdrinfo info;
	char *m = prep("Subject: s\n\nbody\n", &p, &info), *v;

	EXPECT_FALSE(info.had_date);
	EXPECT_FALSE(info.had_msgid);
	v = header(m, "Date");
	ASSERT_NE(NULL, v);
	/* "Tue, 24 Nov 2026 02:21:26 +0000" */
	EXPECT_EQ(',', v[3]);
	EXPECT_TRUE(v[strlen(v) - 5] == '+' || v[strlen(v) - 5] == '-');
	free(v);
	v = header(m, "Message-ID");
	ASSERT_NE(NULL, v);
	EXPECT_EQ('<', v[0]);
	EXPECT_NE(NULL, strstr(v, "@h.example>"));
	free(v);
	v = header(m, "From");
	EXPECT_STREQ("Me <me@h.example>", v);
	free(v);
	EXPECT_NE(NULL, strstr(m, "\r\n\r\nbody\r\n"));
	dc_hdrinfo_free(&info);
	free(m);
}

TEST(headers_kept_when_present)
{
	const char *in = "from: X <x@example.com>\r\nMESSAGE-ID: <keep@example.com>\r\n"
			 "date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n";
	struct dc_prep p = { .hostname = "h.example", .from = "me@h.example" };
	struct dc_hdrinfo info;
	char *m = prep(in, &p, &info);

	EXPECT_STREQ(in, m);
	EXPECT_TRUE(info.had_date);
	EXPECT_TRUE(info.had_msgid);
	EXPECT_TRUE(info.had_from);
	EXPECT_STREQ("x@example.com", info.from_addr);
	EXPECT_FALSE(info.eightbit);
	dc_hdrinfo_free(&info);
	free(m);
}

TEST(headers_no_header_section)
{
	struct dc_prep p = { .hostname = "h.example" };
	struct dc_hdrinfo info;
	char *m = prep("just a body line\nmore: \xc3\xa9\n", &p, &info);

	EXPECT_TRUE(info.eightbit);
	EXPECT_EQ(0, strncmp(m, "Date: ", 6));
	EXPECT_NE(NULL, strstr(m, "\r\n\r\njust a body line\r\nmore: \xc3\xa9\r\n"));
	dc_hdrinfo_free(&info);
	free(m);
	/* Headers, then a line that is not one: the separator is inserted. */
	m = prep("Subject: s\nnot a header\n", &p, &info);
	EXPECT_NE(NULL, strstr(m, "Subject: s\r\nDate: "));
	EXPECT_NE(NULL, strstr(m, "\r\n\r\nnot a header\r\n"));
	dc_hdrinfo_free(&info);
	free(m);
}

TEST(read_message_dots)
{
	const char *in = "From sender Mon Jan  1 00:00:00 2024\nSubject: s\r\n\r\n"
			 "..double\n.x\n.\nafter\n";
	struct dd_buf out = { 0 };
	FILE *f = mem(in);

	dc_read_message(f, false, &out);
	fclose(f);
	EXPECT_STREQ("Subject: s\r\n\r\n..double\r\n.x\r\n", dc_buf_str(&out));
	out.len = 0;
	f = mem(in);
	dc_read_message(f, true, &out);
	fclose(f);
	EXPECT_STREQ("Subject: s\r\n\r\n..double\r\n.x\r\n.\r\nafter\r\n", dc_buf_str(&out));
	out.len = 0;
	f = mem("a\n.\r\nb\n");	/* ".\r\n" ends it too */
	dc_read_message(f, false, &out);
	fclose(f);
	EXPECT_STREQ("a\r\n", dc_buf_str(&out));
	dc_buf_free(&out);
}

TEST(crlf)
{
	struct dd_buf b = { 0 };

	dc_crlf("a\nb\r\nc\rd", 8, &b);
	EXPECT_STREQ("a\r\nb\r\nc\r\nd\r\n", dc_buf_str(&b));
	b.len = 0;
	dc_crlf("", 0, &b);
	EXPECT_EQ(0, b.len);
	dc_buf_free(&b);
}

TEST(json)
{
	char v[64];
	const char *o = "{\"dest\":\"ex\\\"a.com\",\"n\":[1,{\"q\":2}],\"queued\": 3 ,"
			"\"u\":\"\\u00e9\"}";

	ASSERT_TRUE(dc_json_get(o, "dest", v, sizeof(v)));
	EXPECT_STREQ("ex\"a.com", v);
	ASSERT_TRUE(dc_json_get(o, "queued", v, sizeof(v)));
	EXPECT_STREQ("3", v);
	ASSERT_TRUE(dc_json_get(o, "u", v, sizeof(v)));
	EXPECT_STREQ("\xc3\xa9", v);
	EXPECT_FALSE(dc_json_get(o, "q", v, sizeof(v)));
	EXPECT_FALSE(dc_json_get("garbage", "q", v, sizeof(v)));
}

/* ---- the binary: merge --dry-run and exit codes ---- */

static const char *TMPL =
	"From: News <news@example.com>\n"
	"To: {{ name }} <{{email}}>\n"
	"Subject: Hello {{name}}, {{{{literal}}\n"
	"\n"
	"Dear {{name}},\n"
	"your city: {{city}}\n"
	".a line with a dot\n";

TEST_F(tmp, merge_dry_run)
{
	char t[256], c[256], d[256], *s, *ids[4] = { 0 };
	unsigned int i;

	snprintf(t, sizeof(t), "%s/t.eml", self->dir);
	snprintf(c, sizeof(c), "%s/r.csv", self->dir);
	snprintf(d, sizeof(d), "%s/out", self->dir);
	spit(t, TMPL);
	spit(c, "email,name,city\r\n"
		"ann@example.com,Ann,\"Paris,\r\nFrance\"\r\n"	/* lines 2-3 */
		"bad-address,Bob,Rome\r\n"			/* 4 */
		"carl@example.org,\"Carl \"\"C\"\"\",Oslo\r\n"	/* 5 */
		"dan@example.net,Dan\r\n"			/* 6: 2 fields */
		",Nobody,Nowhere\r\n"				/* 7 */
		"eve@example.com,Eve,\"Bern\r\n"		/* 8: unterminated */
		"fred@example.com,Fred,Lima\r\n");

	char *argv[] = { "deliverctl", "merge", "--dry-run", d, t, c, NULL };

	EXPECT_EQ(EX_DATAERR, run(self->dir, NULL, argv));
	s = file_in(self->dir, "stderr");
	ASSERT_NE(NULL, s);
	EXPECT_NE(NULL, strstr(s, "r.csv:4: bad recipient address \"bad-address\""));
	EXPECT_NE(NULL, strstr(s, "r.csv:6: 2 fields, the header has 3"));
	EXPECT_NE(NULL, strstr(s, "r.csv:7: no recipient address"));
	EXPECT_NE(NULL, strstr(s, "r.csv:8: unterminated quoted field"));
	EXPECT_NE(NULL, strstr(s, "merge: 2 sent, 4 bad rows, 0 failed")) TH_LOG("%s", s);
	free(s);
	EXPECT_EQ(2, count_files(d, ".eml"));
	EXPECT_EQ(2, count_files(d, ".env"));

	s = file_in(d, "000001.env");
	EXPECT_STREQ("MAIL FROM:<news@example.com>\nRCPT TO:<ann@example.com>\n", s);
	free(s);
	s = file_in(d, "000002.env");
	EXPECT_STREQ("MAIL FROM:<news@example.com>\nRCPT TO:<carl@example.org>\n", s);
	free(s);
	s = file_in(d, "000001.eml");
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(starts(s, "From: News <news@example.com>\r\nTo: Ann <ann@example.com>\r\n"
			   "Subject: Hello Ann, {{literal}}\r\nDate: ")) TH_LOG("%s", s);
	EXPECT_NE(NULL, strstr(s, "\r\n\r\nDear Ann,\r\nyour city: Paris,\r\nFrance\r\n"
			       ".a line with a dot\r\n"));
	ids[0] = header(s, "Message-ID");
	free(s);
	s = file_in(d, "000002.eml");
	ASSERT_NE(NULL, s);
	EXPECT_NE(NULL, strstr(s, "To: Carl \"C\" <carl@example.org>\r\n"));
	ids[1] = header(s, "Message-ID");
	free(s);
	ASSERT_NE(NULL, ids[0]);
	ASSERT_NE(NULL, ids[1]);
	EXPECT_STRNE(ids[0], ids[1]);
	EXPECT_NE(NULL, strstr(ids[0], ".1@"));	/* <time.random.row@host> */
	EXPECT_NE(NULL, strstr(ids[1], ".3@"));

	/* Same again: new ids, all good rows: exit 0. */
	spit(c, "email,name,city\nann@example.com,Ann,X\nbob@example.com,Bob,Y");
	snprintf(d, sizeof(d), "%s/out2", self->dir);
	EXPECT_EQ(0, run(self->dir, NULL, argv));
	s = file_in(d, "000002.eml");
	ASSERT_NE(NULL, s);
	ids[2] = header(s, "Message-ID");
	free(s);
	s = file_in(d, "000001.eml");
	ASSERT_NE(NULL, s);
	ids[3] = header(s, "Message-ID");
	free(s);
	ASSERT_NE(NULL, ids[2]);
	ASSERT_NE(NULL, ids[3]);
	EXPECT_STRNE(ids[2], ids[3]);
	EXPECT_STRNE(ids[0], ids[3]);
	for (i = 0; i < 4; i++)
		free(ids[i]);
}

TEST_F(tmp, merge_template_errors)
{
	char t[256], c[256], d[256], *s;

	snprintf(t, sizeof(t), "%s/t.eml", self->dir);
	snprintf(c, sizeof(c), "%s/r.csv", self->dir);
	snprintf(d, sizeof(d), "%s/out", self->dir);
	spit(c, "email,name\na@example.com,A\n");

	char *argv[] = { "deliverctl", "merge", "--dry-run", d, t, c, NULL };

	spit(t, "To: {{email}}\nSubject: {{name}}\n\nHi {{city}}\n");
	EXPECT_EQ(EX_DATAERR, run(self->dir, NULL, argv));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "t.eml:4: unknown placeholder {{city}}")) TH_LOG("%s", s);
	free(s);
	EXPECT_EQ(0, count_files(d, NULL));	/* nothing sent */

	spit(t, "Dear {{name}},\n\nno headers\n");
	EXPECT_EQ(EX_DATAERR, run(self->dir, NULL, argv));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "t.eml:1: not a header field")) TH_LOG("%s", s);
	free(s);

	spit(t, "To: {{email}}\n\nx\n");
	spit(c, "mail,name\na@example.com,A\n");
	EXPECT_EQ(EX_DATAERR, run(self->dir, NULL, argv));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "no column \"email\"")) TH_LOG("%s", s);
	free(s);

	char *argv2[] = { "deliverctl", "merge", "-r", "mail", "--dry-run", d, t, c, NULL };

	spit(t, "To: {{mail}}\n\nx\n");
	EXPECT_EQ(0, run(self->dir, NULL, argv2));
	EXPECT_EQ(1, count_files(d, ".eml"));

	char *argv3[] = { "deliverctl", "merge", "-b", "0", t, c, NULL };

	EXPECT_EQ(EX_USAGE, run(self->dir, NULL, argv3));
}

TEST_F(tmp, exit_codes_without_daemon)
{
	char sock[256], in[256];

	snprintf(sock, sizeof(sock), "%s/nosock", self->dir);
	snprintf(in, sizeof(in), "%s/in", self->dir);
	spit(in, "Subject: x\n\nbody\n");

	char *a1[] = { "deliverctl", "-S", sock, "submit", "a@example.com", NULL };
	char *a2[] = { "sendmail", "-S", sock, "-t", NULL };		/* no To: */
	char *a3[] = { "sendmail", "-S", sock, "not an address", NULL };
	char *a4[] = { "deliverctl", "-S", sock, "queue", NULL };
	char *a5[] = { "deliverctl", "bogus", NULL };
	char *a6[] = { "sendmail", "-S", sock, "-f", "bad sender@", "a@example.com", NULL };
	char *a7[] = { "deliverctl", "-S", sock, "hold", "a b", NULL };
	char *a8[] = { "sendmail", "-S", sock, NULL };

	EXPECT_EQ(EX_UNAVAILABLE, run(self->dir, in, a1));
	EXPECT_EQ(EX_DATAERR, run(self->dir, in, a2));
	EXPECT_EQ(EX_DATAERR, run(self->dir, in, a3));
	EXPECT_EQ(EX_UNAVAILABLE, run(self->dir, in, a4));
	EXPECT_EQ(EX_USAGE, run(self->dir, in, a5));
	EXPECT_EQ(EX_DATAERR, run(self->dir, in, a6));
	EXPECT_EQ(EX_USAGE, run(self->dir, in, a7));
	EXPECT_EQ(EX_USAGE, run(self->dir, in, a8));
}

/* ---- a scripted server: PIPELINING + CHUNKING, and the X-commands ---- */

static int listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sun.sun_path, path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 16))
		return -1;
	return fd;
}

/*
 * Serves connections until killed; one at a time.  Appends every
 * command line to DIR/log and every BDAT body to DIR/bodies.  RCPT to
 * anything at "temp.example" gets 451, "bad.example" 550.
 */
static void fake_server(int lfd, const char *dir)
{
	char logp[256], bodp[256];

	snprintf(logp, sizeof(logp), "%s/log", dir);
	snprintf(bodp, sizeof(bodp), "%s/bodies", dir);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		FILE *in, *out, *log, *bod;
		char *line = NULL;
		size_t cap = 0;
		unsigned int ok = 0;

		if (fd < 0)
			continue;
		in = fdopen(fd, "r");
		out = fdopen(dup(fd), "w");
		log = fopen(logp, "a");
		bod = fopen(bodp, "a");
		fputs("220 fake ESMTP\r\n", out);
		fflush(out);
		while (getline(&line, &cap, in) > 0) {
			line[strcspn(line, "\r\n")] = 0;
			fprintf(log, "%s\n", line);
			fflush(log);
			if (!strncasecmp(line, "EHLO", 4)) {
				fputs("250-fake\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n"
				      "250-8BITMIME\r\n250-CHUNKING\r\n"
				      "250 ENHANCEDSTATUSCODES\r\n", out);
			} else if (!strncasecmp(line, "MAIL", 4)) {
				ok = 0;
				fputs("250 2.1.0 Ok\r\n", out);
			} else if (!strncasecmp(line, "RCPT", 4)) {
				if (strstr(line, "@temp.example"))
					fputs("451 4.3.0 try later\r\n", out);
				else if (strstr(line, "@bad.example"))
					fputs("550 5.1.1 no such user\r\n", out);
				else {
					ok++;
					fputs("250 2.1.5 Ok\r\n", out);
				}
			} else if (!strncasecmp(line, "BDAT", 4)) {
				size_t n = strtoul(line + 5, NULL, 10);
				char *b = malloc(n + 1);

				if (fread(b, 1, n, in) != n)
					break;
				if (ok) {
					fwrite(b, 1, n, bod);
					fputs("=====\n", bod);
					fflush(bod);
					fputs("250 2.0.0 Ok: queued as 00000000000000AB\r\n", out);
				} else {
					fputs("554 5.5.1 no valid recipients\r\n", out);
				}
				free(b);
			} else if (!strcasecmp(line, "XQUEUE")) {
				fputs("250-{\"dest\":\"example.com\",\"queued\":3,\"deferred\":1,"
				      "\"active\":2,\"held\":0,\"conns\":2,\"backoff_until\":0}\r\n"
				      "250-{\"dest\":\"a-much-longer-name.example.org\",\"queued\":1,"
				      "\"deferred\":0,\"active\":0,\"held\":1,\"conns\":0,"
				      "\"backoff_until\":4102444800}\r\n"
				      "250 {\"total_msgs\":5,\"queued\":4,\"deferred\":1,"
				      "\"active\":2,\"held\":1}\r\n", out);
			} else if (!strncasecmp(line, "XFLUSH", 6)) {
				fputs("250 {\"flushed\":7}\r\n", out);
			} else if (!strncasecmp(line, "XHOLD ", 6)) {
				if (!strcmp(line + 6, "example.com"))
					fputs("250 {\"held\":3}\r\n", out);
				else
					fputs("550 5.1.0 no such message or destination\r\n", out);
			} else if (!strcasecmp(line, "XSTATS")) {
				fputs("250-{\"injected\":10,\"delivered\":8,"
				      "\"backend\":\"evq\"}\r\n"
				      "250-{\"worker\":0,\"events\":5}\r\n"
				      "250 {\"dest\":\"a.example\",\"backlog\":2}\r\n",
				      out);
			} else if (!strcasecmp(line, "QUIT")) {
				fputs("221 2.0.0 Bye\r\n", out);
				fflush(out);
				break;
			} else {
				fputs("250 2.0.0 Ok\r\n", out);	/* RSET, NOOP */
			}
			fflush(out);
		}
		free(line);
		fclose(in);
		fclose(out);
		fclose(log);
		fclose(bod);
	}
}

static pid_t start_fake(const char *dir, char *sock, size_t len)
{
	pid_t pid;
	int lfd;

	snprintf(sock, len, "%s/fake.sock", dir);
	lfd = listen_unix(sock);
	if (lfd < 0)
		return -1;
	pid = fork();
	if (!pid) {
		fake_server(lfd, dir);
		_exit(0);
	}
	close(lfd);
	return pid;
}

TEST_F(tmp, control_commands)
{
	char sock[256], *s;

	self->server = start_fake(self->dir, sock, sizeof(sock));
	ASSERT_GT(self->server, 0);

	char *q[] = { "deliverctl", "-S", sock, "queue", NULL };
	char *qj[] = { "deliverctl", "-S", sock, "queue", "--json", NULL };
	char *f[] = { "deliverctl", "-S", sock, "flush", "example.com", NULL };
	char *h[] = { "deliverctl", "-S", sock, "hold", "example.com", NULL };
	char *hu[] = { "deliverctl", "-S", sock, "hold", "0123456789ABCDEF", NULL };
	char *st[] = { "deliverctl", "-S", sock, "stats", NULL };
	char *sj[] = { "deliverctl", "-S", sock, "stats", "--json", NULL };

	ASSERT_EQ(0, run(self->dir, NULL, q));
	s = file_in(self->dir, "stdout");
	EXPECT_TRUE(starts(s, "DESTINATION                      QUEUED DEFERRED   ACTIVE"
			   "     HELD  CONNS  BACKOFF\n"
			   "example.com                           3        1        2"
			   "        0      2        -\n"
			   "a-much-longer-name.example.org        1        0        0"
			   "        1      0 ")) TH_LOG("%s", s);
	EXPECT_NE(NULL, strstr(s, "d\nTOTAL                                 4        1"
			       "        2        1\n5 messages in the queue\n")) TH_LOG("%s", s);
	free(s);
	ASSERT_EQ(0, run(self->dir, NULL, qj));
	s = file_in(self->dir, "stdout");
	EXPECT_EQ(0, strncmp(s, "{\"dest\":\"example.com\"", 21));
	EXPECT_NE(NULL, strstr(s, "\n{\"total_msgs\":5,"));
	free(s);
	ASSERT_EQ(0, run(self->dir, NULL, f));
	s = file_in(self->dir, "stdout");
	EXPECT_STREQ("flushed 7\n", s);
	free(s);
	ASSERT_EQ(0, run(self->dir, NULL, h));
	s = file_in(self->dir, "stdout");
	EXPECT_STREQ("held 3\n", s);
	free(s);
	EXPECT_EQ(EX_NOUSER, run(self->dir, NULL, hu));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "550 5.1.0"));
	free(s);
	ASSERT_EQ(0, run(self->dir, NULL, st));
	s = file_in(self->dir, "stdout");
	/* One aligned "name: value" line per figure. */
	EXPECT_STREQ("injected:               10\n"
		     "delivered:              8\n"
		     "backend:                evq\n"
		     "worker 0 events:        5\n"
		     "dest a.example backlog: 2\n", s);
	free(s);
	ASSERT_EQ(0, run(self->dir, NULL, sj));
	s = file_in(self->dir, "stdout");
	EXPECT_STREQ("{\"injected\":10,\"delivered\":8,\"backend\":\"evq\"}\n"
		     "{\"worker\":0,\"events\":5}\n"
		     "{\"dest\":\"a.example\",\"backlog\":2}\n", s);
	free(s);
	s = file_in(self->dir, "log");
	EXPECT_NE(NULL, strstr(s, "XFLUSH example.com\n"));
	EXPECT_NE(NULL, strstr(s, "XHOLD 0123456789ABCDEF\n"));
	free(s);
}

TEST_F(tmp, bdat_submit_and_merge)
{
	char sock[256], in[256], t[256], c[256], *s, *p;
	unsigned int n;

	self->server = start_fake(self->dir, sock, sizeof(sock));
	ASSERT_GT(self->server, 0);
	snprintf(in, sizeof(in), "%s/in", self->dir);
	spit(in, "To: x@example.com\nBcc: y@example.com\nSubject: s\n\n.dot stays\nbody\n");

	char *a1[] = { "sendmail", "-S", sock, "-t", "-f", "me@example.com", NULL };

	ASSERT_EQ(0, run(self->dir, in, a1));
	s = file_in(self->dir, "bodies");
	ASSERT_NE(NULL, s);
	/* BDAT carries the message as is: no dot-stuffing. */
	EXPECT_NE(NULL, strstr(s, "\r\n\r\n.dot stays\r\nbody\r\n====="));
	EXPECT_EQ(NULL, strstr(s, "Bcc"));
	free(s);
	s = file_in(self->dir, "log");
	EXPECT_NE(NULL, strstr(s, "MAIL FROM:<me@example.com> SIZE="));
	EXPECT_NE(NULL, strstr(s, "RCPT TO:<x@example.com>\nRCPT TO:<y@example.com>\nBDAT "));
	free(s);

	/* One recipient refused of two: queued for the other, exit 65. */
	char *a2[] = { "sendmail", "-S", sock, "ok@example.com", "no@bad.example", NULL };

	EXPECT_EQ(EX_DATAERR, run(self->dir, in, a2));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "no@bad.example: 550 5.1.1"));
	EXPECT_NE(NULL, strstr(s, "queued for 1 of 2"));
	free(s);
	char *a3[] = { "sendmail", "-S", sock, "x@temp.example", NULL };

	EXPECT_EQ(EX_TEMPFAIL, run(self->dir, in, a3));

	/* merge: 2500 rows in batches of 1000, some refused. */
	snprintf(t, sizeof(t), "%s/t.eml", self->dir);
	snprintf(c, sizeof(c), "%s/r.csv", self->dir);
	spit(t, "From: n@example.com\nTo: {{email}}\nSubject: {{n}}\n\nrow {{n}}\n");
	FILE *f = fopen(c, "w");

	ASSERT_NE(NULL, f);
	fputs("n,email\n", f);
	for (n = 1; n <= 2500; n++)
		fprintf(f, "%u,%s\n", n, n == 10 ? "r@bad.example" : n == 20 ?
			"r@temp.example" : "r@example.com");
	fclose(f);
	snprintf(in, sizeof(in), "%s/bodies", self->dir);
	unlink(in);

	char *a4[] = { "deliverctl", "-S", sock, "merge", "-b", "1000", t, c, NULL };

	EXPECT_EQ(EX_TEMPFAIL, run(self->dir, NULL, a4));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "r.csv:11: r@bad.example: not queued: 550")) TH_LOG("%s", s);
	EXPECT_NE(NULL, strstr(s, "r.csv:21: r@temp.example: not queued: 451"));
	EXPECT_NE(NULL, strstr(s, "merge: 2498 sent, 0 bad rows, 2 failed"));
	free(s);
	s = file_in(self->dir, "bodies");
	ASSERT_NE(NULL, s);
	for (n = 0, p = s; (p = strstr(p, "=====\n")); p++)
		n++;
	EXPECT_EQ(2498, n);
	EXPECT_NE(NULL, strstr(s, "\r\n\r\nrow 2500\r\n"));
	free(s);
}

/* ---- Postfix smtp-sink: the DATA path ---- */

static const char *sink_path(void)
{
	static const char *const cand[] = { "/usr/sbin/smtp-sink",
					    "/usr/lib/postfix/sbin/smtp-sink" };
	unsigned int i;

	for (i = 0; i < 2; i++)
		if (access(cand[i], X_OK) == 0)
			return cand[i];
	return NULL;
}

/* Start smtp-sink on DIR/sink.sock, dumping messages into DIR/dump/. */
static pid_t start_sink(const char *dir, const char *extra, char *sock, size_t len)
{
	char dump[256], tmpl[300], where[300];
	const char *bin = sink_path();
	pid_t pid;
	int i;

	snprintf(sock, len, "%s/sink.sock", dir);
	snprintf(dump, sizeof(dump), "%s/dump", dir);
	mkdir(dump, 0777);
	chmod(dump, 0777);
	snprintf(tmpl, sizeof(tmpl), "%s/%%H%%M%%S.", dump);
	snprintf(where, sizeof(where), "unix:%s", sock);
	unlink(sock);	/* a previous sink's, which would look ready */
	pid = fork();
	if (!pid) {
		char *argv[16];
		int n = 0;

		argv[n++] = (char *)bin;
		if (geteuid() == 0) {
			argv[n++] = "-u";
			argv[n++] = "nobody";
		}
		if (extra)
			argv[n++] = (char *)extra;
		if (extra && !strcmp(extra, "-r"))
			argv[n++] = ".";
		argv[n++] = "-d";
		argv[n++] = tmpl;
		argv[n++] = where;
		argv[n++] = "100";
		argv[n] = NULL;
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		execv(bin, argv);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		if (access(sock, F_OK) == 0)
			return pid;
		usleep(50000);
	}
	return pid;
}

static unsigned int wait_files(const char *dir, unsigned int want)
{
	unsigned int n = 0, i;

	for (i = 0; i < 100; i++) {
		n = count_files(dir, NULL);
		if (n >= want)
			break;
		usleep(50000);
	}
	return n;
}

/* Every dumped message's text, concatenated. */
static char *all_dumps(const char *dir)
{
	struct dd_buf b = { 0 };
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char p[512], *s;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		s = slurp(p, NULL);
		if (s)
			dc_buf_adds(&b, s);
		free(s);
	}
	if (d)
		closedir(d);
	return dc_buf_str(&b);
}

TEST_F(tmp, smtp_sink_submit)
{
	char sock[256], in[256], dump[256], *s;

	if (!sink_path())
		SKIP(return, "smtp-sink is not installed");
	self->server = start_sink(self->dir, NULL, sock, sizeof(sock));
	ASSERT_GT(self->server, 0);
	snprintf(in, sizeof(in), "%s/in", self->dir);
	snprintf(dump, sizeof(dump), "%s/dump", self->dir);
	spit(in, "To: Ann <ann@example.com>,\n  bob@example.org\nCc: carl@example.net\n"
		 "Bcc: secret@example.com\nSubject: live\n\n.leading dot\n..two\nend\n.\n"
		 "ignored after the dot\n");

	char *a1[] = { "sendmail", "-S", sock, "-t", "-f", "me@example.com", "-F",
		       "Me Myself", "extra@example.com", NULL };

	ASSERT_EQ(0, run(self->dir, in, a1));
	ASSERT_EQ(1, wait_files(dump, 1));
	s = all_dumps(dump);
	EXPECT_NE(NULL, strstr(s, "X-Mail-Args: <me@example.com>"));
	EXPECT_NE(NULL, strstr(s, "X-Rcpt-Args: <extra@example.com>\n"
			       "X-Rcpt-Args: <ann@example.com>\n"
			       "X-Rcpt-Args: <bob@example.org>\n"
			       "X-Rcpt-Args: <carl@example.net>\n"
			       "X-Rcpt-Args: <secret@example.com>\n")) TH_LOG("%s", s);
	EXPECT_EQ(NULL, strstr(s, "Bcc:"));
	EXPECT_NE(NULL, strstr(s, "From: Me Myself <me@example.com>\n"));
	EXPECT_NE(NULL, strstr(s, "\nDate: "));
	EXPECT_NE(NULL, strstr(s, "\nMessage-ID: <"));
	/* Dot-stuffed on the wire, unstuffed by the sink. */
	EXPECT_NE(NULL, strstr(s, "\n\n.leading dot\n..two\nend\n")) TH_LOG("%s", s);
	EXPECT_EQ(NULL, strstr(s, "ignored"));
	free(s);

	/* Soft reject of the end of data, without PIPELINING: exit 75. */
	kill(self->server, SIGTERM);
	waitpid(self->server, NULL, 0);
	self->server = start_sink(self->dir, "-r", sock, sizeof(sock));
	char *a2[] = { "deliverctl", "-S", sock, "submit", "-i", "x@example.com", NULL };

	EXPECT_EQ(EX_TEMPFAIL, run(self->dir, in, a2));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "not queued: 450")) TH_LOG("%s", s);
	free(s);
}

TEST_F(tmp, smtp_sink_merge)
{
	char sock[256], t[256], c[256], dump[256], *s, *p;
	unsigned int n;
	FILE *f;

	if (!sink_path())
		SKIP(return, "smtp-sink is not installed");
	self->server = start_sink(self->dir, NULL, sock, sizeof(sock));
	ASSERT_GT(self->server, 0);
	snprintf(t, sizeof(t), "%s/t.eml", self->dir);
	snprintf(c, sizeof(c), "%s/r.csv", self->dir);
	snprintf(dump, sizeof(dump), "%s/dump", self->dir);
	spit(t, "From: List <list@example.com>\nTo: {{email}}\nSubject: #{{n}}\n\n"
		"line {{n}}\n.\n..\n");
	f = fopen(c, "w");
	ASSERT_NE(NULL, f);
	fputs("n,email\r\n", f);
	for (n = 1; n <= 120; n++)
		fprintf(f, "%u,u%u@example.com\r\n", n, n);
	fputs("121,broken@\r\n", f);	/* line 122 */
	fclose(f);

	char *a1[] = { "deliverctl", "-S", sock, "merge", "-b", "50", t, c, NULL };

	EXPECT_EQ(EX_DATAERR, run(self->dir, NULL, a1));
	s = file_in(self->dir, "stderr");
	EXPECT_NE(NULL, strstr(s, "r.csv:122: bad recipient address \"broken@\""));
	EXPECT_NE(NULL, strstr(s, "merge: 120 sent, 1 bad rows, 0 failed")) TH_LOG("%s", s);
	free(s);
	EXPECT_EQ(120, wait_files(dump, 120));
	s = all_dumps(dump);
	for (n = 0, p = s; (p = strstr(p, "\nX-Mail-Args: <list@example.com>\n")); p++)
		n++;
	EXPECT_EQ(120, n);
	EXPECT_NE(NULL, strstr(s, "\n\nline 77\n.\n..\n"));
	free(s);
}

TEST_HARNESS_MAIN
