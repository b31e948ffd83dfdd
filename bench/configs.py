"""The configurations of the benchmark, written side by side.

One Spec describes what a scenario asks of a proxy (processes, mode, rules,
access log); farm_config(), haproxy_config() and nginx_config() turn it into
each proxy's own language, equivalently (bench/README.md explains each
choice). backend_config() is the nginx that plays the two servers.

`bench/run --show-configs SCENARIO` prints the three files of a scenario.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# The same values in all three proxies (HAProxy's names).
TIMEOUT_CONNECT = "5s"
TIMEOUT_CLIENT = "30s"
TIMEOUT_SERVER = "30s"
TIMEOUT_HTTP_REQUEST = "10s"
TIMEOUT_KEEP_ALIVE = "60s"      # long enough for the idle-connection scenario
# Connection limits come from one file-descriptor budget, the same for all:
# RLIMIT_NOFILE (20000 on the reference machine, and root cannot raise it
# there). HAProxy reserves two fds per connection (client + server) and
# refuses to start when maxconn * 2 does not fit, so maxconn is half the
# budget for HAProxy and farm; nginx's worker_connections counts client and
# server connections alike, so it gets the whole budget. See set_fd_budget().
FD_BUDGET = 20000
MAXCONN = 9500
HAPROXY_MAXPIPES = 200          # splice pipes (TCP mode), 2 fds each
NGINX_UPSTREAM_IDLE = 512       # nginx `keepalive N`: idle server connections per worker
RESPONSE_BODY = "farm bench backend: a small fixed response of 64 bytes.........\n"
assert len(RESPONSE_BODY) == 64
BIG_SIZE = 1 << 20              # the 1 MiB response of the TCP scenario
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

# The rule set of the "rules" scenario, in HAProxy's words. The request path
# of that scenario (/api/v1/items?id=42) evaluates the deny rule (admin is
# false), the set-header, and the first use_backend (api). The set-header is
# X-Forwarded-Host from the Host header (a format string with a fetch), not
# X-Forwarded-Proto: farm's option_forwardfor already adds X-Forwarded-Proto
# (HAProxy's does not), so a set-header of it would make farm send it twice.
ACLS = {
    "api": "path_beg /api/",
    "static": "path_end .css .js .png .jpg",
    "admin": "path_beg /admin",
    "internal": "src 127.0.0.0/8 10.0.0.0/8",
}
RULES_PATH = "/api/v1/items?id=42"
# The parts of that rule set, as bench/features.py turns them on one by one
# in farm (the scenario itself has them all).
RULE_FEATURES = ("forwardfor", "acl", "set_header")
# The "ratelimit" scenario: every request is tracked by its source address
# in a stick table (HTTP request rate over 10 s) and checked against a
# limit, in each proxy's own words; the limit is far above what the load
# reaches, so every request is forwarded and the cost measured is the
# tracking and the check (not cheaper 429 answers).
RATE_LIMIT = 1_000_000_000          # requests per 10 s per source


@dataclass
class Spec:
    """What a scenario asks of every proxy."""

    port: int                          # where the proxy listens (127.0.0.1)
    servers: list[tuple[str, int]]     # the backend servers
    workdir: str
    processes: int = 1                 # farm workers / HAProxy threads / nginx workers
    mode: str = "http"                 # "http" | "tcp"
    rules: bool = False                # ACLs, use_backend, set-header, X-Forwarded-For
    rule_features: tuple = RULE_FEATURES   # farm only: which parts of the rule set
    access_log: str | None = None      # a file path, or None for no access log
    tls_port: int = 0                  # also listen here with TLS, ALPN h2 (HTTP/2 scenarios)
    cert: str = ""                     # PEM (certificate + key) of that TLS listener
    ratelimit: bool = False            # track-sc0 src + deny 429 above RATE_LIMIT
    tls: str | None = None             # a PEM (certificate + key): the bind speaks TLS
    extra: dict = field(default_factory=dict)
    server_proto: str = "h1"           # "h2": HTTP/2 to the servers (prior knowledge)


def set_fd_budget(nofile: int) -> None:
    """Size every connection limit from the fds a process may open."""
    global FD_BUDGET, MAXCONN
    FD_BUDGET = min(nofile, 200000)
    MAXCONN = (FD_BUDGET - 1000) // 2


def make_certificates(workdir: str) -> dict[str, str]:
    """Self-signed certificates for the TLS scenarios, one per key type
    ("ec": ECDSA P-256, "rsa": RSA 2048): kind -> PEM path (certificate
    then key), the same file for every proxy."""
    import subprocess
    out = {}
    for kind, alg in (("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                      ("rsa", ["-newkey", "rsa:2048"])):
        crt, key = f"{workdir}/bench-{kind}.crt", f"{workdir}/bench-{kind}.key"
        subprocess.run(["openssl", "req", "-x509", "-nodes", *alg, "-keyout", key, "-out", crt,
                        "-days", "30", "-subj", "/CN=bench.local",
                        "-addext", "subjectAltName=DNS:bench.local"],
                       check=True, capture_output=True, timeout=60)
        pem = f"{workdir}/bench-{kind}.pem"
        with open(pem, "wb") as f:
            f.write(open(crt, "rb").read() + open(key, "rb").read())
        out[kind] = pem
    return out


def have_nginx_stream() -> bool:
    return os.path.exists(NGINX_STREAM_MODULE)


# -- farm ---------------------------------------------------------------------

def farm_config(s: Spec) -> str:
    out = [f"""\
