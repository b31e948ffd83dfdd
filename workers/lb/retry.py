"""Where a failed connection to a server is retried, and when: HAProxy's
rules for `retries` and `option redispatch` (its default interval, -1:
"redispatch on the last retry"), as HAProxy 2.6 applies them. Pure logic,
used by the HTTP and TCP sessions.

Checked against HAProxy 2.6 itself (one dead server that refuses, one
alive, retries 3): with redispatch and roundrobin, the first retry goes to
the other server at once (log "+1"); with redispatch and a cookie naming
the dead server, the dead one is tried again twice, a second apart, and
the last retry goes to the other (Tw 2004 ms, "+3"); with redispatch and
`balance source` hashing to the dead one, the same two turn-arounds, then
the last retry; without redispatch, the dead one is tried four times and
the client gets a 503 SC after 3 s.

One difference, on purpose: HAProxy's last-retry redispatch runs the
balance algorithm again, and its map-based hashing then picks the dead
server once more (503 SC after 2 s in the test above; its consistent
hashing skips it). farm's redispatch always skips the servers already
tried, whatever the algorithm.
"""

from __future__ import annotations

TURNAROUND = 1.0     # seconds before connecting again to the same server


def retry_elsewhere(redispatch: bool, retry: int, retries: int, persistent: bool,
                    hashed: bool, server_up: bool, usable_servers: int) -> bool:
    """True when retry number ``retry`` (1..retries) of a failed connection
    goes to another server, False when it goes to the same one.

    Without redispatch, always the same server. With it, another server
    when the failed one is no longer up, on the last retry, and on every
    retry when the server was picked by the balance algorithm alone (not
    by persistence, a cookie, nor by a hash of the request or source,
    which would pick it again) and another usable server exists.
    ``usable_servers`` counts the usable active servers, the failed one
    included."""
    if not redispatch:
        return False
    if not server_up or retry >= retries:
        return True
    return not persistent and not hashed and usable_servers > 1


def turnaround(connect_timeout: float | None, timed_out: bool) -> float:
    """Seconds to wait before connecting again to the same server: a server
    that refused may be restarting, so HAProxy waits min(timeout connect,
    1 s). None after a connect timeout: that attempt waited already."""
    if timed_out:
        return 0.0
    if connect_timeout:
        return min(connect_timeout, TURNAROUND)
    return TURNAROUND
