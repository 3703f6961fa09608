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

from dd_integration import (Fail, Skip, RawSMTP, check, crlf, free_port,
                            inject, split_received, tail, test, wait_until,
                            want)

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

    # The injector outruns the slow sink, so the last restart can leave a
    # backlog of minutes (180,000 messages at about 700 a second).  Wait
    # while the sink keeps receiving; what is missing once deliveries
    # stop for a minute is lost.  Reading every copy's Message-ID takes
    # seconds, so the cheap count of copies says when to look.
    stalled = 60
    last, moved = -1, time.monotonic()
    while True:
        n = s.count()
        if n != last:
            last, moved = n, time.monotonic()
        if n >= len(acked):
            missing = set(acked) - set(sink_seqs(s))
            if not missing:
                break
        if time.monotonic() - moved > stalled:
            missing = sorted(set(acked) - set(sink_seqs(s)))
            if not missing:
                break
            raise Fail("lost: %d acknowledged messages never delivered, "
                       "no delivery for %d s (seq %s, queue ids %s)"
                       % (len(missing), stalled, missing[:10],
                          [acked[x] for x in missing[:10]]))
        time.sleep(2)
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


# -- a spool on a file system that fills up --------------------------------

class SmallFs:
    """A tmpfs of a given size mounted for one test (we are root in the
    container); unmounted at cleanup, after the daemon stopped."""

    def __init__(self, ctx, size):
        self.path = os.path.join(ctx.tmp, "small")
        os.makedirs(self.path)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%s,mode=0755" % size, "tmpfs", self.path],
                           capture_output=True, text=True)
        if p.returncode:
            raise Skip("cannot mount a tmpfs (%s): %s" % (
                size, p.stderr.strip() or p.returncode))
        ctx.procs.insert(0, self)	# stopped last
        self.filler = os.path.join(self.path, "filler")

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self):
        """Take every free block; returns the bytes taken."""
        n = 0
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (1 << 16, 4096, 512):
                while True:
                    try:
                        n += f.write(b"\0" * chunk)
                    except OSError as e:
                        if e.errno != 28:	# ENOSPC
                            raise
                        break
        return n

    def unfill(self):
        os.unlink(self.filler)

    def stop(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)


