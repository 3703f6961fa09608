// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd: an outbound mail-delivery daemon on libevq.
 *
 * The main thread reads the configuration, binds the listeners and the
 * control socket, drops privileges, opens the spool (which rebuilds the
 * index and hands every waiting message to the workers' mailboxes), starts
 * one event-loop thread per CPU and then only waits for a signal.
 * Documentation/deliverd.rst is the admin guide.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dd_core.h"
#include "dd_dkim.h"
#include "dd_log.h"
#include "dd_tls.h"
#include "dd_shape.h"

#define MAX_OVERRIDES	128

static void usage(FILE *f)
{
	fprintf(f,
		"usage: deliverd [-c CONFIG] [-o name=value]... [--check]\n"
		"       deliverd --settings | --print-config [-c CONFIG]\n"
		"  -c, --config FILE   configuration (default /etc/deliverd/deliverd.conf if present)\n"
		"  -o name=value       override one setting (repeatable)\n"
		"      --check         validate the configuration and routes, then exit\n"
		"      --settings      list every setting with its default and meaning\n"
		"      --print-config  print the settings in effect\n"
		"Runs in the foreground; SIGTERM or SIGINT stops it cleanly.\n");
}

static int listen_tcp(const struct sockaddr_storage *ss)
{
	socklen_t len = ss->ss_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
			SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	/* One socket per worker: the kernel spreads connections over them. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 4096)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(path, 0660) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Every worker accepts on its own SO_REUSEPORT socket per address. */
static int open_listeners(void)
{
	unsigned int i, k;
	int fd;

	for (i = 0; i < dd_d.conf.nlisten; i++) {
		char name[80];

		dd_sockaddr_name(&dd_d.conf.listen_addr[i], name, sizeof(name));
		for (k = 0; k < dd_d.nworkers; k++) {
			struct dd_worker *w = &dd_d.w[k];
			struct dd_io *io = &w->listen_io[w->nlisten];

			fd = listen_tcp(&dd_d.conf.listen_addr[i]);
			if (fd < 0) {
				dd_err("listen on %s: %s", name, strerror(-fd));
				return fd;
			}
			io->fd = fd;
			io->kind = DD_IO_LISTEN;
			w->nlisten++;
		}
		dd_info("listening on %s", name);
	}
	if (dd_d.conf.control_socket[0]) {
		struct dd_worker *w = &dd_d.w[0];
		struct dd_io *io = &w->listen_io[w->nlisten];

		fd = listen_unix(dd_d.conf.control_socket);
		if (fd < 0) {
			dd_err("control socket %s: %s", dd_d.conf.control_socket,
			       strerror(-fd));
			return fd;
		}
		io->fd = fd;
		io->kind = DD_IO_LISTEN;
		io->ctl = true;
		w->nlisten++;
	}
	/* Bound here too: metrics_listen may be a privileged port. */
	return dd_metrics_open();
}

static int watch_listeners(void)
{
	unsigned int k, i;

	for (k = 0; k < dd_d.nworkers; k++) {
		struct dd_worker *w = &dd_d.w[k];

		for (i = 0; i < w->nlisten; i++) {
			int err = dd_worker_watch(w, &w->listen_io[i], EPOLLIN);

			if (err)
				return err;
		}
	}
	return 0;
}

static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (!user || !*user)
		return 0;
	pw = getpwnam(user);
	if (!pw) {
		dd_err("user %s: no such user", user);
		return -ENOENT;
	}
	/*
	 * Started as that user already (deliverd.service does so): nothing
	 * to give up, and no right to chown or setgroups anyway.
	 */
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
	    getgid() == pw->pw_gid && getegid() == pw->pw_gid)
		return 0;
	if (chown(dd_d.conf.spool_dir, pw->pw_uid, pw->pw_gid) ||
	    (dd_d.conf.control_socket[0] &&
	     chown(dd_d.conf.control_socket, pw->pw_uid, pw->pw_gid)) ||
	    setgroups(0, NULL) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) {
		dd_err("cannot become %s: %s", user, strerror(errno));
		return -errno;
	}
	dd_info("running as %s", user);
	return 0;
}

