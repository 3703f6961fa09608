// SPDX-License-Identifier: GPL-2.0
/*
 * evq_fuzz: randomized sequences of /dev/evq ioctls, mmaps, closes, dups
 * and forks from several threads and processes at once.
 *
 *   evq_fuzz --ops N --threads T --seed S [--procs P] [--no-leak-check]
 *
 * Prints the seed first, so a failing run replays with the same choices
 * (thread interleavings differ from run to run), then kselftest TAP:
 * unexpected results, worker exits, fds, and the module's queues and
 * slab objects back to where they were.  Exit 0 when all pass, 1 if not,
 * 4 when /dev/evq is absent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "evq_fuzz.h"

#define FZ_PRINT_MAX	20	/* failures printed per process */
#define FZ_HANG_S	120	/* no operation finished for this long: hung */

struct fz_ctx fz;

/* Failures go out with write(2): safe from any thread and in a child. */
void fz_fail(struct fz_thread *t, const char *op, const char *fmt, ...)
{
	char line[512];
	uint64_t n;
	va_list ap;
	int len;

	__atomic_add_fetch(&fz.sh->failures, 1, __ATOMIC_RELAXED);
	n = __atomic_add_fetch(&fz.local_failures, 1, __ATOMIC_RELAXED);
	for (unsigned int k = 0; k < fz_nops; k++)
		if (!strcmp(fz_ops[k].name, op))
			__atomic_add_fetch(&fz.sh->op[k].fails, 1,
					   __ATOMIC_RELAXED);
	if (n > FZ_PRINT_MAX)
		return;
	len = snprintf(line, sizeof(line), "# FAIL pid %d thread %d%s: %s: ",
		       (int)getpid(), t->idx, t->in_child ? " (child)" : "",
		       op);
	va_start(ap, fmt);
	len += vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	(void)!write(1, line, len);
}

static void *fz_thread_main(void *arg)
{
	struct fz_thread *t = arg;

	while (__atomic_fetch_add(&fz.sh->ops_done, 1, __ATOMIC_RELAXED) <
	       fz.sh->ops_target) {
		fz_run_one(t);
		__atomic_add_fetch(&fz.sh->heartbeat, 1, __ATOMIC_RELAXED);
		/* Keep the pool stocked: closes empty slots. */
		if (fz_one_in(&t->rng, 16))
			fz_pool_fill(t);
	}
	return NULL;
}

/* One process of the run: a pool and its threads.  Exit status 0 or 1. */
static int fz_worker(int proc)
{
	int fds0 = fz_count_fds(), fds1, err;

	for (int k = 0; k < fz.threads; k++) {
		fz.thr[k].idx = k;
		fz.thr[k].rng.s = fz.seed ^ (0x9e3779b97f4a7c15ULL * (proc + 1)) ^
				  (0xd1b54a32d192ed03ULL * (k + 1));
	}
	fz.nthreads = fz.threads;
	if (fz_pool_init())
		return 1;
	fz_pool_fill(&fz.thr[0]);
	for (int k = 0; k < fz.threads; k++) {
		err = pthread_create(&fz.thr[k].tid, NULL, fz_thread_main,
				     &fz.thr[k]);
		if (err) {
			fprintf(stderr, "evq_fuzz: pthread_create: %s\n",
				strerror(err));
			return 1;
		}
	}
	for (int k = 0; k < fz.threads; k++)
		pthread_join(fz.thr[k].tid, NULL);
	fz_pool_destroy();
	fds1 = fz_count_fds();
	if (fds1 != fds0) {
		printf("# FAIL pid %d: %d fds open at the end, %d at the start\n",
		       (int)getpid(), fds1, fds0);
		__atomic_add_fetch(&fz.sh->fd_leaks, 1, __ATOMIC_RELAXED);
	}
	fflush(stdout);
	return fz.local_failures ? 1 : 0;
}

/* Print what a worker's threads are blocked in: a hang's only trace. */
static void fz_dump_stacks(pid_t pid)
{
	char cmd[384];

	fflush(stdout);
	/* Its forked children too: a parent asleep in waitpid() says little. */
	snprintf(cmd, sizeof(cmd),
		 "for p in %d $(cat /proc/%d/task/*/children 2>/dev/null); do "
		 "for t in /proc/$p/task/*; do echo \"# task $t: $(cat $t/wchan 2>/dev/null)\"; "
		 "sed 's/^/#   /' $t/stack 2>/dev/null; done; done", (int)pid,
		 (int)pid);
	if (system(cmd) < 0)
		perror("evq_fuzz: system");
	/* Every blocked task, kworkers too, to the kernel log (root only). */
	{
		int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			(void)!write(fd, "w", 1);
			close(fd);
		}
	}
}

