# SPDX-License-Identifier: GPL-2.0
"""Integration tests of deliverd under faults: kill -9 again and again
under load, a spool on a file system that fills up, privileges dropped
after binding, and injection refused to networks not allowed.

The kill loop takes its number of kills from DD_KILLS (default 10, the
short run of make check; DD_KILLS=120 is the long one) and its random
delays from DD_SEED (default: from the clock); both are printed, so a
failing run can be replayed with the same seed."""

import glob
import os
import random
import re
import smtplib
import socket
import subprocess
import threading
import time

from dd_integration import (Fail, Skip, RawSMTP, check, crlf, inject,
                            split_received, tail, test, text_of,
                            wait_until, want)

MSGID_RE = re.compile(rb"Message-ID: <(\d+)\.fault@src\.test>")


def sink_seqs(srv):
    """{seq: copies} of the messages the test server recorded, by the
    sequence number in their Message-ID."""
    out = {}
    for p in glob.glob(os.path.join(srv.rec, "*.eml")):
        try:
            with open(p, "rb") as f:
                m = MSGID_RE.search(f.read(8192))
        except OSError:
            continue
        if m:
            k = int(m.group(1))
            out[k] = out.get(k, 0) + 1
    return out


class Injector:
    """Client threads injecting numbered messages over SMTP as fast as the
    daemon takes them, reconnecting whenever it goes away.  A message is
    acknowledged only once its 250 'queued as' reply came back; one whose
    session broke before that may or may not have been stored."""

    def __init__(self, port, nclients=3, size=lambda seq: seq % 30):
        self.port = port
        self.size = size
        self.lock = threading.Lock()
        self.next = 0
        self.acked = {}		# seq -> queue id
        self.broken = 0		# sessions cut by a kill
        self.refused = 0	# connections refused while it was down
        self.bad = []		# replies no restart explains
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(k,),
                                         daemon=True)
                        for k in range(nclients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def take(self):
        with self.lock:
            self.next += 1
            return self.next

    def body(self, seq):
        return ("From: a@src.test\r\nTo: r@dst.test\r\n"
                "Message-ID: <%d.fault@src.test>\r\nSubject: fault %d\r\n"
                "\r\nmessage %d\r\n" % (seq, seq, seq) +
                "filler line for some bulk\r\n" * self.size(seq)).encode()

    def client(self, k):
        while not self.stop.is_set():
            try:
                c = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
            except OSError:
                with self.lock:
                    self.refused += 1
                time.sleep(0.05)
                continue
            try:
                c.ehlo("inj%d.test" % k)
                while not self.stop.is_set():
                    seq = self.take()
                    c.mail("a@src.test")
                    code, _ = c.rcpt("r%d@dst.test" % (seq % 5))
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, b"RCPT")
                    code, resp = c.data(self.body(seq))
                    m = re.search(r"queued as ([0-9A-F]{16})\b",
                                  resp.decode(errors="replace"))
                    if code != 250 or not m:
                        raise smtplib.SMTPResponseException(code, resp)
                    with self.lock:
                        self.acked[seq] = m.group(1)
                c.quit()
            except smtplib.SMTPResponseException as e:
                # A 4xx in answer to a session the daemon was stopping is
                # fine; anything else is not.
                if e.smtp_code // 100 != 4:
                    with self.lock:
                        self.bad.append("%d %r" % (e.smtp_code,
                                                   e.smtp_error))
                with self.lock:
                    self.broken += 1
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.broken += 1
            finally:
                c.close()


def spool_files(spool):
    """Check the spool's files pair up: every seg-N.dat has its .jnl and
    every .jnl its .dat, and no .tmp is left.  Returns the .dat names."""
    names = set(os.listdir(spool))
    dats = sorted(n for n in names if re.fullmatch(r"seg-\d{8,}\.dat", n))
    jnls = sorted(n for n in names if re.fullmatch(r"seg-\d{8,}\.jnl", n))
    tmps = sorted(n for n in names if n.endswith(".tmp"))
    check(not tmps, "segment(s) left half made: %r" % tmps)
    check([d[:-4] for d in dats] == [j[:-4] for j in jnls],
          "segments and journals do not pair up: %r / %r" % (dats, jnls))
    return dats


def queued(d):
    """Recipients waiting in the daemon's queue, from the totals line of
    `deliverctl queue --json`."""
    q = d.queue_json()
    for e in q:
        if "total_dests" in e or "total_msgs" in e:
            return sum(int(e.get(k) or 0) for k in
                       ("queued", "deferred", "active", "held"))
    raise Fail("no totals in deliverctl queue --json: %r" % q)


