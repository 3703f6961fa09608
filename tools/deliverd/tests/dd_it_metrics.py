# SPDX-License-Identifier: GPL-2.0
"""Integration tests of the metrics endpoint (metrics_listen) and
`deliverctl stats`: scrapes parsed with a strict parser of the text
exposition format 0.0.4, figures checked against what the test did."""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request

from dd_integration import (Fail, check, crlf, free_port, inject, test,
                            wait_until)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVALUE = r'(?:[^"\\\n]|\\[\\"n])*'
SAMPLE_RE = re.compile(r"^(%s)(?:\{(%s=\"%s\"(?:,%s=\"%s\")*)\})? "
                       r"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|"
                       r"[+-]Inf)$" % (NAME, LABEL, LVALUE, LABEL, LVALUE))
PAIR_RE = re.compile(r'(%s)="(%s)"' % (LABEL, LVALUE))
HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|"
                     r"untyped)$" % NAME)


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1),
                                                      m.group(1)), v)


def parse_exposition(body):
    """{(name, ((label, value), ...)): float} and {family: type}; Fail on
    anything the format does not allow."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Fail("exposition is not UTF-8: %s" % e)
    check(text.endswith("\n"), "exposition does not end with a newline")
    samples, types, helps = {}, {}, set()
    family = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        m = HELP_RE.match(line)
        if m:
            check(m.group(1) not in helps, "line %d: second HELP for %s"
                  % (n, m.group(1)))
            helps.add(m.group(1))
            continue
        m = TYPE_RE.match(line)
        if m:
            check(m.group(1) not in types, "line %d: second TYPE for %s"
                  % (n, m.group(1)))
            check(not any(k[0] == m.group(1) for k in samples),
                  "line %d: TYPE %s after its samples" % (n, m.group(1)))
            types[m.group(1)] = m.group(2)
            family = m.group(1)
            continue
        check(not line.startswith("#"), "line %d: a comment the format "
              "does not know: %r" % (n, line))
        m = SAMPLE_RE.match(line)
        check(m, "line %d is not a sample: %r" % (n, line))
        name = m.group(1)
        check(name == family, "line %d: sample %s outside its family "
              "(last TYPE %s)" % (n, name, family))
        labels = tuple(sorted((k, unescape(v)) for k, v in
                              PAIR_RE.findall(m.group(2) or "")))
        check(len(set(k for k, _ in labels)) == len(labels),
              "line %d: a label twice" % n)
        key = (name, labels)
        check(key not in samples, "line %d: series %r twice" % (n, key))
        samples[key] = float(m.group(3))
    for f, t in types.items():
        check(f in helps, "no HELP for %s" % f)
        check(f.startswith("deliverd_"), "%s is not deliverd_" % f)
        check((t == "counter") == f.endswith("_total"),
              "%s is a %s" % (f, t))
    check(helps <= set(types), "HELP without TYPE: %r" % (helps - set(types)))
    return samples, types


class Scrape:
    def __init__(self, body, headers):
        self.body = body
        self.headers = headers
        self.samples, self.types = parse_exposition(body)

    def get(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        if key not in self.samples:
            raise Fail("no sample %s%r in the scrape" % (name, labels))
        return self.samples[key]

    def series(self, name):
        return {dict(k[1]).get("dest", dict(k[1]).get("worker")): v
                for k, v in self.samples.items() if k[0] == name}


def scrape(port, path="/metrics"):
    r = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                               timeout=20)
    body = r.read()
    check(r.status == 200, "status %d" % r.status)
    ct = r.headers.get("Content-Type", "")
    check(ct.startswith("text/plain") and "version=0.0.4" in ct,
          "Content-Type %r" % ct)
    check(r.headers.get("Content-Length") == str(len(body)),
          "Content-Length %r, body %d bytes" % (r.headers.get(
              "Content-Length"), len(body)))
    check(r.headers.get("Connection", "").lower() == "close",
          "Connection %r" % r.headers.get("Connection"))
    return Scrape(body, r.headers)


def http_status(port, method="GET", path="/metrics"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method)
    try:
        r = urllib.request.urlopen(req, timeout=20)
        r.read()
        return r.status, r.headers
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers


def raw_request(port, data, timeout=20):
    """Send data, read to EOF; (status code or None, whole answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", out)
    return (int(m.group(1)) if m else None), out


def metrics_daemon(ctx, settings=None, routes=None, name="dd"):
    mport = free_port()
    st = {"metrics_listen": "127.0.0.1:%d" % mport}
    st.update(settings or {})
    d = ctx.daemon(st, routes=routes, name=name)
    d.mport = mport
    return d


def listening_ports(pid):
    """TCP ports the process listens on, from /proc."""
    inodes = set()
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for tab in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            with open(tab) as f:
                next(f)
                for line in f:
                    x = line.split()
                    if x[3] == "0A" and x[9] in inodes:
                        ports.add(int(x[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def stats_lines(d):
    """`deliverctl stats` as {name: value string}."""
    p = d.ctl_ok("stats")
    out = {}
    for line in p.stdout.decode().splitlines():
        m = re.match(r"^(.+?):\s+(.*)$", line)
        check(m, "stats line is not 'name: value': %r" % line)
        out[m.group(1)] = m.group(2)
    return out


def stats_json(d):
    p = d.ctl_ok("stats", "--json")
    objs = [json.loads(x) for x in p.stdout.decode().splitlines()
            if x.strip()]
    check(objs and "backend" in objs[0], "stats --json: %r" % objs[:2])
    return objs


@test("metrics_scrape", "metrics: 5 messages injected and delivered show "
      "in a strictly parsed scrape (curl too), counters only grow, and "
      "deliverctl stats and stats --json say the same",
      needs=("deliverd", "deliverctl"))
def t_metrics_scrape(ctx):
    s = ctx.server()
    d = metrics_daemon(ctx, routes={"dst.test": s, "src.test": s})
    first = scrape(d.mport)
    check(first.get("deliverd_messages_injected_total") == 0,
          "injected before any injection")
    for k in range(5):
        inject(d.addr, "a@src.test", ["r%d@dst.test" % k],
               crlf("Subject: m%d\n\nbody %d\n" % (k, k)))
    s.wait_messages(5)
    wait_until(lambda: scrape(d.mport).get(
        "deliverd_deliveries_total", outcome="delivered") == 5 and
        scrape(d.mport).get("deliverd_queue_recipients",
                            state="active") == 0, 20,
        "5 deliveries in the metrics")
    a = scrape(d.mport)
    b = scrape(d.mport)
    for sc in (a, b):
        check(sc.get("deliverd_messages_injected_total") == 5,
              "injected_total %r" % sc.get("deliverd_messages_injected_total"))
        check(sc.get("deliverd_deliveries_total", outcome="delivered") == 5,
              "delivered")
        for o in ("deferred", "bounced", "expired"):
            check(sc.get("deliverd_deliveries_total", outcome=o) == 0, o)
        check(sc.get("deliverd_delivery_attempts_total") == 5, "attempts")
        for st in ("queued", "deferred", "active", "held"):
            check(sc.get("deliverd_queue_recipients", state=st) == 0, st)
        check(sc.get("deliverd_outbound_connections_opened_total") >= 1,
              "no connection opened")
        check(sc.get("deliverd_outbound_connections_peak") >= 1, "peak")
        check(sc.get("deliverd_threads") == 2, "threads")
        check(set(sc.series("deliverd_loop_events_total")) == {"0", "1"},
              "workers %r" % sc.series("deliverd_loop_events_total"))
        check(set(sc.series("deliverd_loop_waits_total")) == {"0", "1"},
              "workers (waits)")
        check(sc.get("deliverd_spool_fsyncs_total") >= 1, "fsyncs")
        check(sc.get("deliverd_spool_records_total") >= 5, "records")
        check(sc.get("deliverd_uptime_seconds") > 0, "uptime")
        info = [k for k in sc.samples if k[0] == "deliverd_info"]
        check(len(info) == 1, "info %r" % info)
        lab = dict(info[0][1])
        check(lab.get("backend") in ("evq", "epoll") and lab.get("version"),
              "info labels %r" % lab)
    check(a.get("deliverd_start_time_seconds") ==
          b.get("deliverd_start_time_seconds"), "start time moved")
    # Counters never go down between scrapes.
    for (key, v) in first.samples.items():
        if first.types.get(key[0]) == "counter":
            check(b.samples.get(key, -1) >= v, "counter %r went from %r "
                  "to %r" % (key, v, b.samples.get(key)))
    check(b.get("deliverd_loop_events_total", worker="0") >
          first.get("deliverd_loop_events_total", worker="0"),
          "worker 0's events did not grow")
    if shutil.which("curl") and \
            shutil.which("curl").startswith("/usr/bin"):
        p = subprocess.run(["curl", "-sS", "-f", "http://127.0.0.1:%d/metrics"
                            % d.mport], capture_output=True, timeout=30)
        check(p.returncode == 0, "curl: %r" % p.stderr)
        c = Scrape(p.stdout, {})
        check(c.get("deliverd_messages_injected_total") == 5, "curl scrape")
    else:
        ctx.diag("curl not installed: urllib only")
    # deliverctl stats agrees (the figures that do not move when idle).
    txt = stats_lines(d)
    js = stats_json(d)
    tot = js[0]
    pairs = [("injected", "deliverd_messages_injected_total", {}),
             ("delivered", "deliverd_deliveries_total",
              {"outcome": "delivered"}),
             ("deferrals", "deliverd_deliveries_total",
              {"outcome": "deferred"}),
             ("bounced", "deliverd_deliveries_total", {"outcome": "bounced"}),
             ("expired", "deliverd_deliveries_total", {"outcome": "expired"}),
             ("attempts", "deliverd_delivery_attempts_total", {}),
             ("queued", "deliverd_queue_recipients", {"state": "queued"}),
             ("held", "deliverd_queue_recipients", {"state": "held"}),
             ("out_conns_opened",
              "deliverd_outbound_connections_opened_total", {}),
             ("spool_bytes", "deliverd_spool_bytes", {}),
             ("spool_segments", "deliverd_spool_segments", {}),
             ("spool_fsyncs", "deliverd_spool_fsyncs_total", {}),
             ("spool_batches", "deliverd_spool_batches_total", {}),
             ("bounces_sent", "deliverd_bounces_sent_total", {})]
    for key, name, labels in pairs:
        v = b.get(name, **labels)
        check(float(tot[key]) == v, "stats --json %s %r, scrape %r"
              % (key, tot[key], v))
        check(float(txt[key]) == v, "stats %s %r, scrape %r"
              % (key, txt[key], v))
    check(tot["failed"] == 0 and txt["backend"] == tot["backend"],
          "failed / backend")
    check(txt["start_time"] == "%.3f" % b.get("deliverd_start_time_seconds"),
          "start_time %r vs %r" % (txt["start_time"],
                                   b.get("deliverd_start_time_seconds")))
    workers = [o for o in js if "worker" in o]
    check(sorted(o["worker"] for o in workers) == [0, 1],
          "worker lines %r" % workers)
    check("worker 1 events" in txt and "dest (other) backlog" in txt,
          "stats lacks worker or dest lines: %r" % sorted(txt)[:50])


@test("metrics_queue_states", "metrics: a deferring server, a refusing one "
      "and a held destination show as deferred, bounced, held and backlog "
      "per destination", needs=("deliverd", "deliverctl"))
def t_metrics_states(ctx):
    ok = ctx.server(name="ok")
    slow = ctx.server("--reply", "RCPT:450 4.2.1 try later", name="slow")
    no = ctx.server("--reply", "RCPT:550 5.1.1 no such user", name="no")
    d = metrics_daemon(ctx, {"retry_min": 3600, "retry_max": 7200},
                       routes={"ok.test": ok, "defer.test": slow,
                               "held.test": ok, "bounce.test": no,
                               "src.test": ok})
    d.ctl_ok("hold", "held.test")
    inject(d.addr, "a@src.test", ["x@defer.test"], crlf("Subject: d\n\nd\n"))
    inject(d.addr, "a@src.test", ["x@bounce.test"], crlf("Subject: b\n\nb\n"))
    qids = [inject(d.addr, "a@src.test", ["h%d@held.test" % k],
                   crlf("Subject: h\n\nh\n")) for k in range(3)]
    # A held destination's recipients stay queued; a held message's are
    # held.
    d.ctl_ok("hold", qids[0])
    d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)
    d.wait_dlog(lambda e: e.get("status") == "bounced", 1, 20)
    ok.wait_messages(1)		# the bounce, to a@src.test

    def settled():
        sc = scrape(d.mport)
        return sc if sc.get("deliverd_queue_recipients", state="active") \
            == 0 and sc.get("deliverd_queue_recipients",
                            state="held") == 1 else None
    try:
        sc = wait_until(settled, 20, "nothing active, one held")
    except Fail:
        raise Fail("not settled: %s" % scrape(d.mport).body.decode()[:3000])
    check(sc.get("deliverd_messages_injected_total") == 5, "injected")
    check(sc.get("deliverd_deliveries_total", outcome="deferred") == 1,
          "deferred %r" % sc.get("deliverd_deliveries_total",
                                 outcome="deferred"))
    check(sc.get("deliverd_deliveries_total", outcome="bounced") == 1,
          "bounced")
    check(sc.get("deliverd_deliveries_total", outcome="delivered") == 1,
          "delivered (the bounce)")
    check(sc.get("deliverd_bounces_sent_total") == 1, "bounces sent")
    check(sc.get("deliverd_queue_recipients", state="deferred") == 1,
          "deferred now")
    check(sc.get("deliverd_queue_recipients", state="queued") == 2,
          "queued now %r" % sc.get("deliverd_queue_recipients",
                                   state="queued"))
    back = sc.series("deliverd_destination_backlog")
    check(back.get("held.test") == 3 and back.get("defer.test") == 1,
          "backlog %r" % back)
    # Those with only (idle) connections are listed with no backlog.
    check(all(v == 0 for k, v in back.items()
              if k not in ("held.test", "defer.test")),
          "backlog where there is none: %r" % back)
    check(back.get("(other)") == 0, "other %r" % back)
    check(sc.get("deliverd_destinations") == len(back) - 1, "destinations")
    js = stats_json(d)
    dests = {o["dest"]: o["backlog"] for o in js if "dest" in o and
             (o["backlog"] or o["dest"] == "(other)")}
    check(dests == {"held.test": 3, "defer.test": 1, "(other)": 0},
          "stats --json destinations %r" % dests)
    check(js[0]["failed"] == 1 and js[0]["bounced"] == 1, "stats failed")
    d.ctl_ok("release", qids[0])
    d.ctl_ok("release", "held.test")
    wait_until(lambda: scrape(d.mport).series(
        "deliverd_destination_backlog").get("held.test") is None, 20,
        "held.test delivered and gone from the backlog")


@test("metrics_cardinality", "metrics: 105 destinations with a backlog "
      "give 100 series and an (other) sum of the rest")
def t_metrics_many(ctx):
    dead = free_port()
    doms = ["d%03d.test" % i for i in range(105)]
    d = metrics_daemon(ctx, {"retry_min": 3600, "dest_backoff": 3600},
                       routes=dict((x, dead) for x in doms))
    rcpts = []
    for i, x in enumerate(doms):
        rcpts += ["r%d@%s" % (k, x) for k in range(1 + (i % 3))]
    inject(d.addr, "a@src.test", rcpts, crlf("Subject: many\n\nm\n"))
    sc = wait_until(lambda: (lambda s: s if s.get(
        "deliverd_queue_recipients", state="deferred") == len(rcpts)
        else None)(scrape(d.mport)), 30, "every recipient deferred")
    back = sc.series("deliverd_destination_backlog")
    conns = sc.series("deliverd_destination_connections")
    check(len(back) == 101 and "(other)" in back, "%d backlog series"
          % len(back))
    check(set(conns) == set(back), "connections series differ")
    check(sc.get("deliverd_destinations") == 105, "destinations")
    check(sum(back.values()) == len(rcpts), "backlog sums to %r, want %d"
          % (sum(back.values()), len(rcpts)))
    # The largest are kept: 35 of backlog 3, 35 of 2, 30 of the 35 of 1.
    check(sorted(v for k, v in back.items() if k != "(other)") ==
          [1] * 30 + [2] * 35 + [3] * 35,
          "not the largest kept: %r" % sorted(back.values()))
    check(back["(other)"] == 5, "other %r" % back["(other)"])


@test("metrics_http", "metrics: 404, 405 (Allow: GET), 400 for malformed "
      "and oversized requests, 505; a slow client does not hold up another "
      "and is timed out; past 8 clients at once 503")
def t_metrics_http(ctx):
    d = metrics_daemon(ctx)
    p = d.mport
    for path in ("/", "/metricsx", "/metrics/", "/favicon.ico"):
        st, _ = http_status(p, path=path)
        check(st == 404, "GET %s: %r" % (path, st))
    for m in ("POST", "PUT", "DELETE", "HEAD"):
        st, h = http_status(p, method=m)
        check(st == 405, "%s /metrics: %r" % (m, st))
        check(h.get("Allow") == "GET", "%s: Allow %r" % (m, h.get("Allow")))
    for data, want in (
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /metrics HTTP/1.1\r\n\r\n", 400),		# no Host
            (b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 6000
             + b"\r\n\r\n", 400),
            (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET /metrics HTTP/1.0\r\n\r\n", 200),
            (b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200)):
        st, out = raw_request(p, data)
        check(st == want, "%r...: got %r, want %d" % (data[:40], out[:60],
                                                      want))
        check(b"\r\nConnection: close\r\n" in out, "no Connection: close")
    # A slow client (half a request) and another that scrapes meanwhile.
    slow = socket.create_connection(("127.0.0.1", p), timeout=60)
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHo")
    sc = scrape(p)
    check(sc.get("deliverd_threads") == 2, "second client's scrape")
    got = []

    def other():
        got.append(scrape(p))
    t = threading.Thread(target=other)
    t.start()
    slow.sendall(b"st: x\r\n\r\n")
    t.join(30)
    out = b""
    while True:
        x = slow.recv(65536)
        if not x:
            break
        out += x
    slow.close()
    check(out.startswith(b"HTTP/1.1 200 OK\r\n") and
          b"deliverd_info{" in out, "slow client's answer %r" % out[:80])
    check(len(got) == 1, "the concurrent scrape failed")
    # A client that never finishes is closed by the server.
    idle = socket.create_connection(("127.0.0.1", p), timeout=60)
    idle.sendall(b"GET /metrics HT")
    idle.settimeout(40)
    try:
        x = idle.recv(100)
    except (socket.timeout, ConnectionResetError):
        x = None
    idle.close()
    check(x == b"", "an unfinished request was not closed: %r" % x)
    # The bound on clients at once.
    held = [socket.create_connection(("127.0.0.1", p), timeout=30)
            for _ in range(8)]
    try:
        # The 8 are accepted before the 9th (one loop, in order).
        wait_until(lambda: raw_request(p, b"")[0] == 503, 10,
                   "503 for a ninth client")
    finally:
        for s in held:
            s.close()
    wait_until(lambda: http_status(p)[0] == 200, 20,
               "a scrape once the clients left")
    check(d.alive(), "daemon died")


@test("metrics_listen_none", "metrics: metrics_listen none listens on "
      "nothing more; with an address exactly that port more")
def t_metrics_none(ctx):
    d = ctx.daemon({})
    ports = listening_ports(d.proc.pid)
    check(ports == {d.port}, "listening on %r, want only %d"
          % (ports, d.port))
    check("metrics on" not in d.log(), "metrics started with none")
    m = metrics_daemon(ctx, {"listen": "127.0.0.1:%d" % free_port()},
                       name="dd2")
    ports = listening_ports(m.proc.pid)
    check(ports == {int(m.settings["listen"].rsplit(":", 1)[1]), m.mport},
          "listening on %r" % ports)
    check("metrics on http://127.0.0.1:%d/metrics" % m.mport in m.log(),
          "no 'metrics on' line")


@test("metrics_listen_check", "metrics: a bad metrics_listen fails --check "
      "and the start with a message naming it; a good one passes")
def t_metrics_check(ctx):
    d = ctx.daemon({}, start=False)
    ctx.need("deliverd")
    for bad, why in (("localhost:9100", "bad address"),
                     ("127.0.0.1", "bad address"),
                     ("127.0.0.1:0", "bad address"),
                     ("127.0.0.1:%d" % d.port, "also in listen")):
        for args in (["--check"], []):
            p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "-o",
                                "metrics_listen=" + bad] + args,
                               capture_output=True, timeout=20)
            err = p.stderr.decode(errors="replace")
            check(p.returncode == 1, "%s %r: exit %d" % (args, bad,
                                                        p.returncode))
            check("metrics_listen" in err and why in err,
                  "%s %r: stderr %r" % (args, bad, err))
    p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "-o",
                        "metrics_listen=127.0.0.1:%d" % free_port(),
                        "--check"], capture_output=True, timeout=20)
    check(p.returncode == 0, "a good metrics_listen: %r" % p.stderr)
    # A port taken by someone else: the daemon says so and exits.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "-o",
                            "metrics_listen=127.0.0.1:%d"
                            % s.getsockname()[1]],
                           capture_output=True, timeout=20)
    finally:
        s.close()
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "metrics_listen" in err,
          "a taken port: exit %d, %r" % (p.returncode, err[-300:]))
