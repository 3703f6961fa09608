# SPDX-License-Identifier: GPL-2.0
"""DKIM signing, end to end: messages injected into deliverd, received
byte for byte by dd_testserver.py, then verified by an implementation that
is not ours (Debian's python3-dkim, dkimpy; opendkim-testmsg too when it
is installed, against a local dnsmasq).  Keys are made at test time with
the openssl CLI; the DNS TXT records are built from their public halves.

Loaded by dd_integration.py (load_test_modules)."""

import base64
import os
import re
import shutil
import subprocess
import time

from dd_integration import (Daemon, Skip, check, crlf, inject,
                            split_received, test)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def dkimpy():
    try:
        import dkim
    except ImportError:
        raise Skip("python3-dkim is not installed")
    return dkim


class Key:
    """A private key in PEM, made with the openssl CLI, and the DNS TXT
    record (RFC 6376 3.6.1; RFC 8463 4.2 for k=ed25519) of its public
    half."""

    def __init__(self, ctx, domain, selector, alg, bits=2048):
        self.domain, self.selector, self.alg = domain, selector, alg
        self.path = os.path.join(ctx.tmp, "%s.%s.pem" % (selector, domain))
        if alg == "rsa-sha256":
            cmd = [OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt",
                   "rsa_keygen_bits:%d" % bits]
        else:
            cmd = [OPENSSL, "genpkey", "-algorithm", "ED25519"]
        subprocess.run(cmd + ["-out", self.path], check=True,
                       capture_output=True, timeout=60)
        der = subprocess.run([OPENSSL, "pkey", "-in", self.path, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True, timeout=30).stdout
        if alg == "rsa-sha256":
            self.txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        else:
            # the bare 32-octet key: the end of its SubjectPublicKeyInfo
            self.txt = "v=DKIM1; k=ed25519; p=" + \
                base64.b64encode(der[-32:]).decode()

    @property
    def dnsname(self):
        return "%s._domainkey.%s" % (self.selector, self.domain)

    def line(self):
        return "%s %s %s %s" % (self.domain, self.selector, self.alg,
                                self.path)


def keys_file(ctx, keys, name="dkim.keys"):
    path = os.path.join(ctx.tmp, name)
    with open(path, "w") as f:
        f.write("# dd_it_dkim\n")
        for k in keys:
            f.write(k.line() + "\n")
    return path


def dkim_daemon(ctx, keys, **settings):
    s = ctx.server(name="dest")
    settings.setdefault("dkim_keys_file", keys_file(ctx, keys))
    d = ctx.daemon(settings, routes={"*": s})
    return d, s


def sig_fields(eml):
    """The DKIM-Signature fields of eml (raw, with their folding)."""
    hdr = eml.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return re.findall(rb"^DKIM-Signature:.*?\r\n(?![ \t])", hdr,
                      re.M | re.S)


def verify(eml, keys, idx=0):
    """dkimpy's verdict on signature idx, with DNS answered from keys.
    Returns (ok, why); the DNS names asked for must be ours."""
    dkim = dkimpy()
    recs = {k.dnsname + ".": k.txt for k in keys}
    asked = []

    def dnsfunc(name, timeout=5):
        name = name.decode()
        asked.append(name)
        txt = recs.get(name)
        return txt.encode() if txt else None
    d = dkim.DKIM(eml)
    try:
        ok = d.verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:
        return False, "%s (asked %r)" % (e, asked)
    return bool(ok), "asked %r" % asked


def must_verify(eml, keys, nsig):
    sigs = sig_fields(eml)
    check(len(sigs) == nsig, "%d DKIM-Signature fields, want %d: %r"
          % (len(sigs), nsig, [s[:60] for s in sigs]))
    for i in range(nsig):
        ok, why = verify(eml, keys, i)
        check(ok, "signature %d does not verify: %s\n%s"
              % (i, why, sigs[i].decode(errors="replace")))
    # the signatures are on top, above our Received:
    check(eml.startswith(b"DKIM-Signature:"), "message starts with %r"
          % eml[:40])
    for line in b"".join(sigs).split(b"\r\n"):
        check(len(line) < 78, "DKIM-Signature line of %d columns: %r"
              % (len(line), line))
    return sigs


def must_fail(eml, keys, what):
    ok, why = verify(eml, keys, 0)
    check(not ok, "verifies after %s: the test could not fail" % what)


def tag(sig, name):
    v = re.sub(rb"\s+", b"", sig.split(b":", 1)[1])
    m = re.search(rb"(?:^|;)%s=([^;]*)" % name.encode(), v)
    return m.group(1).decode() if m else None


MSG = crlf("From: Joe SixPack <joe@sign.test>\n"
           "To: Suzie Q <suzie@dst.test>,\n"
           "\tbob@dst.test\n"
           "Subject:   Is dinner\t ready?   \n"
           "   folded   and \t tabbed  \n"
           "Date: Fri, 11 Jul 2003 21:00:37 -0700\n"
           "Message-ID: <20030712040037.46341.5F8J@sign.test>\n"
           "X-Not-Signed: anything\n"
           "\n"
           "Hi.\n"
           "\n"
           ".leading dot\n"
           "..two dots\n"
           ".\n"
           "We lost the game.  Are you hungry yet?   \n"
           "\t  \n"
           "Joe.\n"
           "\n"
           "\n").replace(b"hungry", "hüngry".encode()) + \
    b"caf\xe9 \xff\r\n\r\n"


@test("dkim_rsa", "dkim: RSA-2048, DATA with folded headers, dot lines and "
      "8-bit body: verified by dkimpy, above Received:, over-signed; "
      "a tampered body or header fails")
def t_dkim_rsa(ctx):
    k = Key(ctx, "sign.test", "rsa1", "rsa-sha256")
    d, s = dkim_daemon(ctx, [k])
    inject(d.addr, "joe@sign.test", ["suzie@dst.test"], MSG)
    (meta, eml), = s.wait_messages(1, 30)
    sig, = must_verify(eml, [k], 1)
    # what came in is stored and sent unchanged below the signature
    prefix = eml[:len(eml) - len(MSG)]
    check(eml.endswith(MSG) and b"\r\nReceived: " in b"\r\n" + prefix,
          "not DKIM-Signature, Received:, then the message as injected")
    check(tag(sig, "d") == "sign.test" and tag(sig, "s") == "rsa1" and
          tag(sig, "a") == "rsa-sha256" and
          tag(sig, "c") == "relaxed/relaxed",
          "tags: %r" % sig)
    t = int(tag(sig, "t"))
    check(abs(t - time.time()) < 600, "t=%d is not now" % t)
    h = tag(sig, "h").split(":")
    check(h.count("from") == 2 and h.count("subject") == 2 and
          h.count("to") == 2 and "x-not-signed" not in h and
          "cc" not in h, "h=%s: each present name once more than it "
          "occurs, absent ones not at all" % ":".join(h))
    must_fail(eml.replace(b"We lost", b"We won"), [k], "a body change")
    must_fail(eml.replace(b"Is dinner", b"Is lunch"), [k],
              "a Subject change")
    must_fail(eml.replace(b"\r\n\r\nHi.", b"\r\nSubject: added\r\n\r\nHi.",
                          1), [k], "a second Subject: added")
    # relaxed: whitespace changes within lines do not matter
    ok, why = verify(eml.replace(b"the game.", b"the   game."), [k])
    check(ok, "relaxed body canonicalization: %s" % why)


@test("dkim_ed25519", "dkim: Ed25519 (RFC 8463), BDAT injection in chunks: "
      "verified by dkimpy; a tampered body fails")
def t_dkim_ed25519(ctx):
    k = Key(ctx, "sign.test", "ed1", "ed25519-sha256")
    d, s = dkim_daemon(ctx, [k])
    inject(d.addr, "joe@sign.test", ["suzie@dst.test"], MSG, bdat=True,
           chunks=3)
    (meta, eml), = s.wait_messages(1, 30)
    sig, = must_verify(eml, [k], 1)
    check(tag(sig, "a") == "ed25519-sha256", "a=%s" % tag(sig, "a"))
    check(len(base64.b64decode(tag(sig, "b"))) == 64,
          "an Ed25519 signature is 64 octets")
    must_fail(eml.replace(b"Joe.", b"Jim."), [k], "a body change")


@test("dkim_both", "dkim: an RSA and an Ed25519 key for one domain give two "
      "signatures, in the keys file's order, each verified; bodies of "
      "several messages differ, the keys of the From: domain only")
def t_dkim_both(ctx):
    ke = Key(ctx, "sign.test", "ed", "ed25519-sha256")
    kr = Key(ctx, "sign.test", "rsa", "rsa-sha256")
    ko = Key(ctx, "other.test", "o", "ed25519-sha256")
    d, s = dkim_daemon(ctx, [ke, ko, kr])
    inject(d.addr, "joe@sign.test", ["suzie@dst.test"], MSG)
    # the envelope sender does not choose the key, From: does
    inject(d.addr, "bounce@other.test", ["x@dst.test"],
           MSG.replace(b"Hi.", b"Hello."))
    msgs = s.wait_messages(2, 30)
    for meta, eml in msgs:
        sigs = must_verify(eml, [ke, kr, ko], 2)
        check([tag(x, "s") for x in sigs] == ["ed", "rsa"],
              "selectors %r, want ['ed', 'rsa']"
              % [tag(x, "s") for x in sigs])
        check(all(tag(x, "d") == "sign.test" for x in sigs), "d= %r"
              % [tag(x, "d") for x in sigs])
        check(tag(sigs[0], "bh") == tag(sigs[1], "bh"),
              "one body, one body hash")
    check(tag(sig_fields(msgs[0][1])[0], "bh") !=
          tag(sig_fields(msgs[1][1])[0], "bh"),
          "two different bodies with the same bh=")


@test("dkim_no_key", "dkim: a From: domain without a key, no From: or two "
      "From: addresses go out unsigned and byte-exact")
def t_dkim_nokey(ctx):
    k = Key(ctx, "sign.test", "ed1", "ed25519-sha256")
    d, s = dkim_daemon(ctx, [k])
    bodies = [
        MSG.replace(b"joe@sign.test>", b"joe@unsigned.test>"),
        MSG.replace(b"From: Joe SixPack <joe@sign.test>\r\n", b""),
        MSG.replace(b"<joe@sign.test>", b"<joe@sign.test>, eve@sign.test"),
        # a subdomain has no key of its own
        MSG.replace(b"joe@sign.test>", b"joe@sub.sign.test>"),
    ]
    for i, b in enumerate(bodies):
        inject(d.addr, "joe@sign.test", ["n%d@dst.test" % i],
               b.replace(b"X-Not-Signed: anything", b"X-N: %d" % i))
    msgs = s.wait_messages(len(bodies), 30)
    for meta, eml in msgs:
        i = int(re.search(rb"X-N: (\d)", eml).group(1))
        split_received(eml, bodies[i].replace(b"X-Not-Signed: anything",
                                              b"X-N: %d" % i))
        check(b"DKIM-Signature" not in eml, "message %d signed" % i)


@test("dkim_big", "dkim: a 3 MB 8-bit body with dot lines, BDAT in, "
      "verified by dkimpy")
def t_dkim_big(ctx):
    import random
    k = Key(ctx, "sign.test", "rsa1", "rsa-sha256")
    d, s = dkim_daemon(ctx, [k])
    rnd = random.Random(5)
    lines, size, i = [], 0, 0
    while size < 3 * 1024 * 1024:
        ln = (b"." if i % 7 == 0 else b"") + b"%08d " % i + \
            bytes(rnd.choice(b"abc \t\xc3\xa9\xff.") for _ in
                  range(rnd.randrange(400)))
        lines.append(ln)
        size += len(ln) + 2
        i += 1
    body = b"From: joe@sign.test\r\nSubject: big\r\n\r\n" + \
        b"\r\n".join(lines) + b"\r\n\r\n \r\n"
    inject(d.addr, "joe@sign.test", ["x@dst.test"], body, bdat=True,
           chunks=4)
    (meta, eml), = s.wait_messages(1, 60)
    check(eml.endswith(body), "the body changed on the way")
    must_verify(eml, [k], 1)
    must_fail(eml[:-40] + b"X" + eml[-39:], [k], "one byte changed")


@test("dkim_bounce", "dkim: a bounce from bounce_from is signed with its "
      "domain's key and verifies")
def t_dkim_bounce(ctx):
    k = Key(ctx, "mta.test", "b", "ed25519-sha256")
    dest = ctx.server("--reply", "RCPT[fail*]:550 5.1.1 no such user",
                      name="dest")
    b = ctx.server(name="bounces")
    d = ctx.daemon({"dkim_keys_file": keys_file(ctx, [k]),
                    "bounce_from": "MAILER-DAEMON@mta.test"},
                   routes={"dst.test": dest, "sender.test": b})
    inject(d.addr, "alice@sender.test", ["fail1@dst.test"],
           crlf("From: alice@sender.test\nSubject: will bounce\n\nbody\n"))
    (bm, beml), = b.wait_messages(1, 30)
    check(bm["mail_from"] == "", "not a bounce: MAIL FROM:<%s>"
          % bm["mail_from"])
    sig, = must_verify(beml, [k], 1)
    check(tag(sig, "d") == "mta.test", "d=%s" % tag(sig, "d"))


@test("dkim_check", "dkim: bad dkim_keys_file lines make deliverd --check "
      "exit 1 with FILE:LINE; a good one exits 0")
def t_dkim_check(ctx):
    rsa = Key(ctx, "sign.test", "r", "rsa-sha256")
    ed = Key(ctx, "sign.test", "e", "ed25519-sha256")
    small = Key(ctx, "sign.test", "s", "rsa-sha256", bits=512)
    d = Daemon(ctx, {}, {})
    os.makedirs(d.spool, exist_ok=True)

    def run(lines):
        kf = os.path.join(ctx.tmp, "keys%d" % run.n)
        run.n += 1
        with open(kf, "w") as f:
            f.write("# keys\n\n" + "".join(x + "\n" for x in lines))
        p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "-o",
                            "dkim_keys_file=" + kf, "--check"],
                           capture_output=True, timeout=20)
        return kf, p.returncode, (p.stderr + p.stdout).decode(
            errors="replace")
    run.n = 0
    kf, rc, out = run([rsa.line(), ed.line()])
    check(rc == 0, "good keys file: exit %d: %s" % (rc, out.strip()))
    for line3, what, word in (
            ("sign.test x rsa-sha1 " + rsa.path, "unknown algorithm",
             "algorithm"),
            ("sign.test x rsa-sha256 /nonexistent/k.pem", "missing key",
             "No such file"),
            ("sign.test x rsa-sha256 " + ed.path, "Ed25519 key for RSA",
             "RSA"),
            ("sign.test x ed25519-sha256 " + rsa.path, "RSA key for "
             "Ed25519", "Ed25519"),
            ("sign.test x rsa-sha256 " + small.path, "RSA of 512 bits",
             "512"),
            ("sign.test x rsa-sha256 " + kf, "not a PEM key", "PEM"),
            ("sign.test rsa-sha256 " + rsa.path, "a field missing",
             "expected"),
            ("sign.test r ed25519-sha256 " + ed.path, "selector twice",
             "twice")):
        lines = [rsa.line(), line3] if what == "selector twice" else \
            ["sign.test ok rsa-sha256 " + rsa.path, line3]
        kf, rc, out = run(lines)
        check(rc == 1, "%s (%r): exit %d, want 1: %s"
              % (what, line3, rc, out.strip()))
        check("%s:4:" % kf in out and word in out,
              "%s (%r): no '%s:4:' and %r in %r"
              % (what, line3, kf, word, out.strip()))


