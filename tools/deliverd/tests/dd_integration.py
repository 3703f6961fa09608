#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""deliverd integration suite: the daemon, deliverctl, Postfix's smtp-sink
and smtp-source, swaks and our own scriptable server (dd_testserver.py),
all on 127.0.0.1.  Prints kselftest-style TAP ("# Totals: ..." last) and
exits 1 if any test failed.

    dd_integration.py [--bin DIR] [--variant san] [--only NAME[,NAME...]]
                      [--skip NAME[,NAME...]] [--list] [-v] [--keep]

Every test runs in a fresh temporary directory with its own spool,
control socket and ports, and stops whatever it started.  Tests that need
the daemon or deliverctl skip, saying so, while those are not built.
"""

import argparse
import csv
import email
import email.policy
import fnmatch
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TESTSERVER = os.path.join(HERE, "dd_testserver.py")
PYTHON = "/usr/bin/python3"
QID_RE = re.compile(r"queued as ([0-9A-F]{16})\b")
SAN_RE = re.compile(r"ERROR: \w*Sanitizer|SUMMARY: \w*Sanitizer|"
                    r"runtime error:")
DLOG_FIELDS = ("time", "qid", "rcpt", "sender", "dest", "host", "status",
               "code", "enh", "reply", "duration_ms", "attempt", "transport")

OPTS = None


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def wait_until(fn, timeout, what, interval=0.1):
    """Poll fn() until it returns something true; Fail after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


def tail(text, n=15):
    lines = text.splitlines()
    return lines[-n:]


_ports = set()


def free_port():
    """A port nothing listens on now, not handed out before in this run."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _ports:
            _ports.add(p)
            return p
    raise Fail("no free port")


# -- a raw SMTP client ---------------------------------------------------

class SMTPClosed(Exception):
    pass


class RawSMTP:
    """Line-exact SMTP client over TCP or a unix socket."""

    def __init__(self, addr, timeout=15):
        if isinstance(addr, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                raise SMTPClosed("connection closed by server")
            self.buf += d
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, [text lines]) of one possibly multi-line reply."""
        lines = []
        while True:
            line = self._line()
            m = re.match(r"^(\d{3})([ -])(.*)$", line)
            if not m:
                raise Fail("malformed reply line %r" % line)
            lines.append(m.group(3))
            if m.group(2) == " ":
                return int(m.group(1)), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def is_closed(self, wait=5):
        """Does the server close the connection (EOF) within wait s?"""
        self.sock.settimeout(wait)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        except OSError:
            return True


def text_of(r):
    return "%d %s" % (r[0], " / ".join(r[1]))


