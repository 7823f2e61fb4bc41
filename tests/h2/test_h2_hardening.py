"""Attacks on HTTP/2 cost the attacker its own connection (issue 3, point 6)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from support import other_client

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
        with other_client(http1=False, http2=True, timeout=15) as other:
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


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


HEADERS, SETTINGS, PING, CONTINUATION = 0x1, 0x4, 0x6, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4


def still_serves(server) -> bool:
    with other_client(http1=False, http2=True, timeout=15) as other:
        return other.get(server.url + "/").status_code == 200


def test_continuation_flood_ends_the_connection(serve):
    """CVE-2024-27316: endless CONTINUATION frames may not grow a header block without end."""
    with serve(slow_app) as server:
        sock, conn = client(server.port)
        with sock:
            encoder = hpack.Encoder()
            block = encoder.encode(REQUEST)
            flood = frame(HEADERS, END_STREAM, 1, block)
            flood += b"".join(frame(CONTINUATION, 0, 1, b"\x40\x01a\x01b") for _ in range(500))
            with contextlib.suppress(OSError):
                sock.sendall(flood)
            event = wait_for_goaway(sock, conn, 5)
        assert event is not None and event.error_code != ErrorCodes.NO_ERROR
        assert still_serves(server)


def test_hpack_bomb_is_refused(serve):
    """A small header block that decodes to far more than SETTINGS_MAX_HEADER_LIST_SIZE."""
    with serve(slow_app, h2_max_header_list_size=16 * 1024) as server:
        sock, conn = client(server.port)
        with sock:
            encoder = hpack.Encoder()
            big = (b"x-bomb", b"a" * 4000)
            first = encoder.encode([*REQUEST, big])
            second = encoder.encode([*REQUEST, *([big] * 200)])  # ~200 bytes on the wire
            assert len(second) < 1000
            sock.sendall(
                frame(HEADERS, END_STREAM | END_HEADERS, 1, first)
                + frame(HEADERS, END_STREAM | END_HEADERS, 3, second)
            )
            event = wait_for_goaway(sock, conn, 5)
        assert event is not None and event.error_code != ErrorCodes.NO_ERROR
        assert still_serves(server)


@pytest.mark.parametrize("flood_frame", [
    frame(PING, 0, 0, b"12345678"),
    frame(SETTINGS, 0, 0, struct.pack(">HI", SettingCodes.INITIAL_WINDOW_SIZE, 65535)),
], ids=["ping", "settings"])
def test_flood_from_a_client_that_never_reads_is_bounded(serve, flood_frame):
    """Each PING and each SETTINGS owes an ACK; a client that never reads them is stopped being
    read from."""
    with serve(slow_app) as server:
        sock, _ = client(server.port)
        with sock:
            sock.settimeout(2)
            pings = flood_frame * 4096
            pushed = 0
            stalled = False
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    sock.sendall(pings)
                    pushed += len(pings)
            except TimeoutError:
                stalled = True  # the server stopped reading us: its unread ACKs are bounded
            except OSError:
                stalled = True  # or it closed the connection
            owed = max(
                (c.transport.get_write_buffer_size() for c in server.server.state.connections
                 if c.transport is not None),
                default=0,
            )
            assert stalled, f"the server kept reading a client that never reads ({pushed} bytes)"
            assert owed < 1024 * 1024, f"{owed} bytes of ACKs held for a client that never reads"
            assert still_serves(server)
