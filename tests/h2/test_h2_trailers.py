"""Response trailers (`http.response.trailers`): declared in the scope, sent as a trailing
HEADERS frame with END_STREAM after all the DATA, as gRPC needs them."""

from __future__ import annotations

import pytest
from h2.settings import SettingCodes
from h2_client import DATA, HEADERS, h2_connection
from support import captured_log, http_app, read_body

pytestmark = pytest.mark.timeout(30)


def trailer_app(chunks: list[bytes], trailers: list[tuple[bytes, bytes]], seen: list | None = None):
    @http_app
    async def app(scope, receive, send):
        if seen is not None:
            seen.append(scope["extensions"])
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"application/grpc")]})
        for n, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": n < len(chunks) - 1})
        if not chunks:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": trailers})

    return app


GRPC_TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"all good")]


def stream_frames(client, stream_id):
    return [frame for frame in client.frames if frame.stream_id == stream_id]


def test_trailers_arrive_as_a_final_headers_frame(serve):
    seen: list = []
    with captured_log() as log, serve(trailer_app([b"hello"], GRPC_TRAILERS, seen)) as server, \
            h2_connection(server.port) as client:
        stream = client.request("/", headers=[(b"te", b"trailers")])
        result = client.response(stream)
    assert "http.response.trailers" in seen[0]
    assert result.status == 200
    assert result.header(b"content-type") == b"application/grpc"
    assert bytes(result.data) == b"hello"
    assert result.trailers == GRPC_TRAILERS
    frames = stream_frames(client, stream)
    kinds = [frame.type for frame in frames]
    assert kinds[0] == HEADERS and "END_STREAM" not in frames[0].flags
    assert kinds[-1] == HEADERS, frames
    assert {"END_STREAM", "END_HEADERS"} <= frames[-1].flags
    assert all("END_STREAM" not in frame.flags for frame in frames[:-1])
    assert DATA in kinds[1:-1]
    # Trailers carry no pseudo-headers (RFC 9113 section 8.1).
    assert not [name for name, _ in result.trailers if name.startswith(b":")]
    assert not log.at_least(30), log.describe()


def test_trailers_after_a_streamed_body(serve):
    chunks = [b"part-%d;" % n for n in range(10)]
    with serve(trailer_app(chunks, GRPC_TRAILERS)) as server, h2_connection(server.port) as client:
        result = client.response(client.request("/"))
    assert bytes(result.data) == b"".join(chunks)
    assert result.trailers == GRPC_TRAILERS
    assert stream_frames(client, 1)[-1].type == HEADERS


def test_trailers_with_an_empty_body(serve):
    with serve(trailer_app([], [(b"grpc-status", b"5")])) as server, h2_connection(server.port) as client:
        result = client.response(client.request("/"))
    assert result.status == 200
    assert bytes(result.data) == b""
    assert result.trailers == [(b"grpc-status", b"5")]
    frames = stream_frames(client, 1)
    assert frames[-1].type == HEADERS and "END_STREAM" in frames[-1].flags
    assert frames[0].type == HEADERS and "END_STREAM" not in frames[0].flags


def test_trailers_wait_for_a_flow_controlled_body(serve):
    """The body waits for window; the trailers come after every byte of it, never before."""
    body = bytes(range(256)) * 400  # 102 400 bytes, more than the client's window
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 10_000}
    with serve(trailer_app([body], GRPC_TRAILERS)) as server, \
            h2_connection(server.port, settings=settings) as client:
        result = client.response(client.request("/"), 10)
    assert bytes(result.data) == body
    assert result.trailers == GRPC_TRAILERS
    frames = stream_frames(client, 1)
    assert frames[-1].type == HEADERS and "END_STREAM" in frames[-1].flags
    assert sum(frame.length for frame in frames if frame.type == DATA) == len(body)


def test_trailers_on_many_concurrent_streams(serve):
    with serve(trailer_app([b"a", b"b"], GRPC_TRAILERS)) as server, h2_connection(server.port) as client:
        streams = [client.request(f"/{n}") for n in range(10)]
        results = [client.response(stream) for stream in streams]
    for result in results:
        assert bytes(result.data) == b"ab"
        assert result.trailers == GRPC_TRAILERS
