// SPDX-License-Identifier: GPL-2.0
/*
 * deliverctl: submit mail to deliverd and control its queue, over
 * deliverd's control socket (ESMTP plus X-commands answered with JSON).
 *
 *   deliverctl [-c config] [-S socket] submit [sendmail options] [rcpt ...]
 *   deliverctl merge [-f sender] [-r column] [-b batch] [--dry-run DIR] TEMPLATE CSV
 *   deliverctl queue [--json] | flush [domain] | hold ID|domain
 *              | release ID|domain | stats [--json]
 *
 * Invoked as "sendmail" it is `submit`, as "mailq" it is `queue`.
 * Exit codes are sysexits(3)'s; see deliverctl(8).
 */
#define _GNU_SOURCE
#include "dc.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dd_conf.h"

#define DC_DEFAULT_CONFIG	"/etc/deliverd/deliverd.conf"
#define DC_DEFAULT_SOCKET	"/var/spool/deliverd/control"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [-c config] [-S socket] command [args]\n"
		"commands:\n"
		"  submit [-t] [-i|-oi] [-f sender] [-F name] [-B type] [rcpt ...]\n"
		"                         send the message on stdin (as sendmail)\n"
		"  merge [-f sender] [-r column] [-b batch] [--dry-run DIR] TEMPLATE CSV\n"
		"                         one message per CSV row from a template\n"
		"  queue [--json]         the queue by destination\n"
		"  flush [domain]         retry deferred mail now\n"
		"  hold ID|domain         stop delivering a message or a destination\n"
		"  release ID|domain      undo hold\n"
		"  stats [--json]         the daemon's figures\n"
		"The socket defaults to control_socket of the config file (%s),\n"
		"else %s.\n", prog, DC_DEFAULT_CONFIG, DC_DEFAULT_SOCKET);
}

static int resolve(struct dc_global *g)
{
	const char *path = g->config;
	char *sock = NULL, *host = NULL;

	if (g->sock)
		return 0;
	if (!path && access(DC_DEFAULT_CONFIG, R_OK) == 0)
		path = DC_DEFAULT_CONFIG;
	if (!path) {
		g->sock = DC_DEFAULT_SOCKET;
		return 0;
	}
	struct dd_conf conf;
	char err[512];

	if (dd_conf_init(&conf)) {
		fprintf(stderr, "%s: out of memory\n", g->prog);
		return EX_OSERR;
	}
	if (dd_conf_load(&conf, path, NULL, 0, err, sizeof(err)) ||
	    dd_conf_finish(&conf, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", g->prog, err);
		dd_conf_free(&conf);
		return EX_CONFIG;
	}
	if (conf.control_socket && *conf.control_socket)
		sock = strdup(conf.control_socket);
	if (conf.hostname && *conf.hostname)
		host = strdup(conf.hostname);
	dd_conf_free(&conf);
	g->sock = sock ? sock : DC_DEFAULT_SOCKET;	/* lives until exit */
	if (host && !g->hostname)
		g->hostname = host;
	else
		free(host);
	return 0;
}

/* A queue id or a domain: one word of printable ASCII. */
static bool word_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 255)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return false;
	return true;
}

/* Send cmd; 0 with the reply in r, or an exit code (message printed). */
static int control(struct dc_global *g, const char *cmd, struct dc_reply *r)
{
	struct dc_conn c;
	int ret, code;

	ret = dc_open(g, &c);
	if (ret)
		return ret;
	code = dc_smtp_command(&c, cmd, r);
	dc_smtp_quit(&c);
	if (code == 250)
		return 0;
	if (code <= 0) {
		fprintf(stderr, "%s: %s: %s\n", g->prog, cmd, r->text);
		return code ? EX_PROTOCOL : EX_TEMPFAIL;
	}
	fprintf(stderr, "%s: %s: %d %s\n", g->prog, cmd, code, r->text);
	if (code == 550)
		return EX_NOUSER;
	if (code >= 500 && code < 510)
		return EX_SOFTWARE;	/* 500-504: a daemon without the command */
	return dc_exit_for(code);
}

