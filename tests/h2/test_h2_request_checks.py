"""What an HTTP/2 request may not be (issue 8, point 9): a Host field at odds with :authority,
two Host fields, a space or control in :path or :method are malformed, a stream error that
never reaches the app; and a burst of streams past MAX_CONCURRENT_STREAMS has each excess
stream refused alone while the connection serves the rest."""

from __future__ import annotations

import asyncio
import threading

import pytest
from h2.errors import ErrorCodes
from h2_client import (
    DATA,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    H2Client,
    h2_connection,
    raw_frame,
    respond,
)
from support import TIMEOUT

from gateway.h2.fields import same_authority

pytestmark = pytest.mark.timeout(60)


class PathRecorder:
    """Answers 200 with the Host the app saw; keeps the paths that reached it."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.paths: list[str] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        with self.lock:
            self.paths.append(scope["path"])
        await asyncio.sleep(self.hold)
        host = dict(scope["headers"]).get(b"host", b"")
        await respond(send, 200, host)


@pytest.fixture(scope="module")
def server(h2_engine):
    from conftest import run_server

    app = PathRecorder()
    with run_server(app) as running:
        running.app = app
        yield running


def request(method: bytes = b"GET", path: bytes = b"/", authority: bytes | None = b"localhost",
            scheme: bytes = b"http", extra=()) -> list[tuple[bytes, bytes]]:
    fields = [(b":method", method), (b":scheme", scheme)]
    if authority is not None:
        fields.append((b":authority", authority))
    fields.append((b":path", path))
    fields.extend(extra)
    return fields


MALFORMED = {
    "host-differs-from-authority": request(path=b"/m1", extra=[(b"host", b"example.com")]),
    "host-port-differs": request(path=b"/m2", extra=[(b"host", b"localhost:8080")]),
    "two-host-fields": request(path=b"/m3", extra=[(b"host", b"localhost"), (b"host", b"localhost")]),
    "two-host-fields-no-authority": request(
        path=b"/m4", authority=None, extra=[(b"host", b"a"), (b"host", b"b")]),
    "space-in-path": request(path=b"/m5 HTTP/1.1"),
    "tab-in-path": request(path=b"/m6\tx"),
    "del-in-path": request(path=b"/m7\x7fx"),
    "space-in-method": request(method=b"GET /x", path=b"/m8"),
    "empty-method": request(method=b"", path=b"/m9"),
    "separator-in-method": request(method=b"GE(T", path=b"/m10"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request_is_a_stream_error(server, name):
    """RFC 9113 sections 8.1.1 and 8.3.1, RFC 9110 section 7.2: RST_STREAM PROTOCOL_ERROR; the
    connection goes on and the app never sees the request."""
    with h2_connection(server.port) as client:
        client.wait_ready()
        client.send_raw(client.raw_headers(1, MALFORMED[name]))
        assert client.until(lambda: client.frames_of(RST_STREAM, 1) or client.goaway, 3)
        assert [f.frame.error_code for f in client.frames_of(RST_STREAM, 1)] == [
            ErrorCodes.PROTOCOL_ERROR]
        assert client.frames_of(HEADERS, 1) == []
        client.send_raw(raw_frame(PING, 0, 0, b"stillok!"))
        assert client.until(lambda: [f for f in client.frames_of(PING) if "ACK" in f.flags], 3)
    assert not [path for path in server.app.paths if path.startswith("/m")], server.app.paths


ACCEPTED = {
    "host-equal": (request(path=b"/a1", extra=[(b"host", b"localhost")]), b"localhost"),
    "host-other-case": (request(path=b"/a2", extra=[(b"host", b"LocalHost")]), b"LocalHost"),
    "host-default-port": (request(path=b"/a3", extra=[(b"host", b"localhost:80")]), b"localhost:80"),
    "authority-default-port-https": (
        request(path=b"/a4", authority=b"localhost:443", scheme=b"https",
                extra=[(b"host", b"localhost")]), b"localhost"),
    "host-empty-port": (request(path=b"/a5", extra=[(b"host", b"localhost:")]), b"localhost:"),
    "host-without-authority": (request(path=b"/a6", authority=None, extra=[(b"host", b"h")]), b"h"),
    "extension-method": (request(method=b"PURGE", path=b"/a7"), b"localhost"),
    "percent-encoded-path": (request(path=b"/a8/caf%C3%A9?q=%20"), b"localhost"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_well_formed_request_is_served(server, name):
    fields, host = ACCEPTED[name]
    with h2_connection(server.port) as client:
        client.wait_ready()
        client.send_raw(client.raw_headers(1, fields))
        assert client.until(lambda: client.frames_of(DATA, 1) or client.frames_of(RST_STREAM, 1), 3)
        assert client.frames_of(RST_STREAM, 1) == [], client.frames
        assert b"".join(f.frame.data for f in client.frames_of(DATA, 1)) == host


@pytest.mark.parametrize(("host", "authority", "scheme", "same"), [
    (b"example.com", b"example.com", b"https", True),
    (b"EXAMPLE.com", b"example.COM", b"https", True),
    (b"example.com:443", b"example.com", b"https", True),
    (b"example.com:80", b"example.com", b"https", False),
    (b"example.com:80", b"example.com", b"http", True),
    (b"example.com:", b"example.com", b"http", True),
    (b"example.com:8080", b"example.com:8080", b"http", True),
    (b"example.com:8080", b"example.com:8081", b"http", False),
    (b"[::1]", b"[::1]:443", b"https", True),
    (b"[::1]", b"[::2]", b"https", False),
    (b"a.example", b"b.example", b"https", False),
    (b"example.com", b"example.com.", b"https", False),
])
def test_same_authority(host, authority, scheme, same):
    assert same_authority(host, authority, scheme) is same


# -- a burst past MAX_CONCURRENT_STREAMS ----------------------------------------------------------


LIMIT = 10
GET = request(path=b"/burst")


def burst(client: H2Client, count: int, with_body: bool = False) -> list[int]:
    """`count` new streams in one write; with a body, each HEADERS is followed by its DATA."""
    stream_ids = [1 + 2 * n for n in range(count)]
    data = b""
    for stream_id in stream_ids:
        if with_body:
            post = request(method=b"POST", path=b"/burst")
            data += client.raw_headers(stream_id, post, end_stream=False)
            data += raw_frame(DATA, 1, stream_id, b"body")
        else:
            data += client.raw_headers(stream_id, GET)
    client.send_raw(data)
    return stream_ids


def outcome(client: H2Client, stream_ids: list[int]) -> tuple[list[int], list[int]]:
    """The streams answered 200 and the streams refused, once every stream has one or the
    other (the first RST_STREAM of a stream is the one that counts)."""

    def settled() -> bool:
        return all(client.frames_of(RST_STREAM, s) or [f for f in client.frames_of(DATA, s)
                                                       if "END_STREAM" in f.flags]
                   for s in stream_ids)

    client.until(settled, 3 * TIMEOUT)
    answered = [s for s in stream_ids if client.frames_of(HEADERS, s)]
    refused = [s for s in stream_ids if client.frames_of(RST_STREAM, s) and
               client.frames_of(RST_STREAM, s)[0].frame.error_code == ErrorCodes.REFUSED_STREAM]
    return answered, refused


@pytest.mark.parametrize("when", ["before-settings-ack", "after-settings-ack"])
@pytest.mark.parametrize("with_body", [False, True], ids=["headers", "headers-and-data"])
def test_burst_of_three_times_the_limit_refuses_each_excess_stream(serve, when, with_body):
    """RFC 9113 section 5.1.2: each stream past the advertised limit gets REFUSED_STREAM (the
    client may retry it); the connection lives on and serves the streams within the limit,
    whether the burst comes before the client has acknowledged the limit or after."""
    app = PathRecorder(hold=0.5)
    with serve(app, h2_max_concurrent_streams=LIMIT) as running, \
            h2_connection(running.port) as client:
        if when == "after-settings-ack":
            client.wait_ready()
        stream_ids = burst(client, 3 * LIMIT, with_body)
        answered, refused = outcome(client, stream_ids)
        assert answered == stream_ids[:LIMIT], client.frames
        assert refused == stream_ids[LIMIT:], client.frames
        assert not client.frames_of(GOAWAY)
        client.send_raw(client.raw_headers(stream_ids[-1] + 2, GET))
        assert client.until(lambda: client.frames_of(DATA, stream_ids[-1] + 2), TIMEOUT)
        assert client.frames_of(RST_STREAM, stream_ids[-1] + 2) == []
    assert len(app.paths) == LIMIT + 1


def test_streams_refused_in_bulk_charge_the_frame_budget(serve):
    """Every refused stream cost a header block's decoding: a client that keeps opening streams
    past the limit runs its budget dry and its connection ends ENHANCE_YOUR_CALM."""
    with serve(PathRecorder(hold=2.0), h2_max_concurrent_streams=2, control_frame_budget=50) \
            as running, h2_connection(running.port) as client:
        client.wait_ready()
        burst(client, 100)
        assert client.read_until_closed(TIMEOUT)
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
