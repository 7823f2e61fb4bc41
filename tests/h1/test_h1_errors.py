"""What a client that sends a bad request sees: 400, 413, 431 and 505 with `connection: close`,
then the connection closed, and the server still serving everyone else."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from h1_client import RawClient, chunked, request, respond
from support import captured_log, http_app


class Calls:
    """What the app saw, shared with the test thread."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.bodies: list[bytes] = []
        self.disconnected = threading.Event()


def counting_app(calls: Calls):
    @http_app
    async def app(scope, receive, send):
        calls.requests.append(scope["path"])
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                calls.disconnected.set()
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        calls.bodies.append(body)
        await respond(send, 200, b"ok:" + body)

    return app


def assert_error_then_close(client: RawClient, status: int) -> None:
    response = client.read_response()
    assert response.status == status, response.raw
    assert response.get(b"connection").lower() == b"close"
    assert int(response.get(b"content-length")) == len(response.body)
    assert client.read_until_close(3) == b""


def assert_still_serving(server) -> None:
    response = httpx.get(server.url + "/next")
    assert (response.status_code, response.text) == (200, "ok:")


def trickle(client: RawClient, piece: bytes, times: int, pause: float) -> None:
    """Send `piece` `times` times, pausing between sends; the server closing on us part-way
    (an OSError here) is also an acceptable end."""
    try:
        for _ in range(times):
            client.send(piece)
            time.sleep(pause)
    except OSError:
        pass


MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "tls-hello-on-plain-port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-header-name-space": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
    "bad-header-name-utf8": b"GET / HTTP/1.1\r\nHost: x\r\nX-\xc3\x9c: v\r\n\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "nul-in-header-value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "negative-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "non-numeric-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
    "conflicting-content-lengths": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    ),
    "content-length-and-transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "missing-host-http11": b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
    "two-host-headers": b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "two-host-headers-http10": b"GET / HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request_gets_400_and_close(serve, http, name):
    calls = Calls()
    with captured_log("gateway.error") as log, serve(counting_app(calls), http=http) as server:
        with RawClient(server.port) as client:
            client.send(MALFORMED[name])
            assert_error_then_close(client, 400)
        assert calls.requests == [], "the app must not see a malformed request"
        assert_still_serving(server)
    # A protocol error is the client's doing: a debug line, never an error or a traceback.
    assert log.messages(logging.WARNING) == []