static void found(void *arg, struct dd_msg *msg)
{
	(void)arg;
	atomic_fetch_add(&dd_d.recovered, 1);
	dd_dispatch(msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "settings", no_argument, NULL, 'S' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *overrides[MAX_OVERRIDES];
	unsigned int nover = 0;
	const char *config = NULL;
	bool check = false, print = false;
	struct dd_spool_conf sc;
	char err[512], rerr[512];
	sigset_t sigs;
	int c, r, sig;

	while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			if (nover == MAX_OVERRIDES) {
				fprintf(stderr, "deliverd: too many -o\n");
				return 2;
			}
			overrides[nover++] = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'S':
			dd_conf_print_settings(stdout);
			return 0;
		case 'P':
			print = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!config && access("/etc/deliverd/deliverd.conf", R_OK) == 0)
		config = "/etc/deliverd/deliverd.conf";
	if (dd_conf_init(&dd_d.conf) ||
	    dd_conf_load(&dd_d.conf, config, overrides, nover, err,
			 sizeof(err)) ||
	    dd_conf_finish(&dd_d.conf, err, sizeof(err))) {
		fprintf(stderr, "deliverd: %s\n", err);
		return 1;
	}
	r = dd_routes_load(&dd_d.routes, dd_d.conf.routes_file, rerr,
			   sizeof(rerr));
	if (r && !(r == -ENOENT && !check)) {
		fprintf(stderr, "deliverd: %s\n", rerr);
		return 1;
	}
	/* Keys are read before dropping privileges: they may be root's. */
	if (dd_dkim_load(&dd_d.dkim, dd_d.conf.dkim_keys_file,
			 dd_d.conf.dkim_headers, rerr, sizeof(rerr))) {
		fprintf(stderr, "deliverd: %s\n", rerr);
		return 1;
	}
	/* Limits per destination and MX host (dd_shape.c). */
	if (dd_shape_load(&dd_shape_tab, dd_d.conf.shaping_file, err,
			  sizeof(err))) {
		fprintf(stderr, "deliverd: %s\n", err);
		return 1;
	}
	if (print) {
		dd_conf_print(&dd_d.conf, stdout);
		return 0;
	}
	if (check) {
		if (dd_tls_init(&dd_d.conf, true, rerr, sizeof(rerr))) {
			fprintf(stderr, "deliverd: %s\n", rerr);
			return 1;
		}
		fprintf(stderr, "deliverd: configuration ok, %u routes\n",
			dd_d.routes ? dd_routes_count(dd_d.routes) : 0);
		return 0;
	}
	if (dd_log_open(dd_d.conf.log_file, dd_d.conf.log_level)) {
		fprintf(stderr, "deliverd: cannot open log %s\n",
			dd_d.conf.log_file);
		return 1;
	}
	dd_log_thread("main");
	if (dd_tls_init(&dd_d.conf, false, rerr, sizeof(rerr))) {
		dd_err("%s", rerr);
		return 1;
	}
	if (dd_d.dkim)
		dd_info("DKIM: %u signing keys", dd_dkim_count(dd_d.dkim));
	if (!dd_d.routes) {
		dd_warn("routes file %s: %s; every domain goes to its MX hosts",
			dd_d.conf.routes_file, rerr);
		r = dd_routes_load(&dd_d.routes, "/dev/null", rerr, sizeof(rerr));
		if (r) {
			dd_err("%s", rerr);
			return 1;
		}
	}
	if (mkdir(dd_d.conf.spool_dir, 0750) && errno != EEXIST) {
		dd_err("spool_dir %s: %s", dd_d.conf.spool_dir, strerror(errno));
		return 1;
	}
	if (dd_dlog_open(dd_d.conf.delivery_log)) {
		dd_err("delivery_log %s: %s", dd_d.conf.delivery_log,
		       strerror(errno));
		return 1;
	}
	/* Signals go to the main thread only, which waits for them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	dd_d.start_ns = dd_mono_ns();
	if (dd_workers_init() || open_listeners() ||
	    drop_privileges(dd_d.conf.user))
		return 1;
	sc = (struct dd_spool_conf){
		.dir = dd_d.conf.spool_dir,
		.segment_size = dd_d.conf.segment_size,
		.commit_max = dd_d.conf.commit_max,
		.commit_delay_us = dd_d.conf.commit_delay_us,
		.fsync = dd_d.conf.fsync,
	};
	r = dd_spool_open(&dd_d.spool, &sc, found, NULL);
	if (r) {
		dd_err("spool %s: %s", dd_d.conf.spool_dir, strerror(-r));
		return 1;
	}
	dd_info("spool %s: %lu messages waiting", dd_d.conf.spool_dir,
		atomic_load(&dd_d.recovered));
	if (watch_listeners() || dd_workers_start()) {
		dd_err("cannot start the event loops");
		return 1;
	}
	dd_info("deliverd: ready (%u threads, backend %s, %u routes)",
		dd_d.nworkers, dd_d.kmod ? "evq" : "epoll",
		dd_routes_count(dd_d.routes));
	for (;;) {
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGHUP) {
			dd_log_open(dd_d.conf.log_file, dd_d.conf.log_level);
			dd_dlog_open(dd_d.conf.delivery_log);
			dd_info("logs reopened");
			continue;
		}
		break;
	}
	dd_info("signal %d: stopping", sig);
	dd_workers_stop();
	dd_tls_exit();
	dd_spool_close(dd_d.spool);
	dd_spool_free_msgs(dd_d.spool);
	if (dd_d.conf.control_socket[0])
		unlink(dd_d.conf.control_socket);
	dd_info("stopped");
	return 0;
}