static long long num(const char *obj, const char *key)
{
	char v[64];

	return dc_json_get(obj, key, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
}

static int cmd_queue(struct dc_global *g, int argc, char **argv)
{
	struct dc_reply r = { 0 };
	bool json = false;
	int ret, i;
	char *line, dest[256];
	size_t w = 11;
	long long now = time(NULL);

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j")) {
			json = true;
		} else {
			fprintf(stderr, "usage: %s queue [--json]\n", g->prog);
			return EX_USAGE;
		}
	}
	ret = control(g, "XQUEUE", &r);
	if (ret)
		goto out;
	if (json) {
		fputs(r.all.p, stdout);
		goto out;
	}
	/* One JSON object a line: make the lines strings. */
	for (line = r.all.p; line < r.all.p + r.all.len; line++)
		if (*line == '\n')
			*line = 0;
	for (line = r.all.p; line < r.all.p + r.all.len; line += strlen(line) + 1)
		if (dc_json_get(line, "dest", dest, sizeof(dest)) && strlen(dest) > w)
			w = strlen(dest);
	printf("%-*s %8s %8s %8s %8s %6s %8s\n", (int)w, "DESTINATION", "QUEUED",
	       "DEFERRED", "ACTIVE", "HELD", "CONNS", "BACKOFF");
	for (line = r.all.p; line < r.all.p + r.all.len; line += strlen(line) + 1) {
		if (dc_json_get(line, "dest", dest, sizeof(dest))) {
			long long b = num(line, "backoff_until");
			char bo[32] = "-";

			b -= now;
			if (b > 0)
				snprintf(bo, sizeof(bo), "%lld%c",
					 b < 120 ? b : b < 7200 ? b / 60 : b < 172800 ?
					 b / 3600 : b / 86400,
					 b < 120 ? 's' : b < 7200 ? 'm' : b < 172800 ? 'h' : 'd');
			printf("%-*s %8lld %8lld %8lld %8lld %6lld %8s\n", (int)w, dest,
			       num(line, "queued"), num(line, "deferred"), num(line, "active"),
			       num(line, "held"), num(line, "conns"), bo);
		} else if (dc_json_get(line, "queued", dest, sizeof(dest))) {
			/* The totals: {"total_msgs":N (or "total_dests"),"queued":...} */
			printf("%-*s %8lld %8lld %8lld %8lld\n", (int)w, "TOTAL",
			       num(line, "queued"), num(line, "deferred"), num(line, "active"),
			       num(line, "held"));
			if (dc_json_get(line, "total_msgs", dest, sizeof(dest)))
				printf("%s message%s in the queue\n", dest,
				       strcmp(dest, "1") ? "s" : "");
			if (dc_json_get(line, "total_dests", dest, sizeof(dest)))
				printf("%s destination%s\n", dest, strcmp(dest, "1") ? "s" : "");
		}
	}
out:
	dc_reply_free(&r);
	return ret;
}

static int cmd_simple(struct dc_global *g, int argc, char **argv)
{
	const char *name = argv[0], *verb, *key, *what;
	struct dc_reply r = { 0 };
	char cmd[300], v[64];
	int ret;

	if (!strcmp(name, "flush")) {
		verb = "XFLUSH";
		key = "flushed";
		what = "flushed";
		if (argc > 2)
			goto usage;
	} else if (!strcmp(name, "hold") || !strcmp(name, "release")) {
		verb = name[0] == 'h' ? "XHOLD" : "XRELEASE";
		key = name[0] == 'h' ? "held" : "released";
		what = key;
		if (argc != 2)
			goto usage;
	} else {
		goto usage;
	}
	if (argc == 2) {
		if (!word_ok(argv[1])) {
			fprintf(stderr, "%s: %s: \"%s\" is not a queue id or domain\n",
				g->prog, name, argv[1]);
			return EX_USAGE;
		}
		snprintf(cmd, sizeof(cmd), "%s %s", verb, argv[1]);
	} else {
		snprintf(cmd, sizeof(cmd), "%s", verb);
	}
	ret = control(g, cmd, &r);
	if (!ret) {
		if (key && dc_json_get(r.all.p, key, v, sizeof(v)))
			printf("%s %s\n", what, v);
		else
			fputs(r.all.p, stdout);
	}
	dc_reply_free(&r);
	return ret;
usage:
	if (!strcmp(name, "flush"))
		fprintf(stderr, "usage: %s flush [domain]\n", g->prog);
	else
		fprintf(stderr, "usage: %s %s QUEUE-ID|domain\n", g->prog, name);
	return EX_USAGE;
}

