// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd's configuration.
 *
 * Every setting is one row of the table below: name, type, where it goes
 * in struct dd_conf, its default (the text dd_conf_init() parses), the
 * default as documented (when it is derived), and its documentation.
 * `deliverd --settings` prints the table; dd_conf_print_rst() prints it as
 * reStructuredText, which is tools/deliverd/settings.rst.txt (the test
 * checks the two are the same).
 *
 * File syntax: "name = value" lines.  '#' anywhere starts a comment that
 * runs to the end of the line (so no value can contain '#').  Space
 * around name and value is dropped; blank lines are ignored.  A setting
 * given twice takes the last value.  Command-line overrides apply after
 * the file.
 *
 * Values: bool yes|no|true|false|on|off|1|0 (any case); uint a decimal
 * number; size a decimal number with an optional k, M or G (1024-based,
 * any case); seconds a decimal number with an optional s, m, h or d.
 */
#include "dd_conf.h"
#include "dd_dns.h"
#include "dd_lines.h"
#include "dd_log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum conf_type { T_STRING, T_UINT, T_UINT64, T_BOOL, T_SIZE, T_SECONDS };

struct setting {
	const char *name;
	enum conf_type type;
	size_t off;
	const char *def;	/* parsed by dd_conf_init() */
	const char *shown;	/* the default as documented, if not def */
	uint64_t min, max;	/* numbers */
	const char *choices;	/* strings: "a|b|c", or NULL for any */
	const char *group;	/* heading of the documentation */
	const char *doc;
};

#define OFF(f)		offsetof(struct dd_conf, f)
#define TIMEOUT(s)	(offsetof(struct dd_conf, timeout) + (s) * sizeof(unsigned int))
#define U32		UINT_MAX

