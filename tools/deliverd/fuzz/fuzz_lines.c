// SPDX-License-Identifier: GPL-2.0
/*
 * What every line-based file of deliverd goes through (dd_lines.c): the
 * reader with its comments, CRLF and NUL handling, the field splitter,
 * domain patterns and the map that finds the best pattern for a domain.
 *
 * Input: the file.  Each line is split into two fields, "pattern value";
 * the patterns go into a map.
 *
 * Checked: lines handed on have no LF, '#' or NUL and come in
 * order; a pattern that dd_domain_pattern() accepts is lowercase without
 * a final dot and accepted again unchanged; each pattern added is found
 * again by dd_dmap_get() and a name it covers by dd_dmap_lookup().
 */
#include "fuzz.h"

#include "dd_lines.h"

struct st {
	struct dd_dmap map;
	unsigned int last;
};

static int line_fn(void *arg, char *line, unsigned int lineno, char *msg,
		   size_t msglen)
{
	struct st *st = arg;
	char *f[2], again[300], probe[300];
	void *v = NULL;
	size_t n;
	int err;

	FUZZ_CHECK(lineno > st->last, "line %u after %u", lineno, st->last);
	st->last = lineno;
	/* A CR left in a line is blank like a space: the fields ignore it. */
	FUZZ_CHECK(!strpbrk(line, "\n#"), "line end or comment in '%s'", line);
	FUZZ_CHECK(strspn(line, DD_LINES_WS) < strlen(line), "blank line");
	if (!dd_lines_fields(line, f, 2)) {
		snprintf(msg, msglen, "want two fields");
		return -EINVAL;
	}
	FUZZ_CHECK(*f[0] && *f[1] && !strpbrk(f[0], DD_LINES_WS),
		   "fields '%s' '%s'", f[0], f[1]);
	if (!dd_domain_pattern(f[0]))
		return 0;
	n = strlen(f[0]);
	FUZZ_CHECK(n && n < sizeof(again), "pattern of %zu", n);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(!(f[0][i] >= 'A' && f[0][i] <= 'Z'), "%s", f[0]);
	FUZZ_CHECK(!strcmp(f[0], ".") || f[0][n - 1] != '.' ||
		   !strcmp(f[0], "*"), "final dot in %s", f[0]);
	memcpy(again, f[0], n + 1);
	FUZZ_CHECK(dd_domain_pattern(again) && !strcmp(again, f[0]),
		   "%s is not a pattern again", f[0]);
	err = dd_dmap_add(&st->map, f[0], 8, &v);
	if (err == -ENOMEM)
		return err;
	FUZZ_CHECK(!err || err == -EEXIST, "add %s: %d", f[0], err);
	FUZZ_CHECK(v && dd_dmap_get(&st->map, f[0]) == v, "%s not found", f[0]);
	/* A name the pattern covers: itself, or a subdomain of ".name". */
	if (!strcmp(f[0], "*"))
		snprintf(probe, sizeof(probe), "any.example");
	else if (f[0][0] == '.')
		snprintf(probe, sizeof(probe), "x%s", f[0]);
	else
		snprintf(probe, sizeof(probe), "%s", f[0]);
	if (strlen(probe) <= 255)
		FUZZ_CHECK(dd_dmap_lookup(&st->map, probe) != NULL,
			   "%s covers nothing for %s", f[0], probe);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st st = { { 0 }, 0 };
	char path[64], err[512];
	int fd = fuzz_file(data, size, path, sizeof(path));
	int rc = dd_lines_read(path, line_fn, &st, err, sizeof(err));

	if (rc)
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0,
			   "error without the file name: %s", err);
	FUZZ_CHECK(dd_dmap_count(&st.map) <= size, "more patterns than bytes");
	dd_dmap_free(&st.map);
	close(fd);
	return 0;
}
