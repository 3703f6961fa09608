// SPDX-License-Identifier: GPL-2.0
/*
 * deliverctl merge's CSV reader (dc_csv.c): quoted fields with commas,
 * quotes and line breaks, CRLF, LF and lone CR record ends, a byte order
 * mark, blank lines, bad quoting.
 *
 * Input: the CSV file.
 *
 * Checked: records come in order of their physical line numbers, which
 * never pass the file's line count; each field is a terminated string
 * no longer than the file; a bad record says why; reading ends.
 */
#include "fuzz.h"

#include "dc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size, "rb");
	unsigned long line, last = 0, lines = 1, n = 0;
	struct dc_csv c;
	char err[256];
	size_t i;
	int r;

	if (!size)
		return 0;	/* fmemopen() wants a buffer */
	if (!f)
		abort();
	for (i = 0; i < size; i++)
		lines += data[i] == '\n' || (data[i] == '\r' &&
					     (i + 1 == size || data[i + 1] != '\n'));
	dc_csv_init(&c, f);
	while ((r = dc_csv_next(&c, &line, err, sizeof(err))) != 0) {
		FUZZ_CHECK(++n <= size + 1, "more records than bytes");
		FUZZ_CHECK(line >= last && line >= 1 && line <= lines,
			   "line %lu after %lu of %lu", line, last, lines);
		last = line;
		if (r < 0) {
			FUZZ_CHECK(err[0], "bad record without a reason");
			continue;
		}
		FUZZ_CHECK(r == 1 && c.nfield >= 1, "record of %u fields", c.nfield);
		for (i = 0; i < c.nfield; i++)
			FUZZ_CHECK(strlen(c.field[i]) <= size, "field %zu", i);
	}
	dc_csv_free(&c);
	fclose(f);
	return 0;
}
