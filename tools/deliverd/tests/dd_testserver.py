#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""dd_testserver: a scriptable SMTP server for deliverd's tests.

One asyncio process, standard library only, that speaks the receiving side
of ESMTP (RFC 5321) with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
(RFC 6152), CHUNKING (RFC 3030) and ENHANCEDSTATUSCODES (RFC 2034), and
records what a client did with it: every accepted message, how it came
(BDAT or DATA, pipelined or not) and counters, so a test can assert on the
client's behaviour, not only on the outcome.

Usage::

    dd_testserver.py --listen 127.0.0.1:2601 [--listen [::1]:2601]
        [--no-chunking] [--no-pipelining] [--no-8bitmime] [--size N]
        [--dsn] [--smtputf8]
        [--banner-delay S] [--reply RULE]... [--delay RULE]...
        [--disconnect RULE]... [--record DIR] [--stats FILE]
        [--ready-file FILE] [--transcript FILE] [-v] [--lifetime S]
        [--tls-cert PEM --tls-key PEM [--tls-fail-handshake |
         --tls-stall-handshake]]

A port of 0 binds a free port; the ready file tells which.

Rules
-----
--reply, --delay and --disconnect take one RULE each and may be repeated::

    RULE     := VERB [ "[" GLOB "]" ] [ "#" COUNT ] [ ":" VALUE ]
    VERB     := GREETING | EHLO | HELO | MAIL | RCPT | DATA | DOT | BDAT
              | RSET | NOOP | VRFY | QUIT | STARTTLS | BODY

VERB is the command the rule applies to (case-insensitive).  Two are not
commands: GREETING is the connection's banner and DOT the final reply to a
message (after "." for DATA, and to BDAT ... LAST when no BDAT rule
applies).  BODY is for --disconnect only.

[GLOB]  applies the rule only when the command's subject matches the
        shell-style GLOB (fnmatch, case-insensitive).  The subject is the
        address for MAIL and RCPT, the transaction's accepted recipients
        for DATA, DOT, BDAT and BODY (any one matching is enough), the
        argument for EHLO/HELO/VRFY.  A GLOB without "@" is matched
        against the local part only ("fail*" matches fail1@dest.test), one
        with "@" against the whole address ("*@slow.test").
#COUNT  applies the rule only the first COUNT times it matches, over the
        server's life (all connections); after that it no longer matches
        and the next rule, or the normal behaviour, applies.
VALUE   --reply: "CODE TEXT", the reply to send instead of the normal
        one; "\\n" in TEXT makes a multi-line reply ("250 a\\nb" sends
        "250-a" then "250 b").  The server acts on the code: a 4xx/5xx to
        MAIL starts no transaction, to RCPT adds no recipient, to DATA
        expects no body, to DOT/BDAT discards the message; 421 anywhere
        closes the connection after the reply.
        --delay: SECONDS (float) to wait before replying.
        --disconnect: only for BODY, the number N of body bytes (as sent,
        counted from the first byte after the 354 or the BDAT line) after
        which the connection is closed; omitted for other verbs.

For each command the first matching rule of each kind wins, in command
line order.  Rules apply only to commands that are in sequence and
syntactically valid (a RCPT before MAIL still gets 503, a bad address
501); delays apply to every command of the verb.  --disconnect closes the
connection instead of sending the reply (for GREETING: right after
accept).  --banner-delay S is --delay GREETING:S.

Examples::

    --reply 'RCPT[fail*]:550 5.1.1 no such user'   every fail*@ recipient
    --reply 'RCPT#1:450 4.2.1 try later'           the first RCPT only
    --reply 'DOT:451 4.3.0 queue full'             every message deferred
    --delay 'DATA#1:5'                             first DATA waits 5 s
    --disconnect 'BODY#1:100'                      first body cut at 100 B
    --disconnect 'DOT[*@x.test]'                   drop after the final dot

Recording
---------
--record DIR writes every accepted message as DIR/<n>.eml (the message as
received: dot-unstuffed for DATA, the exact concatenated chunks for BDAT,
without the terminating ".") and then DIR/<n>.json (written last, by
rename, so its presence means both are complete)::

    {"id": n, "mail_from": "a@b", "rcpts": ["c@d"], "transport": "bdat",
     "size": 1234, "conn": 3, "pipelined": true, "mail_params": ["SIZE=1234"],
     "rcpt_params": [[]], "helo": "client.name", "peer": "127.0.0.1:40000",
     "8bit": false, "time": 1700000000.0,
     "mail_line": "MAIL FROM:<a@b> SIZE=1234", "rcpt_lines": ["RCPT TO:<c@d>"]}

mail_line and rcpt_lines are the accepted commands as received (UTF-8,
without CRLF).  --dsn offers DSN (RFC 3461) and accepts RET, ENVID,
NOTIFY and ORCPT; --smtputf8 offers SMTPUTF8 (RFC 6531) and accepts it
on MAIL.  Without them those parameters are violations (555), and so is
a non-ASCII address in a transaction without SMTPUTF8 (553 5.6.7).

