// SPDX-License-Identifier: GPL-2.0
/*
 * dd_conf_test: deliverd's configuration (dd_conf.c), static routes
 * (dd_routes.c), bounces (dd_bounce.c) and logs (dd_log.c), all without
 * a daemon.  Files go to a fresh directory under $TMPDIR (or /tmp).
 *
 * settings.rst.txt is $DD_SETTINGS_RST, else $DD_SRCDIR/settings.rst.txt,
 * else found from this file's path at build time; the test fails when it is not exactly what the table in
 * dd_conf.c prints.  To regenerate it after changing the table:
 *
 *   DD_WRITE_SETTINGS_RST=1 dd_conf_test -t settings_rst
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json.h>

#include "dd.h"
#include "dd_bounce.h"
#include "dd_conf.h"
#include "dd_log.h"
#include "dd_routes.h"

/* --- helpers --- */

static char tmpdir[256];
static pid_t tmpdir_owner;

/*
 * One directory for the run, made before the harness forks the tests and
 * removed when the parent exits (the tests end with _exit).
 */
__attribute__((constructor)) static void make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/dd_conf_test.XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir))
		abort();
	tmpdir_owner = getpid();
}

__attribute__((destructor)) static void remove_tmpdir(void)
{
	char cmd[PATH_MAX + 16];

	if (getpid() != tmpdir_owner)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		return;
}

static const char *tdir(void)
{
	return tmpdir;
}

/* Write text to a new file in the test directory; its path (static slot). */
static const char *write_file(const char *name, const char *text, size_t len)
{
	static char paths[8][PATH_MAX];
	static unsigned int slot;
	char *p = paths[slot++ % 8];
	FILE *f;

	snprintf(p, PATH_MAX, "%s/%s", tdir(), name);
	f = fopen(p, "w");
	if (!f)
		abort();
	fwrite(text, 1, len, f);
	fclose(f);
	return p;
}

static const char *wfile(const char *name, const char *text)
{
	return write_file(name, text, strlen(text));
}

static char *read_all(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, len = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		if (!n)
			break;
		len += n;
	}
	fclose(f);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

static char *print_to_string(void (*fn)(FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f);
	fclose(f);
	return buf;
}

static char *conf_to_string(const struct dd_conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	dd_conf_print(c, f);
	fclose(f);
	return buf;
}

/* Every setting name, from dd_conf_print_settings' "name = " lines. */
static unsigned int setting_names(char names[][64], unsigned int max)
{
	char *s = print_to_string(dd_conf_print_settings), *line, *save = NULL;
	unsigned int n = 0;

	for (line = strtok_r(s, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strstr(line, " = ");

		if (line[0] == '\t' || line[0] == '#' || !eq)
			continue;
		snprintf(names[n++], 64, "%.*s", (int)(eq - line), line);
	}
	free(s);
	return n;
}

static struct sockaddr_storage sa_of(const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, addr,
			   &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		abort();
	return ss;
}

static bool allowed(const struct dd_conf *c, const char *addr)
{
	struct sockaddr_storage ss = sa_of(addr);

	return dd_conf_allowed(c, (struct sockaddr *)&ss);
}

/* Load text as a config file; returns dd_conf_load's result, err filled. */
static int load_text(struct dd_conf *c, const char *text, char *err,
		     size_t errlen, const char **pathp)
{
	const char *p = wfile("deliverd.conf", text);

	if (pathp)
		*pathp = p;
	return dd_conf_load(c, p, NULL, 0, err, errlen);
}

/* --- configuration --- */

TEST(conf_defaults)
{
	struct dd_conf c;
	char err[512] = "", host[256] = "", want[600];

	ASSERT_EQ(0, dd_conf_init(&c));
	EXPECT_STREQ("/var/spool/deliverd", c.spool_dir);
	EXPECT_EQ(0U, c.threads);
	EXPECT_STREQ("auto", c.backend);
	EXPECT_STREQ("", c.log_file);
	EXPECT_STREQ("info", c.log_level);
	EXPECT_STREQ("", c.user);
	EXPECT_STREQ("127.0.0.1:2525", c.listen);
	EXPECT_STREQ("127.0.0.0/8, ::1/128", c.allow_networks);
	EXPECT_EQ(1000U, c.line_length_limit);
	EXPECT_EQ(10485760ULL, c.message_size_limit);
	EXPECT_EQ(1000U, c.recipient_limit);
	EXPECT_EQ(1000U, c.connection_limit);
	EXPECT_EQ(20U, c.error_limit);
	EXPECT_EQ(67108864ULL, c.segment_size);
	EXPECT_EQ(4096U, c.commit_max);
	EXPECT_EQ(0U, c.commit_delay_us);
	EXPECT_TRUE(c.fsync);
	EXPECT_STREQ("/etc/deliverd/routes", c.routes_file);
	EXPECT_TRUE(c.pipelining);
	EXPECT_TRUE(c.chunking);
	EXPECT_EQ(20U, c.dest_concurrency);
	EXPECT_EQ(0U, c.dest_rate);
	EXPECT_EQ(100U, c.conn_max_msgs);
	EXPECT_EQ(2U, c.conn_idle);
	EXPECT_EQ(30U, c.timeout[DD_STAGE_CONNECT]);
	EXPECT_EQ(300U, c.timeout[DD_STAGE_GREETING]);
	EXPECT_EQ(300U, c.timeout[DD_STAGE_EHLO]);
	EXPECT_EQ(300U, c.timeout[DD_STAGE_MAIL]);
	EXPECT_EQ(300U, c.timeout[DD_STAGE_RCPT]);
	EXPECT_EQ(120U, c.timeout[DD_STAGE_DATA]);
	EXPECT_EQ(180U, c.timeout[DD_STAGE_BODY]);
	EXPECT_EQ(600U, c.timeout[DD_STAGE_DOT]);
	EXPECT_EQ(300U, c.timeout[DD_STAGE_RSET]);
	EXPECT_EQ(300U, c.timeout[DD_STAGE_QUIT]);
	EXPECT_EQ(2U, c.timeout[DD_STAGE_IDLE]);
	EXPECT_EQ(60U, c.retry_min);
	EXPECT_EQ(3600U, c.retry_max);
	EXPECT_EQ(432000U, c.max_age);
	EXPECT_EQ(60U, c.dest_backoff);

	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, gethostname(host, sizeof(host)));
	if (!host[0])
		strcpy(host, "localhost");
	EXPECT_STREQ(host, c.hostname);
	EXPECT_STREQ(host, c.helo_name);
	snprintf(want, sizeof(want), "MAILER-DAEMON@%s", host);
	EXPECT_STREQ(want, c.bounce_from);
	EXPECT_STREQ("/var/spool/deliverd/control", c.control_socket);
	EXPECT_STREQ("/var/spool/deliverd/delivery.log", c.delivery_log);
	EXPECT_EQ(2U, c.nnets);
	ASSERT_EQ(1U, c.nlisten);
	EXPECT_EQ(AF_INET, c.listen_addr[0].ss_family);
	EXPECT_EQ(2525, ntohs(((struct sockaddr_in *)&c.listen_addr[0])->sin_port));
	/* Loopback only. */
	EXPECT_TRUE(allowed(&c, "127.0.0.1"));
	EXPECT_TRUE(allowed(&c, "::1"));
	EXPECT_FALSE(allowed(&c, "10.0.0.1"));
	dd_conf_free(&c);
}

TEST(conf_file)
{
	struct dd_conf c;
	char err[512] = "";

	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, load_text(&c,
		"# deliverd test configuration\n"
		"\n"
		"   spool_dir   =   /srv/spool   # trailing comment\n"
		"threads=4\n"
		"\thostname = mx.example.org\t\r\n"
		"fsync = off\n"
		"pipelining = FALSE\n"
		"chunking = 0\n"
		"log_level = debug\n"
		"backend = epoll\n"
		"message_size_limit = 25M\n"
		"segment_size = 1G\n"
		"max_age = 3d\n"
		"retry_max = 2h\n"
		"conn_idle = 90s\n"
		"dot_timeout = 15m\n"
		"threads = 8\n"			/* last wins */
		"log_file =\n"			/* empty string */
		"user = deliverd\n",
		err, sizeof(err), NULL)) TH_LOG("%s", err);
	EXPECT_STREQ("/srv/spool", c.spool_dir);
	EXPECT_EQ(8U, c.threads);
	EXPECT_STREQ("mx.example.org", c.hostname);
	EXPECT_FALSE(c.fsync);
	EXPECT_FALSE(c.pipelining);
	EXPECT_FALSE(c.chunking);
	EXPECT_STREQ("debug", c.log_level);
	EXPECT_STREQ("epoll", c.backend);
	EXPECT_EQ(25ULL << 20, c.message_size_limit);
	EXPECT_EQ(1ULL << 30, c.segment_size);
	EXPECT_EQ(3U * 86400, c.max_age);
	EXPECT_EQ(7200U, c.retry_max);
	EXPECT_EQ(90U, c.conn_idle);
	EXPECT_EQ(90U, c.timeout[DD_STAGE_IDLE]);
	EXPECT_EQ(900U, c.timeout[DD_STAGE_DOT]);
	EXPECT_STREQ("", c.log_file);
	EXPECT_STREQ("deliverd", c.user);

	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_STREQ("/srv/spool/control", c.control_socket);
	EXPECT_STREQ("/srv/spool/delivery.log", c.delivery_log);
	EXPECT_STREQ("mx.example.org", c.helo_name);
	EXPECT_STREQ("MAILER-DAEMON@mx.example.org", c.bounce_from);
	dd_conf_free(&c);
}

