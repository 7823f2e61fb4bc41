"""The WebSocket opening handshake over HTTP/1.1 (RFC 6455 section 4) as a client sees it: the
scope the app gets, what an accept puts in the 101, and the 400 a malformed handshake gets
before any app runs."""

from __future__ import annotations

import base64
import hashlib
import threading

import pytest
from support import captured_log, tls_settings
from ws_support import (
    KEY,
    TEXT,
    RawWebSocket,
    echo_app,
    exchange_raw,
    frame,
    handshake,
    read_http_response,
    ws_app,
    ws_connect,
    ws_url,
)
from wsproto.events import TextMessage

pytestmark = pytest.mark.timeout(30)


def scope_recorder(seen: dict, subprotocol: str | None = None, headers: list | None = None):
    @ws_app
    async def app(scope, receive, send):
        seen["scope"] = scope
        seen["connect"] = await receive()
        accept = {"type": "websocket.accept"}
        if subprotocol is not None:
            accept["subprotocol"] = subprotocol
        if headers is not None:
            accept["headers"] = headers
        await send(accept)
        message = await receive()
        if message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})
            await receive()

    return app


def test_scope_fields(serve, http):
    seen: dict = {}
    with serve(scope_recorder(seen), http=http) as server:
        url = ws_url(server, "/chat/caf%C3%A9%20room?room=1&x=%20y")
        with ws_connect(url, subprotocols=["chat.v2", "chat.v1"],
                        additional_headers={"X-Test": "yes"}) as ws:
            ws.send("ping")
            assert ws.recv(timeout=5) == "ping"
            # The app picked none of the offered subprotocols: none is answered.
            assert ws.subprotocol is None
            assert ws.response.headers.get("Sec-WebSocket-Protocol") is None
    scope = seen["scope"]
    assert seen["connect"] == {"type": "websocket.connect"}
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat/café room"
    assert scope["raw_path"] == b"/chat/caf%C3%A9%20room"
    assert scope["query_string"] == b"room=1&x=%20y"
    assert scope["root_path"] == ""
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["subprotocols"] == ["chat.v2", "chat.v1"]
    assert "websocket.http.response" in scope["extensions"]
    headers = scope["headers"]
    assert all(name == name.lower() and isinstance(value, bytes) for name, value in headers)
    assert (b"x-test", b"yes") in headers
    assert (b"upgrade", b"websocket") in headers
    assert any(name == b"sec-websocket-key" for name, _ in headers)
    assert (b"sec-websocket-version", b"13") in headers
    assert "method" not in scope  # an http scope field, not a websocket one


def test_scope_over_tls_is_wss(serve, certs):
    seen: dict = {}
    with serve(scope_recorder(seen), **tls_settings(certs)) as server, \
            ws_connect(ws_url(server, "/secure", scheme="wss", host="localhost"),
                       ssl=certs.client_context()) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=5) == "over tls"
    assert seen["scope"]["scheme"] == "wss"
    assert seen["scope"]["path"] == "/secure"
    assert "websocket.http.response" in seen["scope"]["extensions"]


def test_no_subprotocols_offered_is_an_empty_list(serve):
    seen: dict = {}
    with serve(scope_recorder(seen)) as server, ws_connect(ws_url(server)) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    assert seen["scope"]["subprotocols"] == []


def test_accept_with_subprotocol_and_headers(serve, http):
    seen: dict = {}
    app = scope_recorder(seen, subprotocol="chat.v1",
                         headers=[(b"X-Served-By", b"gateway-test"), (b"set-cookie", b"session=abc")])
    with serve(app, http=http) as server, \
            ws_connect(ws_url(server), subprotocols=["chat.v2", "chat.v1"]) as ws:
        assert ws.response.status_code == 101
        assert ws.subprotocol == "chat.v1"
        headers = ws.response.headers
        assert headers["Sec-WebSocket-Protocol"] == "chat.v1"
        assert headers["X-Served-By"] == "gateway-test"
        assert headers["Set-Cookie"] == "session=abc"
        ws.send("after accept")
        assert ws.recv(timeout=5) == "after accept"


def test_accepting_a_subprotocol_the_client_did_not_offer_is_a_500(serve):
    app = scope_recorder({}, subprotocol="not-offered")
    with captured_log() as log, serve(app) as server, RawWebSocket(server.port, subprotocols=["chat"]) as raw:
        raw.send(raw.request)
        response, _ = read_http_response(raw.sock)
    assert response.status == 500
    [record] = log.tracebacks()
    assert "not-offered" in str(record.exc_info[1])