[global]
workers = {s.processes}
maxconn = {MAXCONN}
hard_stop_after = "3s"

[log]
events = "{s.workdir}/farm-{s.port}-events.log"
level = "warning"
access = "{s.access_log or 'off'}"
format = "{'httplog' if s.mode == 'http' else 'tcplog'}"

[defaults]
mode = "{s.mode}"
retries = 3
redispatch = true
"""]
    if s.mode == "http":
        out.append('http_reuse = "always"\n')
    out.append(f"""
[defaults.timeout]
connect = "{TIMEOUT_CONNECT}"
client = "{TIMEOUT_CLIENT}"
server = "{TIMEOUT_SERVER}"
http_request = "{TIMEOUT_HTTP_REQUEST}"
http_keep_alive = "{TIMEOUT_KEEP_ALIVE}"

[frontends.fe]
bind = {f'{{ address = "127.0.0.1:{s.port}", tls = true }}' if s.tls else f'"127.0.0.1:{s.port}"'}
default_backend = "app"
""")
    if s.tls:
        # farm's defaults: TLS 1.2 at least, ECDHE + AEAD ciphers, tickets on
        out.append(f'\n[frontends.fe.tls]\ncertificates = ["{s.tls}"]\n')
    backends = ["app"]
    on = set(s.rule_features) if s.rules else set()
    if "forwardfor" in on:
        out.append("option_forwardfor = true\n")
    if "acl" in on:
        out.append("\n[frontends.fe.acl]\n")
        out += [f'{name} = "{line}"\n' for name, line in ACLS.items()]
        out.append("""
[[frontends.fe.http_request]]
action = "deny"
if = "admin !internal"
""")
    if "set_header" in on:
        out.append("""
[[frontends.fe.http_request]]
action = "set-header"
name = "X-Forwarded-Host"
value = "%[req.hdr(host)]"
""")
    if "acl" in on:
        backends += ["api", "static"]
        out.append("""
[[frontends.fe.use_backend]]
backend = "api"
if = "api"

[[frontends.fe.use_backend]]
backend = "static"
if = "static"
""")
    if s.tls_port:
        out.append(f'\n[frontends.fe.tls]\ncertificates = ["{s.cert}"]\nalpn = ["h2", "http/1.1"]\n')
    if s.ratelimit:
        out.append(f"""
[tables.per_src]
type = "ip"
size = 100000
expire = "1m"
store = ["http_req_rate(10s)"]

[[frontends.fe.http_request]]
action = "track-sc0"
key = "src"
table = "per_src"

[[frontends.fe.http_request]]
action = "deny"
status = 429
if = "{{ sc_http_req_rate(0) gt {RATE_LIMIT} }}"
""")
    for be in backends:
        out.append(f'\n[backends.{be}]\nbalance = "roundrobin"\n')
        if s.server_proto == "h2":
            out.append('proto = "h2"\n')
        for i, (host, port) in enumerate(s.servers, 1):
            out.append(f'[[backends.{be}.servers]]\nname = "s{i}"\naddress = "{host}:{port}"\n')
            if s.extra.get("server_maxconn"):
                out.append(f'maxconn = {s.extra["server_maxconn"]}\n')
    text = "".join(out)
    if s.tls_port:
        text = text.replace(f'bind = "127.0.0.1:{s.port}"',
                            f'bind = ["127.0.0.1:{s.port}", '
                            f'{{ address = "127.0.0.1:{s.tls_port}", tls = true }}]', 1)
    return text


# -- HAProxy ------------------------------------------------------------------

def haproxy_config(s: Spec) -> str:
    log = s.access_log is not None
    out = [f"""\
