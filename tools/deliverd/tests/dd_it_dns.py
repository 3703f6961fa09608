# SPDX-License-Identifier: GPL-2.0
"""Integration tests of MX resolution (dd_dns.c, dd_mx.c).

deliverd asks a dnsmasq of the test's own (127.0.0.1, a free port, in the
foreground, answering only from its command line) and connects to MX hosts
on mx_port at 127.0.0.2, 127.0.0.3, ... and ::1, where dd_testserver.py
sinks listen.  dnsmasq is --local=/test/: a name under .test it does not
know is NXDOMAIN, a known name without the type asked is NODATA; names
elsewhere get REFUSED (it has no upstream), and fail.test is forwarded to
a port nobody answers on.
"""

import json
import os
import socket
import struct
import subprocess
import time

from dd_integration import (Fail, Skip, TestServer, check, crlf, free_port,
                            inject, parse_dsn, test, wait_until)

DNSMASQ = "/usr/sbin/dnsmasq"


def dns_answers(port, name="ready.test"):
    """Does a DNS server answer on 127.0.0.1:port (any rcode)?"""
    q = struct.pack(">HHHHHH", 0x4444, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(x)]) + x.encode() for x in name.split("."))
    q += b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, ("127.0.0.1", port))
        return s.recv(512)[:2] == b"\x44\x44"
    except OSError:
        return False
    finally:
        s.close()


