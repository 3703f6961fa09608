# SPDX-License-Identifier: GPL-2.0
"""Integration tests of deliverd's listener against hostile clients, with
raw sockets: slowloris, clients that never read, oversized lines and
chunks, binary garbage, pipelining abuse and SMTP smuggling.

The limit_* tests in dd_integration.py cover each limit once with a
well-behaved client; these cover what an attacker does around them.
After each, the daemon must still deliver, and its open files and RSS
(from /proc) must come back to what they were before the attack.
Timeouts are kept short (smtpd_timeout = 2 s) and waits generous: the
tests assert what happens, never how fast."""

import os
import random
import re
import socket
import ssl
import threading
import time

import dd_integration
from dd_integration import (test, check, wait_until, inject, crlf,
                            RawSMTP, SMTPClosed, text_of, want, session,
                            vmrss_kb, split_received)

TIMEOUT = 2		# smtpd_timeout in these tests, seconds


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Baseline:
    """The daemon's open files and RSS once it has delivered one message:
    segment files, the delivery log and the sink's session exist then."""

    def __init__(self, d, sink):
        self.d, self.sink = d, sink
        self.n = 0
        self.deliver("warm-up")
        self.fds = nfds(d.proc.pid)
        self.rss = vmrss_kb(d.proc.pid)

    def deliver(self, tag):
        self.n += 1
        inject(self.d.addr, "a@src.test", ["ok%d@dst.test" % self.n],
               crlf("Subject: %s\n\nstill serving\n" % tag))
        self.sink.wait_messages(self.n, 30)

    def check(self, what):
        """The daemon answers and delivers, and gives back what the
        attack took: its fds within 2 of before (an outbound session may
        be open or not), RSS within 8 MB (32 MB under ASan, which keeps
        freed memory in quarantine for a while)."""
        rss_slack_kb = (32 if "san" in dd_integration.OPTS.variant
                        else 8) * 1024
        check(self.d.alive(), "deliverd died after %s" % what)
        self.deliver("after " + what)
        pid = self.d.proc.pid
        wait_until(lambda: nfds(pid) <= self.fds + 2, 30,
                   "deliverd's fds back to %d after %s (now %d)"
                   % (self.fds, what, nfds(pid)))
        grow = vmrss_kb(pid) - self.rss
        check(grow < rss_slack_kb, "RSS %d KB over the baseline after %s "
              "(want < %d KB)" % (grow, what, rss_slack_kb))
        return grow


def hostile_daemon(ctx, **settings):
    s = ctx.server(name="sink")
    conf = {"smtpd_timeout": TIMEOUT}
    conf.update(settings)
    d = ctx.daemon(conf, routes={"*": s})
    return d, s, Baseline(d, s)


def read_all(sock, wait):
    """Everything the peer sends until it closes (or wait s pass)."""
    sock.settimeout(wait)
    out = b""
    end = time.monotonic() + wait
    try:
        while time.monotonic() < end:
            d = sock.recv(65536)
            if not d:
                return out, True
            out += d
    except (socket.timeout, BlockingIOError):
        return out, False
    except OSError:
        return out, True
    return out, False


class Dribbler(threading.Thread):
    """Sends data one byte every `gap` seconds until the server closes
    (or the data runs out); records whether it ran out first."""

    def __init__(self, sock, data, gap=0.3):
        super().__init__(daemon=True)
        self.sock, self.data, self.gap = sock, data, gap
        self.sent = 0
        self.finished = False

    def run(self):
        for i in range(len(self.data)):
            try:
                self.sock.send(self.data[i:i + 1])
            except OSError:
                return
            self.sent += 1
            time.sleep(self.gap)
        self.finished = True


@test("hostile_slowloris", "hostile: 4 slowloris clients (command, DATA "
      "line, BDAT chunk, greeting only) fill connection_limit; each gets "
      "421 4.4.2 from smtpd_timeout and its slot back")
