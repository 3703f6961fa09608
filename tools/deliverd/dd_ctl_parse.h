/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control socket's X-commands as text: the verbs, their arguments
 * and the replies to a bad one.  Apart from dd_ctl.c, which runs the
 * commands on the workers, so that what parses a line from a client
 * needs no event loop (and can be tested and fuzzed alone).
 */
#ifndef DD_CTL_PARSE_H
#define DD_CTL_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "dd.h"

enum dd_ctl_op {
	DD_CTL_QUEUE = 1,	/* XQUEUE */
	DD_CTL_FLUSH,		/* XFLUSH [domain] */
	DD_CTL_HOLD,		/* XHOLD qid|domain */
	DD_CTL_RELEASE,		/* XRELEASE qid|domain */
	DD_CTL_STATS,		/* XSTATS */
};

struct dd_ctl_cmd {
	uint8_t op;			/* enum dd_ctl_op */
	bool by_qid;			/* HOLD, RELEASE: qid, not arg */
	uint64_t qid;
	char arg[DD_DOMAIN_MAX + 1];	/* domain, lowercased, no '@'; "" for all */
};

/*
 * Parse a command line (without CRLF).  0 with *cmd set, or the reply
 * code to answer (500 unknown command, 501 bad arguments) with *text
 * its enhanced code and text.
 */
int dd_ctl_parse(const char *line, struct dd_ctl_cmd *cmd, const char **text);

#endif /* DD_CTL_PARSE_H */
