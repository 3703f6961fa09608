/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The addresses a destination without a static route is delivered to:
 * its MX hosts by preference (equal ones shuffled), or the domain itself
 * when it has no MX (RFC 5321 5.1), each host's IPv6 then IPv4 addresses.
 * dd_dest.c asks for them before it opens sessions, takes one target per
 * session and reports how the session ended; the list is resolved again
 * once the shortest TTL of the answers it was made from has run out.
 */
#ifndef DD_MX_H
#define DD_MX_H

#include "dd_dest.h"

enum dd_mx_state {
	DD_MX_READY = 0,	/* targets to connect to */
	DD_MX_WAIT,		/* a lookup is on its way: dd_dest_wake() follows */
	DD_MX_PERM,		/* the domain takes no mail: bounce */
	DD_MX_TEMP,		/* lookups failed for now: defer and suspend */
};

/*
 * Before opening sessions for an unrouted destination.  PERM and TEMP are
 * reported once, with the reply to log and bounce with in *rp (code, enh
 * and text); the next call looks the domain up again (negative answers
 * come from the cache while their TTL lasts).
 */
enum dd_mx_state dd_mx_prepare(struct dd_dest *d, struct dd_smtp_reply *rp);
/* The address the next session connects to (after READY); false: none. */
bool dd_mx_target(struct dd_dest *d, struct dd_target *t);
/*
 * A session with a target from dd_mx_target() ended (d->nconns already
 * counts it out).  failed: it could not connect or was not greeted; true
 * when another address is left to try before the destination is
 * suspended.
 */
bool dd_mx_closed(struct dd_dest *d, struct dd_out *o, bool failed,
		  const char *why);

#endif /* DD_MX_H */
