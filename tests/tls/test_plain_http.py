"""Plain HTTP sent to a TLS port (gateway/tls/plain_http.py): a 400 that says to use https://,
read by the client before the close; anything else that is no TLS is closed without a word."""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import httpx
import pytest
from support import captured_log, read_until_closed, tls_settings, wait_until

pytestmark = pytest.mark.timeout(60)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"over " + scope["scheme"].encode()})


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def plain_request(port: int, request: bytes) -> bytes:
    """What the server sends back, to its close, for `request` sent in plain text."""
    with connect(port) as sock:
        sock.sendall(request)
        return read_until_closed(sock)


def https_works(port: int, certs) -> bool:
    with httpx.Client(verify=certs.client_context(), http2=True, timeout=5) as client:
        return client.get(f"https://localhost:{port}/").text == "over https"


def refused_plain(body: bytes) -> bytes:
    return (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_curl_over_http_gets_400_saying_the_port_speaks_https(serve, certs, loop):
    with serve(app, **tls_settings(certs, loop=loop)) as server:
        port = server.port
        for host in ("127.0.0.1", "localhost"):
            result = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", f"http://{host}:{port}/"],
                                    capture_output=True)
            assert result.returncode == 0, result.stderr
            head, _, body = result.stdout.partition(b"\r\n\r\n")
            assert head.splitlines()[0] == b"HTTP/1.1 400 Bad Request"
            assert b"connection: close" in head.lower().splitlines()
            assert body == f"This port speaks HTTPS: use https://{host}:{port}/ instead.\n".encode()
        assert https_works(port, certs)
        assert server.server.state.tls_failures["protocol_error"] == 2
        assert wait_until(lambda: server.server.state.guard.open == 0)


def test_httpx_over_http_gets_the_400_and_https_clients_are_served_as_before(serve, certs):
    with serve(app, **tls_settings(certs)) as server:
        port = server.port
        response = httpx.post(f"http://localhost:{port}/form", content=b"a=1", timeout=5)
        assert response.status_code == 400
        assert response.headers["connection"] == "close"
        assert response.text == f"This port speaks HTTPS: use https://localhost:{port}/ instead.\n"
        assert https_works(port, certs)
        with httpx.Client(verify=certs.client_context(), timeout=5) as client:  # HTTP/1.1 over TLS
            assert client.get(f"https://127.0.0.1:{port}/").text == "over https"


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02garbage\r\n",
    b"hello\r\n",  # letters, but no request line
    b"\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello",
])
def test_bytes_that_are_neither_tls_nor_http_are_closed_without_a_response(serve, certs, garbage):
    with serve(app, **tls_settings(certs)) as server:
        assert plain_request(server.port, garbage) == b""
        assert https_works(server.port, certs)
        assert wait_until(lambda: server.server.state.guard.open == 0)


def test_a_request_line_arriving_in_pieces_or_with_a_body_is_answered_and_read_whole(serve, certs):
    """The answer is read before the close, though the client sent more than the server read:
    a large body, or the request in pieces (the first piece only letters)."""
    with serve(app, **tls_settings(certs)) as server:
        port = server.port
        expected = refused_plain(f"This port speaks HTTPS: use https://127.0.0.1:{port}/ instead.\n".encode())
        with connect(port) as sock:
            sock.sendall(b"GE")
            time.sleep(0.2)
            sock.sendall(b"T / HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n")
            assert read_until_closed(sock) == expected
        with connect(port) as sock:
            sock.sendall(b"PUT /upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\ncontent-length: 1000000\r\n\r\n"
                         % port + b"x" * 1_000_000)
            assert read_until_closed(sock) == expected
        assert wait_until(lambda: server.server.state.guard.open == 0)


def test_the_server_holds_the_connection_until_the_client_closes_or_for_two_seconds(serve, certs):
    """Our side is shut once the answer is written (the client reads it, then EOF); the socket
    itself is kept, reading what the client still sends, until the client closes or LINGER."""
    with serve(app, **tls_settings(certs)) as server:
        def open_count() -> int:
            return server.server.state.guard.open

        with connect(server.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_until_closed(sock).startswith(b"HTTP/1.1 400 ")
        assert wait_until(lambda: open_count() == 0, timeout=0.5)
        with connect(server.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_until_closed(sock).startswith(b"HTTP/1.1 400 ")
            answered = time.monotonic()
            sock.sendall(b"more of a request the server reads and drops")
            assert open_count() == 1
            assert wait_until(lambda: open_count() == 0, timeout=5)
            assert 1.5 < time.monotonic() - answered < 4.5  # LINGER, checked once a second


@pytest.mark.parametrize(("balancer_port", "request_head", "url"), [
    (8443, b"GET / HTTP/1.1\r\nHost: example.com:8443\r\n\r\n", "https://example.com:8443/"),
    (8443, b"GET / HTTP/1.1\r\n\r\n", "https://192.0.2.1:8443/"),  # the PROXY header's server
    (443, b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n", "https://example.com/"),
])
def test_after_a_proxy_protocol_header(serve, certs, balancer_port, request_head, url):
    """Behind a balancer the port the client connected to is the one the PROXY header names."""
    header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 %d\r\n" % balancer_port
    with serve(app, **tls_settings(certs, proxy_protocol="v1")) as server:
        with connect(server.port) as sock:
            sock.sendall(header)
            time.sleep(0.1)  # the header and the request in separate reads
            sock.sendall(request_head)
            assert read_until_closed(sock) == refused_plain(
                f"This port speaks HTTPS: use {url} instead.\n".encode())
        assert server.server.state.tls_failures["protocol_error"] == 1


def test_one_debug_line_per_connection_and_nothing_above_debug(serve, certs):
    with captured_log() as log, serve(app, **tls_settings(certs)) as server:
        for _ in range(3):
            plain_request(server.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    lines = [m for m in log.messages(logging.DEBUG) if "plain HTTP" in m]
    assert len(lines) == 3, log.describe()
    assert all(m.startswith("TLS handshake failed: the client spoke plain HTTP to the TLS port (from "
                            "127.0.0.1:") for m in lines), lines
    assert not [m for m in log.messages(logging.INFO) if "plain HTTP" in m or "handshake" in m]