def stuff(data):
    """Dot-stuff a CRLF message for DATA, ensuring a final CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return re.sub(rb"(?:^|(?<=\r\n))\.", b"..", data)


def inject(addr, sender, rcpts, data, bdat=False, chunks=1, eightbit=None,
           ehlo="client.test", qid=True):
    """One message over SMTP; returns the queue id from the 250 reply
    (which must be deliverd's 16 hex digits unless qid=False)."""
    c = RawSMTP(addr)
    try:
        r = c.reply()
        check(r[0] == 220, "greeting: %s" % text_of(r))
        r = c.cmd("EHLO " + ehlo)
        check(r[0] == 250, "EHLO: %s" % text_of(r))
        if eightbit is None:
            eightbit = any(b > 127 for b in data)
        r = c.cmd("MAIL FROM:<%s>%s" % (sender, " BODY=8BITMIME"
                                         if eightbit else ""))
        check(r[0] == 250, "MAIL: %s" % text_of(r))
        for rc in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rc)
            check(r[0] == 250, "RCPT %s: %s" % (rc, text_of(r)))
        if bdat:
            step = max(1, -(-len(data) // chunks))
            parts = [data[i:i + step] for i in range(0, len(data), step)] \
                or [b""]
            for i, p in enumerate(parts):
                last = i == len(parts) - 1
                c.send(b"BDAT %d%s\r\n" % (len(p), b" LAST" if last else b"")
                       + p)
                r = c.reply()
                check(r[0] == 250, "BDAT: %s" % text_of(r))
        else:
            r = c.cmd("DATA")
            check(r[0] == 354, "DATA: %s" % text_of(r))
            c.send(stuff(data) + b".\r\n")
            r = c.reply()
            check(r[0] == 250, "end of DATA: %s" % text_of(r))
        m = QID_RE.search(" ".join(r[1]))
        check(m or not qid, "no 'queued as <16 hex>' in %r" % text_of(r))
        try:
            c.cmd("QUIT")
        except (SMTPClosed, OSError):
            pass
        return m.group(1) if m else None
    finally:
        c.close()


def crlf(text):
    """str with LF lines -> CRLF bytes."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def split_received(eml, orig):
    """eml must be: header lines we allow the daemon to add (Received:
    with continuations), then orig byte for byte.  Returns the prefix or
    raises Fail."""
    if not eml.endswith(orig):
        # find where they diverge, for the report
        k = 0
        tail_e = eml[-len(orig):] if len(eml) >= len(orig) else eml
        while k < min(len(tail_e), len(orig)) and tail_e[k] == orig[k]:
            k += 1
        raise Fail("delivered message (%d bytes) does not end with the "
                   "injected one (%d bytes); first difference at byte %d "
                   "of the original: %r vs %r"
                   % (len(eml), len(orig), k, orig[k:k + 40],
                      tail_e[k:k + 40]))
    prefix = eml[:len(eml) - len(orig)]
    for line in prefix.split(b"\r\n")[:-1]:
        if not (line.startswith(b"Received:") or line[:1] in (b" ", b"\t")):
            raise Fail("daemon added a line other than Received: %r" % line)
    check(prefix.startswith(b"Received:"),
          "delivered message lacks our Received: header: %r" % prefix[:80])
    return prefix


# -- processes -----------------------------------------------------------

class TestServer:
    """A dd_testserver.py process."""

    def __init__(self, ctx, args=(), port=None, name="srv", start=True):
        self.ctx = ctx
        self.name = name
        self.port = port or free_port()
        self.dir = os.path.join(ctx.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.rec = os.path.join(self.dir, "rec")
        self.stats_path = os.path.join(self.dir, "stats.json")
        self.ready = os.path.join(self.dir, "ready.json")
        self.args = list(args)
        self.proc = None
        if start:
            self.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        cmd = [PYTHON, TESTSERVER, "--listen", self.addr, "--record",
               self.rec, "--stats", self.stats_path, "--ready-file",
               self.ready, "--transcript",
               os.path.join(self.dir, "transcript.log"),
               "--lifetime", "1200", "--hostname", self.name + ".test"] \
            + self.args
        self.err = open(os.path.join(self.dir, "stderr"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err)
        self.ctx.procs.append(self)
        wait_until(lambda: os.path.exists(self.ready) or
                   self.proc.poll() is not None, 60,
                   "dd_testserver %s to listen" % self.name)
        if self.proc.poll() is not None:
            raise Fail("dd_testserver %s exited %s: %s" % (
                self.name, self.proc.returncode,
                open(os.path.join(self.dir, "stderr")).read()[-500:]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def messages(self):
        """[(meta, eml bytes)] of recorded messages, by id."""
        out = []
        for p in glob.glob(os.path.join(self.rec, "*.json")):
            try:
                with open(p) as f:
                    meta = json.load(f)
                with open(p[:-5] + ".eml", "rb") as f:
                    out.append((meta, f.read()))
            except (OSError, ValueError):
                continue
        out.sort(key=lambda x: x[0]["id"])
        return out

    def count(self):
        return len(glob.glob(os.path.join(self.rec, "*.json")))

    def wait_messages(self, n, timeout=30):
        wait_until(lambda: self.count() >= n, timeout,
                   "%d message(s) at %s (have %d)" % (n, self.name,
                                                      self.count()))
        return self.messages()

    def transcript(self):
        try:
            with open(os.path.join(self.dir, "transcript.log")) as f:
                return f.read()
        except OSError:
            return ""


class Daemon:
    """deliverd with a config of its own in the test's directory."""

    def __init__(self, ctx, settings=None, routes=None, name="dd"):
        self.ctx = ctx
        self.dir = os.path.join(ctx.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.spool = os.path.join(self.dir, "spool")
        self.sock = os.path.join(self.dir, "ctl")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "deliverd.conf")
        self.routes = os.path.join(self.dir, "routes")
        self.dlog_path = os.path.join(self.dir, "delivery.log")
        self.errlog = os.path.join(self.dir, "stderr")
        self.outlog = os.path.join(self.dir, "stdout")
        self.proc = None
        self.settings = {
            "spool_dir": self.spool,
            "control_socket": self.sock,
            "listen": "127.0.0.1:%d" % self.port,
            "routes_file": self.routes,
            "delivery_log": self.dlog_path,
            "hostname": "deliverd.test",
            "log_level": "debug" if OPTS.verbose else "info",
            "threads": "2",
        }
        if OPTS.backend:
            self.settings["backend"] = OPTS.backend
        self.settings.update(settings or {})
        self.set_routes(routes or {})
        self.write_conf()

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def set_routes(self, routes):
        with open(self.routes, "w") as f:
            f.write("# dd_integration\n")
            for dom, target in routes.items():
                if isinstance(target, TestServer):
                    target = target.addr
                elif isinstance(target, int):
                    target = "127.0.0.1:%d" % target
                f.write("%s %s\n" % (dom, target))

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write("# written by dd_integration.py\n")
            for k, v in self.settings.items():
                f.write("%s = %s\n" % (k, v))

    def start(self, ready_timeout=60):
        self.ctx.need("deliverd")
        self.err_fd = open(self.errlog, "ab")
        self.out_fd = open(self.outlog, "ab")
        self.err_mark = os.path.getsize(self.errlog)
        self.proc = subprocess.Popen([self.ctx.bin("deliverd"), "-c",
                                      self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.out_fd, stderr=self.err_fd)
        if self not in self.ctx.procs:
            self.ctx.procs.append(self)

        def ready():
            if self.proc.poll() is not None:
                return True
            return "deliverd: ready" in self.log()[self.err_mark:]
        wait_until(ready, ready_timeout, "'deliverd: ready' on stderr")
        if self.proc.poll() is not None:
            raise Fail("deliverd exited %s at start; stderr:\n%s" % (
                self.proc.returncode, "\n".join(tail(self.log()))))
        return self

    def log(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.outlog, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def stop(self, timeout=15):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if not self.proc:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        self.proc = None
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def dlog(self):
        out = []
        try:
            with open(self.dlog_path, errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        out.append({"_bad": line})
        except OSError:
            pass
        return out

    def wait_dlog(self, pred, n=1, timeout=30, what="delivery log entries"):
        def f():
            if not self.alive():
                raise Fail("deliverd died (exit %s) while waiting for %s; "
                           "stderr:\n%s" % (self.proc.poll() if self.proc
                                            else "?", what,
                                            "\n".join(tail(self.log()))))
            got = [e for e in self.dlog() if pred(e)]
            return got if len(got) >= n else None
        return wait_until(f, timeout, "%d %s" % (n, what), 0.2)

    def ctl(self, *args, input=None, timeout=60):
        self.ctx.need("deliverctl")
        cmd = [self.ctx.bin("deliverctl"), "-S", self.sock] + list(args)
        if isinstance(input, str):
            input = input.encode()
        try:
            p = subprocess.run(cmd, input=input, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Fail("deliverctl %s: no exit within %ds" % (
                " ".join(args), timeout))
        self.ctx.sanitizer("deliverctl " + " ".join(args),
                           p.stderr.decode(errors="replace"))
        self.ctx.diag_verbose("deliverctl %s -> %d %s %s" % (
            " ".join(args), p.returncode, p.stdout[:300], p.stderr[:300]))
        return p

    def ctl_ok(self, *args, input=None, timeout=60):
        p = self.ctl(*args, input=input, timeout=timeout)
        check(p.returncode == 0, "deliverctl %s exited %d: %s" % (
            " ".join(args), p.returncode,
            (p.stderr or p.stdout).decode(errors="replace").strip()[:500]))
        return p

    def queue_json(self):
        p = self.ctl_ok("queue", "--json")
        return parse_json_output(p.stdout.decode(errors="replace"))


def parse_json_output(text):
    """A JSON document, or JSON lines: a list of objects either way."""
    text = text.strip()
    if not text:
        return []
    try:
        v = json.loads(text)
        if isinstance(v, list):
            return v
        if isinstance(v, dict):
            for k in ("queue", "messages", "items"):
                if isinstance(v.get(k), list):
                    return v[k]
            return [v]
    except ValueError:
        pass
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise Fail("queue --json printed a line that is not JSON: %r"
                       % line[:200])
    return out


def mentions(obj, s):
    return s in json.dumps(obj)


def is_held(obj):
    """Does a queue entry say held (a true "held" field, a "held" state)?"""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.lower() in ("held", "hold", "on_hold") and v is True:
                return True
            if isinstance(v, str) and v.lower() == "held":
                return True
            if is_held(v):
                return True
    elif isinstance(obj, list):
        return any(is_held(x) for x in obj)
    return False


# -- the runner ------------------------------------------------------------

TESTS = []


def test(name, desc, needs=("deliverd",)):
    def deco(fn):
        TESTS.append((name, desc, fn, tuple(needs)))
        return fn
    return deco


class Ctx:
    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="ddit-%s-" % name[:12])
        self.procs = []
        self.diags = []
        self.daemons = []
        self.san = []		# sanitizer reports seen

    def bin(self, what):
        return os.path.join(OPTS.bin, what + OPTS.variant)

    def sanitizer(self, who, text):
        for line in text.splitlines():
            if SAN_RE.search(line):
                self.san.append("%s: %s" % (who, line.strip()))

    def need(self, what):
        p = self.bin(what)
        if not os.access(p, os.X_OK):
            raise Skip("%s not built (%s missing)" % (what, p))

    def diag(self, msg):
        self.diags.append(msg)

    def diag_verbose(self, msg):
        if OPTS.verbose:
            self.diags.append(msg)

    def server(self, *args, **kw):
        return TestServer(self, args, **kw)

    def daemon(self, settings=None, routes=None, start=True, name="dd"):
        d = Daemon(self, settings, routes, name)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop() if not isinstance(p, Daemon) else p.stop(5)
            except Exception:
                pass

    def evidence(self):
        """Logs worth showing after a failure."""
        out = []
        for d in self.daemons:
            lines = tail(d.log(), 20)
            if lines:
                out.append("deliverd stderr (%s), last lines:" % d.errlog)
                out += ["  " + x for x in lines]
            dl = d.dlog()
            if dl:
                out.append("delivery log, last entries (%d in all):"
                           % len(dl))
                out += ["  " + json.dumps(e)[:300] for e in dl[-6:]]
        for p in self.procs:
            if isinstance(p, TestServer):
                t = tail(p.transcript(), 12)
                if t and OPTS.verbose:
                    out.append("%s transcript, last lines:" % p.name)
                    out += ["  " + x for x in t]
        return out


def main():
    global OPTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="/work/main/build/deliverd",
                    help="directory of deliverd and deliverctl")
    ap.add_argument("--only", action="append", default=[],
                    help="run only tests whose name matches (glob or "
                    "substring; comma list; repeatable)")
    ap.add_argument("--skip", action="append", default=[],
                    help="leave out tests whose name matches (glob; comma "
                    "list; repeatable), after --only")
    ap.add_argument("--variant", default="", metavar="NAME",
                    help="run deliverd-NAME and deliverctl-NAME, e.g. san "
                    "for the ASan+UBSan build; sanitizer reports fail the "
                    "test")
    ap.add_argument("--backend", default="", choices=["", "evq", "epoll"],
                    help="run every daemon with this backend (evq: in the "
                    "VM with evq.ko loaded; the daemon fails without it)")
    ap.add_argument("--list", action="store_true", help="list the tests")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directories of failed tests")
    ap.add_argument("-v", "--verbose", action="store_true")
    OPTS = ap.parse_args()
    OPTS.bin = os.path.abspath(OPTS.bin)
    if OPTS.variant and not OPTS.variant.startswith("-"):
        OPTS.variant = "-" + OPTS.variant
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")

    only = [x for o in OPTS.only for x in o.split(",") if x]

    skip = [x for o in OPTS.skip for x in o.split(",") if x]

    def selected(name):
        if any(fnmatch.fnmatch(name, o) for o in skip):
            return False
        if not only:
            return True
        return any(fnmatch.fnmatch(name, o) or o in name for o in only)
    tests = [t for t in TESTS if selected(t[0])]
    if OPTS.list:
        for name, desc, _, needs in tests:
            print("%-28s %s [needs: %s]" % (name, desc,
                                            ", ".join(needs) or "-"))
        return 0

    print("TAP version 13")
    print("1..%d" % len(tests))
    sys.stdout.flush()
    npass = nfail = nskip = 0
    for i, (name, desc, fn, needs) in enumerate(tests, 1):
        ctx = Ctx(name)
        t0 = time.monotonic()
        status, reason, lines = "ok", "", []
        try:
            for n in needs:
                ctx.need(n)
            fn(ctx)
        except Skip as e:
            status, reason = "skip", str(e)
        except Fail as e:
            status = "fail"
            lines = str(e).splitlines() + ctx.evidence()
        except Exception as e:
            status = "fail"
            lines = ["unexpected %s: %s" % (type(e).__name__, e)] + \
                traceback.format_exc().splitlines()[-6:] + ctx.evidence()
        finally:
            ctx.cleanup()
        for d in ctx.daemons:
            ctx.sanitizer("deliverd", d.log())
        if ctx.san and status != "fail":
            status = "fail"
            lines = ["sanitizer report(s):"] + ctx.san[:10] + ctx.evidence()
        elif ctx.san:
            lines += ["sanitizer report(s):"] + ctx.san[:10]
        dt = time.monotonic() - t0
        for d in ctx.diags:
            for line in str(d).splitlines():
                print("# %s: %s" % (name, line))
        for line in lines:
            print("# %s" % line)
        title = "%s: %s" % (name, desc)
        if status == "ok":
            npass += 1
            print("ok %d %s" % (i, title))
        elif status == "skip":
            nskip += 1
            print("ok %d %s # SKIP %s" % (i, title, reason))
        else:
            nfail += 1
            print("not ok %d %s" % (i, title))
        if OPTS.verbose:
            print("# %s took %.1fs, dir %s" % (name, dt, ctx.tmp))
        if status == "fail" and OPTS.keep:
            print("# kept %s" % ctx.tmp)
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
        sys.stdout.flush()
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0"
          % (npass, nfail, nskip))
    return 1 if nfail else 0


# ==========================================================================
# dd_testserver.py itself (needs nothing built)
# ==========================================================================

def swaks(*args, timeout=30):
    if not shutil.which("swaks"):
        raise Skip("swaks not installed")
    p = subprocess.run(["swaks", "--hide-informational"] + list(args),
                       capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace") + \
        p.stderr.decode(errors="replace")


MSG_DOTS = crlf("From: a@src.test\nTo: b@dst.test\nSubject: dots\n\n"
                ".leading dot\n..two dots\n.\n...\nend\n")


@test("ts_swaks_data", "testserver: swaks DATA message unstuffed byte-exact, "
      "not pipelined", needs=())
def t_ts_swaks_data(ctx):
    s = ctx.server()
    f = os.path.join(ctx.tmp, "msg")
    with open(f, "wb") as fh:
        fh.write(MSG_DOTS)
    rc, out = swaks("-s", "127.0.0.1", "-p", str(s.port), "-f",
                    "a@src.test", "-t", "b@dst.test,c@dst.test", "--data",
                    "@" + f)
    check(rc == 0, "swaks exited %d:\n%s" % (rc, out))
    (meta, eml), = s.wait_messages(1, 10)
    check(eml.startswith(MSG_DOTS), "recorded %r, want %r (+CRLF)"
          % (eml[:120], MSG_DOTS))
    check(meta["transport"] == "data" and meta["pipelined"] is False and
          meta["rcpts"] == ["b@dst.test", "c@dst.test"] and
          meta["mail_from"] == "a@src.test", "meta %r" % meta)
    st = s.stats()
    check(st["pipelined"] is False and st["commands"]["RCPT"] == 2 and
          st["violations"] == 0, "stats %r" % st)


@test("ts_swaks_pipeline", "testserver: swaks --pipeline is detected as a "
      "pipelined group", needs=())
def t_ts_swaks_pipeline(ctx):
    s = ctx.server()
    rc, out = swaks("-s", "127.0.0.1", "-p", str(s.port), "-f", "a@src.test",
                    "-t", "b@dst.test,c@dst.test", "--pipeline")
    check(rc == 0, "swaks --pipeline exited %d:\n%s" % (rc, out))
    (meta, _), = s.wait_messages(1, 10)
    check(meta["pipelined"] is True, "not marked pipelined: %r" % meta)
    st = s.stats()
    check(st["pipelined"] is True and st["pipelined_groups"] >= 1,
          "stats %r" % st)
    s2 = ctx.server("--no-pipelining", name="nopipe")
    rc, out = swaks("-s", "127.0.0.1", "-p", str(s2.port), "-f",
                    "a@src.test", "-t", "b@dst.test", "--pipeline")
    check("PIPELINING" not in out.split("MAIL FROM")[0],
          "PIPELINING offered with --no-pipelining")
    (meta, _), = s2.wait_messages(1, 10)
    check(meta["pipelined"] is False, "swaks did not pipeline, server says "
          "it did: %r" % meta)


@test("ts_bdat_binary", "testserver: BDAT chunks with NUL, 8-bit and "
      "CRLF.CRLF inside recorded byte-exact", needs=())
def t_ts_bdat(ctx):
    s = ctx.server()
    body = b"Subject: bin\r\n\r\n" + bytes(range(256)) + b"\r\n.\r\n.x\r\n" \
        + bytes(range(255, -1, -1)) + b"\r\n"
    inject(("127.0.0.1", s.port), "a@src.test", ["b@dst.test"], body,
           bdat=True, chunks=3, qid=False)
    # a pipelined BDAT transaction on one write
    c = RawSMTP(("127.0.0.1", s.port))
    c.reply()
    c.cmd("EHLO x")
    c.send(b"MAIL FROM:<p@src.test>\r\nRCPT TO:<q@dst.test>\r\n"
           b"BDAT 5 LAST\r\nab\r\nc")
    codes = [c.reply()[0] for _ in range(3)]
    check(codes == [250, 250, 250], "pipelined BDAT replies %r" % codes)
    c.cmd("QUIT")
    msgs = s.wait_messages(2, 10)
    m1, m2 = msgs[0], msgs[1]
    check(m1[1] == body, "BDAT body not byte-exact (%d vs %d bytes)"
          % (len(m1[1]), len(body)))
    check(m1[0]["transport"] == "bdat" and m1[0]["8bit"] is True and
          m1[0]["pipelined"] is False, "meta %r" % m1[0])
    check(m2[1] == b"ab\r\nc" and m2[0]["pipelined"] is True,
          "pipelined BDAT: %r %r" % m2)


@test("ts_rules", "testserver: --reply selectors, #count, --delay and "
      "--disconnect BODY:N", needs=())
def t_ts_rules(ctx):
    s = ctx.server("--reply", "RCPT[fail*]:550 5.1.1 no such user",
                   "--reply", "RCPT#1:450 4.2.1 try later",
                   "--reply", "DOT[*@dot.test]:451 4.3.0 dot says no",
                   "--delay", "MAIL#1:1.0",
                   "--disconnect", "BODY[cut@*]#1:10")
    a = ("127.0.0.1", s.port)
    c = RawSMTP(a)
    c.reply()
    c.cmd("EHLO x")
    t0 = time.monotonic()
    r = c.cmd("MAIL FROM:<a@src.test>")
    check(r[0] == 250 and time.monotonic() - t0 >= 0.9,
          "delayed MAIL: %s after %.2fs" % (text_of(r),
                                            time.monotonic() - t0))
    r1 = c.cmd("RCPT TO:<x@dst.test>")
    r2 = c.cmd("RCPT TO:<x@dst.test>")
    r3 = c.cmd("RCPT TO:<fail7@dst.test>")
    check((r1[0], r2[0], r3[0]) == (450, 250, 550) and
          "no such user" in r3[1][0], "RCPT replies %s | %s | %s"
          % (text_of(r1), text_of(r2), text_of(r3)))
    c.cmd("RSET")
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<y@dot.test>")
    c.cmd("DATA")
    c.send(b"x\r\n.\r\n")
    r = c.reply()
    check(r[0] == 451, "DOT rule: %s" % text_of(r))
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<cut@dst.test>")
    c.cmd("DATA")
    c.send(b"0123456789abcdef\r\n.\r\n")
    check(c.is_closed(5), "BODY:10 did not close the connection")
    c.close()
    check(s.count() == 0, "a refused or cut message was recorded")
    st = s.stats()
    check(st["disconnects"] == 1 and st["replies"].get("451") == 1,
          "stats %r" % st)


@test("ts_no_chunking", "testserver: --no-chunking hides CHUNKING, BDAT "
      "gets 502 and counts a violation", needs=())
def t_ts_nochunk(ctx):
    s = ctx.server("--no-chunking", "--no-8bitmime", "--size", "1000")
    c = RawSMTP(("127.0.0.1", s.port))
    c.reply()
    r = c.cmd("EHLO x")
    check("CHUNKING" not in r[1] and "8BITMIME" not in r[1] and
          "SIZE 1000" in r[1], "EHLO %r" % r[1])
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<b@dst.test>")
    c.send(b"BDAT 3 LAST\r\nabc")
    r = c.reply()
    check(r[0] == 502, "BDAT: %s" % text_of(r))
    r = c.cmd("RSET")
    check(r[0] == 250, "RSET after BDAT: %s (stream out of sync?)"
          % text_of(r))
    r = c.cmd("MAIL FROM:<a@src.test> SIZE=2000")
    check(r[0] == 552, "SIZE=2000 over 1000: %s" % text_of(r))
    r = c.cmd("MAIL FROM:<a@src.test> BODY=8BITMIME")
    check(r[0] == 555, "BODY=8BITMIME not offered: %s" % text_of(r))
    c.cmd("QUIT")
    st = s.stats()
    check(st["violations"] == 2, "violations %r" % st["violation_list"])


# ==========================================================================
# deliverd: command line and configuration
# ==========================================================================

SETTING_NAMES = (
    "spool_dir", "control_socket", "listen", "allow_networks", "threads",
    "backend", "log_level", "delivery_log", "routes_file", "hostname",
    "line_length_limit", "message_size_limit", "recipient_limit",
    "connection_limit", "fsync", "pipelining", "chunking",
    "dest_concurrency", "dest_rate", "conn_max_msgs", "conn_idle",
    "connect_timeout", "greeting_timeout", "helo_timeout", "mail_timeout",
    "rcpt_timeout", "data_timeout", "body_timeout", "dot_timeout",
    "quit_timeout", "retry_min", "retry_max", "max_age", "dest_backoff",
    "bounce_from")


@test("cli_settings", "deliverd --settings lists every documented setting")
def t_cli_settings(ctx):
    p = subprocess.run([ctx.bin("deliverd"), "--settings"],
                       capture_output=True, timeout=10)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, out[:300]))
    missing = [n for n in SETTING_NAMES
               if not re.search(r"\b%s\b" % n, out)]
    check(not missing, "not listed: %s" % ", ".join(missing))


@test("cli_check", "deliverd --check: good config exit 0, unknown setting "
      "and bad value get exit 1 with FILE:LINE")
def t_cli_check(ctx):
    d = Daemon(ctx, {}, {})
    os.makedirs(d.spool, exist_ok=True)
    p = subprocess.run([ctx.bin("deliverd"), "-c", d.conf, "--check"],
                       capture_output=True, timeout=10)
    check(p.returncode == 0, "good config: exit %d: %s" % (
        p.returncode, (p.stderr + p.stdout).decode(errors="replace")))
    for n, (line3, what) in enumerate(
            (("no_such_setting = 1", "unknown setting"),
             ("threads = lots", "non-numeric threads"),
             ("retry_min = 5x", "bad time suffix"),
             ("allow_networks = 300.1.2.3/8", "bad network"))):
        bad = os.path.join(ctx.tmp, "bad%d.conf" % n)
        with open(bad, "w") as f:
            f.write("# bad config\nspool_dir = %s\n%s\n" % (d.spool, line3))
        p = subprocess.run([ctx.bin("deliverd"), "-c", bad, "--check"],
                           capture_output=True, timeout=10)
        out = (p.stderr + p.stdout).decode(errors="replace")
        check(p.returncode == 1, "%s (%r): exit %d, want 1: %s" % (
            what, line3, p.returncode, out.strip()))
        check("%s:3:" % bad in out, "%s (%r): no '%s:3:' in %r" % (
            what, line3, bad, out.strip()))


@test("daemon_sigterm", "deliverd: SIGTERM stops it with exit 0 and nothing "
      "on stdout")
def t_daemon_sigterm(ctx):
    s = ctx.server()
    d = ctx.daemon(routes={"*": s})
    inject(d.addr, "a@src.test", ["b@dst.test"], crlf("Subject: x\n\nx\n"))
    s.wait_messages(1, 20)
    t0 = time.monotonic()
    rc = d.stop(15)
    check(rc == 0, "exit status %r after SIGTERM (None: still running "
          "after 15 s)" % rc)
    check(time.monotonic() - t0 < 10, "stopping took %.1fs"
          % (time.monotonic() - t0))
    check(d.stdout() == b"", "wrote to stdout: %r" % d.stdout()[:200])


# ==========================================================================
# deliverd: the injection listener
# ==========================================================================

def listener_daemon(ctx, **settings):
    s = ctx.server(name="sink")
    return ctx.daemon(settings, routes={"*": s}), s


@test("listener_ehlo", "listener: EHLO (swaks) offers PIPELINING, SIZE "
      "<limit>, 8BITMIME, CHUNKING, ENHANCEDSTATUSCODES")
def t_listener_ehlo(ctx):
    d, _ = listener_daemon(ctx)
    rc, out = swaks("-s", "127.0.0.1", "-p", str(d.port), "-q", "EHLO",
                    "-t", "x@dst.test")
    check(rc == 0, "swaks exited %d:\n%s" % (rc, out))
    ext = [re.sub(r"^<-\s+250[ -]", "", x.strip()) for x in
           out.splitlines() if re.match(r"^\s*<-\s+250[ -]", x)]
    for want in ("PIPELINING", "SIZE 10485760", "8BITMIME", "CHUNKING",
                 "ENHANCEDSTATUSCODES"):
        check(want in ext, "EHLO lacks %r; offered %r" % (want, ext))


@test("listener_queued_as", "listener: swaks message gets '250 2.0.0 Ok: "
      "queued as <16 hex>' and is delivered")
def t_listener_queued(ctx):
    d, s = listener_daemon(ctx)
    rc, out = swaks("-s", "127.0.0.1", "-p", str(d.port), "-f", "a@src.test",
                    "-t", "b@dst.test", "--header", "X-Test: queued-as")
    check(rc == 0, "swaks exited %d:\n%s" % (rc, out))
    m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as ([0-9A-F]{16})\s*$", out,
                  re.M)
    check(m, "no '250 2.0.0 Ok: queued as <16 hex>' in:\n%s" % out)
    (meta, eml), = s.wait_messages(1, 20)
    check(b"X-Test: queued-as" in eml, "delivered message lacks the header")
    e = d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 10)[0]
    check(e.get("qid") == m.group(1), "delivery log qid %r, reply said %s"
          % (e.get("qid"), m.group(1)))


