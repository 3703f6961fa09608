// SPDX-License-Identifier: GPL-2.0
/*
 * waitstat_load: a load whose context switches and waits are known in
 * advance, for waitstat's tests to compare against.
 *
 *   sleep N        N nanosleeps of 1 ms: N voluntary context switches
 *   poll K J [N]   K poll() with a zero timeout on a pipe that is never
 *                  ready, then J with a 10 ms timeout: K + J calls, no
 *                  events, J x 10 ms asleep; N entries per call (1)
 *   epoll K J      the same with epoll_wait()
 *   select K J     the same with select()
 *   evqwait J      J EVQ_IOC_WAIT of 10 ms on an empty /dev/evq queue
 *   spin MS        spin MS ms on one CPU against a forked helper pinned
 *                  there too: they preempt each other, involuntarily
 *
 * Single-threaded (spin's helper is another process, left to init).
 * Its stdout is waitstat's, so it only writes to stderr: errors, and one
 * line at the end for the tests:
 *
 *   - the kernel's count of its switches (getrusage), voluntary and
 *     involuntary, at the start of main() and at the end of the work, so
 *     that start-up (exec, loading libraries: none when cached, tens when
 *     they come over 9p) can be told from the work;
 *   - its CPU time (CLOCK_PROCESS_CPUTIME_ID) at the same two points;
 *   - the wall time it measured around its wait calls, which is what the
 *     waits really took wherever timers fire late (a loaded host, TCG).
 *
 * Exit: 0, 1 on error, 2 on usage, 4 (skip) without /dev/evq.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <linux/evq.h>

#define WAIT_MS		10
#define EXIT_SKIP	4

static long long clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* Wall time inside the wait calls, measured around each. */
static long long waited_ns;

#define TIMED(call) ({						\
	long long __t0 = now_ns();					\
	int __r = (call);						\
	waited_ns += now_ns() - __t0;					\
	__r;								\
})

static int fail(const char *what)
{
	fprintf(stderr, "waitstat_load: %s: %s\n", what, strerror(errno));
	return 1;
}

static long count(const char *s)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || *end || n < 0 || n > 10000000) {
		fprintf(stderr, "waitstat_load: bad count: %s\n", s);
		exit(2);
	}
	return n;
}

static int do_sleep(long n)
{
	const struct timespec ms = { 0, 1000000 };

	while (n--)
		if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ms, NULL))
			return fail("clock_nanosleep");
	return 0;
}

/*
 * A pipe nobody writes to, write end kept open: its read end is never
 * readable and never hung up.  Returns the read end.
 */
static int never_ready(void)
{
	int p[2];

	if (pipe(p))
		return -1;
	return p[0];
}

/* A zero-timeout wait must return 0, a timed one time out with 0. */
static int check(int ret, const char *what)
{
	if (ret < 0)
		return fail(what);
	if (ret > 0) {
		fprintf(stderr, "waitstat_load: %s: %d ready on an idle pipe\n",
			what, ret);
		return 1;
	}
	return 0;
}

/*
 * n entries, all the same fd: the kernel polls and queues on each, so the
 * work inside the call (before the sleep and after it) grows with n.
 */
static int do_poll(long k, long j, long n)
{
	struct pollfd *pfd = calloc(n ?: 1, sizeof(*pfd));
	struct rlimit nofile;
	int fd = never_ready();
	long i;

	if (!pfd || fd < 0)
		return fail("poll setup");
	/* poll() refuses more entries than RLIMIT_NOFILE (1024 in the VM). */
	if (getrlimit(RLIMIT_NOFILE, &nofile))
		return fail("RLIMIT_NOFILE");
	if (nofile.rlim_cur < (rlim_t)n + 64) {
		nofile.rlim_cur = n + 64;
		if (nofile.rlim_max < nofile.rlim_cur)
			nofile.rlim_max = nofile.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &nofile))
			return fail("raising RLIMIT_NOFILE");
	}
	for (i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (k--)
		if (check(TIMED(poll(pfd, n, 0)), "poll"))
			return 1;
	while (j--)
		if (check(TIMED(poll(pfd, n, WAIT_MS)), "poll"))
			return 1;
	free(pfd);
	return 0;
}

