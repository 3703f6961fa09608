// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd's configuration file (dd_conf.c): "name = value" lines with
 * every setting's own syntax (numbers with limits, booleans, listen
 * addresses, networks, throttle patterns), then the derived fields.
 *
 * Input: the file.
 *
 * Checked: a refused file says which line; a configuration that loads,
 * printed as deliverd --print-config prints it, loads again to the same
 * configuration (printed the same).
 */
#include "fuzz.h"

#include "dd_conf.h"

/* The settings in effect as text: malloc'd, *len bytes. */
static char *print(const struct dd_conf *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		abort();
	dd_conf_print(c, f);
	fclose(f);
	return buf;
}

static int load(struct dd_conf *c, const uint8_t *data, size_t size,
		char *err, size_t errlen)
{
	char path[64];
	int fd, rc;

	if (dd_conf_init(c))
		abort();
	fd = fuzz_file(data, size, path, sizeof(path));
	rc = dd_conf_load(c, path, NULL, 0, err, errlen);
	if (!rc)
		rc = dd_conf_finish(c, err, errlen);
	close(fd);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_conf c, c2;
	char err[1024], *one, *two;
	size_t n1, n2;

	if (load(&c, data, size, err, sizeof(err))) {
		FUZZ_CHECK(err[0], "refused without a reason");
		dd_conf_free(&c);
		return 0;
	}
	one = print(&c, &n1);
	FUZZ_CHECK(!load(&c2, (const uint8_t *)one, n1, err, sizeof(err)),
		   "--print-config output does not load: %s\n%s", err, one);
	two = print(&c2, &n2);
	FUZZ_CHECK(n1 == n2 && !memcmp(one, two, n1),
		   "printed, loaded and printed again differs:\n%s\n---\n%s",
		   one, two);
	free(one);
	free(two);
	dd_conf_free(&c);
	dd_conf_free(&c2);
	return 0;
}