@test("listener_pipeline", "listener: swaks --pipeline with 3 recipients "
      "accepted, one transaction delivered")
def t_listener_pipeline(ctx):
    d, s = listener_daemon(ctx)
    rc, out = swaks("-s", "127.0.0.1", "-p", str(d.port), "--pipeline",
                    "-f", "a@src.test", "-t",
                    "b@dst.test,c@dst.test,d@dst.test")
    check(rc == 0, "swaks --pipeline exited %d:\n%s" % (rc, out))
    check("queued as" in out, "no queued-as reply:\n%s" % out)
    (meta, _), = s.wait_messages(1, 20)
    check(sorted(meta["rcpts"]) == ["b@dst.test", "c@dst.test",
                                    "d@dst.test"],
          "delivered to %r" % meta["rcpts"])


@test("listener_bdat", "listener: BDAT injection in 3 chunks accepted with "
      "queued-as, delivered byte-exact")
def t_listener_bdat(ctx):
    d, s = listener_daemon(ctx)
    body = crlf("From: a@src.test\nSubject: bdat in\n\n") + \
        ("line %d ÿé\r\n" % 1).encode() * 50 + b".dot\r\n"
    inject(d.addr, "a@src.test", ["b@dst.test"], body, bdat=True, chunks=3)
    (meta, eml), = s.wait_messages(1, 20)
    split_received(eml, body)


def session(d, ehlo=True):
    c = RawSMTP(d.addr)
    r = c.reply()
    check(r[0] == 220, "greeting %s" % text_of(r))
    if ehlo:
        r = c.cmd("EHLO client.test")
        check(r[0] == 250, "EHLO %s" % text_of(r))
    return c


def want(r, code, enh, what):
    text = " ".join(r[1])
    ok = r[0] == code and (enh is None or text.startswith(enh))
    check(ok, "%s: got '%s', want %d %s" % (what, text_of(r), code,
                                            enh or ""))


@test("limit_line_length", "limits: command line over line_length_limit "
      "gets 500 5.5.2")
def t_limit_line(ctx):
    d, _ = listener_daemon(ctx, line_length_limit=1000)
    c = session(d)
    r = c.cmd("MAIL FROM:<%s@src.test>" % ("a" * 1100))
    want(r, 500, "5.5.2", "MAIL line of 1120 bytes")
    try:
        r = c.cmd("NOOP")
        want(r, 250, None, "NOOP after the long line")
    except SMTPClosed:
        pass			# closing is allowed too


@test("limit_size_param", "limits: MAIL SIZE= over message_size_limit gets "
      "552 5.3.4; EHLO shows the limit")
def t_limit_size_param(ctx):
    d, _ = listener_daemon(ctx, message_size_limit=20000)
    c = RawSMTP(d.addr)
    c.reply()
    r = c.cmd("EHLO client.test")
    check("SIZE 20000" in r[1], "EHLO %r lacks SIZE 20000" % r[1])
    r = c.cmd("MAIL FROM:<a@src.test> SIZE=20001")
    want(r, 552, "5.3.4", "MAIL SIZE=20001")
    r = c.cmd("MAIL FROM:<a@src.test> SIZE=19000")
    want(r, 250, None, "MAIL SIZE=19000 after the refusal")


