# SPDX-License-Identifier: GPL-2.0
"""deliverd integration tests: DSN (RFC 3461/3464) and SMTPUTF8 (RFC 6531).

Loaded by dd_integration.py (load_test_modules); the tests register with
its @test and use its Daemon, TestServer and helpers.  The destination is
dd_testserver.py, with --dsn / --smtputf8 to offer those extensions; it
records the MAIL and RCPT lines as received, so what deliverd passes on
is checked byte for byte.  Postfix's smtp-sink is the real peer that
takes the DSN parameters (its dump shows them as X-Mail-Args and
X-Rcpt-Args).
"""

import glob
import os
import re
import subprocess
import time

from dd_integration import (test, check, crlf, RawSMTP, TestServer, Skip,
                            QID_RE, text_of, parse_dsn, wait_until,
                            free_port, _connectable)


def inject_raw(addr, sender, rcpts, data, mail_params="", ehlo="client.test"):
    """One message over SMTP with parameters.  rcpts: [(addr, params)].
    Returns the queue id; any reply other than the expected fails."""
    c = RawSMTP(addr)
    try:
        r = c.reply()
        check(r[0] == 220, "greeting: %s" % text_of(r))
        r = c.cmd("EHLO " + ehlo)
        check(r[0] == 250, "EHLO: %s" % text_of(r))
        r = c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params))
        check(r[0] == 250, "MAIL: %s" % text_of(r))
        for rc, params in rcpts:
            r = c.cmd("RCPT TO:<%s>%s" % (rc, params))
            check(r[0] == 250, "RCPT %s: %s" % (rc, text_of(r)))
        r = c.cmd("DATA")
        check(r[0] == 354, "DATA: %s" % text_of(r))
        body = re.sub(rb"(?:^|(?<=\r\n))\.", b"..", data)
        c.send(body + b".\r\n")
        r = c.reply()
        check(r[0] == 250, "end of DATA: %s" % text_of(r))
        m = QID_RE.search(" ".join(r[1]))
        check(m, "no queue id in %r" % text_of(r))
        try:
            c.cmd("QUIT")
        except Exception:
            pass
        return m.group(1)
    finally:
        c.close()


def setup(ctx, dest_args, settings=None, extra_routes=None):
    s = ctx.server(*dest_args, name="dest")
    b = ctx.server(name="bounces")
    routes = {"dst.test": s, "sender.test": b}
    routes.update(extra_routes or {})
    d = ctx.daemon(settings or {}, routes=routes)
    return d, s, b


def mail_line_re(sender, tail):
    """MAIL as deliverd sends it to dd_testserver (which offers SIZE)."""
    return re.compile(r"^MAIL FROM:<%s> SIZE=\d+%s$" % (re.escape(sender),
                                                      re.escape(tail)))


MSG = crlf("From: alice@sender.test\nSubject: dsn test\n"
           "Message-ID: <dsn@sender.test>\n\nthe body line BODYMARK\n")

