"""systemd's notify protocol (sd_notify) without libsystemd.

When NOTIFY_SOCKET is set (Type=notify units), state changes are sent as a
datagram to that unix socket: READY=1, RELOADING=1, STOPPING=1, STATUS=...
An abstract socket is written with a leading "@". Without NOTIFY_SOCKET this
does nothing, so it is safe to call everywhere.
"""

from __future__ import annotations

import os
import socket
import time


def sd_notify(message: str) -> bool:
    """Send message (newline-separated KEY=VALUE lines); True if sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if "RELOADING=1" in message and "MONOTONIC_USEC" not in message:
        # systemd >= 253 wants the reload's start time with RELOADING=1.
        message += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), path)
        return True
    except OSError:
        return False