static const struct setting settings[] = {
	/* daemon */
	{ "spool_dir", T_STRING, OFF(spool_dir), "/var/spool/deliverd", NULL,
	  0, 0, NULL, "Daemon",
	  "Directory of the spool (segments and journals); also the default "
	  "place of the control socket and the delivery log." },
	{ "control_socket", T_STRING, OFF(control_socket), "",
	  "(spool_dir)/control", 0, 0, NULL, "Daemon",
	  "Unix socket deliverctl talks to." },
	{ "hostname", T_STRING, OFF(hostname), "", "(gethostname)",
	  0, 0, NULL, "Daemon",
	  "This host's name: Reporting-MTA of bounces, our Received: lines, "
	  "and the default of helo_name and bounce_from." },
	{ "threads", T_UINT, OFF(threads), "0", NULL, 0, 1024, NULL, "Daemon",
	  "Event-loop threads; 0 means one per online CPU.  At most 1024." },
	{ "backend", T_STRING, OFF(backend), "auto", NULL, 0, 0,
	  "auto|evq|epoll", "Daemon",
	  "Event backend: evq (the module, /dev/evq), epoll, or auto (evq "
	  "when the module is loaded, else epoll)." },
	{ "log_file", T_STRING, OFF(log_file), "", "(empty: stderr)",
	  0, 0, NULL, "Daemon",
	  "File the daemon log is appended to; empty for stderr." },
	{ "log_level", T_STRING, OFF(log_level), "info", NULL, 0, 0,
	  "error|warning|info|debug", "Daemon",
	  "Least important level of daemon log lines written: error, "
	  "warning, info or debug." },
	{ "delivery_log", T_STRING, OFF(delivery_log), "",
	  "(spool_dir)/delivery.log", 0, 0, NULL, "Daemon",
	  "File of the delivery log (one JSON object per line per delivery "
	  "attempt per recipient); \"-\" for stderr, \"none\" for no log." },
	{ "user", T_STRING, OFF(user), "", "(empty: stay)", 0, 0, NULL, "Daemon",
	  "User to switch to, for good and with no capability left, after "
	  "binding the listening sockets and opening the spool (with that "
	  "user's file access); empty to keep running as the starting user." },
	/* injection */
	{ "listen", T_STRING, OFF(listen), "127.0.0.1:2525", NULL, 0, 0, NULL,
	  "Injection",
	  "Addresses the SMTP injection server listens on: a comma-separated "
	  "list of numeric address:port, IPv6 as [address]:port (at most 8); "
	  "\"none\" for no listener." },
	{ "allow_networks", T_STRING, OFF(allow_networks), "127.0.0.0/8, ::1/128",
	  NULL, 0, 0, NULL, "Injection",
	  "Networks allowed to inject mail: comma- or space-separated CIDR "
	  "blocks, IPv4 or IPv6 (a bare address is one host; at most 64).  "
	  "IPv4 peers on an IPv6 socket (v4-mapped) match the IPv4 blocks.  "
	  "\"none\" or empty allows nobody." },
	{ "line_length_limit", T_UINT, OFF(line_length_limit), "1000", NULL,
	  512, 1048576, NULL, "Injection",
	  "Longest SMTP command line accepted, CRLF included (at least 512, "
	  "RFC 5321 4.5.3.1.4)." },
	{ "message_size_limit", T_SIZE, OFF(message_size_limit), "10485760",
	  NULL, 1024, UINT64_MAX, NULL, "Injection",
	  "Largest message accepted, in bytes; announced with SIZE." },
	{ "recipient_limit", T_UINT, OFF(recipient_limit), "1000", NULL,
	  1, U32, NULL, "Injection",
	  "Most recipients in one message; RCPT beyond it gets 452." },
	{ "connection_limit", T_UINT, OFF(connection_limit), "1000", NULL,
	  1, U32, NULL, "Injection",
	  "Most inbound connections open at once, for the whole daemon." },
	{ "error_limit", T_UINT, OFF(error_limit), "20", NULL, 1, U32, NULL,
	  "Injection",
	  "Bad commands a client may send before it gets 421 and is "
	  "disconnected." },
	{ "smtpd_timeout", T_SECONDS, OFF(smtpd_timeout), "300", NULL, 1, U32,
	  NULL, "Injection",
	  "Seconds an inbound client may take to complete one command line, "
	  "DATA line or 4 KiB of BDAT, or to take its replies, before it gets "
	  "421 4.4.2 and is disconnected (RFC 5321 4.5.3.2.7)." },
	/* spool */
	{ "segment_size", T_SIZE, OFF(segment_size), "67108864", NULL,
	  65536, UINT64_MAX, NULL, "Spool",
	  "A spool segment is closed and a new one started once it is past "
	  "this size, in bytes." },
	{ "commit_max", T_UINT, OFF(commit_max), "4096", NULL, 1, U32, NULL,
	  "Spool", "Most messages made durable in one group commit." },
	{ "commit_delay_us", T_UINT, OFF(commit_delay_us), "0", NULL,
	  0, 1000000, NULL, "Spool",
	  "Microseconds the committer waits for more messages before it "
	  "syncs; 0 syncs at once." },
	{ "fsync", T_BOOL, OFF(fsync), "yes", NULL, 0, 0, NULL, "Spool",
	  "Sync the spool before accepting a message (250 after DATA).  "
	  "\"no\" loses accepted mail on a crash: for tests only." },
	/* delivery */
	{ "routes_file", T_STRING, OFF(routes_file), "/etc/deliverd/routes",
	  NULL, 0, 0, NULL, "Delivery",
	  "Static routes: \"domain host:port\" lines (a leading dot matches "
	  "the subdomains, \"*\" every domain)." },
	{ "helo_name", T_STRING, OFF(helo_name), "", "(hostname)", 0, 0, NULL,
	  "Delivery", "Name sent with EHLO or HELO." },
	{ "pipelining", T_BOOL, OFF(pipelining), "yes", NULL, 0, 0, NULL,
	  "Delivery", "Use PIPELINING when the server offers it." },
	{ "chunking", T_BOOL, OFF(chunking), "yes", NULL, 0, 0, NULL,
	  "Delivery", "Use BDAT when the server offers CHUNKING." },
	{ "dest_concurrency", T_UINT, OFF(dest_concurrency), "20", NULL,
	  1, U32, NULL, "Delivery",
	  "Most connections open at once to one destination." },
	{ "dest_rate", T_UINT, OFF(dest_rate), "0", NULL, 0, U32, NULL,
	  "Delivery",
	  "Most messages per second to one destination; 0 for no limit." },
	{ "conn_max_msgs", T_UINT, OFF(conn_max_msgs), "100", NULL, 1, U32,
	  NULL, "Delivery",
	  "Messages sent over one connection before it is closed." },
	{ "conn_idle", T_SECONDS, OFF(conn_idle), "2", NULL, 0, U32, NULL,
	  "Delivery",
	  "Seconds an idle connection waits for more mail to its destination "
	  "before QUIT." },
	{ "retry_min", T_SECONDS, OFF(retry_min), "60", NULL, 1, U32, NULL,
	  "Delivery",
	  "Wait before the first retry of a deferred recipient; each retry "
	  "doubles it, up to retry_max." },
	{ "retry_max", T_SECONDS, OFF(retry_max), "3600", NULL, 1, U32, NULL,
	  "Delivery", "Longest wait between retries (at least retry_min)." },
	{ "max_age", T_SECONDS, OFF(max_age), "432000", NULL, 1, U32, NULL,
	  "Delivery",
	  "A recipient still not delivered this long after arrival fails "
	  "(status 4.4.7) and is bounced; 432000 is 5 days." },
	{ "dest_backoff", T_SECONDS, OFF(dest_backoff), "60", NULL, 1, U32,
	  NULL, "Delivery",
	  "First pause of a destination none of whose hosts can be reached; "
	  "doubles on each failure, up to retry_max." },
	{ "bounce_from", T_STRING, OFF(bounce_from), "", "MAILER-DAEMON@(hostname)",
	  0, 0, NULL, "Delivery",
	  "Address in the From: header of bounces (they are sent from the "
	  "null reverse-path)." },
	/* DNS */
	{ "dns_servers", T_STRING, OFF(dns_servers), "",
	  "(empty: /etc/resolv.conf)", 0, 0, NULL, "DNS",
	  "DNS servers for MX and address lookups: a comma-separated list of "
	  "address or address:port, IPv6 as [address]:port.  Domains with a "
	  "static route (routes_file) are not looked up." },
	{ "dns_timeout", T_SECONDS, OFF(dns_timeout), "5", NULL, 1, 300, NULL,
	  "DNS", "Seconds to wait for a DNS server's answer before trying "
	  "again or the next server." },
	{ "ipv6", T_BOOL, OFF(ipv6), "yes", NULL, 0, 0, NULL, "DNS",
	  "Connect to MX hosts over IPv6 as well as IPv4 (IPv6 first)." },
	{ "mx_port", T_UINT, OFF(mx_port), "25", NULL, 1, 65535, NULL, "DNS",
	  "Port MX hosts are connected on; change only for tests." },
	/* TLS */
	{ "tls_policy", T_STRING, OFF(tls_policy), "may", NULL, 0, 0,
	  "none|may|encrypt|verify", "TLS",
	  "STARTTLS for destinations without their own policy: \"none\" "
	  "never; \"may\" when offered, plain text otherwise and on a failed "
	  "handshake; \"encrypt\" required, certificate not checked; "
	  "\"verify\" required with a certificate valid for the MX host name "
	  "(or the route's host) from a trusted authority." },
	{ "tls_policy_file", T_STRING, OFF(tls_policy_file), "", "(empty: none)",
	  0, 0, NULL, "TLS",
	  "Per-destination policies: \"domain policy\" lines, domains matched "
	  "as in routes_file." },
	{ "tls_ca_file", T_STRING, OFF(tls_ca_file), "",
	  "(empty: the system store)", 0, 0, NULL, "TLS",
	  "PEM file of certificate authorities trusted for \"verify\"." },
	{ "tls_ca_path", T_STRING, OFF(tls_ca_path), "", "(empty: none)", 0, 0,
	  NULL, "TLS",
	  "Directory of hashed certificate authorities trusted for "
	  "\"verify\", in addition to tls_ca_file." },
	{ "ktls", T_BOOL, OFF(ktls), "yes", NULL, 0, 0, NULL, "TLS",
	  "Hand the TLS session to the kernel after the handshake (the tls "
	  "module), so bodies still go out with sendfile; when the kernel or "
	  "the cipher does not allow it, bodies are encrypted in userspace.  "
	  "The delivery log says which (body_io)." },
	/* DKIM */
	{ "dkim_keys_file", T_STRING, OFF(dkim_keys_file), "", "(empty: none)",
	  0, 0, NULL, "DKIM",
	  "Signing keys: \"domain selector algorithm keyfile\" lines, "
	  "algorithm rsa-sha256 or ed25519-sha256, keyfile a PEM private key.  "
	  "A message is signed with every key of its From: domain." },
	{ "dkim_headers", T_STRING, OFF(dkim_headers),
	  "from:to:cc:subject:date:message-id:reply-to:in-reply-to:references:"
	  "mime-version:content-type:content-transfer-encoding:list-id:"
	  "list-unsubscribe:list-unsubscribe-post", NULL, 0, 0, NULL, "DKIM",
	  "Header fields signed, ':'-separated; those present are signed once "
	  "more than they occur, so none can be added after signing." },
	/* shaping */
	{ "dest_conn_rate", T_UINT, OFF(dest_conn_rate), "0", NULL, 0, U32,
	  NULL, "Shaping",
	  "Most new connections per second to one destination; 0 for no "
	  "limit." },
	{ "mx_concurrency", T_UINT, OFF(mx_concurrency), "0", NULL, 0, U32,
	  NULL, "Shaping",
	  "Most connections open at once to one MX host from one thread, "
	  "whatever the domains it serves; 0 for no limit." },
	{ "shaping_file", T_STRING, OFF(shaping_file), "", "(empty: none)", 0, 0,
	  NULL, "Shaping",
	  "Limits for particular destinations or MX hosts: lines \"domain "
	  "key=value ...\" or \"mx:host key=value ...\" with keys "
	  "concurrency, conn_rate, msg_rate and max_msgs." },
	{ "throttle_patterns", T_STRING, OFF(throttle_patterns),
	  "421 *|4?? 4.7.* *|4?? * *rate limit*|4?? * *too many conn*|"
	  "4?? * *too many mess*|4?? * *try again later*|4?? * *throttl*",
	  NULL, 0, 0, NULL,
	  "Shaping",
	  "Replies that mean \"slow down\": '|'-separated shell patterns "
	  "matched without case against \"CODE ENH TEXT\" (ENH \"-\" when "
	  "the reply has none).  On a match the destination's concurrency and "
	  "message rate are halved (down to one connection)." },
	{ "throttle_hold", T_SECONDS, OFF(throttle_hold), "60", NULL, 1, U32,
	  NULL, "Shaping",
	  "Seconds a throttled destination stays at its reduced limits after "
	  "the last matching reply; then they grow back, one step each "
	  "throttle_hold." },
	/* metrics */
	{ "metrics_listen", T_STRING, OFF(metrics_listen), "none", NULL, 0, 0,
	  NULL, "Metrics",
	  "Address:port of the Prometheus text endpoint (GET /metrics), "
	  "meant for loopback; \"none\" for none." },
	/* timeouts, RFC 5321 4.5.3.2 */
	{ "connect_timeout", T_SECONDS, TIMEOUT(DD_STAGE_CONNECT), "30", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for a TCP connection." },
	{ "greeting_timeout", T_SECONDS, TIMEOUT(DD_STAGE_GREETING), "300",
	  NULL, 1, U32, NULL, "Timeouts",
	  "Seconds to wait for the server's 220 greeting." },
	{ "helo_timeout", T_SECONDS, TIMEOUT(DD_STAGE_EHLO), "300", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for the reply to EHLO or HELO." },
	{ "mail_timeout", T_SECONDS, TIMEOUT(DD_STAGE_MAIL), "300", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for the reply to MAIL." },
	{ "rcpt_timeout", T_SECONDS, TIMEOUT(DD_STAGE_RCPT), "300", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for the reply to RCPT." },
	{ "data_timeout", T_SECONDS, TIMEOUT(DD_STAGE_DATA), "120", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for the 354 reply to DATA." },
	{ "body_timeout", T_SECONDS, TIMEOUT(DD_STAGE_BODY), "180", NULL,
	  1, U32, NULL, "Timeouts",
	  "Seconds a write of the message body may make no progress." },
	{ "dot_timeout", T_SECONDS, TIMEOUT(DD_STAGE_DOT), "600", NULL,
	  1, U32, NULL, "Timeouts",
	  "Seconds to wait for the reply after the end of the body (final "
	  "\".\" or BDAT LAST)." },
	{ "rset_timeout", T_SECONDS, TIMEOUT(DD_STAGE_RSET), "300", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for the reply to RSET." },
	{ "quit_timeout", T_SECONDS, TIMEOUT(DD_STAGE_QUIT), "300", NULL,
	  1, U32, NULL, "Timeouts", "Seconds to wait for the reply to QUIT." },
};

#define NSETTINGS	(sizeof(settings) / sizeof(settings[0]))

static const struct setting *find(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (!strcmp(settings[i].name, name))
			return &settings[i];
	return NULL;
}

static void *field(struct dd_conf *c, const struct setting *s)
{
	return (char *)c + s->off;
}

static const void *cfield(const struct dd_conf *c, const struct setting *s)
{
	return (const char *)c + s->off;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return true;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Decimal digits then an optional one-letter unit from units/mult. */
static bool parse_num(const char *v, const char *units, const uint64_t *mult,
		      uint64_t *out)
{
	uint64_t n = 0, m = 1;
	const char *p = v;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	if (*p) {
		const char *u;

		if (!units || p[1])
			return false;
		u = strchr(units, *p);
		if (!u)
			return false;
		m = mult[u - units];
	}
	if (m != 1 && n > UINT64_MAX / m)
		return false;
	*out = n * m;
	return true;
}

static const char *type_desc(const struct setting *s)
{
	switch (s->type) {
	case T_BOOL:
		return "yes or no";
	case T_SIZE:
		return "a size in bytes, optionally with k, M or G";
	case T_SECONDS:
		return "seconds, optionally with s, m, h or d";
	default:
		return "a decimal number";
	}
}

static bool choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (*p) {
		const char *e = strchr(p, '|');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == n && !strncmp(p, v, n))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

/* value already trimmed.  0, -EINVAL or -ENOMEM with the message in msg. */
static int set_one(struct dd_conf *c, const struct setting *s,
		   const char *v, char *msg, size_t msglen)
{
	static const uint64_t size_mult[] = {
		1024, 1024, 1024 * 1024, 1024 * 1024,
		1024ULL * 1024 * 1024, 1024ULL * 1024 * 1024 };
	static const uint64_t sec_mult[] = { 1, 60, 3600, 86400 };
	uint64_t n = 0;
	bool ok, b;

	switch (s->type) {
	case T_STRING: {
		char **p = field(c, s), *d;

		if (s->choices && !choice_ok(s->choices, v)) {
			dd_errf(msg, msglen, "bad value for %s: '%s' (expected %s)",
			     s->name, v, s->choices);
			return -EINVAL;
		}
		d = strdup(v);
		if (!d) {
			dd_errf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
		free(*p);
		*p = d;
		return 0;
	}
	case T_BOOL:
		if (!parse_bool(v, &b)) {
			dd_errf(msg, msglen, "bad value for %s: '%s' (expected %s)",
			     s->name, v, type_desc(s));
			return -EINVAL;
		}
		*(bool *)field(c, s) = b;
		return 0;
	case T_UINT:
	case T_UINT64:
		ok = parse_num(v, NULL, NULL, &n);
		break;
	case T_SIZE:
		ok = parse_num(v, "kKmMgG", size_mult, &n);
		break;
	case T_SECONDS:
		ok = parse_num(v, "smhd", sec_mult, &n);
		break;
	default:
		ok = false;
	}
	if (!ok) {
		dd_errf(msg, msglen, "bad value for %s: '%s' (expected %s)",
		     s->name, v, type_desc(s));
		return -EINVAL;
	}
	if (n < s->min || n > s->max) {
		if (s->max == UINT64_MAX)
			dd_errf(msg, msglen,
			     "bad value for %s: '%s' (must be at least %llu)",
			     s->name, v, (unsigned long long)s->min);
		else
			dd_errf(msg, msglen,
			     "bad value for %s: '%s' (must be %llu to %llu)",
			     s->name, v, (unsigned long long)s->min,
			     (unsigned long long)s->max);
		return -EINVAL;
	}
	if (s->type == T_UINT64 || s->type == T_SIZE)
		*(uint64_t *)field(c, s) = n;
	else
		*(unsigned int *)field(c, s) = (unsigned int)n;
	return 0;
}

int dd_conf_init(struct dd_conf *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NSETTINGS; i++) {
		int r = set_one(c, &settings[i], settings[i].def, NULL, 0);

		if (r) {
			dd_conf_free(c);
			return r;
		}
	}
	/* Not in the table: the idle wait between transactions. */
	c->timeout[DD_STAGE_IDLE] = c->conn_idle;
	return 0;
}

void dd_conf_free(struct dd_conf *c)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (settings[i].type == T_STRING) {
			char **p = field(c, &settings[i]);

			free(*p);
			*p = NULL;
		}
	}
}

/* Trim space in place; returns the start. */
static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_nets(struct dd_conf *c, char *err, size_t errlen);
static int parse_listen(struct dd_conf *c, char *err, size_t errlen);

int dd_conf_set(struct dd_conf *c, const char *name, const char *value,
		char *err, size_t errlen)
{
	const struct setting *s = find(name);
	char *v;
	int r;

	if (!s) {
		dd_errf(err, errlen, "unknown setting '%s'", name);
		return -EINVAL;
	}
	v = strdup(value ? value : "");
	if (!v) {
		dd_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = set_one(c, s, trim(v), err, errlen);
	free(v);
	if (!r && s->off == OFF(conn_idle))
		c->timeout[DD_STAGE_IDLE] = c->conn_idle;
	/* Parsed lists are checked here too, so the error names the line. */
	if (!r && s->off == OFF(allow_networks))
		r = parse_nets(c, err, errlen);
	if (!r && s->off == OFF(listen))
		r = parse_listen(c, err, errlen);
	return r;
}

/* One "name = value" line (comment already cut), trimmed in place. */
static int apply_line(struct dd_conf *c, char *line, char *msg, size_t msglen)
{
	char *eq, *name, *value;
	const struct setting *s;
	int r;

	eq = strchr(line, '=');
	if (!eq) {
		dd_errf(msg, msglen, "expected 'name = value', got '%s'", line);
		return -EINVAL;
	}
	*eq = '\0';
	name = trim(line);
	value = trim(eq + 1);
	if (!*name) {
		dd_errf(msg, msglen, "missing setting name before '='");
		return -EINVAL;
	}
	s = find(name);
	if (!s) {
		dd_errf(msg, msglen, "unknown setting '%s'", name);
		return -EINVAL;
	}
	r = set_one(c, s, value, msg, msglen);
	if (!r && s->off == OFF(conn_idle))
		c->timeout[DD_STAGE_IDLE] = c->conn_idle;
	/* Parsed lists are checked here too, so the error names the line. */
	if (!r && s->off == OFF(allow_networks))
		r = parse_nets(c, msg, msglen);
	if (!r && s->off == OFF(listen))
		r = parse_listen(c, msg, msglen);
	return r;
}

/* One "name = value" line of the settings file into arg. */
static int conf_line(void *arg, char *line, unsigned int lineno, char *msg,
		     size_t msglen)
{
	char *t = trim(line);

	(void)lineno;
	/* trim() takes any isspace(), more than dd_lines_read() skips */
	if (!*t)
		return 0;
	return apply_line(arg, t, msg, msglen);
}

int dd_conf_load(struct dd_conf *c, const char *path, char *const *overrides,
		 unsigned int noverrides, char *err, size_t errlen)
{
	char msg[512];
	int r;

	if (path) {
		r = dd_lines_read(path, conf_line, c, err, errlen);
		if (r)
			return r;
	}
	for (unsigned int i = 0; i < noverrides; i++) {
		char *o = strdup(overrides[i]);

		if (!o) {
			dd_errf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		if (!strchr(o, '=')) {
			dd_errf(err, errlen, "-o %s: expected name=value", overrides[i]);
			free(o);
			return -EINVAL;
		}
		r = apply_line(c, trim(o), msg, sizeof(msg));
		free(o);
		if (r) {
			dd_errf(err, errlen, "-o %s: %s", overrides[i], msg);
			return r;
		}
	}
	return 0;
}

/* --- networks and listen addresses --- */

static bool parse_addr(const char *s, struct sockaddr_storage *ss,
		       unsigned int *bits)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		*bits = 32;
		return true;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*bits = 128;
		return true;
	}
	return false;
}

static int parse_nets(struct dd_conf *c, char *err, size_t errlen)
{
	char *copy, *tok, *save = NULL;
	int r = 0;

	c->nnets = 0;
	if (!c->allow_networks || !strcmp(c->allow_networks, "none"))
		return 0;
	copy = strdup(c->allow_networks);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		struct dd_net *n = &c->nets[c->nnets];
		char *slash = strchr(tok, '/');
		unsigned int bits;
		uint64_t prefix;

		if (c->nnets == DD_NET_MAX) {
			dd_errf(err, errlen, "allow_networks: more than %d networks",
			     DD_NET_MAX);
			r = -EINVAL;
			break;
		}
		if (slash)
			*slash = '\0';
		if (!parse_addr(tok, &n->addr, &bits)) {
			dd_errf(err, errlen, "allow_networks: bad address '%s'", tok);
			r = -EINVAL;
			break;
		}
		prefix = bits;
		if (slash && (!parse_num(slash + 1, NULL, NULL, &prefix) ||
			      prefix > bits)) {
			dd_errf(err, errlen, "allow_networks: bad prefix length in '%s/%s'",
			     tok, slash + 1);
			r = -EINVAL;
			break;
		}
		n->prefix = (unsigned int)prefix;
		c->nnets++;
	}
	free(copy);
	if (r)
		c->nnets = 0;
	return r;
}

static int parse_listen(struct dd_conf *c, char *err, size_t errlen)
{
	char *copy, *tok, *save = NULL;
	int r = 0;

	c->nlisten = 0;
	if (!c->listen || !strcmp(c->listen, "none"))
		return 0;
	copy = strdup(c->listen);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		struct sockaddr_storage *ss = &c->listen_addr[c->nlisten];
		char *host = tok, *port;
		unsigned int bits;
		uint64_t pn;

		if (c->nlisten == DD_LISTEN_MAX) {
			dd_errf(err, errlen, "listen: more than %d addresses",
			     DD_LISTEN_MAX);
			r = -EINVAL;
			break;
		}
		if (*host == '[') {
			char *close = strchr(host, ']');

			if (!close || close[1] != ':') {
				dd_errf(err, errlen, "listen: bad address '%s' "
				     "(expected [ipv6]:port)", tok);
				r = -EINVAL;
				break;
			}
			*close = '\0';
			host++;
			port = close + 2;
		} else {
			port = strrchr(host, ':');
			if (!port) {
				dd_errf(err, errlen, "listen: bad address '%s' "
				     "(expected address:port)", tok);
				r = -EINVAL;
				break;
			}
			*port++ = '\0';
		}
		if (!parse_addr(host, ss, &bits) ||
		    (ss->ss_family == AF_INET6 && host == tok)) {
			dd_errf(err, errlen, "listen: bad address '%s' (numeric "
			     "only, IPv6 in brackets)", host);
			r = -EINVAL;
			break;
		}
		if (!parse_num(port, NULL, NULL, &pn) || pn < 1 || pn > 65535) {
			dd_errf(err, errlen, "listen: bad port '%s'", port);
			r = -EINVAL;
			break;
		}
		if (ss->ss_family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)pn);
		else
			((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)pn);
		c->nlisten++;
	}
	free(copy);
	if (r)
		c->nlisten = 0;
	return r;
}

/* metrics_listen: one address:port ([ipv6]:port), or "none". */
static int parse_metrics(struct dd_conf *c, char *err, size_t errlen)
{
	const char *v = c->metrics_listen ? c->metrics_listen : "none";
	char host[INET6_ADDRSTRLEN + 2], *port;
	struct sockaddr_storage *ss = &c->metrics_addr;
	unsigned int bits, i;
	uint64_t pn;
	size_t n = strlen(v);

	memset(ss, 0, sizeof(*ss));
	if (!strcmp(v, "none"))
		return 0;
	if (n >= sizeof(host))
		goto bad;
	memcpy(host, v, n + 1);
	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (!close || close[1] != ':')
			goto bad;
		*close = '\0';
		port = close + 2;
		if (!parse_addr(host + 1, ss, &bits) ||
		    ss->ss_family != AF_INET6)
			goto bad;
	} else {
		port = strrchr(host, ':');
		if (!port)
			goto bad;
		*port++ = '\0';
		if (!parse_addr(host, ss, &bits) || ss->ss_family != AF_INET)
			goto bad;
	}
	if (!parse_num(port, NULL, NULL, &pn) || pn < 1 || pn > 65535)
		goto bad;
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)pn);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)pn);
	/* Said here rather than as "address in use" at the start. */
	for (i = 0; i < c->nlisten; i++) {
		if (!memcmp(&c->listen_addr[i], ss, sizeof(*ss))) {
			dd_errf(err, errlen, "metrics_listen: %s is also in "
				"listen", v);
			memset(ss, 0, sizeof(*ss));
			return -EINVAL;
		}
	}
	return 0;
