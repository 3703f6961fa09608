# SPDX-License-Identifier: GPL-2.0
"""STARTTLS: deliverd's policies (none, may, encrypt, verify; per domain
from tls_policy_file), the delivery log's TLS fields, bodies over TLS
(encrypted in userspace, or by the kernel with kTLS and sendfile), against
dd_testserver.py with certificates made here with the openssl CLI.

The routes name the server "localhost:PORT", so the certificate is
checked against "localhost" (routes keep a host given by name for TLS).
"""

import json
import os
import random
import subprocess
import time

import dd_integration as it
from dd_integration import check, crlf, inject, split_received, test, Fail, \
    Skip

DOTS = crlf("From: a@src.test\nTo: b@dst.test\nSubject: dots over TLS\n\n"
            ".leading dot\n..two dots\n.\n...\nend\n")


def openssl(ctx, *args):
    p = subprocess.run(["openssl"] + list(args), cwd=ctx.tmp,
                       capture_output=True, timeout=60)
    if p.returncode:
        raise Fail("openssl %s: %s" % (" ".join(args),
                                       p.stderr.decode(errors="replace")))


def certs(ctx):
    """A test CA; a certificate it signed for localhost (and
    mx.tls.test), one for mx.tls.test only, and a self-signed one for
    localhost.  {name: (cert, key)} plus "ca": the CA's PEM."""
    if getattr(ctx, "tls_certs", None):
        return ctx.tls_certs
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl(ctx, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=deliverd test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out = {"ca": os.path.join(ctx.tmp, "ca.pem")}
    for name, sans in (("good", "DNS:localhost,DNS:mx.tls.test"),
                       ("wrongname", "DNS:mx.tls.test")):
        ext = os.path.join(ctx.tmp, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % sans)
        openssl(ctx, "req", *ec, "-keyout", name + ".key", "-out",
                name + ".csr", "-subj", "/CN=" + sans.split(",")[0][4:])
        openssl(ctx, "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-out", name + ".pem", "-extfile", ext)
        out[name] = (os.path.join(ctx.tmp, name + ".pem"),
                     os.path.join(ctx.tmp, name + ".key"))
    openssl(ctx, "req", "-x509", *ec, "-keyout", "self.key", "-out",
            "self.pem", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost")
    out["self"] = (os.path.join(ctx.tmp, "self.pem"),
                   os.path.join(ctx.tmp, "self.key"))
    ctx.tls_certs = out
    return out


def tls_server(ctx, which, *args, name="srv"):
    c = certs(ctx)[which]
    return ctx.server("--tls-cert", c[0], "--tls-key", c[1], *args,
                      name=name)


def local(s):
    """The route to a test server by host name, so the name is checked."""
    return "localhost:%d" % s.port


def ulp_listed():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def sendfile_io(ktls):
    evq = it.OPTS.backend == "evq"
    if ktls:
        return "ktls-evq-sendfile" if evq else "ktls-sendfile"
    return "evq-sendfile" if evq else "sendfile"


def big_body(seed=5, size=3 * 1024 * 1024):
    """3 MB of lines, every 7th starting with a dot, bytes 33..254."""
    rnd = random.Random(seed)
    lines, n, i = [], 0, 0
    while n < size:
        ln = (b"." if i % 7 == 0 else b"") + b"%08d " % i + \
            bytes(rnd.randrange(33, 255) for _ in range(rnd.randrange(990)))
        lines.append(ln)
        n += len(ln) + 2
        i += 1
    return b"Subject: big over TLS\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"


def delivered(d, n, timeout=60):
    return d.wait_dlog(lambda e: e.get("status") == "delivered", n, timeout)


def deferred(d, n=1, timeout=30):
    return d.wait_dlog(lambda e: e.get("status") == "deferred", n, timeout)


def no_violations(s):
    st = s.stats()
    check(st.get("violations") == 0, "%s saw protocol violations: %r"
          % (s.name, st.get("violation_list")))


@test("tls_may_offered", "tls: may + STARTTLS offered gets TLS, several "
      "messages per connection, log tls/tls_cipher/tls_verify/body_io")
def t_may_offered(ctx):
    s = tls_server(ctx, "good")
    d = ctx.daemon({"dest_concurrency": 1}, routes={"dst.test": local(s)})
    bodies = [DOTS + b"n=%d\r\n" % i for i in range(4)]
    for b in bodies:
        inject(d.addr, "a@src.test", ["b@dst.test"], b)
    got = delivered(d, 4)
    msgs = s.wait_messages(4, 30)
    for (meta, eml), b in zip(msgs, bodies):
        split_received(eml, b)
        check(meta["tls"] in ("TLSv1.3", "TLSv1.2") and meta["tls_cipher"],
              "message %d not over TLS: %r" % (meta["id"], meta))
    conns = {m["conn"] for m, _ in msgs}
    check(len(conns) == 1, "4 messages over %d connections, want 1"
          % len(conns))
    st = s.stats()
    check(st["tls_sessions"] == 1, "tls_sessions %d" % st["tls_sessions"])
    no_violations(s)
    srv = msgs[0][0]
    allowed = ("buffered", sendfile_io(True))
    for e in got:
        check(e.get("tls") == srv["tls"], "log tls %r, server %r"
              % (e.get("tls"), srv["tls"]))
        check(e.get("tls_cipher") == srv["tls_cipher"],
              "log tls_cipher %r, server %r" % (e.get("tls_cipher"),
                                                srv["tls_cipher"]))
        check(e.get("tls_verify") == "unverified",
              "tls_verify %r (our CA is not trusted)" % e.get("tls_verify"))
        check(e.get("body_io") in allowed, "body_io %r, want one of %r"
              % (e.get("body_io"), allowed))
    if not ulp_listed() and os.geteuid() != 0:
        check(got[0]["body_io"] == "buffered", "no kTLS here, body_io %r"
              % got[0]["body_io"])
    ctx.diag("log: %s %s %s %s" % (got[0]["tls"], got[0]["tls_cipher"],
                                   got[0]["tls_verify"], got[0]["body_io"]))


@test("tls_may_not_offered", "tls: may + no STARTTLS goes plain, no TLS in "
      "the log")
def t_may_plain(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e, = delivered(d, 1)
    (meta, eml), = s.wait_messages(1)
    split_received(eml, DOTS)
    check(meta["tls"] is None, "server says TLS %r" % meta["tls"])
    check("tls" not in e and e.get("body_io") == sendfile_io(False),
          "log entry %r" % e)
    check("STARTTLS" not in s.stats()["commands"], "STARTTLS sent anyway")


@test("tls_may_454", "tls: may + 454 to STARTTLS goes on in plain text on "
      "the same connection")
def t_may_454(ctx):
    s = tls_server(ctx, "good", "--reply",
                   "STARTTLS:454 4.7.0 TLS not available due to temporary "
                   "reason")
    d = ctx.daemon({}, routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e, = delivered(d, 1)
    (meta, eml), = s.wait_messages(1)
    split_received(eml, DOTS)
    st = s.stats()
    check(st["commands"].get("STARTTLS") == 1 and st["connections"] == 1,
          "STARTTLS %r times over %d connections"
          % (st["commands"].get("STARTTLS"), st["connections"]))
    check(meta["tls"] is None and "tls" not in e,
          "TLS after 454? server %r log %r" % (meta["tls"], e))
    no_violations(s)


@test("tls_may_handshake_fail", "tls: may + handshake cut by the server: "
      "reconnect at once in plain text, delivered")
def t_may_hs_fail(ctx):
    s = tls_server(ctx, "good", "--tls-fail-handshake")
    d = ctx.daemon({"dest_backoff": 600}, routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e, = delivered(d, 1, 30)
    (meta, eml), = s.wait_messages(1)
    split_received(eml, DOTS)
    st = s.stats()
    check(st["tls_failed"] == 1 and st["connections"] == 2,
          "tls_failed %d connections %d, want 1 and 2"
          % (st["tls_failed"], st["connections"]))
    check(meta["tls"] is None and "tls" not in e, "TLS? %r" % e)
    check(not [x for x in d.dlog() if x.get("status") != "delivered"],
          "entries other than delivered: %r" % d.dlog())
    check("TLS handshake with" in d.log() and "no TLS for it" in d.log(),
          "no word of the failed handshake in the daemon log")


@test("tls_encrypt_handshake_fail", "tls: encrypt + handshake cut by the "
      "server gets deferred 4.7.5 with the reason; never sent in plain text")
def t_encrypt_hs_fail(ctx):
    s = tls_server(ctx, "good", "--tls-fail-handshake")
    d = ctx.daemon({"tls_policy": "encrypt", "retry_min": 1, "retry_max": 1,
                    "dest_backoff": 1}, routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    ents = deferred(d, 2)
    for e in ents:
        check(e.get("enh") == "4.7.5" and "TLS" in e.get("reply", ""),
              "deferral %r" % e)
    st = s.stats()
    check(st["tls_failed"] >= 2, "tls_failed %d: retried without TLS?"
          % st["tls_failed"])
    check(s.count() == 0 and st["commands"].get("MAIL", 0) == 0,
          "MAIL sent in plain text under encrypt")


@test("tls_handshake_timeout", "tls: a server that never answers the "
      "handshake: encrypt defers after helo_timeout with the reason, "
      "nothing in plain text; may then delivers in plain text")
def t_hs_timeout(ctx):
    s = tls_server(ctx, "good", "--tls-stall-handshake")
    d = ctx.daemon({"tls_policy": "encrypt", "helo_timeout": 2,
                    "retry_min": 600, "dest_backoff": 600},
                   routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e = deferred(d, 1, 60)[0]
    check(e.get("code", 0) // 100 != 2 and
          ("time" in e.get("reply", "").lower() or
           "TLS" in e.get("reply", "")), "deferral %r" % e)
    check(s.count() == 0 and s.stats()["commands"].get("MAIL", 0) == 0,
          "MAIL sent in plain text under encrypt")
    d.stop()
    m = ctx.daemon({"tls_policy": "may", "helo_timeout": 2},
                   routes={"dst.test": local(s)})
    inject(m.addr, "a@src.test", ["b@dst.test"], DOTS)
    e = m.wait_dlog(lambda e: e.get("status") == "delivered", 1, 60)[0]
    check("tls" not in e, "delivered over TLS from a stalled handshake? %r"
          % e)


@test("tls_encrypt_not_offered", "tls: encrypt + no STARTTLS gets deferred "
      "with 4.7.4 'TLS is required'")
def t_encrypt_plain(ctx):
    s = ctx.server()
    d = ctx.daemon({"tls_policy": "encrypt"},
                   routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e = deferred(d)[0]
    check(e.get("enh") == "4.7.4" and "TLS is required" in e.get("reply", ""),
          "deferral %r" % e)
    time.sleep(1)
    check(s.count() == 0, "delivered in plain text anyway")
    check(s.stats()["commands"].get("MAIL", 0) == 0, "MAIL sent")


@test("tls_encrypt_selfsigned", "tls: encrypt + self-signed certificate "
      "delivered, tls_verify 'unverified'")
def t_encrypt_self(ctx):
    s = tls_server(ctx, "self")
    d = ctx.daemon({"tls_policy": "encrypt"},
                   routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e, = delivered(d, 1)
    (meta, eml), = s.wait_messages(1)
    split_received(eml, DOTS)
    check(meta["tls"] and e.get("tls") == meta["tls"] and
          e.get("tls_verify") == "unverified", "log %r server %r"
          % (e, meta["tls"]))


@test("tls_verify_ok", "tls: verify + CA in tls_ca_file and the right name "
      "delivered, tls_verify 'verified'")
def t_verify_ok(ctx):
    s = tls_server(ctx, "good")
    d = ctx.daemon({"tls_policy": "verify", "tls_ca_file": certs(ctx)["ca"]},
                   routes={"dst.test": local(s)})
    inject(d.addr, "a@src.test", ["b@dst.test"], DOTS)
    e, = delivered(d, 1)
    (meta, eml), = s.wait_messages(1)
    split_received(eml, DOTS)
    check(meta["tls"] and e.get("tls_verify") == "verified",
          "log %r server %r" % (e, meta["tls"]))


@test("tls_verify_fails", "tls: verify + wrong name or unknown CA gets "
      "deferred with the verification error")
def t_verify_bad(ctx):
    s1 = tls_server(ctx, "wrongname", name="wrongname")
    s2 = tls_server(ctx, "self", name="self")
    s3 = tls_server(ctx, "good", name="good")
    d = ctx.daemon({"tls_policy": "verify", "tls_ca_file": certs(ctx)["ca"]},
                   routes={"name.test": local(s1), "self.test": local(s2),
                           "ok.test": local(s3)})
    inject(d.addr, "a@src.test", ["b@name.test", "c@self.test",
                                  "d@ok.test"], DOTS)
    ents = d.wait_dlog(lambda e: e.get("status") in ("deferred",
                                                     "delivered"), 3, 30)
    by = {e["dest"]: e for e in ents}
    e = by["name.test"]
    check(e["status"] == "deferred" and e.get("enh") == "4.7.5" and
          "certificate verification failed: hostname mismatch" in
          e.get("reply", "").lower(), "wrong name: %r" % e)
    e = by["self.test"]
    check(e["status"] == "deferred" and
          "certificate verification failed: self-signed certificate" in
          e.get("reply", "").lower(), "self-signed: %r" % e)
    check(by["ok.test"]["status"] == "delivered", "the good one: %r"
          % by["ok.test"])
    check(s1.count() == 0 and s2.count() == 0,
          "delivered despite a bad certificate")
    ctx.diag("wrong name: %s" % by["name.test"]["reply"])
    ctx.diag("self-signed: %s" % by["self.test"]["reply"])


@test("tls_policy_file", "tls: tls_policy_file exact/.suffix/'*' override "
      "tls_policy per domain")
def t_policy_file(ctx):
    a = tls_server(ctx, "good", name="a")		# none by default
    b = tls_server(ctx, "good", name="b")		# .sub.test may
    c = ctx.server(name="c")				# enc.test encrypt
    e = tls_server(ctx, "good", name="e")		# '*' encrypt
    pf = os.path.join(ctx.tmp, "tls_policy")
    with open(pf, "w") as f:
        f.write("# per domain\nplain.test none\n.sub.test may  # subs\n"
                "enc.test ENCRYPT\n* encrypt\n")
    d = ctx.daemon({"tls_policy": "verify", "tls_policy_file": pf},
                   routes={"plain.test": local(a), ".sub.test": local(b),
                           "enc.test": local(c), "*": local(e)})
    inject(d.addr, "a@src.test", ["x@plain.test", "y@a.sub.test",
                                  "z@enc.test", "w@other.test"], DOTS)
    ents = d.wait_dlog(lambda x: x.get("status") in ("deferred",
                                                     "delivered"), 4, 30)
    by = {x["dest"]: x for x in ents}
    check(by["plain.test"]["status"] == "delivered" and
          "tls" not in by["plain.test"] and
          "STARTTLS" not in a.stats()["commands"],
          "plain.test (none): %r" % by["plain.test"])
    check(by["a.sub.test"]["status"] == "delivered" and
          by["a.sub.test"].get("tls_verify") == "unverified",
          "a.sub.test (may): %r" % by["a.sub.test"])
    check(by["enc.test"]["status"] == "deferred" and
          by["enc.test"].get("enh") == "4.7.4",
          "enc.test (encrypt, not offered): %r" % by["enc.test"])
    check(by["other.test"]["status"] == "delivered" and
          by["other.test"].get("tls"),
          "other.test ('*' encrypt, default verify would fail): %r"
          % by["other.test"])


@test("tls_policy_file_bad", "tls: a bad tls_policy_file line makes "
      "deliverd --check exit 1 with FILE:LINE")
def t_policy_bad(ctx):
    d = it.Daemon(ctx, {}, {})
    os.makedirs(d.spool, exist_ok=True)
    for n, (line, what) in enumerate((("b.test sometimes", "unknown policy"),
                                      ("b.test", "no policy"),
                                      ("b..test may", "bad domain"),
                                      ("a.test may", "duplicate"))):
        pf = os.path.join(ctx.tmp, "pol%d" % n)
        with open(pf, "w") as f:
            f.write("# policies\na.test encrypt\n%s\n" % line)
        d.settings["tls_policy_file"] = pf
        d.write_conf()
        p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "--check"],
                           capture_output=True, timeout=10)
        out = (p.stderr + p.stdout).decode(errors="replace")
        check(p.returncode == 1, "%s: exit %d, want 1: %s"
              % (what, p.returncode, out.strip()))
        check("%s:3:" % pf in out, "%s: no '%s:3:' in %r"
              % (what, pf, out.strip()))
    with open(pf, "w") as f:
        f.write("a.test encrypt\n.b.test verify\n* may\n")
    p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "--check"],
                       capture_output=True, timeout=10)
    check(p.returncode == 0, "good policy file: exit %d: %s"
          % (p.returncode, (p.stderr + p.stdout).decode(errors="replace")))


def bodies_over_tls(ctx, settings):
    """A 3 MB body with dot lines and a short one with dot lines, BDAT and
    DATA, over TLS; returns the delivery log entries."""
    s1 = tls_server(ctx, "good", name="chunk")
    s2 = tls_server(ctx, "good", "--no-chunking", name="nochunk")
    d = ctx.daemon(settings, routes={"b1.test": local(s1),
                                     "b2.test": local(s2)})
    big = big_body()
    inject(d.addr, "a@src.test", ["x@b1.test", "y@b2.test"], big, bdat=True,
           chunks=4)
    inject(d.addr, "a@src.test", ["x@b1.test", "y@b2.test"], DOTS)
    got = delivered(d, 4, 90)
    for s, transport in ((s1, "bdat"), (s2, "data")):
        msgs = s.wait_messages(2, 60)
        for meta, eml in msgs:
            # Either may come first (two sessions).
            split_received(eml, big if len(eml) > len(big) else DOTS)
            check(meta["transport"] == transport and meta["tls"],
                  "%s: %s over %r" % (s.name, meta["transport"],
                                      meta["tls"]))
        no_violations(s)
    return got


@test("tls_bodies_buffered", "tls: 3 MB and dot-line bodies, BDAT and DATA, "
      "byte-exact over TLS encrypted in userspace (ktls=no)")
def t_bodies_buffered(ctx):
    got = bodies_over_tls(ctx, {"ktls": "no"})
    bad = [e for e in got if e.get("body_io") != "buffered" or
           not e.get("tls")]
    check(not bad, "entries %r" % bad)


def try_ktls():
    """Is kernel TLS possible?  It needs the tls ULP, and the kernel's
    AEADs for it: the kernel loads them by itself only where it can run
    modprobe (not in the VM's chroot), and OpenSSL quietly does without
    kTLS when setting the key fails."""
    if os.geteuid() == 0:
        for m in ("tls", "ctr", "gcm", "ghash-generic", "chacha20poly1305"):
            subprocess.run(["modprobe", "-q", m], capture_output=True)
    return ulp_listed()


def need_ktls():
    if not try_ktls():
        raise Skip("no kernel TLS: 'tls' not in "
                   "/proc/sys/net/ipv4/tcp_available_ulp and modprobe tls "
                   "failed or not root")


@test("tls_ktls_sendfile", "tls: with kernel TLS the bodies (3 MB, dot "
      "lines; BDAT and DATA) go with sendfile, byte-exact")
def t_ktls(ctx):
    need_ktls()
    got = bodies_over_tls(ctx, {"ktls": "yes"})
    want = sendfile_io(True)
    bad = [e for e in got if e.get("body_io") != want or not e.get("tls")]
    check(not bad, "want body_io %s: %r" % (want, bad))
    for e in got:
        ctx.diag("dlog: " + json.dumps(e))
