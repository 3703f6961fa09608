// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd: an outbound mail-delivery daemon on libevq.
 *
 * The main thread reads the configuration, binds the listeners and the
 * control socket, opens and locks the spool (which rebuilds the index and
 * hands every waiting message to the workers' mailboxes), then gives up
 * root and every capability for good, starts one event-loop thread per
 * CPU and then only waits for a signal.
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
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/capability.h>

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

/* The user named by the `user` setting, looked up before anything opens. */
struct dd_user {
	const char *name;
	uid_t uid;
	gid_t gid;
	bool become;	/* started as root: switch to it */
};

static int lookup_user(const char *name, struct dd_user *u)
{
	struct passwd *pw;

	*u = (struct dd_user){ .name = name };
	if (!name || !*name)
		return 0;
	pw = getpwnam(name);
	if (!pw) {
		dd_err("user %s: no such user", name);
		return -ENOENT;
	}
	if (!pw->pw_uid || !pw->pw_gid) {
		dd_err("user %s: has uid or gid 0; name an unprivileged user", name);
		return -EINVAL;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	/*
	 * Started as that user already (deliverd.service does so): there is
	 * no root to give up, only capabilities.  Started as another user
	 * that is not root, we could not switch: say so now.
	 */
	if (getuid() == u->uid && geteuid() == u->uid &&
	    getgid() == u->gid && getegid() == u->gid)
		return 0;
	if (geteuid() != 0) {
		dd_err("user %s: cannot become it, not started as root or as it",
		       name);
		return -EPERM;
	}
	u->become = true;
	return 0;
}

/*
 * Every capability out of every set, ambient ones included (a systemd
 * unit hands CAP_NET_BIND_SERVICE that way), once the sockets are bound.
 * capset(2) changes the calling thread only: it runs before any other
 * thread exists, or after setuid(2) already cleared the others.
 */
static int drop_caps(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	unsigned int i;
	bool any = false;

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) &&
	    errno != EINVAL) {
		dd_err("cannot clear the ambient capabilities: %s",
		       strerror(errno));
		return -errno;
	}
	if (syscall(SYS_capget, &h, d)) {
		dd_err("capget: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		any |= d[i].effective || d[i].permitted || d[i].inheritable;
	if (!any)
		return 0;	/* and no capset, which a sandbox may forbid */
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d)) {
		dd_err("cannot drop capabilities: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * While the spool and the delivery log open, root keeps its identity but
 * uses the user's for files: what gets created is the user's, and a
 * spool the user could not write fails here, at startup, not later.
 */
static int fs_identity(const struct dd_user *u)
{
	/* The control socket, bound as root, is the user's (deliverctl). */
	if (dd_d.conf.control_socket[0] &&
	    chown(dd_d.conf.control_socket, u->uid, u->gid)) {
		dd_err("control socket %s: chown: %s",
		       dd_d.conf.control_socket, strerror(errno));
		return -errno;
	}
	if (setgroups(0, NULL)) {
		dd_err("setgroups: %s", strerror(errno));
		return -errno;
	}
	setfsgid(u->gid);
	setfsuid(u->uid);
	if ((uid_t)setfsuid((uid_t)-1) != u->uid ||
	    (gid_t)setfsgid((gid_t)-1) != u->gid) {
		dd_err("cannot take %s's file-system identity", u->name);
		return -EPERM;
	}
	return 0;
}

/* For good: real, effective, saved and file-system ids, all threads. */
static int become(const struct dd_user *u)
{
	uid_t r, e, s;

	if (setresgid(u->gid, u->gid, u->gid) ||
	    setresuid(u->uid, u->uid, u->uid)) {
		dd_err("cannot become %s: %s", u->name, strerror(errno));
		return -errno;
	}
	if (drop_caps())
		return -EPERM;
	if (getresuid(&r, &e, &s) || r != u->uid || e != u->uid ||
	    s != u->uid || setuid(0) != -1 || setgid(0) != -1) {
		dd_err("still able to become root after switching to %s",
		       u->name);
		return -EPERM;
	}
	dd_info("running as %s (uid %u, gid %u), no capabilities", u->name,
		(unsigned int)u->uid, (unsigned int)u->gid);
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
	struct dd_user user;
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
	if (lookup_user(dd_d.conf.user, &user))
		return 1;
	/* A spool made here is the user's; one that exists is used as is. */
	if (!mkdir(dd_d.conf.spool_dir, 0750)) {
		if (user.become &&
		    chown(dd_d.conf.spool_dir, user.uid, user.gid)) {
			dd_err("spool_dir %s: chown: %s", dd_d.conf.spool_dir,
			       strerror(errno));
			return 1;
		}
	} else if (errno != EEXIST) {
		dd_err("spool_dir %s: %s", dd_d.conf.spool_dir, strerror(errno));
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
	if (dd_workers_init() || open_listeners())
		return 1;
	/*
	 * The sockets are bound: nothing below needs a privilege.  No exec
	 * may grant one again; a daemon not started as root loses its
	 * capabilities before the spool starts the committer thread.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		dd_err("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return 1;
	}
	if (geteuid() != 0 && drop_caps())
		return 1;
	if (user.become && fs_identity(&user))
		return 1;
	if (dd_dlog_open(dd_d.conf.delivery_log)) {
		dd_err("delivery_log %s: %s%s%s", dd_d.conf.delivery_log,
		       strerror(errno), user.become ? " as user " : "",
		       user.become ? user.name : "");
		return 1;
	}
	sc = (struct dd_spool_conf){
		.dir = dd_d.conf.spool_dir,
		.segment_size = dd_d.conf.segment_size,
		.commit_max = dd_d.conf.commit_max,
		.commit_delay_us = dd_d.conf.commit_delay_us,
		.fsync = dd_d.conf.fsync,
	};
	r = dd_spool_open(&dd_d.spool, &sc, found, NULL);
	if (r) {
		dd_err("spool %s: %s%s%s", dd_d.conf.spool_dir, strerror(-r),
		       user.become ? " as user " : "",
		       user.become ? user.name : "");
		return 1;
	}
	if (user.become && become(&user))
		return 1;
	if (geteuid() == 0)
		dd_warn("running as root: set user to an unprivileged one");
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
	dd_dlog_report_lost();
	dd_tls_exit();
	dd_spool_close(dd_d.spool);
	dd_spool_free_msgs(dd_d.spool);
	if (dd_d.conf.control_socket[0])
		unlink(dd_d.conf.control_socket);
	dd_info("stopped");
	return 0;
}