bad:
	dd_errf(err, errlen, "metrics_listen: bad address '%s' (expected "
		"numeric address:port, [ipv6]:port or none)", v);
	memset(ss, 0, sizeof(*ss));
	return -EINVAL;
}

/* *p = a + b (freeing the old *p). */
static int derive(char **p, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (!s)
		return -ENOMEM;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	free(*p);
	*p = s;
	return 0;
}

static bool empty(const char *s)
{
	return !s || !*s;
}

int dd_conf_finish(struct dd_conf *c, char *err, size_t errlen)
{
	int r;

	if (empty(c->spool_dir)) {
		dd_errf(err, errlen, "spool_dir: must not be empty");
		return -EINVAL;
	}
	if (empty(c->hostname)) {
		char h[256];

		if (gethostname(h, sizeof(h)) < 0 || !h[0])
			strcpy(h, "localhost");
		h[sizeof(h) - 1] = '\0';
		if (derive(&c->hostname, h, ""))
			goto nomem;
	}
	if (empty(c->helo_name) && derive(&c->helo_name, c->hostname, ""))
		goto nomem;
	if (empty(c->bounce_from) &&
	    derive(&c->bounce_from, "MAILER-DAEMON@", c->hostname))
		goto nomem;
	if (empty(c->control_socket) &&
	    derive(&c->control_socket, c->spool_dir, "/control"))
		goto nomem;
	if (empty(c->delivery_log) &&
	    derive(&c->delivery_log, c->spool_dir, "/delivery.log"))
		goto nomem;

	r = parse_nets(c, err, errlen);
	if (r == -ENOMEM)
		goto nomem;
	if (r)
		return r;
	r = parse_listen(c, err, errlen);
	if (r == -ENOMEM)
		goto nomem;
	if (r)
		return r;
	r = parse_metrics(c, err, errlen);
	if (r)
		return r;

	/* Fields may have been set directly: check them all again. */
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		const void *f = cfield(c, s);
		uint64_t n;

		switch (s->type) {
		case T_STRING:
			if (s->choices && !choice_ok(s->choices,
						     *(char *const *)f ? *(char *const *)f : "")) {
				dd_errf(err, errlen, "%s: must be one of %s",
				     s->name, s->choices);
				return -EINVAL;
			}
			continue;
		case T_BOOL:
			continue;
		case T_UINT64:
		case T_SIZE:
			n = *(const uint64_t *)f;
			break;
		default:
			n = *(const unsigned int *)f;
		}
		if (n < s->min || n > s->max) {
			dd_errf(err, errlen, "%s: %llu is out of range", s->name,
			     (unsigned long long)n);
			return -EINVAL;
		}
	}
	if (c->retry_min > c->retry_max) {
		dd_errf(err, errlen, "retry_min (%u) is greater than retry_max (%u)",
		     c->retry_min, c->retry_max);
		return -EINVAL;
	}
	{
		/* A bad dns_servers would only show at the first lookup. */
		struct dd_dns_server sv[DD_DNS_SERVERS_MAX];

		if (dd_dns_servers_parse(c->dns_servers, sv, DD_DNS_SERVERS_MAX,
					 err, errlen) < 0)
			return -EINVAL;
	}
	c->timeout[DD_STAGE_IDLE] = c->conn_idle;
	return 0;
