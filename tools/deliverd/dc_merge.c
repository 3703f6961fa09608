// SPDX-License-Identifier: GPL-2.0
/*
 * `deliverctl merge`: one message per CSV row from a template, injected
 * in pipelined batches on one connection.
 *
 * Everything that can be checked before sending is: the template's
 * syntax and header section, its placeholders against the CSV header,
 * the recipient column, -f.  A bad row is reported as FILE:LINE (the
 * physical line the row starts on) and skipped; the rest go out.
 */
#define _GNU_SOURCE
#include "dc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mrow {
	struct dd_buf data;
	char *sender;
	char *rcpt[1];
	unsigned long line;
	bool eightbit;
};

struct merge {
	struct dc_global *g;
	const char *csvname;
	const char *dir;		/* --dry-run */
	struct dc_conn c;
	bool connected;
	struct mrow *batch;
	unsigned int n, max;
	unsigned long sent, bad, failed, seq;
	bool tempfail;
	bool dead;			/* connection lost, reconnect failed */
};

static void usage_merge(const char *prog)
{
	fprintf(stderr,
		"usage: %s merge [-f sender] [-r column] [-b batch] [--dry-run DIR]\n"
		"       TEMPLATE RECIPIENTS.csv\n", prog);
}

static int read_file(const char *path, struct dd_buf *b)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char tmp[65536];
	size_t n;

	if (!f)
		return -1;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		dc_buf_add(b, tmp, n);
	n = (size_t)ferror(f);
	if (f != stdin)
		fclose(f);
	dc_buf_str(b);
	return n ? -1 : 0;
}

static int write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t w = -1;

	if (fd < 0)
		return -1;
	if (len)
		w = write(fd, p, len);
	else
		w = 0;
	if (close(fd) || w != (ssize_t)len)
		return -1;
	return 0;
}

static void free_row(struct mrow *r)
{
	dc_buf_free(&r->data);
	free(r->sender);
	free(r->rcpt[0]);
	memset(r, 0, sizeof(*r));
}