def cpu_seconds(pid):
    """utime + stime of a process so far, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def held_body(k):
    return crlf("From: a@src.test\nTo: h%d@dst.test\nMessage-ID: "
                "<%d.fault@src.test>\nSubject: queued before the disk "
                "filled %d\n\n" % (k, k, k) + "line of a queued message\n"
                * 30)


@test("disk_full_spool", "spool on a full 2 MB tmpfs: DATA and BDAT get "
      "452 4.3.1 after the body, nothing half-written; queued mail still "
      "delivered byte-exact, no spin; journal and delivery-log writes "
      "failing lose no mail; injection resumes when space returns",
      needs=("deliverd", "deliverctl"))
def t_disk_full(ctx):
    fs = SmallFs(ctx, "2m")
    s = ctx.server()
    spool = os.path.join(fs.path, "spool")
    dlog = os.path.join(fs.path, "delivery.log")
    d = ctx.daemon({"spool_dir": spool, "delivery_log": dlog,
                    "retry_min": 1, "retry_max": 2},
                   routes={"dst.test": s}, start=False)
    d.spool, d.dlog_path = spool, dlog
    d.start()
    # One delivery first: the delivery log then ends inside a block, so
    # that a later line can be written in part when the disk is full.
    first = crlf("Message-ID: <%d.fault@src.test>\nSubject: first\n\nx\n"
                 % 1000)
    inject(d.addr, "a@src.test", ["first@dst.test"], first)
    s.wait_messages(1, 30)
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)
    # 150 messages wait, held: their DELIVERED records (32 bytes each)
    # and delivery-log lines will need blocks the disk no longer has.
    nheld = 150
    d.ctl_ok("hold", "dst.test")
    for k in range(nheld):
        inject(d.addr, "a@src.test", ["h%d@dst.test" % k], held_body(k))
    taken = fs.fill()
    check(fs.free() == 0, "%d bytes still free after filling" % fs.free())
    ctx.diag("disk filled: %d bytes of filler, 0 free" % taken)

    # DATA: the whole body is read, then 452 4.3.1; the session goes on.
    big = b"Subject: too big for the disk\r\nMessage-ID: <full-1@x>\r\n\r\n" \
        + b"FULL-DATA 0123456789abcdef0123456789abcdef\r\n" * 2000
    c = RawSMTP(d.addr)
    want(c.reply(), 220, None, "greeting")
    want(c.cmd("EHLO full.test"), 250, None, "EHLO")
    want(c.cmd("MAIL FROM:<a@src.test>"), 250, None, "MAIL, disk full")
    want(c.cmd("RCPT TO:<f1@dst.test>"), 250, None, "RCPT, disk full")
    want(c.cmd("DATA"), 354, None, "DATA, disk full")
    c.send(big + b".\r\n")
    want(c.reply(), 452, "4.3.1", "end of DATA, disk full")
    # BDAT: the same, after the LAST chunk.
    want(c.cmd("MAIL FROM:<a@src.test>"), 250, None, "MAIL after the 452")
    want(c.cmd("RCPT TO:<f2@dst.test>"), 250, None, "RCPT after the 452")
    chunk = big.replace(b"FULL-DATA", b"FULL-BDAT")
    c.send(b"BDAT %d\r\n" % (len(chunk) // 2) + chunk[:len(chunk) // 2])
    want(c.reply(), 250, None, "first BDAT chunk, disk full")
    rest = chunk[len(chunk) // 2:]
    c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
    want(c.reply(), 452, "4.3.1", "BDAT LAST, disk full")
    want(c.cmd("NOOP"), 250, None, "NOOP after two 452s")

    # No spin while full: a daemon with nothing to do burns next to no
    # CPU (a loop retrying the disk would burn a whole core).
    check(d.alive(), "deliverd died on the full disk: %s"
          % "\n".join(tail(d.log())))
    cpu0 = cpu_seconds(d.proc.pid)
    time.sleep(4)
    spent = cpu_seconds(d.proc.pid) - cpu0
    check(spent < 0.5, "deliverd used %.2f s of CPU in 4 s idle on a full "
          "disk" % spent)

    # What was queued before goes out while the disk is still full; its
    # journal records and log lines cannot all be written.
    d.ctl_ok("release", "dst.test")
    msgs = [m for m in s.wait_messages(nheld + 1, 120)
            if b"<1000.fault" not in m[1]]
    check(fs.free() == 0, "space appeared: %d bytes" % fs.free())
    byseq = {}
    for meta, eml in msgs:
        k = int(MSGID_RE.search(eml).group(1))
        split_received(eml, held_body(k))
        byseq[k] = byseq.get(k, 0) + 1
    check(sorted(byseq) == list(range(nheld)), "delivered %d distinct of "
          "%d queued" % (len(byseq), nheld))
    check(not any(b"FULL-" in e for _, e in msgs), "a message answered "
          "452 was delivered")
    log = d.log()
    jfail = re.findall(r"seg-\d+\.jnl: writing (\d+) records: No space", log)
    check(jfail, "no journal write failed: the test did not test it; log:\n"
          + "\n".join(tail(log)))
    ctx.diag("journal: %d writes of %d records failed on the full disk"
             % (len(jfail), sum(int(x) for x in jfail)))

    # A restart on the full disk: the spool opens (to deliver and so free
    # space) without a new segment, and injection still gets 452.
    check(d.stop() == 0, "SIGTERM on the full disk: exit status")
    d.start()
    pending_full = last_recovery(d.log())[1]
    check("no new segment yet" in d.log(), "no 'no new segment yet' at a "
          "start on the full disk")
    # The restart may have freed space (segments whose mail is all out
    # go), and then a 250 would be right: take that space too.
    freed = fs.free()
    fs.fill()
    check(fs.free() == 0, "cannot fill the disk again: %d bytes free"
          % fs.free())
    ctx.diag("the restart freed %d bytes (taken again)" % freed)
    c = RawSMTP(d.addr)
    want(c.reply(), 220, None, "greeting after a restart on the full disk")
    want(c.cmd("EHLO full.test"), 250, None, "EHLO")
    want(c.cmd("MAIL FROM:<a@src.test>"), 250, None, "MAIL")
    want(c.cmd("RCPT TO:<f3@dst.test>"), 250, None, "RCPT")
    want(c.cmd("DATA"), 354, None, "DATA")
    c.send(big.replace(b"FULL-DATA", b"FULL-AGAIN") + b".\r\n")
    want(c.reply(), 452, "4.3.1", "end of DATA after a restart on the full "
         "disk")
    c.close()

    # Space returns: injection and delivery resume, no restart needed.
    fs.unfill()
    back = crlf("Message-ID: <%d.fault@src.test>\nSubject: space is back\n"
                "\nhello again\n" % nheld)
    qid = inject(d.addr, "a@src.test", ["back@dst.test"], back)
    d.wait_dlog(lambda e: e.get("qid") == qid and
                e.get("status") == "delivered", 1, 60)
    check(d.alive(), "deliverd died")

    # The delivery log holds whole lines only: a line that did not fit
    # is gone, not left half-written for the next one to run into.
    bad = [e["_bad"] for e in d.dlog() if "_bad" in e]
    check(not bad, "%d torn delivery-log lines, first %r"
          % (len(bad), bad[:1]))

    # Restart: nothing corrupt; the messages whose DELIVERED record was
    # lost are sent again (at-least-once), none is lost.
    rc = d.stop()
    check(rc == 0, "SIGTERM exit %r" % rc)
    spool_files(spool)
    d.start()
    segs, pending, skipped = last_recovery(d.log())
    check(skipped == 0, "%d records skipped at restart" % skipped)
    check("corrupt record" not in d.log() and "torn record" not in d.log(),
          "a record was corrupt or torn: %r" % [
              x for x in d.log().splitlines() if "record" in x][-3:])
    wait_until(lambda: queued(d) == 0, 60, "the queue to empty", 0.5)
    got = sink_seqs(s)
    want_seqs = set(range(nheld + 1)) | {1000}
    check(set(got) == want_seqs, "delivered %r" % sorted(want_seqs ^
                                                        set(got)))
    dups = sum(v - 1 for v in got.values())
    ctx.diag("restarts: %d then %d messages pending again (journal records "
             "lost to the full disk), %d duplicates delivered, 0 lost"
             % (pending_full, pending, dups))
    # Every delivery has its line, or is counted lost in the daemon log
    # (when writing worked again, or at the stop).
    logged = sum(1 for e in d.dlog() if e.get("status") == "delivered")
    lost = sum(int(x) for x in re.findall(r"delivery log: (?:written "
                                          r"again, )?(\d+) lines lost",
                                          d.log()))
    check(lost and logged + lost == s.count(), "%d deliveries, %d logged, "
          "the daemon log says %d lost" % (s.count(), logged, lost))
    ctx.diag("delivery log: %d of %d deliveries logged, %d lines lost "
             "(and said so)" % (logged, s.count(), lost))
    check(dups <= pending_full + pending, "%d duplicates for %d messages "
          "pending again" % (dups, pending_full + pending))


# -- privileges -------------------------------------------------------------

def free_low_port():
    """A free port below 1024 (binding it needs root or
    CAP_NET_BIND_SERVICE)."""
    for p in random.Random().sample(range(600, 1000), 100):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise Fail("no free port below 1024")


def proc_creds(pid):
    """{tid: {field: value}} of Uid, Gid, Groups, Cap* and NoNewPrivs for
    every thread of pid."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        f = {}
        with open("/proc/%d/task/%s/status" % (pid, t)) as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in ("Name", "Uid", "Gid", "Groups", "CapInh", "CapPrm",
                         "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
                    f[k] = v.split()
        out[int(t)] = f
    return out


def must_be_unprivileged(pid, uid, gid):
    """Every thread: all four uids and gids the user's, no supplementary
    group, no capability in the permitted, effective, inheritable or
    ambient set, no_new_privs on."""
    creds = proc_creds(pid)
    check(len(creds) >= 3, "only %d threads: not the running daemon"
          % len(creds))
    for tid, f in creds.items():
        name = " ".join(f.get("Name", ["?"]))
        check(f["Uid"] == [str(uid)] * 4 and f["Gid"] == [str(gid)] * 4,
              "thread %d (%s): Uid %s Gid %s, want %d and %d everywhere"
              % (tid, name, f["Uid"], f["Gid"], uid, gid))
        check(f["Groups"] in ([], [str(gid)]), "thread %d (%s): Groups %s"
              % (tid, name, f["Groups"]))
        for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            check(int(f[k][0], 16) == 0, "thread %d (%s): %s %s"
                  % (tid, name, k, f[k][0]))
        check(f["NoNewPrivs"] == ["1"], "thread %d (%s): NoNewPrivs %s"
              % (tid, name, f["NoNewPrivs"]))
    return len(creds)


def nobody():
    import pwd
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        raise Skip("no user nobody")
    if os.geteuid() != 0:
        raise Skip("needs root")
    return pw.pw_uid, pw.pw_gid


def privdrop_daemon(ctx, settings, **kw):
    """A daemon whose directory the unprivileged user can reach and
    write (its control socket and delivery log live there)."""
    uid, gid = nobody()
    os.chmod(ctx.tmp, 0o711)
    d = ctx.daemon(settings, start=False, **kw)
    os.chown(d.dir, uid, gid)
    return d, uid, gid


def deliver_one(d, s, what):
    qid = inject(d.addr, "a@src.test", ["p@dst.test"],
                 crlf("Subject: %s\n\nthrough the spool\n" % what))
    d.wait_dlog(lambda e: e.get("qid") == qid and
                e.get("status") == "delivered", 1, 30, "the delivery")
    return qid


@test("privdrop_root", "security: started as root with user=nobody on a "
      "port below 1024: binds, opens the spool, then every thread has the "
      "user's uids and gids, no capability, no_new_privs; mail flows; the "
      "spool's files are the user's", needs=("deliverd", "deliverctl"))
def t_privdrop_root(ctx):
    s = ctx.server()
    port = free_low_port()
    d, uid, gid = privdrop_daemon(ctx, {"user": "nobody",
                                        "listen": "127.0.0.1:%d" % port},
                                  routes={"dst.test": s})
    d.port = port
    d.start()
    n = must_be_unprivileged(d.proc.pid, uid, gid)
    check("running as nobody" in d.log(), "no 'running as nobody' in the "
          "log")
    deliver_one(d, s, "after the switch")
    d.ctl_ok("queue")
    owners = {(f, os.stat(os.path.join(d.spool, f)).st_uid)
              for f in os.listdir(d.spool)}
    check(owners and all(o == uid for _, o in owners), "spool files not "
          "all nobody's: %r" % sorted(owners))
    check(os.stat(d.dlog_path).st_uid == uid, "the delivery log is not "
          "nobody's")
    # A restart takes the spool over as it is, and still delivers.
    check(d.stop() == 0, "SIGTERM exit status")
    d.start()
    deliver_one(d, s, "after a restart")
    ctx.diag("port %d, %d threads checked, spool files %d, all nobody's"
             % (port, n, len(owners)))


@test("privdrop_ambient", "security: started as nobody with "
      "CAP_NET_BIND_SERVICE ambient (as deliverd.service does): binds a "
      "port below 1024, then holds no capability at all",
      needs=("deliverd", "deliverctl"))
def t_privdrop_ambient(ctx):
    if not os.path.exists("/usr/bin/setpriv"):
        raise Skip("no setpriv (util-linux)")
    s = ctx.server()
    port = free_low_port()
    d, uid, gid = privdrop_daemon(ctx, {"user": "nobody",
                                        "listen": "127.0.0.1:%d" % port},
                                  routes={"dst.test": s})
    d.port = port
    os.makedirs(d.spool)
    os.chown(d.spool, uid, gid)
    # Daemon.start runs ctx.bin("deliverd"): wrap it in setpriv.
    wrap = os.path.join(ctx.tmp, "deliverd")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec /usr/bin/setpriv --reuid=%d --regid=%d "
                "--clear-groups --inh-caps=+net_bind_service "
                "--ambient-caps=+net_bind_service %s \"$@\"\n"
                % (uid, gid, ctx.bin("deliverd")))
    os.chmod(wrap, 0o755)
    real_bin = ctx.bin
    ctx.bin = lambda what: wrap if what == "deliverd" else real_bin(what)
    try:
        d.start()
    finally:
        ctx.bin = real_bin
    n = must_be_unprivileged(d.proc.pid, uid, gid)
    deliver_one(d, s, "with no capability left")
    ctx.diag("port %d bound with the ambient capability; %d threads "
             "without any" % (port, n))