def t_slowloris(ctx):
    d, s, base = hostile_daemon(ctx, connection_limit=4)
    long_cmd = b"MAIL FROM:<" + b"s" * 300 + b"@src.test>\r\n"
    conns, drips = [], []
    for kind in ("command", "data", "bdat", "silent"):
        c = session(d)
        if kind == "data":
            c.cmd("MAIL FROM:<a@src.test>")
            c.cmd("RCPT TO:<b@dst.test>")
            want(c.cmd("DATA"), 354, None, "DATA")
            data = b"Subject: " + b"x" * 300 + b"\r\n"
        elif kind == "bdat":
            c.cmd("MAIL FROM:<a@src.test>")
            c.cmd("RCPT TO:<b@dst.test>")
            c.send(b"BDAT 2000 LAST\r\n")
            data = b"y" * 300
        elif kind == "command":
            data = long_cmd
        else:
            data = b""
        t = Dribbler(c.sock, data)
        t.start()
        conns.append((kind, c))
        drips.append(t)
    # The limit is full: a fifth client is turned away.
    e = RawSMTP(d.addr)
    want(e.reply(), 421, "4.7.0", "a 5th connection over connection_limit=4")
    e.close()
    for (kind, c), t in zip(conns, drips):
        out, closed = read_all(c.sock, 60)
        check(closed, "%s slowloris: not closed within 60 s (smtpd_timeout "
              "= %d s); got %r" % (kind, TIMEOUT, out[-200:]))
        check(b"421 4.4.2" in out, "%s slowloris: closed without 421 "
              "4.4.2: %r" % (kind, out[-200:]))
        check(not t.finished or kind == "silent",
              "%s slowloris: sent all %d bytes (%.0f s) before the server "
              "cut it; the timeout must not restart at every byte"
              % (kind, len(t.data), len(t.data) * t.gap))
        c.close()
    check(s.count() == 1, "a slowloris message was delivered")
    # Slots are free again: four fresh sessions at once.
    fresh = [session(d) for _ in range(4)]
    for c in fresh:
        want(c.cmd("NOOP"), 250, None, "NOOP on a freed slot")
        c.cmd("QUIT")
        c.close()
    base.check("slowloris")
    check("smtpd_timeout" in d.log(), "no smtpd_timeout line in the "
          "daemon's log")


@test("hostile_no_read", "hostile: a client pipelining 4 MB of EHLO and "
      "reading nothing: RSS bounded, session closed by smtpd_timeout")
