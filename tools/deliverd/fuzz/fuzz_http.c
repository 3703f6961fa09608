// SPDX-License-Identifier: GPL-2.0
/*
 * The metrics endpoint's HTTP request parser (dd_prom.c,
 * dd_http_parse()), fed what any local client may send to
 * metrics_listen.
 *
 * Input: the bytes read so far.
 *
 * Checked: the status is one the server answers with (0: wait for more);
 * a full buffer never waits; once a request is decided, bytes after it
 * change nothing; the decision on a prefix is final.
 */
#include "fuzz.h"

#include "dd_prom.h"

#define MAX	4096

static int parse(const uint8_t *data, size_t size, size_t max)
{
	/* An exact-size copy: ASan sees a read past what was received. */
	char *b = malloc(size ? size : 1);
	int st;

	if (!b)
		abort();
	memcpy(b, data, size);
	st = dd_http_parse(b, size, max);
	free(b);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char junk[] = "\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
	uint8_t *more;
	int st, again;

	if (size > MAX)
		return 0;
	st = parse(data, size, MAX);
	FUZZ_CHECK(st == 0 || st == 200 || st == 400 || st == 404 ||
		   st == 405 || st == 505, "status %d", st);
	if (size)
		FUZZ_CHECK(parse(data, size, size) != 0,
			   "waits with a full buffer");
	if (!st || size + sizeof(junk) > MAX)
		return 0;
	more = malloc(size + sizeof(junk));
	if (!more)
		abort();
	memcpy(more, data, size);
	memcpy(more + size, junk, sizeof(junk));
	again = parse(more, size + sizeof(junk) - 1, MAX);
	FUZZ_CHECK(again == st, "%d, then %d with more bytes", st, again);
	free(more);
	return 0;
}
