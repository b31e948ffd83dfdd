# Types of workers/h2conn.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md). The methods a
# stream calls are ClientConn's cpdef ones (workers/clientconn.pxd), with
# the same signatures, so that a stream calls them in C.
cimport cython
from workers.clientconn cimport ClientConn
from workers.h2.conn cimport H2Connection as H2Codec
from workers.h2.events cimport DataReceived, RequestReceived
from workers.h2.messages cimport h1_chunk, h1_last_chunk, head_fields, to_request
from workers.http1 cimport Request, Response
from workers.loop cimport Loop, Timer
from workers.server cimport ServerConn
from workers.stream cimport Stream

# module constants as C values (assigned by the .py's imports)
cdef int C_OPEN, C_CLOSING, C_LINGER, C_CLOSED
cdef int ST_DONE, ST_SERVER, ST_TUNNEL
cdef int EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT
cdef Py_ssize_t HIGH_WATER
cdef double INF, SETTINGS_WAIT

cdef class _H2Stream:
    cdef public object sid, head, head_key, dechunk, trailers, resp_trailers
    cdef public Stream stream
    cdef public list out, req_in
    cdef public Py_ssize_t out_len
    cdef public bint ended, fin, req_end, req_sent, chunked, head_only, live, queued
    cdef public double when

@cython.locals(s=Stream)
cdef _H2Stream _h2_stream(stream)

cdef class H2Connection(ClientConn):
    cdef public H2Codec h2
    cdef public int cfd, state
    cdef public Timer timer, stimer
    cdef public dict active, heads
    cdef public list touched
    cdef public bytes out_c
    cdef public tuple last_uri
    cdef public bint c_eof, soon
    cdef public double to_client, to_request, to_keepalive, idle_since, s_when
    cdef public Py_ssize_t waiting_body
    cdef object __weakref__
    @cython.locals(st=_H2Stream)
    cpdef take(self, bytes data)
    @cython.locals(st=_H2Stream)
    cdef data_received(self, DataReceived ev)
    cpdef request_ended(self, _H2Stream st)
    @cython.locals(st=_H2Stream, stream=Stream, req=Request, last=tuple)
    cpdef new_stream(self, RequestReceived ev)
    cpdef stream_reset(self, _H2Stream st, str who)
    cpdef forget(self, _H2Stream st)
    @cython.locals(st=_H2Stream)
    cpdef bint client_room(self, stream) except -1
    @cython.locals(st=_H2Stream)
    cpdef body_wanted(self, stream)
    @cython.locals(st=_H2Stream, r=Response)
    cpdef response_head(self, stream, resp)
    @cython.locals(st=_H2Stream)
    cpdef response_data(self, stream, bytes data)
    @cython.locals(st=_H2Stream)
    cpdef local_reply(self, stream, bytes data)
    @cython.locals(st=_H2Stream)
    cpdef stream_ended(self, stream)
    @cython.locals(st=_H2Stream)
    cpdef start_tunnel(self, stream)
    cpdef tunnel_data(self, stream, bytes data)
    cpdef take_own(self, srv)
    cpdef keep_own(self, sc)
    @cython.locals(st=_H2Stream)
    cpdef stream_io(self, stream)
    cpdef end_of_turn(self)
    cdef touch(self, _H2Stream st)
    cpdef bint write_client(self) except -1
    @cython.locals(stream=Stream, sc=ServerConn, h2=H2Codec, chunked=bint, end=bint, last=bint,
                   n=Py_ssize_t)
    cpdef pump(self, _H2Stream st)
    @cython.locals(st=_H2Stream, stream=Stream, sc=ServerConn, loop=Loop, touched=list,
                   when=double, smask=int, batch=list)
    cpdef finish_io(self)
    @cython.locals(loop=Loop, readable=bint, cmask=int)
    cpdef update_mask(self)
    @cython.locals(when=double)
    cpdef rearm(self)
    @cython.locals(st=_H2Stream, stream=Stream, when=double, now=double)
    cpdef on_stream_timers(self)
