"""--redirect-bind: a plain listener that sends every request to HTTPS with 308, and --hsts."""

from __future__ import annotations

import socket

import httpx
import pytest
from process_support import Tree
from support import read_response, tls_settings

pytestmark = pytest.mark.timeout(60)


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def redirect_port(server) -> int:
    return next(listener.port for listener in server.server.bound if listener.redirect)


def test_every_request_is_sent_to_the_same_url_over_https(serve, certs):
    with serve(hello, **tls_settings(certs), redirect_bind=["127.0.0.1:0"]) as server:
        plain = redirect_port(server)
        for method in ("GET", "POST", "DELETE"):
            response = httpx.request(method, f"http://localhost:{plain}/a/b%20c?x=1&y=2", timeout=5)
            assert response.status_code == 308
            assert response.headers["location"] == f"https://localhost:{server.port}/a/b%20c?x=1&y=2"
        followed = httpx.get(f"http://localhost:{plain}/", follow_redirects=True,
                             verify=certs.client_context(), timeout=5)
        assert followed.text == "hello" and followed.url.scheme == "https"


def test_the_host_header_decides_the_host_and_the_port_can_be_given(serve, certs):
    with serve(hello, **tls_settings(certs), redirect_bind=["127.0.0.1:0"],
               redirect_port=443) as server, socket.create_connection(
            ("127.0.0.1", redirect_port(server)), timeout=5) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: shop.example:80\r\n\r\n")
        assert b"\r\nlocation: https://shop.example/x\r\n" in read_response(sock)
        sock.sendall(b"GET /y HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
        assert b"\r\nlocation: https://[::1]/y\r\n" in read_response(sock)


def test_a_websocket_handshake_is_redirected_too(serve, certs):
    with serve(hello, **tls_settings(certs), redirect_bind=["127.0.0.1:0"]) as server, \
            socket.create_connection(("127.0.0.1", redirect_port(server)), timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 308")
    assert f"location: https://localhost:{server.port}/ws".encode() in response


def test_hsts_on_https_responses_over_h1_and_h2(serve, certs):
    with serve(hello, **tls_settings(certs), hsts=31536000) as server:
        for http2 in (False, True):
            with httpx.Client(http2=http2, verify=certs.client_context()) as client:
                response = client.get(f"https://localhost:{server.port}/")
            assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_with_workers_and_without_tls(tmp_path, certs):
    (tmp_path / "hello.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'hi'})\n")
    tree = Tree(["--workers", "2", "--certfile", certs.cert_file, "--keyfile", certs.key_file,
                 "-b", "127.0.0.1:0", "--redirect-bind", "127.0.0.1:0", "hello:app"], tmp_path)
    try:
        ports = [int(m.group(1)) for m in tree.wait_for(r"listening on \w+://\S+:(\d+)", 2)]
        tree.wait_for("redirects to HTTPS")
        tree.ready_workers(2)
        response = httpx.get(f"http://127.0.0.1:{ports[1]}/p", timeout=5)
        assert response.status_code == 308
        assert response.headers["location"] == f"https://127.0.0.1:{ports[0]}/p"
        assert tree.stop() == 0
    finally:
        tree.kill()
    without = Tree(["--redirect-bind", "127.0.0.1:0", "hello:app"], tmp_path)
    assert without.wait(15) == 2
    assert "--redirect-bind sends clients to HTTPS: it needs --certfile" in without.text