global
    nbthread {s.processes}
    maxconn {MAXCONN}
"""]
    if log:
        # HAProxy writes a file only through syslog; `log stdout` with the
        # process's stdout redirected to the file is the direct equivalent.
        out.append("    log stdout format raw local0\n")
    out.append(f"""
defaults
    mode {s.mode}
    retries 3
    option redispatch
    timeout connect {TIMEOUT_CONNECT}
    timeout client {TIMEOUT_CLIENT}
    timeout server {TIMEOUT_SERVER}
""")
    if s.mode == "http":
        out.append(f"""\
    timeout http-request {TIMEOUT_HTTP_REQUEST}
    timeout http-keep-alive {TIMEOUT_KEEP_ALIVE}
    http-reuse always
""")
    else:
        # farm moves bulk TCP data with splice() (after the first bytes of a
        # flow); HAProxy splices only when told to. splice-auto barely
        # splices in this test (measured: the CPU of no splice at all), so
        # both directions are forced on, which is what HAProxy users do for
        # bulk TCP. nginx's stream module cannot splice.
        out.append("    option splice-request\n    option splice-response\n")
        out[0] += f"    maxpipes {HAPROXY_MAXPIPES}\n"
    if log:
        out.append("    log global\n    option {}\n".format("httplog" if s.mode == "http" else "tcplog"))
    ssl = f" ssl crt {s.tls} alpn http/1.1" if s.tls else ""
    if s.tls:
        # the same protocol floor and TLS 1.2 ciphers as farm's defaults
        out[0] += ("    ssl-default-bind-options ssl-min-ver TLSv1.2\n"
                   "    ssl-default-bind-ciphers ECDHE+AESGCM:ECDHE+CHACHA20\n")
    out.append(f"""
frontend fe
    bind 127.0.0.1:{s.port}{ssl}
""")
    if s.tls_port:
        out.append(f"    bind 127.0.0.1:{s.tls_port} ssl crt {s.cert} alpn h2,http/1.1\n")
    backends = ["app"]
    if s.rules:
        backends += ["api", "static"]
        out += [f"    acl {name} {line}\n" for name, line in ACLS.items()]
        out.append("""\
    http-request deny if admin !internal
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    option forwardfor
    use_backend api if api
    use_backend static if static
""")
    if s.ratelimit:
        out.append(f"""\
    stick-table type ip size 100k expire 1m store http_req_rate(10s)
    http-request track-sc0 src
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {RATE_LIMIT} }}
""")
    out.append("    default_backend app\n")
    for be in backends:
        out.append(f"\nbackend {be}\n    balance roundrobin\n")
        for i, (host, port) in enumerate(s.servers, 1):
            maxconn = f" maxconn {s.extra['server_maxconn']}" if s.extra.get("server_maxconn") else ""
            proto = " proto h2" if s.server_proto == "h2" else ""
            out.append(f"    server s{i} {host}:{port}{maxconn}{proto}\n")
    return "".join(out)


# -- nginx as the proxy -------------------------------------------------------

def _nginx_main(s: Spec, name: str, stream: bool = False) -> str:
    load = f"load_module {NGINX_STREAM_MODULE};\n" if stream else ""
    return f"""\
{load}worker_processes {s.processes};
worker_rlimit_nofile {FD_BUDGET};
user root;
pid {s.workdir}/{name}.pid;
error_log {s.workdir}/{name}-error.log warn;

events {{
    worker_connections {FD_BUDGET - 100};
}}
"""


def _nginx_temp_paths(s: Spec, name: str) -> str:
    t = f"{s.workdir}/{name}-tmp"
    return "".join(f"    {k}_temp_path {t}/{k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def nginx_config(s: Spec, name: str = "nginx-proxy") -> str:
    if s.mode == "tcp":
        ups = "".join(f"        server {h}:{p};\n" for h, p in s.servers)
        return _nginx_main(s, name, stream=True) + f"""
