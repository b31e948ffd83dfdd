"""The state numbers that the data plane's modules compare on every event:
a stream's state, a server connection's mode, a backend's reuse policy.

They live here, apart from the classes that hold them, so that each module
comparing them can take them as C ints in its compiled build (its .pxd
declares them; farm/build.py, docs/building.md): a constant declared there
is no longer a Python attribute of that module, so no module may import
one from another, only from here."""

# Stream.state (workers/stream.py). TURNAROUND: waiting to connect again to
# the server that just refused (BackendRuntime.retry_wait); TARPIT: a
# tarpit rule holds the request until t_retry, then answers.
ST_RULES, ST_QUEUED, ST_CONNECTING, ST_SERVER, ST_TUNNEL, ST_DONE, ST_TURNAROUND, ST_TARPIT = range(8)

# ServerConn.mode (workers/server.py; M_HANDSHAKE: TLS to the server, after
# the TCP connect)
M_CONNECTING, M_HTTP, M_TUNNEL, M_HANDSHAKE = range(4)

# http-reuse of a backend: which requests may take an idle server
# connection of the pool (workers/stream.py use_server)
REUSE_NEVER, REUSE_SAFE, REUSE_ALWAYS = range(3)
