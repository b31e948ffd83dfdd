"""Real peers from Debian that some integration tests drive (hatop, tmux,
prometheus-haproxy-exporter): found on PATH, or installed when possible."""

from __future__ import annotations

import os
import shutil
import subprocess


def debian_tool(command: str, package: str | None = None) -> str | None:
    """The path of command, installing its Debian package (named like the
    command unless given) with apt-get when it is missing and this runs as
    root; None when it cannot be had (the caller skips its test)."""
    path = shutil.which(command)
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    try:
        subprocess.run(["apt-get", "install", "-y", package or command],
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    return shutil.which(command)
