// SPDX-License-Identifier: GPL-2.0
/*
 * waitstat: context switches and event-wait time, per process and per
 * thread, from sched_switch and the raw syscall tracepoints.
 *
 * For poll, select, epoll, io_uring_enter and the evq wait ioctl it
 * splits each call into the time it spent on the CPU (the "poll
 * overhead") and the time it slept, and counts the events it returned.
 * Measures every process, one (-p), or a command it runs (after --),
 * until Ctrl-C, the end of the process, or -c reports of -i seconds.
 *
 * This file: options, loading the BPF programs, running the command,
 * the report loop and the programs' own run-time statistics.
 * waitstat_interval.c turns the maps into figures, waitstat_report.c
 * prints them.
 */
#define _GNU_SOURCE
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/types.h>
#include <linux/evq.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "waitstat.h"
#include "waitstat_report.h"
#include "waitstat.skel.h"

#define VMLINUX_BTF	"/sys/kernel/btf/vmlinux"
/* How long the last report waits for the target's final switch-out. */
#define EXIT_SETTLE_NS	(1000 * 1000000LL)

static struct env {
	pid_t pid;		/* -p */
	double interval;	/* -i, seconds; 0: one report at the end */
	unsigned long count;	/* -c; 0: no limit */
	bool threads;
	bool hists;
	bool json;
	bool verbose;
	char **cmd;		/* after -- */
} env;

static volatile sig_atomic_t got_signal;
/* Sent with kill() rather than typed at the terminal the command shares. */
static volatile sig_atomic_t signal_from_user;

const char *argp_program_version = "waitstat 1.0";
static const char doc[] =
"Context switches and event-wait time (poll, select, epoll, io_uring,\n"
"evq), per process and thread, with the wait calls' time split into\n"
"on-CPU (overhead) and off-CPU (sleeping).  Needs root (CAP_BPF,\n"
"CAP_PERFMON; CAP_SYS_ADMIN for its own run-time figures).\n"
"\v"
"Examples:\n"
"  waitstat                      every process, one report at Ctrl-C\n"
"  waitstat -p 1234 -i 1         pid 1234, a report a second\n"
"  waitstat -t -H -- ./server    run ./server; threads and histograms\n"
"  waitstat -j -i 5 -c 12 -p 99  a minute of JSON lines, one per 5 s\n"
"\n"
"With a command, waitstat ends when it does and exits with its status\n"
"(128 + N if signal N killed it); a signal sent to waitstat is passed on\n"
"to it (Ctrl-C reaches both).  With -p, it ends when the process does.\n"
"Exit status otherwise: 0; 1 on error (no such process, BPF\n"
"unavailable); 2 on bad options.  Documentation/probes.rst has more.\n";

static const struct argp_option options[] = {
	{ "pid", 'p', "PID", 0, "Measure this process only", 0 },
	{ "interval", 'i', "SECS", 0, "Report every SECS seconds", 0 },
	{ "count", 'c', "COUNT", 0, "Stop after COUNT reports (with -i)", 0 },
	{ "threads", 't', NULL, 0, "A row per thread too", 0 },
	{ "histograms", 'H', NULL, 0, "Histograms of events per wait", 0 },
	{ "json", 'j', NULL, 0, "One JSON object per report and line", 0 },
	{ "verbose", 'v', NULL, 0, "libbpf's debug output", 0 },
	/* argp's own is -?; -h is what users of the other tools type. */
	{ NULL, 'h', NULL, OPTION_HIDDEN, "Give this help list", 0 },
	{},
};

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	char *end;

	switch (key) {
	case 'p':
		errno = 0;
		env.pid = strtol(arg, &end, 10);
		if (errno || *end || env.pid <= 0)
			argp_error(state, "invalid pid: %s", arg);
		break;
	case 'i':
		errno = 0;
		env.interval = strtod(arg, &end);
		if (errno || *end || !isfinite(env.interval) ||
		    env.interval < 0.01 || env.interval > 86400)
			argp_error(state, "invalid interval: %s", arg);
		break;
	case 'c':
		errno = 0;
		env.count = strtoul(arg, &end, 10);
		if (errno || *end || !env.count || *arg == '-')
			argp_error(state, "invalid count: %s", arg);
		break;
	case 't':
		env.threads = true;
		break;
	case 'H':
		env.hists = true;
		break;
	case 'j':
		env.json = true;
		break;
	case 'v':
		env.verbose = true;
		break;
	case 'h':
		argp_state_help(state, stdout, ARGP_HELP_STD_HELP);
		break;
	case ARGP_KEY_ARGS:
		env.cmd = state->argv + state->next;
		break;
	case ARGP_KEY_END:
		if (env.pid && env.cmd)
			argp_error(state, "-p and a command exclude each other");
		if (env.count && !env.interval)
			argp_error(state, "-c needs -i");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG && !env.verbose)
		return 0;
	if (level == LIBBPF_WARN && !env.verbose)
		return 0;	/* our own message says what failed */
	return vfprintf(stderr, fmt, ap);
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_signal = sig;
	signal_from_user = si->si_code <= 0;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The syscalls that wait for events, by number, for the BPF side. */