# -- opendkim-testmsg as a second, independent verifier -----------------

# opendkim-testmsg asks the system resolver, which only talks to port 53
# of the servers in /etc/resolv.conf.  So it runs in namespaces of its
# own (unprivileged: a user, network and mount namespace): there a
# dnsmasq serves our records on 127.0.0.1:53 and a resolv.conf naming it
# is bind-mounted over the real one.  Nothing outside is touched.
NS_SCRIPT = r"""
ip link set lo up || exit 90
mount --bind "$DD_RESOLV" /etc/resolv.conf || exit 91
/usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 --user=root \
    --group= --pid-file= --log-facility=- "$@" 2>"$DD_DIR/dnsmasq.log" &
dns=$!
trap 'kill $dns; wait $dns' EXIT
for i in $(seq 50); do
    grep -q started "$DD_DIR/dnsmasq.log" && break
    kill -0 $dns || exit 92
    sleep 0.1
done
for f in "$DD_DIR"/m.*; do
    tr -d '\r' <"$f" | opendkim-testmsg >"$f.out" 2>&1
    echo "$f $?"
done
"""


def opendkim_verify(ctx, keys, msgs):
    """{name: (exit status, output)} of opendkim-testmsg for each message
    of msgs ({name: bytes}); Skip when it cannot be run."""
    for exe in ("opendkim-testmsg", "unshare", "/usr/sbin/dnsmasq"):
        if not shutil.which(exe):
            raise Skip("%s is not installed" % exe)
    wd = os.path.join(ctx.tmp, "odkim")
    os.makedirs(wd, exist_ok=True)
    resolv = os.path.join(wd, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\n")
    for name, m in msgs.items():
        with open(os.path.join(wd, "m." + name), "wb") as f:
            f.write(m)
    args = []
    for k in keys:
        # a TXT string holds 255 octets at most: split the record
        parts = [k.txt[i:i + 250] for i in range(0, len(k.txt), 250)]
        args.append("--txt-record=%s,%s" % (k.dnsname, ",".join(parts)))
    env = dict(os.environ, DD_RESOLV=resolv, DD_DIR=wd)
    p = subprocess.run(["unshare", "-r", "-n", "-m", "sh", "-c", NS_SCRIPT,
                        "sh"] + args, env=env, capture_output=True,
                       timeout=60)
    res = {}
    for line in p.stdout.decode(errors="replace").splitlines():
        path, rc = line.rsplit(" ", 1)
        with open(path + ".out", errors="replace") as f:
            res[os.path.basename(path)[2:]] = (int(rc), f.read().strip())
    if p.returncode in (90, 91, 92) or not res:
        raise Skip("cannot run opendkim-testmsg with a private DNS "
                   "(unshare exit %d): %s" % (p.returncode, p.stderr.decode(
                       errors="replace").strip()[:200]))
    return res


@test("dkim_opendkim", "dkim: opendkim-testmsg verifies RSA and Ed25519 "
      "signatures (DNS from dnsmasq in a private namespace), and rejects a "
      "tampered body")
def t_dkim_opendkim(ctx):
    kr = Key(ctx, "sign.test", "rsa", "rsa-sha256")
    ke = Key(ctx, "sign.test", "ed", "ed25519-sha256")
    d, s = dkim_daemon(ctx, [kr, ke])
    inject(d.addr, "joe@sign.test", ["suzie@dst.test"], MSG)
    (meta, eml), = s.wait_messages(1, 30)
    sigs = must_verify(eml, [kr, ke], 2)
    # one signature a message: opendkim-testmsg judges them together
    msgs = {}
    for x in sigs:
        one = eml
        for y in sigs:
            if y is not x:
                one = one.replace(y, b"", 1)
        msgs[tag(x, "s")] = one
        msgs[tag(x, "s") + "-bad"] = one.replace(b"We lost", b"We won")
    res = opendkim_verify(ctx, [kr, ke], msgs)
    for sel in ("rsa", "ed"):
        rc, out = res[sel]
        check(rc == 0, "opendkim-testmsg, selector %s: exit %d: %s"
              % (sel, rc, out))
        rc, out = res[sel + "-bad"]
        check(rc != 0 and "signature" in out.lower(),
              "opendkim-testmsg, selector %s, body changed: exit %d: %s"
              % (sel, rc, out))
