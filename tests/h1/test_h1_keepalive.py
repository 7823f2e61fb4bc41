"""HTTP/1.1 connection reuse: keep-alive, pipelining, Connection: close, HTTP/1.0, the idle
timeout, the Date and Server headers, and the request target as the app sees it."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time

import httpx
import pytest
from h1_client import RawClient, chunked, request, respond
from support import http_app, read_body


@http_app
async def echo_target(scope, receive, send):
    """Answers with the path and the client's port, so tests can tell connections apart."""
    body = await read_body(receive)
    info = {"path": scope["path"], "port": scope["client"][1], "body": body.decode("latin-1")}
    await respond(send, 200, json.dumps(info).encode(), [(b"content-type", b"application/json")])


def test_keep_alive_serves_several_requests_on_one_socket(serve, http):
    with serve(echo_target, http=http) as server, RawClient(server.port) as client:
        ports = set()
        for index in range(3):
            if index == 2:
                time.sleep(1.1)  # idle for a while, well under the 5 s keep-alive timeout
            client.send(request("GET", f"/r{index}"))
            response = client.read_response()
            assert response.status == 200
            assert response.get(b"connection") is None
            info = json.loads(response.body)
            assert info["path"] == f"/r{index}"
            ports.add(info["port"])
        # A body on the same connection too.
        client.send(request("POST", "/post", body=b"payload"))
        response = client.read_response()
        assert json.loads(response.body)["body"] == "payload"
        assert len(ports) == 1
        assert not client.is_closed()


def test_httpx_client_reuses_its_connection(serve, http):
    with serve(echo_target, http=http) as server, httpx.Client(base_url=server.url) as client:
        ports = {client.get(f"/{index}").json()["port"] for index in range(5)}
        ports.add(client.post("/p", content=b"x" * 100_000).json()["port"])
        assert len(ports) == 1


@http_app
async def delayed(scope, receive, send):
    """/N waits 0.1*(3-N) s, so each later request would finish before an earlier one."""
    await read_body(receive)
    number = int(scope["path"].strip("/"))
    await asyncio.sleep(0.1 * (3 - number))
    await respond(send, 200, f"response {number}".encode())


