/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the libFuzzer harnesses share: a check that stops the run with a
 * message (a broken invariant is a finding, like a crash), the input as a
 * C string or as a file for the parsers that read a path, and a bounded
 * reader of the input's leading bytes for harnesses that take a few
 * parameters before the data.
 *
 * Each harness is one parser of input from outside the daemon, called
 * through its real entry point; tools/deliverd/fuzz/run runs them.
 */
#ifndef DD_FUZZ_H
#define DD_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* memfd_create */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,	\
			__LINE__, #cond);				\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

/* A malloc'd, NUL-terminated copy (the input may hold NULs of its own). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * The input as a file: a memfd, named through /proc/self/fd so that the
 * parsers open it by path as they open their real files.  path holds at
 * least 32 bytes; returns the fd to close afterwards.
 */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path,
			    size_t len)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

/* Take n leading bytes (as many as there are, zero-padded). */
static inline uint64_t fuzz_take(const uint8_t **data, size_t *size,
				 unsigned int n)
{
	uint64_t v = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		v <<= 8;
		if (*size) {
			v |= **data;
			(*data)++;
			(*size)--;
		}
	}
	return v;
}

#endif /* DD_FUZZ_H */
