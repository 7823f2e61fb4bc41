"""Attacks on HTTP/2 cost the attacker its own connection (issue 3, point 6)."""

from __future__ import annotations

import asyncio
import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
from h2.errors import ErrorCodes

REQUEST = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"test")]


async def slow_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(0.5 if scope["path"] == "/slow" else 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"0123456789"})


Client = tuple[socket.socket, h2.connection.H2Connection]
SLOW = [REQUEST[0], (b":path", b"/slow"), *REQUEST[2:]]


def client(port: int, settings: dict[int, int] | None = None) -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    sock.sendall(conn.data_to_send())
    return sock, conn


def wait_for_goaway(
    sock: socket.socket, conn: h2.connection.H2Connection, within: float
) -> h2.events.ConnectionTerminated | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return None
        if not data:
            return None
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
    return None


def test_rapid_reset_ends_the_connection_with_enhance_your_calm(serve):
    with serve(slow_app) as server:
        sock, conn = client(server.port)
        with sock:
            for index in range(400):
                stream_id = 1 + 2 * index
                conn.send_headers(stream_id, SLOW, end_stream=True)
                conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            sock.sendall(conn.data_to_send())
            event = wait_for_goaway(sock, conn, 5)
        assert event is not None and event.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        # other clients are still served
        with httpx.Client(http1=False, http2=True, timeout=5) as other:
            assert other.get(server.url + "/").status_code == 200


def test_a_client_that_keeps_its_window_shut_is_dropped_after_the_send_timeout(serve):
    with serve(slow_app, send_timeout=1.0) as server:
        sock, conn = client(server.port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        with sock:
            conn.send_headers(1, REQUEST, end_stream=True)
            sock.sendall(conn.data_to_send())
            started = time.monotonic()
            event = wait_for_goaway(sock, conn, 6)
            elapsed = time.monotonic() - started
        assert event is not None and event.error_code == ErrorCodes.FLOW_CONTROL_ERROR
        assert elapsed < 4