TEST(conf_explicit_paths_kept)
{
	struct dd_conf c;
	char err[512] = "";

	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, load_text(&c,
		"control_socket = /run/deliverd.sock\n"
		"delivery_log = none\n"
		"helo_name = out.example.org\n"
		"bounce_from = postmaster@example.org\n"
		"hostname = h.example.org\n", err, sizeof(err), NULL));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_STREQ("/run/deliverd.sock", c.control_socket);
	EXPECT_STREQ("none", c.delivery_log);
	EXPECT_STREQ("out.example.org", c.helo_name);
	EXPECT_STREQ("postmaster@example.org", c.bounce_from);
	dd_conf_free(&c);
}

/* One bad file: the error names FILE:LINE and the setting keeps its default. */
struct bad_case {
	const char *text;
	const char *msg;	/* after "FILE:" */
};

TEST(conf_file_errors)
{
	static const struct bad_case cases[] = {
		{ "# c\n\nfoo = 1\n", "3: unknown setting 'foo'" },
		{ "threads = 2\nThreads = 3\n", "2: unknown setting 'Threads'" },
		{ "threads\n", "1: expected 'name = value', got 'threads'" },
		{ "\n = 5\n", "2: missing setting name before '='" },
		{ "threads = four\n",
		  "1: bad value for threads: 'four' (expected a decimal number)" },
		{ "threads = -1\n",
		  "1: bad value for threads: '-1' (expected a decimal number)" },
		{ "threads = 1025\n",
		  "1: bad value for threads: '1025' (must be 0 to 1024)" },
		{ "threads = 99999999999999999999999\n",
		  "1: bad value for threads: '99999999999999999999999' "
		  "(expected a decimal number)" },
		{ "threads = 4294967296\n",
		  "1: bad value for threads: '4294967296' (must be 0 to 1024)" },
		{ "threads =\n",
		  "1: bad value for threads: '' (expected a decimal number)" },
		{ "fsync = maybe\n",
		  "1: bad value for fsync: 'maybe' (expected yes or no)" },
		{ "message_size_limit = 10T\n",
		  "1: bad value for message_size_limit: '10T' (expected a size "
		  "in bytes, optionally with k, M or G)" },
		{ "message_size_limit = 10 M\n",
		  "1: bad value for message_size_limit: '10 M' (expected a size "
		  "in bytes, optionally with k, M or G)" },
		{ "message_size_limit = 100\n",
		  "1: bad value for message_size_limit: '100' (must be at least 1024)" },
		{ "max_age = 5w\n",
		  "1: bad value for max_age: '5w' (expected seconds, optionally "
		  "with s, m, h or d)" },
		{ "max_age = 5ms\n",
		  "1: bad value for max_age: '5ms' (expected seconds, optionally "
		  "with s, m, h or d)" },
		{ "retry_max = 99999999999d\n",
		  "1: bad value for retry_max: '99999999999d' (must be 1 to 4294967295)" },
		{ "line_length_limit = 511\n",
		  "1: bad value for line_length_limit: '511' (must be 512 to 1048576)" },
		{ "dest_concurrency = 0\n",
		  "1: bad value for dest_concurrency: '0' (must be 1 to 4294967295)" },
		{ "backend = kqueue\n",
		  "1: bad value for backend: 'kqueue' (expected auto|evq|epoll)" },
		{ "log_level = verbose\n",
		  "1: bad value for log_level: 'verbose' (expected "
		  "error|warning|info|debug)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dd_conf c;
		char err[512] = "", want[1024];
		const char *path;

		ASSERT_EQ(0, dd_conf_init(&c));
		EXPECT_EQ(-EINVAL, load_text(&c, cases[i].text, err,
					     sizeof(err), &path));
		snprintf(want, sizeof(want), "%s:%s", path, cases[i].msg);
		EXPECT_STREQ(want, err) TH_LOG("case %zu", i);
		/* What failed keeps its default. */
		EXPECT_STREQ("auto", c.backend);
		EXPECT_STREQ("info", c.log_level);
		EXPECT_EQ(10485760ULL, c.message_size_limit);
		EXPECT_EQ(432000U, c.max_age);
		EXPECT_TRUE(c.fsync);
		dd_conf_free(&c);
	}
}

TEST(conf_file_missing_and_nul)
{
	struct dd_conf c;
	char err[512] = "", want[PATH_MAX + 64];
	const char *p;

	ASSERT_EQ(0, dd_conf_init(&c));
	snprintf(want, sizeof(want), "%s/nonexistent.conf", tdir());
	EXPECT_EQ(-ENOENT, dd_conf_load(&c, want, NULL, 0, err, sizeof(err)));
	strcat(want, ": No such file or directory");
	EXPECT_STREQ(want, err);

	p = write_file("nul.conf", "threads = 1\nthreads = 2\0junk\n", 27);
	EXPECT_EQ(-EINVAL, dd_conf_load(&c, p, NULL, 0, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", p);
	EXPECT_STREQ(want, err);
	/* A NULL path is no file. */
	EXPECT_EQ(0, dd_conf_load(&c, NULL, NULL, 0, err, sizeof(err)));
	dd_conf_free(&c);
}

TEST(conf_overrides)
{
	struct dd_conf c;
	char err[512] = "";
	const char *path = wfile("o.conf", "threads = 4\nlisten = none\n"
				 "retry_min = 30\n");
	char *ov[] = { "threads=16", " retry_min = 2m ", "listen=[::1]:25" };
	char *bad1[] = { "threads=2", "nosuch=1" };
	char *bad2[] = { "threads" };
	char *bad3[] = { "fsync=perhaps" };

	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, dd_conf_load(&c, path, ov, 3, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(16U, c.threads);
	EXPECT_EQ(120U, c.retry_min);
	EXPECT_STREQ("[::1]:25", c.listen);

	EXPECT_EQ(-EINVAL, dd_conf_load(&c, NULL, bad1, 2, err, sizeof(err)));
	EXPECT_STREQ("-o nosuch=1: unknown setting 'nosuch'", err);
	EXPECT_EQ(2U, c.threads);
	EXPECT_EQ(-EINVAL, dd_conf_load(&c, NULL, bad2, 1, err, sizeof(err)));
	EXPECT_STREQ("-o threads: expected name=value", err);
	EXPECT_EQ(-EINVAL, dd_conf_load(&c, NULL, bad3, 1, err, sizeof(err)));
	EXPECT_STREQ("-o fsync=perhaps: bad value for fsync: 'perhaps' "
		     "(expected yes or no)", err);
	EXPECT_TRUE(c.fsync);
	dd_conf_free(&c);
}

TEST(conf_set_sizes_durations_bools)
{
	static const struct {
		const char *name, *value;
		uint64_t want;
	} ok[] = {
		{ "message_size_limit", "1k", 1024 },
		{ "message_size_limit", "1K", 1024 },
		{ "message_size_limit", "3M", 3 << 20 },
		{ "message_size_limit", "3m", 3 << 20 },
		{ "message_size_limit", "2G", 2ULL << 30 },
		{ "message_size_limit", "4096", 4096 },
		{ "segment_size", " 64M ", 64 << 20 },
		{ "max_age", "45", 45 },
		{ "max_age", "45s", 45 },
		{ "max_age", "10m", 600 },
		{ "max_age", "2h", 7200 },
		{ "max_age", "5d", 432000 },
		{ "conn_idle", "0", 0 },
		{ "connect_timeout", "1m", 60 },
		{ "quit_timeout", "7", 7 },
	};
	static const char *const bad[][2] = {
		{ "message_size_limit", "" }, { "message_size_limit", "k" },
		{ "message_size_limit", "1kk" }, { "message_size_limit", "1.5M" },
		{ "message_size_limit", "0x10" },
		{ "message_size_limit", "99999999999999999G" },
		{ "max_age", "1H" }, { "max_age", "d" }, { "max_age", "+5" },
		{ "max_age", "4294967296" }, { "max_age", "49711d" },
		{ "connect_timeout", "0" },
		{ "fsync", "yess" }, { "fsync", "" }, { "fsync", "2" },
	};
	static const char *const yes[] = { "yes", "YES", "true", "True", "on",
					   "1" };
	static const char *const no[] = { "no", "No", "false", "FALSE", "off",
					  "0" };
	struct dd_conf c;
	char err[512];

	ASSERT_EQ(0, dd_conf_init(&c));
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t got;

		ASSERT_EQ(0, dd_conf_set(&c, ok[i].name, ok[i].value, err,
					 sizeof(err))) TH_LOG("%s", err);
		if (!strcmp(ok[i].name, "message_size_limit"))
			got = c.message_size_limit;
		else if (!strcmp(ok[i].name, "segment_size"))
			got = c.segment_size;
		else if (!strcmp(ok[i].name, "max_age"))
			got = c.max_age;
		else if (!strcmp(ok[i].name, "conn_idle"))
			got = c.timeout[DD_STAGE_IDLE];
		else if (!strcmp(ok[i].name, "connect_timeout"))
			got = c.timeout[DD_STAGE_CONNECT];
		else
			got = c.timeout[DD_STAGE_QUIT];
		EXPECT_EQ(ok[i].want, got) TH_LOG("%s = %s", ok[i].name,
						  ok[i].value);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		EXPECT_EQ(-EINVAL, dd_conf_set(&c, bad[i][0], bad[i][1], err,
					       sizeof(err)))
			TH_LOG("%s = '%s'", bad[i][0], bad[i][1]);
		EXPECT_NE(NULL, strstr(err, bad[i][0]));
	}
	for (size_t i = 0; i < 6; i++) {
		ASSERT_EQ(0, dd_conf_set(&c, "chunking", no[i], err, sizeof(err)));
		EXPECT_FALSE(c.chunking);
		ASSERT_EQ(0, dd_conf_set(&c, "chunking", yes[i], err, sizeof(err)));
		EXPECT_TRUE(c.chunking);
	}
	EXPECT_EQ(-EINVAL, dd_conf_set(&c, "nosuch", "1", err, sizeof(err)));
	EXPECT_STREQ("unknown setting 'nosuch'", err);
	dd_conf_free(&c);
}

TEST(conf_finish_errors)
{
	static const char *const cases[][3] = {
		{ "retry_min", "2h", "retry_min (7200) is greater than retry_max (3600)" },
		{ "allow_networks", "10.0.0.0/33", "allow_networks: bad prefix length in '10.0.0.0/33'" },
		{ "allow_networks", "::/129", "allow_networks: bad prefix length in '::/129'" },
		{ "allow_networks", "10.0.0.0/", "allow_networks: bad prefix length in '10.0.0.0/'" },
		{ "allow_networks", "example.com", "allow_networks: bad address 'example.com'" },
		{ "allow_networks", "10.0.0.256", "allow_networks: bad address '10.0.0.256'" },
		{ "listen", "localhost:25", "listen: bad address 'localhost' (numeric only, IPv6 in brackets)" },
		{ "listen", "::1:25", "listen: bad address '::1' (numeric only, IPv6 in brackets)" },
		{ "listen", "127.0.0.1", "listen: bad address '127.0.0.1' (expected address:port)" },
		{ "listen", "127.0.0.1:0", "listen: bad port '0'" },
		{ "listen", "127.0.0.1:65536", "listen: bad port '65536'" },
		{ "listen", "127.0.0.1:smtp", "listen: bad port 'smtp'" },
		{ "listen", "[::1]25", "listen: bad address '[::1]25' (expected [ipv6]:port)" },
		{ "listen", "1.1.1.1:1,1.1.1.1:2,1.1.1.1:3,1.1.1.1:4,1.1.1.1:5,"
			    "1.1.1.1:6,1.1.1.1:7,1.1.1.1:8,1.1.1.1:9",
		  "listen: more than 8 addresses" },
		{ "spool_dir", "", "spool_dir: must not be empty" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dd_conf c;
		char err[512] = "";

		ASSERT_EQ(0, dd_conf_init(&c));
		ASSERT_EQ(0, dd_conf_set(&c, "hostname", "h.example", err,
					 sizeof(err)));
		/* The lists are parsed as they are set, so a file's error
		 * names its line; the rest is checked by finish. */
		if (!strcmp(cases[i][0], "allow_networks") ||
		    !strcmp(cases[i][0], "listen")) {
			EXPECT_EQ(-EINVAL, dd_conf_set(&c, cases[i][0],
						       cases[i][1], err,
						       sizeof(err)))
				TH_LOG("case %zu", i);
		} else {
			ASSERT_EQ(0, dd_conf_set(&c, cases[i][0], cases[i][1],
						 err, sizeof(err)))
				TH_LOG("%s", err);
			EXPECT_EQ(-EINVAL, dd_conf_finish(&c, err, sizeof(err)))
				TH_LOG("case %zu", i);
		}
		EXPECT_STREQ(cases[i][2], err);
		dd_conf_free(&c);
	}

	/* Fields set directly are checked too. */
	{
		struct dd_conf c;
		char err[512] = "";

		ASSERT_EQ(0, dd_conf_init(&c));
		c.threads = 5000;
		EXPECT_EQ(-EINVAL, dd_conf_finish(&c, err, sizeof(err)));
		EXPECT_STREQ("threads: 5000 is out of range", err);
		c.threads = 0;
		c.line_length_limit = 100;
		EXPECT_EQ(-EINVAL, dd_conf_finish(&c, err, sizeof(err)));
		EXPECT_STREQ("line_length_limit: 100 is out of range", err);
		c.line_length_limit = 1000;
		free(c.backend);
		c.backend = strdup("kqueue");
		EXPECT_EQ(-EINVAL, dd_conf_finish(&c, err, sizeof(err)));
		EXPECT_STREQ("backend: must be one of auto|evq|epoll", err);
		dd_conf_free(&c);
	}
}

TEST(conf_allow_networks)
{
	struct dd_conf c;
	char err[512] = "";
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, dd_conf_set(&c, "allow_networks",
		"10.0.0.0/8,192.168.1.5  172.16.0.0/12, 2001:db8::/32 ,::1 "
		"fe80::/10,, 100.64.0.1/31", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(7U, c.nnets);
	EXPECT_EQ(32U, c.nets[1].prefix);
	EXPECT_EQ(128U, c.nets[4].prefix);

	EXPECT_TRUE(allowed(&c, "10.0.0.0"));
	EXPECT_TRUE(allowed(&c, "10.255.255.255"));
	EXPECT_FALSE(allowed(&c, "11.0.0.0"));
	EXPECT_FALSE(allowed(&c, "9.255.255.255"));
	EXPECT_TRUE(allowed(&c, "192.168.1.5"));
	EXPECT_FALSE(allowed(&c, "192.168.1.4"));
	EXPECT_FALSE(allowed(&c, "192.168.1.6"));
	EXPECT_TRUE(allowed(&c, "172.16.0.1"));
	EXPECT_TRUE(allowed(&c, "172.31.255.255"));
	EXPECT_FALSE(allowed(&c, "172.32.0.0"));
	EXPECT_FALSE(allowed(&c, "172.15.255.255"));
	EXPECT_TRUE(allowed(&c, "100.64.0.0"));
	EXPECT_TRUE(allowed(&c, "100.64.0.1"));
	EXPECT_FALSE(allowed(&c, "100.64.0.2"));
	EXPECT_FALSE(allowed(&c, "127.0.0.1"));

	EXPECT_TRUE(allowed(&c, "2001:db8::1"));
	EXPECT_TRUE(allowed(&c, "2001:db8:ffff:ffff::1"));
	EXPECT_FALSE(allowed(&c, "2001:db9::1"));
	EXPECT_TRUE(allowed(&c, "::1"));
	EXPECT_FALSE(allowed(&c, "::2"));
	EXPECT_TRUE(allowed(&c, "fe80::1234"));
	EXPECT_TRUE(allowed(&c, "febf::1"));
	EXPECT_FALSE(allowed(&c, "fec0::1"));

	/* v4-mapped peers on an IPv6 socket match the IPv4 networks. */
	EXPECT_TRUE(allowed(&c, "::ffff:10.1.2.3"));
	EXPECT_TRUE(allowed(&c, "::ffff:192.168.1.5"));
	EXPECT_FALSE(allowed(&c, "::ffff:192.168.1.6"));
	EXPECT_FALSE(allowed(&c, "::ffff:127.0.0.1"));
	/* ...but not v4-compatible or other embeddings. */
	EXPECT_FALSE(allowed(&c, "::10.1.2.3"));

	EXPECT_FALSE(dd_conf_allowed(&c, (struct sockaddr *)&un));
	EXPECT_FALSE(dd_conf_allowed(&c, NULL));
	dd_conf_free(&c);

	/* /0 is everything of its family; "none" is nobody. */
	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, dd_conf_set(&c, "allow_networks", "0.0.0.0/0", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err)));
	EXPECT_TRUE(allowed(&c, "203.0.113.9"));
	EXPECT_TRUE(allowed(&c, "::ffff:203.0.113.9"));
	EXPECT_FALSE(allowed(&c, "2001:db8::1"));
	ASSERT_EQ(0, dd_conf_set(&c, "allow_networks", "none", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err)));
	EXPECT_EQ(0U, c.nnets);
	EXPECT_FALSE(allowed(&c, "127.0.0.1"));
	ASSERT_EQ(0, dd_conf_set(&c, "allow_networks", "::/0", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err)));
	EXPECT_TRUE(allowed(&c, "2001:db8::1"));
	EXPECT_TRUE(allowed(&c, "::ffff:1.2.3.4"));	/* it is an IPv6 address too */
	EXPECT_FALSE(allowed(&c, "1.2.3.4"));
	dd_conf_free(&c);
}

TEST(conf_listen)
{
	struct dd_conf c;
	char err[512] = "", a[INET6_ADDRSTRLEN];
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;

	ASSERT_EQ(0, dd_conf_init(&c));
	ASSERT_EQ(0, dd_conf_set(&c, "listen",
		"127.0.0.1:25, [::1]:2525,0.0.0.0:26 [2001:db8::7]:65535",
		err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(4U, c.nlisten);
	s4 = (struct sockaddr_in *)&c.listen_addr[0];
	EXPECT_EQ(AF_INET, s4->sin_family);
	EXPECT_EQ(25, ntohs(s4->sin_port));
	EXPECT_EQ(htonl(INADDR_LOOPBACK), s4->sin_addr.s_addr);
	s6 = (struct sockaddr_in6 *)&c.listen_addr[1];
	EXPECT_EQ(AF_INET6, s6->sin6_family);
	EXPECT_EQ(2525, ntohs(s6->sin6_port));
	EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
	s4 = (struct sockaddr_in *)&c.listen_addr[2];
	EXPECT_EQ(26, ntohs(s4->sin_port));
	EXPECT_EQ(0U, s4->sin_addr.s_addr);
	s6 = (struct sockaddr_in6 *)&c.listen_addr[3];
	EXPECT_EQ(65535, ntohs(s6->sin6_port));
	inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
	EXPECT_STREQ("2001:db8::7", a);

	ASSERT_EQ(0, dd_conf_set(&c, "listen", "none", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&c, err, sizeof(err)));
	EXPECT_EQ(0U, c.nlisten);
	dd_conf_free(&c);
}

TEST(conf_print_round_trip)
{
	struct dd_conf a, b;
	char err[512] = "", *sa, *sb, names[128][64];
	const char *path;
	unsigned int n;

	ASSERT_EQ(0, dd_conf_init(&a));
	ASSERT_EQ(0, dd_conf_set(&a, "threads", "3", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_set(&a, "fsync", "no", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_set(&a, "message_size_limit", "5M", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_set(&a, "rcpt_timeout", "1h", err, sizeof(err)));
	ASSERT_EQ(0, dd_conf_finish(&a, err, sizeof(err)));
	sa = conf_to_string(&a);
	n = setting_names(names, 128);
	EXPECT_GE(n, 40U);
	for (unsigned int i = 0; i < n; i++) {
		char key[80];

		snprintf(key, sizeof(key), "%.63s = ", names[i]);
		EXPECT_NE(NULL, strstr(sa, key)) TH_LOG("%s not printed", names[i]);
	}
	EXPECT_NE(NULL, strstr(sa, "rcpt_timeout = 3600\n"));
	EXPECT_NE(NULL, strstr(sa, "fsync = no\n"));

	path = wfile("printed.conf", sa);
	ASSERT_EQ(0, dd_conf_init(&b));
	ASSERT_EQ(0, dd_conf_load(&b, path, NULL, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dd_conf_finish(&b, err, sizeof(err)));
	sb = conf_to_string(&b);
	EXPECT_STREQ(sa, sb);
	free(sa);
	free(sb);
	dd_conf_free(&a);
	dd_conf_free(&b);
}

static char *rst_path(void)
{
	const char *env = getenv("DD_SETTINGS_RST");
	const char *file = __FILE__, *slash;
	char *p;

	if (env && *env)
		return strdup(env);
	env = getenv("DD_SRCDIR");	/* set by make run */
	if (env && *env) {
		if (asprintf(&p, "%s/settings.rst.txt", env) < 0)
			return NULL;
		return p;
	}
#ifdef DD_SETTINGS_RST
	return strdup(DD_SETTINGS_RST);
#endif
	/* .../tools/deliverd/tests/dd_conf_test.c -> .../tools/deliverd/settings.rst.txt */
	slash = strrchr(file, '/');
	if (!slash)
		return strdup("../settings.rst.txt");
	if (asprintf(&p, "%.*s/../settings.rst.txt", (int)(slash - file), file) < 0)
		return NULL;
	return p;
}

TEST(settings_rst)
{
	char *path = rst_path(), *want = print_to_string(dd_conf_print_rst);
	char *have, names[128][64];
	unsigned int n;

	ASSERT_NE(NULL, path);
	if (getenv("DD_WRITE_SETTINGS_RST")) {
		FILE *f = fopen(path, "w");

		ASSERT_NE(NULL, f);
		fputs(want, f);
		fclose(f);
		TH_LOG("wrote %s", path);
	}
	have = read_all(path, NULL);
	ASSERT_NE(NULL, have) TH_LOG("cannot read %s (set DD_SETTINGS_RST)", path);
	n = setting_names(names, 128);
	ASSERT_GE(n, 40U);
	for (unsigned int i = 0; i < n; i++) {
		char key[80];

		snprintf(key, sizeof(key), "``%.63s``", names[i]);
		EXPECT_NE(NULL, strstr(have, key))
			TH_LOG("%s is not in %s", names[i], path);
	}
	EXPECT_STREQ(want, have)
		TH_LOG("%s is stale: DD_WRITE_SETTINGS_RST=1 %s -t settings_rst",
		       path, "dd_conf_test");
	free(path);
	free(want);
	free(have);
}

/* --- routes --- */

static struct dd_routes *load_routes(struct __test_metadata *_metadata,
				     const char *text)
{
	struct dd_routes *r = NULL;
	char err[512] = "";
	const char *p = wfile("routes", text);

	EXPECT_EQ(0, dd_routes_load(&r, p, err, sizeof(err))) TH_LOG("%s", err);
	return r;
}

static const char *route_of(const struct dd_routes *r, const char *d)
{
	const struct dd_route *rt = dd_routes_lookup(r, d);

	return rt ? rt->name : "(none)";
}

TEST(routes_precedence)
{
	struct dd_routes *r = load_routes(_metadata,
		"# static routes\n"
		"\n"
		"example.com      127.0.0.1:2601\n"
		".example.com     127.0.0.2:2602   # every subdomain\n"
		".b.example.com   127.0.0.3:2603\n"
		"x.b.example.com  127.0.0.4:2604\n"
		"Example.ORG.     10.0.0.1\n"
		"*                192.0.2.1:2525\n");

	ASSERT_NE(NULL, r);
	EXPECT_EQ(6U, dd_routes_count(r));
	EXPECT_STREQ("127.0.0.1:2601", route_of(r, "example.com"));
	EXPECT_STREQ("127.0.0.2:2602", route_of(r, "a.example.com"));
	EXPECT_STREQ("127.0.0.2:2602", route_of(r, "deep.a.example.com"));
	/* ".b.example.com" is for the subdomains of b.example.com only. */
	EXPECT_STREQ("127.0.0.2:2602", route_of(r, "b.example.com"));
	EXPECT_STREQ("127.0.0.3:2603", route_of(r, "y.b.example.com"));
	EXPECT_STREQ("127.0.0.4:2604", route_of(r, "x.b.example.com"));
	EXPECT_STREQ("127.0.0.3:2603", route_of(r, "z.x.b.example.com"));
	/* Case and a trailing dot do not matter, either side. */
	EXPECT_STREQ("127.0.0.1:2601", route_of(r, "EXAMPLE.Com"));
	EXPECT_STREQ("127.0.0.1:2601", route_of(r, "example.com."));
	EXPECT_STREQ("127.0.0.2:2602", route_of(r, "Mail.Example.COM"));
	EXPECT_STREQ("10.0.0.1:25", route_of(r, "example.org"));
	EXPECT_STREQ("10.0.0.1:25", route_of(r, "EXAMPLE.ORG"));
	/* The rest goes to "*". */
	EXPECT_STREQ("192.0.2.1:2525", route_of(r, "sub.example.org"));
	EXPECT_STREQ("192.0.2.1:2525", route_of(r, "example.net"));
	EXPECT_STREQ("192.0.2.1:2525", route_of(r, "notexample.com"));
	EXPECT_STREQ("192.0.2.1:2525", route_of(r, "com"));
	EXPECT_STREQ("192.0.2.1:2525", route_of(r, ""));
	dd_routes_free(r);

	/* Without "*", no route. */
	r = load_routes(_metadata, ".example.com 127.0.0.1:25\n");
	ASSERT_NE(NULL, r);
	EXPECT_STREQ("(none)", route_of(r, "example.com"));
	EXPECT_STREQ("127.0.0.1:25", route_of(r, "a.example.com"));
	EXPECT_STREQ("(none)", route_of(r, "example.net"));
	EXPECT_EQ(NULL, dd_routes_lookup(r, NULL));
	dd_routes_free(r);
	EXPECT_EQ(NULL, dd_routes_lookup(NULL, "x"));
	EXPECT_EQ(0U, dd_routes_count(NULL));
}

/* SMTPUTF8 domains: octets as given (ASCII letters without case), no IDNA. */
TEST(routes_utf8)
{
	struct dd_routes *r = load_routes(_metadata,
		"B\xc3\xbc" "cher.example 127.0.0.1:2601\n"
		".\xe4\xbe\x8b.test      127.0.0.2:2602\n"
		"xn--bcher-kva.example 127.0.0.3:2603\n");

	ASSERT_NE(NULL, r);
	EXPECT_STREQ("127.0.0.1:2601", route_of(r, "b\xc3\xbc" "cher.example"));
	EXPECT_STREQ("127.0.0.1:2601", route_of(r, "B\xc3\xbc" "CHER.example"));
	EXPECT_STREQ("127.0.0.2:2602", route_of(r, "a.\xe4\xbe\x8b.test"));
	/* the A-label is another domain here */
	EXPECT_STREQ("127.0.0.3:2603", route_of(r, "xn--bcher-kva.example"));
	/* upper-case U+00DC is not folded: not the same octets */
	EXPECT_STREQ("(none)", route_of(r, "b\xc3\x9c" "cher.example"));
	dd_routes_free(r);
}

TEST(routes_addresses)
{
	const struct dd_route *rt;
	struct dd_routes *r = load_routes(_metadata,
		"v6.example     [::1]:2525\n"
		"v6b.example    [2001:DB8::25]\n"
		"v4.example     192.0.2.7:26\n"
		"name.example   localhost:2601\n");
	char a[INET6_ADDRSTRLEN];

	ASSERT_NE(NULL, r);
	rt = dd_routes_lookup(r, "v6.example");
	ASSERT_NE(NULL, rt);
	EXPECT_EQ(AF_INET6, rt->addr.ss_family);
	EXPECT_EQ(sizeof(struct sockaddr_in6), rt->addrlen);
	EXPECT_EQ(2525, ntohs(((struct sockaddr_in6 *)&rt->addr)->sin6_port));
	EXPECT_STREQ("[::1]:2525", rt->name);
	EXPECT_STREQ("[2001:db8::25]:25", route_of(r, "v6b.example"));
	rt = dd_routes_lookup(r, "v4.example");
	ASSERT_NE(NULL, rt);
	EXPECT_EQ(AF_INET, rt->addr.ss_family);
	EXPECT_EQ(sizeof(struct sockaddr_in), rt->addrlen);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&rt->addr)->sin_addr, a, sizeof(a));
	EXPECT_STREQ("192.0.2.7", a);
	EXPECT_EQ(26, ntohs(((struct sockaddr_in *)&rt->addr)->sin_port));
	/* A name is resolved at load. */
	rt = dd_routes_lookup(r, "name.example");
	ASSERT_NE(NULL, rt);
	EXPECT_TRUE(!strcmp(rt->name, "127.0.0.1:2601") ||
		    !strcmp(rt->name, "[::1]:2601")) TH_LOG("%s", rt->name);
	dd_routes_free(r);
}

TEST(routes_errors)
{
	static const char *const cases[][2] = {
		{ "a.example 127.0.0.1\nb.example\n",
		  "2: expected 'domain host:port'" },
		{ "# x\na.example 127.0.0.1:25 extra\n",
		  "2: expected 'domain host:port'" },
		{ "\n\nbad..example 127.0.0.1\n", "3: bad domain 'bad..example'" },
		{ "bad/example 127.0.0.1\n", "1: bad domain 'bad/example'" },
		{ ". 127.0.0.1\n", "1: bad domain '.'" },
		{ "a.example 127.0.0.1:0\n", "1: bad port '0'" },
		{ "a.example 127.0.0.1:99999\n", "1: bad port '99999'" },
		{ "a.example 127.0.0.1:\n", "1: bad port ''" },
		{ "a.example 127.0.0.1:x5\n", "1: bad port 'x5'" },
		{ "a.example ::1:25\n",
		  "1: bad host '::1:25' (an IPv6 address goes in brackets: "
		  "[address]:port)" },
		{ "a.example [::1\n",
		  "1: bad host '[::1' (expected [ipv6]:port)" },
		{ "a.example [1.2.3.4]:25\n", "1: bad IPv6 address '1.2.3.4'" },
		{ "a.example :25\n", "1: missing host" },
		{ "a.example 127.0.0.1\nb.example 127.0.0.1\nA.Example 10.0.0.1\n",
		  "3: duplicate route for 'a.example' (first at line 1)" },
		{ "* 127.0.0.1\n\n* 127.0.0.2\n",
		  "3: duplicate route for '*' (first at line 1)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dd_routes *r = (void *)1;
		char err[512] = "", want[PATH_MAX + 256];
		const char *p = wfile("routes", cases[i][0]);

		EXPECT_EQ(-EINVAL, dd_routes_load(&r, p, err, sizeof(err)))
			TH_LOG("case %zu: %s", i, err);
		EXPECT_EQ(NULL, r);
		snprintf(want, sizeof(want), "%s:%s", p, cases[i][1]);
		EXPECT_STREQ(want, err);
	}
	{
		struct dd_routes *r = NULL;
		char err[512], want[PATH_MAX + 64];

		snprintf(want, sizeof(want), "%s/no-routes", tdir());
		EXPECT_EQ(-ENOENT, dd_routes_load(&r, want, err, sizeof(err)));
		strcat(want, ": No such file or directory");
		EXPECT_STREQ(want, err);
	}
}

TEST(routes_many)
{
	enum { N = 5000 };
	char *text = NULL, name[64], want[64];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct dd_routes *r;
	struct timespec t0, t1;
	double ns;

	for (int i = 0; i < N; i++)
		fprintf(f, "%sd%d.example%s 10.%d.%d.%d:%d\n",
			i % 3 == 0 ? "." : "", i, i % 7 == 0 ? "." : "",
			(i >> 16) & 255, (i >> 8) & 255, i & 255,
			1000 + i % 60000);
	fclose(f);
	r = load_routes(_metadata, text);
	free(text);
	ASSERT_NE(NULL, r);
	EXPECT_EQ((unsigned int)N, dd_routes_count(r));
	for (int i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "10.%d.%d.%d:%d", (i >> 16) & 255,
			 (i >> 8) & 255, i & 255, 1000 + i % 60000);
		if (i % 3 == 0) {
			snprintf(name, sizeof(name), "mx.D%d.Example", i);
			ASSERT_STREQ(want, route_of(r, name));
			snprintf(name, sizeof(name), "d%d.example", i);
			ASSERT_STREQ("(none)", route_of(r, name));
		} else {
			snprintf(name, sizeof(name), "D%d.EXAMPLE", i);
			ASSERT_STREQ(want, route_of(r, name));
		}
	}
	EXPECT_STREQ("(none)", route_of(r, "d5000.example"));
	/* The hot path: a million lookups well under a second. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < 1000000; k++) {
		snprintf(name, sizeof(name), "a.b.d%d.example", k % (N + 100));
		if (!dd_routes_lookup(r, name) && (k % (N + 100)) < N &&
		    (k % (N + 100)) % 3 == 0)
			ASSERT_TRUE(false);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	TH_LOG("%.0f ns per lookup (snprintf included)", ns / 1e6);
	EXPECT_LT(ns, 5e9);
	dd_routes_free(r);
}

/* --- bounces --- */

/* Checks every line ends in CRLF, none longer than 998, all 7-bit. */
static void check_lines(struct __test_metadata *_metadata, const char *m,
			size_t len)
{
	size_t start = 0;

	ASSERT_GE(len, 2U);
	EXPECT_EQ('\r', m[len - 2]);
	EXPECT_EQ('\n', m[len - 1]);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)m[i];

		ASSERT_TRUE(c < 0x80 && c != 0) TH_LOG("byte %zu is %#x", i, c);
		if (c == '\r')
			ASSERT_EQ('\n', m[i + 1]) TH_LOG("bare CR at %zu", i);
		if (c == '\n') {
			ASSERT_TRUE(i > 0 && m[i - 1] == '\r')
				TH_LOG("bare LF at %zu", i);
			ASSERT_LE(i - 1 - start, 998U) TH_LOG("line at %zu", start);
			start = i + 1;
		}
	}
}

/* The value of header/field name in block (unfolded), or NULL. */
static char *field_value(const char *block, const char *name)
{
	size_t nl = strlen(name);
	const char *p = block;
	char *out;
	size_t o = 0;

	for (;;) {
		if (!strncasecmp(p, name, nl) && p[nl] == ':')
			break;
		p = strstr(p, "\r\n");
		if (!p || p[2] == '\r')
			return NULL;	/* end of the block */
		p += 2;
	}
	p += nl + 1;
	while (*p == ' ')
		p++;
	out = malloc(strlen(p) + 1);
	for (;;) {
		const char *e = strstr(p, "\r\n");

		memcpy(out + o, p, e - p);
		o += e - p;
		p = e + 2;
		if (*p != ' ' && *p != '\t')
			break;
	}
	out[o] = '\0';
	return out;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

struct parts {
	char *head;		/* message header block, ends with CRLF CRLF */
	char *part[3];		/* each part: its headers, CRLF, body */
	char boundary[128];
};

static void split_bounce(struct __test_metadata *_metadata, const char *m,
			 struct parts *ps)
{
	const char *hend = strstr(m, "\r\n\r\n"), *p, *b;
	char *ct, delim[140], close[140];

	memset(ps, 0, sizeof(*ps));
	ASSERT_NE(NULL, hend);
	ps->head = strndup(m, hend + 4 - m);
	ct = field_value(ps->head, "Content-Type");
	ASSERT_NE(NULL, ct);
	EXPECT_EQ(0, strncmp(ct, "multipart/report;", 17)) TH_LOG("%s", ct);
	EXPECT_NE(NULL, strstr(ct, "report-type=delivery-status"));
	b = strstr(ct, "boundary=\"");
	ASSERT_NE(NULL, b);
	b += 10;
	ASSERT_NE(NULL, strchr(b, '"'));
	snprintf(ps->boundary, sizeof(ps->boundary), "%.*s",
		 (int)(strchr(b, '"') - b), b);
	free(ct);
	ASSERT_GT(strlen(ps->boundary), 0U);
	ASSERT_LE(strlen(ps->boundary), 70U);	/* RFC 2046 */

	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", ps->boundary);
	snprintf(close, sizeof(close), "\r\n--%s--\r\n", ps->boundary);
	/* The boundary occurs only as delimiters: 3 parts and the close. */
	EXPECT_EQ(4, count(m, ps->boundary) - 1);
	EXPECT_EQ(3, count(m, delim));
	EXPECT_EQ(1, count(m, close));
	p = hend + 2;
	for (int i = 0; i < 3; i++) {
		const char *s = strstr(p, delim), *e;

		ASSERT_NE(NULL, s);
		s += strlen(delim);
		e = strstr(s, i < 2 ? delim : close);
		ASSERT_NE(NULL, e);
		ps->part[i] = strndup(s, e - s);
		p = e;
	}
	/* Nothing after the close delimiter. */
	EXPECT_EQ(strlen(close), strlen(strstr(m, close)));
}

static void free_parts(struct parts *ps)
{
	free(ps->head);
	for (int i = 0; i < 3; i++)
		free(ps->part[i]);
}

static const char orig_headers[] =
	"Received: from client (localhost [127.0.0.1])\r\n"
	"\tby mx.example.org with ESMTP id 00000000000000AB\r\n"
	"From: Sender <sender@example.org>\r\n"
	"To: a@dest.example, b@dest.example\r\n"
	"Subject: hello\r\n"
	"\r\n"
	"body text that must not appear\r\n";

TEST(bounce_structure)
{
	struct dd_bounce_rcpt rc[] = {
		{ .addr = "a@dest.example", .status = "5.1.1",
		  .remote_mta = "127.0.0.1:2601", .code = 550,
		  .diag = "5.1.1 <a@dest.example>: user unknown",
		  .last_attempt = 1795487400 },
		{ .addr = "b@dest.example", .status = "",
		  .remote_mta = NULL, .code = 0,
		  .diag = "connection refused", .last_attempt = 1795487000 },
		{ .addr = "c@dest.example", .status = NULL,
		  .remote_mta = "[2001:db8::1]:25", .code = 554,
		  .diag = "transaction failed", .last_attempt = 0 },
		{ .addr = "d@dest.example", .status = "bogus",
		  .remote_mta = "mx.dest.example", .code = 451,
		  .diag = "try later", .last_attempt = 1795487000 },
	};
	struct dd_bounce b = {
		.reporting_mta = "mx.example.org",
		.from = "MAILER-DAEMON@mx.example.org",
		.to = "sender@example.org",
		.qid = 0xAB,
		.arrival = 1795000000,
		.headers = orig_headers,
		.headers_len = sizeof(orig_headers) - 1,
		.rcpts = rc,
		.nrcpt = 4,
		.now = 1795487400,	/* 2026-11-24 ... */
	};
	struct parts ps;
	char *m, *v, *dsn;
	size_t len;

	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	ASSERT_EQ(strlen(m), len);
	check_lines(_metadata, m, len);
	split_bounce(_metadata, m, &ps);

	v = field_value(ps.head, "From");
	EXPECT_STREQ("Mail Delivery System <MAILER-DAEMON@mx.example.org>", v);
	free(v);
	v = field_value(ps.head, "To");
	EXPECT_STREQ("<sender@example.org>", v);
	free(v);
	v = field_value(ps.head, "Subject");
	EXPECT_STREQ("Undelivered Mail Returned to Sender", v);
	free(v);
	v = field_value(ps.head, "Date");
	EXPECT_STREQ("Tue, 24 Nov 2026 02:30:00 +0000", v);
	free(v);
	v = field_value(ps.head, "Message-ID");
	ASSERT_NE(NULL, v);
	EXPECT_EQ(0, strncmp(v, "<00000000000000AB.1795487400.", 29)) TH_LOG("%s", v);
	EXPECT_NE(NULL, strstr(v, "@mx.example.org>"));
	free(v);
	v = field_value(ps.head, "MIME-Version");
	EXPECT_STREQ("1.0", v);
	free(v);
	v = field_value(ps.head, "Auto-Submitted");
	EXPECT_STREQ("auto-replied", v);
	free(v);

	/* Part 1: for people, every recipient and its reason. */
	v = field_value(ps.part[0], "Content-Type");
	EXPECT_EQ(0, strncmp(v, "text/plain", 10));
	free(v);
	EXPECT_NE(NULL, strstr(ps.part[0], "<a@dest.example>"));
	EXPECT_NE(NULL, strstr(ps.part[0], "550 5.1.1"));
	EXPECT_NE(NULL, strstr(ps.part[0], "unknown"));
	EXPECT_NE(NULL, strstr(ps.part[0], "<b@dest.example>: delivery time expired; last error: connection refused"));
	EXPECT_NE(NULL, strstr(ps.part[0], "<c@dest.example>"));

	/* Part 2: the DSN. */
	v = field_value(ps.part[1], "Content-Type");
	EXPECT_STREQ("message/delivery-status", v);
	free(v);
	dsn = strstr(ps.part[1], "\r\n\r\n");
	ASSERT_NE(NULL, dsn);
	dsn += 4;
	v = field_value(dsn, "Reporting-MTA");
	EXPECT_STREQ("dns; mx.example.org", v);
	free(v);
	v = field_value(dsn, "Arrival-Date");
	EXPECT_NE(NULL, v);
	free(v);
	v = field_value(dsn, "X-Queue-ID");
	EXPECT_STREQ("00000000000000AB", v);
	free(v);
	{
		/* Per-recipient blocks, separated by blank lines. */
		const char *blk[4];
		const char *p = dsn;

		for (int i = 0; i < 4; i++) {
			p = strstr(p, "\r\n\r\n");
			ASSERT_NE(NULL, p);
			p += 4;
			blk[i] = p;
		}
		EXPECT_EQ(NULL, strstr(blk[3], "\r\n\r\n"));

		v = field_value(blk[0], "Final-Recipient");
		EXPECT_STREQ("rfc822; a@dest.example", v);
		free(v);
		v = field_value(blk[0], "Action");
		EXPECT_STREQ("failed", v);
		free(v);
		v = field_value(blk[0], "Status");
		EXPECT_STREQ("5.1.1", v);
		free(v);
		v = field_value(blk[0], "Remote-MTA");
		EXPECT_STREQ("dns; [127.0.0.1]", v);
		free(v);
		v = field_value(blk[0], "Diagnostic-Code");
		EXPECT_STREQ("smtp; 550 5.1.1 <a@dest.example>: user unknown", v);
		free(v);
		v = field_value(blk[0], "Last-Attempt-Date");
		EXPECT_STREQ("Tue, 24 Nov 2026 02:30:00 +0000", v);
		free(v);

		v = field_value(blk[1], "Final-Recipient");
		EXPECT_STREQ("rfc822; b@dest.example", v);
		free(v);
		v = field_value(blk[1], "Status");
		EXPECT_STREQ("4.4.7", v);		/* expired */
		free(v);
		v = field_value(blk[1], "Action");
		EXPECT_STREQ("failed", v);
		free(v);
		EXPECT_EQ(NULL, field_value(blk[1], "Remote-MTA"));
		EXPECT_EQ(NULL, field_value(blk[1], "Diagnostic-Code"));

		v = field_value(blk[2], "Status");
		EXPECT_STREQ("5.0.0", v);		/* 5xx, no enhanced code */
		free(v);
		v = field_value(blk[2], "Remote-MTA");
		EXPECT_STREQ("dns; [IPv6:2001:db8::1]", v);
		free(v);
		EXPECT_EQ(NULL, field_value(blk[2], "Last-Attempt-Date"));

		v = field_value(blk[3], "Status");
		EXPECT_STREQ("4.4.7", v);		/* 4xx at expiry */
		free(v);
		v = field_value(blk[3], "Remote-MTA");
		EXPECT_STREQ("dns; mx.dest.example", v);
		free(v);
		v = field_value(blk[3], "Diagnostic-Code");
		EXPECT_STREQ("smtp; 451 try later", v);
		free(v);
	}

	/* Part 3: the original headers, not the body. */
	v = field_value(ps.part[2], "Content-Type");
	EXPECT_STREQ("text/rfc822-headers", v);
	free(v);
	EXPECT_NE(NULL, strstr(ps.part[2], "\r\n\r\nReceived: from client"));
	EXPECT_NE(NULL, strstr(ps.part[2], "Subject: hello\r\n"));
	EXPECT_NE(NULL, strstr(ps.part[2],
			       "\tby mx.example.org with ESMTP id 00000000000000AB\r\n"));
	EXPECT_EQ(NULL, strstr(m, "must not appear"));

	free_parts(&ps);
	free(m);
}

TEST(bounce_long_and_hostile)
{
	char diag_words[4000], diag_word[3000], hdrs[5000];
	struct dd_bounce_rcpt rc[3] = {
		{ .addr = "evil@x\r\nBcc: victim@example.com", .status = "5.7.1",
		  .code = 550, .diag = "no\r\nBcc: injected\x01\xff" },
	};
	struct dd_bounce b = {
		.reporting_mta = "mx.example.org",
		.from = "MAILER-DAEMON@mx.example.org",
		.to = "s@example.org\r\nX-Injected: 1",
		.qid = 1, .arrival = 1, .now = 2,
		.rcpts = rc, .nrcpt = 3,
	};
	struct parts ps;
	char *m, *v, *boundary_in_hdr;
	size_t len, o = 0;

	for (size_t i = 0; i + 1 < sizeof(diag_words); i++)
		diag_words[i] = i % 9 == 8 ? ' ' : 'a' + i % 26;
	diag_words[sizeof(diag_words) - 1] = '\0';
	diag_words[0] = 'X';
	memset(diag_word, 'w', sizeof(diag_word) - 1);
	diag_word[sizeof(diag_word) - 1] = '\0';
	rc[1] = (struct dd_bounce_rcpt){ .addr = "long@x", .status = "5.2.2",
		.remote_mta = "1.2.3.4:25", .code = 552, .diag = diag_words };
	rc[2] = (struct dd_bounce_rcpt){ .addr = "word@x", .code = 550,
		.diag = diag_word };
	/* Original headers: a 2000-octet line, 8-bit bytes, bare LFs. */
	o += sprintf(hdrs + o, "Subject: caf\xc3\xa9\n");
	o += sprintf(hdrs + o, "X-Long: ");
	memset(hdrs + o, 'L', 2000);
	o += 2000;
	o += sprintf(hdrs + o, "\r\nX-Trap: =_dd_0000000000000001_2_\r\n\r\n");
	b.headers = hdrs;
	b.headers_len = o;

	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	check_lines(_metadata, m, len);
	split_bounce(_metadata, m, &ps);
	/* No header injection anywhere. */
	EXPECT_EQ(NULL, strstr(m, "\r\nBcc:"));
	EXPECT_EQ(NULL, strstr(m, "\r\nX-Injected:"));
	/* Folding the spaced text loses nothing. */
	v = field_value(strstr(ps.part[1], "Final-Recipient: rfc822; long@x"),
			"Diagnostic-Code");
	ASSERT_NE(NULL, v);
	EXPECT_EQ(0, strncmp(v, "smtp; 552 ", 10));
	EXPECT_STREQ(diag_words, v + 10);
	free(v);
	/* The unbreakable word is still all there, cut at 998-octet lines. */
	v = field_value(strstr(ps.part[1], "Final-Recipient: rfc822; word@x"),
			"Diagnostic-Code");
	ASSERT_NE(NULL, v);
	EXPECT_EQ(10 + 2999 + 3, (int)strlen(v)) TH_LOG("%zu", strlen(v));
	free(v);
	/* The trap did not become the boundary. */
	boundary_in_hdr = strstr(ps.part[2], ps.boundary);
	EXPECT_EQ(NULL, boundary_in_hdr);
	EXPECT_NE(NULL, strstr(ps.part[2], "Subject: caf??\r\n"));
	EXPECT_NE(NULL, strstr(ps.part[2], "X-Trap:"));
	free_parts(&ps);
	free(m);
}

TEST(bounce_no_headers)
{
	struct dd_bounce_rcpt rc = { .addr = "a@b", .code = 550, .diag = "" };
	struct dd_bounce b = {
		.reporting_mta = "h", .from = "MAILER-DAEMON@h", .to = "s@h",
		.qid = 7, .arrival = 0, .now = 0, .rcpts = &rc, .nrcpt = 1,
	};
	struct parts ps;
	char *m, *v;
	size_t len;

	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	check_lines(_metadata, m, len);
	split_bounce(_metadata, m, &ps);
	v = field_value(strstr(ps.part[1], "Final-Recipient"), "Diagnostic-Code");
	EXPECT_STREQ("smtp; 550", v);
	free(v);
	v = field_value(ps.head, "Date");
	EXPECT_STREQ("Thu, 1 Jan 1970 00:00:00 +0000", v);
	free(v);
	free_parts(&ps);
	free(m);
}

/* --- logs --- */

TEST(json_escape)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "plain text", "plain text" },
		{ "say \"hi\"", "say \\\"hi\\\"" },
		{ "back\\slash", "back\\\\slash" },
		{ "a\nb\rc\td\be\ff", "a\\nb\\rc\\td\\be\\ff" },
		{ "\x01\x1f\x7f", "\\u0001\\u001f\\u007f" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7" },
		{ "bad \xff byte", "bad \\u00ff byte" },
		{ "trunc \xc3", "trunc \\u00c3" },
		{ "overlong \xc0\xaf", "overlong \\u00c0\\u00af" },
		{ "overlong3 \xe0\x80\xaf", "overlong3 \\u00e0\\u0080\\u00af" },
		{ "surrogate \xed\xa0\x80", "surrogate \\u00ed\\u00a0\\u0080" },
		{ "too big \xf4\x90\x80\x80", "too big \\u00f4\\u0090\\u0080\\u0080" },
		{ "stray \x80", "stray \\u0080" },
		{ "</script>", "</script>" },
		{ "", "" },
	};
	char out[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = dd_json_escape(out, sizeof(out), cases[i].in);

		EXPECT_STREQ(cases[i].out, out) TH_LOG("case %zu", i);
		EXPECT_EQ(strlen(cases[i].out), n);
	}
	/* NULL is "", truncation never splits an escape, returns the full length. */
	EXPECT_EQ(0U, dd_json_escape(out, sizeof(out), NULL));
	EXPECT_STREQ("", out);
	EXPECT_EQ(18U, dd_json_escape(out, 8, "ab\"cd\x01\x02"));
	EXPECT_STREQ("ab\\\"cd", out);
	EXPECT_EQ(6U, dd_json_escape(out, 3, "\x01"));
	EXPECT_STREQ("", out);
	EXPECT_EQ(3U, dd_json_escape(out, 0, "abc"));
}

static json_object *parse_line(struct __test_metadata *_metadata,
			       const char *line)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, line, (int)strlen(line));

	EXPECT_EQ(json_tokener_success, json_tokener_get_error(tok))
		TH_LOG("%s", line);
	/* Exactly one object, then the newline (and nothing else). */
	EXPECT_EQ('\n', line[strlen(line) - 1]);
	EXPECT_EQ(strlen(line), (size_t)json_tokener_get_parse_end(tok));
	EXPECT_EQ(line + strlen(line) - 1, strchr(line, '\n'));
	json_tokener_free(tok);
	return o;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

TEST(dlog_json)
{
	char path[PATH_MAX], *buf, *line2;
	static const char nasty[] = "550 \"quoted\" back\\slash\r\nnewline\x01\x7f \xff\xfe caf\xc3\xa9";
	struct dd_attempt a = {
		.qid = 0x1234ABCDULL, .rcpt = "r@dest.example",
		.sender = "s\"@example.org", .dest = "dest.example",
		.host = "127.0.0.1:2601", .status = "bounced", .code = 550,
		.enh = "5.1.1", .reply = nasty, .duration_us = 1234,
		.attempt = 3, .transport = "bdat",
	};
	struct dd_attempt b = {
		.qid = ~0ULL, .rcpt = "x@y", .sender = "", .dest = "y",
		.host = NULL, .status = "deferred", .code = 0, .enh = "",
		.reply = "connection refused", .duration_us = 5,
		.attempt = 1, .transport = NULL,
	};
	json_object *o, *v;
	const char *t;
	size_t len;

	snprintf(path, sizeof(path), "%s/delivery.log", tdir());
	ASSERT_EQ(0, dd_dlog_open(path));
	dd_dlog(&a);
	dd_dlog(&b);
	buf = read_all(path, &len);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ(2, count(buf, "\n"));
	line2 = strchr(buf, '\n') + 1;
	line2[-1] = '\0';
	{
		char *l1 = NULL;

		ASSERT_GT(asprintf(&l1, "%s\n", buf), 0);
		o = parse_line(_metadata, l1);
		free(l1);
	}
	ASSERT_NE(NULL, o);
	t = jstr(o, "time");
	ASSERT_NE(NULL, t);
	EXPECT_EQ(24U, strlen(t));
	EXPECT_EQ('T', t[10]);
	EXPECT_EQ('.', t[19]);
	EXPECT_EQ('Z', t[23]);
	EXPECT_STREQ("000000001234ABCD", jstr(o, "qid"));
	EXPECT_STREQ("r@dest.example", jstr(o, "rcpt"));
	EXPECT_STREQ("s\"@example.org", jstr(o, "sender"));
	EXPECT_STREQ("dest.example", jstr(o, "dest"));
	EXPECT_STREQ("127.0.0.1:2601", jstr(o, "host"));
	EXPECT_STREQ("bounced", jstr(o, "status"));
	ASSERT_TRUE(json_object_object_get_ex(o, "code", &v));
	EXPECT_TRUE(json_object_is_type(v, json_type_int));
	EXPECT_EQ(550, json_object_get_int(v));
	EXPECT_STREQ("5.1.1", jstr(o, "enh"));
	/* The reply: every byte round-trips except invalid UTF-8 (Latin-1). */
	EXPECT_STREQ("550 \"quoted\" back\\slash\r\nnewline\x01\x7f "
		     "\xc3\xbf\xc3\xbe caf\xc3\xa9", jstr(o, "reply"));
	ASSERT_TRUE(json_object_object_get_ex(o, "duration_ms", &v));
	EXPECT_TRUE(json_object_is_type(v, json_type_double));
	EXPECT_TRUE(json_object_get_double(v) > 1.2339 &&
		    json_object_get_double(v) < 1.2341);
	EXPECT_NE(NULL, strstr(buf, "\"duration_ms\":1.234,"));
	ASSERT_TRUE(json_object_object_get_ex(o, "attempt", &v));
	EXPECT_EQ(3, json_object_get_int(v));
	EXPECT_STREQ("bdat", jstr(o, "transport"));
	EXPECT_EQ(13, json_object_object_length(o));
	json_object_put(o);

	o = parse_line(_metadata, line2);
	ASSERT_NE(NULL, o);
	EXPECT_STREQ("FFFFFFFFFFFFFFFF", jstr(o, "qid"));
	ASSERT_TRUE(json_object_object_get_ex(o, "host", &v));
	EXPECT_EQ(NULL, v);			/* null */
	ASSERT_TRUE(json_object_object_get_ex(o, "transport", &v));
	EXPECT_EQ(NULL, v);
	EXPECT_STREQ("", jstr(o, "sender"));
	EXPECT_NE(NULL, strstr(line2, "\"duration_ms\":0.005,"));
	json_object_put(o);
	free(buf);

	/* "none": nothing written. */
	ASSERT_EQ(0, dd_dlog_open("none"));
	dd_dlog(&a);
	buf = read_all(path, &len);
	EXPECT_EQ(2, count(buf, "\n"));
	free(buf);
}

TEST(dlog_long_reply)
{
	char path[PATH_MAX], *buf, *reply = malloc(20000);
	struct dd_attempt a = {
		.qid = 1, .rcpt = "r@d", .sender = "s@d", .dest = "d",
		.status = "deferred", .reply = reply, .attempt = 1,
	};
	json_object *o;

	ASSERT_NE(NULL, reply);
	for (int i = 0; i < 19999; i++)
		reply[i] = i % 2 ? '"' : '\x02';
	reply[19999] = '\0';
	snprintf(path, sizeof(path), "%s/long.log", tdir());
	ASSERT_EQ(0, dd_dlog_open(path));
	dd_dlog(&a);
	buf = read_all(path, NULL);
	o = parse_line(_metadata, buf);
	ASSERT_NE(NULL, o);
	EXPECT_STREQ(reply, jstr(o, "reply"));
	json_object_put(o);
	free(buf);
	free(reply);
}

TEST(log_lines)
{
	char path[PATH_MAX], *buf, want[128];
	int y, mo, d, h, mi, s, ms, pid;
	char tname[32], lvl[32], text[256];

	snprintf(path, sizeof(path), "%s/deliverd.log", tdir());
	EXPECT_EQ(-EINVAL, dd_log_open(path, "loud"));
	ASSERT_EQ(0, dd_log_open(path, "info"));
	dd_log_thread("loop0");
	dd_debug("not written %d", 1);
	dd_info("delivered %d of %d", 3, 4);
	dd_warn("two\nlines\r\n");
	dd_log_thread("commit");
	dd_err("failed: %s", "why");
	buf = read_all(path, NULL);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ(3, count(buf, "\n")) TH_LOG("%s", buf);
	EXPECT_EQ(NULL, strstr(buf, "not written"));
	ASSERT_EQ(10, sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ deliverd[%d] %31s %31[^:]",
			     &y, &mo, &d, &h, &mi, &s, &ms, &pid, tname, lvl));
	EXPECT_GE(y, 2024);
	EXPECT_EQ(getpid(), pid);
	EXPECT_STREQ("loop0", tname);
	EXPECT_STREQ("info", lvl);
	EXPECT_EQ('Z', buf[23]);
	snprintf(want, sizeof(want), " deliverd[%d] loop0 info: delivered 3 of 4\n",
		 getpid());
	EXPECT_NE(NULL, strstr(buf, want));
	snprintf(want, sizeof(want), " deliverd[%d] loop0 warning: two lines\n",
		 getpid());
	EXPECT_NE(NULL, strstr(buf, want));
	snprintf(want, sizeof(want), " deliverd[%d] commit error: failed: why\n",
		 getpid());
	EXPECT_NE(NULL, strstr(buf, want));
	(void)text;
	free(buf);

	/* debug level lets debug through; reopening appends. */
	ASSERT_EQ(0, dd_log_open(path, "debug"));
	dd_debug("now written");
	buf = read_all(path, NULL);
	EXPECT_EQ(4, count(buf, "\n"));
	EXPECT_NE(NULL, strstr(buf, "commit debug: now written\n"));
	free(buf);
	/* Back to stderr. */
	EXPECT_EQ(0, dd_log_open(NULL, "error"));
}

static void *log_worker(void *arg)
{
	char name[16];
	struct dd_attempt a = {
		.qid = (uintptr_t)arg, .rcpt = "r@d", .sender = "s@d",
		.dest = "d", .status = "delivered", .code = 250,
		.reply = "2.0.0 ok", .attempt = 1,
	};

	snprintf(name, sizeof(name), "loop%d", (int)(uintptr_t)arg);
	dd_log_thread(name);
	for (int i = 0; i < 2000; i++) {
		dd_info("line %d from %s %0200d", i, name, 0);
		dd_dlog(&a);
	}
	return NULL;
}

/* Lines from threads never interleave: one write per line. */
TEST(log_threads)
{
	char path[PATH_MAX], dpath[PATH_MAX], *buf, *line, *save = NULL;
	pthread_t th[4];
	int n = 0;

	snprintf(path, sizeof(path), "%s/threads.log", tdir());
	snprintf(dpath, sizeof(dpath), "%s/threads.dlog", tdir());
	ASSERT_EQ(0, dd_log_open(path, "info"));
	ASSERT_EQ(0, dd_dlog_open(dpath));
	for (uintptr_t i = 0; i < 4; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, log_worker, (void *)i));
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	buf = read_all(path, NULL);
	ASSERT_NE(NULL, buf);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		char *p = strstr(line, " info: line ");

		ASSERT_NE(NULL, p) TH_LOG("%s", line);
		ASSERT_EQ(strlen(line), (size_t)(p - line) + 12 + strcspn(p + 12, " ") +
			  strlen(" from loop0 ") + 200);
	}
	EXPECT_EQ(8000, n);
	free(buf);
	buf = read_all(dpath, NULL);
	ASSERT_NE(NULL, buf);
	save = NULL;
	n = 0;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_object *o = json_tokener_parse(line);

		ASSERT_NE(NULL, o) TH_LOG("%s", line);
		json_object_put(o);
	}
	EXPECT_EQ(8000, n);
	free(buf);
}

