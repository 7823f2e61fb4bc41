"""Streams to ASGI: one app call per stream with an HTTP/2 scope, streams running concurrently,
and `http.disconnect` delivered to exactly the apps a reset or a lost connection concerns."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_client import RST_STREAM, SETTINGS, client_tls_context, h2_connection, respond
from support import (
    TIMEOUT,
    assert_request_target,
    captured_log,
    http_app,
    read_body,
    tls_settings,
    wait_until,
)

pytestmark = pytest.mark.timeout(30)


class ScopeRecorder:
    def __init__(self) -> None:
        self.scopes: list[dict] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.scopes.append(scope)
        body = await read_body(receive)
        self.bodies.append(body)
        await respond(send, 200, b"seen")


# -- the scope ----------------------------------------------------------------------------------


def test_scope_over_tls(serve, certs):
    app = ScopeRecorder()
    with serve(app, **tls_settings(certs)) as server, \
            h2_connection(server.port, client_tls_context(certs.ca_file)) as client:
        stream = client.request(
            "/caf%C3%A9/a%2Fb?x=1&y=%20z", method="GET", authority=b"example.test:8443",
            headers=[(b"user-agent", b"raw-h2"), (b"x-one", b"1"), (b"x-one", b"2")],
        )
        result = client.response(stream)
    assert result.status == 200
    scope = app.scopes[0]
    assert scope["type"] == "http"
    assert scope["http_version"] == "2"
    assert scope["asgi"]["version"] == "3.0"
    assert_request_target(scope, "GET", "https", "/café/a/b", b"/caf%C3%A9/a%2Fb", b"x=1&y=%20z")
    headers = scope["headers"]
    assert all(type(name) is bytes and type(value) is bytes for name, value in headers)
    assert not [name for name, _ in headers if name.startswith(b":")], headers
    assert [value for name, value in headers if name == b"host"] == [b"example.test:8443"]
    assert (b"user-agent", b"raw-h2") in headers
    assert [value for name, value in headers if name == b"x-one"] == [b"1", b"2"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", server.port)
    assert "http.response.trailers" in scope["extensions"]
    assert "tls" in scope["extensions"]


def test_scope_over_h2c_with_post_body(serve):
    app = ScopeRecorder()
    with serve(app) as server, h2_connection(server.port) as client:
        stream = client.request("/submit", method="POST", body=b"a=1&b=2",
                                headers=[(b"content-type", b"application/x-www-form-urlencoded")])
        result = client.response(stream)
    assert result.status == 200
    scope = app.scopes[0]
    assert (scope["http_version"], scope["method"], scope["scheme"]) == ("2", "POST", "http")
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/submit", b"/submit", b"")
    assert [value for name, value in scope["headers"] if name == b"host"] == [b"localhost"]
    assert app.bodies == [b"a=1&b=2"]


def test_scope_with_root_path(serve):
    app = ScopeRecorder()
    with serve(app, root_path="/api") as server, h2_connection(server.port) as client:
        client.response(client.request("/items?q=1"))
    scope = app.scopes[0]
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/api", "/api/items", b"/api/items")


def test_httpx_sees_http2_and_the_host_header(serve, certs):
    app = ScopeRecorder()
    with serve(app, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=TIMEOUT) as client:
        response = client.post(f"https://localhost:{server.port}/p?z=9", content=b"payload")
    assert response.http_version == "HTTP/2"
    assert response.text == "seen"
    scope = app.scopes[0]
    assert [value for name, value in scope["headers"] if name == b"host"] == [
        f"localhost:{server.port}".encode()
    ]
    assert app.bodies == [b"payload"]


def test_response_headers_and_bodies(serve):
    """Status and headers as the app gave them, Content-Length added for a single-chunk body,
    none for HEAD and 204, and no connection-specific fields (RFC 9113 section 8.2.2)."""

    @http_app
    async def app(scope, receive, send):
        await read_body(receive)
        if scope["path"] == "/empty":
            await respond(send, 204, b"", [])
            return
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"X-Custom", b"Yes"), (b"connection", b"keep-alive"),
                                (b"transfer-encoding", b"chunked")]})
        await send({"type": "http.response.body", "body": b"hello"})

    with serve(app) as server, h2_connection(server.port) as client:
        get = client.response(client.request("/"))
        head = client.response(client.request("/", method="HEAD"))
        empty = client.response(client.request("/empty"))
    assert get.status == 201
    assert get.header(b"x-custom") == b"Yes"
    assert get.header(b"content-length") == b"5"
    assert get.header(b"connection") is None and get.header(b"transfer-encoding") is None
    assert bytes(get.data) == b"hello"
    assert head.status == 201 and bytes(head.data) == b""
    assert empty.status == 204 and bytes(empty.data) == b""


# -- concurrency --------------------------------------------------------------------------------


@http_app
async def sleepy_app(scope, receive, send):
    await read_body(receive)
    delay = float(scope["query_string"].decode().partition("=")[2] or 0.5)
    await asyncio.sleep(delay)
    await respond(send, 200, scope["path"].encode())


def test_twenty_streams_run_concurrently(serve):
    with serve(sleepy_app) as server, h2_connection(server.port) as client:
        started = time.monotonic()
        streams = [client.request(f"/{n}?d=0.5") for n in range(20)]
        results = {stream: client.response(stream) for stream in streams}
        elapsed = time.monotonic() - started
    for n, stream in enumerate(streams):
        assert (results[stream].status, bytes(results[stream].data)) == (200, f"/{n}".encode())
    assert elapsed < 3.0, f"20 streams of 0.5 s took {elapsed:.2f} s: they did not run concurrently"


def test_slow_stream_does_not_hold_up_a_fast_one(serve):
    with serve(sleepy_app) as server, h2_connection(server.port) as client:
        slow = client.request("/slow?d=3")
        fast = client.request("/fast?d=0")
        started = time.monotonic()
        result = client.response(fast)
        fast_time = time.monotonic() - started
        assert (result.status, bytes(result.data)) == (200, b"/fast")
        assert not client.streams[slow].done
        assert fast_time < 1.0
        slow_result = client.response(slow)
    assert bytes(slow_result.data) == b"/slow"


def test_a_stream_stalled_on_flow_control_does_not_hold_up_others(serve):
    """A response blocked on its stream window (client gives it none) leaves other streams'
    responses flowing."""

    @http_app
    async def app(scope, receive, send):
        await read_body(receive)
        size = 200_000 if scope["path"] == "/big" else 10
        await respond(send, 200, b"x" * size)

    with serve(app) as server, h2_connection(server.port, auto_ack=False) as client:
        client.open_connection_window()
        big = client.request("/big")
        client.until(lambda: len(client.streams[big].data) >= 65535, 3)
        # The big one has used its whole default window and waits; small ones still go.
        for _ in range(3):
            result = client.response(client.request("/small"))
            assert (result.status, bytes(result.data)) == (200, b"x" * 10)
        assert not client.streams[big].done
        client.auto_ack = True
        client.ack(big, len(client.streams[big].data))
        assert bytes(client.response(big).data) == b"x" * 200_000


def test_many_streams_one_after_another_on_one_connection(serve, certs):
    with serve(sleepy_app, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=TIMEOUT) as client:
        for n in range(150):
            response = client.get(f"https://localhost:{server.port}/{n}?d=0")
            assert response.http_version == "HTTP/2"
            assert response.text == f"/{n}"


def test_max_concurrent_streams_is_advertised_and_excess_streams_are_refused(serve):
    """RFC 9113 section 5.1.2: a HEADERS frame beyond the advertised limit is a stream error
    (PROTOCOL_ERROR or REFUSED_STREAM); the streams already open carry on."""
    with serve(sleepy_app, h2_max_concurrent_streams=3) as server, \
            h2_connection(server.port) as client:
        client.until(lambda: client.frames_of(SETTINGS), 3)
        settings = client.frames_of(SETTINGS)[0].frame.settings
        assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 3
        # Open three streams through h2, then a fourth by hand (h2 would refuse to send it).
        first = [client.request(f"/{n}?d=1") for n in range(3)]
        extra = client.conn.get_next_available_stream_id()
        client.send_raw(client.raw_headers(extra, [
            (b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"),
            (b":path", b"/extra?d=0"),
        ]))
        client.until(lambda: client.frames_of(RST_STREAM, extra) or client.goaway, 3)
        resets = client.frames_of(RST_STREAM, extra)
        assert client.goaway is None, (
            f"the whole connection was ended (GOAWAY {client.goaway!r}) for one stream too many"
        )
        assert resets and resets[0].frame.error_code in (
            ErrorCodes.REFUSED_STREAM, ErrorCodes.PROTOCOL_ERROR)
        for n, stream in enumerate(first):
            assert bytes(client.response(stream).data) == f"/{n}".encode()


# -- disconnects --------------------------------------------------------------------------------


class DisconnectWatcher:
    """Reads the request, then waits (up to `wait` s) for a disconnect; answers if none came."""

    def __init__(self, wait: float = 1.5) -> None:
        self.wait = wait
        self.disconnected: list[str] = []
        self.answered: list[str] = []
        self.send_errors: list[str] = []
        self.started: list[str] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        with self.lock:
            self.started.append(path)
        await read_body(receive)
        try:
            message = await asyncio.wait_for(receive(), self.wait)
        except asyncio.TimeoutError:
            await respond(send, 200, path.encode())
            with self.lock:
                self.answered.append(path)
            return
        assert message["type"] == "http.disconnect"
        with self.lock:
            self.disconnected.append(path)
        try:
            await respond(send, 200, b"too late")
        except OSError:
            with self.lock:
                self.send_errors.append(path)


def test_rst_stream_disconnects_exactly_that_stream(serve):
    app = DisconnectWatcher()
    with captured_log() as log, serve(app) as server, h2_connection(server.port) as client:
        doomed = client.request("/doomed")
        kept = client.request("/kept")
        assert wait_until(lambda: len(app.started) == 2)
        client.reset(doomed, ErrorCodes.CANCEL)
        assert wait_until(lambda: app.disconnected == ["/doomed"], 1.0), app.disconnected
        result = client.response(kept)
        assert (result.status, bytes(result.data)) == (200, b"/kept")
        # The reset stream gets nothing more, and `send` after the disconnect raised OSError.
        assert wait_until(lambda: app.send_errors == ["/doomed"])
        assert client.streams[doomed].headers is None
        # The connection goes on.
        again = client.response(client.request("/after"))
        assert bytes(again.data) == b"/after"
    assert app.disconnected == ["/doomed"]
    assert not log.tracebacks(), log.describe()


def test_rst_stream_during_a_streamed_response(serve):
    """The client resets a stream while the app is streaming: the app's next `send` raises
    OSError (ASGI spec 2.4), nothing is logged as an error, other streams are unaffected."""
    outcome: list[str] = []

    @http_app
    async def app(scope, receive, send):
        await read_body(receive)
        if scope["path"] == "/quick":
            await respond(send, 200, b"quick")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(200):
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.02)
        except OSError:
            outcome.append("send raised")
            return
        outcome.append("finished")

    with captured_log() as log, serve(app) as server, h2_connection(server.port) as client:
        stream = client.request("/ticks")
        client.until(lambda: len(client.streams[stream].data) >= 25, 3)
        client.reset(stream)
        quick = client.response(client.request("/quick"))
        assert bytes(quick.data) == b"quick"
        assert wait_until(lambda: outcome, 3)
    assert outcome == ["send raised"]
    assert not log.at_least(30), log.describe()


def test_connection_lost_disconnects_every_open_stream(serve):
    app = DisconnectWatcher(wait=5)
    with captured_log() as log, serve(app) as server:
        with h2_connection(server.port) as client:
            for n in range(4):
                client.request(f"/s{n}")
            assert wait_until(lambda: len(app.started) == 4)
        # The socket is closed here.
        assert wait_until(lambda: len(app.disconnected) == 4, 3), app.disconnected
        assert sorted(app.disconnected) == ["/s0", "/s1", "/s2", "/s3"]
        assert app.answered == []
        # Still serving.
        with h2_connection(server.port) as other:
            app.wait = 0.05
            result = other.response(other.request("/fresh"))
            assert bytes(result.data) == b"/fresh"
    assert not log.tracebacks(), log.describe()


def test_request_body_in_many_data_frames(serve):
    @http_app
    async def app(scope, receive, send):
        body = await read_body(receive)
        await respond(send, 200, hashlib.sha256(body).hexdigest().encode())

    payload = bytes(range(256)) * 1000
    with serve(app) as server, h2_connection(server.port) as client:
        stream = client.request("/up", method="POST", end=False)
        for offset in range(0, len(payload), 1000):
            client.send_all(stream, payload[offset:offset + 1000], end=False)
            client.pump(0.001)
        client.send_all(stream, b"", end=True)
        result = client.response(stream)
    assert bytes(result.data) == hashlib.sha256(payload).hexdigest().encode()