static void fz_sig_noop(int sig)
{
	(void)sig;
}

static int fz_tap(int n, bool ok, const char *name, const char *note)
{
	printf("%s %d %s%s%s\n", ok ? "ok" : "not ok", n, name,
	       note && *note ? " # " : "", note ? note : "");
	return ok;
}

/* --skip scm,fork: the operations to leave out, by name. */
static int fz_parse_skip(const char *list)
{
	char buf[256], *save, *name;

	snprintf(buf, sizeof(buf), "%s", list);
	for (name = strtok_r(buf, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		unsigned int k;

		for (k = 0; k < fz_nops && strcmp(fz_ops[k].name, name); k++)
			;
		if (k == fz_nops) {
			fprintf(stderr, "evq_fuzz: --skip: no operation \"%s\"\n",
				name);
			return -1;
		}
		fz_skip_mask |= 1ULL << k;
	}
	return 0;
}

static void fz_usage(FILE *f)
{
	fprintf(f,
		"usage: evq_fuzz --ops N --threads T --seed S [--procs P] [--no-leak-check]\n"
		"                [--skip OP[,OP...]]\n"
		"  random /dev/evq ioctls, mmaps, closes, dups and forks from T threads\n"
		"  in each of P processes, N operations in all; TAP on stdout.\n"
		"  --skip leaves out the operations named (as in the '# ops:' lines),\n"
		"  to tell which one a finding needs.\n"
		"  EVQ_SCRATCH=dir adds a file on that (block-backed) file system.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ops", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "procs", required_argument, NULL, 'p' },
		{ "no-leak-check", no_argument, NULL, 'L' },
		{ "skip", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fz_leak_base base;
	bool leak_check = true, workers_ok = true;
	int c, pass = 0, fail = 0, skip = 0, n = 0, slab, qres, fds0;
	pid_t pids[64];
	uint64_t last = 0, t0, t1;
	struct timespec ts;
	int idle = 0, ticks = 0, procs_left;
	char why[256] = "", *end;
	sigset_t set;

	fz.ops = 10000;
	fz.threads = 4;
	fz.procs = 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	fz.seed = (uint64_t)ts.tv_sec * 1000003 ^ ts.tv_nsec;
	while ((c = getopt_long(argc, argv, "n:t:s:p:h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			fz.ops = strtoull(optarg, &end, 0);
			if (*end || !fz.ops)
				goto bad;
			break;
		case 't':
			fz.threads = atoi(optarg);
			if (fz.threads < 1 || fz.threads > FZ_MAX_THREADS)
				goto bad;
			break;
		case 's':
			fz.seed = strtoull(optarg, &end, 0);
			if (*end)
				goto bad;
			break;
		case 'p':
			fz.procs = atoi(optarg);
			if (fz.procs < 1 || fz.procs > 64)
				goto bad;
			break;
		case 'L':
			leak_check = false;
			break;
		case 'S':
			if (fz_parse_skip(optarg))
				goto bad;
			break;
		case 'h':
			fz_usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	fz.scratch = getenv("EVQ_SCRATCH");
	if (fz.scratch && !*fz.scratch)
		fz.scratch = NULL;

	printf("TAP version 13\n");
	printf("# evq_fuzz: seed %" PRIu64 " ops %" PRIu64 " threads %d procs %d%s\n",
	       fz.seed, fz.ops, fz.threads, fz.procs,
	       fz.scratch ? " (scratch file system)" : "");
	printf("# replay: evq_fuzz --ops %" PRIu64 " --threads %d --seed %" PRIu64 " --procs %d\n",
	       fz.ops, fz.threads, fz.seed, fz.procs);
	{
		int q = open("/dev/evq", O_RDWR | O_CLOEXEC);

		if (q < 0 || ioctl(q, EVQ_IOC_INFO, &fz.info)) {
			printf("1..1\nok 1 evq_fuzz # SKIP /dev/evq: %s\n",
			       strerror(errno));
			printf("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0\n");
			return 4;
		}
		close(q);
	}
	fz.sh = mmap(NULL, sizeof(*fz.sh), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fz.sh == MAP_FAILED) {
		perror("evq_fuzz: mmap");
		return 1;
	}
	fz.sh->ops_target = fz.ops;
	/* SIGUSR2 only ever pends, for the signalfds; writes get EPIPE. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	{
		/* No SA_RESTART: a wait interrupted by op "signal" says EINTR. */
		struct sigaction sa = { .sa_handler = fz_sig_noop };

		sigaction(SIGUSR1, &sa, NULL);
	}
	fz_leak_baseline(&base);
	fds0 = fz_count_fds();
	fflush(stdout);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	for (int p = 0; p < fz.procs; p++) {
		pids[p] = fork();
		if (pids[p] == 0)
			_exit(fz_worker(p));
		if (pids[p] < 0) {
			perror("evq_fuzz: fork");
			return 1;
		}
	}
	/* Reap the workers; a run with no progress for long is a hang. */
	procs_left = fz.procs;
	while (procs_left) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			for (int p = 0; p < fz.procs; p++) {
				if (pids[p] != pid)
					continue;
				procs_left--;
				pids[p] = 0;
				if (!WIFEXITED(status) || WEXITSTATUS(status)) {
					printf("# worker %d: status %#x\n",
					       (int)pid, status);
					workers_ok = false;
				}
			}
			continue;
		}
		if (pid < 0 && errno != EINTR)
			break;
		sleep(1);
		if (!(++ticks % 30)) {
			printf("# progress: %" PRIu64 " ops after %d s\n",
			       __atomic_load_n(&fz.sh->heartbeat, __ATOMIC_RELAXED),
			       ticks);
			fflush(stdout);
		}
		if (__atomic_load_n(&fz.sh->heartbeat, __ATOMIC_RELAXED) != last) {
			last = __atomic_load_n(&fz.sh->heartbeat, __ATOMIC_RELAXED);
			idle = 0;
		} else if (++idle == FZ_HANG_S) {
			printf("# HANG: no operation finished in %d s\n", FZ_HANG_S);
			for (int p = 0; p < fz.procs; p++)
				if (pids[p])
					fz_dump_stacks(pids[p]);
			fflush(stdout);
			for (int p = 0; p < fz.procs; p++)
				if (pids[p])
					kill(pids[p], SIGKILL);
			workers_ok = false;
			fz.sh->failures++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t1 = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;

	{
		uint64_t total = 0;

		for (unsigned int k = 0; k < fz_nops; k++) {
			printf("# ops: %-9s %10" PRIu64 "%s\n", fz_ops[k].name,
			       fz.sh->op[k].calls,
			       fz.sh->op[k].fails ? " FAILED" : "");
			total += fz.sh->op[k].calls;
		}
		printf("# ops: total %" PRIu64 " (children's included)\n", total);
		printf("# ops: per_second %.0f\n",
		       (double)(fz.sh->ops_done < fz.ops ? fz.sh->ops_done : fz.ops) /
		       ((double)(t1 - t0) / 1e9));
		printf("# fuzz: %.1f s, ring checks %" PRIu64 ", children %" PRIu64
		       ", results not judged (fd changed under the call) %" PRIu64 "\n",
		       (double)(t1 - t0) / 1e9, fz.sh->ring_checks,
		       fz.sh->children, fz.sh->raced);
	}

	printf("1..5\n");
	snprintf(why, sizeof(why), "%" PRIu64 " unexpected results",
		 fz.sh->failures);
	if (fz_tap(++n, !fz.sh->failures, "results_as_documented",
		   fz.sh->failures ? why : NULL))
		pass++;
	else
		fail++;
	if (fz_tap(++n, workers_ok && !fz.sh->child_failures, "workers_exit_clean",
		   NULL))
		pass++;
	else
		fail++;
	if (fz_tap(++n, !fz.sh->fd_leaks && fz_count_fds() == fds0,
		   "fds_released", NULL))
		pass++;
	else
		fail++;
	if (!leak_check) {
		fz_tap(++n, true, "module_queues_released", "SKIP --no-leak-check");
		fz_tap(++n, true, "module_slab_released", "SKIP --no-leak-check");
		skip += 2;
	} else {
		why[0] = 0;
		qres = fz_leak_check(&base, why, sizeof(why), &slab);
		if (qres > 0) {
			fz_tap(++n, true, "module_queues_released",
			       "SKIP netlink counters unreadable");
			skip++;
		} else if (fz_tap(++n, !qres, "module_queues_released",
				  qres ? why : NULL)) {
			pass++;
		} else {
			fail++;
		}
		if (slab > 0) {
			fz_tap(++n, true, "module_slab_released",
			       "SKIP caches merged (boot with slab_nomerge)");
			skip++;
		} else if (fz_tap(++n, !slab, "module_slab_released",
				  slab ? why : NULL)) {
			pass++;
		} else {
			fail++;
		}
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n",
	       pass, fail, skip);
	if (fail)
		printf("# replay: evq_fuzz --ops %" PRIu64 " --threads %d --seed %" PRIu64 " --procs %d\n",
		       fz.ops, fz.threads, fz.seed, fz.procs);
	return fail ? 1 : 0;
bad:
	fz_usage(stderr);
	return 2;
}
