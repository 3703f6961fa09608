/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by libevq's test programs.  Header-only: each test is
 * one program built from one source file.
 */
#ifndef EVQ_TEST_UTIL_H
#define EVQ_TEST_UTIL_H

#include <stdbool.h>
#include <sys/resource.h>

/* Give the process n descriptors, or say it cannot. */
static inline bool raise_nofile(rlim_t n)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r))
		return false;
	if (r.rlim_cur >= n)
		return true;
	if (r.rlim_max < n)
		r.rlim_max = n;
	r.rlim_cur = n;
	return setrlimit(RLIMIT_NOFILE, &r) == 0;
}

#endif /* EVQ_TEST_UTIL_H */
