"""Back-pressure both ways on a WebSocket over HTTP/1.1 (an app that does not read makes the
server stop reading, before the accept too; a client that does not read makes the app's `send`
wait), peers that stop reading (dropped on a missed pong, an app blocked in `send` released),
and the lifecycle around it: idle WebSockets outlive the keep-alive timeout, and a graceful
shutdown closes them with 1001 (going away)."""

from __future__ import annotations

import asyncio
import select
import threading
import time

import pytest
from support import captured_log, wait_until
from websockets.exceptions import ConnectionClosed
from ws_support import (
    BINARY,
    RawWebSocket,
    close_event,
    echo_app,
    frame,
    recording_app,
    ws_app,
    ws_connect,
    ws_url,
)
from wsproto.events import BytesMessage, CloseConnection, TextMessage

pytestmark = pytest.mark.timeout(30)

KiB = 1024
MiB = 1024 * KiB


async def wait_for_event(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.01)


def settled(value, quiet: float = 0.3, timeout: float = 5.0):
    """`value()` once it has stayed the same for `quiet` seconds; None if it kept changing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = value()
        time.sleep(quiet)
        if value() == before:
            return before
    return None


def test_app_not_reading_stops_the_server_reading(serve, http):
    message_size = 64 * KiB
    count = 512  # 32 MiB in all
    go = threading.Event()
    got = {"messages": 0, "bytes": 0}

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await wait_for_event(go)
        while got["messages"] < count:
            message = await receive()
            assert message["type"] == "websocket.receive", message
            got["messages"] += 1
            got["bytes"] += len(message["bytes"])
        await send({"type": "websocket.send", "text": f"{got['messages']} {got['bytes']}"})
        await receive()

    with serve(app, http=http) as server, RawWebSocket(server.port, sndbuf=64 * KiB) as raw:
        raw.open()
        data = memoryview(frame(BINARY, bytes(range(256)) * (message_size // 256)) * count)
        sock = raw.sock
        sock.setblocking(False)
        pushed = 0
        deadline = time.monotonic() + 10
        while pushed < len(data) and time.monotonic() < deadline:
            try:
                pushed += sock.send(data[pushed:pushed + 256 * KiB])
            except BlockingIOError:
                if not select.select([], [sock], [], 0.5)[1]:
                    break  # nothing could be sent for half a second: the server stopped reading
        assert pushed < len(data), "the client pushed 32 MiB to an app that reads nothing"
        assert pushed < 24 * MiB, f"the server read {pushed / MiB:.1f} MiB for an app that reads nothing"
        assert got["messages"] == 0
        go.set()
        sock.settimeout(10)
        sock.sendall(data[pushed:])
        event = raw.next_event(10)
        assert isinstance(event, TextMessage), event
        assert event.data == f"{count} {count * message_size}"


@pytest.mark.parametrize("message_size", [64 * KiB, 1 * KiB], ids=["64KiB", "1KiB"])
def test_client_not_reading_makes_app_send_wait(serve, http, message_size):
    """Small messages are held for the end of the loop's turn and written together; an app
    that sends them in a loop (never yielding while the socket takes all) must still stall."""
    count = 16 * MiB // message_size
    block = bytes(range(256)) * (message_size // 256)
    sent = {"messages": 0}

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": block})
            sent["messages"] += 1
        await receive()

    with serve(app, http=http) as server, RawWebSocket(server.port, rcvbuf=64 * KiB) as raw:
        raw.open()
        assert wait_until(lambda: sent["messages"] > 0)
        stalled = settled(lambda: sent["messages"])
        assert stalled is not None, "the app's send kept returning while the client read nothing"
        assert stalled < count, "the app sent 16 MiB into a client that reads nothing"
        received = 0
        current = bytearray()
        while received < count:
            event = raw.next_event(10)
            assert isinstance(event, BytesMessage), event
            current += event.data  # wsproto hands a large message over in parts
            if event.message_finished:
                assert current == block, f"message {received} arrived damaged"
                current.clear()
                received += 1
        assert wait_until(lambda: sent["messages"] == count)


def test_idle_websocket_outlives_keep_alive_timeout(serve, http):
    with serve(echo_app, http=http, keep_alive_timeout=0.3) as server, ws_connect(ws_url(server)) as ws:
        time.sleep(1.3)  # the idle sweep runs once a second
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"


def test_graceful_shutdown_closes_with_1001(serve, http):
    seen: list = []
    done = threading.Event()
    app = recording_app(seen, done)
    with captured_log() as log, serve(app, http=http) as server, ws_connect(ws_url(server)) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        stopped_at = time.monotonic()
        server.stop()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1001
        assert done.wait(5)
        server.thread.join(5)
        assert not server.thread.is_alive()
        # The close handshake ended the connection: no waiting for the graceful timeout.
        assert time.monotonic() - stopped_at < 2
    assert seen[-1]["type"] == "websocket.disconnect"
    assert seen[-1]["code"] == 1001
    assert log.tracebacks() == []


def test_shutdown_during_handshake_accepts_then_closes_with_1001(serve):
    may_accept = threading.Event()
    seen: list = []

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await wait_for_event(may_accept)
        await send({"type": "websocket.accept"})
        seen.append(await receive())

    with serve(app) as server, RawWebSocket(server.port) as raw:
        raw.send(raw.request)
        time.sleep(0.1)
        server.stop()
        time.sleep(0.1)
        may_accept.set()
        raw.next_event()  # the 101
        close = close_event(raw.events_until_close())
        assert close is not None and close.code == 1001
        server.thread.join(5)
        assert not server.thread.is_alive()
    assert [(message["type"], message["code"]) for message in seen] == [("websocket.disconnect", 1001)]


def test_shutdown_ends_a_client_that_never_answers_the_close(serve):
    with serve(echo_app, graceful_timeout=0.5) as server, RawWebSocket(server.port) as raw:
        raw.open()
        server.stop()
        event = raw.next_event(5)
        assert isinstance(event, CloseConnection) and event.code == 1001
        started = time.monotonic()
        raw.wait_closed(timeout=5)  # not answered
        assert time.monotonic() - started < 2
        server.thread.join(5)
        assert not server.thread.is_alive()


def test_a_close_the_client_never_answers_ends_after_ws_close_timeout(serve):
    @ws_app
    async def closing_app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001})

    with serve(closing_app, ws_close_timeout=0.3) as server, RawWebSocket(server.port) as raw:
        raw.open()
        event = raw.next_event(5)
        assert isinstance(event, CloseConnection) and event.code == 4001
        started = time.monotonic()
        raw.wait_closed(timeout=5)  # not answered
        assert 0.2 < time.monotonic() - started < 2


def test_non_ascii_text_keeps_flowing(serve):
    text = "✓" * 100_000  # 300,000 bytes of UTF-8
    with serve(echo_app, graceful_timeout=0.5) as server, ws_connect(ws_url(server), compression=None) as ws:
        for number in range(12):
            ws.send(text)
            try:
                echoed = ws.recv(timeout=1.5)
            except TimeoutError:
                raise AssertionError(f"message {number} never came back: reading stopped") from None
            assert echoed == text


def flooding_app(outcome: dict, done: threading.Event):
    """Accepts and sends 64 KiB messages until `send` fails."""

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        outcome["sent"] = 0
        try:
            while True:
                await send({"type": "websocket.send", "bytes": b"f" * 64 * KiB})
                outcome["sent"] += 1
        except Exception as exc:
            outcome["error"] = exc
        finally:
            done.set()

    return app


def test_peer_that_neither_reads_nor_answers_pings_is_dropped(serve):
    outcome: dict = {}
    done = threading.Event()
    app = flooding_app(outcome, done)
    with serve(app, ws_ping_interval=0.2, ws_ping_timeout=0.5, graceful_timeout=0.5) as server:
        with RawWebSocket(server.port, rcvbuf=64 * KiB) as raw:
            raw.open()
            # Nothing is read from here on, so no ping is seen or answered.
            released = done.wait(2.5)
            open_connections = server.connection_count
        assert released, f"the app is still blocked in send after {outcome['sent']} messages"
        assert isinstance(outcome["error"], OSError)
        assert open_connections == 0


def test_client_close_releases_an_app_blocked_in_send(serve):
    outcome: dict = {}
    done = threading.Event()
    with serve(flooding_app(outcome, done), graceful_timeout=0.5) as server:
        with RawWebSocket(server.port, rcvbuf=64 * KiB) as raw:
            raw.open()
            assert wait_until(lambda: outcome.get("sent", 0) > 0)
            time.sleep(0.3)  # the app is now waiting in send
            raw.send(CloseConnection(code=1000, reason="leaving"))
            released = done.wait(2)
        assert released, f"the app is still blocked in send after {outcome['sent']} messages"
        assert isinstance(outcome["error"], OSError)


def test_frames_sent_before_accept_are_bounded_and_kept(serve, http):
    """A client may send frames right after its handshake: the server keeps reading them (so
    a client that leaves is noticed) but stops once a bound is passed, and after the accept
    every message reaches the app in order."""
    message_size = 64 * KiB
    count = 256  # 16 MiB in all
    may_accept = threading.Event()
    got: list = []

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await wait_for_event(may_accept)
        await send({"type": "websocket.accept"})
        for _ in range(count):
            message = await receive()
            assert message["type"] == "websocket.receive", message
            got.append(message["bytes"][:8])
        await send({"type": "websocket.send", "text": f"{len(got)}"})
        await receive()

    frames = b"".join(
        frame(BINARY, number.to_bytes(8, "big") + bytes(message_size - 8)) for number in range(count)
    )
    with serve(app, http=http) as server, RawWebSocket(server.port, sndbuf=64 * KiB) as raw:
        raw.send(raw.request)
        sock = raw.sock
        sock.setblocking(False)
        data = memoryview(frames)
        pushed = 0
        deadline = time.monotonic() + 10
        while pushed < len(data) and time.monotonic() < deadline:
            try:
                pushed += sock.send(data[pushed:pushed + 256 * KiB])
            except BlockingIOError:
                if not select.select([], [sock], [], 0.5)[1]:
                    break
        assert pushed < len(data), "the server read 16 MiB of frames for a handshake not yet accepted"
        may_accept.set()
        sock.settimeout(10)
        sock.sendall(data[pushed:])
        raw.next_event(10)  # the 101
        event = raw.next_event(10)
        assert isinstance(event, TextMessage) and event.data == str(count), event
    assert got == [number.to_bytes(8, "big") for number in range(count)]
