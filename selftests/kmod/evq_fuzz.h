/* SPDX-License-Identifier: GPL-2.0 */
/*
 * evq_fuzz: a randomized fuzzer of /dev/evq's ioctls and ring mapping.
 *
 * One process (or --procs of them) holds a pool of resources: queues, set
 * up or not, mapped or not; TCP, UNIX and UDP socket pairs, pipes,
 * eventfds, epoll and signal fds, regular files on tmpfs and on
 * $EVQ_SCRATCH.  --threads threads pick operations at random, with
 * weights, and point them at random members of the pool while the others
 * close, dup and replace them.  Every result is checked against what
 * Documentation/evq.rst allows; anything else is a failure, printed with
 * the operation that caused it.
 *
 * Files: evq_fuzz.c (options, workers, report), evq_fuzz_pool.c (the
 * resources), evq_fuzz_ops.c (the operations and their checks),
 * evq_fuzz_leak.c (fd, netlink and slab accounting).
 */
#ifndef EVQ_FUZZ_H
#define EVQ_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/evq.h>

#define FZ_SLOTS	48	/* pool size per process */
#define FZ_MAX_THREADS	64
#define FZ_NOPS		32	/* room in the operation table */

/* What a slot holds (its fd may have been swapped by a race since). */
enum fz_kind {
	FZ_EMPTY,
	FZ_QUEUE,
	FZ_TCP,
	FZ_UNIX,
	FZ_UDP,
	FZ_PIPE_R,
	FZ_PIPE_W,
	FZ_EVENTFD,
	FZ_EPOLL,
	FZ_SIGNALFD,
	FZ_FILE_TMP,
	FZ_FILE_SCRATCH,
	FZ_NKINDS,
};

/*
 * What the fuzzer knows of one open queue file, shared by the slots that
 * hold it (dup, dup2).  The ring is set up once per file.
 */
struct fz_qfile {
	int refs;			/* slots pointing here (pool lock) */
	int ready;			/* SETUP succeeded (atomic) */
	uint32_t entries;
	uint64_t ring_size;
	pthread_mutex_t consumer;	/* the ring is single-consumer */
	uint32_t last_tail;		/* tail seen last: it only grows */
	bool chaos;			/* head was scribbled on: no checks */
};

/*
 * One member of the pool.  @lock (write) guards changes of @fd, @kind,
 * @qf and the mapping; ring readers take it for reading so the mapping
 * cannot go away under them.  ioctls read @fd without it: an fd closed
 * and reused under them is part of the game, and @gen tells the checks
 * it happened.  @gen works as a sequence count: odd while a change is
 * under way (fz_slot_begin() to fz_slot_end()), so a call that read an
 * odd value, or a value that moved, judges nothing.
 */
struct fz_slot {
	pthread_rwlock_t lock;
	int fd;				/* atomic loads outside @lock */
	int kind;
	unsigned int gen;		/* bumped at every change (atomic) */
	struct fz_qfile *qf;		/* FZ_QUEUE */
	void *map;			/* the ring, mapped read/write */
	size_t map_len;
};

/* Per-operation counters, in memory shared by every process of a run. */
struct fz_opstat {
	uint64_t calls;
	uint64_t fails;
};

struct fz_shared {
	uint64_t ops_done;		/* atomic: operations in all */
	uint64_t ops_target;
	uint64_t failures;		/* atomic */
	uint64_t ring_checks;		/* atomic */
	uint64_t children;		/* forked children reaped */
	uint64_t child_failures;
	uint64_t raced;			/* results not judged: fd swapped */
	uint64_t fd_leaks;		/* processes whose fd count grew */
	struct fz_opstat op[FZ_NOPS];
	/* Watchdog: what each thread of each process is doing. */
	uint64_t heartbeat;		/* atomic */
};

struct fz_rng {
	uint64_t s;
};

/* A worker thread. */
struct fz_thread {
	struct fz_rng rng;
	int idx;
	pthread_t tid;
	const char *cur;		/* operation in progress, for hangs */
	bool in_child;			/* running in a forked child */
};

/* Options and the per-process pool. */
struct fz_ctx {
	uint64_t seed;
	uint64_t ops;
	int threads;
	int procs;
	int verbose;
	const char *scratch;		/* $EVQ_SCRATCH or NULL */
	char tmp_path[256];		/* tmpfs file for sendfile */
	char scratch_path[256];
	struct evq_info info;
	struct fz_shared *sh;
	struct fz_slot slot[FZ_SLOTS];
	pthread_mutex_t pool_lock;	/* qfile refs */
	/* Memory the bad-pointer cases use. */
	void *page_none;		/* PROT_NONE */
	void *page_ro;			/* PROT_READ, filled with zeroes */
	struct fz_thread thr[FZ_MAX_THREADS];
	int nthreads;
	uint64_t local_failures;	/* this process's (atomic) */
};

extern struct fz_ctx fz;

/* PRNG: splitmix64, one stream per thread, so a seed replays choices. */
static inline uint64_t fz_next(struct fz_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint32_t fz_below(struct fz_rng *r, uint32_t n)
{
	return n ? (uint32_t)(fz_next(r) % n) : 0;
}

/* True with probability 1 in @n. */
static inline bool fz_one_in(struct fz_rng *r, uint32_t n)
{
	return fz_below(r, n) == 0;
}

/* evq_fuzz.c */
void fz_fail(struct fz_thread *t, const char *op, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* evq_fuzz_pool.c */
int fz_pool_init(void);
void fz_pool_fill(struct fz_thread *t);
void fz_pool_destroy(void);
int fz_slot_open(struct fz_thread *t, int i, int kind);
void fz_slot_begin(struct fz_slot *s);
void fz_slot_end(struct fz_slot *s);
void fz_slot_close_locked(struct fz_slot *s);
int fz_pick(struct fz_thread *t, int kind);
int fz_pick_any(struct fz_thread *t);
int fz_fd_of(int i);
unsigned int fz_gen_of(int i);
int fz_random_fd(struct fz_thread *t);
void fz_qfile_put_locked(struct fz_qfile *qf);
struct fz_qfile *fz_qfile_new(void);

/* evq_fuzz_ops.c */
struct fz_op {
	const char *name;
	unsigned int weight;
	void (*run)(struct fz_thread *t);
};
extern const struct fz_op fz_ops[];
extern const unsigned int fz_nops;
extern uint64_t fz_skip_mask;
void fz_run_one(struct fz_thread *t);
int fz_child_main(struct fz_thread *t, int nops);

/* evq_fuzz_leak.c */
#define FZ_NCACHES	4	/* evq_watch, evq_pwq, evq_op, evq_pin */
int fz_count_fds(void);
struct fz_leak_base {
	long queues;			/* netlink: queues open, -1 unknown */
	long slab[FZ_NCACHES];		/* objects in the module's caches */
	bool slab_known[FZ_NCACHES];
};
void fz_leak_baseline(struct fz_leak_base *b);
int fz_leak_check(const struct fz_leak_base *b, char *why, size_t len,
		  int *slab);
long fz_nl_queues_open(void);
long fz_nl_dump_queues(void);

#endif /* EVQ_FUZZ_H */
