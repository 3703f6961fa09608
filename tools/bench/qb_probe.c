// SPDX-License-Identifier: GPL-2.0
/*
 * The wake-up probe: context switches and on-CPU wait time per event, as
 * tools/probes/waitstat sees them.
 *
 * The harvest sweep makes its own fds ready and so never sleeps in its
 * waits; here a writer thread makes them ready and the harvesting thread
 * blocks in the side's wait call, which is what a server's event loop
 * does.  queue_bench runs "waitstat -j -t -- queue_bench --probe-child
 * SIDE" once per side and reads waitstat's JSON report: the harvesting
 * thread's switches and its wait calls' on-CPU time (the queue's own
 * overhead inside the wait), divided by the events harvested.
 *
 * Per round the writer waits for the harvester to finish the last round
 * (a semaphore: a futex wait, not one of the kinds waitstat splits),
 * then writes one byte to each of QB_PROBE_ACTIVE pipes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <json-c/json.h>

#include "bench_util.h"
#include "qb.h"

#define HARVEST_COMM	"qb-harvest"
#define WRITER_COMM	"qb-writer"

struct probe {
	struct qb_side side;
	struct qb_pipes p;
	sem_t go;		/* the writer may start a round */
	struct rusage reg_ru;	/* harvester's, over registration */
};

static void *writer_main(void *arg)
{
	struct probe *pr = arg;
	unsigned int r;

	pthread_setname_np(pthread_self(), WRITER_COMM);
	for (r = 0; r < QB_PROBE_ROUNDS; r++) {
		while (sem_wait(&pr->go) && errno == EINTR)
			;
		if (qb_fill(&pr->side, QB_PROBE_ACTIVE))
			exit(1);
	}
	return NULL;
}

/*
 * The harvester registers the fds itself: io_uring runs a poll's
 * completion work in the task that submitted it, so that task must be
 * the one that waits.  What registration costs in switches and in
 * io_uring_enter() calls is measured here and taken out by the parent.
 */
static void *harvester_main(void *arg)
{
	struct probe *pr = arg;
	struct qb_side *s = &pr->side;
	unsigned int r;

	pthread_setname_np(pthread_self(), HARVEST_COMM);
	if (qb_side_open(s, QB_PROBE_FDS, true))
		exit(1);
	getrusage(RUSAGE_THREAD, &pr->reg_ru);
	sem_post(&pr->go);
	for (r = 0; r < QB_PROBE_ROUNDS; r++) {
		if (s->ops->collect(s, QB_PROBE_ACTIVE))
			exit(1);
		s->next = (s->next + QB_PROBE_ACTIVE) % s->n;
		if (r + 1 < QB_PROBE_ROUNDS)
			sem_post(&pr->go);
	}
	s->ops->close(s);
	return NULL;
}

int qb_probe_child(enum qb_kind k)
{
	static struct probe pr;
	pthread_t w, h;
	int err;

	err = bench_raise_nofile(2 * QB_PROBE_FDS + 64);
	if (!err)
		err = qb_pipes_open(&pr.p, QB_PROBE_FDS);
	if (err) {
		fprintf(stderr, "queue_bench: probe: %u pipes: %s\n",
			QB_PROBE_FDS, strerror(-err));
		return 1;
	}
	qb_side_init(&pr.side, k, &pr.p);
	sem_init(&pr.go, 0, 0);
	if (pthread_create(&h, NULL, harvester_main, &pr) ||
	    pthread_create(&w, NULL, writer_main, &pr)) {
		fprintf(stderr, "queue_bench: probe: pthread_create failed\n");
		return 1;
	}
	pthread_join(w, NULL);
	pthread_join(h, NULL);
	/* waitstat's JSON comes on the same stdout, after we exit. */
	printf("qb-probe events %llu reg_enters %llu reg_enter_ns %llu "
	       "reg_vcsw %ld reg_ivcsw %ld\n",
	       (unsigned long long)pr.side.cnt.events,
	       (unsigned long long)pr.side.reg_enters,
	       (unsigned long long)pr.side.reg_enter_ns,
	       pr.reg_ru.ru_nvcsw, pr.reg_ru.ru_nivcsw);
	qb_pipes_close(&pr.p);
	return 0;
}

/* ---- the parent: run waitstat, read its report ---- */

struct child_line {
	unsigned long long events, reg_enters, reg_enter_ns;
	long reg_vcsw, reg_ivcsw;
	bool seen;
};

static double jnum(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_double(v);
}

