# SPDX-License-Identifier: GPL-2.0
"""Integration tests of deliverd's shaping: limits per destination and MX
host from shaping_file, and the throttle on "slow down" replies.

The test server's transcript has a line when a connection opens ("+")
and when it closes ("-"), with the time: from it come the concurrency
over any stretch of time and the connections opened.  Margins are wide:
the tests compare counts, not timings."""

import os
import re
import subprocess
import time

from dd_integration import test, check, wait_until, inject, crlf, Daemon


def shaping_file(ctx, text):
    path = os.path.join(ctx.tmp, "shaping")
    with open(path, "w") as f:
        f.write(text)
    return path


TLINE = re.compile(r"^(\d+\.\d+) (\d+) ([+-]): ")


def sessions(srv):
    """[(start, end)] of the server's connections, end inf if open."""
    start, end = {}, {}
    for line in srv.transcript().splitlines():
        m = TLINE.match(line)
        if not m:
            continue
        t, cid = float(m.group(1)), int(m.group(2))
        if m.group(3) == "+":
            start[cid] = t
        else:
            end[cid] = t
    return sorted((s, end.get(c, float("inf"))) for c, s in start.items())


def max_conc(iv, t0=float("-inf"), t1=float("inf")):
    """Most connections open at once at some time in [t0, t1]."""
    points = [t0] + [s for s, _ in iv if t0 <= s <= t1]
    best = 0
    for p in points:
        if p == float("-inf"):
            continue
        best = max(best, sum(1 for s, e in iv if s <= p < e))
    return best


