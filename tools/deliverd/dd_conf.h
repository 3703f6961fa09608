/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Configuration: a file of "name = value" lines ('#' starts a comment,
 * blank lines ignored), then command-line overrides "-o name=value", over
 * built-in defaults that are safe (loopback only).  Every setting is in
 * the table in dd_conf.c with its documentation, which `deliverd
 * --settings` prints and Documentation/deliverd.rst repeats.
 */
#ifndef DD_CONF_H
#define DD_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include "dd_smtpc.h"

#define DD_NET_MAX	64
#define DD_LISTEN_MAX	8

struct dd_net {			/* an allowed network, address and prefix */
	struct sockaddr_storage addr;
	unsigned int prefix;
};

struct dd_conf {
	/* daemon */
	char *spool_dir;		/* spool_dir = /var/spool/deliverd */
	char *control_socket;		/* control_socket = (spool_dir)/control */
	char *hostname;			/* hostname = (gethostname) */
	unsigned int threads;		/* threads = 0 (one per online CPU) */
	char *backend;			/* backend = auto | evq | epoll */
	char *log_file;			/* log_file = (empty: stderr) */
	char *log_level;		/* log_level = info (error|warning|info|debug) */
	char *delivery_log;		/* delivery_log = (spool_dir)/delivery.log ("-": stderr, "none") */
	char *user;			/* user = (empty: stay) drop to it after binding */
	/* injection */
	char *listen;			/* listen = 127.0.0.1:2525 (comma list; "none") */
	char *allow_networks;		/* allow_networks = 127.0.0.0/8, ::1/128 */
	struct dd_net nets[DD_NET_MAX];	/* parsed from allow_networks */
	unsigned int nnets;
	struct sockaddr_storage listen_addr[DD_LISTEN_MAX];	/* parsed from listen */
	unsigned int nlisten;
	unsigned int line_length_limit;	/* 1000 */
	uint64_t message_size_limit;	/* 10485760 */
	unsigned int recipient_limit;	/* 1000 */
	unsigned int connection_limit;	/* 1000: inbound, whole daemon */
	unsigned int error_limit;	/* 20 bad commands then 421 */
	unsigned int smtpd_timeout;	/* 300 s per inbound command line */
	/* spool */
	uint64_t segment_size;		/* 67108864 */
	unsigned int commit_max;	/* 4096 */
	unsigned int commit_delay_us;	/* 0 */
	bool fsync;			/* yes */
	/* delivery */
	char *routes_file;		/* routes_file = /etc/deliverd/routes */
	char *helo_name;		/* helo_name = (hostname) */
	bool pipelining;		/* yes: use PIPELINING when offered */
	bool chunking;			/* yes: use BDAT when offered */
	unsigned int dest_concurrency;	/* 20 connections per destination */
	unsigned int dest_rate;		/* 0: messages per second per destination, 0 = no limit */
	unsigned int conn_max_msgs;	/* 100 messages per connection */
	unsigned int conn_idle;		/* 2 s an idle connection waits for more */
	unsigned int timeout[DD_STAGE_NR];	/* connect_timeout 30, greeting_timeout 300, ... */
	unsigned int retry_min;		/* 60 s: first backoff */
	unsigned int retry_max;		/* 3600 s: backoff ceiling */
	unsigned int max_age;		/* 432000 s: then bounce */
	unsigned int dest_backoff;	/* 60 s: an unreachable destination's first pause */
	char *bounce_from;		/* bounce_from = MAILER-DAEMON@(hostname) */
	/* DNS */
	char *dns_servers;		/* dns_servers = (empty: /etc/resolv.conf) */
	unsigned int dns_timeout;	/* 5 s per try */
	bool ipv6;			/* yes: connect over IPv6 too */
	unsigned int mx_port;		/* 25: port MX hosts are connected on */
	/* TLS */
	char *tls_policy;		/* tls_policy = may (none|may|encrypt|verify) */
	char *tls_policy_file;		/* "domain policy" lines */
	char *tls_ca_file;		/* (empty: the system store) */
	char *tls_ca_path;
	bool ktls;			/* yes: kernel TLS after the handshake */
	/* DKIM */
	char *dkim_keys_file;		/* "domain selector algorithm keyfile" lines */
	char *dkim_headers;		/* header fields signed, ':'-separated */
	/* shaping */
	unsigned int dest_conn_rate;	/* 0: new connections per second per destination */
	unsigned int mx_concurrency;	/* 0: connections per MX host (per thread) */
	char *shaping_file;		/* per destination / MX host overrides */
	char *throttle_patterns;	/* '|'-separated globs on "CODE ENH TEXT" */
	unsigned int throttle_hold;	/* 60 s at reduced limits before recovery */
	/* metrics */
	char *metrics_listen;		/* metrics_listen = none (address:port) */
	struct sockaddr_storage metrics_addr;	/* parsed; AF_UNSPEC: none */
};

/* Defaults into c (allocated strings).  0 or -ENOMEM. */
int dd_conf_init(struct dd_conf *c);
/*
 * Apply a file (path may be NULL: none) then overrides ("name=value"
 * each).  On error returns -EINVAL and writes "FILE:LINE: message" (or
 * "-o ...: message") to err; c keeps the defaults for what failed.
 */
int dd_conf_load(struct dd_conf *c, const char *path, char *const *overrides,
		 unsigned int noverrides, char *err, size_t errlen);
/* One setting; the same checks. */
int dd_conf_set(struct dd_conf *c, const char *name, const char *value,
		char *err, size_t errlen);
/* Derived fields (paths under spool_dir, parsed nets/listen) and checks. */
int dd_conf_finish(struct dd_conf *c, char *err, size_t errlen);
void dd_conf_free(struct dd_conf *c);
/* Every setting with its default and documentation (deliverd --settings). */
void dd_conf_print_settings(FILE *f);
/* The same as reStructuredText (tools/deliverd/settings.rst.txt). */
void dd_conf_print_rst(FILE *f);
/* The settings in effect, "name = value" (deliverd --print-config). */
void dd_conf_print(const struct dd_conf *c, FILE *f);
/* Is this peer (AF_INET/AF_INET6, v4-mapped handled) in allow_networks? */
bool dd_conf_allowed(const struct dd_conf *c, const struct sockaddr *sa);

#endif /* DD_CONF_H */