static int do_epoll(long k, long j)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd = never_ready(), ep = epoll_create1(0);

	if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		return fail("epoll setup");
	while (k--)
		if (check(TIMED(epoll_wait(ep, &ev, 1, 0)), "epoll_wait"))
			return 1;
	while (j--)
		if (check(TIMED(epoll_wait(ep, &ev, 1, WAIT_MS)), "epoll_wait"))
			return 1;
	return 0;
}

static int select_once(int fd, long ms)
{
	struct timeval tv = { 0, ms * 1000 };
	fd_set rd;

	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	return TIMED(select(fd + 1, &rd, NULL, NULL, &tv));
}

static int do_select(long k, long j)
{
	int fd = never_ready();

	if (fd < 0)
		return fail("pipe");
	while (k--)
		if (check(select_once(fd, 0), "select"))
			return 1;
	while (j--)
		if (check(select_once(fd, WAIT_MS), "select"))
			return 1;
	return 0;
}

static int do_evqwait(long j)
{
	struct evq_setup setup = { .cq_entries = 8 };
	struct evq_wait wt = {
		.timeout_ns = WAIT_MS * 1000000LL,
		.min_events = 1,	/* nothing ever comes: sleep it out */
	};
	int fd = open("/dev/evq", O_RDWR | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		fprintf(stderr, "waitstat_load: /dev/evq absent (evq module not loaded)\n");
		return EXIT_SKIP;
	}
	if (fd < 0)
		return fail("/dev/evq");
	if (ioctl(fd, EVQ_IOC_SETUP, &setup))
		return fail("EVQ_IOC_SETUP");
	while (j--)
		if (check(TIMED(ioctl(fd, EVQ_IOC_WAIT, &wt)), "EVQ_IOC_WAIT"))
			return 1;
	return 0;
}

static void spin_for(long ms)
{
	long long end = now_ns() + ms * 1000000LL;

	while (now_ns() < end)
		;
}

static int do_spin(long ms)
{
	int cpu = sched_getcpu();
	cpu_set_t one;
	pid_t helper;

	CPU_ZERO(&one);
	CPU_SET(cpu < 0 ? 0 : cpu, &one);
	/* The helper inherits the affinity: both on one CPU. */
	if (sched_setaffinity(0, sizeof(one), &one))
		return fail("sched_setaffinity");
	helper = fork();
	if (helper < 0)
		return fail("fork");
	if (helper == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			spin_for(1000);
	}
	spin_for(ms);
	/*
	 * Not waited for: reaped by init once we exit, its switches stay
	 * out of ours in the rusage our parent gets from wait4().
	 */
	kill(helper, SIGKILL);
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: waitstat_load sleep N | poll K J [NFDS] | epoll K J | select K J |\n"
		"                     evqwait J | spin MS\n");
	return 2;
}


static int run(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "sleep") && argc == 3)
		return do_sleep(count(argv[2]));
	if (!strcmp(mode, "poll") && (argc == 4 || argc == 5))
		return do_poll(count(argv[2]), count(argv[3]),
			       argc == 5 ? count(argv[4]) : 1);
	if (!strcmp(mode, "epoll") && argc == 4)
		return do_epoll(count(argv[2]), count(argv[3]));
	if (!strcmp(mode, "select") && argc == 4)
		return do_select(count(argv[2]), count(argv[3]));
	if (!strcmp(mode, "evqwait") && argc == 3)
		return do_evqwait(count(argv[2]));
	if (!strcmp(mode, "spin") && argc == 3)
		return do_spin(count(argv[2]));
	return usage();
}

int main(int argc, char **argv)
{
	long long cpu_start = clock_ns(CLOCK_PROCESS_CPUTIME_ID), cpu_end;
	struct rusage start, end;
	int ret;

	getrusage(RUSAGE_SELF, &start);
	ret = run(argc, argv);
	getrusage(RUSAGE_SELF, &end);
	cpu_end = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (ret != 2)
		fprintf(stderr, "waitstat_load: rusage nvcsw %ld %ld nivcsw %ld %ld "
			"cpu_ns %lld %lld waited_ns %lld\n", start.ru_nvcsw,
			end.ru_nvcsw, start.ru_nivcsw, end.ru_nivcsw, cpu_start,
			cpu_end, waited_ns);
	return ret;
}
