"""Linux network namespaces for the tests that need addresses this machine
does not have (a virtual address that moves between two farm nodes).

A test makes its namespaces with `Netns(name)`, wires them with veth pairs
and a bridge through `ip`, runs processes inside with `popen`/`run`, or
gives `enter` as the preexec_fn of a subprocess (the farm_factory's
`preexec`). Every address lives inside the namespaces: nothing the tests
send leaves them. `unavailable()` says why namespaces cannot be made here
(not root, no `ip`, a kernel or container that refuses them), so the test
skips with that reason.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip ARGS...` in this (the test's) namespace."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


class Netns:
    """One named network namespace (/run/netns/NAME), made on creation
    with its loopback up, removed by delete()."""

    def __init__(self, name: str):
        self.name = name
        ip("netns", "add", name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`ip ARGS...` inside the namespace."""
        return ip("-n", self.name, *args, check=check)

    def argv(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(self.argv(cmd), **kw)

    def popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(cmd), **kw)

    def enter(self) -> None:
        """A preexec_fn: move the child being started into this namespace.
        (Python 3.11 has no os.setns; libc's is the same system call.)"""
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def delete(self) -> None:
        ip("netns", "delete", self.name, check=False)


def veth(a: Netns, a_if: str, b: Netns, b_if: str) -> None:
    """A veth pair: a_if in namespace a, b_if in namespace b, both up."""
    ip("link", "add", a_if, "netns", a.name, "type", "veth", "peer", "name", b_if, "netns", b.name)
    a.ip("link", "set", a_if, "up")
    b.ip("link", "set", b_if, "up")


def unavailable() -> str | None:
    """Why network namespaces with veth pairs and a bridge cannot be made
    here, or None when they can (checked by making and removing some)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    name = f"farmprobe{os.getpid()}"
    try:
        a = Netns(name + "a")
    except subprocess.CalledProcessError as e:
        return f"cannot make a network namespace here: {e.stderr.strip()}"
    try:
        b = Netns(name + "b")
        try:
            veth(a, "p0", b, "p1")
            b.ip("link", "add", "br0", "type", "bridge")
        finally:
            b.delete()
    except subprocess.CalledProcessError as e:
        return f"cannot make veth pairs or bridges in a network namespace: {e.stderr.strip()}"
    finally:
        a.delete()
    return None