def big_body(n):
    line = b"x" * 76 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (n // len(line) + 1)


@test("limit_size_data", "limits: DATA message over message_size_limit gets "
      "552 5.3.4, not delivered")
def t_limit_size_data(ctx):
    d, s = listener_daemon(ctx, message_size_limit=20000)
    c = session(d)
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<b@dst.test>")
    want(c.cmd("DATA"), 354, None, "DATA")
    c.send(stuff(big_body(30000)) + b".\r\n")
    want(c.reply(), 552, "5.3.4", "30000-byte message by DATA")
    want(c.cmd("RSET"), 250, None, "RSET after it (session in sync)")
    time.sleep(1)
    check(s.count() == 0, "the oversized message was delivered")


@test("limit_size_bdat", "limits: BDAT message over message_size_limit gets "
      "552 5.3.4, not delivered")
def t_limit_size_bdat(ctx):
    d, s = listener_daemon(ctx, message_size_limit=20000)
    c = session(d)
    c.cmd("MAIL FROM:<a@src.test>")
    c.cmd("RCPT TO:<b@dst.test>")
    body = big_body(30000)
    c.send(b"BDAT %d\r\n" % 15000 + body[:15000])
    want(c.reply(), 250, None, "first BDAT chunk of 15000")
    rest = body[15000:]
    c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
    want(c.reply(), 552, "5.3.4", "BDAT LAST taking it to %d bytes"
         % len(body))
    want(c.cmd("RSET"), 250, None, "RSET after it (session in sync)")
    time.sleep(1)
    check(s.count() == 0, "the oversized message was delivered")


@test("limit_rcpts", "limits: recipient over recipient_limit=3 gets 452 "
      "4.5.3, the 3 accepted delivered")
def t_limit_rcpts(ctx):
    d, s = listener_daemon(ctx, recipient_limit=3)
    c = session(d)
    c.cmd("MAIL FROM:<a@src.test>")
    for i in range(3):
        want(c.cmd("RCPT TO:<r%d@dst.test>" % i), 250, None, "RCPT %d" % i)
    want(c.cmd("RCPT TO:<r3@dst.test>"), 452, "4.5.3", "4th RCPT")
    want(c.cmd("DATA"), 354, None, "DATA")
    c.send(b"Subject: 3\r\n\r\nx\r\n.\r\n")
    want(c.reply(), 250, "2.0.0", "end of DATA")
    (meta, _), = s.wait_messages(1, 20)
    check(sorted(meta["rcpts"]) == ["r0@dst.test", "r1@dst.test",
                                    "r2@dst.test"], "rcpts %r"
          % meta["rcpts"])


@test("limit_connections", "limits: connection over connection_limit=2 gets "
      "421 4.7.0 and is closed")
def t_limit_conns(ctx):
    d, _ = listener_daemon(ctx, connection_limit=2)
    a, b = session(d, False), session(d, False)
    c = RawSMTP(d.addr)
    try:
        r = c.reply()
    except SMTPClosed:
        raise Fail("3rd connection closed without a 421 greeting")
    want(r, 421, "4.7.0", "greeting of the 3rd connection")
    check(c.is_closed(5), "3rd connection not closed after 421")
    a.cmd("QUIT")
    a.close()
    time.sleep(0.5)
    e = RawSMTP(d.addr)
    want(e.reply(), 220, None, "greeting once one connection left")
    b.close()


@test("limit_allow_networks", "limits: client outside allow_networks "
      "(10.0.0.0/8) gets 554 5.7.1, then 503 to commands")
def t_limit_nets(ctx):
    d, s = listener_daemon(ctx, allow_networks="10.0.0.0/8")
    c = RawSMTP(d.addr)
    want(c.reply(), 554, "5.7.1", "greeting from 127.0.0.1")
    want(c.cmd("EHLO client.test"), 503, None, "EHLO after 554 greeting")
    want(c.cmd("MAIL FROM:<a@src.test>"), 503, None, "MAIL after 554")
    want(c.cmd("RCPT TO:<b@dst.test>"), 503, None, "RCPT after 554")
    try:
        r = c.cmd("QUIT")
        check(r[0] == 221, "QUIT: %s" % text_of(r))
    except SMTPClosed:
        pass


@test("limit_unknown_command", "limits: unknown command gets 500 5.5.1")
def t_limit_unknown(ctx):
    d, _ = listener_daemon(ctx)
    c = session(d)
    want(c.cmd("FROB the widget"), 500, "5.5.1", "FROB")
    want(c.cmd("NOOP"), 250, None, "NOOP after it")


@test("limit_bad_sequence", "limits: RCPT before MAIL, DATA before RCPT, "
      "nested MAIL get 503 5.5.1")
def t_limit_seq(ctx):
    d, _ = listener_daemon(ctx)
    c = session(d)
    want(c.cmd("RCPT TO:<b@dst.test>"), 503, "5.5.1", "RCPT before MAIL")
    want(c.cmd("DATA"), 503, "5.5.1", "DATA before MAIL")
    want(c.cmd("MAIL FROM:<a@src.test>"), 250, None, "MAIL")
    r = c.cmd("DATA")	# RFC 5321 3.3 allows 503 or 554 here
    check(r[0] in (503, 554) and " ".join(r[1]).startswith("5.5.1"),
          "DATA before any RCPT: got '%s', want 503 (or 554) 5.5.1"
          % text_of(r))
    want(c.cmd("MAIL FROM:<a@src.test>"), 503, "5.5.1", "nested MAIL")


@test("limit_bad_address", "limits: malformed MAIL/RCPT paths get 501")
def t_limit_addr(ctx):
    d, _ = listener_daemon(ctx)
    c = session(d)
    for line in ("MAIL FROM:<a b@src.test>", "MAIL FROM:a@src.test",
                 "MAIL FROM:<a@@src.test>", "MAIL FROM:<a@src.test"):
        r = c.cmd(line)
        check(r[0] == 501, "%r: got '%s', want 501" % (line, text_of(r)))
    want(c.cmd("MAIL FROM:<a@src.test>"), 250, None, "good MAIL")
    for line in ("RCPT TO:<>", "RCPT TO:<b@dst.test@x>", "RCPT TO:b"):
        r = c.cmd(line)
        check(r[0] == 501, "%r: got '%s', want 501" % (line, text_of(r)))


@test("limit_errors", "limits: 30 bad commands get 421 4.7.0 and close "
      "(default error limit)")
def t_limit_errors(ctx):
    d, _ = listener_daemon(ctx)
    c = session(d)
    codes = []
    for i in range(30):
        try:
            r = c.cmd("FROB %d" % i)
        except SMTPClosed:
            break
        codes.append(r[0])
        if r[0] == 421:
            want(r, 421, "4.7.0", "reply to bad command %d" % (i + 1))
            check(c.is_closed(5), "not closed after 421")
            return
    raise Fail("no 421 after %d bad commands; codes %r" % (len(codes),
                                                           codes))


# ==========================================================================
# deliverd: delivery
# ==========================================================================

def must_have_fields(entries):
    for e in entries:
        miss = [f for f in DLOG_FIELDS if f not in e]
        check(not miss, "delivery log entry lacks %s: %s"
              % (", ".join(miss), json.dumps(e)[:300]))


@test("delivery_smtp_sink", "delivery: 50 messages from smtp-source to "
      "Postfix smtp-sink (no CHUNKING: DATA), all delivered")
def t_delivery_sink(ctx):
    for tool in ("smtp-sink", "smtp-source"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise Skip("%s not installed" % tool)
    port = free_port()
    dump = os.path.join(ctx.tmp, "dump")
    os.makedirs(dump)
    os.chmod(dump, 0o777)
    os.chmod(ctx.tmp, 0o755)
    sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-d",
                             dump + "/m.", "127.0.0.1:%d" % port, "100"],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(ctx.tmp, "sink.err"),
                                        "wb"))

    class P:
        def stop(self):
            sink.terminate()
            sink.wait(5)
    ctx.procs.append(P())
    wait_until(lambda: _connectable(port), 60, "smtp-sink to listen")
    d = ctx.daemon(routes={"sink.test": port})
    n = 50
    p = subprocess.run(["/usr/sbin/smtp-source", "-m", str(n), "-s", "5",
                        "-f", "sender@src.test", "-t", "rcpt@sink.test",
                        "-S", "sink-test", "127.0.0.1:%d" % d.port],
                       capture_output=True, timeout=60)
    check(p.returncode == 0, "smtp-source exited %d: %s" % (
        p.returncode, p.stderr.decode(errors="replace")[:500]))
    got = d.wait_dlog(lambda e: e.get("status") == "delivered", n, 60,
                      "delivered entries")
    must_have_fields(got)
    bad = [e for e in got if e.get("transport") != "data" or
           e.get("rcpt") != "rcpt@sink.test"]
    check(not bad, "entries with transport other than data (smtp-sink "
          "offers no CHUNKING) or wrong rcpt: %s" % json.dumps(bad[:2]))
    qids = set(e["qid"] for e in got)
    check(len(qids) == n, "%d distinct qids delivered, want %d"
          % (len(qids), n))
    files = wait_until(lambda: (lambda f: f if len(f) >= n else None)(
        glob.glob(dump + "/m.*")), 10, "%d smtp-sink dump files" % n)
    check(len(files) == n, "smtp-sink has %d messages, want %d"
          % (len(files), n))
    other = [e for e in d.dlog() if e.get("status") != "delivered"]
    check(not other, "non-delivered entries: %s" % json.dumps(other[:2]))


def _connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def client_case(ctx, server_args, settings, want_transport, want_pipelined):
    s = ctx.server(*server_args)
    d = ctx.daemon(settings, routes={"dst.test": s})
    rnd = random.Random(7)
    big = b"".join((b"." if i % 5 == 0 else b"") + b"%06d " % i +
                   bytes(rnd.choice(b"abcdefgh.\xc3\xa9 ")
                         for _ in range(rnd.randrange(200))) + b"\r\n"
                   for i in range(3000))
    bodies = [
        ("bdat-in", True, crlf("From: a@src.test\nTo: b@dst.test\n"
                               "Subject: dots and 8bit\n\n") +
         b".leading\r\n..two\r\n.\r\n...\r\ncaf\xc3\xa9 \xff\xfe\r\n"
         b"trailing dot .\r\n"),
        ("data-in", False, MSG_DOTS + "naïve\r\n".encode()),
        ("big-bdat-in", True, b"Subject: big\r\n\r\n" + big),
    ]
    want_bodies = {}
    for tag, bdat, body in bodies:
        body = body.replace(b"Subject: ", b"X-Tag: %s\r\nSubject: "
                            % tag.encode(), 1)
        want_bodies[tag] = body
        inject(d.addr, "a@src.test", ["b@dst.test", "c@dst.test"], body,
               bdat=bdat, chunks=2)
    msgs = s.wait_messages(len(bodies), 30)
    for meta, eml in msgs:
        m = re.search(rb"X-Tag: ([a-z-]+)", eml)
        check(m, "delivered message without X-Tag: %r" % eml[:200])
        tag = m.group(1).decode()
        split_received(eml, want_bodies[tag])
        check(meta["transport"] == want_transport,
              "%s: transport %s, want %s" % (tag, meta["transport"],
                                             want_transport))
        check(meta["pipelined"] is want_pipelined,
              "%s: pipelined %s, want %s" % (tag, meta["pipelined"],
                                             want_pipelined))
        check(sorted(meta["rcpts"]) == ["b@dst.test", "c@dst.test"],
              "%s: one transaction for both recipients wanted, got %r"
              % (tag, meta["rcpts"]))
        check(meta["8bit"] is False or "BODY=8BITMIME" in
              [p.upper() for p in meta["mail_params"]] or
              "--no-8bitmime" in server_args,
              "%s: 8-bit body sent without BODY=8BITMIME (params %r)"
              % (tag, meta["mail_params"]))
    st = s.stats()
    check(st["violations"] == 0, "protocol violations seen by the server: %r"
          % st["violation_list"])
    got = d.wait_dlog(lambda e: e.get("status") == "delivered", 6, 10)
    must_have_fields(got)
    bad = [e for e in got if e.get("transport") != want_transport]
    check(not bad, "delivery log transport %r, want %s" % (
        [e.get("transport") for e in bad], want_transport))


@test("client_bdat_pipelined", "client: server with CHUNKING+PIPELINING "
      "gets pipelined BDAT, bodies byte-exact")
def t_client_1(ctx):
    client_case(ctx, [], {}, "bdat", True)


@test("client_data_pipelined", "client: server without CHUNKING gets "
      "pipelined DATA, dot-stuffed, byte-exact")
def t_client_2(ctx):
    client_case(ctx, ["--no-chunking"], {}, "data", True)


@test("client_bdat_nopipe", "client: server without PIPELINING gets BDAT "
      "one command at a time")
def t_client_3(ctx):
    client_case(ctx, ["--no-pipelining"], {}, "bdat", False)


@test("client_data_nopipe", "client: server without CHUNKING or PIPELINING "
      "gets DATA one command at a time")
def t_client_4(ctx):
    client_case(ctx, ["--no-chunking", "--no-pipelining"], {}, "data", False)


@test("client_settings_off", "client: chunking=no pipelining=no settings "
      "give DATA unpipelined though offered")
def t_client_5(ctx):
    client_case(ctx, [], {"chunking": "no", "pipelining": "no"}, "data",
                False)


@test("client_no_8bitmime", "client: 8-bit message to a server without "
      "8BITMIME is not sent as 8-bit (RFC 6152 3); 7-bit one delivered")
def t_client_8bit(ctx):
    s = ctx.server("--no-8bitmime", name="dest")
    b = ctx.server(name="bounces")
    d = ctx.daemon({"retry_min": 1}, routes={"dst.test": s, "src.test": b})
    inject(d.addr, "a@src.test", ["seven@dst.test"],
           crlf("Subject: 7bit\n\nplain\n"))
    inject(d.addr, "a@src.test", ["eight@dst.test"],
           b"Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n", eightbit=True)
    d.wait_dlog(lambda e: e.get("rcpt") == "seven@dst.test" and
                e.get("status") == "delivered", 1, 20)
    d.wait_dlog(lambda e: e.get("rcpt") == "eight@dst.test", 1, 20)
    time.sleep(1)
    for meta, eml in s.messages():
        check(not meta["8bit"], "8-bit body sent to %s, which did not offer "
              "8BITMIME (MAIL params %r); RFC 6152 section 3 wants it "
              "downgraded or returned" % (meta["rcpts"], meta["mail_params"]))
    check(s.stats()["violations"] == 0, "violations %r"
          % s.stats()["violation_list"])
    check(any(m["rcpts"] == ["seven@dst.test"] for m, _ in s.messages()),
          "7-bit message not delivered")


@test("listener_no_xcommands", "listener: control X-commands on the TCP "
      "listener get 500 5.5.1 (control socket only)")
def t_listener_nox(ctx):
    d, _ = listener_daemon(ctx)
    c = session(d)
    for x in ("XQUEUE", "XSTATS", "XHOLD dst.test", "XRELEASE dst.test",
              "XFLUSH"):
        want(c.cmd(x), 500, "5.5.1", "%s on the TCP listener" % x)


@test("listener_ipv6", "listener: listen [::1]:port serves IPv6 clients "
      "(::1/128 allowed by default)")
def t_listener_v6(ctx):
    try:
        t = socket.socket(socket.AF_INET6)
        t.bind(("::1", 0))
        t.close()
    except OSError as e:
        raise Skip("no IPv6 loopback: %s" % e)
    s = ctx.server()
    p6 = free_port()
    d = ctx.daemon({"listen": "127.0.0.1:%d, [::1]:%d" % (free_port(), p6)},
                   routes={"*": s})
    c = socket.create_connection(("::1", p6), 10)
    f = c.makefile("rb")
    line = f.readline()
    check(line.startswith(b"220 "), "greeting over IPv6: %r" % line)
    c.sendall(b"EHLO v6.test\r\nQUIT\r\n")
    c.close()


@test("spool_lock", "spool: a second deliverd on the same spool_dir "
      "refuses to start")