static int flush_batch(struct merge *mg)
{
	struct dc_msg *m;
	struct dc_result *res;
	unsigned int i;
	int ret = 0;

	if (!mg->n)
		return 0;
	if (mg->dir) {
		for (i = 0; i < mg->n; i++) {
			struct mrow *r = &mg->batch[i];
			struct dd_buf env = { 0 };
			char path[4096];

			mg->seq++;
			snprintf(path, sizeof(path), "%s/%06lu.eml", mg->dir, mg->seq);
			if (write_file(path, r->data.p, r->data.len)) {
				fprintf(stderr, "%s: %s: %s\n", mg->g->prog, path, strerror(errno));
				ret = EX_CANTCREAT;
			}
			dc_buf_printf(&env, "MAIL FROM:<%s>\nRCPT TO:<%s>\n", r->sender, r->rcpt[0]);
			snprintf(path, sizeof(path), "%s/%06lu.env", mg->dir, mg->seq);
			if (write_file(path, env.p, env.len)) {
				fprintf(stderr, "%s: %s: %s\n", mg->g->prog, path, strerror(errno));
				ret = EX_CANTCREAT;
			}
			dc_buf_free(&env);
			if (!ret)
				mg->sent++;
			else
				mg->failed++;
			free_row(r);
		}
		mg->n = 0;
		return ret;
	}

	if (!mg->connected) {
		if (dc_open(mg->g, &mg->c)) {
			mg->dead = true;
			return EX_TEMPFAIL;
		}
		mg->connected = true;
	}
	m = dc_xmalloc(mg->n * sizeof(*m));
	res = dc_xmalloc(mg->n * sizeof(*res));
	for (i = 0; i < mg->n; i++) {
		struct mrow *r = &mg->batch[i];

		m[i] = (struct dc_msg){ .sender = r->sender, .rcpt = r->rcpt, .nrcpt = 1,
					.data = r->data.p, .len = r->data.len,
					.eightbit = r->eightbit };
	}
	if (dc_smtp_send(&mg->c, m, mg->n, res)) {
		mg->connected = false;	/* closed; the next batch reconnects */
		ret = EX_TEMPFAIL;
	}
	for (i = 0; i < mg->n; i++) {
		struct mrow *r = &mg->batch[i];

		if (res[i].code / 100 == 2) {
			mg->sent++;
		} else {
			mg->failed++;
			if (res[i].code < 500)
				mg->tempfail = true;
			fprintf(stderr, "%s:%lu: %s: not queued: %d %s\n", mg->csvname,
				r->line, r->rcpt[0], res[i].code, res[i].text);
		}
		dc_result_free(&res[i]);
		free_row(r);
	}
	free(m);
	free(res);
	mg->n = 0;
	return ret;
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char *trim_dup(const char *s)
{
	size_t n;

	while (blank(*s))
		s++;
	n = strlen(s);
	while (n && blank(s[n - 1]))
		n--;
	return strndup(s, n);
}

int dc_merge_main(struct dc_global *g, int argc, char **argv)
{
	static const struct option lopt[] = {
		{ "dry-run", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sender = NULL, *rcol_name = "email", *tname, *cname;
	struct merge mg = { .g = g, .max = 100 };
	struct dd_buf tbuf = { 0 }, filled = { 0 }, norm = { 0 };
	struct dc_template t = { 0 };
	struct dc_csv csv;
	FILE *cf = NULL;
	char err[1024], defsender[DC_ADDR_MAX + 64], tag[32];
	char **cols = NULL, *env_sender = NULL;
	unsigned int ncol = 0, i, bad_line;
	unsigned long line, rowno = 0;
	int rcol = -1, opt, ret = 0, r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+f:r:b:c:S:h", lopt, NULL)) != -1) {
		switch (opt) {
		case 'f':
			sender = optarg;
			break;
		case 'r':
			rcol_name = optarg;
			break;
		case 'b': {
			char *e;
			unsigned long v = strtoul(optarg, &e, 10);

			if (*e || !v || v > 100000) {
				fprintf(stderr, "%s: -b %s: a batch size 1..100000\n", g->prog, optarg);
				return EX_USAGE;
			}
			mg.max = (unsigned int)v;
			break;
		}
		case 'c':
			g->config = optarg;
			g->sock = NULL;
			break;
		case 'S':
			g->sock = optarg;
			break;
		case 'D':
			mg.dir = optarg;
			break;
		case 'h':
		case 'H':
			usage_merge(g->prog);
			return opt == 'H' ? 0 : EX_USAGE;
		default:
			usage_merge(g->prog);
			return EX_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage_merge(g->prog);
		return EX_USAGE;
	}
	tname = argv[optind];
	cname = argv[optind + 1];
	mg.csvname = cname;

	/* The template. */
	if (read_file(tname, &tbuf)) {
		fprintf(stderr, "%s: %s: %s\n", g->prog, tname, strerror(errno));
		ret = EX_NOINPUT;
		goto out;
	}
	if (dc_template_parse(&t, tbuf.p, tbuf.len, err, sizeof(err))) {
		fprintf(stderr, "%s:%s\n", tname, err);
		ret = EX_DATAERR;
		goto out;
	}
	bad_line = dc_header_check(t.text, strlen(t.text));
	if (bad_line) {
		fprintf(stderr, "%s:%u: not a header field (the template is header "
			"fields, an empty line, then the body)\n", tname, bad_line);
		ret = EX_DATAERR;
		goto out;
	}

	/* The CSV's header row. */
	cf = strcmp(cname, "-") ? fopen(cname, "r") : stdin;
	if (!cf) {
		fprintf(stderr, "%s: %s: %s\n", g->prog, cname, strerror(errno));
		ret = EX_NOINPUT;
		goto out;
	}
	dc_csv_init(&csv, cf);
	r = dc_csv_next(&csv, &line, err, sizeof(err));
	if (r <= 0) {
		fprintf(stderr, "%s:%lu: %s\n", cname, r ? line : 1UL,
			r ? err : "no header row (the first row names the columns)");
		ret = EX_DATAERR;
		goto out_csv;
	}
	ncol = csv.nfield;
	cols = dc_xmalloc(ncol * sizeof(*cols));
	for (i = 0; i < ncol; i++)
		cols[i] = dc_xstrdup(csv.field[i]);
	for (i = 0; i < ncol && rcol < 0; i++) {
		char *s = trim_dup(cols[i]);

		if (s && !strcasecmp(s, rcol_name))
			rcol = (int)i;
		free(s);
	}
	if (rcol < 0) {
		fprintf(stderr, "%s:%lu: no column \"%s\" for the recipient address%s\n",
			cname, line, rcol_name, strcmp(rcol_name, "email") ? "" : " (see -r)");
		ret = EX_DATAERR;
		goto out_csv;
	}
	if (dc_template_bind(&t, cols, ncol, err, sizeof(err))) {
		fprintf(stderr, "%s:%s\n", tname, err);
		ret = EX_DATAERR;
		goto out_csv;
	}

	/* The envelope sender, if fixed. */
	dc_default_sender(g->hostname, defsender, sizeof(defsender));
	if (sender) {
		if (!*sender || !strcmp(sender, "<>"))
			env_sender = dc_xstrdup("");
		else if (!(env_sender = dc_addr_one(sender)) || !dc_addr_valid(env_sender)) {
			fprintf(stderr, "%s: bad sender address: \"%s\"\n", g->prog, sender);
			ret = EX_DATAERR;
			goto out_csv;
		}
	}

	if (mg.dir) {
		if (mkdir(mg.dir, 0755) && errno != EEXIST) {
			fprintf(stderr, "%s: %s: %s\n", g->prog, mg.dir, strerror(errno));
			ret = EX_CANTCREAT;
			goto out_csv;
		}
	} else {
		/* Connect first: nothing is worth reading if deliverd is not there. */
		ret = dc_open(g, &mg.c);
		if (ret)
			goto out_csv;
		mg.connected = true;
	}
	mg.batch = calloc(mg.max, sizeof(*mg.batch));
	if (!mg.batch)
		exit(EX_OSERR);

	for (;;) {
		struct dc_prep prep = { 0 };
		struct dc_hdrinfo info;
		struct mrow *row;
		char *addr;

		r = dc_csv_next(&csv, &line, err, sizeof(err));
		if (!r)
			break;
		rowno++;
		if (r < 0) {
			fprintf(stderr, "%s:%lu: %s\n", cname, line, err);
			mg.bad++;
			continue;
		}
		if (csv.nfield != ncol) {
			fprintf(stderr, "%s:%lu: %u fields, the header has %u\n", cname, line,
				csv.nfield, ncol);
			mg.bad++;
			continue;
		}
		addr = dc_addr_one(csv.field[rcol]);
		if (!addr || !dc_addr_valid(addr)) {
			char *s = trim_dup(csv.field[rcol]);

			if (s && *s)
				fprintf(stderr, "%s:%lu: bad recipient address \"%s\"\n", cname,
					line, s);
			else
				fprintf(stderr, "%s:%lu: no recipient address (column \"%s\")\n",
					cname, line, rcol_name);
			free(s);
			free(addr);
			mg.bad++;
			continue;
		}
		filled.len = 0;
		if (dc_template_fill(&t, csv.field, csv.nfield, &filled, err, sizeof(err))) {
			fprintf(stderr, "%s:%lu: %s\n", cname, line, err);
			free(addr);
			mg.bad++;
			continue;
		}
		norm.len = 0;
		dc_crlf(filled.p ? filled.p : "", filled.len, &norm);
		row = &mg.batch[mg.n];
		snprintf(tag, sizeof(tag), "%lu", rowno);
		prep.hostname = g->hostname;
		prep.from = env_sender && *env_sender ? env_sender : defsender;
		prep.msgid_tag = tag;
		dc_prepare(&prep, norm.p ? norm.p : "", norm.len, &row->data, &info);
		if (env_sender) {
			row->sender = dc_xstrdup(env_sender);
		} else if (!info.had_from) {
			row->sender = dc_xstrdup(defsender);
		} else if (info.from_addr && dc_addr_valid(info.from_addr)) {
			row->sender = dc_xstrdup(info.from_addr);
		} else {
			fprintf(stderr, "%s:%lu: the From: field has no single valid address "
				"for the envelope sender (use -f)\n", cname, line);
			dc_hdrinfo_free(&info);
			free(addr);
			free_row(row);
			mg.bad++;
			continue;
		}
		row->eightbit = info.eightbit;
		row->rcpt[0] = addr;
		row->line = line;
		dc_hdrinfo_free(&info);
		if (++mg.n == mg.max) {
			flush_batch(&mg);
			if (mg.dead)
				break;
		}
	}
	if (!mg.dead)
		flush_batch(&mg);
	if (mg.dead) {
		/* What was read but not sent, then stop: rerun from line. */
		fprintf(stderr, "%s: cannot reconnect; rows from %s:%lu on were not sent\n",
			g->prog, cname, mg.n ? mg.batch[0].line : line);
		for (i = 0; i < mg.n; i++)
			free_row(&mg.batch[i]);
		mg.failed += mg.n;
		mg.tempfail = true;
	}
	if (mg.connected)
		dc_smtp_quit(&mg.c);
	fprintf(stderr, "merge: %lu sent, %lu bad rows, %lu failed%s%s%s\n", mg.sent,
		mg.bad, mg.failed, mg.dir ? " (dry run: " : "", mg.dir ? mg.dir : "",
		mg.dir ? ")" : "");
	if (mg.tempfail)
		ret = EX_TEMPFAIL;
	else if (mg.bad || mg.failed)
		ret = mg.dir && mg.failed ? EX_CANTCREAT : EX_DATAERR;
	free(mg.batch);
out_csv:
	dc_csv_free(&csv);
	if (cf && cf != stdin)
		fclose(cf);
out:
	for (i = 0; i < ncol; i++)
		free(cols[i]);
	free(cols);
	free(env_sender);
	dc_template_free(&t);
	dc_buf_free(&tbuf);
	dc_buf_free(&filled);
	dc_buf_free(&norm);
	return ret;
}