def start_fails(ctx, d, want_re):
    """Start d, which must exit non-zero at once saying want_re."""
    p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    err = p.stderr.strip()
    ctx.sanitizer("deliverd", err)
    check(p.returncode != 0, "deliverd started (exit %d); stderr:\n%s"
          % (p.returncode, err[-800:]))
    check("deliverd: ready" not in err, "deliverd said ready")
    check(re.search(want_re, err), "stderr lacks /%s/:\n%s" % (
        want_re, "\n".join(tail(err, 8))))
    return err


@test("privdrop_spool_unwritable", "security: a spool the user cannot "
      "write (root's, 0755; or one with a segment of root's, 0600) fails "
      "at startup, naming the spool and the user, not later",
      needs=("deliverd",))
def t_privdrop_unwritable(ctx):
    d, uid, gid = privdrop_daemon(ctx, {"user": "nobody",
                                        "listen": "127.0.0.1:%d"
                                        % free_low_port()})
    os.makedirs(d.spool, mode=0o755)
    err = start_fails(ctx, d, r"spool %s: Permission denied as user "
                      r"nobody" % re.escape(d.spool))
    ctx.diag(err.splitlines()[-1])
    check(not os.listdir(d.spool), "files left in the spool: %r"
          % os.listdir(d.spool))
    # The user's directory, but a segment left by a run as root.
    os.chown(d.spool, uid, gid)
    d.settings.pop("user")
    d.write_conf()
    d.start()
    deliver_ok = os.listdir(d.spool)
    check(d.stop() == 0, "SIGTERM exit status")
    check(any(f.endswith(".dat") for f in deliver_ok), "no segment made "
          "by the root run: %r" % deliver_ok)
    d.settings["user"] = "nobody"
    d.write_conf()
    start_fails(ctx, d, r"Permission denied as user nobody")