def t_spool_lock(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"*": s})
    d2 = Daemon(ctx, {"spool_dir": d.spool}, {"*": s}, name="dd2")
    p = subprocess.Popen([ctx.bin("deliverd"), "-c", d2.conf],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Fail("second deliverd on the same spool still running after "
                   "10 s")
    err = p.stderr.read().decode(errors="replace")
    check(rc != 0, "second deliverd exited 0: %s" % err[-300:])
    check(d.alive(), "the first deliverd died")
    inject(d.addr, "a@src.test", ["b@dst.test"], crlf("Subject: x\n\nx\n"))
    s.wait_messages(1, 20)


@test("client_multiline_replies", "client: multi-line 220, RCPT and "
      "final-dot replies parsed; delivered, first line logged")
def t_client_ml(ctx):
    s = ctx.server("--reply", "GREETING:220 mx.test ESMTP\\nsecond line",
                   "--reply", "RCPT:250 2.1.5 rcpt ok\\nreally ok",
                   "--reply", "DOT:250 2.0.0 stored as X1\\nthanks\\nbye")
    d = ctx.daemon({}, routes={"dst.test": s})
    inject(d.addr, "a@src.test", ["a@dst.test", "b@dst.test"],
           crlf("Subject: ml\n\nx\n"))
    got = d.wait_dlog(lambda e: e.get("status") == "delivered", 2, 20)
    check(s.count() == 1, "%d copies" % s.count())
    for e in got:
        check("stored as X1" in str(e.get("reply")) and
              e.get("enh") == "2.0.0", "logged reply %r enh %r"
              % (e.get("reply"), e.get("enh")))


@test("delivery_250_rcpts", "delivery: one message to 250 recipients at one "
      "domain delivered once to each")
def t_250(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"dst.test": s})
    rc = ["u%03d@dst.test" % i for i in range(250)]
    inject(d.addr, "a@src.test", rc, crlf("Subject: many\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 250, 30)
    time.sleep(1)
    got = sorted(r for m, _ in s.messages() for r in m["rcpts"])
    check(got == rc, "%d deliveries, %d distinct" % (len(got),
                                                    len(set(got))))
    ctx.diag("transactions: %r" % [len(m["rcpts"]) for m, _ in
                                   s.messages()])


@test("delivery_overlayfs_spool", "delivery: a spool on overlayfs, which "
      "the evq module cannot send from: sendfile(2) instead, said once")
def t_overlay_spool(ctx):
    if OPTS.backend != "evq":
        raise Skip("the module's sendfile is only used with --backend evq")
    layers = {n: os.path.join(ctx.tmp, n) for n in ("lower", "upper",
                                                    "work", "merged")}
    for d in layers.values():
        os.makedirs(d)
    m = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%(lower)s,upperdir=%(upper)s,"
                        "workdir=%(work)s" % layers, layers["merged"]],
                       capture_output=True, text=True)
    if m.returncode:
        raise Skip("cannot mount an overlayfs: " + m.stderr.strip())

    class Umount:
        def stop(self):
            subprocess.run(["umount", "-l", layers["merged"]])
    ctx.procs.insert(0, Umount())	# after the daemon has stopped
    s = ctx.server()
    d = ctx.daemon({"spool_dir": os.path.join(layers["merged"], "spool")},
                   routes={"dst.test": s})
    body = crlf("Subject: overlay\n\n" + "x" * 100000 + "\n")
    for i in range(3):
        inject(d.addr, "a@src.test", ["r%d@dst.test" % i], body)
    d.wait_dlog(lambda e: e.get("status") == "delivered", 3, 30)
    io = {e.get("body_io") for e in d.dlog() if e.get("status") == "delivered"}
    check(io == {"sendfile"}, "body_io of the deliveries: %r" % io)
    check(all(m[1].endswith(body.split(b"\r\n\r\n", 1)[1])
              for m in s.messages()), "a body arrived changed")
    warned = d.log().count("cannot send from the spool's file system")
    check(warned == 1, "the fallback was logged %d times" % warned)


@test("delivery_routes", "delivery: routes exact > .subdomain > '*', "
      "recipients grouped per domain")
def t_delivery_routes(ctx):
    s1 = ctx.server(name="exact")
    s2 = ctx.server(name="sub")
    s3 = ctx.server(name="star")
    d = ctx.daemon(routes={"exact.test": s1, ".sub.test": s2, "*": s3})
    inject(d.addr, "a@src.test", ["x@exact.test", "y@exact.test",
                                  "z@a.sub.test", "w@b.sub.test",
                                  "v@other.test"],
           crlf("Subject: routes\n\nx\n"))
    m1 = s1.wait_messages(1, 20)
    m2 = s2.wait_messages(2, 20)
    m3 = s3.wait_messages(1, 20)
    time.sleep(1)
    check(len(s1.messages()) == 1 and
          sorted(m1[0][0]["rcpts"]) == ["x@exact.test", "y@exact.test"],
          "exact.test got %r" % [m["rcpts"] for m, _ in s1.messages()])
    r2 = sorted(r for m, _ in s2.messages() for r in m["rcpts"])
    check(r2 == ["w@b.sub.test", "z@a.sub.test"] and len(s2.messages()) == 2,
          ".sub.test got %r" % [m["rcpts"] for m, _ in s2.messages()])
    check([m["rcpts"] for m, _ in s3.messages()] == [["v@other.test"]],
          "'*' got %r" % [m["rcpts"] for m, _ in s3.messages()])
    del m2, m3


@test("delivery_concurrency", "delivery: dest_concurrency=2 caps "
      "connections, conn_max_msgs=3 caps messages per connection")
def t_delivery_conc(ctx):
    s = ctx.server("--delay", "DOT:0.2")
    d = ctx.daemon({"dest_concurrency": 2, "conn_max_msgs": 3},
                   routes={"dst.test": s})
    n = 24
    for i in range(n):
        inject(d.addr, "a@src.test", ["r%d@dst.test" % i],
               crlf("Subject: %d\n\nx\n" % i))
    msgs = s.wait_messages(n, 60)
    st = s.stats()
    check(st["peak_concurrent"] <= 2, "peak %d concurrent connections, "
          "dest_concurrency=2" % st["peak_concurrent"])
    per = {}
    for meta, _ in msgs:
        per[meta["conn"]] = per.get(meta["conn"], 0) + 1
    check(max(per.values()) <= 3, "messages per connection %r, "
          "conn_max_msgs=3" % per)
    ctx.diag("peak connections %d, messages per connection %r"
             % (st["peak_concurrent"], sorted(per.values())))


@test("delivery_concurrency_busy", "delivery: a message arriving while "
      "the destination's session is busy gets a session of its own")
def t_delivery_conc_busy(ctx):
    s = ctx.server("--delay", "DOT:1.5")
    d = ctx.daemon({"dest_concurrency": 4, "conn_idle": 600},
                   routes={"dst.test": s})
    t0 = time.monotonic()
    inject(d.addr, "a@src.test", ["r1@dst.test"], crlf("Subject: 1\n\nx\n"))
    time.sleep(0.3)
    inject(d.addr, "a@src.test", ["r2@dst.test"], crlf("Subject: 2\n\nx\n"))
    s.wait_messages(2, 30)
    dt = time.monotonic() - t0
    st = s.stats()
    # Queued behind the busy session, the second would take 3 s or more.
    check(st["peak_concurrent"] == 2, "peak %d concurrent connections, want "
          "2 (one per waiting message)" % st["peak_concurrent"])
    check(dt < 2.8, "both delivered after %.2f s, want < 2.8 s (in "
          "parallel, 1.5 s each)" % dt)
    ctx.diag("both delivered after %.2f s over 2 sessions" % dt)


# ==========================================================================
# deliverd: deferral and retry
# ==========================================================================

@test("retry_rcpt_450_once", "retry: 450 to the first RCPT gets deferred "
      "(attempt 1), then delivered (attempt 2)")
def t_retry_450(ctx):
    s = ctx.server("--reply", "RCPT#1:450 4.2.1 try later")
    d = ctx.daemon({"retry_min": 1, "retry_max": 2},
                   routes={"dst.test": s})
    qid = inject(d.addr, "a@src.test", ["b@dst.test"],
                 crlf("Subject: retry\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    must_have_fields(ents)
    seq = [(e.get("status"), e.get("attempt"), e.get("code")) for e in ents]
    check(seq == [("deferred", 1, 450), ("delivered", 2, 250)],
          "delivery log (status, attempt, code) %r, want deferred/1/450 "
          "then delivered/2/250" % seq)
    check(ents[0].get("enh") == "4.2.1" and "try later" in
          str(ents[0].get("reply")), "deferral entry %r" % ents[0])
    check(s.count() == 1, "%d copies delivered" % s.count())


@test("retry_conn_refused", "retry: connection refused gets deferred with "
      "backoff, delivered once the server comes up")
def t_retry_refused(ctx):
    port = free_port()
    d = ctx.daemon({"retry_min": 1, "retry_max": 2, "dest_backoff": 1,
                    "connect_timeout": 2}, routes={"dst.test": port})
    qid = inject(d.addr, "a@src.test", ["b@dst.test"],
                 crlf("Subject: refused\n\nx\n"))
    e = d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)[0]
    check(e.get("qid") == qid, "deferred entry for another qid %r" % e)
    time.sleep(2)
    s = ctx.server(port=port)
    s.wait_messages(1, 30)
    # The server has the message before our delivery log has the 250.
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    st = [e.get("status") for e in ents]
    check(st[-1] == "delivered" and all(x == "deferred" for x in st[:-1]),
          "statuses %r" % st)
    check(ents[-1].get("attempt") == len(ents), "attempt numbers %r"
          % [e.get("attempt") for e in ents])
    ctx.diag("%d deferrals before delivery" % (len(ents) - 1))


@test("retry_data_timeout", "retry: server silent at DATA past data_timeout "
      "gets deferred in time, later delivered")
def t_retry_timeout(ctx):
    s = ctx.server("--no-chunking", "--delay", "DATA#1:6")
    d = ctx.daemon({"retry_min": 1, "retry_max": 2, "data_timeout": 1},
                   routes={"dst.test": s})
    qid = inject(d.addr, "a@src.test", ["b@dst.test"],
                 crlf("Subject: timeout\n\nx\n"))
    e = d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)[0]
    check(e.get("qid") == qid, "deferral %r" % e)
    check(isinstance(e.get("duration_ms"), (int, float)) and
          e["duration_ms"] < 5000, "deferral took duration_ms=%r; "
          "data_timeout=1 s, server replied after 6 s" % e.get("duration_ms"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)
    check(s.count() == 1, "%d copies delivered" % s.count())


# ==========================================================================
# deliverd: bounces
# ==========================================================================

def parse_dsn(eml):
    """(message, unfolded text of the delivery-status part, type params)."""
    msg = email.message_from_bytes(eml, policy=email.policy.compat32)
    status = None
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                status = "\n\n".join(p.as_string() for p in payload)
            else:
                status = str(payload)
    if status is not None:
        status = re.sub(r"\r?\n[ \t]+", " ", status)
    return msg, status


def bounce_setup(ctx, settings, dest_args):
    s = ctx.server(*dest_args, name="dest")
    b = ctx.server(name="bounces")
    d = ctx.daemon(settings, routes={"dst.test": s, "sender.test": b})
    return d, s, b


@test("bounce_rcpt_550", "bounce: 550 to RCPT gets an RFC 3464 "
      "multipart/report from <> with Status 5.1.1 and the 550 text")
def t_bounce_550(ctx):
    d, s, b = bounce_setup(ctx, {}, ["--reply",
                                     "RCPT[fail*]:550 5.1.1 no such user"])
    qid = inject(d.addr, "alice@sender.test", ["fail1@dst.test",
                                               "ok@dst.test"],
                 crlf("From: alice@sender.test\nSubject: will bounce\n"
                      "Message-ID: <b550@sender.test>\n\nbody\n"))
    (meta, _), = s.wait_messages(1, 20)
    check(meta["rcpts"] == ["ok@dst.test"], "dest got %r" % meta["rcpts"])
    (bm, beml), = b.wait_messages(1, 30)
    check(bm["mail_from"] == "", "bounce envelope sender %r, want <>"
          % bm["mail_from"])
    check(bm["rcpts"] == ["alice@sender.test"], "bounce to %r"
          % bm["rcpts"])
    msg, st = parse_dsn(beml)
    check(msg.get_content_type() == "multipart/report" and
          msg.get_param("report-type") == "delivery-status",
          "Content-Type %r" % msg.get("Content-Type"))
    check(st is not None, "no message/delivery-status part")
    check(re.search(r"Final-Recipient:\s*rfc822;\s*fail1@dst\.test", st,
                    re.I), "no Final-Recipient for fail1@dst.test in %r"
          % st[:600])
    check(not re.search(r"Final-Recipient:\s*rfc822;\s*ok@", st, re.I),
          "the delivered recipient is in the bounce")
    check(re.search(r"^Action:\s*failed", st, re.I | re.M),
          "no 'Action: failed' in %r" % st[:600])
    check(re.search(r"^Status:\s*5\.1\.1\b", st, re.M),
          "no 'Status: 5.1.1' in %r" % st[:600])
    check(re.search(r"Diagnostic-Code:\s*smtp;\s*550\b.*no such user", st,
                    re.I), "no 'Diagnostic-Code: smtp; 550 ... no such "
          "user' in %r" % st[:600])
    check(b"Message-ID: <b550@sender.test>" in beml,
          "original headers not in the bounce")
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    bounced = [e for e in ents if e.get("rcpt") == "fail1@dst.test"]
    check(bounced and bounced[-1].get("status") == "bounced" and
          bounced[-1].get("code") == 550, "delivery log for fail1: %r"
          % bounced)


@test("bounce_null_sender", "bounce: a failing message from <> gets "
      "logged bounced, no bounce sent")
def t_bounce_null(ctx):
    s = ctx.server("--reply", "RCPT:550 5.1.1 no such user", name="dest")
    b = ctx.server(name="bounces")
    d = ctx.daemon({}, routes={"dst.test": s, "*": b})
    inject(d.addr, "", ["fail@dst.test"], crlf("Subject: from <>\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "bounced", 1, 20)
    time.sleep(3)
    check(b.count() == 0 and s.count() == 0,
          "a bounce of a bounce was sent: %r" % [m for m, _ in
                                                 b.messages()])
    st = b.stats()
    check(st.get("connections", 0) == 0, "something connected to the "
          "catch-all server: %r" % st.get("commands"))


@test("bounce_max_age", "bounce: always-450 destination past max_age=2 gets "
      "'expired' and a bounce with Status 4.4.7")
def t_bounce_expired(ctx):
    d, s, b = bounce_setup(ctx, {"max_age": 2, "retry_min": 1,
                                 "retry_max": 1},
                           ["--reply", "RCPT:450 4.2.1 mailbox busy"])
    qid = inject(d.addr, "alice@sender.test", ["busy@dst.test"],
                 crlf("Subject: will expire\n\nx\n"))
    (bm, beml), = b.wait_messages(1, 30)
    check(bm["mail_from"] == "", "bounce from %r" % bm["mail_from"])
    msg, st = parse_dsn(beml)
    check(msg.get_content_type() == "multipart/report" and st,
          "not a delivery report: %r" % msg.get("Content-Type"))
    check(re.search(r"^Status:\s*4\.4\.7\b", st, re.M),
          "no 'Status: 4.4.7' in %r" % st[:600])
    check(re.search(r"Final-Recipient:\s*rfc822;\s*busy@dst\.test", st,
                    re.I), "no Final-Recipient busy@dst.test")
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    check(ents and ents[-1].get("status") == "expired",
          "last delivery log status %r, want expired"
          % [e.get("status") for e in ents])
    check(s.count() == 0, "delivered despite 450s")


# ==========================================================================
# deliverctl
# ==========================================================================

@test("merge_csv", "merge: 200-row CSV with 2 bad rows gets 198 unique "
      "filled messages, bad lines on stderr, exit 65",
      needs=("deliverd", "deliverctl"))
def t_merge(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"merge.test": s})
    tpl = os.path.join(ctx.tmp, "letter.tpl")
    with open(tpl, "w") as f:
        f.write("From: Sender <sender@sender.test>\nTo: {{email}}\n"
                "Subject: Hello {{name}}\n\nDear {{name}},\n"
                "your code is {{code}}.\n.\n-- \nthe end\n")
    path = os.path.join(ctx.tmp, "people.csv")
    bad_lines = {51: "not-an-address", 122: ""}
    rows = []
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "code"])
        for i in range(1, 201):
            line = i + 1
            em = bad_lines.get(line, "user%03d@merge.test" % i)
            name = "Person %d" % i
            if i == 7:
                name = 'Smith, "J" %d' % i
            w.writerow([em, name, "C%05d" % (i * 37)])
            if line not in bad_lines:
                rows.append((em, name, "C%05d" % (i * 37)))
    p = d.ctl("merge", "-f", "sender@sender.test", tpl, path, timeout=120)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 65, "exit %d, want 65 (some bad rows); stderr %r"
          % (p.returncode, err[:500]))
    for line in bad_lines:
        check(re.search(r"%s:%d:" % (re.escape(os.path.basename(path)),
                                     line), err),
              "stderr does not name %s:%d: %r" % (path, line, err[:500]))
    other = [x for x in err.splitlines()
             if re.search(r"\.csv:\d+:", x) and not
             re.search(r":(%s):" % "|".join(map(str, bad_lines)), x)]
    check(not other, "good rows reported bad: %r" % other[:3])
    msgs = s.wait_messages(198, 120)
    time.sleep(1)
    msgs = s.messages()
    check(len(msgs) == 198, "%d messages delivered, want 198" % len(msgs))
    by_rcpt = {}
    mids = []
    for meta, eml in msgs:
        check(len(meta["rcpts"]) == 1, "message to %r" % meta["rcpts"])
        by_rcpt.setdefault(meta["rcpts"][0], []).append(eml)
        check(meta["mail_from"] == "sender@sender.test",
              "envelope sender %r" % meta["mail_from"])
        m = re.search(rb"^Message-ID:\s*(\S+)", eml, re.I | re.M)
        check(m, "no Message-ID in %r" % eml[:300])
        mids.append(m.group(1))
        check(b"{{" not in eml, "unfilled placeholder in %r" % eml[:300])
    dup = [r for r, v in by_rcpt.items() if len(v) > 1]
    check(not dup, "recipients with several messages: %r" % dup[:5])
    check(len(set(mids)) == len(mids), "%d duplicate Message-IDs"
          % (len(mids) - len(set(mids))))
    for em, name, code in rows:
        check(em in by_rcpt, "no message for %s" % em)
        eml = by_rcpt[em][0]
        msg = email.message_from_bytes(eml)
        check(msg["To"] and em in msg["To"], "%s: To: %r" % (em, msg["To"]))
        check(("Hello %s" % name) in str(msg["Subject"]),
              "%s: Subject %r, want 'Hello %s'" % (em, msg["Subject"], name))
        check(("your code is %s." % code).encode() in eml and
              ("Dear %s," % name).encode() in eml,
              "%s: body lacks its name/code: %r" % (em, eml[-200:]))
        check(("your code is %s.\r\n.\r\n-- \r\nthe end\r\n" % code)
              .encode() in eml, "%s: template's '.' line or signature "
              "not delivered as is: %r" % (em, eml[-80:]))


