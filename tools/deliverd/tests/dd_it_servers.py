# SPDX-License-Identifier: GPL-2.0
"""A catalogue of misbehaving SMTP servers, and what deliverd must do
with a message to each: retry it later with the reason in the delivery
log, or bounce it with a delivery status notification.

dd_testserver.py speaks correct SMTP with scripted replies; most kinds
here break the protocol itself (garbage, replies without CRLF, endless
multiline replies, resets, a server that stops reading), so they are
played by a small threaded server of our own, one per row, scripted by
stage.  Every row has its own domain routed to its own server, and one
daemon delivers to all of them at once; the rows then wait for their
outcomes side by side, so the whole catalogue costs about one retry
cycle and the longest timeout.  Rows already covered by a test of
their own in dd_integration.py (450 to RCPT, 550 to RCPT and MAIL, 451
after the dot, a body cut by dd_testserver, connection refused, a 421
greeting) are listed in Documentation/reliability.rst, not repeated.

Expected outcomes follow RFC 5321 and Postfix: a 5xx reply (to the
greeting, MAIL, RCPT, DATA or the dot) fails the recipient for good;
anything else (4xx, a timeout, a lost connection, a reply that breaks
the protocol) is temporary.  A connection lost after the final dot,
before the reply, is retried: the server may have taken the message,
so a duplicate is possible (RFC 1047), and the rows say so."""

import re
import socket
import struct
import threading
import time

from dd_integration import (test, check, wait_until, inject, crlf, Fail,
                            free_port, parse_dsn)

T = 3			# every stage timeout of the daemon here, seconds
BODY_T = 5		# but body_timeout (see run_catalogue)


class Hangup(Exception):
    """End the connection (the action closed or reset it)."""


class Peer:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.cmd = b""		# the command line being answered
        self.last_sent = b""

    def send(self, data):
        self.last_sent = data
        try:
            self.sock.sendall(data)
        except OSError:
            raise Hangup()

    def _fill(self):
        try:
            d = self.sock.recv(262144)
        except OSError:
            d = b""
        if not d:
            raise Hangup()
        self.buf += d

    def line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 100000:
                raise Hangup()
            self._fill()
        i = self.buf.index(b"\n")
        line = bytes(self.buf[:i]).rstrip(b"\r")
        del self.buf[:i + 1]
        return line

    def read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_dot(self):
        scan = 0
        while True:
            i = self.buf.find(b"\r\n.\r\n", scan)
            if i >= 0:
                body = bytes(self.buf[:i + 2])
                del self.buf[:i + 5]
                return re.sub(rb"(?m)^\.", b"", body)
            scan = max(0, len(self.buf) - 4)
            self._fill()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        raise Hangup()

    def reset(self):
        """Close with RST (SO_LINGER 0), as a crashing host would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.close()


# -- actions: what a stage does instead of its normal reply --------------

def say(data):
    return lambda p: p.send(data)


def hang(p):
    p.close()


def after(secs, then):
    def act(p):
        time.sleep(secs)
        then(p)
    return act


def drip(line, gap, total):
    """A multiline reply that never ends: line every gap s, total s."""
    def act(p):
        end = time.monotonic() + total
        while time.monotonic() < end:
            p.send(line)
            time.sleep(gap)
        p.close()
    return act


def stall(secs):
    """Read nothing and answer nothing for secs, then close."""
    def act(p):
        time.sleep(secs)
        p.close()
    return act


def cut_body(n, rst=False):
    def act(p):
        p.read_n(n)
        p.reset() if rst else p.close()
    return act


def slow_read(chunk, gap, upto):
    """Read the body chunk bytes every gap s (a slow link) for its first
    upto bytes, then at full speed: the end must not wait behind the
    daemon's socket buffer, or dot_timeout would run out instead."""
    def act(p):
        while len(p.buf) < upto and not p.buf.endswith(b"\r\n.\r\n"):
            time.sleep(gap)
            try:
                d = p.sock.recv(chunk)
            except OSError:
                d = b""
            if not d:
                raise Hangup()
            p.buf += d
    return act