def t_no_read(ctx):
    d, s, base = hostile_daemon(ctx)
    c = RawSMTP(d.addr)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    blob = b"EHLO never.reads.test\r\n" * (4 * 1024 * 1024 // 23)
    done = threading.Event()

    def sender():
        try:
            c.sock.settimeout(120)
            c.sock.sendall(blob)
        except OSError:
            pass
        done.set()
    threading.Thread(target=sender, daemon=True).start()
    peak = 0
    pid = d.proc.pid
    # The server stops reading once replies back up; then, the client
    # taking no reply bytes, smtpd_timeout closes the session.
    end = time.monotonic() + 60
    while time.monotonic() < end and not done.is_set():
        peak = max(peak, vmrss_kb(pid))
        time.sleep(0.2)
    check(done.is_set(), "the session was not closed within 60 s of a "
          "client that reads nothing")
    grow = peak - base.rss
    check(grow < 8 * 1024, "RSS grew %d KB for a client that reads "
          "nothing" % grow)
    # The sender stopped because the daemon closed, not because the
    # daemon swallowed it all: reading now ends in EOF or a reset.
    _, closed = read_all(c.sock, 60)
    check(closed, "the daemon did not close the session of a client "
          "that reads nothing")
    c.close()
    ctx.diag("peak RSS growth %d KB" % grow)
    base.check("a client that never reads")


@test("hostile_long_lines", "hostile: 1 MB command line (500 5.5.2, in "
      "step after), 1 MB header and body lines delivered byte-exact, BDAT "
      "chunk longer than announced parsed as commands")
def t_long_lines(ctx):
    d, s, base = hostile_daemon(ctx)
    c = session(d)
    c.send(b"MAIL FROM:<" + b"L" * (1024 * 1024) + b"@src.test>\r\n")
    want(c.reply(), 500, "5.5.2", "1 MB MAIL line")
    want(c.cmd("NOOP"), 250, None, "NOOP after it (in step)")
    # 1 MB lines inside DATA are the message's: kept whole, byte-exact.
    body = (b"Subject: long\r\nX-Long: " + b"h" * (1024 * 1024) +
            b"\r\n\r\n" + b"b" * (1024 * 1024) + b"\r\nend\r\n")
    qid = inject(d.addr, "a@src.test", ["long@dst.test"], body)
    check(qid, "no queue id")
    # BDAT 10 followed by 22 octets: the 12 extra are the next command.
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<chunk@dst.test>")
    c.send(b"BDAT 10 LAST\r\n0123456789" + b"NOT A CMD\r\n")
    r = c.reply()
    want(r, 250, "2.0.0", "BDAT 10 LAST")
    want(c.reply(), 500, "5.5.1", "the octets past the announced size")
    want(c.cmd("NOOP"), 250, None, "NOOP after it")
    c.close()
    msgs = s.wait_messages(3, 60)
    got = {m["rcpts"][0]: e for m, e in msgs}
    split_received(got["long@dst.test"], body)
    split_received(got["chunk@dst.test"], b"0123456789\r\n")
    base.check("long lines")


@test("hostile_bdat_huge", "hostile: BDAT announcing 10^12 octets over "
      "message_size_limit: 64 MB streamed in discarded with bounded RSS, "
      "552 never delivered, then 421 4.4.2 when it stalls")
def t_bdat_huge(ctx):
    d, s, base = hostile_daemon(ctx, message_size_limit=100000)
    c = session(d)
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<huge@dst.test>")
    c.send(b"BDAT 1000000000000 LAST\r\n")
    chunk = b"z" * 65536
    peak = 0
    for i in range(1024):		# 64 MB
        c.sock.sendall(chunk)
        if i % 64 == 0:
            peak = max(peak, vmrss_kb(d.proc.pid))
    check(peak - base.rss < 8 * 1024, "RSS grew %d KB while a too-big "
          "chunk streamed in (it must be discarded)" % (peak - base.rss))
    out, closed = read_all(c.sock, 60)
    check(closed and b"421 4.4.2" in out, "stalled inside a huge BDAT "
          "chunk: closed %s, got %r" % (closed, out[-200:]))
    c.close()
    check(s.count() == 1, "something of the huge chunk was delivered")
    base.check("a huge BDAT chunk")


def client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl, memory BIOs)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="deliverd.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outg.read()


@test("hostile_garbage", "hostile: NUL, random bytes, 8-bit commands and "
      "a TLS ClientHello get 5xx, then 421 4.7.0 at error_limit; the "
      "ClientHello session ends")
