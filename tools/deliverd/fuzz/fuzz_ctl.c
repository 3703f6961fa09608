// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket's command lines (dd_ctl_parse.c), as any local
 * user allowed on the socket may send them.
 *
 * Input: the line (as the session hands it on: up to the CRLF, so a
 * NUL ends it).
 *
 * Checked: a refusal is 500 or 501 with a text; a command has a known
 * operation, a lowercase argument without spaces, no longer than a
 * domain, a queue id only for XHOLD and XRELEASE; and written back as
 * "VERB @argument" it parses to the same command.
 */
#include "fuzz.h"

#include "dd_ctl_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const verb[] = { NULL, "XQUEUE", "XFLUSH", "XHOLD",
					    "XRELEASE", "XSTATS" };
	char *line = fuzz_str(data, size), again[300];
	struct dd_ctl_cmd c, c2;
	const char *text = NULL;
	int code = dd_ctl_parse(line, &c, &text);

	if (code) {
		FUZZ_CHECK((code == 500 || code == 501) && text && *text,
			   "refused with %d", code);
		free(line);
		return 0;
	}
	FUZZ_CHECK(c.op >= DD_CTL_QUEUE && c.op <= DD_CTL_STATS, "op %u", c.op);
	FUZZ_CHECK(!c.by_qid || c.op == DD_CTL_HOLD || c.op == DD_CTL_RELEASE,
		   "queue id for op %u", c.op);
	FUZZ_CHECK(strlen(c.arg) <= DD_DOMAIN_MAX && !strchr(c.arg, ' '),
		   "argument '%s'", c.arg);
	for (const char *p = c.arg; *p; p++)
		FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "argument '%s'", c.arg);
	if (c.by_qid)
		snprintf(again, sizeof(again), "%s %016llX", verb[c.op],
			 (unsigned long long)c.qid);
	else
		/*
		 * With an '@' (one is taken off, and a domain of 16 hex
		 * digits is not a queue id then), unless it would make the
		 * argument too long: only a domain that came without one.
		 */
		snprintf(again, sizeof(again), "%s%s%s", verb[c.op],
			 !c.arg[0] ? "" : strlen(c.arg) < DD_DOMAIN_MAX ? " @" : " ",
			 c.arg);
	code = dd_ctl_parse(again, &c2, &text);
	FUZZ_CHECK(!code && c2.op == c.op && c2.by_qid == c.by_qid &&
		   c2.qid == c.qid && !strcmp(c2.arg, c.arg),
		   "'%s' parses to another command (%d)", again, code);
	free(line);
	return 0;
}