def test_pipelined_requests_are_answered_in_order(serve, http):
    with serve(delayed, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/1") + request("GET", "/2") + request("GET", "/3"))
        bodies = [client.read_response().body for _ in range(3)]
        assert bodies == [b"response 1", b"response 2", b"response 3"]
        client.send(request("GET", "/3"))
        assert client.read_response().body == b"response 3"


def test_pipelined_requests_with_bodies_in_order(serve, http):
    with serve(echo_target, http=http) as server, RawClient(server.port) as client:
        client.send(
            request("POST", "/a", body=b"first")
            + request("POST", "/b", [("Transfer-Encoding", "chunked")], chunked(b"sec", b"ond"))
            + request("GET", "/c")
        )
        infos = [json.loads(client.read_response().body) for _ in range(3)]
        assert [(info["path"], info["body"]) for info in infos] == [
            ("/a", "first"), ("/b", "second"), ("/c", ""),
        ]
        assert len({info["port"] for info in infos}) == 1


@http_app
async def hello(scope, receive, send):
    await respond(send, 200, b"hello", [(b"content-type", b"text/plain")])


@pytest.mark.parametrize("order", [("HEAD", "GET"), ("GET", "HEAD"), ("HEAD", "HEAD", "GET")])
def test_pipelined_head_and_get_keep_their_framing(serve, http, order):
    """Each response is framed for its own request: the HEAD one has no body even when a GET
    was parsed behind it, and the GET one keeps its body even when a HEAD is queued."""
    with serve(hello, http=http) as server, RawClient(server.port) as client:
        client.send(b"".join(request(method, f"/{i}") for i, method in enumerate(order)))
        for method in order:
            response = client.read_response(head_request=method == "HEAD")
            assert response.status == 200
            assert response.get(b"content-length") == b"5"
            assert response.body == (b"" if method == "HEAD" else b"hello")
        client.send(request("GET", "/last"))
        last = client.read_response()
        assert (last.status, last.body) == (200, b"hello")


def test_connection_close_from_client(serve, http):
    with serve(hello, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/", [("Connection", "close")]))
        response = client.read_response()
        assert (response.status, response.body) == (200, b"hello")
        assert response.get(b"connection").lower() == b"close"
        assert client.read_until_close(3) == b""


def test_connection_close_after_pipelined_requests(serve, http):
    """Requests after the one that said `Connection: close` are not answered."""
    with serve(hello, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/1") + request("GET", "/2", [("Connection", "close")])
                    + request("GET", "/3"))
        assert client.read_response().get(b"connection") is None
        assert client.read_response().get(b"connection").lower() == b"close"
        assert client.read_until_close(3) == b""


def test_http10_request_is_answered_then_closed(serve, http):
    with serve(hello, http=http) as server, RawClient(server.port) as client:
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        response = client.read_response()
        assert (response.status, response.body) == (200, b"hello")
        assert response.get(b"content-length") == b"5"
        assert response.get(b"connection").lower() == b"close"
        assert client.read_until_close(3) == b""


@http_app
async def streamer(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one ", b"two ", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def test_http10_streaming_response_is_delimited_by_close(serve, http):
    """An HTTP/1.0 client does not know chunked: the body ends where the connection does."""
    with serve(streamer, http=http) as server, RawClient(server.port) as client:
        client.send(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        raw = client.read_until_close(3)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding" not in head.lower()
        assert body == b"one two three"


def test_http10_keep_alive_request_is_answered_consistently(serve, http):
    """An HTTP/1.0 client asking for keep-alive either gets `connection: keep-alive` back and
    an open connection, or a response followed by the close it then waits for."""
    with serve(hello, http=http) as server, RawClient(server.port) as client:
        client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = client.read_response()
        assert (response.status, response.body) == (200, b"hello")
        connection = (response.get(b"connection") or b"").lower()
        if connection == b"keep-alive":
            client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert client.read_response().status == 200
        else:
            # No keep-alive was announced: the client waits for the server to close.
            assert client.read_until_close(3) == b""


def test_keep_alive_timeout_closes_idle_connections(serve, http):
    with serve(hello, http=http, keep_alive_timeout=1) as server:
        with RawClient(server.port) as used, RawClient(server.port) as unused:
            started = time.monotonic()
            used.send(request("GET", "/"))
            assert used.read_response().status == 200
            assert used.read_until_close(3.5) == b""
            assert unused.read_until_close(3.5) == b""
            elapsed = time.monotonic() - started
            assert 0.9 <= elapsed <= 3.5
        # A connection that keeps busy is not cut: 3 requests over ~1.8 s with a 1 s timeout.
        with RawClient(server.port) as busy:
            for _ in range(3):
                busy.send(request("GET", "/"))
                assert busy.read_response().status == 200
                time.sleep(0.6)
            busy.send(request("GET", "/"))
            assert busy.read_response().status == 200


def _header_values(response: httpx.Response, name: str) -> list[str]:
    return response.headers.get_list(name)


def test_date_and_server_headers(serve, http):
    with serve(hello, http=http) as server:
        response = httpx.get(server.url)
        assert _header_values(response, "server") == ["gateway"]
        [date] = _header_values(response, "date")
        sent = email.utils.parsedate_to_datetime(date)
        assert sent.tzinfo is not None
        assert abs(sent.timestamp() - time.time()) < 5
        assert date.endswith(" GMT")


def test_server_and_date_headers_can_be_switched_off(serve, http):
    with serve(hello, http=http, server_header=False, date_header=False) as server:
        response = httpx.get(server.url)
        assert response.status_code == 200
        assert "server" not in response.headers
        assert "date" not in response.headers
        assert response.text == "hello"


@http_app
async def own_server_header(scope, receive, send):
    await respond(send, 200, b"x", [(b"Server", b"my-app"), (b"Date", b"Tue, 01 Jan 2030 00:00:00 GMT")])


def test_app_server_and_date_headers_replace_the_defaults(serve, http):
    with serve(own_server_header, http=http) as server:
        response = httpx.get(server.url)
        assert _header_values(response, "server") == ["my-app"]
        assert _header_values(response, "date") == ["Tue, 01 Jan 2030 00:00:00 GMT"]


@http_app
async def scope_echo(scope, receive, send):
    await read_body(receive)
    info = {
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "method": scope["method"],
        "http_version": scope["http_version"],
    }
    await respond(send, 200, json.dumps(info).encode())


@http_app
async def header_echo(scope, receive, send):
    headers = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]]
    await respond(send, 200, json.dumps(headers).encode())


def test_header_names_lowered_and_values_trimmed(serve, http):
    """RFC 9110 5.5: a field value does not include leading or trailing whitespace."""
    with serve(header_echo, http=http) as server, RawClient(server.port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad:   padded  value \t \r\nX-Case: MiXeD\r\n"
                    b"x-a: 1\r\nX-A: 2\r\n\r\n")
        headers = json.loads(client.read_response().body)
        assert headers == [["host", "x"], ["x-pad", "padded  value"], ["x-case", "MiXeD"],
                           ["x-a", "1"], ["x-a", "2"]]


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        ("/a%2Fb/%E2%82%AC?x=%20&y=1", "/a/b/\u20ac", "/a%2Fb/%E2%82%AC", "x=%20&y=1"),
        ("/plain", "/plain", "/plain", ""),
        ("/q?", "/q", "/q", ""),
        ("/?a=1?b=2&c=%zz", "/", "/", "a=1?b=2&c=%zz"),
        ("/sp%20ace/+plus", "/sp ace/+plus", "/sp%20ace/+plus", ""),
    ],
)
def test_raw_path_and_query_string_untouched(serve, http, target, path, raw_path, query):
    with serve(scope_echo, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", target))
        info = json.loads(client.read_response().body)
        assert info["path"] == path
        assert info["raw_path"] == raw_path
        assert info["query_string"] == query
        assert info["http_version"] == "1.1"
