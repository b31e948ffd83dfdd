"""Bind option transparent = true: farm listens on an address the node does
not hold yet (the backup node of an HA pair waiting for the virtual
address), and serves on it as soon as the address arrives. In network
namespaces made by the test: a client and a node joined by a veth pair,
the address added to the node's interface only after farm has started."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration import netns

REASON = netns.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no network namespaces: {REASON}")

VIP = "10.77.0.100"


@pytest.fixture
def pair(tmp_path):
    """(client namespace, node namespace): client 10.77.0.1/24 and node
    10.77.0.2/24 on a veth pair; in the node, an HTTP backend on
    127.0.0.1:9000 that answers GET /name with "b1"."""
    tag = f"tp{os.getpid() % 100000}"
    client = netns.Netns(tag + "c")
    node = netns.Netns(tag + "n")
    backend = None
    try:
        netns.veth(client, "c0", node, "n0")
        client.ip("addr", "add", "10.77.0.1/24", "dev", "c0")
        node.ip("addr", "add", "10.77.0.2/24", "dev", "n0")
        www = tmp_path / "www"
        www.mkdir()
        (www / "name").write_text("b1")
        backend = node.popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                              "--directory", str(www), "9000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield client, node
    finally:
        if backend is not None:
            backend.kill()
            backend.wait()
        client.delete()
        node.delete()


def config(transparent: bool) -> str:
    return f"""
[global]
workers = 1
[log]
events = "@EVENTS@"
access = "off"
[frontends.www]
bind = {{ address = "{VIP}:8080", transparent = {str(transparent).lower()} }}
default_backend = "app"
[backends.app]
[[backends.app.servers]]
name = "b1"
address = "127.0.0.1:9000"
"""


def curl(client: netns.Netns, url: str) -> subprocess.CompletedProcess:
    return client.run(["curl", "-sS", "--max-time", "2", url])


def test_transparent_bind_serves_once_the_address_arrives(pair, farm_factory):
    client, node = pair
    farm = farm_factory(config(True), preexec=node.enter)
    assert VIP not in node.ip("-4", "addr").stdout
    # Not the node's address yet: nobody answers for it.
    assert curl(client, f"http://{VIP}:8080/name").returncode != 0
    node.ip("addr", "add", f"{VIP}/24", "dev", "n0")
    r = curl(client, f"http://{VIP}:8080/name")
    assert (r.returncode, r.stdout) == (0, "b1"), r.stderr
    # And when it leaves again (the other node took it), farm is still up
    # and serves again when it comes back, on the same sockets.
    node.ip("addr", "del", f"{VIP}/24", "dev", "n0")
    assert curl(client, f"http://{VIP}:8080/name").returncode != 0
    node.ip("addr", "add", f"{VIP}/24", "dev", "n0")
    r = curl(client, f"http://{VIP}:8080/name")
    assert (r.returncode, r.stdout) == (0, "b1"), r.stderr
    assert farm.proc.poll() is None


def test_without_transparent_a_foreign_address_is_refused_with_a_hint(pair, farm_factory):
    _, node = pair
    farm = farm_factory(config(False), start=False, preexec=node.enter)
    farm.start(wait_ready=False)
    assert farm.proc.wait(10) != 0
    out = farm.output()
    assert f"cannot bind {VIP}:8080" in out and "transparent = true" in out, out


def test_transparent_bind_ipv6(pair, farm_factory):
    client, node = pair
    client.ip("-6", "addr", "add", "2001:db8::1/64", "dev", "c0", "nodad")
    farm_factory(config(True).replace(f'"{VIP}:8080"', '"[2001:db8::100]:8080"'),
                 preexec=node.enter)
    node.ip("-6", "addr", "add", "2001:db8::100/64", "dev", "n0", "nodad")
    r = curl(client, "http://[2001:db8::100]:8080/name")
    assert (r.returncode, r.stdout) == (0, "b1"), r.stderr
