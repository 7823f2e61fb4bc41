"""The door (gateway/admission.py): --limit-connections and blocked addresses are enforced as a
connection is accepted, before any TLS handshake, and the connection count stays exact whatever
the handshake does (issue 8, points 6 and 7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time

import httpx
import pytest
import trustme
from h2.errors import ErrorCodes
from h2_client import client_tls_context, h2_connection
from support import (
    OTHER_ADDRESS,
    captured_log,
    http_app,
    other_client,
    read_response,
    read_until_closed,
    tls_settings,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@http_app
async def hello(scope, receive, send):
    await asyncio.sleep(0.5 if scope["path"] == "/slow" else 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def open_count(server) -> int:
    return server.server.state.guard.open


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def closed_at_once(sock: socket.socket) -> bool:
    """The server closed `sock` without a byte, though the client sent none either."""
    started = time.monotonic()
    with sock:
        sock.settimeout(3)
        data = read_until_closed(sock)
    return data == b"" and time.monotonic() - started < 1.0


def limit_warnings(log) -> list[str]:
    return [m for m in log.messages(logging.WARNING) if "connection limit" in m]


def still_open(sock: socket.socket) -> bool:
    """The server holds `sock` open: nothing arrives for a while, not even a close."""
    sock.settimeout(0.5)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_past_the_limit_a_connection_is_closed_at_once_until_one_frees(serve, loop):
    with captured_log() as log, serve(hello, limit_connections=3, loop=loop,
                                      keep_alive_timeout=30) as server:
        held = [connect(server.port) for _ in range(3)]
        assert wait_until(lambda: open_count(server) == 3)
        for _ in range(3):
            assert closed_at_once(connect(server.port))
        assert closed_at_once(connect(server.port, OTHER_ADDRESS))
        assert wait_until(lambda: server.server.state.refused_over_limit == 4)
        assert all(still_open(sock) for sock in held)
        held.pop().close()
        assert wait_until(lambda: open_count(server) == 2)
        with other_client(timeout=5) as good:
            assert good.get(server.url + "/").text == "hello"
        for sock in held:
            sock.close()
        assert wait_until(lambda: open_count(server) == 0)
    assert len(limit_warnings(log)) == 1, log.describe()
    assert log.tracebacks() == []


def test_limit_connections_from_the_command_line(tmp_path, gateway_cli):
    (tmp_path / "limitapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': b'hello'})\n"
    )
    process = gateway_cli("--limit-connections", "1", "-b", "127.0.0.1:0", "limitapp:app",
                          cwd=tmp_path)
    port = process.wait_listening()
    with connect(port) as held:
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(held).endswith(b"hello")
        assert closed_at_once(connect(port))
        assert closed_at_once(connect(port, OTHER_ADDRESS))
    returncode, output = process.stop()
    assert returncode == 0
    assert output.count("connection limit reached (--limit-connections 1)") == 1
    assert "Traceback" not in output


def test_tls_connections_are_refused_before_the_handshake_and_handshakes_count(serve, certs):
    """Two clients that never start their handshake and one in the middle of an exchange hold
    the three places; the fourth connection gets no ServerHello, just a close."""
    with captured_log() as log, serve(hello, **tls_settings(certs, limit_connections=3)) as server:
        silent = [connect(server.port) for _ in range(2)]
        with certs.client_context().wrap_socket(connect(server.port),
                                                server_hostname="localhost") as served:
            assert wait_until(lambda: open_count(server) == 3)
            refused = connect(server.port)
            assert closed_at_once(refused)
            with pytest.raises(httpx.TransportError):
                httpx.get(f"https://localhost:{server.port}/", verify=certs.client_context(),
                          timeout=5)
            served.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_response(served).endswith(b"hello")
        assert wait_until(lambda: open_count(server) == 2)
        with other_client(verify=certs.client_context(), timeout=5) as good:
            assert good.get(f"https://localhost:{server.port}/").text == "hello"
        for sock in silent:
            sock.close()
    assert wait_until(lambda: server.server.state.refused_over_limit == 2)
    assert len(limit_warnings(log)) == 1, log.describe()


def failed_handshakes(port: int) -> None:
    """Every way a TLS connection can end before a protocol takes it."""
    with connect(port) as sock:  # plain HTTP to the TLS port
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        read_until_closed(sock)
    untrusting = ssl.create_default_context()
    trustme.CA().configure_trust(untrusting)
    with pytest.raises(ssl.SSLError), connect(port) as raw:
        untrusting.wrap_socket(raw, server_hostname="localhost")
    with connect(port) as sock:  # a ClientHello that is not one
        sock.sendall(b"\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello")
        read_until_closed(sock)
    connect(port).close()  # leaves without a word
    with connect(port) as sock:  # leaves halfway through its ClientHello
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_count_stays_exact_when_handshakes_fail_or_time_out(serve, certs, loop):
    settings = tls_settings(certs, limit_connections=2, tls_handshake_timeout=0.5, loop=loop)
    with serve(hello, **settings) as server:
        for _ in range(3):
            failed_handshakes(server.port)
        with connect(server.port) as silent, connect(server.port) as slow:
            slow.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # and stalls
            for sock in (silent, slow):  # both dropped after the handshake timeout
                sock.settimeout(3)
                assert read_until_closed(sock) == b""
        assert wait_until(lambda: open_count(server) == 0)
        # both places are free again: two clients at once are served
        with httpx.Client(verify=certs.client_context(), timeout=5) as first, \
                other_client(verify=certs.client_context(), timeout=5) as second:
            assert first.get(f"https://localhost:{server.port}/").text == "hello"
            assert second.get(f"https://localhost:{server.port}/").text == "hello"
            assert open_count(server) == 2
        assert wait_until(lambda: open_count(server) == 0)


def test_the_count_follows_a_connection_handed_over_to_http2_or_a_websocket(serve):
    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass
        elif scope["type"] == "http":
            await hello(scope, receive, send)

    import websockets.sync.client

    with serve(app, limit_connections=1) as server:
        with h2_connection(server.port) as client:
            assert client.response(client.request("/")).data == b"hello"
            assert open_count(server) == 1
            assert closed_at_once(connect(server.port))
        assert wait_until(lambda: open_count(server) == 0)
        with websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/"):
            assert wait_until(lambda: open_count(server) == 1)
            assert closed_at_once(connect(server.port))
        assert wait_until(lambda: open_count(server) == 0)
        with httpx.Client(http1=False, http2=True, timeout=5) as prior_knowledge:
            assert prior_knowledge.get(server.url + "/").text == "hello"


@contextlib.contextmanager
def h2_over_tls(port: int, certs):
    with h2_connection(port, client_tls_context(certs.ca_file)) as client:
        yield client


def rapid_reset(client) -> None:
    """CVE-2023-44487: streams opened and reset at once, 400 of them."""
    request = [(b":method", b"GET"), (b":path", b"/slow"), (b":scheme", b"https"),
               (b":authority", b"localhost")]
    for index in range(400):
        stream_id = 1 + 2 * index
        client.conn.send_headers(stream_id, request, end_stream=True)
        client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
    client.flush()


def test_a_blocked_address_is_refused_before_the_tls_handshake(serve, certs):
    with captured_log() as log, serve(hello, **tls_settings(certs)) as server:
        with h2_over_tls(server.port, certs) as attacker:
            rapid_reset(attacker)
            assert attacker.until(lambda: attacker.goaway is not None)
            assert attacker.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        refused_before = server.server.state.guard.refused
        # The attacker's address sends nothing yet is closed at once; a silent client from
        # elsewhere is given its handshake time.
        assert closed_at_once(connect(server.port))
        with connect(server.port, OTHER_ADDRESS) as patient:
            assert still_open(patient)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"https://localhost:{server.port}/", verify=certs.client_context(), timeout=5)
        assert wait_until(lambda: server.server.state.guard.refused == refused_before + 2)
        with other_client(http1=False, http2=True, verify=certs.client_context(), timeout=5) as good:
            response = good.get(f"https://localhost:{server.port}/")
            assert response.text == "hello" and response.http_version == "HTTP/2"
    blocks = [m for m in log.messages(logging.WARNING) if "refusing connections from 127.0.0.1" in m]
    assert len(blocks) == 1, log.describe()
