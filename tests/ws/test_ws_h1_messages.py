"""Messages and closes over an accepted WebSocket on HTTP/1.1: echo of text and bytes, fragmented
messages reassembled (RFC 6455 section 5.4), close codes and reasons both ways (section 7), and
1006 for a connection that just ends."""

from __future__ import annotations

import os
import threading
import time

import pytest
from support import captured_log
from websockets.exceptions import ConnectionClosed
from ws_support import (
    BINARY,
    CONTINUATION,
    TEXT,
    RawWebSocket,
    close_event,
    echo_app,
    frame,
    recording_app,
    ws_app,
    ws_connect,
    ws_url,
)
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_echo_text_and_bytes(serve, http, compression):
    big = os.urandom(300 * 1024)
    with serve(echo_app, http=http) as server, ws_connect(ws_url(server), compression=compression) as ws:
        for message in ("hello", "héllo ✓ 日本", "", b"\x00\xff\x80binary", b"", big, "x" * 70_000):
            ws.send(message)
            echoed = ws.recv(timeout=5)
            assert type(echoed) is type(message)
            assert echoed == message


def test_many_messages_keep_their_order(serve, http):
    with serve(echo_app, http=http) as server, ws_connect(ws_url(server)) as ws:
        for number in range(200):
            ws.send(f"message {number}")
        assert [ws.recv(timeout=5) for _ in range(200)] == [f"message {n}" for n in range(200)]


def recorder(received: list, done: threading.Event):
    """Accepts and records every message until the disconnect, answering `got N`."""
    return recording_app(received, done, lambda message, received: f"got {len(received)}")


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_fragmented_messages_reach_the_app_whole(serve, http, deflate):
    received: list = []
    done = threading.Event()
    extensions = [PerMessageDeflate()] if deflate else []
    with serve(recorder(received, done), http=http) as server, \
            RawWebSocket(server.port, extensions=extensions) as raw:
        assert bool(raw.open().extensions) == deflate
        raw.send(TextMessage(data="hel", message_finished=False))
        raw.send(TextMessage(data="lo wo", message_finished=False))
        raw.send(TextMessage(data="rld ✓", message_finished=True))
        assert raw.next_event().data == "got 1"
        raw.send(BytesMessage(data=b"\x00\x01", message_finished=False))
        # A control frame may come between the fragments of a message (section 5.4).
        raw.send(Ping(payload=b"between"))
        raw.send(BytesMessage(data=b"\x02\x03", message_finished=True))
        first = raw.next_event()
        assert isinstance(first, Pong) and first.payload == b"between"
        assert raw.next_event().data == "got 2"
        raw.send(CloseConnection(code=1000))
        raw.events_until_close()
        assert done.wait(5)
    assert received[:2] == [
        {"type": "websocket.receive", "text": "hello world ✓"},
        {"type": "websocket.receive", "bytes": b"\x00\x01\x02\x03"},
    ]


def test_utf8_character_split_across_fragments(serve, http):
    received: list = []
    done = threading.Event()
    with serve(recorder(received, done), http=http) as server, RawWebSocket(server.port) as raw:
        raw.open()
        encoded = "é✓".encode()  # c3 a9 e2 9c 93
        raw.send_raw(frame(TEXT, encoded[:1], fin=False) + frame(CONTINUATION, encoded[1:3], fin=False))
        raw.send_raw(frame(CONTINUATION, encoded[3:]))
        assert raw.next_event().data == "got 1"
        raw.send_raw(frame(BINARY, b"", fin=False) + frame(CONTINUATION, b"ab"))
        assert raw.next_event().data == "got 2"
    assert done.wait(5)
    assert received[:2] == [{"type": "websocket.receive", "text": "é✓"},
                            {"type": "websocket.receive", "bytes": b"ab"}]


def closing_app(message: dict, after: list):
    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send(message)
        after.append(await receive())

    return app


def test_app_close_code_and_reason_reach_the_client(serve, http):
    after: list = []
    app = closing_app({"type": "websocket.close", "code": 4001, "reason": "bye now ✓"}, after)
    with serve(app, http=http) as server, ws_connect(ws_url(server)) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4001
        assert ws.close_reason == "bye now ✓"
    # The app's receive after its close reports the close (the client echoed 4001).
    assert after == [{"type": "websocket.disconnect", "code": 4001, "reason": "bye now ✓"}]


def test_app_close_without_code_is_1000(serve):
    with serve(closing_app({"type": "websocket.close"}, [])) as server, ws_connect(ws_url(server)) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1000
        assert ws.close_reason == ""


def test_server_ends_tcp_after_the_close_handshake(serve, http):
    """RFC 6455 section 7.1.1: after the close frames are exchanged the server closes first."""
    app = closing_app({"type": "websocket.close", "code": 1000}, [])
    with serve(app, http=http) as server, RawWebSocket(server.port) as raw:
        raw.open()
        events = raw.events_until_close()
        assert close_event(events).code == 1000
        started = time.monotonic()
        assert raw.wait_closed(timeout=3) == b""
        assert time.monotonic() - started < 2


def test_app_returning_after_accept_closes_with_1000(serve):
    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last words"})

    with serve(app) as server, ws_connect(ws_url(server)) as ws:
        assert ws.recv(timeout=5) == "last words"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1000


def test_client_close_code_and_reason_reach_the_app(serve, http):
    received: list = []
    done = threading.Event()
    with serve(recorder(received, done), http=http) as server:
        with ws_connect(ws_url(server)) as ws:
            ws.send("one")
            assert ws.recv(timeout=5) == "got 1"
            ws.close(code=4002, reason="client is leaving")
            # The server answered the close: the client saw a clean closing handshake.
            assert ws.close_code == 4002
        assert done.wait(5)
    assert received == [
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.disconnect", "code": 4002, "reason": "client is leaving"},
    ]


def test_close_frame_without_code_is_1005_for_the_app(serve):
    received: list = []
    done = threading.Event()
    with serve(recorder(received, done)) as server, RawWebSocket(server.port) as raw:
        raw.open()
        raw.send_raw(frame(0x8, b""))
        events = raw.events_until_close()
        assert isinstance(events[-1], CloseConnection)
        assert done.wait(5)
    assert received == [{"type": "websocket.disconnect", "code": 1005, "reason": ""}]


def test_dropped_connection_is_1006_and_send_then_fails(serve, http):
    outcome: dict = {}
    done = threading.Event()

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        outcome["message"] = await receive()
        try:
            await send({"type": "websocket.send", "text": "anyone there?"})
        except Exception as exc:
            outcome["send"] = exc
        done.set()

    with captured_log() as log, serve(app, http=http) as server:
        with RawWebSocket(server.port) as raw:
            raw.open()
        # The socket is gone without a close frame.
        assert done.wait(5)
    assert outcome["message"] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    # ASGI: send on a closed connection raises an OSError subclass.
    assert isinstance(outcome["send"], OSError), outcome
    assert log.tracebacks() == []
