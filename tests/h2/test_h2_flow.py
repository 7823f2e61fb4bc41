"""Flow control both ways. Request bodies: the stream window is granted as the app reads, so an
app that does not read stops the client. Responses: the app's `send` waits while the client's
window is closed, and DATA frames never exceed the client's max frame size. Large transfers
with httpx are in test_h2_large_transfers.py."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

import pytest
from apps.transfer import pattern
from h2.settings import SettingCodes
from h2_client import DATA, SETTINGS, WINDOW_UPDATE, h2_connection, respond
from support import TIMEOUT, http_app, read_body, wait_until

pytestmark = pytest.mark.timeout(60)


# -- request bodies -----------------------------------------------------------------------------


class GatedReader:
    """Reads nothing until the test opens the gate, then reads the whole body."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.received = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.started.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        body = bytearray()
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            body += message["body"]
            self.received = len(body)
            if not message["more_body"]:
                break
        await respond(send, 200, f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())


def test_request_window_is_granted_only_as_the_app_reads(serve):
    app = GatedReader()
    payload = pattern(300_000)
    with serve(app, h2_initial_window_size=65535) as server, h2_connection(server.port) as client:
        client.until(lambda: client.frames_of(SETTINGS), 3)
        assert client.frames_of(SETTINGS)[0].frame.settings[SettingCodes.INITIAL_WINDOW_SIZE] == 65535
        stream = client.request("/upload", method="POST", end=False)
        assert app.started.wait(TIMEOUT)
        sent = client.send_body(stream, payload)
        # The connection window is the default 65535 too: the client is stopped at 65535 either
        # way. The server may reopen the connection window, never the stream's while unread.
        assert sent == 65535
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            client.pump(0.1)
            sent += client.send_body(stream, payload[sent:])
        assert client.frames_of(WINDOW_UPDATE, stream) == [], "window granted before the app read"
        assert sent == 65535, "the client could send more than the stream window"
        # Now the app reads, and window updates for the stream follow as it does.
        app.gate.set()
        client.send_all(stream, payload[sent:], end=True, timeout=10)
        result = client.response(stream, 10)
    assert client.frames_of(WINDOW_UPDATE, stream), "no stream WINDOW_UPDATE at all"
    assert bytes(result.data) == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()


def test_unread_body_does_not_stop_other_streams(serve):
    """One stream's unread body fills its own window only: other uploads on the connection go
    on (the connection window is not held by it)."""
    app = GatedReader()

    @http_app
    async def router(scope, receive, send):
        if scope["path"] == "/stuck":
            await app(scope, receive, send)
            return
        body = await read_body(receive)
        await respond(send, 200, str(len(body)).encode())

    with serve(router, h2_initial_window_size=65535) as server, h2_connection(server.port) as client:
        stuck = client.request("/stuck", method="POST", end=False)
        assert app.started.wait(TIMEOUT)
        client.send_body(stuck, pattern(65535))
        for _ in range(3):
            other = client.request("/other", method="POST", end=False)
            client.send_all(other, pattern(100_000), end=True, timeout=5)
            assert bytes(client.response(other).data) == b"100000"
        app.gate.set()
        client.send_all(stuck, b"", end=True)
        assert client.response(stuck).data.startswith(b"65535 ")


# -- responses ----------------------------------------------------------------------------------


class BigResponder:
    """Sends `size` bytes in one `send` (or in `chunks`), noting when each send returned."""

    def __init__(self, size: int, chunks: int = 1, trailers: bool = False) -> None:
        self.size = size
        self.chunks = chunks
        self.body = pattern(size)
        self.sends_returned = 0
        self.done = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(self.size).encode())]})
        step = -(-self.size // self.chunks)
        for offset in range(0, self.size, step):
            last = offset + step >= self.size
            await send({"type": "http.response.body", "body": self.body[offset:offset + step],
                        "more_body": not last})
            self.sends_returned += 1
        self.done.set()


def test_response_send_waits_for_the_clients_window(serve):
    app = BigResponder(100_000)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 1024}
    with serve(app) as server, h2_connection(server.port, settings=settings, auto_ack=False) as client:
        stream = client.request("/big")
        client.until(lambda: len(client.streams[stream].data) >= 1024, 3)
        client.until(lambda: False, 0.7)  # anything more would be a window violation
        result = client.streams[stream]
        assert result.status == 200
        assert len(result.data) == 1024
        assert not app.done.is_set() and app.sends_returned == 0, "send returned with data unsent"
        # Give window back frame by frame: the rest flows, in frames no larger than allowed.
        deadline = time.monotonic() + 10
        acked = 0
        while not result.done and time.monotonic() < deadline:
            if len(result.data) > acked:
                client.ack(stream, len(result.data) - acked)
                acked = len(result.data)
            client.pump(0.2)
        assert result.ended
        assert bytes(result.data) == app.body
        assert app.done.wait(3)
    assert max(result.data_frames) <= 1024
    assert all(frame.length <= 16384 for frame in client.frames_of(DATA))


