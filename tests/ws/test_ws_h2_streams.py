"""WebSocket over HTTP/2 (RFC 8441), the stream's life on a shared connection: WebSockets
multiplexed with ordinary requests, flow control both ways, permessage-deflate, and graceful
shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_client import WINDOW_UPDATE
from h2_ws_client import H2WebSocket, ws_connection
from h2_ws_support import (
    CLIENT_MAX_FRAME,
    INITIAL_WINDOW,
    EchoApp,
    Mode,
    assert_ended_cleanly,
    connect,
    data_frames,
    get,
    make_mode,
    respond,
)
from wsproto.events import BytesMessage

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["h2c", "tls"])
def mode(request: pytest.FixtureRequest, certs) -> Mode:
    return make_mode(request.param, certs)


# -- multiplexing ---------------------------------------------------------------------------------


def test_websockets_and_requests_share_one_connection(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        client.wait_ready()
        websockets = [H2WebSocket.open(client, f"/ws/{n}") for n in range(4)]
        requests = [client.request(f"/http/{n}") for n in range(4)]
        for websocket in websockets:
            assert websocket.handshake().status == 200
        for round_number in range(3):
            for n, websocket in enumerate(websockets):
                websocket.send_text(f"ws {n} round {round_number}")
                websocket.send_bytes(bytes([n]) * (1000 * (n + 1)))
            more = [client.request(f"/http/{round_number}/{n}") for n in range(2)]
            for n, websocket in reversed(list(enumerate(websockets))):
                assert websocket.receive() == f"ws {n} round {round_number}"
                assert websocket.receive() == bytes([n]) * (1000 * (n + 1))
            for n, stream in enumerate(more):
                assert client.response(stream).data == f"http /http/{round_number}/{n}".encode()
        for n, stream in enumerate(requests):
            result = client.response(stream)
            assert (result.status, bytes(result.data)) == (200, f"http /http/{n}".encode())
        for websocket in websockets:
            websocket.send_close()
            assert websocket.next_event().code == 1000
            assert_ended_cleanly(client, websocket)
        assert sorted(get(app.disconnects)["code"] for _ in websockets) == [1000] * 4
        assert len({websocket.stream_id for websocket in websockets}) == 4


# -- flow control ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client_window", [None, 16384], ids=["default-window", "small-window"])
def test_a_large_message_each_way_through_the_stream_windows(serve, mode, client_window):
    app = EchoApp()
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: client_window} if client_window else None
    payload = os.urandom(1024 * 1024)
    with serve(app, **mode.settings) as server, \
            ws_connection(server.port, mode.context, settings=settings) as client:
        websocket = H2WebSocket.connect(client, "/big")
        websocket.send_bytes(payload)  # more than the server's window: sent as it grants more
        echoed = websocket.receive(timeout=20)
        assert len(echoed) == len(payload)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        granted = sum(f.frame.window_increment for f in client.frames_of(WINDOW_UPDATE, websocket.stream_id))
        assert granted >= len(payload) - INITIAL_WINDOW
        sizes = [f.length for f in data_frames(client, websocket.stream_id)]
        assert max(sizes) <= CLIENT_MAX_FRAME
        assert sum(sizes) > len(payload)  # the frame header on top
        websocket.send_text("small after big")
        assert websocket.receive() == "small after big"


class GatedReader:
    """Accepts, reads nothing until the test opens the gate, then reads every message and,
    on the text `done`, answers how many byte messages came and their SHA-256."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await respond(send, 200, b"served while stalled")
            return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        count, digest = 0, hashlib.sha256()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "done":
                await send({"type": "websocket.send", "text": f"{count} {digest.hexdigest()}"})
                continue
            count += 1
            digest.update(message["bytes"])