static void fill_kinds(volatile __u8 *kind)
{
	static const struct { long nr; __u8 kind; } tab[] = {
#ifdef SYS_poll
		{ SYS_poll, WS_KIND_POLL },
#endif
		{ SYS_ppoll, WS_KIND_POLL },
#ifdef SYS_select
		{ SYS_select, WS_KIND_SELECT },
#endif
		{ SYS_pselect6, WS_KIND_SELECT },
#ifdef SYS_epoll_wait
		{ SYS_epoll_wait, WS_KIND_EPOLL },
#endif
		{ SYS_epoll_pwait, WS_KIND_EPOLL },
#ifdef SYS_epoll_pwait2
		{ SYS_epoll_pwait2, WS_KIND_EPOLL },
#else
		{ 441, WS_KIND_EPOLL },	/* every architecture's number */
#endif
		{ SYS_io_uring_enter, WS_KIND_URING },
		{ SYS_ioctl, WS_KIND_IOCTL },
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].nr >= 0 && tab[i].nr < WS_NR_SYSCALLS)
			kind[tab[i].nr] = tab[i].kind;
}

/*
 * Fork the command, held on a pipe until the programs are attached so
 * that none of its work escapes them.  Returns the pid; *go is the pipe
 * to write (and close) to let it exec.
 */
static pid_t spawn_held(char **cmd, int *go)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[1]);
		/* EOF without a byte: waitstat gave up. */
		if (read(p[0], &c, 1) != 1)
			_exit(127);
		execvp(cmd[0], cmd);
		fprintf(stderr, "waitstat: cannot run %s: %s\n", cmd[0],
			strerror(errno));
		_exit(127);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

/* Shell convention: the exit code, or 128 + the signal that killed it. */
static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static int collect_prog_stats(struct waitstat *skel, bool stats_ok,
			      struct ws_report_info *info)
{
	struct bpf_program *prog;
	int n = 0;

	info->stats_ok = stats_ok;
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);

		if (n == WS_MAX_PROGS)
			break;
		info->progs[n].name = bpf_program__name(prog);
		if (!bpf_obj_get_info_by_fd(bpf_program__fd(prog), &pi, &len)) {
			info->progs[n].run_cnt = pi.run_cnt;
			info->progs[n].run_time_ns = pi.run_time_ns;
		}
		n++;
	}
	info->nprogs = n;
	return n;
}

/*
 * Wait until the target's main thread has left the CPU for the last
 * time: it is reaped (pidfd readable, waitpid) a moment before its final
 * switch-out, which we want counted.
 */
static void settle_exit(int threads_fd, __u32 pid)
{
	long long deadline = now_ns() + EXIT_SETTLE_NS;
	struct ws_thread th;

	while (now_ns() < deadline) {
		if (bpf_map_lookup_elem(threads_fd, &pid, &th) || th.exited)
			return;
		usleep(1000);
	}
}

static void release_child(int *go)
{
	if (*go >= 0 && write(*go, "", 1) != 1)
		perror("waitstat: releasing the command");
	if (*go >= 0)
		close(*go);
	*go = -1;
}

