# SPDX-License-Identifier: GPL-2.0
"""Integration tests of the parts together, as on the Internet: a domain
resolved to its MX host by a DNS server (dnsmasq), STARTTLS to that host
with the certificate checked against the MX name, and the message signed
with DKIM on the way in and verified by dkimpy on arrival.
"""

import json
import os

from dd_integration import check, crlf, inject, test
from dd_it_dkim import Key, keys_file, must_verify
from dd_it_dns import Dnsmasq, HostServer
from dd_it_tls import certs, sendfile_io, try_ktls

MSG = crlf("From: Joe <joe@sign.test>\nTo: suzie@dst.test\n"
           "Subject: over the Internet\nMessage-ID: <i1@sign.test>\n\n"
           "One line.\n.a dot line\n")


def mx_tls_setup(ctx, policy, cert="good", **settings):
    """dst.test's MX is mx.tls.test at 127.0.0.2, a test server offering
    STARTTLS with `cert`; deliverd resolves it through dnsmasq."""
    c = certs(ctx)
    dns = Dnsmasq(ctx, ["--local-ttl=60", "--mx-host=dst.test,mx.tls.test,10",
                        "--host-record=mx.tls.test,127.0.0.2"])
    srv = HostServer(ctx, "127.0.0.2", None, "mx",
                     args=["--tls-cert", c[cert][0], "--tls-key", c[cert][1]])
    k = Key(ctx, "sign.test", "rsa1", "rsa-sha256")
    st = {"dns_servers": dns.server, "mx_port": srv.port, "dns_timeout": 1,
          "tls_policy": policy, "tls_ca_file": c["ca"],
          "dkim_keys_file": keys_file(ctx, [k]), "retry_min": 1,
          "retry_max": 2, "dest_backoff": 1}
    st.update(settings)
    d = ctx.daemon(st, routes={})
    return d, srv, k


@test("internet_mx_tls_dkim", "internet: MX from DNS, STARTTLS verified "
      "against the MX name, DKIM verified by dkimpy; log has mx, tls, "
      "tls_verify=verified, body_io by kernel TLS where possible")
def t_internet(ctx):
    ktls = try_ktls()
    d, srv, k = mx_tls_setup(ctx, "verify")
    qid = inject(d.addr, "joe@sign.test", ["suzie@dst.test"], MSG)
    e = d.wait_dlog(lambda e: e.get("qid") == qid and
                    e.get("status") == "delivered", 1, 60)[0]
    check(e.get("mx") == "mx.tls.test", "mx %r" % e.get("mx"))
    check(e.get("host", "").startswith("127.0.0.2:"), "host %r"
          % e.get("host"))
    check(e.get("tls_verify") == "verified", "tls_verify %r: the "
          "certificate names mx.tls.test and its CA is in tls_ca_file"
          % e.get("tls_verify"))
    (meta, eml), = srv.wait_messages(1, 30)
    check(meta.get("tls") == e.get("tls") and meta.get("tls"),
          "server saw tls %r, log says %r" % (meta.get("tls"), e.get("tls")))
    want = sendfile_io(True) if ktls else "buffered"
    check(e.get("body_io") == want, "body_io %r, want %s (kernel TLS %s)"
          % (e.get("body_io"), want, "possible" if ktls else "impossible"))
    must_verify(eml, [k], 1)
    check(eml.endswith(MSG), "the message arrived changed")
    ctx.diag("dlog: " + json.dumps(e))


@test("internet_mx_wrong_name", "internet: verify + the MX host's "
      "certificate not naming mx.tls.test gets deferred with the "
      "verification error, nothing delivered")
def t_internet_wrong(ctx):
    c = certs(ctx)
    # "self" is self-signed for localhost: neither the name nor the CA fit
    check(os.path.exists(c["self"][0]), "no self-signed certificate")
    d, srv, k = mx_tls_setup(ctx, "verify", cert="self")
    qid = inject(d.addr, "joe@sign.test", ["suzie@dst.test"], MSG)
    e = d.wait_dlog(lambda e: e.get("qid") == qid and
                    e.get("status") == "deferred", 1, 60)[0]
    check(e.get("enh", "").startswith("4.7."), "enh %r, want 4.7.x"
          % e.get("enh"))
    check("certificate" in e.get("reply", "").lower() or
          "verif" in e.get("reply", "").lower(),
          "reply %r does not say why" % e.get("reply"))
    check(srv.count() == 0, "%d messages delivered to a host that failed "
          "verification" % srv.count())
