# Types of workers/h2/frames.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md): the functions
# the connection (workers/h2/conn.pxd) calls per frame, as C calls. The
# constants stay Python objects (tests and other modules import them).
cimport cython

cdef unsigned char _HEAD_BUF[9]     # frame_header writes here
@cython.locals(h='unsigned char *')
cpdef bytes frame_header(unsigned long length, unsigned int ftype, unsigned int flags,
                         unsigned long stream_id)
cpdef bytes strip_padding(bytes payload)
cpdef bytes parse_data(stream_id, int flags, bytes payload)
cpdef tuple parse_headers(stream_id, int flags, bytes payload)
cpdef long long parse_window_update(bytes payload) except -1
cpdef bytes headers_frames(stream_id, bytes block, bint end_stream=*, Py_ssize_t max_frame_size=*)
cpdef bytes rst_stream_frame(stream_id, error_code)
cpdef bytes window_update_frame(stream_id, increment)
