/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sendfile_bench: what its parts share.  The program is split by what
 * each file holds:
 *
 *   sendfile_bench.c  options, the run order, figures and JSON
 *   sfb_fileset.c     the file set on the scratch disk, cache dropping,
 *                     warming and residency checks
 *   sfb_client.c      the load generator (open and closed loop) and the
 *                     loopback connections
 *   sfb_server.c      what the server designs share: request reading,
 *                     the first error
 *   sfb_epoll.c       blocking sendfile(2): one event-loop thread, or a
 *                     pool of threads sharing one epoll set
 *   sfb_evq.c         evq_sendfile(): synchronous with EVQ_SF_NOTIFY
 *                     (whole replies or chunks), and the asynchronous form
 *   sfb_uring.c       io_uring splice, file -> pipe -> socket
 *   sfb_report.c      figures: "name: value" lines and the JSON file
 *   sfb-slowdisk      (shell) runs it with every disk read delayed
 */
#ifndef SFB_H
#define SFB_H

#include "bench_fig.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The request on the wire: the client asks for one whole file. */
#define SFB_REQ_MAGIC	0x51424653U	/* "SFBQ" */
struct sfb_req {
	uint32_t magic;
	uint32_t file;
	uint64_t seq;
};

/*
 * Every file starts with this header, so the client can check that the
 * reply is the file it asked for, not only that the length is right.
 */
#define SFB_FILE_MAGIC	0x46424653U	/* "SFBF" */
struct sfb_hdr {
	uint32_t magic;
	uint32_t file;
	uint32_t size;
	uint32_t check;		/* magic ^ file ^ size ^ a constant */
};

static inline uint32_t sfb_hdr_check(uint32_t file, uint32_t size)
{
	return SFB_FILE_MAGIC ^ file ^ size ^ 0x9e3779b9U;
}

struct sfb_file {
	int fd;
	uint32_t size;
};

/* Files [0, nr_hot) are hot, [nr_hot, nr_hot + nr_cold) cold. */
struct sfb_fileset {
	char dir[256];
	unsigned int nr_hot, nr_cold;
	uint32_t hot_size, cold_size;
	struct sfb_file *files;
};

static inline bool sfb_is_hot(const struct sfb_fileset *fs, uint32_t file)
{
	return file < fs->nr_hot;
}

int sfb_fileset_create(struct sfb_fileset *fs, bool keep_existing);
void sfb_fileset_remove(struct sfb_fileset *fs);
int sfb_drop_caches(void);
int sfb_warm(const struct sfb_fileset *fs, const uint32_t *files,
	     unsigned int nr);
/* Pages of the given files that are in the page cache, and in all. */
int sfb_resident(const struct sfb_fileset *fs, const uint32_t *files,
		 unsigned int nr, uint64_t *resident, uint64_t *total);
uint64_t sfb_mem_total(void);

/* ---- servers ---- */

/*
 * Counters a server keeps; which ones mean something depends on the
 * design (zero elsewhere).  Pool threads add theirs under a lock at exit.
 */
struct sfb_srv_stats {
	uint64_t requests;	/* replies completed */
	uint64_t bytes;
	uint64_t sends;		/* sendfile(2), evq_sendfile(), splice SQEs */
	uint64_t waits;		/* epoll_wait, evq_wait, io_uring_enter */
	uint64_t sock_full;	/* a send stopped on a full socket */
	uint64_t not_resident;	/* evq: stopped on a page-cache miss */
	uint64_t pages_ready;	/* evq: EVQ_CQE_PAGES_READY entries */
	uint64_t harvested;	/* evq: ring entries harvested */
	/* evq, --time-calls: evq_sendfile() time by stop reason (1..4) */
	uint64_t call_n[5], call_ns[5], call_max_ns[5];
	/* evq_async, --time-calls: the starting call, hot [0] or cold [1] */
	uint64_t start_n[2], start_ns[2], start_max_ns[2];
};

struct sfb_server {
	const struct sfb_fileset *fs;
	int *fds;		/* accepted sockets, non-blocking */
	unsigned int nr;
	unsigned int threads;	/* pool size */
	unsigned int evq_flags;	/* evq_open() flags */
	bool time_calls;	/* time each evq_sendfile() */
	uint32_t chunk;		/* evq: most bytes a turn sends, 0: all */
	struct sfb_srv_stats st;
	char err[192];		/* first error, empty if none */
	void (*ready)(struct sfb_server *s);	/* call once set up */
	void *ready_arg;
};

/*
 * A design serves its connections until the client has closed all of
 * them, then returns 0, or -1 with s->err set.  It runs in a thread of its
 * own and calls s->ready(s) once it can take requests.
 */
struct sfb_design {
	const char *name;
	const char *what;
	int (*serve)(struct sfb_server *s);
	unsigned int threads;
	bool evq;		/* needs a working evq_sendfile() */
	bool async;		/* evq: EVQ_SF_ASYNC */
	bool chunked;		/* evq: a turn sends at most --chunk bytes */
};

int sfb_serve_epoll(struct sfb_server *s);
int sfb_serve_evq_sync(struct sfb_server *s);
int sfb_serve_evq_async(struct sfb_server *s);
int sfb_serve_uring(struct sfb_server *s);

/*
 * Request reading shared by the designs: the client sends one request
 * and waits for the whole reply, so a connection holds at most one.
 */
struct sfb_rbuf {
	unsigned int len;
	struct sfb_req req;
};

/* 1: a request is in rb->req; 0: would block; -1: EOF; -2: error. */
int sfb_read_req(struct sfb_server *s, int fd, struct sfb_rbuf *rb);
/* Check a request that arrived; 0 or -1 with s->err set. */
int sfb_check_req(struct sfb_server *s, const struct sfb_req *rq);
void sfb_srv_error(struct sfb_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- load generator ---- */

/* A request stream: files in order, and arrival times for open loop. */
struct sfb_plan {
	unsigned int nr;
	uint32_t *file;
	uint64_t *at_ns;	/* offset from the start; NULL: closed loop */
};

struct sfb_result {
	unsigned int nr;
	uint64_t *lat_ns;	/* per request, in plan order */
	uint64_t *late_ns;	/* open loop: write time - due time, or NULL */
	uint64_t wall_ns;	/* start to last reply */
	uint64_t bytes;
	uint64_t cpu_ns;	/* the client thread's own CPU */
	unsigned int queued;	/* open loop: waited for a free connection */
	char err[192];
};

int sfb_connect(unsigned int n, int *cfd, int *sfd);
int sfb_client_run(const struct sfb_fileset *fs, const int *fds,
		   unsigned int nr_conns, const struct sfb_plan *p,
		   struct sfb_result *r, uint64_t timeout_ns);

/* ---- figures ---- */

/* Median, then _min and _max: the spread over the repetitions. */
void sfb_fig_stat(const char *name, const double *v, unsigned int n,
		  int prec);
double sfb_median(const double *v, unsigned int n);
void sfb_minmax(const double *v, unsigned int n, double *min, double *max);

/* ---- small helpers ---- */

uint64_t sfb_now_ns(void);
uint64_t sfb_thread_cpu_ns(void);
/* Value at quantile q (0..1) of v[0..n), which is sorted in place. */
double sfb_quantile(uint64_t *v, unsigned int n, double q);

#endif /* SFB_H */