stream {{
    upstream app {{
{ups}    }}
    server {{
        listen 127.0.0.1:{s.port} reuseport;
        proxy_pass app;
        proxy_connect_timeout {TIMEOUT_CONNECT};
        proxy_timeout {TIMEOUT_CLIENT};
        proxy_next_upstream on;
        proxy_next_upstream_tries 4;
    }}
}}
"""
    backends = ["app", "api", "static"] if s.rules else ["app"]
    upstreams = []
    for be in backends:
        ups = "".join(f"        server {h}:{p};\n" for h, p in s.servers)
        upstreams.append(f"""
    upstream {be} {{
{ups}        keepalive {NGINX_UPSTREAM_IDLE};
        keepalive_requests 1000000;
        keepalive_timeout {TIMEOUT_KEEP_ALIVE};
    }}
""")
    xff = ""
    if s.rules:
        xff = ("    proxy_set_header X-Forwarded-Host $http_host;\n"
               "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
    if s.access_log:
        log = (f"    log_format httplog '$remote_addr:$remote_port [$time_local] fe "
               f"$upstream_addr $request_time $status $body_bytes_sent \"$request\"';\n"
               f"    access_log {s.access_log} httplog;\n")
    else:
        log = "    access_log off;\n"
    if s.ratelimit:
        # nginx's leaky bucket per source; the same "far above the load"
        # limit, answered 429 when exceeded
        log += ("    limit_req_zone $binary_remote_addr zone=per_src:10m rate=100000000r/s;\n"
                "    limit_req zone=per_src burst=100000000 nodelay;\n"
                "    limit_req_status 429;\n")
    if s.rules:
        locations = """
        location /admin {
            if ($internal = 0) { return 403; }
            proxy_pass http://app;
        }
        location /api/ {
            proxy_pass http://api;
        }
        location ~ \\.(css|js|png|jpg)$ {
            proxy_pass http://static;
        }
        location / {
            proxy_pass http://app;
        }
"""
        geo = """
    geo $internal {
        default 0;
        127.0.0.0/8 1;
        10.0.0.0/8 1;
    }
"""
    else:
        locations = """
        location / {
            proxy_pass http://app;
        }
"""
        geo = ""
    return _nginx_main(s, name) + f"""
http {{
{log}{_nginx_temp_paths(s, name)}
    keepalive_timeout {TIMEOUT_KEEP_ALIVE};
    keepalive_requests 1000000;
    client_header_timeout {TIMEOUT_HTTP_REQUEST};
    client_body_timeout {TIMEOUT_CLIENT};
    send_timeout {TIMEOUT_CLIENT};

    proxy_connect_timeout {TIMEOUT_CONNECT};
    proxy_read_timeout {TIMEOUT_SERVER};
    proxy_send_timeout {TIMEOUT_SERVER};
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 4;
    proxy_http_version 1.1;
    # All proxy_set_header lines at one level: a level that sets any of them
    # inherits none from the level above (then Connection "" would be lost
    # and every request would open a new server connection).
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
{xff}{"".join(upstreams)}{geo}
    server {{
        listen 127.0.0.1:{s.port} reuseport;
{locations}    }}
}}
"""


# -- the backend: nginx playing two servers -----------------------------------

def backend_config(workdir: str, ports: list[int], processes: int, big_file: str,
                   h2_ports: list[int] = ()) -> str:
    """nginx serving the same answers on ports (HTTP/1.1) and h2_ports
    (cleartext HTTP/2 with prior knowledge: `listen ... http2`)."""
    servers = []
    for i, port in enumerate([*ports, *h2_ports], 1):
        h2 = " http2" if port in h2_ports else ""
        servers.append(f"""
    server {{
        listen 127.0.0.1:{port}{h2} reuseport backlog=4096;
        location / {{
            return 200 "{RESPONSE_BODY.rstrip(chr(10))}\\n";
        }}
        location = /1m {{
            alias {big_file};
        }}
    }}
""")
    s = Spec(port=0, servers=[], workdir=workdir, processes=processes)
    return _nginx_main(s, "backend") + f"""
http {{
    access_log off;
{_nginx_temp_paths(s, "backend")}
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
{"".join(servers)}}}
"""