nomem:
	dd_errf(err, errlen, "out of memory");
	return -ENOMEM;
}

static bool prefix_match(const uint8_t *a, const uint8_t *net,
			 unsigned int bits)
{
	unsigned int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, net, bytes))
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff00 >> rest);

		return ((a[bytes] ^ net[bytes]) & mask) == 0;
	}
	return true;
}

bool dd_conf_allowed(const struct dd_conf *c, const struct sockaddr *sa)
{
	const uint8_t *v4 = NULL, *v6 = NULL;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		v6 = a->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			v4 = a->s6_addr + 12;
	} else {
		return false;
	}
	for (unsigned int i = 0; i < c->nnets; i++) {
		const struct dd_net *n = &c->nets[i];

		if (n->addr.ss_family == AF_INET && v4 &&
		    prefix_match(v4, (const uint8_t *)&((const struct sockaddr_in *)&n->addr)->sin_addr,
				 n->prefix))
			return true;
		if (n->addr.ss_family == AF_INET6 && v6 &&
		    prefix_match(v6, ((const struct sockaddr_in6 *)&n->addr)->sin6_addr.s6_addr,
				 n->prefix))
			return true;
	}
	return false;
}

static const char *type_name(enum conf_type t)
{
	switch (t) {
	case T_STRING:	return "string";
	case T_UINT:	return "number";
	case T_UINT64:	return "number";
	case T_BOOL:	return "boolean";
	case T_SIZE:	return "size";
	case T_SECONDS:	return "seconds";
	}
	return "?";
}