GOOD = {
    "greeting": b"220 mx.test ESMTP catalogue\r\n",
    "ehlo": b"250-mx.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
    "helo": b"250 mx.test\r\n",
    "mail": b"250 2.1.0 Ok\r\n",
    "rcpt": b"250 2.1.5 Ok\r\n",
    "data": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    "dot": b"250 2.0.0 Ok: queued\r\n",
}


class Scripted:
    """A plain SMTP server (no PIPELINING, no CHUNKING: one reply per
    command, bodies by DATA) whose stages can be replaced, each action
    used once unless the row says always.  A body counts as taken (a
    copy) once it is read whole, before the reply to the dot: a real
    server would have it too."""

    def __init__(self, acts, always=False, rcvbuf=0):
        self.acts = dict(acts)
        self.always = always
        self.copies = []
        self.verbs = []
        self.lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:	# inherited by accepted sockets: a small window
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                  rcvbuf)
        self.port = free_port()
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def stop(self):
        self.stopped = True
        try:
            self.lsock.close()
        except OSError:
            pass

    def accept(self):
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(s,),
                             daemon=True).start()

    def take(self, stage):
        with self.lock:
            if stage not in self.acts:
                return None
            return self.acts[stage] if self.always \
                else self.acts.pop(stage)

    def step(self, p, stage):
        act = self.take(stage)
        if act is None:
            p.send(GOOD[stage])
            return GOOD[stage]
        if isinstance(act, bytes):
            p.send(act)
            return act
        act(p)
        return b""

    def conn(self, s):
        s.settimeout(120)
        p = Peer(s)
        try:
            self.step(p, "greeting")
            while True:
                line = p.cmd = p.line()
                verb = line.split(b" ", 1)[0].upper().decode("latin-1")
                with self.lock:
                    self.verbs.append(verb)
                if verb in ("EHLO", "HELO", "MAIL", "RCPT"):
                    self.step(p, verb.lower())
                elif verb == "DATA":
                    if not self.step(p, "data").startswith(b"354"):
                        continue
                    act = self.take("body")
                    if act:
                        act(p)
                    self.dot(p, p.read_dot())
                elif verb == "QUIT":
                    p.send(b"221 2.0.0 Bye\r\n")
                    p.close()
                else:
                    p.send(b"250 2.0.0 Ok\r\n")
        except Hangup:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def dot(self, p, body):
        """The reply to the dot; the body is a copy unless it was
        refused (a reply lost or never sent leaves the server with it)."""
        p.last_sent = b""
        with self.lock:
            self.copies.append(body)
        try:
            self.step(p, "dot")
        finally:
            if p.last_sent[:1] in (b"4", b"5"):
                with self.lock:
                    self.copies.remove(body)


# -- the catalogue ---------------------------------------------------------
#
# kind: (what the server does, its stage actions, options, outcome).
# Outcomes: ("defer", reason regex) deferred again and again with a
# reason matching (until max_age), never bounced; ("retry", reason
# regex, copies) deferred at attempt 1 with a
# reason matching, then delivered, the server holding that many copies;
# ("first", copies) delivered at attempt 1 all the same; ("bounce",
# code or None, DSN Status regex) failed for good with a DSN to the
# sender.

# Bodies of the rows that need bytes in flight; 8 MB is more than the
# daemon's socket buffers (tcp_wmem, 4 MB at most) and the window hold.
BIG = 1024 * 1024

