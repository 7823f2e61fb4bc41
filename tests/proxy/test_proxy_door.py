"""--proxy-protocol at the door, with headers written by hand: what the app sees, LOCAL, a
slow or broken header, and the per-address guard counting the real client."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest
from support import OTHER_ADDRESS, read_response, read_until_closed

pytestmark = pytest.mark.timeout(30)

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int, client: tuple[str, int], server: tuple[str, int]) -> bytes:
    addresses = (socket.inet_aton(client[0]) + socket.inet_aton(server[0])
                 + struct.pack("!HH", client[1], server[1]))
    return V2_SIGNATURE + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(addresses)) + addresses


async def where(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"], "server": scope["server"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def ask(port: int, header: bytes, source: str = "127.0.0.1") -> dict:
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(header + REQUEST)
        response = read_response(sock)
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def test_v1_and_v2_headers_name_the_client_and_server(serve):
    with serve(where, proxy_protocol="auto") as server:
        answer = ask(server.port, b"PROXY TCP4 198.51.100.7 203.0.113.1 4711 443\r\n")
        assert answer == {"client": ["198.51.100.7", 4711], "server": ["203.0.113.1", 443]}
        answer = ask(server.port, v2(1, ("192.0.2.9", 1234), ("203.0.113.2", 8443)))
        assert answer == {"client": ["192.0.2.9", 1234], "server": ["203.0.113.2", 8443]}


def test_local_and_unknown_keep_the_balancer_as_the_client(serve):
    with serve(where, proxy_protocol="auto") as server:
        answer = ask(server.port, v2(0, ("0.0.0.0", 0), ("0.0.0.0", 0)))
        assert answer["client"][0] == "127.0.0.1" and answer["server"] == ["127.0.0.1", server.port]
        answer = ask(server.port, b"PROXY UNKNOWN\r\n")
        assert answer["client"][0] == "127.0.0.1"


def test_only_the_version_asked_for(serve):
    with serve(where, proxy_protocol="v2") as server, socket.create_connection(
            ("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"PROXY TCP4 198.51.100.7 203.0.113.1 4711 443\r\n" + REQUEST)
        assert read_until_closed(sock) == b""


def test_a_slow_header_is_bounded_by_the_handshake_timeout_and_others_are_served(serve):
    with serve(where, proxy_protocol="auto", tls_handshake_timeout=1) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        slow.sendall(b"PROXY TCP4 198.51.")
        began = time.monotonic()
        answer = ask(server.port, b"PROXY TCP4 198.51.100.8 203.0.113.1 4712 443\r\n")
        assert answer["client"] == ["198.51.100.8", 4712]
        assert read_until_closed(slow) == b""
        assert 0.5 < time.monotonic() - began < 3.5


def test_the_address_guard_counts_the_real_client(serve):
    """The guard's per-address budget and blocks apply to the client the header names, not to
    the balancer all clients share."""
    with serve(where, proxy_protocol="auto") as server:
        state = server.server.state
        ask(server.port, b"PROXY TCP4 198.51.100.7 203.0.113.1 4711 443\r\n")
        keys = {str(key) for key in state.guard.ledgers}
        assert any("198.51.100.7" in key for key in keys), keys
        assert not any(key.startswith("127.0.0.1") or "'127.0.0.1'" in key for key in keys), keys


def test_an_untrusted_peer_may_not_send_a_header(serve):
    with serve(where, proxy_protocol="auto") as server, socket.socket() as sock:
        sock.bind((OTHER_ADDRESS, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        try:
            sock.sendall(b"PROXY TCP4 198.51.100.7 203.0.113.1 4711 443\r\n" + REQUEST)
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