static json_object *thread_row(json_object *report, const char *comm)
{
	json_object *procs, *rows, *row, *c;
	size_t i, j;

	if (!json_object_object_get_ex(report, "processes", &procs))
		return NULL;
	for (i = 0; i < json_object_array_length(procs); i++) {
		if (!json_object_object_get_ex(
			    json_object_array_get_idx(procs, i), "thread_rows",
			    &rows))
			continue;
		for (j = 0; j < json_object_array_length(rows); j++) {
			row = json_object_array_get_idx(rows, j);
			if (json_object_object_get_ex(row, "comm", &c) &&
			    !strcmp(json_object_get_string(c), comm))
				return row;
		}
	}
	return NULL;
}

static json_object *wait_of(json_object *row, const char *kind)
{
	json_object *waits, *w;

	if (!row || !json_object_object_get_ex(row, "waits", &waits) ||
	    !json_object_object_get_ex(waits, kind, &w))
		return NULL;
	return w;
}

/* The figures, per event, from waitstat's final report. */
static int probe_figures(json_object *report, const struct child_line *cl,
			 const char *kind, struct qb_probe_res *r, char *err,
			 unsigned int errlen)
{
	json_object *h = thread_row(report, HARVEST_COMM);
	json_object *w = thread_row(report, WRITER_COMM);
	json_object *wt = wait_of(h, kind);
	double ev = (double)cl->events;

	if (!h || !wt || !cl->events) {
		snprintf(err, errlen, "no %s thread or %s waits in waitstat's "
			 "report", HARVEST_COMM, kind);
		return -1;
	}
	r->events = ev;
	r->vcsw = (jnum(h, "vcsw") - cl->reg_vcsw) / ev;
	r->ivcsw = (jnum(h, "ivcsw") - cl->reg_ivcsw) / ev;
	r->ctxsw = r->vcsw + r->ivcsw;
	r->proc_ctxsw = r->ctxsw + (jnum(w, "vcsw") + jnum(w, "ivcsw")) / ev;
	r->wait_calls = (jnum(wt, "calls") - cl->reg_enters) / ev;
	r->wait_oncpu_ns = (jnum(wt, "oncpu_ns") - cl->reg_enter_ns) / ev;
	r->wait_offcpu_ns = jnum(wt, "offcpu_ns") / ev;
	r->oncpu_ns = jnum(h, "oncpu_ns") / ev;
	r->done = true;
	return 0;
}

/* Lines of the child's and waitstat's stdout; the last JSON one counts. */
static int read_output(FILE *f, struct child_line *cl, json_object **last)
{
	char *line = NULL;
	size_t cap = 0;
	json_object *o;

	while (getline(&line, &cap, f) > 0) {
		if (!strncmp(line, "qb-probe ", 9)) {
			cl->seen = sscanf(line, "qb-probe events %llu "
					  "reg_enters %llu reg_enter_ns %llu "
					  "reg_vcsw %ld reg_ivcsw %ld",
					  &cl->events, &cl->reg_enters,
					  &cl->reg_enter_ns, &cl->reg_vcsw,
					  &cl->reg_ivcsw) == 5;
		} else if (line[0] == '{') {
			o = json_tokener_parse(line);
			if (o) {
				json_object_put(*last);
				*last = o;
			}
		}
	}
	free(line);
	return 0;
}

static pid_t spawn_waitstat(const char *self, enum qb_kind k, int out_fd)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	dup2(out_fd, STDOUT_FILENO);
	execl(qb_opt.waitstat, "waitstat", "-j", "-t", "--", self,
	      "--probe-child", qb_kind_name(k), (char *)NULL);
	fprintf(stderr, "queue_bench: %s: %s\n", qb_opt.waitstat,
		strerror(errno));
	_exit(127);
}

int qb_probe_run(const char *self, enum qb_kind k, struct qb_probe_res *r,
		 char *err, unsigned int errlen)
{
	struct child_line cl = { 0 };
	json_object *report = NULL;
	struct qb_side tmp;
	int fds[2], status, ret = -1;
	pid_t pid;
	FILE *f;

	qb_side_init(&tmp, k, NULL);
	if (pipe(fds)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	pid = spawn_waitstat(self, k, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		return -1;
	}
	f = fdopen(fds[0], "r");
	if (f) {
		read_output(f, &cl, &report);
		fclose(f);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		snprintf(err, errlen, "waitstat -- queue_bench --probe-child "
			 "%s: exit status %d (its stderr says why; waitstat "
			 "needs root and BPF)",
			 tmp.name, WIFEXITED(status) ? WEXITSTATUS(status) :
			 128 + WTERMSIG(status));
	else if (!cl.seen || !report)
		snprintf(err, errlen, "no report from the probe child or "
			 "from waitstat");
	else
		ret = probe_figures(report, &cl, tmp.wait_kind, r, err,
				    errlen);
	json_object_put(report);
	return ret;
}
