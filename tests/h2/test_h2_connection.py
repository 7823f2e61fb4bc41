"""Connection management: SETTINGS from Config, PING answered, graceful shutdown with GOAWAY and
the last stream id (streams in flight finish), idle connections closed after the keep-alive
timeout, GOAWAY from the client honoured."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_client import GOAWAY, PING, RST_STREAM, SETTINGS, H2Client, h2_connection
from support import TIMEOUT, LogRecords, captured_log, read_body, wait_until

pytestmark = pytest.mark.timeout(30)


class Gate:
    """An app whose /slow requests wait for the test (or `delay` seconds)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished: list[str] = []
        self.errors: list[BaseException] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await read_body(receive)
        if scope["path"].startswith("/slow"):
            self.started.set()
            deadline = time.monotonic() + (self.delay or 10)
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first;", "more_body": True})
            await send({"type": "http.response.body", "body": scope["path"].encode()})
        except BaseException as exc:
            self.errors.append(exc)
            raise
        self.finished.append(scope["path"])


def test_settings_come_from_config(serve):
    options = dict(h2_max_concurrent_streams=17, h2_initial_window_size=100_000,
                   h2_max_frame_size=32_768, h2_max_header_list_size=20_000)
    with serve(Gate(), **options) as server, h2_connection(server.port) as client:
        client.until(lambda: client.frames_of(SETTINGS), 3)
        first = client.frames[0]
        assert first.type == SETTINGS and first.stream_id == 0
        settings = first.frame.settings
        assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 17
        assert settings[SettingCodes.INITIAL_WINDOW_SIZE] == 100_000
        assert settings[SettingCodes.MAX_FRAME_SIZE] == 32_768
        assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 20_000
        # Our SETTINGS are acknowledged, and requests are served.
        assert client.until(lambda: [f for f in client.frames_of(SETTINGS) if "ACK" in f.flags], 3)
        assert bytes(client.response(client.request("/")).data) == b"first;/"


def test_default_settings_are_sensible(serve):
    with serve(Gate()) as server, h2_connection(server.port) as client:
        client.until(lambda: client.frames_of(SETTINGS), 3)
        settings = client.frames[0].frame.settings
    assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] >= 100
    assert settings[SettingCodes.INITIAL_WINDOW_SIZE] == 262_144
    assert settings.get(SettingCodes.MAX_FRAME_SIZE, 16_384) == 16_384
    assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] > 0


def test_ping_is_answered_with_an_ack(serve):
    with serve(Gate()) as server, h2_connection(server.port) as client:
        client.ping(b"12345678")
        assert client.until(lambda: [f for f in client.frames_of(PING) if "ACK" in f.flags], 3)
        acks = [f for f in client.frames_of(PING) if "ACK" in f.flags]
        assert acks[0].frame.opaque_data == b"12345678"
        assert acks[0].stream_id == 0
        client.ping(b"abcdefgh")
        assert client.until(lambda: len([f for f in client.frames_of(PING) if "ACK" in f.flags]) == 2, 3)
        assert [f for f in client.frames_of(PING) if "ACK" in f.flags][1].frame.opaque_data == b"abcdefgh"
        assert bytes(client.response(client.request("/")).data) == b"first;/"


# -- graceful shutdown --------------------------------------------------------------------------


@contextlib.contextmanager
def shutting_down_with_a_stream_in_flight(serve) -> Iterator[tuple[Gate, LogRecords, H2Client, int]]:
    """A server (graceful_timeout 5s) stopped while stream /slow is held in its app, once its
    GOAWAY has arrived: the app, the error log, the client and the stream's id."""
    app = Gate()
    with captured_log() as log, serve(app, graceful_timeout=5) as server, \
            h2_connection(server.port) as client:
        client.wait_ready()
        stream = client.request("/slow")
        assert app.started.wait(TIMEOUT)
        server.stop()
        assert client.until(lambda: client.goaway is not None, 3), "no GOAWAY on shutdown"
        yield app, log, client, stream


def test_graceful_shutdown_lets_the_stream_in_flight_finish(serve):
    with shutting_down_with_a_stream_in_flight(serve) as (app, log, client, stream):
        assert client.goaway.error_code == ErrorCodes.NO_ERROR
        assert client.goaway.last_stream_id == stream
        app.release.set()
        result = client.response(stream, 3)
        assert (result.status, bytes(result.data)) == (200, b"first;/slow")
        assert client.read_until_closed(3), "the connection stayed open after the last stream"
    assert app.finished == ["/slow"]
    assert not log.tracebacks(), log.describe()
    assert not log.at_least(40), log.describe()


def test_graceful_shutdown_streams_racing_the_goaway_are_refused_not_fatal(serve):
    """A stream the client opens before it has seen the GOAWAY (id above last-stream-id) is
    refused or ignored (RFC 9113 section 6.8); the stream in flight still completes."""
    with shutting_down_with_a_stream_in_flight(serve) as (app, log, client, first):
        # The GOAWAY is held back from the client's h2, so it can still open a stream, as a
        # client whose request crossed the GOAWAY on the wire would have.
        late = client.request("/late")
        client.until(lambda: client.frames_of(RST_STREAM, late), 0.5)
        app.release.set()
        result = client.response(first, 3)
        assert bytes(result.data) == b"first;/slow"
        assert client.read_until_closed(3)
    late_result = client.streams[late]
    assert late_result.headers is None, "a stream above the GOAWAY's last-stream-id was served"
    assert late_result.reset in (None, ErrorCodes.REFUSED_STREAM)
    assert all(goaway.error_code == ErrorCodes.NO_ERROR for goaway in client.goaway_frames())
    assert "/late" not in app.finished
    assert not log.tracebacks(), log.describe()


