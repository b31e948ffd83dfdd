"""A plain transport that gave its socket object up (drop_socket, what an
accepted client's transport does): real TCP sockets on 127.0.0.1."""

import socket
import struct
import time

from workers.transport import PlainTransport


def _pair():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    client = socket.create_connection(lsock.getsockname())
    accepted, _ = lsock.accept()
    lsock.close()
    accepted.setblocking(False)
    return client, accepted


def test_a_transport_without_its_socket_object_reads_writes_and_shuts_down():
    client, accepted = _pair()
    port = accepted.getsockname()[1]
    t = PlainTransport(accepted)
    t.drop_socket()
    assert t._sock is None and accepted.fileno() == -1      # the fd is the transport's now
    assert t.recv() is None
    client.sendall(b"ping")
    assert t.recv() == b"ping"
    assert t.send(b"pong") == 4
    assert client.recv(10) == b"pong"
    t.shutdown_write()
    assert client.recv(10) == b""                            # our FIN
    assert t.local_port() == port                            # made again from the fd
    assert t.sock.getsockname()[1] == port
    client.close()
    t.close()


def test_closing_a_transport_without_its_socket_object_twice_closes_the_fd_once():
    client, accepted = _pair()
    t = PlainTransport(accepted)
    t.drop_socket()
    fd = t.fd
    t.close()
    other = socket.socket()          # likely takes the same descriptor number
    try:
        t.close()                    # must not close that one
        assert other.fileno() >= 0
        other.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)  # still open
    finally:
        other.close()
        client.close()
    assert fd >= 0


def test_shutdown_write_says_whether_a_lingering_close_has_anything_to_wait_for():
    client, accepted = _pair()
    t = PlainTransport(accepted)
    t.drop_socket()
    assert t.shutdown_write() is False                       # connected: our FIN goes
    assert client.recv(10) == b""
    client.close()
    t.close()
    client, accepted = _pair()
    t = PlainTransport(accepted)
    t.drop_socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()                                           # a reset
    time.sleep(0.05)
    assert t.shutdown_write() is True                        # ENOTCONN: close at once
    t.close()