def test_101_answer_on_the_wire(serve, http):
    """A handshake as Firefox words it (`Connection: keep-alive, Upgrade`, `Upgrade:
    WebSocket`) is accepted, and the 101 carries the right Sec-WebSocket-Accept."""
    with serve(echo_app, http=http) as server:
        request = handshake("/", upgrade="WebSocket", connection="keep-alive, Upgrade")
        with RawWebSocket(server.port) as raw:
            raw.send_raw(request)
            response, data = read_http_response(raw.sock)
            assert response.status == 101
            expected = base64.b64encode(
                hashlib.sha1(KEY.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            assert response.get(b"sec-websocket-accept") == expected
            assert response.get(b"upgrade").lower() == b"websocket"
            assert response.get(b"connection").lower() == b"upgrade"
            assert response.get(b"content-length") is None
            assert response.get(b"transfer-encoding") is None
            # No deflate was offered, so none is answered.
            assert response.get(b"sec-websocket-extensions") is None
            raw.send_raw(frame(TEXT, b"hand made"))
            while len(data) < 11:
                data += raw.sock.recv(100)
            assert data == b"\x81\x09hand made"  # server frames are never masked


def test_frame_in_the_same_packet_as_the_handshake(serve, http):
    """Bytes after the handshake request (read before the app accepted) are the first frame."""
    with serve(echo_app, http=http) as server, RawWebSocket(server.port) as raw:
        raw.send_raw(raw.ws.send(raw.request) + frame(TEXT, b"early bird"))
        raw.next_event()  # the 101
        event = raw.next_event()
        assert isinstance(event, TextMessage) and event.data == "early bird"


async def http_or_echo(scope, receive, send):
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"plain"})
    else:
        await echo_app(scope, receive, send)


def test_upgrade_after_a_request_on_the_same_connection(serve, http):
    with serve(http_or_echo, http=http) as server, RawWebSocket(server.port) as raw:
        raw.send_raw(b"GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first, _ = read_http_response(raw.sock)
        assert (first.status, first.body) == (200, b"plain")
        raw.open()
        raw.send(TextMessage(data="second is a websocket"))
        assert raw.next_event().data == "second is a websocket"


def test_handshake_with_a_body_is_a_400(serve, http):
    """A GET handshake has no use for a body, and the engines would disagree on where the frames
    begin (RFC 9110 section 7.8: after the request message); the server refuses it, so the body
    is never taken for WebSocket frames."""
    called = threading.Event()

    @ws_app
    async def app(scope, receive, send):
        called.set()
        await send({"type": "websocket.accept"})

    with captured_log() as log, serve(app, http=http) as server:
        response, closed = exchange_raw(
            server.port, handshake(extra="Content-Length: 5\r\n") + b"hello" + frame(TEXT, b"after body")
        )
    assert response.status == 400
    assert response.get(b"sec-websocket-version") == b"13"
    assert closed
    assert not called.is_set()
    assert log.tracebacks() == []


BAD_HANDSHAKES = {
    "missing-key": handshake(key=None),
    "version-12": handshake(version="12"),
    "missing-version": handshake(version=None),
    "short-key": handshake(key=base64.b64encode(b"too short").decode()),
    "key-not-base64": handshake(key="!!!!!!!!!!!!!!!!!!!!!!=="),
    "two-versions": handshake(extra="Sec-WebSocket-Version: 8\r\n"),
    "two-keys": handshake(extra=f"Sec-WebSocket-Key: {KEY}\r\n"),
    "post": handshake(method="POST", extra="Content-Length: 0\r\n"),
}


@pytest.mark.parametrize("case", BAD_HANDSHAKES)
def test_bad_handshake_is_a_400_naming_version_13(serve, http, case):
    called = threading.Event()

    @ws_app
    async def app(scope, receive, send):
        called.set()
        await send({"type": "websocket.accept"})

    with captured_log() as log, serve(app, http=http) as server:
        response, closed = exchange_raw(server.port, BAD_HANDSHAKES[case])
    assert response.status == 400
    assert response.get(b"sec-websocket-version") == b"13"
    assert closed, "the connection stays open after a failed handshake"
    assert not called.is_set(), "the app was called for a handshake the server refused"
    assert log.tracebacks() == []


def test_http_1_0_upgrade_is_a_400(serve, http):
    called = threading.Event()

    @ws_app
    async def app(scope, receive, send):
        called.set()
        await send({"type": "websocket.accept"})

    with captured_log() as log, serve(app, http=http) as server:
        response, closed = exchange_raw(server.port, handshake(http_version="1.0"))
    assert response.status == 400
    assert response.get(b"sec-websocket-version") == b"13"
    assert closed
    assert not called.is_set()
    assert log.tracebacks() == []
