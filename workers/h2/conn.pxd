# Types of workers/h2/conn.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md). The frame handlers
# are C methods; what workers/h2conn.py and workers/h2server.py call is
# cpdef (a C call from a typed caller, a Python one otherwise).
cimport cython
from workers.h2.frames cimport (frame_header, headers_frames, parse_data, parse_headers,
                                parse_window_update, rst_stream_frame, window_update_frame)
from workers.h2.events cimport KnownHead
from workers.h2.hpack cimport Decoder, Encoder
from workers.h2.messages cimport check_request
from workers.http1 cimport cbytes

# the frame types, flags and settings this module tests, as C values
# (assigned by the .py's imports)
cdef int CONTINUATION, DATA, GOAWAY, HEADERS, PING, PRIORITY, PUSH_PROMISE, RST_STREAM
cdef int SETTINGS, WINDOW_UPDATE
cdef int FLAG_ACK, FLAG_END_HEADERS, FLAG_END_STREAM
cdef long long DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, MAX_WINDOW
cdef int SETTINGS_ENABLE_PUSH, SETTINGS_HEADER_TABLE_SIZE, SETTINGS_INITIAL_WINDOW_SIZE
cdef int SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE
cdef Py_ssize_t _PREFACE_LEN, _HEAD_MEMO_MAX, _HEAD_MEMO_LEN
cdef long long _MAX_STREAM_ID
cdef int _S_PREFACE, _S_SETTINGS, _S_OPEN, _S_CLOSED
cdef int _C_END, _C_PEER_RST, _C_LOCAL_RST
cdef int _F_RESET, _F_PING, _F_SETTINGS, _F_EMPTY

cdef class H2Config:
    cdef public long long max_concurrent_streams, initial_window_size, connection_window
    cdef public long long max_frame_size, header_table_size, encoder_table_size
    cdef public long long max_header_list_size, max_header_fields, max_header_block
    cdef public long long max_header_frames, rapid_reset_budget, ping_budget
    cdef public long long settings_budget, empty_frame_budget, max_pending_control
    cdef public long long max_closed_streams
    cdef public double flood_window

cdef class _Stream:
    cdef public object id, method
    cdef public bint recv_open, send_open, responded, final
    cdef public long long send_window, recv_window, unacked, content_length, received

cdef class H2Connection:
    cdef public H2Config config
    cdef public bint client
    cdef public object _clock, _cont_frags
    cdef public Decoder _decoder
    cdef public Encoder _encoder
    cdef public object peer_max_header_list, stalled_since
    cdef public int _state, _settings_unacked, _cont_flags, _shutdown, _pending_control
    cdef public Py_ssize_t _pre, _plen, _need, _cont_len, _closed_head
    cdef public list _parts, _out, _events, _flood, _closed_order
    cdef public dict streams, _closed
    cdef public set _seen
    cdef public dict _heads
    cdef public long long _highest_remote, _next_local, _cont_sid, _cont_dep
    cdef public long long peer_max_frame, peer_initial_window, peer_max_concurrent
    cdef public long long _send_window, _recv_window, _recv_unacked, _recv_initial
    cdef public long long _goaway_last, peer_goaway_last
    cdef public bint _goaway_sent, _goaway_received
    cdef public double _flood_t0
    @cython.locals(out=list)
    cpdef bytes data_to_send(self)
    cpdef bint can_open_stream(self) except -1
    @cython.locals(st=_Stream, room=cython.longlong)
    cpdef long long max_send(self, stream_id) except -1
    @cython.locals(events=list, parts=list, pos=Py_ssize_t)
    cpdef list receive_data(self, bytes data)
    @cython.locals(k=Py_ssize_t, chunk=bytes)
    cdef Py_ssize_t _preface(self, bytes data) except -2
    @cython.locals(n=Py_ssize_t, maxf=Py_ssize_t, length=Py_ssize_t, end=Py_ssize_t,
                   ftype=int, flags=int, sid=cython.long, payload=bytes, rest=bytes, p=cbytes)
    cdef _frames(self, bytes data, Py_ssize_t pos)
    @cython.locals(length=Py_ssize_t, st=_Stream, end=int, received=cython.longlong,
                   cl=cython.longlong)
    cdef _on_data(self, sid, int flags, bytes payload)
    @cython.locals(block=bytes)
    cdef _on_headers(self, sid, int flags, bytes payload)
    @cython.locals(frags=list)
    cdef _on_continuation(self, sid, int flags, bytes payload)
    @cython.locals(end=int, st=_Stream, cl=cython.longlong, decoder=Decoder,
                   gen=Py_ssize_t, known=KnownHead, checked=tuple, heads=dict)
    cdef _header_block(self, sid, int flags, bytes block, dep)
    @cython.locals(st=_Stream, checked=tuple)
    cdef tuple _new_request(self, sid, int end, dep, fields, too_large, KnownHead known)
    cdef _response_head(self, _Stream st, int end, fields)
    cdef _closed_or_idle_headers(self, sid)
    cdef _inactive(self, sid, _Stream st, what)
    cdef bint _idle(self, long long sid) except -1
    @cython.locals(st=_Stream)
    cdef _on_rst_stream(self, sid, bytes payload)
    @cython.locals(st=_Stream, inc=cython.longlong, window=cython.longlong)
    cdef _on_window_update(self, sid, bytes payload)
    @cython.locals(st=_Stream, delta=cython.longlong, w=cython.longlong, changes=dict)
    cdef _on_settings(self, sid, int flags, bytes payload)
    @cython.locals(cfg=H2Config, st=_Stream, delta=cython.longlong)
    cdef _local_settings_acked(self)
    cdef _on_ping(self, sid, int flags, bytes payload)
    @cython.locals(events=list, st=_Stream)
    cdef _on_goaway(self, sid, bytes payload)
    @cython.locals(now=double, counts=list)
    cdef _count(self, int kind, long long budget, what)
    cdef _control_queued(self)
    @cython.locals(closed=dict, order=list, head=Py_ssize_t)
    cdef _remember(self, sid, int how)
    cdef _close_stream(self, _Stream st, int how)
    @cython.locals(st=_Stream)
    cdef _stream_error(self, sid, code, reason)
    cdef _refuse_431(self, sid, end, reason)
    @cython.locals(unacked=cython.longlong)
    cdef _consumed(self, long long n)
    cdef _terminate(self, code, reason, bint goaway=*)
    @cython.locals(st=_Stream, unacked=cython.longlong)
    cpdef acknowledge_received_data(self, stream_id, long long n)
    @cython.locals(st=_Stream, n=Py_ssize_t, block=bytes, first=tuple, status=bytes)
    cpdef bint send_headers(self, stream_id, headers, bint end_stream=*, key=*) except -1
    @cython.locals(st=_Stream, n=Py_ssize_t, out=list, maxf=Py_ssize_t, room=cython.longlong,
                   take=Py_ssize_t, pos=Py_ssize_t, size=Py_ssize_t, last=bint)
    cpdef Py_ssize_t send_data(self, stream_id, data, bint end_stream=*) except -1
    @cython.locals(st=_Stream)
    cpdef bint end_stream(self, stream_id) except -1
    @cython.locals(st=_Stream)
    cpdef reset_stream(self, stream_id, error_code=*)
