# Types of workers/h2/events.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md): cdef classes,
# so that the connections read an event's fields in C. The fields stay
# Python objects (the values the .py gives them).
cdef class Event:
    pass

cdef class KnownHead:
    cdef public object gen, fields, checked, derived

cdef class RequestReceived(Event):
    cdef public object stream_id, headers, end_stream, method, scheme, path, authority
    cdef public object host, content_length, regular
    cdef public KnownHead known

cdef class ResponseReceived(Event):
    cdef public object stream_id, headers, end_stream, status, content_length, regular

cdef class TrailersReceived(Event):
    cdef public object stream_id, headers

cdef class DataReceived(Event):
    cdef public object stream_id, data, flow_controlled_length, end_stream

cdef class StreamReset(Event):
    cdef public object stream_id, error_code, remote, reason

cdef class WindowUpdated(Event):
    cdef public object stream_id, delta

cdef class RemoteSettingsChanged(Event):
    cdef public object changes

cdef class SettingsAcked(Event):
    pass

cdef class PingReceived(Event):
    cdef public object data

cdef class PingAckReceived(Event):
    cdef public object data

cdef class ConnectionTerminated(Event):
    cdef public object error_code, last_stream_id, remote, reason