# -- relay: networks not allowed --------------------------------------------

def try_inject_refused(family, src, dst, what):
    """From src to dst (address, port): the greeting must be 554 5.7.1,
    and a whole transaction pipelined in one write (DATA and BDAT) must
    get no 250 and no 354, then QUIT 221."""
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(15)
    c.bind((src, 0))
    c.connect(dst)
    f = c.makefile("rb")
    greet = f.readline().decode(errors="replace").rstrip()
    check(greet.startswith("554 5.7.1"), "%s: greeting %r, want 554 5.7.1"
          % (what, greet))
    c.sendall(b"EHLO evil.test\r\nMAIL FROM:<a@src.test>\r\n"
              b"RCPT TO:<b@dst.test>\r\nDATA\r\nSubject: relayed?\r\n\r\n"
              b"RELAY-ATTEMPT\r\n.\r\nMAIL FROM:<a@src.test>\r\n"
              b"RCPT TO:<b@dst.test>\r\nBDAT 15 LAST\r\nRELAY-ATTEMPT\r\n"
              b"QUIT\r\n")
    replies = []
    while True:
        line = f.readline().decode(errors="replace").rstrip()
        if not line:
            break
        replies.append(line)
        if line.startswith("221 "):
            break
    c.close()
    check(replies and replies[-1].startswith("221"), "%s: no 221 to QUIT: "
          "%r" % (what, replies))
    bad = [r for r in replies[:-1] if r[:3] in ("250", "354")]
    check(not bad, "%s: accepted something: %r" % (what, bad))
    check(all(r[:3] in ("503", "500", "501") for r in replies[:-1]),
          "%s: replies %r" % (what, replies))
    return len(replies)