def t_garbage(ctx):
    d, s, base = hostile_daemon(ctx, error_limit=5)
    c = session(d)
    want(c.cmd("MAIL\0FROM:<a@src.test>"), 500, "5.5.2", "NUL in MAIL")
    want(c.cmd("NOOP \x01\x02"), 500, "5.5.2", "control bytes")
    c.send(b"\xc3\xa9HLO x\r\n")
    want(c.reply(), 500, "5.5.1", "8-bit verb")
    c.send(b"MAIL FROM:<\xff\xfe@src.test>\r\n")
    r = c.reply()
    check(500 <= r[0] < 600, "8-bit sender without SMTPUTF8: %s"
          % text_of(r))
    r = c.cmd("FROB")
    want(r, 421, "4.7.0", "the 5th error (error_limit=5)")
    check(c.is_closed(10), "not closed after 421")
    c.close()
    # Random binary lines: every reply 5xx, the last 421, then closed.
    rnd = random.Random(9)
    c = session(d)
    codes = []
    for i in range(10):
        line = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1,
                                                                     200)))
        c.send(line.replace(b"\n", b"") + b"\r\n")
        try:
            codes.append(c.reply()[0])
        except SMTPClosed:
            break
        if codes[-1] == 421:
            break
    check(codes and codes[-1] == 421 and
          all(500 <= x < 600 for x in codes[:-1]) and len(codes) == 5,
          "replies to random lines %r, want four 5xx then 421" % codes)
    check(c.is_closed(10), "not closed after 421")
    c.close()
    # TLS on the plain port: no line end may ever come; the session ends
    # with a reply (5xx per line, or 421 at smtpd_timeout), never hangs.
    raw = socket.create_connection(d.addr, 10)
    raw.recv(1000)
    raw.sendall(client_hello())
    out, closed = read_all(raw, 60)
    check(closed and re.search(rb"^(5\d\d|421) ", out, re.M),
          "TLS ClientHello on the plain port: closed %s, got %r"
          % (closed, out[:300]))
    ctx.diag("ClientHello on the plain port got: %s" % " | ".join(
        x.decode(errors="replace") for x in out.splitlines()))
    raw.close()
    check(s.count() == 1, "garbage was delivered")
    base.check("garbage")


@test("hostile_pipelining", "hostile: commands before the greeting, a "
      "whole session in one write, commands after the body in its write, "
      "5000 RCPT in one write; replies in order, all delivered right")
def t_pipelining(ctx):
    d, s, base = hostile_daemon(ctx, recipient_limit=1000)
    # Before the greeting, and MAIL before EHLO: 503, then in step.
    raw = socket.create_connection(d.addr, 10)
    raw.sendall(b"MAIL FROM:<a@src.test>\r\nEHLO early.test\r\n"
                b"MAIL FROM:<a@src.test>\r\nRCPT TO:<early@dst.test>\r\n"
                b"DATA\r\nSubject: early\r\n\r\nearly\r\n.\r\nQUIT\r\n")
    out, closed = read_all(raw, 30)
    raw.close()
    codes = [int(m) for m in re.findall(rb"^(\d{3}) ", out, re.M)]
    check(codes == [220, 503, 250, 250, 250, 354, 250, 221],
          "early talker's replies %r (want 220 503 250 250 250 354 250 "
          "221)" % codes)
    # Two transactions, the second right behind the first's body.
    raw = socket.create_connection(d.addr, 10)
    one = b"Subject: one\r\n\r\nfirst body\r\n"
    two = b"Subject: two\r\n\r\nsecond body\r\n"
    raw.sendall(b"EHLO x\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<one@dst.test>"
                b"\r\nDATA\r\n" + one + b".\r\nMAIL FROM:<a@src.test>\r\n"
                b"RCPT TO:<two@dst.test>\r\nDATA\r\n" + two + b".\r\nQUIT\r\n")
    out, closed = read_all(raw, 30)
    raw.close()
    codes = [int(m) for m in re.findall(rb"^(\d{3}) ", out, re.M)]
    check(codes == [220, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221],
          "two pipelined transactions: replies %r" % codes)
    # 5000 RCPT in one write: 1000 accepted, 4000 get 452, one delivery.
    c = session(d)
    rss0 = vmrss_kb(d.proc.pid)
    c.send(b"MAIL FROM:<a@src.test>\r\n" +
           b"".join(b"RCPT TO:<r%d@many.test>\r\n" % i for i in range(5000))
           + b"DATA\r\n")
    want(c.reply(), 250, None, "MAIL")
    codes = [c.reply()[0] for _ in range(5000)]
    check(codes == [250] * 1000 + [452] * 4000, "RCPT replies: %d 250, %d "
          "452, other %r" % (codes.count(250), codes.count(452),
                             sorted(set(codes) - {250, 452})))
    want(c.reply(), 354, None, "DATA")
    c.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
    want(c.reply(), 250, "2.0.0", "end of DATA")
    c.close()
    msgs = s.wait_messages(4, 60)
    by = {}
    for m, e in msgs:
        for r in m["rcpts"]:
            by[r] = e
    split_received(by["early@dst.test"],
                   b"Subject: early\r\n\r\nearly\r\n")
    split_received(by["one@dst.test"], one)
    split_received(by["two@dst.test"], two)
    d.wait_dlog(lambda e: str(e.get("rcpt")).endswith("@many.test"), 1000,
                60, "1000 deliveries to many.test")
    ctx.diag("RSS growth over 5000 RCPT: %d KB"
             % (vmrss_kb(d.proc.pid) - rss0))
    base.check("pipelining abuse")