def test_an_app_that_does_not_read_stops_granting_window(serve, mode):
    app = GatedReader()
    messages = [os.urandom(64 * 1024) for _ in range(48)]  # 3 MiB
    try:
        with connect(serve, app, mode) as (_, client):
            websocket = H2WebSocket.connect(client, "/slow")
            stream_id = websocket.stream_id
            assert websocket.ws is not None
            wire = b"".join(websocket.ws.send(BytesMessage(data=m)) for m in messages)
            sent = 0
            quiet_since = None
            deadline = time.monotonic() + 15
            while True:  # send what the windows allow until they stay shut for half a second
                assert time.monotonic() < deadline, f"the window never stayed shut ({sent} sent)"
                moved = client.send_body(stream_id, wire[sent:])
                sent += moved
                assert sent < len(wire), "everything went: the server kept granting window"
                if moved:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 0.5:
                    break
                client.pump(0.05)
            stream = client.conn.streams[stream_id]
            assert sent > INITIAL_WINDOW
            # What the server holds for an app that does not read is bounded (by far less than
            # the 3 MiB offered).
            assert sent < INITIAL_WINDOW + 2 * 1024 * 1024
            assert stream.outbound_flow_control_window == 0
            updates = len(client.frames_of(WINDOW_UPDATE, stream_id))
            # The stream stays shut; the connection does not: other streams are served.
            assert client.conn.outbound_flow_control_window > 0
            assert client.response(client.request("/meanwhile")).data == b"served while stalled"
            client.pump(0.3)
            assert stream.outbound_flow_control_window == 0
            assert len(client.frames_of(WINDOW_UPDATE, stream_id)) == updates

            app.gate.set()  # the app reads: the window reopens and the rest goes through
            client.send_all(stream_id, wire[sent:], end=False, timeout=15)
            assert len(client.frames_of(WINDOW_UPDATE, stream_id)) > updates
            websocket.send_text("done")
            digest = hashlib.sha256(b"".join(messages)).hexdigest()
            assert websocket.receive(timeout=15) == f"{len(messages)} {digest}"
    finally:
        app.gate.set()


# -- permessage-deflate ---------------------------------------------------------------------------


TEXT = "the same words again and again " * 4000  # 124 KB that deflate shrinks a lot


def test_permessage_deflate_is_negotiated_when_offered(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        websocket = H2WebSocket.connect(client, "/", deflate=True)
        answer = websocket.result.header(b"sec-websocket-extensions")
        assert answer is not None and answer.split(b";")[0].strip() == b"permessage-deflate", answer
        before = sum(f.length for f in data_frames(client, websocket.stream_id))
        websocket.send_text(TEXT)
        assert websocket.receive() == TEXT
        on_wire = sum(f.length for f in data_frames(client, websocket.stream_id)) - before
        assert on_wire < len(TEXT) // 20, f"{on_wire} bytes on the wire for {len(TEXT)}"
        websocket.send_bytes(TEXT.encode())
        assert websocket.receive() == TEXT.encode()
        scope = get(app.scopes)
        assert any(name == b"sec-websocket-extensions" for name, _ in scope["headers"])


def test_permessage_deflate_is_not_negotiated_when_disabled(serve):
    app = EchoApp()
    with connect(serve, app, ws_per_message_deflate=False) as (_, client):
        websocket = H2WebSocket.connect(client, "/", deflate=True)
        assert websocket.result.header(b"sec-websocket-extensions") is None
        websocket.send_text(TEXT)
        assert websocket.receive() == TEXT
        on_wire = sum(f.length for f in data_frames(client, websocket.stream_id))
        assert on_wire >= len(TEXT)


def test_permessage_deflate_is_not_used_when_not_offered(serve):
    with connect(serve, EchoApp()) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        assert websocket.result.header(b"sec-websocket-extensions") is None


# -- shutdown -------------------------------------------------------------------------------------


def test_graceful_shutdown_sends_goaway_and_closes_with_1001(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (server, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.send_text("before")
        assert websocket.receive() == "before"
        server.stop()
        close = websocket.receive_close(reply=False)
        assert close.code == 1001
        goaways = client.goaway_frames()
        assert goaways, f"no GOAWAY with the close frame: {client.frames}"
        assert goaways[-1].error_code == ErrorCodes.NO_ERROR
        assert goaways[-1].last_stream_id >= websocket.stream_id
        # A stream opened after the GOAWAY is refused; the one in flight finishes.
        late = H2WebSocket.open(client, "/late")
        assert client.response(late.stream_id).reset == ErrorCodes.REFUSED_STREAM
        websocket.send_event(close.response())
        assert_ended_cleanly(client, websocket)
        assert client.read_until_closed(), "the connection stayed open after the last stream ended"
        assert get(app.disconnects)["code"] == 1001