@test("submit_args", "submit: -f sender and recipient arguments, LF input "
      "delivered with CRLF lines", needs=("deliverd", "deliverctl"))
def t_submit_args(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"dst.test": s})
    text = "From: alice@sender.test\nSubject: submit\n\nhello\nworld\n"
    d.ctl_ok("submit", "-f", "alice@sender.test", "bob@dst.test",
             "carol@dst.test", input=text)
    (meta, eml), = s.wait_messages(1, 20)
    check(meta["mail_from"] == "alice@sender.test", "sender %r"
          % meta["mail_from"])
    check(sorted(meta["rcpts"]) == ["bob@dst.test", "carol@dst.test"],
          "rcpts %r" % meta["rcpts"])
    check(b"\r\nhello\r\nworld\r\n" in eml, "body %r" % eml[-60:])
    check(s.stats()["violations"] == 0, "violations %r"
          % s.stats()["violation_list"])


@test("submit_t", "submit -t: recipients from To/Cc/Bcc, Bcc header "
      "stripped", needs=("deliverd", "deliverctl"))
def t_submit_t(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"dst.test": s})
    text = ("From: alice@sender.test\nTo: bob@dst.test, Carol "
            "<carol@dst.test>\nCc: dave@dst.test\nBcc: eve@dst.test\n"
            "Subject: -t\n\nhi\n")
    d.ctl_ok("submit", "-t", "-f", "alice@sender.test", input=text)
    msgs = s.wait_messages(1, 20)
    time.sleep(1)
    msgs = s.messages()
    rc = sorted(r for m, _ in msgs for r in m["rcpts"])
    check(rc == ["bob@dst.test", "carol@dst.test", "dave@dst.test",
                 "eve@dst.test"], "recipients %r" % rc)
    for _, eml in msgs:
        check(not re.search(rb"^Bcc:", eml, re.I | re.M),
              "Bcc header delivered: %r" % eml[:300])


@test("submit_dot_i", "submit: a '.' line ends input without -i, is kept "
      "with -i", needs=("deliverd", "deliverctl"))
def t_submit_i(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"dst.test": s})
    text = "Subject: %s\n\nbefore\n.\nafter\n"
    d.ctl_ok("submit", "-i", "-f", "a@src.test", "i@dst.test",
             input=text % "with-i")
    d.ctl_ok("submit", "-f", "a@src.test", "noi@dst.test",
             input=text % "without-i")
    msgs = s.wait_messages(2, 20)
    for meta, eml in msgs:
        if meta["rcpts"] == ["i@dst.test"]:
            check(eml.endswith(b"before\r\n.\r\nafter\r\n"),
                  "-i: %r" % eml[-40:])
        else:
            check(eml.endswith(b"before\r\n") and b"after" not in eml,
                  "without -i: %r" % eml[-40:])


def pending_for(q, dom):
    """Messages pending for dom in `queue --json` output: per-destination
    summaries (dest, queued, deferred, active, held) or per-message
    entries, whichever the output is."""
    n = 0
    for e in q:
        if isinstance(e, dict) and e.get("dest") is not None:
            if e["dest"] == dom:
                n += sum(int(e.get(k) or 0) for k in
                         ("queued", "deferred", "active", "held"))
        elif mentions(e, "@" + dom):
            n += 1
    return n


def held_for(q, dom, whole_dest):
    """Is dom shown held: as a destination (whole_dest) or a message?"""
    for e in q:
        if isinstance(e, dict) and e.get("dest") is not None:
            if e["dest"] == dom:
                if whole_dest:
                    return e.get("dest_held") is True
                return int(e.get("held") or 0) >= 1
        elif mentions(e, "@" + dom) and is_held(e):
            return True
    return False


@test("queue_hold_release_flush", "control: hold domain/qid keeps mail, "
      "queue --json shows it, release and flush deliver it",
      needs=("deliverd", "deliverctl"))
def t_queue_ctl(ctx):
    held = ctx.server(name="held")
    down_port = free_port()
    d = ctx.daemon({"retry_min": 3600, "retry_max": 3600,
                    "dest_backoff": 3600, "connect_timeout": 2},
                   routes={"held.test": held, "down.test": down_port})
    d.ctl_ok("hold", "held.test")
    d.ctl_ok("submit", "-f", "a@src.test", "x@held.test",
             input="Subject: A\n\nA\n")
    qb = inject(d.addr, "a@src.test", ["y@down.test"],
                crlf("Subject: B\n\nB\n"))
    d.wait_dlog(lambda e: e.get("qid") == qb and
                e.get("status") == "deferred", 1, 20,
                "deferral of %s (connection refused)" % qb)
    time.sleep(1.5)
    check(held.count() == 0, "held domain's message delivered")
    q = d.queue_json()
    qtext = json.dumps(q)[:700]
    check(pending_for(q, "held.test") == 1 and pending_for(q, "down.test")
          == 1, "queue --json does not show 1 message each for held.test "
          "and down.test: %s" % qtext)
    check(held_for(q, "held.test", True), "held.test not shown held: %s"
          % qtext)
    check(not held_for(q, "down.test", True) and
          not held_for(q, "down.test", False),
          "down.test shown held: %s" % qtext)
    d.ctl_ok("release", "held.test")
    held.wait_messages(1, 15)
    # B: hold by qid, bring the server up, flush: must stay; release: go
    d.ctl_ok("hold", qb)
    q = d.queue_json()
    check(held_for(q, "down.test", False), "message held by qid %s not "
          "shown held: %s" % (qb, json.dumps(q)[:700]))
    down = ctx.server(port=down_port, name="down")
    d.ctl_ok("flush", "down.test")
    time.sleep(3)
    check(down.count() == 0, "message held by qid delivered on flush")
    d.ctl_ok("release", qb)
    t0 = time.monotonic()
    d.ctl_ok("flush", "down.test")
    down.wait_messages(1, 15)
    ctx.diag("flushed message delivered %.1fs after flush (retry timer "
             "3600 s)" % (time.monotonic() - t0))
    wait_until(lambda: pending_for(d.queue_json(), "down.test") == 0 and
               pending_for(d.queue_json(), "held.test") == 0, 10,
               "an empty queue")
    p = d.ctl("hold", "0123456789ABCDEF")
    check(p.returncode != 0, "hold of an unknown qid exited 0")
    p = d.ctl_ok("stats")
    check(p.stdout.strip(), "deliverctl stats printed nothing")
    p = subprocess.run([ctx.bin("deliverctl"), "-S",
                        os.path.join(ctx.tmp, "no-such-socket"), "queue"],
                       capture_output=True, timeout=10)
    check(p.returncode != 0 and p.stderr.strip(), "deliverctl on a missing "
          "socket: exit %d, stderr %r" % (p.returncode, p.stderr))


@test("control_socket", "control: the socket speaks ESMTP; XSTATS and "
      "XQUEUE answer 250 lines of JSON; unknown X-command 500")
def t_control(ctx):
    d = ctx.daemon({"retry_min": 3600, "dest_backoff": 3600},
                   routes={"dst.test": free_port()})
    inject(d.addr, "a@src.test", ["q@dst.test"], crlf("Subject: q\n\nq\n"))
    d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)
    c = RawSMTP(d.sock)
    want(c.reply(), 220, None, "control greeting")
    want(c.cmd("EHLO ctl"), 250, None, "EHLO")
    for cmd in ("XSTATS", "XQUEUE"):
        r = c.cmd(cmd)
        check(r[0] == 250, "%s: %s" % (cmd, text_of(r)))
        objs = []
        for line in r[1]:
            line = re.sub(r"^2\.\d\.\d\s+", "", line)
            if not line.strip():
                continue
            try:
                objs.append(json.loads(line))
            except ValueError:
                raise Fail("%s reply line is not JSON: %r" % (cmd, line))
        check(objs, "%s: no JSON lines" % cmd)
        if cmd == "XQUEUE":
            check(pending_for(objs, "dst.test") == 1,
                  "XQUEUE does not show the deferred message: %r" % r[1])
    r = c.cmd("XFROBNICATE")
    check(r[0] in (500, 502), "XFROBNICATE: %s" % text_of(r))
    r = c.cmd("XHOLD")
    check(500 <= r[0] < 600, "XHOLD without argument: %s" % text_of(r))
    want(c.cmd("QUIT"), 221, None, "QUIT")


# ==========================================================================
# more: injection, delivery, retry and bounce edge cases
# ==========================================================================

@test("listener_pipelined_msgs", "listener: 40 messages pipelined in one "
      "write (past 32 pending) get 120 ordered 250s, 40 ids, all delivered")