# (name, bytes after "line one", what must be delivered for them).
# Behind each comes a smuggled transaction, then the real end of data.
SMUGGLE = [
    ("LF.LF", b"\n.\n", b"\r\n.\r\n"),
    ("CR.CR", b"\r.\r", b"\r.\r"),
    ("LF.CRLF", b"\n.\r\n", b"\r\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n", b"\r\n.\r\n"),
    ("CR.CRLF", b"\r.\r\n", b"\r.\r\n"),
    # a line that starts with "." and goes on is unstuffed (RFC 5321
    # 4.5.2): its dot is transparency, the rest is kept
    ("CRLF.CR", b"\r\n.\r", b"\r\n\r"),
]
SMUGGLED = (b"MAIL FROM:<evil@src.test>\r\nRCPT TO:<victim@victim.test>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")


@test("hostile_smuggling", "hostile: bare LF / bare CR end-of-data "
      "look-alikes (\\n.\\n, \\r.\\r, \\n.\\r\\n, ...) never end the "
      "message: delivered whole, nothing smuggled, through BDAT and DATA")
def t_smuggling(ctx):
    bdat = ctx.server(name="bdat")
    data = ctx.server("--no-chunking", name="data")
    other = ctx.server(name="other")
    d = ctx.daemon({"smtpd_timeout": TIMEOUT},
                   routes={"bdat.test": bdat, "data.test": data,
                           "*": other})
    want_bodies = {}
    for name, seq, kept in SMUGGLE:
        for dom in ("bdat.test", "data.test"):
            rcpt = "%s@%s" % (name.lower().replace(".", "-"), dom)
            head = b"Subject: smuggle %s\r\n\r\nline one" % name.encode()
            c = session(d)
            c.cmd("MAIL FROM:<a@src.test>")
            want(c.cmd("RCPT TO:<%s>" % rcpt), 250, None, "RCPT")
            want(c.cmd("DATA"), 354, None, "DATA")
            c.send(head + seq + SMUGGLED + b".\r\n")
            want(c.reply(), 250, "2.0.0", "end of the %s message" % name)
            # One reply only: a smuggled MAIL would have answered too.
            want(c.cmd("NOOP"), 250, "2.0.0", "NOOP after the %s message"
                 % name)
            c.close()
            want_bodies[rcpt] = head + kept + SMUGGLED
    n = len(SMUGGLE)
    got = bdat.wait_messages(n, 60) + data.wait_messages(n, 60)
    for m, e in got:
        check(len(m["rcpts"]) == 1 and m["rcpts"][0] in want_bodies,
              "unexpected delivery to %r" % m["rcpts"])
        split_received(e, want_bodies[m["rcpts"][0]])
    time.sleep(1)
    check(other.count() == 0 and len(got) == 2 * n,
          "%d messages elsewhere (smuggled?), %d delivered of %d"
          % (other.count(), len(got), 2 * n))
    check(not [e for e in d.dlog() if "victim" in str(e.get("rcpt"))],
          "the smuggled recipient is in the delivery log")