static int bpf_unavailable(const char *what, int err)
{
	fprintf(stderr, "waitstat: BPF unavailable: %s: %s%s\n", what,
		strerror(-err), err == -EPERM || err == -EACCES ?
		" (run as root: CAP_BPF and CAP_PERFMON are needed)" : "");
	return 1;
}

/* One run of waitstat: what it measures and what it holds open. */
struct session {
	struct waitstat *skel;
	int stats_fd;		/* keeps BPF run-time stats on, or -1 */
	int pidfd;		/* the target, to see it end; or -1 */
	int go;			/* the held command's pipe, or -1 */
	pid_t child;		/* the command, until reaped */
	struct ws_reporter rep;
	struct ws_report_info info;
};

/* The process to measure: -p's, or the command, forked and held. */
static int start_target(struct session *s)
{
	if (env.pid) {
		s->pidfd = pidfd_open(env.pid, 0);
		if (s->pidfd < 0) {
			fprintf(stderr, "waitstat: no process with pid %d: %s\n",
				env.pid, strerror(errno));
			return 1;
		}
	}
	if (access(VMLINUX_BTF, R_OK)) {
		fprintf(stderr, "waitstat: BPF unavailable: this kernel has no "
			"BTF (%s): CONFIG_DEBUG_INFO_BTF is needed\n",
			VMLINUX_BTF);
		return 1;
	}
	if (!env.cmd)
		return 0;
	s->child = spawn_held(env.cmd, &s->go);
	if (s->child < 0) {
		s->child = 0;
		perror("waitstat: fork");
		return 1;
	}
	env.pid = s->child;
	s->pidfd = pidfd_open(s->child, 0);
	if (s->pidfd < 0) {
		perror("waitstat: pidfd_open");
		return 1;
	}
	return 0;
}

static int load_probes(struct session *s)
{
	int err;

	libbpf_set_print(libbpf_print);
	s->skel = waitstat__open();
	if (!s->skel)
		return bpf_unavailable("cannot open the BPF object", -errno);
	s->skel->rodata->target_tgid = env.pid;
	s->skel->rodata->evq_wait_cmd = EVQ_IOC_WAIT;
	fill_kinds(s->skel->rodata->syscall_kind);
	err = waitstat__load(s->skel);
	if (err)
		return bpf_unavailable("cannot load the BPF programs", err);
	/* Kept while this fd is open; before attaching, to count every run. */
	s->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (s->stats_fd < 0 && env.verbose)
		fprintf(stderr, "waitstat: no run-time stats: %s\n",
			strerror(-s->stats_fd));
	err = waitstat__attach(s->skel);
	if (err)
		return bpf_unavailable("cannot attach the BPF programs", err);
	return 0;
}

/* The target ended: reap the command, let its last switch be counted. */
static void target_ended(struct session *s)
{
	struct rusage ru;
	int status;

	if (s->child && wait4(s->child, &status, 0, &ru) == s->child) {
		s->info.exit_status = exit_code(status);
		s->info.cmd_nvcsw = ru.ru_nvcsw;
		s->info.cmd_nivcsw = ru.ru_nivcsw;
		s->child = 0;
	}
	settle_exit(bpf_map__fd(s->skel->maps.threads), env.pid);
	close(s->pidfd);
	s->pidfd = -1;
}

/*
 * SIGINT and SIGTERM stay blocked except inside ppoll(), so one that
 * comes between take_signal() and the wait interrupts the wait instead
 * of setting a flag nobody looks at until the target ends by itself.
 */
static sigset_t wait_mask;

static int poll_signals(struct pollfd *pfd, nfds_t n, int timeout_ms)
{
	struct timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (timeout_ms % 1000) * 1000000L,
	};

	return ppoll(pfd, n, timeout_ms < 0 ? NULL : &ts, &wait_mask);
}

/* A signal ends the reports; a command gets it and we wait for its end. */
static bool take_signal(struct session *s)
{
	bool end = got_signal && !s->child;

	/* From the terminal, the command has it already. */
	if (got_signal && s->child && signal_from_user)
		kill(s->child, got_signal);
	got_signal = 0;
	return end;
}