/*
 * One "name: value" line per figure of XSTATS's JSON lines, aligned:
 * the totals' names as they are, then "worker N name" and "dest D name".
 */
static void print_stats(char *text, size_t len, bool print, int *width)
{
	struct dd_buf key = { 0 }, val = { 0 }, name = { 0 };
	char *line;

	for (line = text; line < text + len; line += strlen(line) + 1) {
		char pre[300] = "";
		unsigned int i;

		if (dc_json_member(line, 0, &key, &val) &&
		    (!strcmp(dc_buf_str(&key), "worker") ||
		     !strcmp(dc_buf_str(&key), "dest")))
			snprintf(pre, sizeof(pre), "%s %s ", dc_buf_str(&key),
				 dc_buf_str(&val));
		for (i = pre[0] ? 1 : 0; dc_json_member(line, i, &key, &val); i++) {
			name.len = 0;
			dc_buf_adds(&name, pre);
			dc_buf_adds(&name, dc_buf_str(&key));
			dc_buf_addc(&name, ':');
			if (!print) {
				if ((int)name.len > *width)
					*width = (int)name.len;
				continue;
			}
			printf("%-*s %s\n", *width, dc_buf_str(&name),
			       dc_buf_str(&val));
		}
	}
	dc_buf_free(&key);
	dc_buf_free(&val);
	dc_buf_free(&name);
}

static int cmd_stats(struct dc_global *g, int argc, char **argv)
{
	struct dc_reply r = { 0 };
	bool json = false;
	int ret, i, width = 0;
	char *p;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j")) {
			json = true;
		} else {
			fprintf(stderr, "usage: %s stats [--json]\n", g->prog);
			return EX_USAGE;
		}
	}
	ret = control(g, "XSTATS", &r);
	if (ret)
		goto out;
	if (json) {
		fputs(r.all.p, stdout);
		goto out;
	}
	/* One JSON object a line: make the lines strings. */
	for (p = r.all.p; p < r.all.p + r.all.len; p++)
		if (*p == '\n')
			*p = 0;
	print_stats(r.all.p, r.all.len, false, &width);
	print_stats(r.all.p, r.all.len, true, &width);
out:
	dc_reply_free(&r);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option lopt[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct dc_global g = { .resolve = resolve, .prog = "deliverctl" };
	const char *base = strrchr(argv[0], '/');
	int opt, i;

	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "sendmail")) {
		g.prog = "sendmail";
		for (i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--"))
				break;
			if (!strcmp(argv[i], "-bp")) {
				char *q[] = { "queue", NULL };

				return cmd_queue(&g, 1, q);
			}
			if (!strncmp(argv[i], "-q", 2)) {
				char *f[] = { "flush", NULL };

				return cmd_simple(&g, 1, f);
			}
		}
		return dc_submit_main(&g, argc, argv);
	}
	if (!strcmp(base, "mailq")) {
		char *q[] = { "queue", NULL };

		g.prog = "mailq";
		return cmd_queue(&g, 1, q);
	}

	while ((opt = getopt_long(argc, argv, "+c:S:h", lopt, NULL)) != -1) {
		switch (opt) {
		case 'c':
			g.config = optarg;
			break;
		case 'S':
			g.sock = optarg;
			break;
		case 'h':
			usage(stdout, g.prog);
			return 0;
		default:
			usage(stderr, g.prog);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr, g.prog);
		return EX_USAGE;
	}
	argc -= optind;
	argv += optind;
	if (!strcmp(argv[0], "submit"))
		return dc_submit_main(&g, argc, argv);
	if (!strcmp(argv[0], "merge"))
		return dc_merge_main(&g, argc, argv);
	if (!strcmp(argv[0], "queue"))
		return cmd_queue(&g, argc, argv);
	if (!strcmp(argv[0], "flush") || !strcmp(argv[0], "hold") ||
	    !strcmp(argv[0], "release"))
		return cmd_simple(&g, argc, argv);
	if (!strcmp(argv[0], "stats"))
		return cmd_stats(&g, argc, argv);
	if (!strcmp(argv[0], "help")) {
		usage(stdout, g.prog);
		return 0;
	}
	fprintf(stderr, "%s: unknown command \"%s\"\n", g.prog, argv[0]);
	usage(stderr, g.prog);
	return EX_USAGE;
}