DSN_RCPTS = [("x@dst.test", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2Bo@dst.test"),
             ("y@dst.test", " NOTIFY=NEVER"),
             ("z@dst.test", "")]


def no_more(srv, n, wait=2):
    """srv still has n messages after a pause: for what must not come."""
    time.sleep(wait)
    check(srv.count() == n, "%s has %d messages, want %d: %r" % (
        srv.name, srv.count(), n, [m for m, _ in srv.messages()]))


@test("dsn_ehlo", "dsn: the listener offers DSN and SMTPUTF8")
def t_dsn_ehlo(ctx):
    d = ctx.daemon(routes={})
    c = RawSMTP(d.addr)
    try:
        c.reply()
        code, lines = c.cmd("EHLO client.test")
        check(code == 250, "EHLO %d" % code)
        for want in ("DSN", "SMTPUTF8"):
            check(want in lines, "EHLO lacks %s: %r" % (want, lines))
    finally:
        c.close()


@test("dsn_params_forwarded", "dsn: RET, ENVID, NOTIFY, ORCPT reach a DSN "
      "server byte-exact; no relayed notice from us")
def t_dsn_fwd(ctx):
    d, s, b = setup(ctx, ["--dsn"])
    inject_raw(d.addr, "alice@sender.test", DSN_RCPTS, MSG,
               " RET=HDRS ENVID=QQ+2Bid+3D1")
    (meta, eml), = s.wait_messages(1, 20)
    check(mail_line_re("alice@sender.test", " RET=HDRS ENVID=QQ+2Bid+3D1")
          .match(meta["mail_line"]), "MAIL line %r" % meta["mail_line"])
    want = ["RCPT TO:<x@dst.test> NOTIFY=SUCCESS,FAILURE "
            "ORCPT=rfc822;x+2Bo@dst.test",
            "RCPT TO:<y@dst.test> NOTIFY=NEVER",
            "RCPT TO:<z@dst.test>"]
    check(meta["rcpt_lines"] == want, "RCPT lines %r, want %r"
          % (meta["rcpt_lines"], want))
    check(s.stats().get("violations") == 0, "violations at the server: %r"
          % s.stats().get("violation_list"))
    d.wait_dlog(lambda e: e.get("status") == "delivered", 3, 20)
    # the DSN server takes over: NOTIFY=SUCCESS is not ours to answer
    no_more(b, 0)
    check("success notice" not in d.log(), "a success notice was sent")


@test("dsn_params_not_offered", "dsn: no DSN at the server: no parameter "
      "sent; NOTIFY=SUCCESS gets a 'relayed' DSN with ENVID and ORCPT")
def t_dsn_nodsn(ctx):
    d, s, b = setup(ctx, [])
    qid = inject_raw(d.addr, "alice@sender.test", DSN_RCPTS, MSG,
                     " RET=FULL ENVID=QQ+2Bid+3D1")
    (meta, eml), = s.wait_messages(1, 20)
    check(mail_line_re("alice@sender.test", "").match(meta["mail_line"]),
          "MAIL line %r" % meta["mail_line"])
    check(meta["rcpt_lines"] == ["RCPT TO:<%s>" % r for r, _ in DSN_RCPTS],
          "RCPT lines %r" % meta["rcpt_lines"])
    check(s.stats().get("violations") == 0, "violations: %r"
          % s.stats().get("violation_list"))
    (bm, beml), = b.wait_messages(1, 30)
    check(bm["mail_from"] == "" and bm["rcpts"] == ["alice@sender.test"],
          "notice envelope %r -> %r" % (bm["mail_from"], bm["rcpts"]))
    msg, st = parse_dsn(beml)
    check(st, "no message/delivery-status part in %r" % beml[:500])
    check(msg["Subject"] == "Successful Mail Delivery Report",
          "Subject %r" % msg["Subject"])
    check(re.search(r"^Original-Envelope-Id: QQ\+id=1$", st, re.M),
          "no Original-Envelope-Id in %r" % st)
    check(re.search(r"^Original-Recipient: rfc822; x\+o@dst\.test$", st,
                    re.M), "no Original-Recipient in %r" % st)
    check(re.search(r"^Final-Recipient: rfc822; x@dst\.test$", st, re.M),
          "no Final-Recipient x@ in %r" % st)
    check(re.search(r"^Action: relayed$", st, re.M) and
          re.search(r"^Status: 2\.0\.0$", st, re.M),
          "not Action: relayed / Status: 2.0.0: %r" % st)
    # only x asked for it: not y (NEVER), not z (nothing)
    check(st.count("Final-Recipient") == 1, "recipients: %r" % st)
    # RET applies to failures only: headers, not the body
    check(b"BODYMARK" not in beml and b"Message-ID: <dsn@sender.test>" in
          beml, "a success notice must carry the headers only")
    check("%s: success notice to <alice@sender.test> for 1 recipient" % qid
          in d.log(), "no log line for the notice")
    no_more(b, 1)


@test("dsn_notify_never", "dsn: 550 for NOTIFY=NEVER, NOTIFY=SUCCESS,DELAY "
      "and no NOTIFY: only the last gets a bounce")
def t_dsn_never(ctx):
    d, s, b = setup(ctx, ["--reply", "RCPT[fail*]:550 5.1.1 no such user"])
    qid = inject_raw(d.addr, "alice@sender.test",
                     [("fail1@dst.test", " NOTIFY=NEVER"),
                      ("fail2@dst.test", " NOTIFY=SUCCESS,DELAY"),
                      ("fail3@dst.test", "")], MSG)
    (bm, beml), = b.wait_messages(1, 30)
    msg, st = parse_dsn(beml)
    got = re.findall(r"^Final-Recipient: rfc822; (\S+)$", st, re.M)
    check(got == ["fail3@dst.test"], "bounce for %r, want fail3 only" % got)
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    check(sorted(e["rcpt"] for e in ents if e.get("status") == "bounced") ==
          ["fail1@dst.test", "fail2@dst.test", "fail3@dst.test"],
          "delivery log: %r" % ents)
    for r in ("fail1", "fail2"):
        check("no bounce for <%s@dst.test>" % r in d.log(),
              "no log line saying %s gets no bounce" % r)
    no_more(b, 1)
    check(s.count() == 0, "delivered despite 550")


@test("dsn_ret_full", "dsn: RET=FULL bounce carries the whole message as "
      "message/rfc822, with Original-Envelope-Id and Original-Recipient")
def t_dsn_full(ctx):
    d, s, b = setup(ctx, ["--reply", "RCPT:550 5.1.1 no such user"])
    inject_raw(d.addr, "alice@sender.test",
               [("u@dst.test", " ORCPT=rfc822;orig+2Bu@dst.test")], MSG,
               " RET=FULL ENVID=env-1")
    (bm, beml), = b.wait_messages(1, 30)
    msg, st = parse_dsn(beml)
    check(re.search(r"^Original-Envelope-Id: env-1$", st, re.M),
          "no Original-Envelope-Id in %r" % st)
    check(re.search(r"^Original-Recipient: rfc822; orig\+u@dst\.test$", st,
                    re.M), "no Original-Recipient in %r" % st)
    parts = [p for p in msg.walk() if p.get_content_type() ==
             "message/rfc822"]
    check(len(parts) == 1, "no message/rfc822 part: %r" %
          [p.get_content_type() for p in msg.walk()])
    check(beml.find(MSG) > 0, "the original (headers and body) is not in "
          "the bounce byte for byte")
    check(b"text/rfc822-headers" not in beml, "headers part as well")


@test("dsn_ret_full_big", "dsn: RET=FULL of a message over 1 MiB bounces "
      "with its headers only, and says so")
def t_dsn_full_big(ctx):
    d, s, b = setup(ctx, ["--reply", "RCPT:550 5.1.1 no such user"])
    big = MSG + (b"x" * 998 + b"\r\n") * 1100
    inject_raw(d.addr, "alice@sender.test", [("u@dst.test", "")], big,
               " RET=FULL")
    (bm, beml), = b.wait_messages(1, 30)
    check(len(beml) < 100000, "bounce of %d bytes" % len(beml))
    check(b"text/rfc822-headers" in beml and b"message/rfc822" not in beml,
          "not headers only")
    flat = re.sub(rb"\r\n", b" ", beml)
    check(b"larger than 1048576 bytes, so only its headers are" in flat,
          "the text does not say why")


def utf8_msg():
    return crlf("From: j\u00f6rg@sender.test\nSubject: gr\u00fc\u00dfe\n\n"
                "h\u00e9llo\n")


@test("smtputf8_delivered", "smtputf8: UTF-8 sender, local part and domain "
      "reach an SMTPUTF8 server with SMTPUTF8 on MAIL; logged as UTF-8")
def t_utf8_ok(ctx):
    s = ctx.server("--smtputf8", name="dest")
    b = ctx.server(name="bounces")
    d = ctx.daemon({}, routes={"b\u00fccher.test": s, "dst.test": s,
                               "*": b})
    sender = "j\u00f6rg@sender.test"
    rc = ["\u7528\u6237@b\u00fccher.test", "ascii@dst.test"]
    qid = inject_raw(d.addr, sender, [(r, "") for r in rc], utf8_msg(),
                     " SMTPUTF8 BODY=8BITMIME")
    s.wait_messages(2, 20)
    d.wait_dlog(lambda e: e.get("status") == "delivered", 2, 20)
    got = sorted(r for m, _ in s.messages() for r in m["rcpts"])
    check(got == sorted(rc), "recipients %r, want %r" % (got, rc))
    for meta, eml in s.messages():
        check(mail_line_re(sender, " BODY=8BITMIME SMTPUTF8")
              .match(meta["mail_line"]), "MAIL line %r" % meta["mail_line"])
        check(eml.endswith(utf8_msg()), "body changed")
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    check(sorted(e["rcpt"] for e in ents) == sorted(rc) and
          all(e["sender"] == sender for e in ents),
          "delivery log (JSON) lost the UTF-8: %r" % ents)
    check(s.stats().get("violations") == 0, "violations: %r"
          % s.stats().get("violation_list"))
    check(b.count() == 0, "something went to the catch-all")


@test("smtputf8_not_offered", "smtputf8: a server without SMTPUTF8 gets "
      "nothing; the recipient bounces with 553 5.6.7")
def t_utf8_refused(ctx):
    d, s, b = setup(ctx, [])
    qid = inject_raw(d.addr, "alice@sender.test",
                     [("\u00fcser@dst.test", "")], utf8_msg(),
                     " SMTPUTF8")
    (bm, beml), = b.wait_messages(1, 30)
    msg, st = parse_dsn(beml)
    check(re.search(r"^Status: 5\.6\.7$", st, re.M), "status: %r" % st)
    check(re.search(r"^Final-Recipient: utf-8; \\x\{FC\}ser@dst\.test$", st,
                    re.M), "Final-Recipient: %r" % st)
    check("SMTPUTF8 required but not offered" in st, "diagnostic: %r" % st)
    ents = [e for e in d.dlog() if e.get("qid") == qid]
    check(ents and ents[-1]["status"] == "bounced" and
          ents[-1]["code"] == 553 and ents[-1]["enh"] == "5.6.7",
          "delivery log: %r" % ents)
    # an ASCII message with SMTPUTF8 cannot be downgraded either
    inject_raw(d.addr, "alice@sender.test", [("plain@dst.test", "")], MSG,
               " SMTPUTF8")
    b.wait_messages(2, 30)
    check(s.count() == 0 and s.stats().get("violations", 0) == 0,
          "the server got something: %r" % s.stats())


@test("dsn_bad_params", "dsn: malformed DSN and SMTPUTF8 parameters get "
      "their 501/553/555 replies")
def t_dsn_bad(ctx):
    d = ctx.daemon(routes={})
    c = RawSMTP(d.addr)
    try:
        c.reply()
        c.cmd("EHLO client.test")
        for line, want in [
                ("MAIL FROM:<a@b.test> RET=BODY",
                 "501 5.5.4 RET must be FULL or HDRS"),
                ("MAIL FROM:<a@b.test> ENVID=" + "e" * 101,
                 "501 5.5.4 ENVID longer than 100 characters"),
                ("MAIL FROM:<a@b.test> ENVID=a+0",
                 "501 5.5.4 ENVID is not valid xtext"),
                ("MAIL FROM:<a@b.test> ENVID=a ENVID=b",
                 "501 5.5.4 Duplicate ENVID parameter"),
                ("MAIL FROM:<j\u00f6rg@b.test>",
                 "553 5.6.7 Non-ASCII sender address requires SMTPUTF8"),
                ("MAIL FROM:<a@b.test> SMTPUTF8=1",
                 "501 5.5.4 SMTPUTF8 takes no value"),
                ("MAIL FROM:<a@b.test>", "250 2.1.0 Ok"),
                ("RCPT TO:<x@y.test> NOTIFY=NEVER,FAILURE",
                 "501 5.5.4 NOTIFY=NEVER cannot be combined with other "
                 "values"),
                ("RCPT TO:<x@y.test> NOTIFY=DELAY,DELAY",
                 "501 5.5.4 NOTIFY lists a value twice"),
                ("RCPT TO:<x@y.test> NOTIFY=ALWAYS",
                 "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, "
                 "FAILURE, DELAY"),
                ("RCPT TO:<x@y.test> ORCPT=x@y.test",
                 "501 5.5.4 ORCPT must be addr-type;xtext"),
                ("RCPT TO:<x@y.test> ORCPT=rfc822;" + "o" * 494,
                 "501 5.5.4 ORCPT longer than 500 characters"),
                ("RCPT TO:<\u00fc@y.test>",
                 "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8"),
                ("RCPT TO:<x@y.test> NOTIFY=FAILURE ORCPT=rfc822;x@y.test",
                 "250 2.1.5 Ok")]:
            got = text_of(c.cmd(line))
            check(got == want, "%r: got %r, want %r" % (line[:60], got, want))
        c.cmd("RSET")
        c.send(b"MAIL FROM:<a@b.test> SMTPUTF8\r\n")
        check(text_of(c.reply()) == "250 2.1.0 Ok", "MAIL SMTPUTF8")
        c.send(b"RCPT TO:<bad\xff@y.test>\r\n")
        got = text_of(c.reply())
        check(got == "501 5.1.3 Bad recipient address syntax",
              "invalid UTF-8: %r" % got)
    finally:
        c.close()


@test("dsn_restart", "dsn: DSN parameters and SMTPUTF8 survive a restart "
      "of the daemon (spool recovery) and still go out")
def t_dsn_restart(ctx):
    port = free_port()
    d = ctx.daemon({"retry_min": 1, "retry_max": 1, "dest_backoff": 1},
                   routes={"dst.test": port})
    inject_raw(d.addr, "j\u00f6rg@sender.test",
               [("x@dst.test", " NOTIFY=DELAY ORCPT=rfc822;x@dst.test")],
               utf8_msg(), " SMTPUTF8 RET=FULL ENVID=keep+2Bme")
    d.wait_dlog(lambda e: e.get("status") == "deferred", 1, 20)
    d.stop()
    s = TestServer(ctx, ["--dsn", "--smtputf8"], port=port, name="dest")
    d.start()
    (meta, eml), = s.wait_messages(1, 30)
    check(mail_line_re("j\u00f6rg@sender.test",
                       " SMTPUTF8 RET=FULL ENVID=keep+2Bme")
          .match(meta["mail_line"]), "MAIL line %r" % meta["mail_line"])
    check(meta["rcpt_lines"] == ["RCPT TO:<x@dst.test> NOTIFY=DELAY "
                                 "ORCPT=rfc822;x@dst.test"],
          "RCPT lines %r" % meta["rcpt_lines"])


@test("dsn_smtp_sink", "dsn: Postfix smtp-sink (a real server offering "
      "DSN) accepts the parameters as sent")
def t_dsn_sink(ctx):
    if not os.path.exists("/usr/sbin/smtp-sink"):
        raise Skip("smtp-sink not installed")
    port = free_port()
    dump = os.path.join(ctx.tmp, "dump")
    os.makedirs(dump)
    os.chmod(dump, 0o777)
    os.chmod(ctx.tmp, 0o755)
    sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-d",
                             dump + "/m.", "127.0.0.1:%d" % port, "10"],
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
    b = ctx.server(name="bounces")
    d = ctx.daemon(routes={"sink.test": port, "sender.test": b})
    inject_raw(d.addr, "alice@sender.test",
               [("r@sink.test", " NOTIFY=SUCCESS,FAILURE "
                 "ORCPT=rfc822;r+2Bx@sink.test")], MSG,
               " RET=HDRS ENVID=sink+2B1")
    d.wait_dlog(lambda e: e.get("status") == "delivered", 1, 20)
    files = wait_until(lambda: glob.glob(dump + "/m.*") or None, 10,
                       "the smtp-sink dump file")
    with open(files[0], "rb") as f:
        dumped = f.read()
    check(re.search(rb"^X-Mail-Args: <alice@sender\.test> RET=HDRS "
                    rb"ENVID=sink\+2B1\r?$", dumped, re.M),
          "X-Mail-Args: %r" % dumped[:400])
    check(re.search(rb"^X-Rcpt-Args: <r@sink\.test> NOTIFY=SUCCESS,FAILURE "
                    rb"ORCPT=rfc822;r\+2Bx@sink\.test\r?$", dumped, re.M),
          "X-Rcpt-Args: %r" % dumped[:400])
    no_more(b, 0, wait=1)