CATALOGUE = [
    ("greeting_none", "accepts, never greets (greeting_timeout)",
     {"greeting": stall(4 * T)}, {},
     ("retry", r"timed out waiting for the greeting", 1)),
    ("greeting_slow", "greets after 1 s, within greeting_timeout",
     {"greeting": after(1, say(GOOD["greeting"]))}, {},
     ("first", 1)),
    # Postfix's default (smtp_skip_5xx_greeting = yes): a 5xx greeting
    # is a site that will not talk now, not a verdict on the recipient.
    ("greeting_554", "greets 554 5.7.1: no service here",
     {"greeting": say(b"554 5.7.1 no mail service here\r\n")},
     {"always": True}, ("defer", r"554")),
    ("greeting_garbage", "greets with a line that is no reply",
     {"greeting": say(b"HELLO, this is not SMTP\r\n")}, {},
     ("retry", r"malformed", 1)),
    ("ehlo_502_helo", "502 to EHLO, 250 to HELO (an old server)",
     {"ehlo": say(b"502 5.5.1 EHLO not implemented\r\n")},
     {"always": True}, ("first", 1)),
    ("ehlo_451", "451 to EHLO once",
     {"ehlo": say(b"451 4.3.0 not now\r\n")}, {},
     ("retry", r"451", 1)),
    ("reply_too_long", "a 5000-byte greeting line",
     {"greeting": say(b"220 " + b"x" * 5000 + b"\r\n")}, {},
     ("retry", r"too long", 1)),
    ("reply_endless", "an EHLO reply of 250- lines that never ends",
     {"ehlo": drip(b"250-and another thing\r\n", 0.2, 20 * T)}, {},
     ("retry", r"timed out waiting for the EHLO", 1)),
    ("reply_no_crlf", "\"250 ok\" to MAIL without its CRLF, then silence",
     {"mail": lambda p: (p.send(b"250 2.1.0 ok"), time.sleep(4 * T),
                         p.close())}, {},
     ("retry", r"timed out waiting for the MAIL", 1)),
    ("reply_bad_code", "\"2x0\" as the reply code to MAIL",
     {"mail": say(b"2x0 what\r\n")}, {},
     ("retry", r"malformed", 1)),
    ("reply_mixed_codes", "a multiline reply to RCPT whose code changes",
     {"rcpt": say(b"250-first\r\n550 second\r\n")}, {},
     ("retry", r"code changed", 1)),
    ("mail_451", "451 to MAIL once",
     {"mail": say(b"451 4.3.0 try later\r\n")}, {},
     ("retry", r"451", 1)),
    ("rcpt_mixed", "550 to one recipient, 450 to the other once",
     {}, {"rcpt_script": True},
     ("mixed",)),
    ("data_451", "451 to DATA once",
     {"data": say(b"451 4.3.0 not now\r\n")}, {},
     ("retry", r"451", 1)),
    ("data_554", "554 to DATA",
     {"data": say(b"554 5.5.1 no valid recipients\r\n")},
     {"always": True}, ("bounce", 554, r"5\.5\.1")),
    ("data_no_354", "250 to DATA instead of 354",
     {"data": say(b"250 2.0.0 ok?\r\n")}, {},
     ("retry", r".", 1)),
    ("dot_554", "554 5.6.0 after the final dot (content refused)",
     {"dot": say(b"554 5.6.0 content rejected\r\n")},
     {"always": True}, ("bounce", 554, r"5\.6\.0")),
    ("dot_421", "421 after the final dot, then closes",
     {"dot": lambda p: (p.send(b"421 4.3.0 going down\r\n"), p.close())},
     {}, ("retry", r"421", 1)),
    ("dot_slow", "replies to the dot after 4 x dot_timeout",
     {"dot": after(4 * T, say(GOOD["dot"]))}, {},
     ("retry", r"timed out waiting for the end of data", 2)),
    ("close_after_greeting", "closes right after the greeting",
     {"ehlo": hang}, {}, ("retry", r"lost|closed", 1)),
    ("close_at_mail", "closes on MAIL without a reply",
     {"mail": hang}, {}, ("retry", r"lost|closed", 1)),
    ("close_at_rcpt", "closes on RCPT without a reply",
     {"rcpt": hang}, {}, ("retry", r"lost|closed", 1)),
    ("close_at_data", "closes on DATA without a reply",
     {"data": hang}, {}, ("retry", r"lost|closed", 1)),
    ("reset_mid_body", "TCP RST after 300 body bytes",
     {"body": cut_body(300, rst=True)}, {"size": BIG},
     ("retry", r"lost|reset|failed|closed", 1)),
    ("close_after_dot", "takes the body, closes before the reply",
     {"dot": hang}, {},
     ("retry", r"lost|closed", 2)),
    # 12 MB: the daemon is still writing (its buffer holds 4 MB at most)
    # when the reader speeds up, so dot_timeout has not started yet.
    ("body_slow_reader", "reads 6 MB of the body at 1 MB/s: longer than "
     "body_timeout in all, never stalled that long",
     {"body": slow_read(262144, 0.25, 6 * BIG)},
     {"size": 12 * BIG, "rcvbuf": 65536},
     ("first", 1)),
    ("stops_reading", "stops reading mid-body: the window fills",
     {"body": stall(4 * BODY_T)}, {"size": 8 * BIG, "rcvbuf": 4096},
     ("retry", r"timed out waiting for the body", 1)),
]


