"""Starting, probing, measuring and stopping the processes of the benchmark:
the backend (nginx playing two servers) and the three proxies.

Every process is started in its own session so that it, and only it, can be
stopped by its process group; nothing here looks at processes it did not
start. Resource use is read with psutil from the proxy's own processes (the
process started and its descendants: farm's master and workers, HAProxy's
single process, nginx's master and workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

import configs

ROOT = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str = "/", timeout: float = 1.0, tls: bool = False) -> bytes:
    """One HTTP/1.1 GET over a fresh connection (HTTPS with tls, the
    certificate not checked); the status line (or b'')."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        s = raw
        if tls:
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(raw)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


class Proc:
    """A process tree we started: the command, its files, its lifetime."""

    name = "?"

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.popen: subprocess.Popen | None = None
        self.port = 0
        self.config_text = ""
        self.config_path = ""

    # -- lifecycle --
    def command(self) -> list[str]:
        raise NotImplementedError

    def stdout_target(self):
        return subprocess.DEVNULL

    def start(self, spec: configs.Spec, probe_path: str = "/") -> None:
        self.port = spec.port
        self.tls = bool(spec.tls)
        self.write_config(spec)
        err = open(Path(self.workdir) / f"{self.name}-{self.port}.stderr", "ab")
        out = self.stdout_target()
        try:
            self.popen = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, start_new_session=True, cwd=self.workdir)
        finally:
            err.close()
            if hasattr(out, "close"):
                out.close()
        self.wait_ready(probe_path)

    def wait_ready(self, path: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode} at start; "
                                   f"see {self.workdir}/{self.name}-{self.port}.stderr:\n"
                                   + self.stderr_tail())
            try:
                status = http_get(self.port, path, tls=getattr(self, "tls", False))
                if status.startswith(b"HTTP/1.1 200"):
                    return
                last = status.decode(errors="replace")
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready on port {self.port} after {timeout}s: {last}\n"
                           + self.stderr_tail())

    def died(self) -> int | None:
        """The exit status if the process we started has exited, else None."""
        if self.popen is None:
            return None
        return self.popen.poll()

    def evidence(self) -> dict:
        """What a dead proxy left behind: its stderr and (farm) event log."""
        out = {"returncode": self.popen.returncode if self.popen else None,
               "stderr_tail": self.stderr_tail()}
        events = Path(self.workdir) / f"farm-{self.port}-events.log"
        if events.exists():
            out["events_tail"] = "\n".join(events.read_text(errors="replace").splitlines()[-15:])
        return out

    def stderr_tail(self) -> str:
        try:
            text = (Path(self.workdir) / f"{self.name}-{self.port}.stderr").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-15:])

    def stop(self, grace: float = 8.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            self.popen = None
            return
        try:
            os.kill(p.pid, self.stop_signal)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        # Whatever is left of the group we created (a worker that outlived
        # its master, say) is ours to kill.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self.popen = None

    stop_signal = signal.SIGTERM

    def write_config(self, spec: configs.Spec) -> None:
        raise NotImplementedError

    # -- measurement --
    def processes(self) -> list[psutil.Process]:
        if self.popen is None:
            return []
        try:
            root = psutil.Process(self.popen.pid)
            return [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self, user_only: bool = False) -> float:
        """CPU of the proxy's processes so far: user + system, or user only."""
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user if user_only else t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_bytes(self) -> int:
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def num_fds(self) -> int:
        total = 0
        for p in self.processes():
            try:
                total += p.num_fds()
            except psutil.NoSuchProcess:
                pass
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes()]


class Direct(Proc):
    """No proxy: the client talks to the first backend server (the limit)."""

    name = "direct"

    def died(self) -> int | None:
        return None

    def start(self, spec: configs.Spec, probe_path: str = "/") -> None:
        self.port = spec.servers[0][1]

    def stop(self, grace: float = 0) -> None:
        pass


class Farm(Proc):
    name = "farm"

    def write_config(self, spec: configs.Spec) -> None:
        self.config_text = configs.farm_config(spec)
        self.config_path = f"{self.workdir}/farm-{spec.port}.toml"
        Path(self.config_path).write_text(self.config_text)

    def command(self) -> list[str]:
        return [str(ROOT / ".venv/bin/python"), str(ROOT / "master.py"), "run", "-c", self.config_path]


class HAProxy(Proc):
    name = "haproxy"

    def __init__(self, workdir: str):
        super().__init__(workdir)
        self.access_log: str | None = None

    def write_config(self, spec: configs.Spec) -> None:
        self.access_log = spec.access_log
        self.config_text = configs.haproxy_config(spec)
        self.config_path = f"{self.workdir}/haproxy-{spec.port}.cfg"
        Path(self.config_path).write_text(self.config_text)

    def stdout_target(self):
        # `log stdout`: the access log is HAProxy's stdout, redirected here.
        if self.access_log:
            return open(self.access_log, "ab")
        return subprocess.DEVNULL

    def command(self) -> list[str]:
        return [HAPROXY, "-f", self.config_path, "-db"]


class Nginx(Proc):
    name = "nginx"
    stop_signal = signal.SIGQUIT     # graceful, like the others' SIGTERM

    def __init__(self, workdir: str, label: str = "nginx-proxy"):
        super().__init__(workdir)
        self.label = label

    def write_config(self, spec: configs.Spec) -> None:
        self.config_text = configs.nginx_config(spec, f"{self.label}-{spec.port}")
        self.make_temp_dirs(f"{self.label}-{spec.port}")
        self.config_path = f"{self.workdir}/{self.label}-{spec.port}.conf"
        Path(self.config_path).write_text(self.config_text)

    def make_temp_dirs(self, name: str) -> None:
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(f"{self.workdir}/{name}-tmp/{k}", exist_ok=True)

    def command(self) -> list[str]:
        return [NGINX, "-c", self.config_path, "-e", f"{self.workdir}/{self.label}-{self.port}-error.log",
                "-g", "daemon off;"]


class Backend(Nginx):
    """nginx playing the two servers: small fixed answers on /, a 1 MiB file on /1m."""

    name = "backend"

    def __init__(self, workdir: str, processes: int):
        super().__init__(workdir, label="backend")
        self.processes_n = processes
        self.ports: list[int] = []
        self.h2_ports: list[int] = []   # the same servers speaking HTTP/2 (h2c)
        self.big_file = f"{workdir}/1m.bin"

    def start_backend(self) -> None:
        with open(self.big_file, "wb") as f:
            f.write(os.urandom(configs.BIG_SIZE))
        os.chmod(self.big_file, 0o644)
        self.ports = [free_port(), free_port()]
        self.h2_ports = [free_port(), free_port()]
        self.port = self.ports[0]
        self.make_temp_dirs("backend")
        self.config_text = configs.backend_config(self.workdir, self.ports, self.processes_n,
                                                  self.big_file, self.h2_ports)
        self.config_path = f"{self.workdir}/backend.conf"
        Path(self.config_path).write_text(self.config_text)
        err = open(Path(self.workdir) / f"backend-{self.port}.stderr", "ab")
        self.popen = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err,
                                      start_new_session=True, cwd=self.workdir)
        err.close()
        for port in self.ports:
            self.port = port
            self.wait_ready("/")
            self.wait_ready("/1m")
        self.port = self.ports[0]

    def servers(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.ports]

    def h2_servers(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.h2_ports]


def make(name: str, workdir: str) -> Proc:
    return {"direct": Direct, "farm": Farm, "haproxy": HAProxy, "nginx": Nginx}[name](workdir)


if __name__ == "__main__":
    sys.exit("not a script: see bench/run")