@pytest.mark.parametrize(
    "bad_chunk",
    [b"zz\r\nab\r\n0\r\n\r\n", b"3\r\nabcXY\r\n0\r\n\r\n", b"fffffffffffffffffffff\r\n", b"-3\r\nabc\r\n"],
    ids=["non-hex-size", "no-crlf-after-data", "size-overflow", "negative-size"],
)
def test_invalid_chunk_gets_400_and_app_sees_disconnect(serve, http, bad_chunk):
    calls = Calls()
    with serve(counting_app(calls), http=http) as server:
        with RawClient(server.port) as client:
            client.send(request("POST", "/up", [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n")
            time.sleep(0.1)
            client.send(bad_chunk)
            assert_error_then_close(client, 400)
        assert calls.disconnected.wait(5), "the app reading the body must get http.disconnect"
        assert calls.bodies == []
        assert_still_serving(server)


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked", "chunked, gzip"])
def test_unsupported_transfer_coding_is_refused(serve, http, coding):
    """gateway decodes only chunked: a body in any other transfer coding cannot be handed to
    the app as it is (RFC 9112 6.1: 501, or 400 and close)."""
    calls = Calls()
    with serve(counting_app(calls), http=http) as server:
        with RawClient(server.port) as client:
            client.send(request("POST", "/", [("Transfer-Encoding", coding)]) + b"0\r\n\r\n")
            response = client.read_response()
            assert response.status in (400, 501), response.raw
            assert response.get(b"connection").lower() == b"close"
            assert client.read_until_close(3) == b""
        assert calls.bodies == [], "the app must not get a body with a transfer coding left on"
        assert_still_serving(server)


def test_http2_request_line_gets_505(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http) as server:
        with RawClient(server.port) as client:
            client.send(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
            assert_error_then_close(client, 505)
        assert calls.requests == []
        assert_still_serving(server)


def test_malformed_pipelined_request_after_a_valid_one(serve, http):
    """The valid request is answered first, then the 400, then the connection closes."""
    calls = Calls()
    with serve(counting_app(calls), http=http) as server:
        with RawClient(server.port) as client:
            client.send(request("GET", "/first") + b"GARBAGE / NOPE\r\n\r\n")
            first = client.read_response()
            assert (first.status, first.body) == (200, b"ok:")
            assert_error_then_close(client, 400)
        with RawClient(server.port) as client:
            client.send(request("POST", "/first", body=b"data") + b"GET / HTTP/1.1\r\nBad Header: v\r\n\r\n")
            first = client.read_response()
            assert (first.status, first.body) == (200, b"ok:data")
            assert_error_then_close(client, 400)
        assert calls.requests == ["/first", "/first"]
        assert_still_serving(server)


def test_bad_request_after_a_completed_one_on_the_same_connection(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/first"))
        assert client.read_response().status == 200
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n")
        assert_error_then_close(client, 400)


# -- 413: request bodies over max_body_size --------------------------------------------------


def test_declared_body_over_limit_gets_413_without_calling_app(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http, max_body_size=1000) as server:
        with RawClient(server.port) as client:
            client.send(request("POST", "/big", [("Content-Length", "1001")]))
            assert_error_then_close(client, 413)
        # At the limit is fine.
        with RawClient(server.port) as client:
            client.send(request("POST", "/exact", body=b"x" * 1000))
            response = client.read_response()
            assert (response.status, len(response.body)) == (200, 1003)
        assert calls.requests == ["/exact"]
        assert_still_serving(server)


@pytest.mark.parametrize(
    ("settings", "data", "status"),
    [
        # The client has sent head and 256 KiB of a 10 MB body before the 413: it must read the
        # 413, not a connection reset (RFC 9112 section 9.6: close the write side, then drain).
        pytest.param(
            {"max_body_size": 1000},
            request("POST", "/big", [("Content-Length", str(10_000_000))]) + b"x" * 262_144,
            413,
            id="413-after-part-of-the-body",
        ),
        # 48 KB of headers against the 32 KiB default, in one write (and, on loopback, one read).
        pytest.param(
            {},
            request("GET", "/", [(f"X-Header-{index:04d}", "v" * 100) for index in range(400)]),
            431,
            id="431-default-head-limit-head-sent-at-once",
        ),
    ],
)
def test_over_limit_request_sent_at_once_gets_error_then_close(serve, http, settings, data, status):
    """A request over a limit, written in one go: the client reads the error response and a
    clean close, and the app is never called."""
    calls = Calls()
    with serve(counting_app(calls), http=http, **settings) as server:
        with RawClient(server.port) as client:
            client.send(data)
            assert_error_then_close(client, status)
        assert calls.requests == []


def test_chunked_body_growing_over_limit_gets_413_or_close(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http, max_body_size=10_000) as server:
        with RawClient(server.port) as client:
            client.send(request("POST", "/grow", [("Transfer-Encoding", "chunked")]))
            trickle(client, b"%x\r\n%b\r\n" % (1000, b"y" * 1000), 20, 0.005)
            raw = client.read_until_close(5)
            if raw:
                assert raw.startswith(b"HTTP/1.1 413 "), raw[:100]
                assert b"\r\nconnection: close\r\n" in raw.lower()
        assert calls.disconnected.wait(5)
        assert calls.bodies == [], "the app must never see the oversized body as complete"
        # Under the limit, chunked is fine.
        with RawClient(server.port) as client:
            client.send(request("POST", "/ok", [("Transfer-Encoding", "chunked")], chunked(b"z" * 9000)))
            assert client.read_response().status == 200
        assert_still_serving(server)


# -- 431: request heads over max_head_size ---------------------------------------------------


def test_many_headers_get_431(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http, max_head_size=8192) as server:
        headers = [(f"X-Header-{index:03d}", "v" * 50) for index in range(200)]  # ~13 KB
        with RawClient(server.port) as client:
            client.send(request("GET", "/", headers))
            assert_error_then_close(client, 431)
        # A head comfortably under the limit is served.
        with RawClient(server.port) as client:
            client.send(request("GET", "/", headers[:60]))
            assert client.read_response().status == 200
        assert_still_serving(server)


def test_one_huge_header_sent_slowly_gets_431(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http, max_head_size=8192) as server:
        with RawClient(server.port) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ")
            trickle(client, b"a" * 1024, 40, 0.01)  # 40 KB, never finished
            assert_error_then_close(client, 431)
        assert calls.requests == []
        assert_still_serving(server)


def test_long_request_target_gets_431(serve, http):
    calls = Calls()
    with serve(counting_app(calls), http=http, max_head_size=8192) as server:
        with RawClient(server.port) as client:
            client.send(b"GET /long-url" + b"/x" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert_error_then_close(client, 431)
        assert calls.requests == []
        assert_still_serving(server)


def test_error_responses_carry_server_and_date_headers(serve, http):
    with serve(counting_app(Calls()), http=http) as server, RawClient(server.port) as client:
        client.send(b"GARBAGE\r\n\r\n")
        response = client.read_response()
        assert response.status == 400
        assert response.get(b"server") == b"gateway"
        assert response.get(b"date") is not None
    settings = {"server_header": False, "date_header": False}
    with serve(counting_app(Calls()), http=http, **settings) as server, RawClient(server.port) as client:
        client.send(b"GARBAGE\r\n\r\n")
        response = client.read_response()
        assert response.status == 400
        assert response.get(b"server") is None
        assert response.get(b"date") is None