/* Report every -i seconds, or once, until the target or a signal ends. */
static int report_loop(struct session *s)
{
	long long start = now_ns(), last = start, step, next;
	unsigned long reports = 0;
	bool done = false;
	int err;

	step = (long long)(env.interval * 1e9);
	next = step ? start + step : 0;
	while (!done) {
		struct pollfd pfd = { .fd = s->pidfd, .events = POLLIN };
		long long now = now_ns();
		int timeout = -1, n;

		if (next)
			timeout = now < next ? (next - now + 999999) / 1000000 : 0;
		n = poll_signals(&pfd, s->pidfd >= 0, timeout);
		if (n < 0 && errno != EINTR) {
			perror("waitstat: poll");
			return 1;
		}
		done = take_signal(s);
		if (n > 0 && (pfd.revents & POLLIN)) {
			target_ended(s);
			done = true;
		}
		now = now_ns();
		if (!done && (!next || now < next))
			continue;
		s->info.final = done || (env.count && reports + 1 == env.count);
		s->info.interval_s = (now - last) / 1e9;
		s->info.elapsed_s = (now - start) / 1e9;
		collect_prog_stats(s->skel, s->stats_fd >= 0, &s->info);
		err = ws_report(&s->rep, &s->info);
		if (err) {
			fprintf(stderr, "waitstat: reading the maps: %s\n",
				strerror(-err));
			return 1;
		}
		reports++;
		last = now;
		while (next && next <= now)
			next += step;
		done = s->info.final;
	}
	return 0;
}

/* -c ended the reports before the command: it still decides the status. */
static int wait_command(struct session *s)
{
	int status;

	waitstat__detach(s->skel);
	for (;;) {
		struct pollfd pfd = { .fd = s->pidfd, .events = POLLIN };

		if (poll_signals(&pfd, 1, -1) < 0 && errno != EINTR) {
			perror("waitstat: poll");
			return 1;
		}
		take_signal(s);
		if (pfd.revents & POLLIN)
			break;
	}
	while (waitpid(s->child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitstat: waitpid");
			return 1;
		}
	}
	s->child = 0;
	return exit_code(status);
}

static void session_close(struct session *s)
{
	ws_reporter_fini(&s->rep);
	if (s->stats_fd >= 0)
		close(s->stats_fd);
	if (s->go >= 0)
		close(s->go);	/* the held command sees EOF and leaves */
	if (s->child > 0)
		waitpid(s->child, NULL, 0);
	if (s->pidfd >= 0)
		close(s->pidfd);
	waitstat__destroy(s->skel);
}

int main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = options, .parser = parse_arg, .doc = doc,
		.args_doc = "[-- COMMAND [ARG...]]",
	};
	struct sigaction sa = {
		.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO,
	};
	struct session s = {
		.stats_fd = -1, .pidfd = -1, .go = -1,
		.info = { .exit_status = -1, .cmd_nvcsw = -1, .cmd_nivcsw = -1 },
	};
	struct ws_report_opts ropts;
	sigset_t block;
	int ret;

	argp_err_exit_status = 2;
	if (argp_parse(&argp, argc, argv, 0, NULL, NULL))
		return 2;
	ret = start_target(&s);
	if (!ret)
		ret = load_probes(&s);
	if (ret)
		goto out;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ropts = (struct ws_report_opts){
		.threads = env.threads, .hists = env.hists, .json = env.json,
		.pid = env.pid,
	};
	ws_reporter_init(&s.rep, &ropts, bpf_map__fd(s.skel->maps.threads),
			 bpf_map__fd(s.skel->maps.waits), stdout);
	release_child(&s.go);
	if (!env.json && !env.interval && !env.cmd)
		fprintf(stderr, "waitstat: measuring; Ctrl-C to end\n");
	ret = report_loop(&s);
	if (!ret)
		ret = s.child ? wait_command(&s) : s.info.exit_status >= 0 ?
		      s.info.exit_status : 0;
out:
	session_close(&s);
	return ret;
}
