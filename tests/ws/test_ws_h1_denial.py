"""An app that does not accept: the client gets an ordinary HTTP response (ASGI websocket spec:
close before accept is a 403, `websocket.http.response.*` is the app's own response, an error or
a return before accept is a 500), and after accept an app error is close code 1011 (RFC 6455
section 7.4.1). Tracebacks are logged only for exceptions the app raised."""

from __future__ import annotations

import logging
import threading

import pytest
from support import captured_log, wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from ws_support import RawWebSocket, read_http_response, ws_app, ws_connect, ws_url

pytestmark = pytest.mark.timeout(30)


def deny_with(*messages: dict, raise_after: BaseException | None = None):
    @ws_app
    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        for message in messages:
            await send(message)
        if raise_after is not None:
            raise raise_after

    return app


def raw_denial(port: int, path: str = "/"):
    """The response to a valid handshake, read off the socket, and whether the server then
    closed the connection."""
    with RawWebSocket(port, path) as raw:
        raw.send(raw.request)
        response, _ = read_http_response(raw.sock)
        return response, raw.wait_closed(timeout=3) == b""


def test_close_before_accept_is_a_403(serve, http):
    app = deny_with({"type": "websocket.close"})
    with captured_log() as log, serve(app, http=http) as server:
        with pytest.raises(InvalidStatus) as info:
            ws_connect(ws_url(server))
        assert info.value.response.status_code == 403
        response, closed = raw_denial(server.port)
    assert response.status == 403
    assert response.get(b"sec-websocket-accept") is None
    assert closed
    assert log.errors() == [] and log.tracebacks() == []


def test_close_with_a_code_before_accept_is_still_a_403(serve):
    app = deny_with({"type": "websocket.close", "code": 4003, "reason": "nope"})
    with serve(app) as server:
        response, closed = raw_denial(server.port)
    assert response.status == 403
    assert closed


def test_http_response_extension_sends_the_apps_response(serve, http):
    app = deny_with(
        {"type": "websocket.http.response.start", "status": 401,
         "headers": [(b"www-authenticate", b'Bearer realm="ws"'), (b"content-type", b"text/plain"),
                     (b"x-reason", b"no token")]},
        {"type": "websocket.http.response.body", "body": b"log in ", "more_body": True},
        {"type": "websocket.http.response.body", "body": b"first"},
    )
    with captured_log() as log, serve(app, http=http) as server:
        response, closed = raw_denial(server.port)
        with pytest.raises(InvalidStatus) as info:
            ws_connect(ws_url(server))
    assert response.status == 401
    assert response.get(b"www-authenticate") == b'Bearer realm="ws"'
    assert response.get(b"content-type") == b"text/plain"
    assert response.get(b"x-reason") == b"no token"
    assert response.body == b"log in first"
    assert closed
    seen = info.value.response
    assert seen.status_code == 401
    assert seen.headers["WWW-Authenticate"] == 'Bearer realm="ws"'
    assert seen.body == b"log in first"
    assert log.errors() == [] and log.tracebacks() == []


def test_http_response_with_content_length(serve):
    app = deny_with(
        {"type": "websocket.http.response.start", "status": 429,
         "headers": [(b"content-length", b"4"), (b"retry-after", b"10")]},
        {"type": "websocket.http.response.body", "body": b"slow"},
    )
    with serve(app) as server:
        response, closed = raw_denial(server.port)
    assert (response.status, response.body, response.get(b"retry-after")) == (429, b"slow", b"10")
    assert closed


def test_app_error_before_accept_is_a_500(serve, http):
    app = deny_with(raise_after=RuntimeError("boom before accept"))
    with captured_log() as log, serve(app, http=http) as server:
        response, closed = raw_denial(server.port)
        assert response.status == 500
        assert closed
        with pytest.raises(InvalidStatus) as info:
            ws_connect(ws_url(server))
        assert info.value.response.status_code == 500
    # The app's own exception is logged with its traceback (twice: two connections).
    tracebacks = log.tracebacks()
    assert len(tracebacks) == 2
    assert all(str(record.exc_info[1]) == "boom before accept" for record in tracebacks)


def test_app_error_after_accept_is_close_1011(serve, http):
    app = deny_with({"type": "websocket.accept"}, raise_after=RuntimeError("boom after accept"))
    with captured_log() as log, serve(app, http=http) as server, ws_connect(ws_url(server)) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1011
    [record] = log.tracebacks()
    assert str(record.exc_info[1]) == "boom after accept"


def test_app_returning_before_accept_is_a_500(serve, http):
    app = deny_with()
    with captured_log() as log, serve(app, http=http) as server:
        response, closed = raw_denial(server.port, "/forgot")
    assert response.status == 500
    assert closed
    # The server says what went wrong, without a traceback: nothing was raised.
    assert log.tracebacks() == []
    assert any("without accepting" in message for message in log.messages(logging.ERROR))


def test_app_error_after_http_response_start_aborts(serve):
    """Once the denial response has begun, an app error can only end the connection."""
    app = deny_with({"type": "websocket.http.response.start", "status": 404,
                     "headers": [(b"content-length", b"100")]},
                    {"type": "websocket.http.response.body", "body": b"partial", "more_body": True},
                    raise_after=RuntimeError("boom mid-denial"))
    with captured_log() as log, serve(app) as server, RawWebSocket(server.port) as raw:
        raw.send(raw.request)
        data = raw.wait_closed(timeout=3)
    assert data.startswith(b"HTTP/1.1 404 ")
    assert data.endswith(b"partial")
    [record] = log.tracebacks()
    assert str(record.exc_info[1]) == "boom mid-denial"


def test_client_leaving_before_accept_tells_the_app(serve, http):
    got: list = []
    done = threading.Event()

    @ws_app
    async def app(scope, receive, send):
        got.append(await receive())
        got.append(await receive())  # no accept: the client is gone
        done.set()

    with captured_log() as log, serve(app, http=http, graceful_timeout=0.5) as server:
        with RawWebSocket(server.port) as raw:
            raw.send(raw.request)
            assert wait_until(lambda: len(got) == 1)
        assert done.wait(2), "the app was not told that the client left"
    assert got == [{"type": "websocket.connect"},
                   {"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert log.errors() == [] and log.tracebacks() == []