class Dnsmasq:
    """dnsmasq in the foreground with the records given as options."""

    def __init__(self, ctx, records, port=None, name="dns"):
        if not os.access(DNSMASQ, os.X_OK):
            raise Skip("dnsmasq not installed (package dnsmasq-base)")
        self.ctx = ctx
        self.port = port or free_port()
        self.log = os.path.join(ctx.tmp, name + ".log")
        self.proc = None
        ctx.procs.append(self)
        self.start(records)

    def start(self, records):
        self.stop()
        dead = free_port()
        cmd = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
               "--no-resolv", "--no-hosts", "--bind-interfaces",
               "--listen-address=127.0.0.1", "--port=%d" % self.port,
               "--pid-file=", "--log-queries", "--log-facility=-",
               "--local=/test/", "--host-record=ready.test,127.0.0.254",
               "--server=/fail.test/127.0.0.1#%d" % dead] + list(records)
        err = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err)
        wait_until(lambda: self.proc.poll() is not None or
                   dns_answers(self.port), 15, "dnsmasq to answer")
        if self.proc.poll() is not None:
            raise Fail("dnsmasq exited %s: %s" % (
                self.proc.returncode, open(self.log).read()[-500:]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port


class HostServer(TestServer):
    """A dd_testserver.py on an address other than 127.0.0.1."""

    def __init__(self, ctx, host, port, name, args=()):
        self.host = host
        TestServer.__init__(self, ctx, args, port=port, name=name)

    @property
    def addr(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)


def setup(ctx, records, settings=None, routes=None, sinks=(), ttl=1):
    """dnsmasq, sinks {name: host} on one port, and deliverd using them."""
    dns = Dnsmasq(ctx, ["--local-ttl=%d" % ttl] + list(records))
    port = free_port()
    srv = {}
    for name, host in sinks:
        srv[name] = HostServer(ctx, host, port, name)
    st = {"dns_servers": dns.server, "mx_port": port, "dns_timeout": 1}
    st.update(settings or {})
    d = ctx.daemon(st, routes=routes or {})
    return dns, port, srv, d


def mail(d, rcpt, subject="dns", sender="a@src.test"):
    return inject(d.addr, sender, [rcpt], crlf("Subject: %s\n\nx\n" % subject))


def entries(d, qid):
    return [e for e in d.dlog() if e.get("qid") == qid]


def final(d, qid, status, timeout=30):
    """The qid's first delivery-log entry with status."""
    return d.wait_dlog(lambda e: e.get("qid") == qid and
                       e.get("status") == status, 1, timeout,
                       "%s entry for %s" % (status, qid))[0]


@test("dns_mx_order", "dns: the most preferred MX gets the mail; when it "
      "refuses connections the next one does, without a deferral")
def t_dns_mx_order(ctx):
    dns, port, s, d = setup(ctx, [
        "--mx-host=pref.test,mx2.pref.test,20",
        "--mx-host=pref.test,mx1.pref.test,10",
        "--host-record=mx1.pref.test,127.0.0.2",
        "--host-record=mx2.pref.test,127.0.0.3",
    ], {"conn_idle": 1}, sinks=[("mx1", "127.0.0.2"), ("mx2", "127.0.0.3")])
    q1 = mail(d, "r1@pref.test", "first")
    e = final(d, q1, "delivered")
    check(e.get("dest") == "pref.test" and e.get("mx") == "mx1.pref.test" and
          e.get("host") == "127.0.0.2:%d" % port,
          "first message's entry %s, want mx mx1.pref.test at 127.0.0.2"
          % json.dumps(e))
    check(s["mx1"].count() == 1 and s["mx2"].count() == 0,
          "mx1 has %d, mx2 %d" % (s["mx1"].count(), s["mx2"].count()))
    s["mx1"].stop()
    time.sleep(1.5)		# its idle session is gone too
    q2 = mail(d, "r2@pref.test", "second")
    e = final(d, q2, "delivered")
    check(e.get("mx") == "mx2.pref.test" and
          e.get("host") == "127.0.0.3:%d" % port,
          "second message's entry %s, want mx2.pref.test at 127.0.0.3"
          % json.dumps(e))
    st = [x.get("status") for x in entries(d, q2)]
    check(st == ["delivered"], "second message's statuses %r: the next MX "
          "should be tried before deferring" % st)
    s["mx2"].wait_messages(1, 10)


@test("dns_implicit_mx", "dns: a domain without MX gets its mail at its "
      "own address (RFC 5321 5.1)")
def t_dns_implicit(ctx):
    dns, port, s, d = setup(ctx, ["--host-record=plain.test,127.0.0.4"],
                            sinks=[("plain", "127.0.0.4")])
    q = mail(d, "r@plain.test")
    e = final(d, q, "delivered")
    check(e.get("mx") == "plain.test" and
          e.get("host") == "127.0.0.4:%d" % port,
          "entry %s, want mx plain.test at 127.0.0.4" % json.dumps(e))
    s["plain"].wait_messages(1, 10)


@test("dns_ipv6", "dns: an MX host with AAAA and A is reached over IPv6 "
      "first; with ipv6=no over IPv4")
def t_dns_ipv6(ctx):
    recs = ["--mx-host=six.test,mx.six.test,10",
            "--host-record=mx.six.test,127.0.0.5,::1"]
    dns, port, s, d = setup(ctx, recs, sinks=[("v6", "::1"),
                                              ("v4", "127.0.0.5")])
    q = mail(d, "r@six.test")
    e = final(d, q, "delivered")
    check(e.get("mx") == "mx.six.test" and
          e.get("host") == "[::1]:%d" % port,
          "entry %s, want mx.six.test at [::1]" % json.dumps(e))
    check(s["v6"].count() == 1 and s["v4"].count() == 0,
          "v6 sink has %d, v4 sink %d" % (s["v6"].count(), s["v4"].count()))
    d4 = ctx.daemon({"dns_servers": dns.server, "mx_port": port,
                     "ipv6": "no"}, name="dd4")
    q = mail(d4, "r@six.test")
    e = final(d4, q, "delivered")
    check(e.get("host") == "127.0.0.5:%d" % port,
          "ipv6=no: entry %s, want 127.0.0.5" % json.dumps(e))


def bounced(ctx, d, bsink, rcpt, code, enh, words):
    q = mail(d, rcpt)
    e = final(d, q, "bounced")
    check(e.get("dest") == rcpt.split("@")[1] and e.get("code") == code and
          e.get("enh") == enh and words in str(e.get("reply")),
          "entry %s, want %d %s with %r" % (json.dumps(e), code, enh, words))
    check(not e.get("mx") and not e.get("host"),
          "entry names a host though none was connected to: %s"
          % json.dumps(e))
    return e


@test("dns_permanent", "dns: NXDOMAIN bounces 5.1.2, no MX and no address "
      "5.4.4, null MX 556 5.1.10; the bounce names the reason")
def t_dns_permanent(ctx):
    b = ctx.server(name="bounces")
    dns, port, s, d = setup(ctx, [
        "--txt-record=txtonly.test,nothing here",
        "--mx-host=null.test,.,0",
        "--mx-host=noaddr.test,mx.noaddr.test,10",
        "--txt-record=mx.noaddr.test,nothing",
    ], routes={"src.test": b})
    bounced(ctx, d, b, "r@nope.test", 550, "5.1.2", "does not exist")
    bounced(ctx, d, b, "r@txtonly.test", 550, "5.4.4",
            "no MX and no address")
    bounced(ctx, d, b, "r@noaddr.test", 550, "5.4.4", "has an address")
    bounced(ctx, d, b, "r@null.test", 556, "5.1.10", "null MX")
    msgs = b.wait_messages(4, 30)
    got = {}
    for meta, eml in msgs:
        _, ds = parse_dsn(eml)
        ds = ds or ""
        for rcpt in ("nope.test", "txtonly.test", "noaddr.test",
                     "null.test"):
            if ("r@" + rcpt) in ds:
                got[rcpt] = ds
    check(len(got) == 4, "bounces for %r, want all four" % sorted(got))
    check("5.1.2" in got["nope.test"] and "5.1.10" in got["null.test"],
          "DSN status: %r" % got["null.test"][:300])


@test("dns_temporary", "dns: REFUSED and an unanswered query defer with "
      "4.4.3; delivered once the DNS server answers")
def t_dns_temporary(ctx):
    dns, port, s, d = setup(ctx, [], {
        "retry_min": 1, "retry_max": 2, "dest_backoff": 1},
        sinks=[("mx", "127.0.0.6")])
    q = mail(d, "r@later.example")
    e = final(d, q, "deferred")
    check(e.get("enh") == "4.4.3" and e.get("code", 0) // 100 == 4 and
          "refused" in str(e.get("reply")).lower(),
          "entry %s, want 4xx 4.4.3 naming REFUSED" % json.dumps(e))
    qf = mail(d, "r@x.fail.test")
    e = final(d, qf, "deferred", 40)
    check(e.get("enh") == "4.4.3", "unanswered lookup: entry %s, want "
          "4.4.3" % json.dumps(e))
    check(s["mx"].count() == 0, "delivered while DNS failed")
    dns.start(["--local-ttl=1", "--mx-host=later.example,mx.later.test,10",
               "--host-record=mx.later.test,127.0.0.6"])
    e = final(d, q, "delivered", 40)
    check(e.get("mx") == "mx.later.test" and
          e.get("host") == "127.0.0.6:%d" % port, "entry %s" % json.dumps(e))
    s["mx"].wait_messages(1, 10)


@test("dns_ttl", "dns: answers are used until their TTL runs out (a "
      "change in DNS is not seen before), then looked up again")
def t_dns_ttl(ctx):
    def recs(ip):
        # MX TTL 1 s (--local-ttl); the address of mx.long.test an hour,
        # the one of mx.short.test a second.
        return ["--mx-host=long.test,mx.long.test,10",
                "--mx-host=short.test,mx.short.test,10",
                "--host-record=mx.long.test,%s,3600" % ip,
                "--host-record=mx.short.test,%s,1" % ip]
    dns, port, s, d = setup(ctx, recs("127.0.0.2"), {"conn_idle": 1},
                            sinks=[("old", "127.0.0.2"),
                                   ("new", "127.0.0.3")])
    for dom in ("long.test", "short.test"):
        e = final(d, mail(d, "r@" + dom), "delivered")
        check(e.get("host") == "127.0.0.2:%d" % port,
              "before the change: %s" % json.dumps(e))
    dns.start(["--local-ttl=1"] + recs("127.0.0.3"))
    time.sleep(3)		# past the 1 s TTLs and conn_idle
    e = final(d, mail(d, "r@short.test"), "delivered")
    check(e.get("host") == "127.0.0.3:%d" % port,
          "short TTL, after the change and the TTL: %s, want 127.0.0.3"
          % json.dumps(e))
    e = final(d, mail(d, "r@long.test"), "delivered")
    check(e.get("host") == "127.0.0.2:%d" % port,
          "an hour's TTL, after the change: %s, want the cached 127.0.0.2"
          % json.dumps(e))
    check(s["old"].count() == 3 and s["new"].count() == 1,
          "old address got %d, new %d; want 3 and 1"
          % (s["old"].count(), s["new"].count()))


@test("dns_route_wins", "dns: a static route beats the domain's MX")
def t_dns_route_wins(ctx):
    r = ctx.server(name="route")
    dns, port, s, d = setup(ctx, [
        "--mx-host=routed.test,mx.routed.test,10",
        "--host-record=mx.routed.test,127.0.0.2",
    ], routes={"routed.test": r}, sinks=[("mx", "127.0.0.2")])
    q = mail(d, "r@routed.test")
    e = final(d, q, "delivered")
    check(e.get("host") == r.addr and "mx" not in e,
          "entry %s, want the route's %s and no mx" % (json.dumps(e), r.addr))
    check(r.count() == 1 and s["mx"].count() == 0,
          "route got %d, MX %d" % (r.count(), s["mx"].count()))