def test_streamed_response_blocks_after_the_window_is_used(serve):
    app = BigResponder(200_000, chunks=20)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 25_000}
    with serve(app) as server, h2_connection(server.port, settings=settings, auto_ack=False) as client:
        stream = client.request("/chunks")
        client.until(lambda: len(client.streams[stream].data) >= 25_000, 3)
        client.until(lambda: False, 0.5)
        assert len(client.streams[stream].data) == 25_000
        # 10 000-byte chunks: the third send cannot have finished.
        assert app.sends_returned <= 2
        client.auto_ack = True
        client.ack(stream, 25_000)
        result = client.response(stream, 10)
    assert bytes(result.data) == app.body
    assert app.sends_returned == 20


def test_data_frames_never_exceed_the_max_frame_size(serve):
    app = BigResponder(1_000_000)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 2**24}
    with serve(app) as server, h2_connection(server.port, settings=settings) as client:
        client.open_connection_window()
        result = client.response(client.request("/"), 10)
    assert bytes(result.data) == app.body
    sizes = [frame.length for frame in client.frames_of(DATA)]
    assert max(sizes) == 16384  # the default SETTINGS_MAX_FRAME_SIZE, used to the full


def test_data_frames_follow_a_larger_client_max_frame_size(serve):
    app = BigResponder(1_000_000)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 2**24, SettingCodes.MAX_FRAME_SIZE: 65536}
    with serve(app) as server, h2_connection(server.port, settings=settings) as client:
        client.open_connection_window()
        result = client.response(client.request("/"), 10)
    assert bytes(result.data) == app.body
    sizes = [frame.length for frame in client.frames_of(DATA)]
    assert max(sizes) <= 65536
    assert max(sizes) > 16384


def test_zero_window_until_settings_raise_it(serve):
    """SETTINGS_INITIAL_WINDOW_SIZE 0, then a SETTINGS raising it: the change applies to the open
    stream's window (RFC 9113 section 6.9.2) and the waiting response goes out."""
    app = BigResponder(50_000)
    with serve(app) as server, \
            h2_connection(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}) as client:
        stream = client.request("/")
        client.until(lambda: client.streams[stream].headers is not None, 3)
        client.until(lambda: False, 0.3)
        assert len(client.streams[stream].data) == 0
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        client.flush()
        result = client.response(stream, 5)
    assert bytes(result.data) == app.body


def test_connection_window_is_shared_by_streams(serve):
    """Two responses larger than the connection window (65535 by default): neither finishes
    until the client grants connection-level window, then both do."""
    app = BigResponder(60_000)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 2**20}
    with serve(app) as server, h2_connection(server.port, settings=settings, auto_ack=False) as client:
        a, b = client.request("/a"), client.request("/b")
        client.until(lambda: False, 0.7)
        got = len(client.streams[a].data) + len(client.streams[b].data)
        assert got == 65535, got
        client.auto_ack = True
        client.ack(a, len(client.streams[a].data))
        client.ack(b, len(client.streams[b].data))
        assert bytes(client.response(a).data) == app.body
        assert bytes(client.response(b).data) == app.body


def test_upload_to_a_slow_reader_is_held_back(serve):
    """An app that reads slowly: the client can never be more than one stream window ahead of
    it (window updates follow consumption, not receipt)."""
    consumed = []
    pieces = []

    @http_app
    async def app(scope, receive, send):
        total = 0
        while True:
            message = await receive()
            pieces.append(len(message.get("body", b"")))
            total += pieces[-1]
            consumed.append(total)
            if not message.get("more_body"):
                break
            await asyncio.sleep(0.05)
        await respond(send, 200, str(total).encode())

    window = 65535
    with serve(app, h2_initial_window_size=window) as server, h2_connection(server.port) as client:
        client.open_connection_window()
        stream = client.request("/", method="POST", end=False)
        payload = pattern(1_000_000)
        sent = 0
        deadline = time.monotonic() + 15
        while sent < len(payload) and time.monotonic() < deadline:
            sent += client.send_body(stream, payload[sent:])
            # Bounded by what the app has consumed (one window, plus one for the race between
            # the server's WINDOW_UPDATE and the app noting what it read).
            assert sent - (consumed[-1] if consumed else 0) <= 2 * window
            client.pump(0.05)
        client.send_all(stream, b"", end=True)
        result = client.response(stream, 10)
    assert bytes(result.data) == b"1000000"
    assert wait_until(lambda: consumed[-1] == 1_000_000)
    # The server never held more than the stream window for the app.
    assert max(pieces) <= window