def t_listener_pipemsgs(ctx):
    d, s = listener_daemon(ctx)
    c = session(d)
    n = 40
    out = b""
    for i in range(n):
        body = b"Subject: pipe %d\r\nX-Seq: %d\r\n\r\nbody %d\r\n" % (i, i, i)
        out += b"MAIL FROM:<a@src.test>\r\nRCPT TO:<p%d@dst.test>\r\n" % i
        out += b"BDAT %d LAST\r\n" % len(body) + body
    c.send(out)
    qids = []
    for i in range(3 * n):
        r = c.reply()
        check(r[0] == 250, "reply %d of %d: %s" % (i + 1, 3 * n, text_of(r)))
        if i % 3 == 2:
            m = QID_RE.search(" ".join(r[1]))
            check(m, "reply %d (BDAT LAST) lacks a queue id: %s"
                  % (i + 1, text_of(r)))
            qids.append(m.group(1))
    check(len(set(qids)) == n, "%d distinct queue ids for %d messages"
          % (len(set(qids)), n))
    msgs = s.wait_messages(n, 30)
    seqs = sorted(int(re.search(rb"X-Seq: (\d+)", e).group(1))
                  for _, e in msgs)
    check(seqs == list(range(n)), "delivered X-Seq %r" % seqs)
    for meta, eml in msgs:
        i = int(re.search(rb"X-Seq: (\d+)", eml).group(1))
        check(meta["rcpts"] == ["p%d@dst.test" % i], "message %d went to "
              "%r (replies or bodies crossed)" % (i, meta["rcpts"]))


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@test("listener_backpressure", "listener: 16 MB of pipelined NOOPs from a "
      "client that reads no reply get every 250 later, daemon RSS bounded")
def t_listener_backpressure(ctx):
    d, _ = listener_daemon(ctx)
    c = session(d)
    n = 16 * 1024 * 1024 // 6
    rss0 = vmrss_kb(d.proc.pid)
    # Send in a thread: the daemon must stop reading (TCP pushes back)
    # rather than buffer it all, so a blocking send would stall here.
    blob = b"NOOP\r\n" * n
    err = []

    def sender():
        try:
            c.sock.sendall(blob)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=sender)
    t.start()
    time.sleep(2)
    peak = vmrss_kb(d.proc.pid)
    c.sock.settimeout(60)
    # The replies are read in bulk: one reply() per line would copy the
    # rest of a 64 KB buffer for each of the 2.8 million lines, minutes
    # of CPU on a loaded machine.
    got, rest, mark = 0, c.buf, 0
    while got < n:
        d_ = c.sock.recv(1 << 20)
        check(d_, "connection closed after %d replies" % got)
        lines = (rest + d_).split(b"\r\n")
        rest = lines.pop()
        for i, line in enumerate(lines):
            check(line.startswith(b"250 "), "reply %d: %r" % (got + i + 1,
                                                             line[:100]))
        got += len(lines)
        if got >= mark:
            peak = max(peak, vmrss_kb(d.proc.pid))
            mark += 200000
    check(got == n and not rest, "%d replies to %d NOOPs, then %r"
          % (got, n, rest[:100]))
    t.join(30)
    check(not err, "sending failed: %r" % err)
    check(peak - rss0 < 8 * 1024, "daemon RSS grew %d KB while the client "
          "read nothing (want < 8 MB: reading must pause)" % (peak - rss0))
    ctx.diags.append("%d NOOPs answered; RSS growth %d KB" % (n, peak - rss0))


@test("listener_helo_listen2", "listener: HELO (not EHLO) client accepted; "
      "two listen addresses both serve")
def t_listener_helo(ctx):
    s = ctx.server()
    p2 = free_port()
    d = ctx.daemon({"listen": "127.0.0.1:%d, 127.0.0.1:%d"
                    % (free_port(), p2)}, routes={"*": s})
    d.port = int(re.match(r"127\.0\.0\.1:(\d+)",
                          d.settings["listen"]).group(1))
    c = RawSMTP(d.addr)
    want(c.reply(), 220, None, "greeting")
    want(c.cmd("HELO old.client.test"), 250, None, "HELO")
    want(c.cmd("MAIL FROM:<a@src.test>"), 250, None, "MAIL after HELO")
    want(c.cmd("RCPT TO:<b@dst.test>"), 250, None, "RCPT")
    want(c.cmd("DATA"), 354, None, "DATA")
    c.send(b"Subject: helo\r\n\r\nx\r\n.\r\n")
    r = c.reply()
    check(r[0] == 250 and QID_RE.search(" ".join(r[1])), "end of DATA "
          "after HELO: %s" % text_of(r))
    inject(("127.0.0.1", p2), "a@src.test", ["c@dst.test"],
           crlf("Subject: second listener\n\nx\n"))
    s.wait_messages(2, 20)


@test("client_big_message", "client: 3 MB message (BDAT in, BDAT and DATA "
      "out) delivered byte-exact to both")
def t_client_big(ctx):
    s1 = ctx.server(name="chunk")
    s2 = ctx.server("--no-chunking", name="nochunk")
    d = ctx.daemon({}, routes={"b1.test": s1, "b2.test": s2})
    rnd = random.Random(11)
    lines = []
    size = 0
    i = 0
    while size < 3 * 1024 * 1024:
        ln = (b"." if i % 7 == 0 else b"") + b"%08d " % i + \
            bytes(rnd.randrange(33, 255) for _ in range(rnd.randrange(990)))
        lines.append(ln)
        size += len(ln) + 2
        i += 1
    body = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    inject(d.addr, "a@src.test", ["x@b1.test", "y@b2.test"], body,
           bdat=True, chunks=4)
    (m1, e1), = s1.wait_messages(1, 60)
    (m2, e2), = s2.wait_messages(1, 60)
    check(m1["transport"] == "bdat" and m2["transport"] == "data",
          "transports %s/%s" % (m1["transport"], m2["transport"]))
    split_received(e1, body)
    split_received(e2, body)


@test("retry_disconnect_body", "retry: server drops the connection mid-body "
      "gets deferred, then exactly one copy delivered")
def t_retry_cut(ctx):
    s = ctx.server("--disconnect", "BODY#1:1000")
    d = ctx.daemon({"retry_min": 1, "retry_max": 2},
                   routes={"dst.test": s})
    body = b"Subject: cut\r\n\r\n" + b"0123456789" * 50 + b"\r\n" + \
        b"abcdefghij" * 500 + b"\r\n"
    qid = inject(d.addr, "a@src.test", ["b@dst.test"], body)
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)
    time.sleep(1)
    ents = [(e.get("status"), e.get("attempt")) for e in d.dlog()
            if e.get("qid") == qid]
    check(ents == [("deferred", 1), ("delivered", 2)],
          "(status, attempt) %r" % ents)
    check(s.count() == 1 and s.stats()["disconnects"] == 1,
          "%d copies, %d cuts" % (s.count(), s.stats()["disconnects"]))
    split_received(s.messages()[0][1], body)


@test("retry_greeting_421", "retry: 421 greeting gets deferred, then "
      "delivered")
