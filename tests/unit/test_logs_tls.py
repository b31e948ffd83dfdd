"""Access-log lines of TLS connections: HAProxy's line for a failed
handshake, and the "~" of %ft read back by farm logs."""

from __future__ import annotations

import json
import time

from farm import logs, logtail


def test_handshake_failure_line_as_haproxy_prints_it():
    t = time.mktime((2026, 3, 4, 10, 0, 0, 0, 0, -1)) + 0.1235
    line = logs.connection_error_line("httplog", "127.0.0.1", 56842, t, "www", "2",
                                      "SSL handshake failure")
    assert line == "127.0.0.1:56842 [04/Mar/2026:10:00:00.123] www/2: SSL handshake failure"
    assert logs.connection_error_line("tcplog", "::1", 1, t, "www", "https", "x") == \
        "::1:1 [04/Mar/2026:10:00:00.123] www/https: x"
    rec = json.loads(logs.connection_error_line("json", "127.0.0.1", 5, t, "www", "2", "m"))
    assert rec["frontend"] == "www" and rec["bind"] == "2" and rec["message"] == "m"
    assert rec["accept_date"].startswith("2026-03-04T10:00:00.123")


def test_farm_logs_filters_tls_lines_by_frontend_name():
    line = ('127.0.0.1:46538 [04/Dec/2026:15:30:47.026] www~ app/s1 0/0/0/1/1 200 81 - - ---- '
            '1/1/0/0/0 0/0 "GET / HTTP/1.1"')
    e = logtail.parse_line(line)
    assert e.fields["frontend"] == "www~"               # as written (halog reads the ~)
    assert logtail.Filter(frontend="www").match(e)
    assert not logtail.Filter(frontend="api").match(e)
