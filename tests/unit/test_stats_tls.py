"""Days to expiry of TLS certificates in Prometheus and on the stats page."""

from __future__ import annotations

from dataclasses import dataclass

from farm import stats, stats_page


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
                       "not_after": "Jan  1 00:00:00 2027 GMT", "days": 30.5}
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