RECOVERED_RE = re.compile(r"spool: \S+: (\d+) segments, (\d+) messages "
                          r"pending, (\d+) records skipped")


def last_recovery(log):
    """(segments, pending, skipped) of the last start in the daemon log."""
    m = RECOVERED_RE.findall(log)
    check(m, "no 'N segments, M messages pending' line in the log")
    return tuple(int(x) for x in m[-1])


@test("crash_kill_loop", "crash: kill -9 at random moments under load "
      "(DD_KILLS times, 10 by default), restarted on the same spool: no "
      "acknowledged message lost, duplicates counted, spool consistent",
      needs=("deliverd", "deliverctl"))
def t_kill_loop(ctx):
    kills = int(os.environ.get("DD_KILLS", "10"))
    seed = int(os.environ.get("DD_SEED", "0")) or \
        int.from_bytes(os.urandom(4), "little")
    rnd = random.Random(seed)
    ctx.diag("DD_KILLS=%d DD_SEED=%d" % (kills, seed))
    # A slow sink keeps deliveries in flight when the kill comes.
    s = ctx.server("--delay", "DOT:0.01")
    d = ctx.daemon({"dest_concurrency": 8, "conn_max_msgs": 50,
                    "retry_min": 1, "retry_max": 2, "dest_backoff": 1},
                   routes={"dst.test": s})
    inj = Injector(d.port).start()
    log_kills = []
    try:
        for k in range(kills):
            # Up to 0.8 s of load before each kill: early in recovery,
            # mid-batch, mid-delivery, wherever it falls.
            time.sleep(rnd.uniform(0.0, 0.8))
            check(d.alive(), "deliverd died by itself before kill %d; "
                  "stderr:\n%s" % (k + 1, "\n".join(tail(d.log()))))
            with inj.lock:
                acked = len(inj.acked)
            d.kill9()
            log_kills.append((acked, s.count()))
            # Down for a moment, sometimes not at all: clients retry.
            time.sleep(rnd.choice((0, 0, 0.05, 0.2)))
            d.start(ready_timeout=60)
    finally:
        inj.join()
    check(not inj.bad, "injection got replies no kill explains: %r"
          % inj.bad[:5])
    acked = dict(inj.acked)
    check(len(acked) >= 2 * kills, "only %d messages acknowledged over %d "
          "kills: the load did not run" % (len(acked), kills))

    def done():
        got = sink_seqs(s)
        return got if set(acked) <= set(got) else None
    try:
        wait_until(done, 300, "every acknowledged message delivered", 1.0)
    except Fail:
        got = sink_seqs(s)
        missing = sorted(set(acked) - set(got))
        raise Fail("lost: %d acknowledged messages never delivered (seq "
                   "%s, queue ids %s)" % (len(missing), missing[:10],
                                          [acked[x] for x in missing[:10]]))
    # Let the queue drain of what was stored but never acknowledged.
    wait_until(lambda: queued(d) == 0, 120, "the queue to empty", 1.0)
    got = sink_seqs(s)
    dups = sum(v - 1 for v in got.values())
    unacked = len(set(got) - set(acked))
    ctx.diag("%d kills survived; acknowledged %d, delivered %d distinct "
             "(%d of them stored but not acknowledged when the kill came), "
             "lost 0, duplicates %d (%.2f%% of acknowledged), most copies "
             "of one message %d; sessions cut %d"
             % (kills, len(acked), len(got), unacked, dups,
                100.0 * dups / len(acked), max(got.values()), inj.broken))
    log = d.log()
    check("corrupt record" not in log, "a record was found corrupt after "
          "kill -9: %r" % [x for x in log.splitlines() if "corrupt" in x][:3])
    # Every copy is the message injected, byte for byte.
    for p in glob.glob(os.path.join(s.rec, "*.eml"))[:200]:
        with open(p, "rb") as f:
            eml = f.read()
        seq = int(MSGID_RE.search(eml).group(1))
        split_received(eml, inj.body(seq))
    # A clean stop and start: nothing pending, nothing skipped, and the
    # segments that held delivered mail are gone.
    rc = d.stop()
    check(rc == 0, "SIGTERM after the drain: exit %r" % rc)
    dats = spool_files(d.spool)
    d.start()
    segs, pending, skipped = last_recovery(d.log())
    check(pending == 0 and skipped == 0, "restart after the drain found "
          "%d messages pending, %d records skipped" % (pending, skipped))
    dats2 = spool_files(d.spool)
    check(len(dats2) <= 2, "%d segments left after the drain (%r), want "
          "the active one and at most the one before" % (len(dats2), dats2))
    ctx.diag("spool after the drain: %d segment(s) before the restart, %d "
             "after" % (len(dats), len(dats2)))