def dsn_status(eml, rcpt):
    """The Status of rcpt's block in a DSN, or None."""
    _, text = parse_dsn(eml)
    for block in re.split(r"\n\s*\n", text or ""):
        if re.search(r"Final-Recipient:\s*rfc822;\s*%s" % re.escape(rcpt),
                     block, re.I):
            m = re.search(r"^Status:\s*(\S+)", block, re.M)
            return m.group(1) if m else None
    return None


class MixedRcpt(Scripted):
    """550 to fail@, 450 once to later@, 250 otherwise."""

    def __init__(self):
        super().__init__({})
        self.later = 0

    def step(self, p, stage):
        if stage == "rcpt" and b"<fail@" in p.cmd:
            p.send(b"550 5.1.1 no such user\r\n")
            return b"550"
        if stage == "rcpt" and b"<later@" in p.cmd and not self.later:
            self.later += 1
            p.send(b"450 4.2.1 mailbox busy\r\n")
            return b"450"
        return super().step(p, stage)


def run_catalogue(ctx, rows):
    servers = {}
    for name, what, acts, opt, outcome in rows:
        if opt.get("rcpt_script"):
            srv = MixedRcpt()
        else:
            srv = Scripted(acts, opt.get("always", False),
                           opt.get("rcvbuf", 0))
        ctx.procs.append(srv)
        servers[name] = srv
    bounces = ctx.server(name="bounces")
    routes = {"%s.test" % n.replace("_", "-"): srv.port
              for n, srv in servers.items()}
    routes["sender.test"] = bounces
    settings = {"retry_min": 1, "retry_max": 2, "dest_backoff": 1,
                "conn_idle": 0, "message_size_limit": 32 * BIG}
    for st in ("connect", "greeting", "helo", "mail", "rcpt", "data",
               "dot", "rset", "quit"):
        settings["%s_timeout" % st] = T
    # The kernel says a socket is writable again only once a third of its
    # buffer (up to 4 MB) is free: a slow reader shows progress in steps
    # of a second or more, so the body's own timeout is longer.
    settings["body_timeout"] = BODY_T
    d = ctx.daemon(settings, routes=routes)
    qids = {}
    for name, what, acts, opt, outcome in rows:
        dom = "%s.test" % name.replace("_", "-")
        rc = ["fail@%s" % dom, "later@%s" % dom] \
            if outcome[0] == "mixed" else ["u@%s" % dom]
        size = opt.get("size", 0)
        body = crlf("From: s@sender.test\nSubject: %s\n\n%s\n"
                    % (name, what))
        if size:
            body += b"".join(b"%07d %s\r\n" % (i, b"b" * 70)
                             for i in range(size // 80))
        qids[name] = inject(d.addr, "s@sender.test", rc, body)

    def settled():
        for name, what, acts, opt, outcome in rows:
            ents = [e for e in d.dlog() if e.get("qid") == qids[name]]
            final = [e for e in ents if e.get("status") in
                     ("delivered", "bounced", "failed", "expired")]
            if outcome[0] == "defer":
                final = [e for e in ents if e.get("status") == "deferred"]
            if len(final) < (2 if outcome[0] in ("mixed", "defer") else 1):
                return False
        return True
    try:
        wait_until(settled, 120, "every row delivered or bounced")
    except Fail as e:
        ctx.diag(str(e))		# the rows say which
    time.sleep(1)		# late copies, bounces in flight
    nb = sum(1 for r in rows if r[4][0] in ("bounce", "mixed"))
    bmsgs = bounces.wait_messages(nb, 60)
    bad = []
    table = []
    for name, what, acts, opt, outcome in rows:
        ents = [e for e in d.dlog() if e.get("qid") == qids[name]]
        seq = [(e.get("rcpt", "").split("@")[0], e.get("status"),
                e.get("attempt"), e.get("code")) for e in ents]
        copies = len(servers[name].copies)
        got = "%s, %d copies" % (seq, copies)
        table.append("%-20s %s; first reason: %s" % (
            name, got, ents[0].get("reply") if ents else None))
        kind = outcome[0]
        try:
            if kind == "defer":
                check(len(ents) >= 2 and all(e.get("status") == "deferred"
                                             for e in ents),
                      "want deferred, again: %s" % got)
                check(all(re.search(outcome[1], str(e.get("reply")))
                          for e in ents), "reasons: %s" % got)
                check(copies == 0, "copies: %s" % got)
            elif kind == "retry":
                check(ents and ents[0].get("status") == "deferred",
                      "want deferred first: %s" % got)
                reason = "%s %s" % (ents[0].get("code"), ents[0].get("reply"))
                check(re.search(outcome[1], reason, re.I),
                      "deferral reason %r does not match %r"
                      % (reason, outcome[1]))
                check(ents[-1].get("status") == "delivered" and
                      all(e.get("status") == "deferred" for e in ents[:-1]),
                      "want deferred then delivered: %s" % got)
                check(copies == outcome[2], "want %d copies at the server: "
                      "%s" % (outcome[2], got))
            elif kind == "first":
                check([e.get("status") for e in ents] == ["delivered"] and
                      ents[0].get("attempt") == 1,
                      "want delivered at attempt 1: %s" % got)
                check(copies == outcome[1], "copies: %s" % got)
            elif kind == "bounce":
                check([e.get("status") for e in ents] == ["bounced"],
                      "want bounced at once: %s" % got)
                if outcome[1]:
                    check(ents[0].get("code") == outcome[1],
                          "bounce code: %s" % got)
                st = [dsn_status(e, "u@%s.test" % name.replace("_", "-"))
                      for _, e in bmsgs]
                st = [x for x in st if x]
                check(st and re.match(outcome[2], st[0]),
                      "DSN Status %r, want %r" % (st, outcome[2]))
                check(copies == 0, "copies: %s" % got)
            elif kind == "mixed":
                fail = [e for e in ents
                        if e.get("rcpt", "").startswith("fail")]
                later = [e for e in ents
                         if e.get("rcpt", "").startswith("later")]
                check([e.get("status") for e in fail] == ["bounced"],
                      "fail@: %s" % got)
                check([e.get("status") for e in later] ==
                      ["deferred", "delivered"], "later@: %s" % got)
                check(copies == 1, "copies: %s" % got)
        except Fail as e:
            bad.append("%s (%s): %s" % (name, what, e))
    for line in table:
        ctx.diag(line)
    check(d.alive(), "deliverd died")
    check(not bad, "%d of %d rows wrong:\n%s" % (len(bad), len(rows),
                                                 "\n".join(bad)))


@test("servers_catalogue", "servers: %d kinds of misbehaving server "
      "(silent, garbage, oversized/endless/partial replies, 4xx/5xx and "
      "disconnects at each stage, RST mid-body, a full window) each get "
      "the right retry or bounce" % len(CATALOGUE))
def t_catalogue(ctx):
    run_catalogue(ctx, CATALOGUE)