def most_in_window(times, w):
    """Most of times within any window of w seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - w:
            j += 1
        best = max(best, i - j + 1)
    return best


def send(d, rcpts, sender="a@src.test"):
    for r in rcpts:
        inject(d.addr, sender, [r], crlf("Subject: %s\n\nshaping\n" % r))


def per_conn(msgs):
    per = {}
    for meta, _ in msgs:
        per[meta["conn"]] = per.get(meta["conn"], 0) + 1
    return per


def dest_entry(d, dom):
    for e in d.queue_json():
        if e.get("dest") == dom:
            return e
    return None


@test("shape_dest_concurrency", "shaping: concurrency=3 in shaping_file "
      "caps one destination; another keeps dest_concurrency")
def t_shape_conc(ctx):
    s1 = ctx.server("--delay", "DOT:0.4", name="lim")
    s2 = ctx.server("--delay", "DOT:0.4", name="free")
    sf = shaping_file(ctx, "# test\nlim.test concurrency=3\n")
    d = ctx.daemon({"shaping_file": sf, "dest_concurrency": 10},
                   routes={"lim.test": s1, "free.test": s2})
    n = 15
    send(d, ["r%d@lim.test" % i for i in range(n)] +
         ["r%d@free.test" % i for i in range(n)])
    s1.wait_messages(n, 60)
    s2.wait_messages(n, 60)
    p1 = max_conc(sessions(s1))
    p2 = max_conc(sessions(s2))
    check(s1.stats()["peak_concurrent"] <= 3 and p1 <= 3,
          "lim.test: peak %d concurrent (transcript %d), concurrency=3"
          % (s1.stats()["peak_concurrent"], p1))
    check(p1 >= 2, "lim.test: never more than %d session at once, "
          "concurrency=3 should allow 3" % p1)
    check(p2 >= 5, "free.test: peak %d concurrent, want >= 5 "
          "(dest_concurrency=10, no shaping line)" % p2)
    ctx.diag("peaks: lim.test %d, free.test %d" % (p1, p2))


@test("shape_mx_concurrency", "shaping: mx:HOST concurrency=2 caps two "
      "domains routed to the same host together")
def t_shape_mx(ctx):
    s = ctx.server("--delay", "DOT:0.4")
    sf = shaping_file(ctx, "mx:%s concurrency=2\n" % s.addr)
    # one thread: host counts are per thread
    d = ctx.daemon({"shaping_file": sf, "threads": 1},
                   routes={"a.test": s, "b.test": s})
    n = 8
    send(d, ["r%d@a.test" % i for i in range(n)] +
         ["r%d@b.test" % i for i in range(n)])
    msgs = s.wait_messages(2 * n, 60)
    peak = max_conc(sessions(s))
    check(peak <= 2 and s.stats()["peak_concurrent"] <= 2,
          "peak %d concurrent sessions to %s, mx concurrency=2"
          % (peak, s.addr))
    doms = set(r.split("@")[1] for m, _ in msgs for r in m["rcpts"])
    check(doms == {"a.test", "b.test"}, "domains delivered: %r" % doms)
    check(peak == 2, "peak %d concurrent sessions: the limit of 2 was "
          "never reached" % peak)


@test("shape_conn_rate", "shaping: conn_rate=2 spreads 10 one-message "
      "connections over seconds")
def t_shape_conn_rate(ctx):
    s = ctx.server()
    sf = shaping_file(ctx, "dst.test conn_rate=2 max_msgs=1\n")
    d = ctx.daemon({"shaping_file": sf}, routes={"dst.test": s})
    n = 10
    send(d, ["r%d@dst.test" % i for i in range(n)])
    msgs = s.wait_messages(n, 60)
    starts = [st for st, _ in sessions(s)]
    check(len(starts) >= n and max(per_conn(msgs).values()) == 1,
          "%d connections for %d messages, max_msgs=1" % (len(starts), n))
    span = max(starts) - min(starts)
    # 2/s with a burst of 2: 10 connections take about 4 s
    check(span >= 2.5, "10 connections opened within %.2f s, conn_rate=2 "
          "wants about 4 s" % span)
    w = most_in_window(starts, 2.0)
    check(w <= 2 * 2 + 2 + 1, "%d connections within 2 s, conn_rate=2 "
          "(burst 2)" % w)
    ctx.diag("10 connections over %.2f s, at most %d within 2 s"
             % (span, w))


@test("shape_msg_rate", "shaping: msg_rate=4 spreads 16 messages over "
      "seconds")
def t_shape_msg_rate(ctx):
    s = ctx.server()
    sf = shaping_file(ctx, "dst.test msg_rate=4\n")
    d = ctx.daemon({"shaping_file": sf}, routes={"dst.test": s})
    n = 16
    send(d, ["r%d@dst.test" % i for i in range(n)])
    msgs = s.wait_messages(n, 60)
    times = [m["time"] for m, _ in msgs]
    span = max(times) - min(times)
    check(span >= 2.0, "16 messages within %.2f s, msg_rate=4 wants about "
          "3 s" % span)
    w = most_in_window(times, 1.0)
    check(w <= 2 * 4 + 1, "%d messages within 1 s, msg_rate=4" % w)
    ctx.diag("16 messages over %.2f s, at most %d within 1 s" % (span, w))


@test("shape_max_msgs", "shaping: max_msgs=2 closes each connection after "
      "2 messages (conn_max_msgs=100)")
def t_shape_max_msgs(ctx):
    s = ctx.server("--delay", "DOT:0.1")
    sf = shaping_file(ctx, "dst.test max_msgs=2 concurrency=1\n")
    d = ctx.daemon({"shaping_file": sf, "conn_max_msgs": 100},
                   routes={"dst.test": s})
    n = 8
    send(d, ["r%d@dst.test" % i for i in range(n)])
    msgs = s.wait_messages(n, 60)
    per = per_conn(msgs)
    check(max(per.values()) <= 2, "messages per connection %r, max_msgs=2"
          % per)
    check(max(per.values()) == 2, "messages per connection %r: never "
          "reused, so the limit was not what stopped them" % per)
    ctx.diag("messages per connection %r" % sorted(per.values()))


def throttle_case(ctx, rule, sender="a@src.test"):
    """Busy destination at 8 sessions, then one reply matching
    throttle_patterns: fewer sessions, logged, shown, then recovery."""
    hold = 3
    s = ctx.server("--delay", "DOT:0.5", "--reply", rule)
    d = ctx.daemon({"dest_concurrency": 8, "throttle_hold": hold,
                    "retry_min": 1, "retry_max": 2, "dest_backoff": 1},
                   routes={"dst.test": s})
    send(d, ["a%d@dst.test" % i for i in range(16)])
    wait_until(lambda: s.stats().get("peak_concurrent", 0) >= 6, 30,
               "6 concurrent sessions before the throttle")
    before = s.stats()["peak_concurrent"]
    send(d, ["slow@dst.test"], sender=sender)
    wait_until(lambda: "dst.test: throttled by" in d.log(), 30,
               "'dst.test: throttled by' in the log")
    t_thr = time.time()
    e = dest_entry(d, "dst.test")
    check(e is not None and e.get("throttled") is True and
          isinstance(e.get("eff_concurrency"), int) and
          1 <= e["eff_concurrency"] <= before // 2 + 1 and
          isinstance(e.get("eff_rate"), (int, float)) and e["eff_rate"] > 0,
          "queue --json while throttled: %r (peak before %d)" % (e, before))
    eff = e["eff_concurrency"]
    # keep it busy: what the server sees now is the throttled limit
    send(d, ["b%d@dst.test" % i for i in range(16)])
    time.sleep(hold - 0.6)
    # sessions over the limit finish their transaction (0.5 s) first
    after = max_conc(sessions(s), t_thr + 1.2, t_thr + hold - 0.7)
    check(after <= eff and after < before,
          "%d concurrent sessions after the throttle (eff_concurrency %d), "
          "%d before" % (after, eff, before))
    wait_until(lambda: re.search(r"dst\.test: throttle (easing|lifted)",
                                 d.log()), 30,
               "recovery ('throttle easing' or 'lifted') in the log")
    s.wait_messages(33, 60)
    line = [x for x in d.log().splitlines() if "throttled by" in x][0]
    ctx.diag("peak %d before, %d after; %s" % (before, after,
                                               line.split("]")[-1].strip()))
    return d, s


@test("shape_throttle_451", "shaping: '451 4.7.1 rate limited' throttles: "
      "fewer sessions, logged, in queue --json, recovers after "
      "throttle_hold")
def t_shape_thr_451(ctx):
    throttle_case(ctx, "RCPT[slow*]#1:451 4.7.1 rate limited")


@test("shape_throttle_421", "shaping: '421 4.7.0 Too many connections' "
      "closing a session throttles, then recovers")
def t_shape_thr_421(ctx):
    d, s = throttle_case(ctx, "MAIL[slow*]#1:421 4.7.0 Too many connections",
                         sender="slow@src.test")
    wait_until(lambda: "dst.test: throttle lifted" in d.log(), 60,
               "'throttle lifted' in the log")


@test("shape_no_throttle", "shaping: a 4xx not matching throttle_patterns "
      "defers without throttling")
def t_shape_no_thr(ctx):
    s = ctx.server("--delay", "DOT:0.3", "--reply",
                   "RCPT[slow*]:450 4.2.1 mailbox busy")
    d = ctx.daemon({"dest_concurrency": 6}, routes={"dst.test": s})
    send(d, ["a%d@dst.test" % i for i in range(6)] + ["slow@dst.test"] +
         ["b%d@dst.test" % i for i in range(6)])
    d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 30)
    s.wait_messages(12, 60)
    e = dest_entry(d, "dst.test")
    check(e is not None and e.get("throttled") is False and
          e.get("eff_concurrency") == 6,
          "queue --json after '450 4.2.1 mailbox busy': %r" % e)
    check("throttled" not in d.log(), "log says throttled: %r" % [
        x for x in d.log().splitlines() if "throttled" in x])


@test("shape_check", "shaping: a bad shaping_file fails --check and start "
      "with FILE:LINE; a good one passes")
def t_shape_check(ctx):
    d = Daemon(ctx, {}, {})
    os.makedirs(d.spool, exist_ok=True)
    good = shaping_file(ctx, "a.test concurrency=2 msg_rate=10\n"
                        ".b.test max_msgs=5\n* conn_rate=100\n"
                        "mx:mx1.example.net concurrency=4\n")
    for text, line, what in (
            ("a.test concurrency=2\na.test msg_rate=1\n", 2, "duplicate"),
            ("# c\n\na.test speed=2\n", 3, "unknown key"),
            ("a.test msg_rate=fast\n", 1, "bad number")):
        bad = os.path.join(ctx.tmp, "bad%d" % line)
        with open(bad, "w") as f:
            f.write(text)
        d.settings["shaping_file"] = bad
        d.write_conf()
        p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "--check"],
                           capture_output=True, timeout=10)
        out = (p.stderr + p.stdout).decode(errors="replace")
        check(p.returncode == 1, "%s: --check exit %d, want 1: %s"
              % (what, p.returncode, out.strip()))
        check("%s:%d:" % (bad, line) in out and what in out,
              "%s: no '%s:%d: ...%s' in %r" % (what, bad, line, what,
                                               out.strip()))
    # and the daemon does not start on one
    p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf],
                       capture_output=True, timeout=10)
    check(p.returncode == 1, "deliverd with a bad shaping_file: exit %d"
          % p.returncode)
    d.settings["shaping_file"] = good
    d.write_conf()
    p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "--check"],
                       capture_output=True, timeout=10)
    check(p.returncode == 0, "good shaping_file: --check exit %d: %s" % (
        p.returncode, (p.stderr + p.stdout).decode(errors="replace")))