def test_graceful_shutdown_accepts_frames_the_client_sends_after_the_goaway(serve):
    """After its GOAWAY the server still takes the client's connection-level frames (PING,
    WINDOW_UPDATE, SETTINGS, its ACK of ours) and the stream's frames: the connection is still
    serving stream 1 (RFC 9113 section 6.8)."""
    with shutting_down_with_a_stream_in_flight(serve) as (app, log, client, stream):
        client.ping(b"afterGA!")
        client.open_connection_window(100_000)
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 100_000})
        client.flush()
        assert client.until(lambda: [f for f in client.frames_of(PING) if "ACK" in f.flags], 3)
        app.release.set()
        result = client.response(stream, 3)
        assert bytes(result.data) == b"first;/slow"
        assert client.read_until_closed(3)
    assert [goaway.error_code for goaway in client.goaway_frames()] == [ErrorCodes.NO_ERROR]
    assert not log.tracebacks(), log.describe()


def test_graceful_shutdown_of_an_idle_connection(serve):
    with serve(Gate()) as server, h2_connection(server.port) as client:
        assert bytes(client.response(client.request("/")).data) == b"first;/"
        started = time.monotonic()
        server.stop()
        assert client.read_until_closed(3), "an idle connection was not closed on shutdown"
        assert time.monotonic() - started < 3
        goaways = client.goaway_frames()
        assert goaways and goaways[-1].error_code == ErrorCodes.NO_ERROR
        assert goaways[-1].last_stream_id == 1


def test_graceful_timeout_ends_a_stream_that_does_not_finish(serve):
    app = Gate()
    with serve(app, graceful_timeout=1) as server, h2_connection(server.port) as client:
        stream = client.request("/slow")
        assert app.started.wait(TIMEOUT)
        started = time.monotonic()
        server.stop()
        assert client.read_until_closed(5)
        assert time.monotonic() - started < 4
        assert not client.streams[stream].ended
        app.release.set()


# -- keep-alive timeout ---------------------------------------------------------------------------


def test_idle_connection_closed_after_keep_alive_timeout(serve):
    with serve(Gate(), keep_alive_timeout=1) as server, h2_connection(server.port) as client:
        assert bytes(client.response(client.request("/")).data) == b"first;/"
        started = time.monotonic()
        assert client.read_until_closed(4), "idle connection still open"
        elapsed = time.monotonic() - started
        goaways = client.goaway_frames()
    assert 0.9 <= elapsed < 3.5, elapsed
    assert goaways, "closed without GOAWAY"
    assert goaways[-1].error_code == ErrorCodes.NO_ERROR
    assert goaways[-1].last_stream_id == 1
    assert client.frames[-1].type == GOAWAY


def test_connection_with_no_request_closed_after_keep_alive_timeout(serve):
    with serve(Gate(), keep_alive_timeout=1) as server, h2_connection(server.port) as client:
        started = time.monotonic()
        assert client.read_until_closed(4)
        assert time.monotonic() - started < 3.5
        assert client.goaway_frames()


def test_keep_alive_timeout_does_not_cut_a_busy_stream(serve):
    app = Gate(delay=2.5)
    with serve(app, keep_alive_timeout=1) as server, h2_connection(server.port) as client:
        result = client.response(client.request("/slow"), 6)
        assert bytes(result.data) == b"first;/slow"
        # Then idle: closed.
        assert client.read_until_closed(4)


# -- GOAWAY from the client ---------------------------------------------------------------------


def test_goaway_from_client_closes_an_idle_connection(serve):
    with captured_log() as log, serve(Gate()) as server:
        with h2_connection(server.port) as client:
            assert bytes(client.response(client.request("/")).data) == b"first;/"
            client.send_goaway(ErrorCodes.NO_ERROR)
            assert client.read_until_closed(3)
        assert wait_until(lambda: server.connection_count == 0, 3)
        response = httpx.Client(http1=False, http2=True, timeout=TIMEOUT).get(server.url + "/again")
        assert response.http_version == "HTTP/2" and response.text == "first;/again"
    assert not log.tracebacks(), log.describe()


def test_goaway_from_client_lets_its_open_stream_finish(serve):
    """GOAWAY from a client says it opens no more streams; the server still answers those
    already open (RFC 9113 section 6.8), then closes."""
    app = Gate()
    with captured_log() as log, serve(app) as server, h2_connection(server.port) as client:
        client.wait_ready()
        stream = client.request("/slow")
        assert app.started.wait(TIMEOUT)
        client.send_goaway(ErrorCodes.NO_ERROR)
        time.sleep(0.1)
        app.release.set()
        result = client.response(stream, 3)
        assert (result.status, bytes(result.data)) == (200, b"first;/slow")
        assert client.read_until_closed(3)
    assert app.errors == []
    assert not log.tracebacks(), log.describe()


def test_goaway_with_error_from_client_ends_the_connection(serve):
    app = Gate()
    with captured_log() as log, serve(app) as server, h2_connection(server.port) as client:
        client.request("/slow")
        assert app.started.wait(TIMEOUT)
        client.send_goaway(ErrorCodes.PROTOCOL_ERROR)
        assert client.read_until_closed(3)
        app.release.set()
        with h2_connection(server.port) as other:
            assert bytes(other.response(other.request("/")).data) == b"first;/"
    assert not log.tracebacks(), log.describe()
