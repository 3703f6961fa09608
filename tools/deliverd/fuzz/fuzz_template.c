// SPDX-License-Identifier: GPL-2.0
/*
 * deliverctl merge's message templates (dc_template.c): "{{ name }}"
 * placeholders, "{{{{" escapes, the header section where a value with a
 * line break is refused.
 *
 * Input: the template.  Its placeholders are bound to columns of the
 * same names, then filled twice: with plain values, and with values
 * holding a CRLF.
 *
 * Checked: binding the template's own names always succeeds; a plain
 * fill succeeds and its length is the literals' plus the values'; a
 * fill with line breaks fails exactly when a placeholder is in the
 * header section.
 */
#include "fuzz.h"

#include "dc.h"

#define NCOL	16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char plain[] = "value", broken[] = "a\r\nBcc: x@y";
	struct dc_template t;
	char *cols[NCOL], *row[NCOL], *brow[NCOL], err[256];
	struct dd_buf out = DD_BUF_INIT;
	size_t lit = 0, nph = 0;
	unsigned int ncol = 0, i, j;
	bool in_header = false;

	if (dc_template_parse(&t, (const char *)data, size, err, sizeof(err))) {
		FUZZ_CHECK(err[0], "refused without a reason");
		return 0;
	}
	for (i = 0; i < t.nseg; i++) {
		const struct dc_tseg *s = &t.seg[i];

		if (!s->name) {
			/*
			 * The copy is CRLF-normalised and ends with a CRLF:
			 * at most twice as long and two octets more.
			 */
			FUZZ_CHECK(s->lit >= t.text &&
				   s->lit + s->len <= t.text + 2 * size + 2,
				   "literal outside the template");
			lit += s->len;
			continue;
		}
		nph++;
		in_header |= s->header;
		for (j = 0; j < ncol && strcmp(cols[j], s->name); j++)
			;
		if (j == ncol && ncol < NCOL)
			cols[ncol++] = s->name;
	}
	if (nph && ncol == NCOL) {
		/* More names than columns: binding may fail; nothing to check. */
		dc_template_free(&t);
		return 0;
	}
	FUZZ_CHECK(!dc_template_bind(&t, cols, ncol, err, sizeof(err)),
		   "its own names do not bind: %s", err);
	for (i = 0; i < ncol; i++) {
		row[i] = (char *)plain;
		brow[i] = (char *)broken;
	}
	FUZZ_CHECK(!dc_template_fill(&t, row, ncol, &out, err, sizeof(err)),
		   "plain fill: %s", err);
	FUZZ_CHECK(out.len == lit + nph * strlen(plain), "filled %zu, want %zu",
		   out.len, lit + nph * strlen(plain));
	dd_buf_clear(&out);
	FUZZ_CHECK(!dc_template_fill(&t, brow, ncol, &out, err, sizeof(err)) ==
		   !in_header, "line break in the header section: %s",
		   in_header ? "accepted" : "refused");
	dc_buf_free(&out);
	dc_template_free(&t);
	return 0;
}