static const char *shown_default(const struct setting *s)
{
	return s->shown ? s->shown : s->def;
}

/* doc wrapped to width, each line after indent. */
static void print_wrapped(FILE *f, const char *indent, const char *text,
			  size_t width)
{
	const char *p = text;

	while (*p) {
		size_t len = strlen(p), cut = len;

		if (len > width) {
			cut = width;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (!cut) {
				cut = strcspn(p, " ");
			}
		}
		fprintf(f, "%s%.*s\n", indent, (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

void dd_conf_print_settings(FILE *f)
{
	const char *group = NULL;

	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (!group || strcmp(group, s->group)) {
			fprintf(f, "%s# %s\n", group ? "\n" : "", s->group);
			group = s->group;
		}
		fprintf(f, "%s = %s\t(%s)\n", s->name, shown_default(s),
			s->choices ? s->choices : type_name(s->type));
		print_wrapped(f, "\t", s->doc, 66);
	}
}

void dd_conf_print_rst(FILE *f)
{
	const char *group = NULL;

	fputs(".. Generated from the settings table in tools/deliverd/dd_conf.c\n"
	      "   (dd_conf_print_rst); tests/dd_conf_test.c checks they match.\n"
	      "\n"
	      "Settings\n"
	      "========\n"
	      "\n"
	      "The configuration file holds ``name = value`` lines; ``#`` "
	      "starts a\n"
	      "comment, blank lines are ignored and a setting given twice "
	      "takes the\n"
	      "last value.  ``-o name=value`` on the command line overrides the "
	      "file.\n"
	      "Booleans are ``yes``/``no``, ``true``/``false``, ``on``/``off`` "
	      "or\n"
	      "``1``/``0``; sizes take an optional ``k``, ``M`` or ``G`` "
	      "(1024-based);\n"
	      "durations are seconds, with an optional ``s``, ``m``, ``h`` or "
	      "``d``.\n"
	      "An unknown name or a bad value stops the daemon with "
	      "``FILE:LINE:`` and\n"
	      "the reason.  ``deliverd --settings`` prints this list, and\n"
	      "``deliverd --print-config`` the values in effect.\n", f);
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		const char *d = shown_default(s);

		if (!group || strcmp(group, s->group)) {
			fprintf(f, "\n%s\n", s->group);
			for (size_t k = strlen(s->group); k; k--)
				fputc('-', f);
			fputc('\n', f);
			group = s->group;
		}
		if (s->choices)
			fprintf(f, "\n``%s`` (one of ``%s``, default ", s->name,
				s->choices);
		else
			fprintf(f, "\n``%s`` (%s, default ", s->name,
				type_name(s->type));
		if (*d == '(')
			fprintf(f, "%s)\n", d);
		else
			fprintf(f, "``%s``)\n", d);
		print_wrapped(f, "   ", s->doc, 72);
	}
}

void dd_conf_print(const struct dd_conf *c, FILE *f)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		const void *p = cfield(c, s);

		switch (s->type) {
		case T_STRING: {
			const char *v = *(char *const *)p;

			fprintf(f, "%s = %s\n", s->name, v ? v : "");
			break;
		}
		case T_BOOL:
			fprintf(f, "%s = %s\n", s->name,
				*(const bool *)p ? "yes" : "no");
			break;
		case T_UINT64:
		case T_SIZE:
			fprintf(f, "%s = %llu\n", s->name,
				(unsigned long long)*(const uint64_t *)p);
			break;
		default:
			fprintf(f, "%s = %u\n", s->name, *(const unsigned int *)p);
		}
	}
}
