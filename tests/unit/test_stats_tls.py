"""Days to expiry of TLS certificates, and the renewal state of those ACME
manages, in Prometheus and on the stats page."""

from __future__ import annotations

from dataclasses import dataclass

from farm import renewals, stats, stats_page


@dataclass
class Cert:                      # what farm/tlsconf.py's CertInfo offers
    path: str
    names: tuple
    not_after: str
    not_after_ts: float

    def days_left(self, now: float) -> float:
        return (self.not_after_ts - now) / 86400.0


NOW = 1_800_000_000.0
CERTS = [("www", Cert("/etc/farm/a.pem", ("a.example.com", "*.example.com"), "Jan  1 00:00:00 2027 GMT",
                      NOW + 86400 * 30.5)),
         ("www", Cert('/etc/farm/"b".pem', ("b.example.com",), "Jan  1 00:00:00 2026 GMT", NOW - 86400))]


def test_cert_rows():
    rows = stats.cert_rows(CERTS, NOW)
    assert rows[0] == {"frontend": "www", "file": "/etc/farm/a.pem",
                       "names": "a.example.com, *.example.com",
                       "not_after": "Jan  1 00:00:00 2027 GMT", "days": 30.5, "acme": None}
    assert rows[1]["days"] == -1.0


def test_prometheus_gauge():
    text = stats.prometheus([], [], stats.cert_rows(CERTS, NOW))
    assert "# TYPE farm_ssl_cert_expiry_days gauge\n" in text
    assert 'farm_ssl_cert_expiry_days{proxy="www",file="/etc/farm/a.pem"} 30.5\n' in text
    assert 'farm_ssl_cert_expiry_days{proxy="www",file="/etc/farm/\\"b\\".pem"} -1.0\n' in text
    assert "farm_ssl_cert_expiry_days" not in stats.prometheus([], [])


def test_stats_page_table():
    page = stats_page.html([], [], 0, False, "/", certs=stats.cert_rows(CERTS, NOW))
    assert 'id="certificates"' in page
    assert '<tr class="r-going-down">' not in page
    assert '<td class="l">/etc/farm/a.pem</td>' in page and "<td>30.5</td>" in page
    assert '<tr class="r-down"><td class="l">www</td><td class="l">/etc/farm/&quot;b&quot;.pem' in page
    soon = [("www", Cert("/c.pem", ("c",), "x", NOW + 86400 * 3))]
    assert '<tr class="r-going-down">' in stats_page.html([], [], 0, False, "/",
                                                          certs=stats.cert_rows(soon, NOW))
    assert 'id="certificates"' not in stats_page.html([], [], 0, False, "/")


ACME_CERTS = [("www", Cert("/var/lib/farm/acme/www.pem", ("www.example.com",), "Mar  1 00:00:00 2027 GMT",
                           NOW + 86400 * 80)),
              ("www", Cert("/etc/farm/manual.pem", ("old.example.com",), "Jan  1 00:00:00 2027 GMT",
                           NOW + 86400 * 30)),
              ("api", Cert("/var/lib/farm/acme/api.self-signed.pem", ("api.example.com",), "x",
                           NOW + 86400 * 7)),
              ("www", Cert("/etc/farm/www-client.pem", ("client",), "x", NOW + 86400))]   # a backend's
OK = renewals.Renewal("www", "le", "scheduled", 0, NOW + 86400 * 53, "",
                      ("/var/lib/farm/acme/www.pem", "/var/lib/farm/acme/www.self-signed.pem"))
FAILED = renewals.Renewal("api", "le", "failed", 3, NOW + 240.5,
                          "authorization of api.example.com is invalid: connection refused <b>",
                          ("/var/lib/farm/acme/api.pem", "/var/lib/farm/acme/api.self-signed.pem"))


def acme_rows(*records):
    return stats.cert_rows(ACME_CERTS, NOW, renewals={f: r for r in records for f in r.files})


def test_cert_rows_join_renewals_by_file():
    rows = acme_rows(OK, FAILED)
    assert [r["acme"] for r in rows] == [OK, None, FAILED, None]


def test_prometheus_renewal_gauges():
    text = stats.prometheus([], [], acme_rows(OK, FAILED), now=NOW)
    assert "# TYPE farm_acme_renewal_failures gauge\n" in text
    assert "# TYPE farm_acme_next_attempt_seconds gauge\n" in text
    assert "# HELP farm_acme_renewal_failures " in text and "# HELP farm_acme_next_attempt_seconds " in text
    assert 'farm_acme_renewal_failures{proxy="www"} 0\n' in text
    assert 'farm_acme_renewal_failures{proxy="api"} 3\n' in text
    assert f'farm_acme_next_attempt_seconds{{proxy="www"}} {86400.0 * 53!r}\n' in text
    assert 'farm_acme_next_attempt_seconds{proxy="api"} 240.5\n' in text
    assert text.count("farm_acme_renewal_failures{") == 2       # one per frontend, not per file
    # running or overdue: 0 seconds to wait
    running = renewals.Renewal("www", "le", "running", 1, 0.0, "x", OK.files)
    overdue = renewals.Renewal("api", "le", "scheduled", 0, NOW - 50, "", FAILED.files)
    text = stats.prometheus([], [], acme_rows(running, overdue), now=NOW)
    assert 'farm_acme_next_attempt_seconds{proxy="www"} 0.0\n' in text
    assert 'farm_acme_renewal_failures{proxy="www"} 1\n' in text
    assert 'farm_acme_next_attempt_seconds{proxy="api"} 0.0\n' in text
    # no ACME certificate: no family at all
    text = stats.prometheus([], [], acme_rows(), now=NOW)
    assert "farm_ssl_cert_expiry_days{" in text and "farm_acme" not in text


def test_renewal_text():
    assert stats_page.renewal_text(None) == "-"
    assert stats_page.renewal_text(OK) == "ACME: ok, next 2027-03-09 08:00 UTC"
    assert stats_page.renewal_text(FAILED) == (
        "ACME: failed 3\u00d7 (authorization of api.example.com is invalid: connection refused <b>), "
        "next try 2027-01-15 08:04 UTC")
    assert stats_page.renewal_text(renewals.Renewal("a", "le", "running", 0, 0.0, "", ())) == \
        "ACME: renewing now"
    assert stats_page.renewal_text(renewals.Renewal("a", "le", "running", 2, 0.0, "dns", ())) == \
        "ACME: renewing now, failed 2\u00d7 (dns) before"


def test_stats_page_renewal_column():
    page = stats_page.html([], [], 0, False, "/", certs=acme_rows(OK, FAILED))
    assert '<th class="l">Renewal</th>' in page
    body = page[page.index('id="certificates"'):]
    rows = body.split("<tr ")[1:]
    assert len(rows) == 4
    assert '<td class="l">ACME: ok, next 2027-03-09 08:00 UTC</td></tr>' in rows[0]
    assert rows[1].endswith('<td class="l">-</td></tr>') and rows[3].startswith('class="r-going-down"')
    # failing: the warning class, the count and the reason (escaped)
    assert ('<td class="l acme-failed">ACME: failed 3\u00d7 (authorization of api.example.com is '
            'invalid: connection refused &lt;b&gt;), next try 2027-01-15 08:04 UTC</td>') in rows[2]
    assert page.count("acme-failed") == 1 + page.count(".certs td.acme-failed")   # the CSS rule
    assert ".certs td.acme-failed{background:" in page
