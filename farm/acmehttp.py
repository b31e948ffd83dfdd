"""HTTPS to an ACME server: the `http` callable of farm.acme.AcmeClient.

Blocking (http.client), so only for the ACME child process of the master
(farm/acmerun.py). The server's certificate is verified against
`directory_ca` (a private server, Pebble in the tests) or the system's
trust store; a plain http:// directory is refused (RFC 8555 section 6.1
requires HTTPS)."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse

from farm import __version__
from farm.acme import Response

TIMEOUT = 30.0
MAX_BODY = 1 << 20          # an ACME answer is small; a certificate chain a few KB


class Https:
    """Requests to ACME servers, one connection per request (an order is
    a few dozen requests: keep-alive is not worth its states)."""

    def __init__(self, directory_ca: str | None = None, timeout: float = TIMEOUT):
        self.context = ssl.create_default_context(cafile=directory_ca)
        self.timeout = timeout

    def __call__(self, method: str, url: str, body: bytes | None, headers: dict) -> Response:
        """One request; OSError (ssl.SSLError, timeouts included) when the
        server cannot be reached or its certificate does not verify."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise OSError(f"not an https URL: {url}")
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=self.timeout,
                                           context=self.context)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, body=body,
                         headers={"User-Agent": f"farm/{__version__} (ACME client)", **headers})
            resp = conn.getresponse()
            data = resp.read(MAX_BODY + 1)
            if len(data) > MAX_BODY:
                raise OSError(f"{url}: answer larger than {MAX_BODY} bytes")
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        except http.client.HTTPException as e:
            raise OSError(f"{url}: {type(e).__name__} {e}") from None
        finally:
            conn.close()
