"""What the peers process tells the master for `show peers`.

A small anonymous shared mapping, created by the master before it forks
the peers process: the process writes a JSON document into it about once
a second (write()), the admin socket reads it (read()) and prints it
(render()). A sequence number taken before and after the read tells a
torn read (the writer was busy), which is retried.

Layout: 8 bytes sequence (odd while writing), 4 bytes length, the JSON.
"""

from __future__ import annotations

import json
import mmap
import struct
import time

SIZE = 1 << 16
_HEAD = struct.Struct("<QI")


class StatusBoard:
    def __init__(self) -> None:
        self.mm = mmap.mmap(-1, SIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def write(self, doc: dict) -> None:
        """Publish doc (the writer is the only one: the peers process)."""
        raw = json.dumps(doc, separators=(",", ":")).encode()[:SIZE - _HEAD.size]
        seq = _HEAD.unpack_from(self.mm, 0)[0]
        _HEAD.pack_into(self.mm, 0, seq + 1, 0)             # odd: being written
        self.mm[_HEAD.size:_HEAD.size + len(raw)] = raw
        _HEAD.pack_into(self.mm, 0, seq + 2, len(raw))

    def read(self) -> dict | None:
        """The last document written, None before the first."""
        for _ in range(100):
            seq, n = _HEAD.unpack_from(self.mm, 0)
            if seq & 1:
                time.sleep(0.001)
                continue
            raw = self.mm[_HEAD.size:_HEAD.size + n]
            if _HEAD.unpack_from(self.mm, 0)[0] != seq:
                continue
            if not seq:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return None
        return None


def render(doc: dict | None, now: float) -> str:
    """`show peers`: one line for this node, one per other node.

    Times are ages in seconds on the writer's monotonic clock, which is the
    reader's too (same host). status: ESTA (session open), HSHK (handshake),
    CONN (connecting), NONE (no session; last_error says why it ended)."""
    if doc is None:
        return "# no peers process: no [peers] section, or no table with peers = true\n"
    out = [f"# local={doc['local']} listen={doc['listen']} listening={int(doc['listening'])} "
           f"synced={int(doc['synced'])} updated={_age(now, doc['at'])}\n"]
    for p in doc["peers"]:
        out.append(f"{p['name']} addr={p['addr']} status={p['status']} dir={p['dir'] or '-'} "
                   f"since={_age(now, p['since'])} last_rx={_age(now, p['last_rx'])} "
                   f"sent={p['sent']} received={p['received']} "
                   f"last_error={json.dumps(p['last_error']) if p['last_error'] else '-'}\n")
    return "".join(out)


def _age(now: float, t: float | None) -> str:
    return "-" if not t else f"{max(0.0, now - t):.1f}s"
