// SPDX-License-Identifier: GPL-2.0
/*
 * SMTP replies as a remote server sends them (dd_reply.c), split across
 * reads at any byte.
 *
 * Input: one byte of read size (0: all at once), then the stream.
 *
 * Checked: a reply's code is 200-599, its enhanced code empty or of the
 * reply's class, its text printable ASCII and terminated; the bytes used
 * never exceed the bytes given; each line seen by the callback is
 * shorter than DD_REPLY_LINE_MAX; and a reply written by dd_reply_format()
 * parses back to the same code, enhanced code and text.
 */
#include "fuzz.h"

#include "dd_reply.h"

static void line_fn(void *arg, int code, unsigned int lineno,
		    const char *text, size_t len)
{
	(void)arg;
	(void)lineno;
	FUZZ_CHECK(code >= 200 && code <= 599, "line code %d", code);
	FUZZ_CHECK(len < DD_REPLY_LINE_MAX, "line of %zu", len);
	/* Every byte of the text is readable (ASan watches). */
	if (len)
		FUZZ_CHECK(text[0] + text[len - 1] < 512, "unreachable");
}

static void check_reply(const struct dd_smtp_reply *r)
{
	size_t i, n = strnlen(r->text, sizeof(r->text));
	struct dd_reply_parser p;
	struct dd_smtp_reply back;
	char buf[512];	/* >= 16 for dd_reply_enh() */
	size_t len, used;
	int rc;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(n < sizeof(r->text), "text not terminated");
	for (i = 0; i < n; i++)
		FUZZ_CHECK(r->text[i] >= 0x20 && r->text[i] < 0x7f,
			   "byte %#x in text", (unsigned char)r->text[i]);
	FUZZ_CHECK(strnlen(r->enh, sizeof(r->enh)) < sizeof(r->enh),
		   "enh not terminated");
	if (r->enh[0]) {
		char e[16];

		FUZZ_CHECK(r->enh[0] == '0' + r->code / 100 &&
			   dd_reply_enh(r->enh, strlen(r->enh), r->code, e) ==
			   strlen(r->enh), "enh %s for %d", r->enh, r->code);
	}

	/*
	 * Format and parse again: the same reply.  Not when the text starts
	 * with what reads as an enhanced code (a later line's, "250-" then
	 * "250 2.0.0 ok"): written on one line it is one.
	 */
	if (!r->enh[0] && dd_reply_enh(r->text, n, r->code, buf))
		return;
	/* Nor when truncation left a space at the end: parsing trims it. */
	if (n && r->text[n - 1] == ' ')
		return;
	len = dd_reply_format(r, buf, sizeof(buf) - 2);
	FUZZ_CHECK(len < sizeof(buf) - 2, "formatted %zu", len);
	memcpy(buf + len, "\r\n", 2);
	dd_reply_init(&p, NULL, NULL);
	rc = dd_reply_parse(&p, buf, len + 2, &used, &back);
	FUZZ_CHECK(rc == 1 && used == len + 2, "reparse of '%.*s': %d",
		   (int)len, buf, rc);
	FUZZ_CHECK(back.code == r->code && !strcmp(back.enh, r->enh) &&
		   !strcmp(back.text, r->text),
		   "'%d %s %s' came back as '%d %s %s'", r->code, r->enh,
		   r->text, back.code, back.enh, back.text);
	dd_reply_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_reply_parser p;
	size_t step = (size_t)fuzz_take(&data, &size, 1), off = 0;
	int rc = 0;

	dd_reply_init(&p, line_fn, NULL);
	while (off < size && rc >= 0) {
		size_t n = step && step < size - off ? step : size - off;
		size_t pos = 0;

		while (pos < n) {
			struct dd_smtp_reply r;
			size_t used = 0;

			rc = dd_reply_parse(&p, data + off + pos, n - pos, &used, &r);
			FUZZ_CHECK(used <= n - pos, "used %zu of %zu", used, n - pos);
			if (rc < 0)
				break;
			if (rc == 0) {
				FUZZ_CHECK(used == n - pos, "0 with %zu of %zu used",
					   used, n - pos);
				break;
			}
			check_reply(&r);
			pos += used;
		}
		off += n;
	}
	if (rc < 0)
		FUZZ_CHECK(p.err != NULL, "error %d without a reason", rc);
	dd_reply_free(&p);
	return 0;
}