pipelined is true when any command of the transaction arrived together
with another command before the server had replied to it (see below).

--stats FILE keeps a JSON object, rewritten (by rename) whenever it
changes and at exit: connections (total), current, peak_concurrent,
messages, rcpts, bytes, transports {"data","bdat"}, commands (count per
verb), replies (count per code), pipelined (did any client pipeline),
pipelined_groups, disconnects (forced by rules), violations (count) and
violation_list (the first 100: protocol errors by the client such as BDAT
when CHUNKING was not offered, pipelining when not offered, bare LF).

Pipelining detection: replies are buffered and sent only when the server
needs more input (as RFC 2920 allows).  A group is counted when a second
command (or the message content after DATA's 354, counted as one) was
already in the input, in whole or in part, before the server sent the
replies to the first.  A client that waits for each reply never makes
one.

STARTTLS
--------
--tls-cert PEM --tls-key PEM offer STARTTLS (RFC 3207) in the EHLO reply
until the session is encrypted, and answer it with 220 and a TLS
handshake (Python's ssl module, TLS 1.2 or 1.3).  After the handshake
the session starts over (EHLO needed again).  Recorded messages then say
"tls": the protocol ("TLSv1.3") and "tls_cipher" (null in plain text);
stats count "tls_sessions" (handshakes done) and "tls_failed".  Ways to
break it: --reply 'STARTTLS:454 4.7.0 TLS not available' refuses it,
--disconnect STARTTLS closes instead of the 220, --tls-fail-handshake
closes after the 220 as soon as the client's first handshake bytes come,
--tls-stall-handshake reads them and never answers (until the client
gives up).
Anything the client sends after STARTTLS before the 220 is a violation.

--ready-file FILE is written (by rename) once every listener is bound:
{"pid": PID, "listen": ["127.0.0.1:2601", ...]}.

SIGTERM or SIGINT: close listeners and connections, write the stats, exit
0.  --lifetime S does the same after S seconds (0: never).
"""

import argparse
import asyncio
import fnmatch
import json
import os
import re
import signal
import socket
import ssl
import sys
import time

VERBS = ("GREETING", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "DOT", "BDAT",
         "RSET", "NOOP", "VRFY", "QUIT", "STARTTLS", "BODY")
COMMANDS = ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP",
            "VRFY", "QUIT", "HELP", "EXPN", "STARTTLS", "AUTH")
MAX_LINE = 65536		# longest command line we keep reading
RFC_LINE = 512			# RFC 5321 4.5.3.1.4, CRLF included
VIOLATIONS_KEPT = 100


class Usage(Exception):
    pass


class Rule:
    """One --reply/--delay/--disconnect rule (syntax in the docstring)."""

    RE = re.compile(r"^(?P<verb>[A-Za-z]+)(?:\[(?P<glob>[^\]]*)\])?"
                    r"(?:#(?P<count>\d+))?(?::(?P<value>.*))?$", re.S)

    def __init__(self, kind, text):
        m = self.RE.match(text)
        if not m:
            raise Usage("--%s %r: want VERB[GLOB]#COUNT:VALUE" % (kind, text))
        self.kind, self.text = kind, text
        self.verb = m.group("verb").upper()
        if self.verb not in VERBS:
            raise Usage("--%s %r: unknown verb %s (one of %s)"
                        % (kind, text, self.verb, ", ".join(VERBS)))
        self.glob = m.group("glob")
        self.count = int(m.group("count")) if m.group("count") else None
        self.used = 0
        value = m.group("value")
        if kind == "reply":
            if value is None:
                raise Usage("--reply %r: want VERB:CODE TEXT" % text)
            rm = re.match(r"^([2-5]\d\d)(?:[ ](.*))?$", value, re.S)
            if not rm:
                raise Usage("--reply %r: want a 3-digit code, then text"
                            % text)
            self.code = int(rm.group(1))
            self.lines = (rm.group(2) or "").replace("\\n", "\n").split("\n")
        elif kind == "delay":
            try:
                self.seconds = float(value)
            except (TypeError, ValueError):
                raise Usage("--delay %r: want VERB:SECONDS" % text)
        elif kind == "disconnect":
            if self.verb == "BODY":
                try:
                    self.nbytes = int(value)
                except (TypeError, ValueError):
                    raise Usage("--disconnect %r: want BODY:BYTES" % text)
            elif value not in (None, ""):
                raise Usage("--disconnect %r: only BODY takes a value" % text)
        if self.verb == "BODY" and kind != "disconnect":
            raise Usage("--%s %r: BODY is for --disconnect only"
                        % (kind, text))

    def _glob_ok(self, subjects):
        if self.glob is None:
            return True
        g = self.glob.lower()
        for s in subjects:
            s = (s or "").lower()
            if "@" not in g and "@" in s:
                s = s.rsplit("@", 1)[0]
            if fnmatch.fnmatchcase(s, g):
                return True
        return False

    def take(self, verb, subjects):
        """Does the rule apply now?  Counts the use when it does."""
        if verb != self.verb:
            return False
        if self.count is not None and self.used >= self.count:
            return False
        if not self._glob_ok(subjects):
            return False
        self.used += 1
        return True


class Closed(Exception):
    """The connection is over (peer gone, QUIT, timeout or a rule)."""


class Server:
    def __init__(self, args):
        self.args = args
        self.rules = {"reply": [], "delay": [], "disconnect": []}
        for kind, lst in (("reply", args.reply), ("delay", args.delay),
                          ("disconnect", args.disconnect)):
            for text in lst or ():
                self.rules[kind].append(Rule(kind, text))
        if args.banner_delay:
            self.rules["delay"].append(
                Rule("delay", "GREETING:%s" % args.banner_delay))
        self.hostname = args.hostname
        self.next_conn = 0
        self.next_msg = 0
        self.stats = {
            "pid": os.getpid(), "listen": [],
            "connections": 0, "current": 0, "peak_concurrent": 0,
            "messages": 0, "rcpts": 0, "bytes": 0,
            "transports": {"data": 0, "bdat": 0},
            "commands": {}, "replies": {},
            "pipelined": False, "pipelined_groups": 0,
            "disconnects": 0, "violations": 0, "violation_list": [],
            "tls_sessions": 0, "tls_failed": 0,
        }
        self.tls_ctx = None
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            self.tls_ctx = ctx
        self.dirty = False
        self.conns = set()
        self.servers = []
        self.stopping = None
        self.tlog = None
        if args.transcript:
            self.tlog = open(args.transcript, "a", buffering=1)
        if args.record:
            os.makedirs(args.record, exist_ok=True)

    # -- rules, stats, logs -------------------------------------------
    def rule(self, kind, verb, subjects=()):
        for r in self.rules[kind]:
            if r.take(verb, subjects):
                return r
        return None

    def bump(self, key, sub=None, n=1):
        if sub is None:
            self.stats[key] += n
        else:
            d = self.stats[key]
            d[sub] = d.get(sub, 0) + n
        self.changed()

    def violation(self, conn, what):
        self.stats["violations"] += 1
        if len(self.stats["violation_list"]) < VIOLATIONS_KEPT:
            self.stats["violation_list"].append(
                "conn %d: %s" % (conn.cid, what))
        self.log(conn.cid, "!", what)
        self.changed()

    def changed(self):
        if not self.args.stats or self.dirty:
            return
        self.dirty = True
        asyncio.get_running_loop().call_soon(self.write_stats)

    def write_stats(self):
        self.dirty = False
        if not self.args.stats:
            return
        atomic_write(self.args.stats, json.dumps(self.stats, indent=1,
                                                 sort_keys=True) + "\n")

    def log(self, cid, who, text):
        if not self.tlog and not self.args.verbose:
            return
        line = "%.3f %d %s: %s\n" % (time.time(), cid, who, text)
        if self.tlog:
            self.tlog.write(line)
        if self.args.verbose:
            sys.stderr.write(line)

    # -- messages ---------------------------------------------------------
    def record(self, conn, txn, data, transport):
        self.next_msg += 1
        n = self.next_msg
        st = self.stats
        st["messages"] += 1
        st["rcpts"] += len(txn.rcpts)
        st["bytes"] += len(data)
        st["transports"][transport] += 1
        self.changed()
        if self.args.record:
            d = self.args.record
            with open(os.path.join(d, "%d.eml" % n), "wb") as f:
                f.write(data)
            meta = {
                "id": n, "mail_from": txn.sender, "rcpts": txn.rcpts,
                "transport": transport, "size": len(data), "conn": conn.cid,
                "pipelined": txn.pipelined, "mail_params": txn.params,
                "rcpt_params": txn.rcpt_params, "helo": conn.helo,
                "peer": conn.peer, "8bit": any(b > 127 for b in data),
                "time": time.time(), "mail_line": txn.mail_line,
                "rcpt_lines": txn.rcpt_lines,
                "tls": conn.tls[0] if conn.tls else None,
                "tls_cipher": conn.tls[1] if conn.tls else None,
            }
            atomic_write(os.path.join(d, "%d.json" % n),
                         json.dumps(meta, indent=1) + "\n")
        return n

    # -- life ---------------------------------------------------------------
    async def handle(self, reader, writer):
        self.next_conn += 1
        conn = Conn(self, reader, writer, self.next_conn)
        task = asyncio.current_task()
        self.conns.add(task)
        st = self.stats
        st["connections"] += 1
        st["current"] += 1
        st["peak_concurrent"] = max(st["peak_concurrent"], st["current"])
        self.changed()
        try:
            await conn.run()
        finally:
            st["current"] -= 1
            self.changed()
            self.conns.discard(task)

    async def main(self):
        loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        for spec in self.args.listen:
            host, port = parse_hostport(spec)
            srv = await asyncio.start_server(self.handle, host, port,
                                             reuse_address=True, backlog=512)
            self.servers.append(srv)
            for s in srv.sockets:
                a = s.getsockname()
                if s.family == socket.AF_INET6:
                    self.stats["listen"].append("[%s]:%d" % (a[0], a[1]))
                else:
                    self.stats["listen"].append("%s:%d" % (a[0], a[1]))
        self.write_stats()
        if self.args.ready_file:
            atomic_write(self.args.ready_file,
                         json.dumps({"pid": os.getpid(),
                                     "listen": self.stats["listen"]}) + "\n")
        if self.args.lifetime:
            loop.call_later(self.args.lifetime, self.stop)
        await self.stopping
        for srv in self.servers:
            srv.close()
        for t in list(self.conns):
            t.cancel()
        if self.conns:
            await asyncio.wait(list(self.conns), timeout=2)
        self.write_stats()
        if self.tlog:
            self.tlog.close()

    def stop(self):
        if self.stopping and not self.stopping.done():
            self.stopping.set_result(True)


class Txn:
    def __init__(self, sender, params):
        self.sender = sender
        self.params = params
        self.rcpts = []
        self.rcpt_params = []
        self.mail_line = None
        self.rcpt_lines = []
        self.utf8 = any(p.upper() == "SMTPUTF8" for p in params)
        self.pipelined = False
        self.chunks = None	# bytearray once BDAT started
        self.failed = False	# a BDAT chunk was refused: discard the rest
        self.cut_at = None	# --disconnect BODY:N for this message
        self.seen = 0		# body bytes so far (BDAT)
        self.body8 = any(p.upper() == "BODY=8BITMIME" for p in params)


class Conn:
    def __init__(self, srv, reader, writer, cid):
        self.srv, self.reader, self.writer, self.cid = srv, reader, writer, cid
        self.args = srv.args
        self.buf = bytearray()
        self.out = []
        self.batch = 0		# commands received since we last replied
        self.helo = None
        self.esmtp = False
        self.txn = None
        self.refused = False	# greeting was not 220: only QUIT works
        self.tls = None		# (version, cipher) once encrypted
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = "%s:%s" % (peer[0], peer[1])

    # -- output -------------------------------------------------------------
    def reply(self, code, *lines, enh=None):
        if not lines:
            lines = ("",)
        out = []
        for i, text in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            if enh and not re.match(r"^\d\.\d{1,3}\.\d{1,3}( |$)", text):
                text = "%s %s" % (enh, text) if text else enh
            out.append("%d%s%s\r\n" % (code, sep, text))
        self.srv.bump("replies", str(code))
        for o in out:
            self.srv.log(self.cid, "S", o.rstrip("\r\n"))
        self.out.append("".join(out).encode("utf-8", "replace"))

    def send(self, verb, subjects, code, *lines, enh=None):
        """The normal reply, or a --reply rule's.  Returns the code sent."""
        r = self.srv.rule("reply", verb, subjects)
        if r:
            code, lines, enh = r.code, r.lines, None
        self.reply(code, *lines, enh=enh)
        return code

    async def flush(self):
        if self.out:
            data = b"".join(self.out)
            self.out = []
            self.writer.write(data)
            await self.writer.drain()

    async def before_reply(self, verb, subjects=()):
        """--disconnect and --delay rules for this reply."""
        if self.srv.rule("disconnect", verb, subjects):
            self.srv.bump("disconnects")
            self.srv.log(self.cid, "!", "disconnect at %s (rule)" % verb)
            self.out = []
            self.abort()
            raise Closed()
        r = self.srv.rule("delay", verb, subjects)
        if r:
            await self.flush()
            self.srv.log(self.cid, "!", "delay %s %.3fs" % (verb, r.seconds))
            await asyncio.sleep(r.seconds)

    def abort(self):
        try:
            self.writer.transport.abort()
        except Exception:
            pass

    # -- input --------------------------------------------------------------
    async def fill(self):
        try:
            data = await asyncio.wait_for(self.reader.read(262144),
                                          self.args.idle_timeout)
        except asyncio.TimeoutError:
            self.reply(421, "%s timeout, closing" % self.srv.hostname,
                       enh="4.4.2")
            await self.flush()
            raise Closed()
        except (ConnectionError, OSError):
            raise Closed()
        if not data:
            raise Closed()
        self.buf += data

    async def command(self):
        """The next command line (without CRLF), flushing replies first
        when it has not fully arrived yet."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                raw = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                self.batch += 1
                if not raw.endswith(b"\r\n"):
                    self.srv.violation(self, "bare LF after a command")
                line = raw.rstrip(b"\r\n")
                if len(raw) > RFC_LINE:
                    self.srv.violation(self, "command line of %d bytes"
                                       % len(raw))
                return line.decode("utf-8", "replace")
            if len(self.buf) > MAX_LINE:
                self.srv.violation(self, "command line over %d bytes"
                                   % MAX_LINE)
                self.reply(500, "Line too long", enh="5.5.2")
                await self.flush()
                raise Closed()
            if self.out:
                await self.flush()
                if not self.buf:	# nothing of the next one yet
                    self.batch = 0
            elif not self.buf:
                self.batch = 0
            await self.fill()

    def note_pipelining(self):
        """Called for each command after it is counted in the batch."""
        if self.batch < 2:
            return
        st = self.srv.stats
        if self.batch == 2:
            st["pipelined_groups"] += 1
            if not self.args.pipelining:
                self.srv.violation(self, "pipelined without PIPELINING")
        if not st["pipelined"]:
            st["pipelined"] = True
        self.srv.changed()
        if self.txn:
            self.txn.pipelined = True

    # -- session ------------------------------------------------------------
    async def run(self):
        try:
            await self.session()
        except (Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            try:
                self.reply(421, "%s shutting down" % self.srv.hostname,
                           enh="4.3.2")
                self.writer.write(b"".join(self.out))
            except Exception:
                pass
        finally:
            self.srv.log(self.cid, "-", "closed")
            try:
                self.writer.close()
            except Exception:
                pass

    async def session(self):
        self.srv.log(self.cid, "+", "connect from %s" % self.peer)
        await self.before_reply("GREETING")
        code = self.send("GREETING", (), 220,
                         "%s ESMTP dd_testserver" % self.srv.hostname)
        if code == 421:
            await self.flush()
            raise Closed()
        self.refused = code != 220
        while True:
            line = await self.command()
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb):].strip() if " " in line else ""
            self.srv.log(self.cid, "C", line if len(line) < 300
                         else line[:300] + "...")
            key = verb if verb in COMMANDS else "other"
            self.srv.bump("commands", key)
            self.note_pipelining()
            if self.refused and verb != "QUIT":
                self.reply(503, "Bad sequence of commands", enh="5.5.1")
                continue
            handler = getattr(self, "do_" + verb.lower(), None) \
                if verb in COMMANDS else None
            if handler is None:
                self.reply(500, "Command unrecognized", enh="5.5.1")
                continue
            self.line = line
            code = await handler(arg)
            if code == 421:
                await self.flush()
                raise Closed()

    async def do_ehlo(self, arg, verb="EHLO"):
        await self.before_reply(verb, (arg,))
        if not arg:
            return self.send(verb, (arg,), 501, "Syntax: %s hostname" % verb,
                             enh="5.5.4")
        self.txn = None
        if verb == "HELO":
            code = self.send(verb, (arg,), 250, self.srv.hostname)
        else:
            ext = [self.srv.hostname]
            if self.args.pipelining:
                ext.append("PIPELINING")
            ext.append("SIZE %d" % self.args.size if self.args.size
                       else "SIZE")
            if self.args.eightbit:
                ext.append("8BITMIME")
            if self.args.chunking:
                ext.append("CHUNKING")
            if self.srv.tls_ctx and not self.tls:
                ext.append("STARTTLS")
            if self.args.dsn:
                ext.append("DSN")
            if self.args.smtputf8:
                ext.append("SMTPUTF8")
            ext.append("ENHANCEDSTATUSCODES")
            code = self.send(verb, (arg,), 250, *ext)
        if 200 <= code < 300:
            self.helo = arg
            self.esmtp = verb == "EHLO"
        return code

    async def do_helo(self, arg):
        return await self.do_ehlo(arg, "HELO")

    async def do_noop(self, arg):
        await self.before_reply("NOOP")
        return self.send("NOOP", (), 250, "Ok", enh="2.0.0")

    async def do_vrfy(self, arg):
        await self.before_reply("VRFY", (arg,))
        return self.send("VRFY", (arg,), 252, "Cannot VRFY user",
                         enh="2.5.2")

    async def do_help(self, arg):
        self.reply(214, "See RFC 5321", enh="2.0.0")

    async def do_expn(self, arg):
        self.reply(502, "Command not implemented", enh="5.5.1")

    do_auth = do_expn

    async def do_starttls(self, arg):
        if not self.srv.tls_ctx:
            self.reply(502, "Command not implemented", enh="5.5.1")
            return 502
        await self.before_reply("STARTTLS")
        if arg:
            self.reply(501, "Syntax: STARTTLS", enh="5.5.4")
            return 501
        if self.tls:
            self.reply(503, "Already in TLS", enh="5.5.1")
            return 503
        code = self.send("STARTTLS", (), 220, "Ready to start TLS",
                         enh="2.0.0")
        if code != 220:
            return code
        if self.buf:
            self.srv.violation(self, "%d bytes after STARTTLS before 220"
                               % len(self.buf))
            del self.buf[:]
        await self.flush()
        if self.args.tls_stall_handshake:
            self.srv.bump("tls_failed")
            self.srv.log(self.cid, "!", "stalling the handshake")
            while True:		# until the client closes
                await self.fill()
                del self.buf[:]
        if self.args.tls_fail_handshake:
            await self.fill()
            self.srv.bump("tls_failed")
            self.srv.log(self.cid, "!", "closing during the handshake")
            self.abort()
            raise Closed()
        try:
            await self.writer.start_tls(self.srv.tls_ctx)
        except (OSError, ConnectionError, asyncio.TimeoutError) as e:
            self.srv.bump("tls_failed")
            self.srv.log(self.cid, "!", "TLS handshake failed: %s" % e)
            raise Closed()
        obj = self.writer.get_extra_info("ssl_object")
        self.tls = (obj.version(), obj.cipher()[0])
        self.srv.bump("tls_sessions")
        self.srv.log(self.cid, "!", "TLS %s %s" % self.tls)
        # RFC 3207 4.2: forget what the client said before.
        self.helo = None
        self.esmtp = False
        self.txn = None
        return 220

    async def do_rset(self, arg):
        await self.before_reply("RSET")
        self.txn = None
        return self.send("RSET", (), 250, "Ok", enh="2.0.0")

    async def do_quit(self, arg):
        await self.before_reply("QUIT")
        self.send("QUIT", (), 221, "Bye", enh="2.0.0")
        await self.flush()
        raise Closed()

    def parse_path(self, arg, kw):
        m = re.match(r"^%s:(\s*)<([^<>\s]*)>(.*)$" % kw, arg, re.I)
        if not m:
            return None
        if m.group(1):
            self.srv.violation(self, "space after %s" % kw)
        params = m.group(3).split()
        return m.group(2), params

    async def do_mail(self, arg):
        p = self.parse_path(arg, "FROM")
        addr = p[0] if p else arg
        await self.before_reply("MAIL", (addr,))
        if not self.helo:
            self.srv.violation(self, "MAIL before EHLO/HELO")
            self.reply(503, "Send EHLO first", enh="5.5.1")
            return 503
        if self.txn:
            self.reply(503, "Nested MAIL command", enh="5.5.1")
            return 503
        if p is None:
            self.reply(501, "Syntax: MAIL FROM:<address>", enh="5.5.4")
            return 501
        if addr and not valid_addr(addr):
            self.reply(501, "Bad sender address syntax", enh="5.1.7")
            return 501
        for prm in p[1]:
            k, _, v = prm.partition("=")
            k = k.upper()
            if k == "SIZE" and self.esmtp and v.isdigit():
                if self.args.size and int(v) > self.args.size:
                    self.reply(552, "Message size exceeds fixed limit",
                               enh="5.3.4")
                    return 552
            elif (k == "BODY" and self.esmtp and
                  (v.upper() == "7BIT" or
                   (v.upper() == "8BITMIME" and self.args.eightbit))):
                pass
            elif k == "SMTPUTF8" and self.esmtp and self.args.smtputf8 \
                    and not v:
                pass
            elif k in ("RET", "ENVID") and self.esmtp and self.args.dsn \
                    and v:
                pass
            else:
                self.srv.violation(self, "MAIL parameter %s not offered"
                                   % prm)
                self.reply(555, "Unsupported parameter %s" % prm,
                           enh="5.5.4")
                return 555
        if not ascii_only(addr) and \
                not any(x.upper() == "SMTPUTF8" for x in p[1]):
            self.srv.violation(self, "non-ASCII sender without SMTPUTF8")
            self.reply(553, "Non-ASCII address needs SMTPUTF8", enh="5.6.7")
            return 553
        code = self.send("MAIL", (addr,), 250, "Ok", enh="2.1.0")
        if 200 <= code < 300:
            self.txn = Txn(addr, p[1])
            self.txn.mail_line = self.line
            if self.batch >= 2:
                self.txn.pipelined = True
        return code

    async def do_rcpt(self, arg):
        p = self.parse_path(arg, "TO")
        addr = p[0] if p else arg
        await self.before_reply("RCPT", (addr,))
        if not self.txn:
            self.reply(503, "Need MAIL command", enh="5.5.1")
            return 503
        if p is None:
            self.reply(501, "Syntax: RCPT TO:<address>", enh="5.5.4")
            return 501
        if not addr or not (valid_addr(addr) or
                            addr.lower() == "postmaster"):
            self.reply(501, "Bad recipient address syntax", enh="5.1.3")
            return 501
        bad = [x for x in p[1] if not (
            self.args.dsn and self.esmtp and "=" in x and
            x.split("=", 1)[0].upper() in ("NOTIFY", "ORCPT"))]
        if bad:
            self.srv.violation(self, "RCPT parameters %s not offered"
                               % " ".join(bad))
            self.reply(555, "Unsupported parameter", enh="5.5.4")
            return 555
        if not ascii_only(addr) and not self.txn.utf8:
            self.srv.violation(self, "non-ASCII recipient without SMTPUTF8")
            self.reply(553, "Non-ASCII address needs SMTPUTF8", enh="5.6.7")
            return 553
        if len(self.txn.rcpts) >= self.args.max_rcpts:
            self.reply(452, "Too many recipients", enh="4.5.3")
            return 452
        code = self.send("RCPT", (addr,), 250, "Ok", enh="2.1.5")
        if 200 <= code < 300:
            self.txn.rcpts.append(addr)
            self.txn.rcpt_params.append(p[1])
            self.txn.rcpt_lines.append(self.line)
        return code

    async def do_data(self, arg):
        txn = self.txn
        subj = txn.rcpts if txn else ()
        await self.before_reply("DATA", subj)
        if arg:
            self.reply(501, "Syntax: DATA", enh="5.5.4")
            return 501
        if not txn:
            self.reply(503, "Need MAIL command", enh="5.5.1")
            return 503
        if txn.chunks is not None:
            self.reply(503, "DATA after BDAT", enh="5.5.1")
            return 503
        if not txn.rcpts:
            self.reply(554, "No valid recipients", enh="5.5.1")
            return 554
        code = self.send("DATA", subj, 354, "End data with <CR><LF>.<CR><LF>")
        if code >= 400:
            if code == 421:
                return code
            self.txn = None
            return code
        cut = self.srv.rule("disconnect", "BODY", subj)
        await self.flush()
        self.batch = 0
        raw = await self.read_dot(cut.nbytes if cut else None)
        self.batch += 1			# the content counts as a command
        self.note_pipelining()
        if re.search(rb"(?<!\r)\n", raw) or re.search(rb"\r(?!\n)", raw):
            self.srv.violation(self, "bare LF or CR in DATA")
        data = re.sub(rb"(?:^|(?<=\r\n))\.", b"", raw)
        if any(b > 127 for b in data) and not txn.body8:
            self.srv.violation(self, "8-bit DATA without BODY=8BITMIME")
        return await self.finish(data, "data")

    async def read_dot(self, cut):
        """The content after 354 up to CRLF.CRLF (raw, stuffed, with the
        last line's CRLF, without the ".CRLF")."""
        scan = 0
        while True:
            b = self.buf
            if b.startswith(b".\r\n"):
                end, stop = 0, 3
            else:
                i = b.find(b"\r\n.\r\n", scan)
                end, stop = (i + 2, i + 5) if i >= 0 else (None, None)
            if cut is not None and (end is None or end > cut):
                if len(b) >= cut:
                    self.cut(cut)
            if end is not None:
                raw = bytes(b[:end])
                del b[:stop]
                return raw
            scan = max(0, len(b) - 4)
            await self.fill()

    def cut(self, n):
        self.srv.bump("disconnects")
        self.srv.log(self.cid, "!", "disconnect after %d body bytes (rule)"
                     % n)
        self.abort()
        raise Closed()

    async def finish(self, data, transport):
        """End of message: DOT rules, size check, record, final reply."""
        txn = self.txn
        self.txn = None
        await self.before_reply("DOT", txn.rcpts)
        if self.args.size and len(data) > self.args.size:
            self.reply(552, "Message size exceeds fixed limit", enh="5.3.4")
            return 552
        r = self.srv.rule("reply", "DOT", txn.rcpts)
        if r:
            self.reply(r.code, *r.lines)
            if r.code < 400:
                self.srv.record(self, txn, data, transport)
            return r.code
        n = self.srv.record(self, txn, data, transport)
        self.reply(250, "Ok: queued as %d" % n, enh="2.0.0")
        return 250

    async def do_bdat(self, arg):
        m = re.match(r"^(\d+)(?:\s+(LAST))?\s*$", arg, re.I)
        if not m:
            self.reply(501, "Syntax: BDAT size [LAST]", enh="5.5.4")
            return 501
        size, last = int(m.group(1)), bool(m.group(2))
        txn = self.txn
        subj = txn.rcpts if txn else ()
        if not self.args.chunking:
            self.srv.violation(self, "BDAT without CHUNKING")
        if txn is not None and txn.chunks is None:
            r = self.srv.rule("disconnect", "BODY", subj)
            txn.cut_at = r.nbytes if r else None
            txn.chunks = bytearray()
            txn.seen = 0
        left = None		# bytes of this chunk before a BODY cut
        if txn is not None and txn.cut_at is not None:
            left = txn.cut_at - txn.seen
        while len(self.buf) < size:
            if left is not None and len(self.buf) >= left:
                self.cut(txn.cut_at)
            await self.fill()
        if left is not None and size >= left:
            self.cut(txn.cut_at)
        if txn is not None:
            txn.seen += size
        chunk = bytes(self.buf[:size])
        del self.buf[:size]
        await self.before_reply("BDAT", subj)
        if not self.args.chunking:
            self.reply(502, "Command not implemented", enh="5.5.1")
            return 502
        if not txn or not txn.rcpts:
            self.txn = None
            self.reply(503, "Need MAIL and RCPT first", enh="5.5.1")
            return 503
        if txn.failed:
            self.reply(503, "Transaction failed, RSET", enh="5.5.1")
            return 503
        txn.chunks += chunk
        if self.args.size and len(txn.chunks) > self.args.size:
            txn.failed = True
            self.reply(552, "Message size exceeds fixed limit", enh="5.3.4")
            if last:
                self.txn = None
            return 552
        r = self.srv.rule("reply", "BDAT", subj)
        if r:
            self.reply(r.code, *r.lines)
            if r.code >= 400:
                self.txn = None
                return r.code
            if not last:
                return r.code
            self.txn = None
            self.srv.record(self, txn, bytes(txn.chunks), "bdat")
            return r.code
        if not last:
            self.reply(250, "%d octets received" % size, enh="2.0.0")
            return 250
        return await self.finish(bytes(txn.chunks), "bdat")


def ascii_only(a):
    return all(ord(ch) < 128 for ch in a)


def valid_addr(a):
    return re.match(r"^[^@\s<>]+@[^@\s<>]+$", a) is not None


def parse_hostport(spec):
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", spec) or \
        re.match(r"^([^:]*):(\d+)$", spec)
    if not m:
        raise Usage("--listen %r: want HOST:PORT or [V6]:PORT" % spec)
    return m.group(1) or "127.0.0.1", int(m.group(2))


def atomic_write(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="dd_testserver.py",
        description="A scriptable SMTP server for deliverd's tests "
        "(rule syntax: see the module docstring, pydoc dd_testserver).")
    ap.add_argument("--listen", action="append", metavar="HOST:PORT",
                    help="address to listen on (repeatable; port 0: any)")
    ap.add_argument("--chunking", dest="chunking", action="store_true",
                    default=True, help="offer CHUNKING (default)")
    ap.add_argument("--no-chunking", dest="chunking", action="store_false",
                    help="do not offer CHUNKING (BDAT gets 502)")
    ap.add_argument("--no-pipelining", dest="pipelining",
                    action="store_false", default=True,
                    help="do not offer PIPELINING")
    ap.add_argument("--no-8bitmime", dest="eightbit", action="store_false",
                    default=True, help="do not offer 8BITMIME")
    ap.add_argument("--dsn", action="store_true",
                    help="offer DSN, accept RET, ENVID, NOTIFY, ORCPT")
    ap.add_argument("--smtputf8", action="store_true",
                    help="offer SMTPUTF8 and accept it on MAIL")
    ap.add_argument("--size", type=int, default=0, metavar="N",
                    help="offer SIZE N and refuse bigger messages (0: none)")
    ap.add_argument("--max-rcpts", type=int, default=1000, metavar="N",
                    help="recipients per message, then 452 (default 1000)")
    ap.add_argument("--banner-delay", type=float, default=0, metavar="S",
                    help="wait S seconds before the greeting")
    ap.add_argument("--reply", action="append", metavar="RULE",
                    help="'VERB[glob]#count:CODE TEXT' override a reply")
    ap.add_argument("--delay", action="append", metavar="RULE",
                    help="'VERB[glob]#count:SECONDS' wait before replying")
    ap.add_argument("--disconnect", action="append", metavar="RULE",
                    help="'VERB[glob]#count' or 'BODY:N' close instead")
    ap.add_argument("--record", metavar="DIR",
                    help="write accepted messages as DIR/<n>.eml + .json")
    ap.add_argument("--stats", metavar="FILE", help="keep counters here")
    ap.add_argument("--ready-file", metavar="FILE",
                    help="written once listening")
    ap.add_argument("--transcript", metavar="FILE",
                    help="append the SMTP conversation here")
    ap.add_argument("--tls-cert", metavar="PEM",
                    help="offer STARTTLS with this certificate (chain)")
    ap.add_argument("--tls-key", metavar="PEM",
                    help="the certificate's private key")
    ap.add_argument("--tls-fail-handshake", action="store_true",
                    help="close after STARTTLS's 220 when the handshake "
                    "starts")
    ap.add_argument("--tls-stall-handshake", action="store_true",
                    help="after STARTTLS's 220, read the handshake and "
                    "never answer")
    ap.add_argument("--hostname", default="testserver.invalid")
    ap.add_argument("--idle-timeout", type=float, default=300,
                    metavar="S", help="close a silent client (default 300)")
    ap.add_argument("--lifetime", type=float, default=0, metavar="S",
                    help="exit after S seconds (default 0: never)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="the conversation on stderr")
    args = ap.parse_args(argv)
    if not args.listen:
        args.listen = ["127.0.0.1:2525"]
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    return args


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        for spec in args.listen:
            parse_hostport(spec)
        srv = Server(args)
    except Usage as e:
        print("dd_testserver: %s" % e, file=sys.stderr)
        return 2
    try:
        asyncio.run(srv.main())
    except OSError as e:
        print("dd_testserver: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
