// SPDX-License-Identifier: GPL-2.0
/*
 * Addresses, message headers and `deliverctl submit` (sendmail).
 *
 * submit behaves as sendmail(8) does for the options programs use: the
 * message on standard input, LF or CRLF, ended by EOF or a line "."
 * unless -i/-oi; -t adds the To/Cc/Bcc recipients and removes Bcc; Date,
 * Message-ID and From are added when missing.  It exits 0 only once
 * deliverd answered 250 to the end of the message, which it sends only
 * when the message is durable in its spool.
 */
#define _GNU_SOURCE
#include "dc.h"

#include <ctype.h>
#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- addresses ---- */

/* RFC 5322 atext: what a display name may hold without quotes. */
static bool atext(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-/=?^_`{|}~", ch));
}

/* dd_wire's RFC 5321 check, the same the daemon applies on arrival. */
bool dc_addr_valid(const char *addr)
{
	return dd_wire_addr_check(addr, strlen(addr), 0) == 0;
}

static void add_addr(struct dd_buf *b, char ***v, unsigned int *n, unsigned int *added)
{
	char *s = dc_buf_str(b), *e;

	/* Drop an obsolete route: "@a,@b:local@domain". */
	if (*s == '@' && (e = strchr(s, ':')))
		s = e + 1;
	if (*s) {
		*v = dc_xrealloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = dc_xstrdup(s);
		(*added)++;
	}
	b->len = 0;
}

unsigned int dc_addr_list(const char *s, size_t len, char ***v, unsigned int *n)
{
	struct dd_buf item = { 0 }, angle = { 0 };
	unsigned int added = 0, depth = 0;
	bool quote = false, inangle = false, has_angle = false;
	size_t i;

	for (i = 0; i <= len; i++) {
		char ch = i < len ? s[i] : ',';
		struct dd_buf *dst = inangle ? &angle : &item;

		if (i == len && (quote || depth || inangle)) {
			/* Unbalanced: take what there is. */
			quote = inangle = false;
			depth = 0;
		}
		if (quote) {
			dc_buf_addc(dst, ch);
			if (ch == '\\' && i + 1 < len)
				dc_buf_addc(dst, s[++i]);
			else if (ch == '"')
				quote = false;
			continue;
		}
		if (depth) {
			if (ch == '\\')
				i++;
			else if (ch == '(')
				depth++;
			else if (ch == ')')
				depth--;
			continue;
		}
		switch (ch) {
		case '"':
			quote = true;
			dc_buf_addc(dst, ch);
			break;
		case '(':
			depth = 1;
			break;
		case ' ': case '\t': case '\r': case '\n':
			break;	/* outside quotes, blanks only separate tokens */
		case '<':
			if (!inangle) {
				inangle = has_angle = true;
				angle.len = 0;
			}
			break;
		case '>':
			inangle = false;
			break;
		case ':':
			if (inangle) {
				dc_buf_addc(dst, ch);	/* route */
				break;
			}
			item.len = 0;	/* "group name:" */
			break;
		case ',':
			if (inangle) {
				dc_buf_addc(dst, ch);	/* route */
				break;
			}
			/* fall through */
		case ';':
			if (has_angle)
				add_addr(&angle, v, n, &added);
			else
				add_addr(&item, v, n, &added);
			item.len = angle.len = 0;
			has_angle = false;
			break;
		default:
			dc_buf_addc(dst, ch);
			break;
		}
	}
	dc_buf_free(&item);
	dc_buf_free(&angle);
	return added;
}

char *dc_addr_one(const char *s)
{
	char **v = NULL, *r = NULL;
	unsigned int n = 0, i;

	dc_addr_list(s, strlen(s), &v, &n);
	if (n == 1)
		r = v[0];
	else
		for (i = 0; i < n; i++)
			free(v[i]);
	free(v);
	return r;
}

/* ---- messages ---- */

void dc_crlf(const char *in, size_t len, struct dd_buf *out)
{
	size_t i, run = 0;

	for (i = 0; i < len; i++) {
		if (in[i] != '\r' && in[i] != '\n')
			continue;
		dc_buf_add(out, in + run, i - run);
		dc_buf_add(out, "\r\n", 2);
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			i++;
		run = i + 1;
	}
	dc_buf_add(out, in + run, len - run);
	if (out->len && (out->len < 2 || memcmp(out->p + out->len - 2, "\r\n", 2)))
		dc_buf_add(out, "\r\n", 2);
}

/* Is [p, p+n) "name:" (ftext name)? */
static bool header_line(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != ':'; i++)
		if ((unsigned char)p[i] <= 32 || (unsigned char)p[i] >= 127)
			return false;
	return i > 0 && i < n;
}

static size_t line_end(const char *in, size_t len, size_t pos, size_t *next)
{
	const char *e = memmem(in + pos, len - pos, "\r\n", 2);

	if (!e) {
		*next = len;
		return len;
	}
	*next = (size_t)(e - in) + 2;
	return (size_t)(e - in);
}

unsigned int dc_header_check(const char *in, size_t len)
{
	size_t pos = 0, next, e;
	unsigned int line = 1;

	for (; pos < len; pos = next, line++) {
		e = line_end(in, len, pos, &next);
		if (e == pos)
			return 0;
		if (in[pos] == ' ' || in[pos] == '\t') {
			if (line == 1)
				return line;
			continue;
		}
		/* Allow placeholders in names: '{' and '}' are ftext anyway. */
		if (!header_line(in + pos, e - pos))
			return line;
	}
	return 0;
}

static bool name_is(const char *p, size_t n, const char *name)
{
	return n == strlen(name) && !strncasecmp(p, name, n);
}

void dc_prepare(const struct dc_prep *p, const char *in, size_t len,
		struct dd_buf *out, struct dc_hdrinfo *info)
{
	size_t pos = 0, next, e, i;
	bool sep = false, drop = false, any = false;
	const char *name = NULL;
	size_t nlen = 0, hstart = 0;
	char buf[512];

	memset(info, 0, sizeof(*info));
	for (i = 0; i < len; i++)
		if ((unsigned char)in[i] >= 0x80) {
			info->eightbit = true;
			break;
		}
	/* Header fields, each with its continuation lines. */
	for (;;) {
		bool cont = false;

		if (pos < len) {
			e = line_end(in, len, pos, &next);
			cont = any && (in[pos] == ' ' || in[pos] == '\t');
		}
		if (pos < len && cont) {
			if (!drop)
				dc_buf_add(out, in + pos, next - pos);
			pos = next;
			continue;
		}
		/* A field ended at pos: look at the whole of it. */
		if (name) {
			const char *v = in + hstart + nlen + 1;
			size_t vl = pos - (hstart + nlen + 1);

			if (name_is(name, nlen, "Date"))
				info->had_date = true;
			else if (name_is(name, nlen, "Message-ID"))
				info->had_msgid = true;
			else if (name_is(name, nlen, "From")) {
				char *s = strndup(v, vl);

				info->had_from = true;
				free(info->from_addr);
				info->from_addr = s ? dc_addr_one(s) : NULL;
				free(s);
			}
			if (p->want_rcpts && (name_is(name, nlen, "To") ||
					      name_is(name, nlen, "Cc") ||
					      name_is(name, nlen, "Bcc")))
				dc_addr_list(v, vl, &info->rcpt, &info->nrcpt);
			name = NULL;
		}
		if (pos >= len)
			break;
		if (e == pos) {
			sep = true;
			break;
		}
		if (!header_line(in + pos, e - pos))
			break;
		any = true;
		name = in + pos;
		nlen = (size_t)((const char *)memchr(in + pos, ':', e - pos) - name);
		hstart = pos;
		drop = p->drop_bcc && name_is(name, nlen, "Bcc");
		if (!drop)
			dc_buf_add(out, in + pos, next - pos);
		pos = next;
	}
	if (!info->had_from && p->from)
		dc_buf_printf(out, "From: %s\r\n", p->from);
	if (!info->had_date) {
		dc_date(time(NULL), buf, sizeof(buf));
		dc_buf_printf(out, "Date: %s\r\n", buf);
	}
	if (!info->had_msgid) {
		char tag[32];

		if (!p->msgid_tag)
			snprintf(tag, sizeof(tag), "%ld", (long)getpid());
		dc_msgid(p->msgid_tag ? p->msgid_tag : tag,
			 p->hostname ? p->hostname : dc_hostname(), buf, sizeof(buf));
		dc_buf_printf(out, "Message-ID: %s\r\n", buf);
	}
	/* The separator, then the body. */
	if (!sep)
		dc_buf_add(out, "\r\n", 2);
	dc_buf_add(out, in + pos, len - pos);
}

void dc_hdrinfo_free(struct dc_hdrinfo *h)
{
	unsigned int i;

	for (i = 0; i < h->nrcpt; i++)
		free(h->rcpt[i]);
	free(h->rcpt);
	free(h->from_addr);
	memset(h, 0, sizeof(*h));
}

void dc_date(int64_t t, char *buf, size_t len)
{
	dd_wire_date(buf, len, (time_t)t);
}

void dc_msgid(const char *tag, const char *host, char *buf, size_t len)
{
	static uint64_t seed;
	static unsigned int count;
	uint64_t r;

	if (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	/* splitmix64: distinct per call, unpredictable enough for ids */
	r = seed + 0x9e3779b97f4a7c15ULL * ++count;
	r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ULL;
	r = (r ^ (r >> 27)) * 0x94d049bb133111ebULL;
	r ^= r >> 31;
	snprintf(buf, len, "<%lld.%016llx.%s@%s>", (long long)time(NULL),
		 (unsigned long long)r, tag, host);
}

const char *dc_hostname(void)
{
	static char host[256];
	struct utsname u;

	if (!host[0]) {
		if (uname(&u) == 0 && u.nodename[0])
			dc_strlcpy(host, u.nodename, sizeof(host));
		else
			strcpy(host, "localhost");
	}
	return host;
}

static const char *user_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	const char *s;

	if (pw && pw->pw_name && *pw->pw_name)
		return pw->pw_name;
	s = getenv("LOGNAME");
	return s && *s ? s : "nobody";
}

void dc_default_sender(const char *host, char *buf, size_t len)
{
	snprintf(buf, len, "%s@%s", user_name(), host ? host : dc_hostname());
}

void dc_read_message(FILE *in, bool ignore_dots, struct dd_buf *out)
{
	struct dd_buf raw = { 0 };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool first = true;

	while ((n = getline(&line, &cap, in)) > 0) {
		size_t l = (size_t)n;

		if (line[l - 1] == '\n')
			l--;
		if (l && line[l - 1] == '\r')
			l--;
		if (!ignore_dots && l == 1 && line[0] == '.')
			break;
		if (first && l >= 5 && !memcmp(line, "From ", 5)) {
			first = false;
			continue;	/* an mbox separator, as sendmail drops it */
		}
		first = false;
		dc_buf_add(&raw, line, l);
		dc_buf_addc(&raw, '\n');
	}
	free(line);
	dc_crlf(raw.p ? raw.p : "", raw.len, out);
	dc_buf_free(&raw);
}

/* ---- connecting ---- */

int dc_open(struct dc_global *g, struct dc_conn *c)
{
	char err[512];
	int r;

	if (!g->sock && g->resolve) {
		r = g->resolve(g);
		if (r)
			return r;
	}
	r = dc_connect(c, g->sock, err, sizeof(err));
	if (!r)
		r = dc_smtp_hello(c, g->hostname ? g->hostname : dc_hostname(), err,
				  sizeof(err));
	if (r) {
		fprintf(stderr, "%s: %s\n", g->prog, err);
		dc_conn_close(c);
	}
	return r;
}

/* ---- submit ---- */

static void usage_submit(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-t] [-i|-oi] [-f sender] [-F fullname] [-B 7BIT|8BITMIME]\n"
		"       [-N never|success,failure,delay] [-R full|hdrs] [-V envid]\n"
		"       [-v] [-C config] [-S socket] [recipient ...] < message\n", prog);
}

/*
 * sendmail's DSN options as ESMTP parameters (RFC 3461): -N's list
 * upper-cased, -R's keyword, -V xtext-encoded.  The daemon checks them
 * and refuses the message (501) if they are wrong.  0 or EX_USAGE.
 */
static int dsn_params(const char *prog, const char *notify, const char *ret,
		      const char *envid, struct dd_buf *mail, struct dd_buf *rcpt)
{
	if (notify) {
		dc_buf_adds(rcpt, " NOTIFY=");
		for (const char *s = notify; *s; s++) {
			if ((unsigned char)*s <= ' ' || (unsigned char)*s > 126 ||
			    *s == '=') {
				fprintf(stderr, "%s: -N %s: never, or a list of "
					"success, failure, delay\n", prog, notify);
				return EX_USAGE;
			}
			dc_buf_addc(rcpt, (char)toupper((unsigned char)*s));
		}
	}
	if (ret) {
		if (strcasecmp(ret, "full") && strcasecmp(ret, "hdrs")) {
			fprintf(stderr, "%s: -R %s: full or hdrs\n", prog, ret);
			return EX_USAGE;
		}
		dc_buf_printf(mail, " RET=%s", strcasecmp(ret, "full") ? "HDRS" : "FULL");
	}
	if (envid) {
		dc_buf_adds(mail, " ENVID=");
		for (const char *s = envid; *s; s++) {
			unsigned char c = (unsigned char)*s;

			if (c < 33 || c > 126 || c == '+' || c == '=')
				dc_buf_printf(mail, "+%02X", c);
			else
				dc_buf_addc(mail, (char)c);
		}
	}
	return 0;
}

/* "Full Name" <addr>, quoting the name if it needs it. */
static void from_value(struct dd_buf *b, const char *name, const char *addr)
{
	const char *s;
	bool plain = true;

	if (!name || !*name) {
		dc_buf_adds(b, addr);
		return;
	}
	for (s = name; *s; s++)
		if (!atext((unsigned char)*s) && *s != ' ' && (unsigned char)*s < 0x80)
			plain = false;
	if (plain) {
		dc_buf_adds(b, name);
	} else {
		dc_buf_addc(b, '"');
		for (s = name; *s; s++) {
			if (*s == '"' || *s == '\\')
				dc_buf_addc(b, '\\');
			if (*s != '\r' && *s != '\n')
				dc_buf_addc(b, *s);
		}
		dc_buf_addc(b, '"');
	}
	dc_buf_printf(b, " <%s>", addr);
}

static void add_unique(char ***v, unsigned int *n, char *a)
{
	unsigned int i;

	for (i = 0; i < *n; i++)
		if (!strcmp((*v)[i], a)) {
			free(a);
			return;
		}
	*v = dc_xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = a;
}

int dc_submit_main(struct dc_global *g, int argc, char **argv)
{
	static const struct option lopt[] = {
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sender = NULL, *fullname = NULL;
	const char *notify = NULL, *retp = NULL, *envid = NULL;
	struct dd_buf mail_params = { 0 }, rcpt_params = { 0 };
	bool extract = false, ignore_dots = false, verbose = false, eightbit = false;
	char defsender[DC_ADDR_MAX + 64];
	char **rcpt = NULL, **args = NULL;
	unsigned int nrcpt = 0, nargs = 0, i, j;
	struct dd_buf raw = { 0 }, msg = { 0 }, from = { 0 };
	struct dc_hdrinfo info;
	struct dc_prep prep = { 0 };
	struct dc_conn c;
	struct dc_result res;
	struct dc_msg m;
	char *env_sender = NULL;
	int opt, ret = 0;

	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "f:r:F:tiB:o:N:R:V:vb:C:c:S:L:X:h:A:O:UGnm",
				  lopt, NULL)) != -1) {
		switch (opt) {
		case 'f':
		case 'r':
			sender = optarg;
			break;
		case 'F':
			fullname = optarg;
			break;
		case 't':
			extract = true;
			break;
		case 'i':
			ignore_dots = true;
			break;
		case 'o':
			if (!strcmp(optarg, "i"))
				ignore_dots = true;
			break;	/* other -oX: sendmail options with no meaning here */
		case 'B':
			if (!strcasecmp(optarg, "8BITMIME"))
				eightbit = true;
			else if (strcasecmp(optarg, "7BIT")) {
				fprintf(stderr, "%s: -B %s: 7BIT or 8BITMIME\n", g->prog, optarg);
				return EX_USAGE;
			}
			break;
		case 'b':
			if (strcmp(optarg, "m")) {
				fprintf(stderr, "%s: -b%s: only -bm (deliver mail) here; "
					"see deliverctl queue/flush\n", g->prog, optarg);
				return EX_USAGE;
			}
			break;
		case 'v':
			verbose = true;
			break;
		case 'C':
		case 'c':
			g->config = optarg;
			g->sock = NULL;
			break;
		case 'S':
			g->sock = optarg;
			break;
		case 'N':
			notify = optarg;
			break;
		case 'R':
			retp = optarg;
			break;
		case 'V':
			envid = optarg;
			break;
		case 'L': case 'X': case 'h':
		case 'A': case 'O': case 'U': case 'G': case 'n': case 'm':
			break;	/* accepted for compatibility, ignored */
		case 'H':
			usage_submit(g->prog);
			return 0;
		default:
			usage_submit(g->prog);
			return EX_USAGE;
		}
	}
	for (; optind < argc; optind++) {
		unsigned int before = nargs;

		dc_addr_list(argv[optind], strlen(argv[optind]), &args, &nargs);
		if (nargs == before) {
			fprintf(stderr, "%s: bad recipient address: \"%s\"\n", g->prog,
				argv[optind]);
			ret = EX_DATAERR;
			goto out;
		}
	}
	if (!extract && !nargs) {
		fprintf(stderr, "%s: no recipients (give some, or -t)\n", g->prog);
		ret = EX_USAGE;
		goto out;
	}
	ret = dsn_params(g->prog, notify, retp, envid, &mail_params, &rcpt_params);
	if (ret)
		goto out;

	/* Envelope sender. */
	if (sender) {
		if (!*sender || !strcmp(sender, "<>")) {
			env_sender = dc_xstrdup("");
		} else {
			env_sender = dc_addr_one(sender);
			if (!env_sender || !dc_addr_valid(env_sender)) {
				fprintf(stderr, "%s: bad sender address: \"%s\"\n", g->prog, sender);
				ret = EX_DATAERR;
				goto out;
			}
		}
	}
	dc_default_sender(g->hostname, defsender, sizeof(defsender));
	if (!env_sender)
		env_sender = dc_xstrdup(defsender);
	if (!fullname) {
		struct passwd *pw = getpwuid(getuid());

		if (pw && pw->pw_gecos && *pw->pw_gecos && *pw->pw_gecos != ',')
			fullname = strndupa(pw->pw_gecos, strcspn(pw->pw_gecos, ","));
	}
	from_value(&from, fullname, *env_sender ? env_sender : defsender);

	dc_read_message(stdin, ignore_dots, &raw);
	if (ferror(stdin)) {
		fprintf(stderr, "%s: reading the message: error\n", g->prog);
		ret = EX_IOERR;
		goto out;
	}
	prep.hostname = g->hostname;
	prep.from = dc_buf_str(&from);
	prep.want_rcpts = extract;
	prep.drop_bcc = extract;
	dc_prepare(&prep, raw.p ? raw.p : "", raw.len, &msg, &info);

	for (i = 0; i < nargs; i++)
		add_unique(&rcpt, &nrcpt, args[i]);
	free(args);
	args = NULL;
	nargs = 0;
	for (i = 0; i < info.nrcpt; i++) {
		add_unique(&rcpt, &nrcpt, info.rcpt[i]);
		info.rcpt[i] = NULL;
	}
	for (i = 0; i < nrcpt; i++)
		if (!dc_addr_valid(rcpt[i])) {
			fprintf(stderr, "%s: bad recipient address: \"%s\"\n", g->prog, rcpt[i]);
			ret = EX_DATAERR;
		}
	if (!nrcpt) {
		fprintf(stderr, "%s: no recipients%s\n", g->prog,
			extract ? " in To, Cc or Bcc" : "");
		ret = EX_DATAERR;
	}
	if (ret)
		goto out_info;

	if ((ret = dc_open(g, &c)))
		goto out_info;
	m = (struct dc_msg){ .sender = env_sender, .rcpt = rcpt, .nrcpt = nrcpt,
			     .data = msg.p, .len = msg.len,
			     .eightbit = eightbit || info.eightbit,
			     .mail_params = dc_buf_str(&mail_params),
			     .rcpt_params = dc_buf_str(&rcpt_params) };
	dc_smtp_send(&c, &m, 1, &res);
	if (res.code / 100 == 2) {
		for (j = 0; j < nrcpt; j++) {
			if (res.rcpt[j].code / 100 == 2)
				continue;
			fprintf(stderr, "%s: %s: %s\n", g->prog, rcpt[j], res.rcpt[j].text);
			if (ret != EX_TEMPFAIL)
				ret = dc_exit_for(res.rcpt[j].code);
		}
		if (ret)
			fprintf(stderr, "%s: queued for %u of %u recipients: %s\n",
				g->prog, res.nrcpt_ok, nrcpt, res.text);
		else if (verbose)
			fprintf(stderr, "%s: %d %s\n", g->prog, res.code, res.text);
	} else {
		fprintf(stderr, "%s: not queued: %d %s\n", g->prog, res.code, res.text);
		ret = dc_exit_for(res.code);
	}
	dc_result_free(&res);
	dc_smtp_quit(&c);
out_info:
	dc_hdrinfo_free(&info);
out:
	for (i = 0; i < nrcpt; i++)
		free(rcpt[i]);
	free(rcpt);
	for (i = 0; i < nargs; i++)
		free(args[i]);
	free(args);
	free(env_sender);
	dc_buf_free(&raw);
	dc_buf_free(&msg);
	dc_buf_free(&from);
	dc_buf_free(&mail_params);
	dc_buf_free(&rcpt_params);
	return ret;
}