def have_ipv6():
    try:
        t = socket.socket(socket.AF_INET6)
        t.bind(("::1", 0))
        t.close()
        return True
    except OSError:
        return False


@test("relay_refused_v4", "security: allow_networks 127.0.0.1/32: a "
      "client from 127.0.0.2 gets 554 5.7.1 and cannot inject (DATA or "
      "BDAT, pipelined); 127.0.0.1 can", needs=("deliverd", "deliverctl"))
def t_relay_v4(ctx):
    s = ctx.server()
    d = ctx.daemon({"allow_networks": "127.0.0.1/32"},
                   routes={"dst.test": s})
    n = try_inject_refused(socket.AF_INET, "127.0.0.2", d.addr,
                           "from 127.0.0.2")
    check("refused 127.0.0.2" in d.log(), "the refusal is not logged")
    deliver_one(d, s, "from 127.0.0.1")
    check(not any(b"RELAY-ATTEMPT" in e for _, e in s.messages()),
          "the refused client's message was delivered")
    check(queued(d) == 0, "something is queued")
    ctx.diag("127.0.0.2 refused (%d replies, no 250 or 354); 127.0.0.1 "
             "delivered" % n)


@test("relay_refused_v6", "security: IPv6: allow_networks 127.0.0.1/32 "
      "refuses ::1 (554 5.7.1, no injection); ::1/128 alone refuses "
      "127.0.0.1 and lets ::1 in", needs=("deliverd", "deliverctl"))
def t_relay_v6(ctx):
    if not have_ipv6():
        raise Skip("no IPv6 loopback")
    s = ctx.server()
    p6 = free_port()
    d = ctx.daemon({"allow_networks": "127.0.0.1/32",
                    "listen": "127.0.0.1:%d, [::1]:%d" % (free_port(), p6)},
                   routes={"dst.test": s}, start=False)
    d.port = int(d.settings["listen"].split(":")[1].split(",")[0])
    d.start()
    try_inject_refused(socket.AF_INET6, "::1", ("::1", p6),
                       "::1 with only 127.0.0.1/32 allowed")
    d.stop()
    d.settings["allow_networks"] = "::1/128"
    d.write_conf()
    d.start()
    try_inject_refused(socket.AF_INET, "127.0.0.1", d.addr,
                       "127.0.0.1 with only ::1/128 allowed")
    sock = socket.create_connection(("::1", p6), 15)
    f = sock.makefile("rb")
    greet = f.readline()
    check(greet.startswith(b"220 "), "::1 with ::1/128 allowed: greeting "
          "%r" % greet)
    sock.close()
    check(not any(b"RELAY-ATTEMPT" in e for _, e in s.messages()),
          "a refused client's message was delivered")
    check(queued(d) == 0, "something is queued")
