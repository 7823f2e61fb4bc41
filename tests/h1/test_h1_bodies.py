"""HTTP/1.1 bodies: chunked both ways, Content-Length held to its word both ways,
Expect: 100-continue, HEAD and the statuses that carry no body."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import h11
import httpx
import pytest
from h1_client import RawClient, chunked, request, respond
from support import captured_log, http_app, read_body


@http_app
async def echo(scope, receive, send):
    body = await read_body(receive)
    await respond(send, 200, body, [(b"content-type", b"application/octet-stream")])


# -- request bodies ------------------------------------------------------------------------


def test_chunked_request_body_is_reassembled(serve, http):
    with serve(echo, http=http) as server, RawClient(server.port) as client:
        parts = [b"hello ", b"chunked ", b"x" * 70_000, b" world"]
        body = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts)
        # A chunk extension and a trailer are legal and must not end up in the body.
        body += b"3;name=value\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n"
        head = request("POST", "/", [("Transfer-Encoding", "chunked")])
        # Sent in small pieces so chunk boundaries fall anywhere.
        data = head + body
        for start in range(0, len(data), 4093):
            client.send(data[start:start + 4093])
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"".join(parts) + b"abc"
        # The connection is still good.
        client.send(request("POST", "/", [("Transfer-Encoding", "chunked")], chunked(b"again")))
        assert client.read_response().body == b"again"


def test_chunked_request_body_from_httpx(serve, http):
    def generate():
        for index in range(20):
            yield b"%05d" % index * 1000

    with serve(echo, http=http) as server:
        response = httpx.post(server.url, content=generate())
        assert response.status_code == 200
        assert response.content == b"".join(b"%05d" % index * 1000 for index in range(20))


def test_empty_bodies(serve, http):
    with serve(echo, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "0")]))
        assert client.read_response().body == b""
        client.send(request("POST", "/", [("Transfer-Encoding", "chunked")], b"0\r\n\r\n"))
        assert client.read_response().body == b""


def test_unread_body_does_not_leak_into_the_next_request(serve, http):
    @http_app
    async def app(scope, receive, send):
        if scope["path"] == "/read":
            await respond(send, 200, await read_body(receive))
        else:
            await respond(send, 200, b"ignored")

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/ignore", body=b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert client.read_response().body == b"ignored"
        client.send(request("POST", "/read", body=b"mine"))
        assert client.read_response().body == b"mine"
        # A body that has not arrived when the response is done: the connection cannot be
        # reused, and the server says so and closes instead of waiting for it.
        client.send(request("POST", "/ignore", [("Content-Length", "10000000")]) + b"x" * 1000)
        response = client.read_response()
        assert response.body == b"ignored"
        assert response.get(b"connection").lower() == b"close"
        assert client.read_until_close(3) == b""


# -- response bodies -----------------------------------------------------------------------


def streaming_app(parts: list[bytes], headers: list[tuple[bytes, bytes]] | None = None):
    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers or []})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def test_streamed_response_without_length_is_chunked(serve, http):
    parts = [b"first,", b"second,", b"y" * 100_000]
    with serve(streaming_app(parts), http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.chunked
        assert response.get(b"content-length") is None
        assert response.body == b"".join(parts)
        assert response.raw.endswith(b"0\r\n\r\n")
        # The chunks carry the app's pieces as they were sent.
        assert b"\r\n6\r\nfirst,\r\n" in response.raw
        client.send(request("GET", "/"))
        assert client.read_response().body == b"".join(parts)
    with serve(streaming_app(parts), http=http) as server:
        response = httpx.get(server.url)
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.content == b"".join(parts)


def test_single_message_response_gets_content_length(serve, http):
    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"all at once"})

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.get(b"content-length") == b"11"
        assert response.get(b"transfer-encoding") is None
        assert response.body == b"all at once"


def test_streamed_response_with_declared_length_is_not_chunked(serve, http):
    parts = [b"abc", b"defg", b"hij"]
    app = streaming_app(parts, [(b"content-length", b"10")])
    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.get(b"transfer-encoding") is None
        assert response.get(b"content-length") == b"10"
        assert response.body == b"abcdefghij"
        client.send(request("GET", "/"))
        assert client.read_response().body == b"abcdefghij"


# -- the app breaking its own Content-Length -----------------------------------------------


def wrong_length_app(declared: int, parts: list[bytes], finished: threading.Event):
    @http_app
    async def app(scope, receive, send):
        if scope["path"] == "/ok":
            await respond(send, 200, b"fine")
            return
        try:
            await send({
                "type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(declared).encode())],
            })
            for index, part in enumerate(parts):
                await send({
                    "type": "http.response.body", "body": part,
                    "more_body": index < len(parts) - 1,
                })
        finally:
            finished.set()

    return app


def _assert_incomplete(client: RawClient, declared: int) -> None:
    """The client sees at most a head and fewer than `declared` body bytes, then EOF."""
    raw = client.read_until_close(5)
    if not raw:
        return
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    parser.send(h11.EndOfMessage())
    parser.receive_data(raw)
    parser.receive_data(b"")
    body = b""
    with pytest.raises(h11.RemoteProtocolError):
        while True:
            event = parser.next_event()
            assert type(event) is not h11.EndOfMessage, f"a complete response went out: {raw!r}"
            if type(event) is h11.Data:
                body += event.data
            assert event is not h11.NEED_DATA
    assert len(body) < declared


@pytest.mark.parametrize(
    ("declared", "parts"),
    [
        (10, [b"12345"]),  # short, in the one final message
        (10, [b"12345", b""]),  # short, head and part of the body already out
        (10, [b"1" * 20]),  # long, in one message
        (10, [b"12345678", b"9abcdefghijk"]),  # long, spilling over in the second message
    ],
    ids=["short-single", "short-streamed", "long-single", "long-streamed"],
)
def test_app_breaking_its_content_length_gets_the_connection_closed(serve, http, declared, parts):
    finished = threading.Event()
    with captured_log("gateway.error") as log, serve(
        wrong_length_app(declared, parts, finished), http=http
    ) as server:
        with RawClient(server.port) as client:
            client.send(request("GET", "/"))
            _assert_incomplete(client, declared)
        assert finished.wait(5)
        errors = log.wait_for(logging.ERROR)
        assert errors, "a Content-Length breach must be logged as an error"
        assert any("content-length" in message.lower() for message in errors), errors
        # The server goes on serving.
        assert httpx.get(server.url + "/ok").text == "fine"


def test_request_body_shorter_than_declared_then_close_gives_disconnect(serve, http):
    received: list[dict] = []
    done = threading.Event()

    @http_app
    async def app(scope, receive, send):
        try:
            while True:
                message = await receive()
                received.append(message)
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
        finally:
            done.set()

    with serve(app, http=http) as server:
        with RawClient(server.port) as client:
            partial = b"only forty bytes" * 2 + b"12345678"
            client.send(request("POST", "/", [("Content-Length", "100")]) + partial)
            # Let the server hand the partial body to the app before going away.
            time.sleep(0.2)
        assert done.wait(5)
        assert received[-1] == {"type": "http.disconnect"}
        body = b"".join(message.get("body", b"") for message in received)
        assert body == b"only forty bytes" * 2 + b"12345678"
        assert all(message.get("more_body", False) for message in received[:-1])


# -- Expect: 100-continue ------------------------------------------------------------------


def test_100_continue_sent_when_app_reads_body(serve, http):
    with serve(echo, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "5"), ("Expect", "100-continue")]))
        interim = client.read_response()
        assert interim.status == 100
        assert interim.raw.startswith(b"HTTP/1.1 100 ")
        assert interim.get(b"content-length") is None
        client.send(b"hello")
        response = client.read_response()
        assert (response.status, response.body) == (200, b"hello")
        # No second 100 on the next request without the expectation.
        client.send(request("POST", "/", body=b"again"))
        response = client.read_response()
        assert (response.status, response.body) == (200, b"again")


def test_status_lines_carry_the_standard_reason_phrase(serve, http):
    """`HTTP/1.1 100 Continue`, `HTTP/1.1 200 OK`: what curl -v and every other server show."""
    with serve(echo, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "2"), ("Expect", "100-continue")]))
        interim = client.read_response()
        client.send(b"ok")
        final = client.read_response()
        lines = (interim.raw.split(b"\r\n")[0], final.raw.split(b"\r\n")[0])
        assert lines == (b"HTTP/1.1 100 Continue", b"HTTP/1.1 200 OK")


def test_100_continue_not_sent_when_app_answers_without_reading(serve, http):
    @http_app
    async def app(scope, receive, send):
        await respond(send, 401, b"no thanks")

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "5"), ("Expect", "100-continue")]))
        response = client.read_response()
        assert response.status == 401
        assert response.body == b"no thanks"
        assert b"100 Continue" not in response.raw


def test_100_continue_sent_only_once_app_calls_receive(serve, http):
    """The 100 goes out when the app first asks for the body, not when the head arrives."""
    may_read = threading.Event()

    @http_app
    async def app(scope, receive, send):
        while not may_read.is_set():
            await asyncio.sleep(0.01)
        body = await read_body(receive)
        await respond(send, 200, body)

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "3"), ("Expect", "100-continue")]))
        assert not client.is_closed(0.3)  # nothing arrived, the connection is open
        assert not client.buffer
        may_read.set()
        assert client.read_response().status == 100
        client.send(b"abc")
        assert client.read_response().body == b"abc"


def test_100_continue_with_httpx_style_client_sending_body_anyway(serve, http):
    """A client that does not wait for the 100 and sends the body at once still gets one
    final response and a usable connection."""
    with serve(echo, http=http) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Expect", "100-continue")], body=b"eager"))
        response = client.read_final_response()
        assert (response.status, response.body) == (200, b"eager")
        client.send(request("GET", "/"))
        assert client.read_final_response().status == 200


# -- HEAD and bodiless statuses ------------------------------------------------------------


@http_app
async def resource(scope, receive, send):
    await respond(send, 200, b"0123456789", [(b"content-type", b"text/plain"), (b"x-custom", b"1")])


def _without_date(response) -> list[tuple[bytes, bytes]]:
    return sorted((name.lower(), value) for name, value in response.headers if name.lower() != b"date")


def test_head_sends_headers_but_no_body(serve, http):
    with serve(resource, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        get = client.read_response()
        client.send(request("HEAD", "/"))
        head = client.read_response(head_request=True)
        assert head.status == 200
        assert _without_date(head) == _without_date(get)
        assert head.get(b"content-length") == b"10"
        # Had a body been sent, it would now sit in front of the next response.
        client.send(request("GET", "/"))
        after = client.read_response()
        assert (after.status, after.body) == (200, b"0123456789")
    with serve(resource, http=http) as server:
        response = httpx.head(server.url)
        assert response.headers["content-length"] == "10"
        assert response.content == b""


def test_head_with_streamed_response_sends_no_body(serve, http):
    with serve(streaming_app([b"abc", b"def"]), http=http) as server, RawClient(server.port) as client:
        client.send(request("HEAD", "/"))
        head = client.read_response(head_request=True)
        assert head.status == 200
        client.send(request("GET", "/"))
        after = client.read_response()
        assert after.body == b"abcdef"


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_send_no_body(serve, http, status):
    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.status == status
        assert response.get(b"transfer-encoding") is None
        if status == 204:
            assert response.get(b"content-length") is None
        client.send(request("GET", "/"))
        assert client.read_response().status == status