@test("dsn_submit", "dsn: deliverctl submit -N, -R and -V (sendmail) reach "
      "a DSN server as NOTIFY, RET and ENVID (xtext); bad -R is a usage "
      "error, bad -N refused by the daemon")
def t_dsn_submit(ctx):
    d, s, b = setup(ctx, ["--dsn"])
    d.ctl_ok("submit", "-f", "alice@sender.test", "-N", "success,failure",
             "-R", "full", "-V", "id 1+x=y", "bob@dst.test",
             input="Subject: submit dsn\n\nbody\n")
    (meta, eml), = s.wait_messages(1, 20)
    check(mail_line_re("alice@sender.test", " RET=FULL ENVID=id+201+2Bx+3Dy")
          .match(meta["mail_line"]), "MAIL line %r" % meta["mail_line"])
    check(meta["rcpt_lines"] == ["RCPT TO:<bob@dst.test> "
                                 "NOTIFY=SUCCESS,FAILURE"],
          "RCPT lines %r" % meta["rcpt_lines"])
    p = d.ctl("submit", "-f", "alice@sender.test", "-R", "body",
              "bob@dst.test", input="Subject: x\n\nx\n")
    check(p.returncode == 64, "-R body: exit %d, want 64 (EX_USAGE)"
          % p.returncode)
    p = d.ctl("submit", "-f", "alice@sender.test", "-N", "never,success",
              "bob@dst.test", input="Subject: x\n\nx\n")
    err = p.stderr.decode(errors="replace")
    check(p.returncode != 0 and "NOTIFY=NEVER cannot be combined" in err,
          "-N never,success: exit %d, %r" % (p.returncode, err))