/* RFC 3461/3464: ENVID, ORCPT, RET=FULL and relayed notices. */
TEST(bounce_dsn)
{
	struct dd_bounce_rcpt rc[] = {
		{ .addr = "a@dest.example", .status = "5.1.1",
		  .remote_mta = "127.0.0.1:2601", .code = 550,
		  .diag = "no such user", .last_attempt = 1795487400,
		  .orcpt = "rfc822;x+2Bo@y.example" },
		{ .addr = "j\xc3\xb6rg+1@b\xc3\xbc" "cher.example", .status = "5.1.1",
		  .code = 550, .diag = "no", .last_attempt = 1795487400 },
	};
	struct dd_bounce b = {
		.reporting_mta = "mx.example.org",
		.from = "MAILER-DAEMON@mx.example.org",
		.to = "sender@example.org",
		.qid = 0xAB, .arrival = 1795000000,
		.headers = orig_headers, .headers_len = sizeof(orig_headers) - 1,
		.rcpts = rc, .nrcpt = 2, .now = 1795487400,
		.envid = "QQ+2Bid+3D7",
		.message = orig_headers, .message_len = sizeof(orig_headers) - 1,
	};
	struct parts ps;
	char *m, *v;
	size_t len;

	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	check_lines(_metadata, m, len);
	split_bounce(_metadata, m, &ps);
	EXPECT_NE(NULL, strstr(ps.part[0], "Your message is attached below."));
	EXPECT_NE(NULL, strstr(ps.part[1], "\r\nOriginal-Envelope-Id: QQ+id=7\r\n"))
		TH_LOG("%s", ps.part[1]);
	EXPECT_NE(NULL, strstr(ps.part[1],
			       "\r\n\r\nOriginal-Recipient: rfc822; x+o@y.example\r\n"
			       "Final-Recipient: rfc822; a@dest.example\r\n"
			       "Action: failed\r\n")) TH_LOG("%s", ps.part[1]);
	/* no ORCPT, no Original-Recipient; a UTF-8 address as utf-8-addr-xtext */
	EXPECT_NE(NULL, strstr(ps.part[1], "\r\n\r\nFinal-Recipient: utf-8; "
			       "j\\x{F6}rg\\x{2B}1@b\\x{FC}cher.example\r\n"))
		TH_LOG("%s", ps.part[1]);
	EXPECT_EQ(1, count(ps.part[1], "Original-Recipient"));
	v = field_value(ps.part[2], "Content-Type");
	EXPECT_STREQ("message/rfc822", v);
	free(v);
	/* the whole message, body included, exactly */
	EXPECT_NE(NULL, strstr(ps.part[2], "\r\n\r\n" "Received: from client"));
	EXPECT_EQ(strlen(ps.part[2]) - (strstr(ps.part[2], "\r\n\r\n") + 4 - ps.part[2]),
		  sizeof(orig_headers) - 1);
	EXPECT_NE(NULL, strstr(ps.part[2], "body text that must not appear\r\n"));
	free_parts(&ps);
	free(m);

	/* RET=FULL over the limit: headers only, and the text says why */
	b.message = NULL;
	b.message_len = 0;
	b.full_max = 1048576;
	b.envid = NULL;
	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	split_bounce(_metadata, m, &ps);
	EXPECT_NE(NULL, strstr(ps.part[0], "Your message is larger than 1048576 "
			       "bytes, so only its headers are attached"))
		TH_LOG("%s", ps.part[0]);
	EXPECT_EQ(NULL, strstr(ps.part[1], "Original-Envelope-Id"));
	v = field_value(ps.part[2], "Content-Type");
	EXPECT_STREQ("text/rfc822-headers", v);
	free(v);
	EXPECT_EQ(NULL, strstr(ps.part[2], "must not appear"));
	free_parts(&ps);
	free(m);

	/* 8-bit original, SMTPUTF8: message/global, 8bit */
	b.full_max = 0;
	b.message = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\nx\r\n";
	b.message_len = strlen(b.message);
	b.message_global = true;
	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	split_bounce(_metadata, m, &ps);
	v = field_value(ps.part[2], "Content-Type");
	EXPECT_STREQ("message/global", v);
	free(v);
	v = field_value(ps.part[2], "Content-Transfer-Encoding");
	EXPECT_STREQ("8bit", v);
	free(v);
	EXPECT_NE(NULL, strstr(ps.part[2], b.message));
	free_parts(&ps);
	free(m);

	/* a relayed notice: never the message, Action relayed, Status 2.0.0 */
	rc[0].status = "2.0.0";
	rc[0].code = 250;
	rc[0].diag = "2.0.0 Ok: queued";
	b.nrcpt = 1;
	b.relayed = true;
	ASSERT_EQ(0, dd_bounce_build(&b, &m, &len));
	check_lines(_metadata, m, len);
	split_bounce(_metadata, m, &ps);
	v = field_value(ps.head, "Subject");
	EXPECT_STREQ("Successful Mail Delivery Report", v);
	free(v);
	EXPECT_NE(NULL, strstr(ps.part[0], "relayed to the recipient below"));
	EXPECT_NE(NULL, strstr(ps.part[1], "\r\nAction: relayed\r\nStatus: 2.0.0\r\n"))
		TH_LOG("%s", ps.part[1]);
	EXPECT_NE(NULL, strstr(ps.part[1], "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued"));
	v = field_value(ps.part[2], "Content-Type");
	EXPECT_STREQ("text/rfc822-headers", v);
	free(v);
	EXPECT_EQ(NULL, strstr(m, "must not appear"));
	free_parts(&ps);
	free(m);
}

TEST_HARNESS_MAIN
