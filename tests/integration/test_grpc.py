"""gRPC end to end through farm: a grpcio server (cleartext HTTP/2) behind a
backend of `proto = "h2"`, a grpcio client on farm's cleartext bind
(HTTP/2 with prior knowledge). The service is written with grpcio's
generic handlers on raw bytes (no generated code): unary, server
streaming, client streaming and bidirectional calls; grpc-status travels
in the trailers both ways through farm, an error status and its message
reach the client, metadata and trailing metadata pass, and the access
log has one line per call."""

from __future__ import annotations

from concurrent import futures

import pytest

from tests.integration.backends import free_port

grpc = pytest.importorskip("grpc")

pytestmark = pytest.mark.timeout(120)
SERVICE = "farm.test.Echo"


def _unary(request: bytes, context) -> bytes:
    if request.startswith(b"fail"):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "denied: " + request.decode())
    md = dict(context.invocation_metadata())
    context.set_trailing_metadata((("x-trailer", "t-" + md.get("x-tag", "none")),))
    return b"echo:" + request


def _server_stream(request: bytes, context):
    n = int(request)
    for i in range(n):
        yield b"item %d" % i


def _client_stream(requests, context) -> bytes:
    return b"+".join(requests)


def _bidi(requests, context):
    for r in requests:
        yield r.upper()


def grpc_server():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def grpc_backend():
    server, port = grpc_server()
    yield port
    server.stop(0)


def config(server_port: int, port: int) -> str:
    return f"""
[global]
workers = 1
hard_stop_after = "5s"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[defaults]
mode = "http"
[frontends.grpc]
bind = ["127.0.0.1:{port}"]
default_backend = "echo"
[backends.echo]
proto = "h2"
[[backends.echo.servers]]
name = "g1"
address = "127.0.0.1:{server_port}"
"""


def test_grpc_calls_through_farm(farm_factory, grpc_backend):
    port = free_port()
    farm = farm_factory(config(grpc_backend, port))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        unary = ch.unary_unary(f"/{SERVICE}/Unary")
        resp, call = unary.with_call(b"hello", metadata=(("x-tag", "abc"),), timeout=10)
        assert resp == b"echo:hello"
        assert call.code() == grpc.StatusCode.OK
        assert ("x-trailer", "t-abc") in call.trailing_metadata()
        # a larger message than the windows (flow control both ways)
        big = bytes(range(256)) * 4096
        assert unary(big, timeout=10) == b"echo:" + big
        items = list(ch.unary_stream(f"/{SERVICE}/ServerStream")(b"50", timeout=10))
        assert items == [b"item %d" % i for i in range(50)]
        joined = ch.stream_unary(f"/{SERVICE}/ClientStream")(
            iter([b"a", b"b", b"c"]), timeout=10)
        assert joined == b"a+b+c"
        out = list(ch.stream_stream(f"/{SERVICE}/Bidi")(
            iter([b"x%d" % i for i in range(20)]), timeout=10))
        assert out == [b"X%d" % i for i in range(20)]
        with pytest.raises(grpc.RpcError) as e:
            unary(b"fail now", timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert e.value.details() == "denied: fail now"
    lines = farm.wait_access_lines(6)
    assert len(lines) == 6, lines
    assert all("echo/g1" in line and " 200 " in line for line in lines), lines
    assert f'"POST http://127.0.0.1:{port}/{SERVICE}/Unary HTTP/2.0"' in lines[0]
    assert any(f"/{SERVICE}/Bidi HTTP/2.0" in line for line in lines)


def test_grpc_many_concurrent_calls_share_a_connection(farm_factory, grpc_backend):
    port = free_port()
    farm_factory(config(grpc_backend, port))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        unary = ch.unary_unary(f"/{SERVICE}/Unary")
        futs = [unary.future(b"m%d" % i, timeout=20) for i in range(50)]
        assert [f.result() for f in futs] == [b"echo:m%d" % i for i in range(50)]


def test_grpc_server_gone_is_unavailable(farm_factory):
    port = free_port()
    farm_factory(config(free_port(), port))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=10)
        # farm's 503 becomes UNAVAILABLE in the client (gRPC's HTTP mapping)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
