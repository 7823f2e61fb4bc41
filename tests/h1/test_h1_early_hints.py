"""103 Early Hints over HTTP/1.1 (the `http.response.early_hint` extension)."""

from __future__ import annotations

import socket

LINK = b"</style.css>; rel=preload; as=style"


async def hinting_app(scope, receive, send):
    if scope["type"] != "http":
        return
    assert "http.response.early_hint" in scope["extensions"]
    await send({"type": "http.response.early_hint", "links": [LINK]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"page"})


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while not received.endswith(b"page"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_early_hints_precede_the_response(serve, http):
    with serve(hinting_app, http=http) as server:
        received = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    hints, _, response = received.partition(b"\r\n\r\n")
    assert b"link: " + LINK in hints
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"page")


def test_http10_clients_get_no_early_hints(serve, http):
    with serve(hinting_app, http=http) as server:
        received = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b" 103 " not in received
