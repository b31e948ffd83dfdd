"""One peer session as a state machine over bytes (no sockets, no clock).

The owner (farm/peers/process.py) feeds it what the socket read
(feed(data, now) -> events) and writes what it queues in `out`. States:

  "hello"     outgoing: our hello is queued, waiting for the status line
  "accept"    incoming: waiting for the caller's three hello lines
  "open"      messages both ways
  "closed"    done: `reason` says why; `out` may still hold a last
              message (a status or an error) to write before closing

Events returned by feed():
  ("open", peer_name)            handshake done
  ("update", TableDef, Update)   an entry of a remote table we know
  ("table", TableDef)            a remote table was defined
  ("resync_request",)            the peer wants all our entries
  ("resync_done", partial)       the peer finished teaching us
  ("closed", reason)             the session ended (protocol error,
                                 refused handshake, peer's error message)
Garbage never raises out of feed(): it closes the session with a
protocol error message to the peer and a reason for the log.
"""

from __future__ import annotations

from typing import Callable

from farm.peers import codec as C


class Session:
    def __init__(self, local: str, now: float, *, remote: str | None = None, pid: int = 0,
                 check_caller: Callable[[str], int] | None = None):
        """Outgoing when remote (the peer's name) is given: the hello is
        queued at once. Incoming otherwise: check_caller(name) gives the
        status to answer a caller (200 to accept it)."""
        self.local = local
        self.remote = remote
        self.outgoing = remote is not None
        self.check_caller = check_caller or (lambda name: C.ST_OK)
        self.out = bytearray()
        self.inbuf = bytearray()
        self.minor = C.MINOR
        self.state = "hello" if self.outgoing else "accept"
        self.reason = ""
        self.last_rx = self.last_tx = now
        self.remote_tables: dict[int, C.TableDef] = {}
        self.current: C.TableDef | None = None       # the remote table of the next updates
        self.defined: set[int] = set()               # our tables defined on this session
        self.last_sent_table: int | None = None
        self.dict_cache: dict[int, str] = {}
        self._lines: list[bytes] = []
        if self.outgoing:
            self.out += C.hello(remote, local, pid)

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    # -- input ------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[tuple]:
        """Bytes read from the peer -> events (see the module docstring)."""
        if self.state == "closed":
            return []
        self.last_rx = now
        self.inbuf += data
        events: list[tuple] = []
        try:
            if self.state in ("hello", "accept"):
                self._handshake(events)
            if self.state == "open":
                for cls, typ, payload in C.split_messages(self.inbuf):
                    self._message(cls, typ, payload, events)
                    if self.state == "closed":
                        break
        except C.HandshakeError as e:
            self._close(f"handshake refused ({e.code} {C.STATUS_TEXT[e.code]}): {e}", events)
            self.out += C.status(e.code)
        except C.SizeLimitError as e:
            self._close(f"size limit: {e}", events)
            self.out += C.error(C.ERR_SIZE_LIMIT)
        except C.PeerProtocolError as e:
            self._close(f"protocol error: {e}", events)
            self.out += C.error(C.ERR_PROTOCOL)
        return events

    def _lines_ready(self, count: int) -> bool:
        while len(self._lines) < count:
            nl = self.inbuf.find(b"\n")
            if nl < 0:
                if len(self.inbuf) > C.MAX_LINE:
                    raise C.HandshakeError(C.ST_ERR_PROTO, "hello line too long")
                return False
            if nl > C.MAX_LINE:
                raise C.HandshakeError(C.ST_ERR_PROTO, "hello line too long")
            self._lines.append(bytes(self.inbuf[:nl]))
            del self.inbuf[:nl + 1]
        return True

    def _handshake(self, events: list) -> None:
        if self.state == "hello":
            if not self._lines_ready(1):
                return
            try:
                code = C.parse_status(self._lines[0])
            except C.PeerProtocolError as e:
                self._close(f"bad status from the peer: {e}", events)
                return
            if code != C.ST_OK:
                self._close(f"peer refused the session: {code} {C.STATUS_TEXT.get(code, '')}".rstrip(),
                            events)
                return
        else:
            if not self._lines_ready(3):
                return
            h = C.parse_hello(self._lines)
            if h.called != self.local:
                raise C.HandshakeError(C.ST_ERR_HOST, f"called {h.called[:60]!r}, we are {self.local!r}")
            code = self.check_caller(h.caller)
            if code != C.ST_OK:
                raise C.HandshakeError(code, f"caller {h.caller[:60]!r} refused")
            self.remote, self.minor = h.caller, h.minor
            self.out += C.status(C.ST_OK)
        self._lines = []
        self.state = "open"
        events.append(("open", self.remote))

    def _message(self, cls: int, typ: int, p: bytes, events: list) -> None:
        if cls == C.CLASS_CONTROL:
            if typ == C.CTRL_RESYNC_REQ:
                events.append(("resync_request",))
            elif typ in (C.CTRL_RESYNC_FINISHED, C.CTRL_RESYNC_PARTIAL):
                self.out += C.control(C.CTRL_RESYNC_CONFIRM)
                events.append(("resync_done", typ == C.CTRL_RESYNC_PARTIAL))
            # confirm and heartbeat: being received is all they do
        elif cls == C.CLASS_ERROR:
            what = "size limit" if typ == C.ERR_SIZE_LIMIT else "protocol error"
            self._close(f"the peer reported a {what} and closes", events)
        elif cls == C.CLASS_TABLE:
            if typ == C.T_DEFINE:
                d = C.parse_define(p)
                for k in [k for k in self.remote_tables if k == d.table_id]:
                    del self.remote_tables[k]
                self.remote_tables[d.table_id] = d
                self.current = d
                events.append(("table", d))
            elif typ == C.T_SWITCH:
                self.current = self.remote_tables.get(C.parse_switch(p))
            elif typ in (C.T_UPDATE, C.T_INCUPDATE, C.T_UPDATE_TIMED, C.T_INCUPDATE_TIMED):
                d = self.current
                if d is None:
                    return                   # a table we do not share: ignored, as HAProxy does
                if d.unknown_types:
                    return
                u = C.parse_update(p, typ, d, self.dict_cache)
                if u.update_id is None:          # incremental: the previous one + 1
                    u.update_id = (d.last_update + 1) & 0xFFFFFFFF
                d.last_update = u.update_id
                events.append(("update", d, u))
            elif typ == C.T_ACK:
                C.parse_ack(p)                 # checked; we resend everything on reconnect
        # other classes: unknown but well framed, ignored (HAProxy does the same)

    def _close(self, reason: str, events: list) -> None:
        self.state = "closed"
        self.reason = reason
        events.append(("closed", reason))

    # -- output -------------------------------------------------------------------

    def send_update(self, d: C.TableDef, u: C.Update) -> None:
        """Queue an update of our table d (defined first on this session,
        switched to when another table was last)."""
        if d.table_id not in self.defined:
            self.out += C.define_msg(d)
            self.defined.add(d.table_id)
        elif self.last_sent_table != d.table_id:
            self.out += C.switch_msg(d.table_id)
        self.last_sent_table = d.table_id
        if self.minor < 1:
            u = C.Update(u.key, u.values, u.update_id, None)
        self.out += C.update_msg(d, u)

    def send_control(self, typ: int) -> None:
        self.out += C.control(typ)

    def send_ack(self, d: C.TableDef) -> None:
        """Acknowledge the updates of the remote table d received so far."""
        self.out += C.ack_msg(d.table_id, d.last_update)

    def close(self, reason: str) -> None:
        if self.state != "closed":
            self.state = "closed"
            self.reason = reason