def t_retry_421(ctx):
    s = ctx.server("--reply", "GREETING#1:421 4.3.2 busy, come back")
    d = ctx.daemon({"retry_min": 1, "retry_max": 2, "dest_backoff": 1},
                   routes={"dst.test": s})
    qid = inject(d.addr, "a@src.test", ["b@dst.test"],
                 crlf("Subject: 421\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    check([e.get("status") for e in ents] == ["deferred", "delivered"],
          "statuses %r" % [e.get("status") for e in ents])
    check(ents[0].get("code") == 421 and ents[0].get("enh") == "4.3.2" and
          ents[0].get("host") == s.addr,
          "deferral logged code %r enh %r host %r, want 421 / 4.3.2 / %s "
          "(the greeting the server sent): %s"
          % (ents[0].get("code"), ents[0].get("enh"), ents[0].get("host"),
             s.addr, json.dumps(ents[0])))
    check(s.count() == 1, "%d copies" % s.count())


@test("retry_greeting_timeout", "retry: no greeting within greeting_timeout "
      "gets deferred in time, then delivered")
def t_retry_gtimeout(ctx):
    s = ctx.server("--delay", "GREETING#1:6")
    d = ctx.daemon({"retry_min": 1, "retry_max": 2, "dest_backoff": 1,
                    "greeting_timeout": 1}, routes={"dst.test": s})
    inject(d.addr, "a@src.test", ["b@dst.test"], crlf("Subject: gt\n\nx\n"))
    e = d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)[0]
    check(isinstance(e.get("duration_ms"), (int, float)) and
          e["duration_ms"] < 5000, "deferral after duration_ms=%r; "
          "greeting_timeout=1" % e.get("duration_ms"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 30)


@test("retry_dot_451_once", "retry: 451 after the body gets deferred, "
      "then one copy delivered")
def t_retry_dot(ctx):
    s = ctx.server("--reply", "DOT#1:451 4.3.0 queue full")
    d = ctx.daemon({"retry_min": 1, "retry_max": 2}, routes={"dst.test": s})
    qid = inject(d.addr, "a@src.test", ["b@dst.test", "c@dst.test"],
                 crlf("Subject: dot\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 2, 30)
    ents = sorted((e.get("rcpt"), e.get("attempt"), e.get("status"),
                   e.get("code")) for e in d.dlog() if e.get("qid") == qid)
    check(ents == [("b@dst.test", 1, "deferred", 451),
                   ("b@dst.test", 2, "delivered", 250),
                   ("c@dst.test", 1, "deferred", 451),
                   ("c@dst.test", 2, "delivered", 250)], "entries %r" % ents)
    time.sleep(0.5)
    check(s.count() == 1, "%d copies" % s.count())


def iso_time(t):
    import datetime
    if isinstance(t, (int, float)):
        return float(t)
    t = t.rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(t, fmt).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            pass
    raise Fail("delivery log time %r is not ISO 8601" % t)


@test("retry_backoff", "retry: 3 deferrals with retry_min=2 retry_max=5 are "
      "spaced ~2, 4, 5 s (doubling, capped)")
def t_retry_backoff(ctx):
    s = ctx.server("--reply", "RCPT#3:450 4.2.1 later")
    d = ctx.daemon({"retry_min": 2, "retry_max": 5}, routes={"dst.test": s})
    qid = inject(d.addr, "a@src.test", ["b@dst.test"],
                 crlf("Subject: backoff\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 40)
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    check([(e.get("status"), e.get("attempt")) for e in ents] ==
          [("deferred", 1), ("deferred", 2), ("deferred", 3),
           ("delivered", 4)], "entries %r" % [(e.get("status"),
                                               e.get("attempt"))
                                              for e in ents])
    t = [iso_time(e["time"]) for e in ents]
    gaps = [round(b - a, 2) for a, b in zip(t, t[1:])]
    ctx.diag("gaps between attempts %r s (want ~2, 4, 5)" % gaps)
    for g, want_s in zip(gaps, (2, 4, 5)):
        check(want_s - 1.1 <= g <= want_s + 1.6, "gaps %r, want about "
              "2, 4, 5" % gaps)


@test("retry_rcpt_452", "retry: server taking 2 recipients per message "
      "(452 4.5.3 after) gets all 5 delivered once, no bounce")
def t_retry_452(ctx):
    d, s, b = bounce_setup(ctx, {"retry_min": 1, "retry_max": 2},
                           ["--max-rcpts", "2"])
    rc = ["r%d@dst.test" % i for i in range(5)]
    inject(d.addr, "alice@sender.test", rc, crlf("Subject: 452\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 5, 30)
    time.sleep(1)
    got = sorted(r for m, _ in s.messages() for r in m["rcpts"])
    check(got == rc, "delivered to %r" % got)
    check(b.count() == 0, "a bounce was sent")
    ctx.diag("%d transactions" % s.count())


@test("bounce_size_552", "bounce: message over the server's SIZE gets a "
      "bounce with Status 5.3.4, nothing delivered")
def t_bounce_size(ctx):
    d, s, b = bounce_setup(ctx, {}, ["--size", "1000"])
    inject(d.addr, "alice@sender.test", ["big@dst.test"],
           b"Subject: too big\r\n\r\n" + b"x" * 70 * 80 + b"\r\n")
    (bm, beml), = b.wait_messages(1, 30)
    msg, st = parse_dsn(beml)
    check(st and re.search(r"^Status:\s*5\.3\.4\b", st, re.M),
          "no 'Status: 5.3.4' in %r" % (st or "")[:600])
    check(s.count() == 0, "delivered anyway")


@test("bounce_mail_550", "bounce: 550 to MAIL fails both recipients; one "
      "bounce lists both")
def t_bounce_mail(ctx):
    d, s, b = bounce_setup(ctx, {}, ["--reply",
                                     "MAIL:550 5.7.1 sender rejected"])
    inject(d.addr, "alice@sender.test", ["a@dst.test", "b@dst.test"],
           crlf("Subject: mail 550\n\nx\n"))
    d.wait_dlog(lambda e: e.get("status") == "bounced", 2, 20)
    (bm, beml), = b.wait_messages(1, 20)
    time.sleep(1.5)
    check(b.count() == 1, "%d bounces, want 1 for both" % b.count())
    msg, st = parse_dsn(beml)
    for r in ("a@dst.test", "b@dst.test"):
        check(st and re.search(r"Final-Recipient:\s*rfc822;\s*%s"
                               % re.escape(r), st, re.I),
              "bounce lacks %s: %r" % (r, (st or "")[:600]))
    check(re.search(r"^Status:\s*5\.7\.1\b", st, re.M) and
          re.search(r"sender rejected", st), "status/diagnostic: %r"
          % st[:600])


@test("delivery_conn_reuse", "delivery: 2nd message within conn_idle reuses "
      "the connection; idle connection gets QUIT after conn_idle")
def t_conn_reuse(ctx):
    s = ctx.server()
    d = ctx.daemon({"conn_idle": 3}, routes={"dst.test": s})
    inject(d.addr, "a@src.test", ["a@dst.test"], crlf("Subject: 1\n\nx\n"))
    s.wait_messages(1, 20)
    time.sleep(0.5)
    inject(d.addr, "a@src.test", ["b@dst.test"], crlf("Subject: 2\n\nx\n"))
    msgs = s.wait_messages(2, 20)
    t_last = time.monotonic()
    check(msgs[0][0]["conn"] == msgs[1][0]["conn"], "new connection for "
          "the 2nd message (conns %d, %d)" % (msgs[0][0]["conn"],
                                              msgs[1][0]["conn"]))
    time.sleep(1.5)
    check(s.stats()["current"] == 1, "connection closed before conn_idle")
    wait_until(lambda: s.stats().get("current") == 0, 5,
               "the idle connection to close")
    check(s.stats()["commands"].get("QUIT") == 1, "closed without QUIT: %r"
          % s.stats()["commands"])
    ctx.diag("idle connection closed %.1fs after the last message"
             % (time.monotonic() - t_last))


@test("delivery_dest_rate", "delivery: dest_rate=5 spreads 15 messages over "
      ">= 2 s")
def t_dest_rate(ctx):
    s = ctx.server()
    d = ctx.daemon({"dest_rate": 5}, routes={"dst.test": s})
    c = session(d)
    for i in range(15):
        c.cmd("MAIL FROM:<a@src.test>")
        c.cmd("RCPT TO:<r%d@dst.test>" % i)
        body = b"Subject: %d\r\n\r\nx\r\n" % i
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        want(c.reply(), 250, None, "message %d" % i)
    msgs = s.wait_messages(15, 30)
    t = sorted(m["time"] for m, _ in msgs)
    span = t[-1] - t[0]
    ctx.diag("15 messages delivered over %.2fs" % span)
    check(span >= 1.8, "15 messages over %.2fs at dest_rate=5" % span)


@test("merge_column_batch", "merge: -r column and -b batch, all rows good "
      "gets exit 0 and every row delivered", needs=("deliverd", "deliverctl"))
def t_merge2(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"m.test": s})
    tpl = os.path.join(ctx.tmp, "t.tpl")
    with open(tpl, "w") as f:
        f.write("To: {{mail}}\nSubject: hi {{first}}\n\nHello {{first}}\n")
    path = os.path.join(ctx.tmp, "list.csv")
    with open(path, "w") as f:
        f.write("first,mail\n")
        for i in range(30):
            f.write("F%d,u%d@m.test\n" % (i, i))
    p = d.ctl("merge", "-f", "s@src.test", "-r", "mail", "-b", "7", tpl, path)
    check(p.returncode == 0, "exit %d: %r" % (p.returncode, p.stderr[:300]))
    msgs = s.wait_messages(30, 60)
    for meta, eml in msgs:
        i = int(meta["rcpts"][0][1:].split("@")[0])
        check(b"Hello F%d\r\n" % i in eml, "u%d: %r" % (i, eml[-60:]))


@test("hold_survives_restart", "spool: a qid hold survives SIGTERM and "
      "restart; flush then delivers only the other message",
      needs=("deliverd", "deliverctl"))
def t_hold_restart(ctx):
    port = free_port()
    d = ctx.daemon({"retry_min": 3600, "retry_max": 3600,
                    "dest_backoff": 3600, "connect_timeout": 2},
                   routes={"dst.test": port})
    q1 = inject(d.addr, "a@src.test", ["one@dst.test"],
                crlf("Subject: one\n\nONE\n"))
    q2 = inject(d.addr, "a@src.test", ["two@dst.test"],
                crlf("Subject: two\n\nTWO\n"))
    # the first refusal suspends dst.test: q2 may never be tried
    d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)
    d.ctl_ok("hold", q1)
    check(d.stop() == 0, "SIGTERM exit status not 0")
    s = ctx.server(port=port)
    d.start()
    d.ctl_ok("flush", "dst.test")
    (meta, eml), = s.wait_messages(1, 20)
    check(b"TWO" in eml, "flushed message %r" % eml[-30:])
    time.sleep(2)
    check(s.count() == 1, "held %s delivered after restart+flush" % q1)
    d.ctl_ok("release", q1)
    d.ctl_ok("flush", "dst.test")
    s.wait_messages(2, 20)
    del q2


@test("sigterm_in_flight", "spool: SIGTERM during delivery exits 0; after "
      "restart every message delivered")
def t_sigterm_flight(ctx):
    s = ctx.server("--delay", "DOT:0.1")
    d = ctx.daemon({"dest_concurrency": 2}, routes={"dst.test": s})
    n = 40
    for i in range(n):
        inject(d.addr, "a@src.test", ["r%d@dst.test" % i],
               crlf("Subject: %d\nX-Seq: %d\n\nx\n" % (i, i)))
    s.wait_messages(5, 20)
    t0 = time.monotonic()
    rc = d.stop(20)
    ctx.diag("stopped after %.1fs with %d of %d delivered"
             % (time.monotonic() - t0, s.count(), n))
    check(rc == 0, "exit status %r after SIGTERM mid-delivery" % rc)
    d.start()
    s.wait_messages(n, 60)
    time.sleep(1)
    seqs = [int(re.search(rb"X-Seq: (\d+)", e).group(1))
            for _, e in s.messages()]
    check(set(seqs) == set(range(n)), "missing %r"
          % sorted(set(range(n)) - set(seqs)))
    ctx.diag("%d duplicates" % (len(seqs) - len(set(seqs))))


# ==========================================================================
# deliverd: crash safety and corruption
# ==========================================================================

@test("crash_kill9", "crash: kill -9 mid-delivery of 2000 messages, restart: "
      "every acknowledged message delivered, duplicates < 5%")
def t_crash(ctx):
    s = ctx.server("--delay", "DOT:0.005")
    d = ctx.daemon({"dest_concurrency": 10, "conn_max_msgs": 100},
                   routes={"dst.test": s})
    total, nclients = 2000, 4
    acked = {}
    errors = []
    lock = threading.Lock()

    def client(k):
        import smtplib
        seqs = list(range(k, total, nclients))
        i = 0
        while i < len(seqs):
            try:
                c = smtplib.SMTP("127.0.0.1", d.port, timeout=20)
                c.ehlo("inj%d.test" % k)
                while i < len(seqs):
                    seq = seqs[i]
                    body = ("From: a@src.test\r\nTo: r@dst.test\r\n"
                            "X-Test-Seq: %d\r\nSubject: seq %d\r\n\r\n"
                            "message %d\r\n" % (seq, seq, seq)) + \
                        "filler line\r\n" * (seq % 20)
                    c.mail("a@src.test")
                    code, _ = c.rcpt("r%d@dst.test" % (seq % 7))
                    if code != 250:
                        raise smtplib.SMTPException("RCPT %d" % code)
                    code, resp = c.data(body.encode())
                    if code != 250:
                        raise smtplib.SMTPException("DATA %d" % code)
                    m = QID_RE.search(resp.decode(errors="replace"))
                    with lock:
                        acked[seq] = m.group(1) if m else "?"
                    i += 1
                c.quit()
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    errors.append("client %d at seq %d: %s" % (k, seqs[i],
                                                               e))
                return
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(nclients)]
    for t in threads:
        t.start()
    # The kill comes once deliveries are under way and enough messages
    # were acknowledged for the count below to mean something: how the
    # two rates compare is the machine's load, not the daemon's doing.
    kill_at = 300
    wait_until(lambda: s.count() >= kill_at and len(acked) >= 500 or
               not any(t.is_alive() for t in threads) and s.count() >= 100,
               120, "%d deliveries and 500 acknowledged before the kill"
               % kill_at)
    delivered_at_kill = s.count()
    d.kill9()
    for t in threads:
        t.join(30)
    n_acked_at_kill = len(acked)
    time.sleep(0.5)
    ctx.diag("killed with %d acknowledged, %d delivered; %d injections "
             "broken by the kill" % (n_acked_at_kill, delivered_at_kill,
                                     len(errors)))
    d.start()

    def seqs_delivered():
        out = {}
        for p in glob.glob(os.path.join(s.rec, "*.eml")):
            with open(p, "rb") as f:
                m = re.search(rb"X-Test-Seq: (\d+)", f.read(4096))
            if m:
                out[int(m.group(1))] = out.get(int(m.group(1)), 0) + 1
        return out
    want_seqs = set(acked)

    def done():
        got = seqs_delivered()
        return got if want_seqs <= set(got) else None
    try:
        got = wait_until(done, 240, "every acknowledged message delivered",
                         1.0)
    except Fail:
        got = seqs_delivered()
        missing = sorted(want_seqs - set(got))
        qids = [acked[x] for x in missing[:10]]
        raise Fail("%d acknowledged messages never delivered (seq %s, qids "
                   "%s)" % (len(missing), missing[:10], qids))
    time.sleep(2)
    got = seqs_delivered()
    dups = sum(v - 1 for v in got.values())
    extra = sorted(set(got) - want_seqs)
    ctx.diag("acknowledged %d, delivered %d distinct (%d not "
             "acknowledged but delivered), duplicates %d (%.2f%%)"
             % (len(acked), len(got), len(extra), dups,
                100.0 * dups / max(1, len(acked))))
    check(len(acked) >= 500, "only %d messages acknowledged in all"
          % len(acked))
    check(dups < 0.05 * len(acked), "%d duplicates, over 5%% of %d"
          % (dups, len(acked)))
    check("corrupt record" not in d.log(), "a record was found corrupt "
          "after kill -9: %r" % [x for x in d.log().splitlines()
                                 if "corrupt" in x][:3])


@test("corrupt_record", "spool: a flipped byte in a held record gets "
      "'corrupt record' at start; it is never delivered, others are",
      needs=("deliverd", "deliverctl"))
def t_corrupt(ctx):
    s = ctx.server()
    d = ctx.daemon({}, routes={"dst.test": s})
    d.ctl_ok("hold", "dst.test")
    qids = []
    bodies = {}
    for k in range(1, 6):
        body = crlf("Subject: corrupt test %d\n\nCORRUPT-TEST-%d\n" % (k, k)
                    + "payload line %d abcdefghijklmnopqrstuvwxyz\n" % k * 20)
        bodies[k] = body
        qids.append(inject(d.addr, "a@src.test", ["c%d@dst.test" % k], body))
    time.sleep(1)
    check(s.count() == 0, "held messages delivered")
    rc = d.stop()
    check(rc == 0, "SIGTERM exit %r" % rc)
    segs = sorted(glob.glob(os.path.join(d.spool, "seg-*.dat")))
    check(segs, "no seg-*.dat in %s: %r" % (d.spool, os.listdir(d.spool)))
    marker = b"CORRUPT-TEST-3"
    hit = None
    for p in segs:
        with open(p, "rb") as f:
            data = f.read()
        i = data.find(marker)
        if i >= 0:
            hit = (p, i + len(marker) + 40)
            break
    check(hit, "message 3's body not found in %r" % segs)
    with open(hit[0], "r+b") as f:
        f.seek(hit[1])
        b = f.read(1)
        f.seek(hit[1])
        f.write(bytes([b[0] ^ 0x20]))
    ctx.diag("flipped byte %d of %s" % (hit[1], os.path.basename(hit[0])))
    d.start()
    wait_until(lambda: "corrupt record" in d.log(), 10,
               "'corrupt record' in the log")
    d.ctl("release", "dst.test")
    for q in qids:
        d.ctl("release", q)
    d.ctl("flush", "dst.test")
    msgs = s.wait_messages(4, 30)
    time.sleep(3)
    msgs = s.messages()
    got = {}
    for meta, eml in msgs:
        m = re.search(rb"CORRUPT-TEST-(\d)", eml)
        check(m, "delivered message without a marker: %r" % eml[:200])
        got.setdefault(int(m.group(1)), []).append(eml)
    if 3 in got:
        raise Fail("the corrupted message was delivered (%d copies): %r"
                   % (len(got[3]), got[3][0][-200:]))
    check(sorted(got) == [1, 2, 4, 5] and
          all(len(v) == 1 for v in got.values()),
          "delivered markers %r" % {k: len(v) for k, v in got.items()})
    for k, v in got.items():
        split_received(v[0], bodies[k])


def load_test_modules():
    """Tests of one part each live in tests/dd_it_*.py; they register
    with @test like the ones above, importing this module by name."""
    import importlib
    sys.modules.setdefault("dd_integration", sys.modules[__name__])
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    # Imported by name, so a module another one imports loads only once.
    for path in sorted(glob.glob(os.path.join(HERE, "dd_it_*.py"))):
        importlib.import_module(os.path.splitext(os.path.basename(path))[0])


if __name__ == "__main__":
    load_test_modules()
    sys.exit(main())
