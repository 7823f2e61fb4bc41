"""WebSocket edge cases found in review, each through real sockets: pings that cross our close,
peers that close without reading, receive after a denial on HTTP/2, sends cancelled while
waiting, shutdown during the handshake, bytes before the 200 on HTTP/2, the close code when no
close frame comes back, and a close while the app's inbox is full."""

from __future__ import annotations

import asyncio
import queue
import time

import pytest
from h2_client import HEADERS, RST_STREAM
from h2_ws_client import H2WebSocket, ws_connection
from h2_ws_support import get
from support import TIMEOUT, captured_log, wait_until
from ws_support import CLOSE, PING, TEXT, RawWebSocket, frame, handshake, ws_app
from wsproto.events import CloseConnection, TextMessage
from wsproto.extensions import PerMessageDeflate

pytestmark = pytest.mark.timeout(30)


class ReportingApp:
    """Accepts; a text `close` makes it send websocket.close; every message it receives and
    its final outcome are reported on `seen`."""

    def __init__(self) -> None:
        self.seen: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = await receive()
                self.seen.put(message)
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "close":
                    await send({"type": "websocket.close", "code": 1000})
        except BaseException as exc:
            self.seen.put(exc)
            raise


def asyncio_tracebacks(log) -> list[str]:
    return [record.getMessage() for record in log.tracebacks()]


# -- 1. a ping that crosses our close frame ----------------------------------------------------


@pytest.mark.parametrize("deflate", [False, True], ids=["frames", "wsproto"])
def test_h1_ping_after_server_close_does_not_break_the_close_handshake(serve, deflate):
    app = ReportingApp()
    with captured_log("asyncio") as aio_log, captured_log() as log, \
            serve(app, ws_per_message_deflate=deflate) as server, \
            RawWebSocket(server.port, extensions=[PerMessageDeflate()] if deflate else []) as raw:
        raw.open()
        raw.send(TextMessage(data="close"))
        event = raw.next_event()
        assert isinstance(event, CloseConnection), event
        # The client's ping was on its way when our close arrived (RFC 6455 section 5.5.2:
        # it is answered or ignored, the close handshake goes on).
        raw.send_raw(frame(PING, b"crossing"))
        raw.send(event.response())
        message = get(app.seen)
        assert message["type"] == "websocket.receive"
        disconnect = get(app.seen)
        assert disconnect == {"type": "websocket.disconnect", "code": 1000, "reason": ""}, disconnect
        assert aio_log.tracebacks() == [] and log.tracebacks() == [], asyncio_tracebacks(aio_log)


def test_h2_ping_after_server_close_leaves_other_streams_alone(serve):
    app = ReportingApp()
    with captured_log("asyncio") as aio_log, serve(app) as server, \
            ws_connection(server.port) as client:
        closing = H2WebSocket.connect(client, "/a")
        other = H2WebSocket.connect(client, "/b")
        closing.send_text("close")
        get(app.seen)
        close = closing.next_event()
        assert isinstance(close, CloseConnection), close
        client.send_all(closing.stream_id, frame(PING, b"crossing"), end=False)
        closing.send_event(close.response())
        other.send_text("still here?")
        seen = [get(app.seen), get(app.seen)]
        assert {"type": "websocket.receive", "text": "still here?"} in seen, seen
        assert {"type": "websocket.disconnect", "code": 1000, "reason": ""} in seen, seen
        other.pump(0.3)
        assert not client.closed and other.result.reset is None, client.frames[-5:]
        assert aio_log.tracebacks() == [], asyncio_tracebacks(aio_log)


# -- 2. receive() after a denial on HTTP/2 -------------------------------------------------------


class DenyThenReceiveApp:
    """Closes before accepting (a 403), then waits for its websocket.disconnect, as Channels'
    consumers and other receive loops do."""

    def __init__(self) -> None:
        self.seen: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.close"})
        try:
            message = await asyncio.wait_for(receive(), 3)
        except asyncio.TimeoutError:
            message = "receive() still waiting after 3 s"
        self.seen.put(message)


def test_h2_receive_after_denial_gets_disconnect(serve):
    app = DenyThenReceiveApp()
    with serve(app) as server, ws_connection(server.port) as client:
        websocket = H2WebSocket.open(client)
        assert websocket.handshake().status == 403
        message = get(app.seen, timeout=TIMEOUT)
    assert isinstance(message, dict) and message["type"] == "websocket.disconnect", message



# -- 3. accept() after the early bytes already closed the session ----------------------------


class SlowAcceptApp:
    """Accepts after `delay`; reports what the accept did and then the disconnect."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seen: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await asyncio.sleep(self.delay)
        try:
            await send({"type": "websocket.accept"})
        except Exception as exc:
            self.seen.put(exc)
            raise
        self.seen.put("accepted")
        self.seen.put(await receive())


def test_h1_shutdown_while_connecting_with_early_close_frame(serve):
    app = SlowAcceptApp(delay=0.5)
    with captured_log() as log, serve(app, graceful_timeout=3) as server, \
            RawWebSocket(server.port) as raw:
        raw.send_raw(handshake() + frame(CLOSE, (1000).to_bytes(2, "big")))
        time.sleep(0.2)  # the app is waiting to accept
        server.stop()
        outcome = get(app.seen)
        assert outcome == "accepted", repr(outcome)
        assert get(app.seen)["type"] == "websocket.disconnect"
        assert log.tracebacks() == [], [r.getMessage() for r in log.tracebacks()]


# -- 4. a client close while our frames wait for a client that does not read ----------------------


class FloodApp:
    """Accepts and sends 64 KiB messages until send fails; counts them and reports how the
    sending ended."""

    def __init__(self) -> None:
        self.attempts = 0
        self.sent = 0
        self.seen: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        chunk = b"x" * 65536
        try:
            while True:
                self.attempts += 1
                await send({"type": "websocket.send", "bytes": chunk})
                self.sent += 1
        except OSError as exc:
            self.seen.put(exc)

    def blocked(self) -> bool:
        """Whether the app is now held in a send."""
        if not wait_until(lambda: self.attempts > 0):
            return False
        for _ in range(50):
            before = self.sent
            time.sleep(0.1)
            if self.sent == before and self.attempts == before + 1:
                return True
        return False


def test_h1_client_close_without_reading_does_not_hang_the_connection(serve):
    app = FloodApp()
    with serve(app, ws_close_timeout=1.0) as server, \
            RawWebSocket(server.port, rcvbuf=4096) as raw:
        raw.open()
        assert app.blocked()
        raw.send(CloseConnection(code=1000))
        assert isinstance(get(app.seen), OSError)  # the app's send is released
        assert wait_until(lambda: server.connection_count == 0, timeout=5), (
            f"{server.connection_count} connection(s) still open 5 s after the close handshake"
        )


# -- 5. a send cancelled while it waits for the carrier ------------------------------------------


class SendWithTimeoutApp:
    """Sends 64 KiB messages, each under asyncio.wait_for, until one times out (the client is
    not reading); then tries once more the same way and reports how that second try ended."""

    def __init__(self) -> None:
        self.seen: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = {"type": "websocket.send", "bytes": b"x" * 65536}
        try:
            for _ in range(10_000):
                await asyncio.wait_for(send(message), 0.5)
        except asyncio.TimeoutError:
            pass
        else:
            self.seen.put("never blocked")
            return
        started = time.monotonic()
        try:
            await asyncio.wait_for(send(message), 0.5)
            outcome = "sent"
        except asyncio.TimeoutError:
            outcome = "TimeoutError"
        except asyncio.CancelledError:
            outcome = "CancelledError"
        self.seen.put((outcome, round(time.monotonic() - started, 2)))


def test_h1_send_after_a_cancelled_send_waits_again(serve):
    app = SendWithTimeoutApp()
    with serve(app) as server, RawWebSocket(server.port, rcvbuf=4096) as raw:
        raw.open()
        outcome = get(app.seen, timeout=15)
    assert outcome[0] == "TimeoutError", outcome


def test_h2_send_after_a_cancelled_send_waits_again(serve):
    app = SendWithTimeoutApp()
    with serve(app) as server, ws_connection(server.port, auto_ack=False) as client:
        H2WebSocket.connect(client)
        outcome = get(app.seen, timeout=15)
    assert outcome[0] == "TimeoutError", outcome


# -- 6. HTTP/2: a client close while the app waits for window ------------------------------------


def test_h2_client_close_releases_an_app_blocked_on_window(serve):
    app = FloodApp()
    with serve(app, ws_close_timeout=1.0) as server, \
            ws_connection(server.port, auto_ack=False) as client:
        websocket = H2WebSocket.connect(client)
        assert app.blocked()
        websocket.send_close(1000)
        client.pump(0.2)
        assert isinstance(get(app.seen), OSError)


# -- 7. HTTP/2: END_STREAM from the client before the app answers --------------------------------


def test_h2_end_stream_before_accept_sends_no_headerless_data(serve):
    app = SlowAcceptApp(delay=0.5)
    with serve(app) as server, ws_connection(server.port) as client:
        websocket = H2WebSocket.open(client)
        websocket.end_stream()
        client.until(lambda: websocket.result.done, 3)
        client.pump(0.7)
        frames = [f for f in client.frames if f.stream_id == websocket.stream_id]
        assert frames, "nothing at all on the stream"
        assert frames[0].type in (HEADERS, RST_STREAM), frames


# -- 8. HTTP/2: frames sent before the 200 ---------------------------------------------------------


def test_h2_frames_sent_before_the_200_are_kept_as_over_http1(serve):
    seen: queue.Queue = queue.Queue()

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(0.5)  # the early frame arrives meanwhile
        await send({"type": "websocket.accept"})
        seen.put(await receive())

    with serve(app) as server, ws_connection(server.port) as client:
        websocket = H2WebSocket.open(client)
        client.send_all(websocket.stream_id, frame(TEXT, b"early"), end=False)
        assert websocket.handshake().status == 200
        message = get(seen, timeout=3)
    assert message == {"type": "websocket.receive", "text": "early"}, message


# -- 9. the close code when the peer never answers our close ----------------------------------


def test_unanswered_close_reports_1006(serve):
    seen: queue.Queue = queue.Queue()

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001})
        seen.put(await receive())

    with serve(app, ws_close_timeout=0.3) as server, RawWebSocket(server.port) as raw:
        raw.open()
        event = raw.next_event()
        assert isinstance(event, CloseConnection) and event.code == 4001
        raw.wait_closed()  # never answered: the server gives up after --ws-close-timeout
        message = get(seen)
    assert message == {"type": "websocket.disconnect", "code": 1006, "reason": ""}, message


# -- 10. a paused inbox nobody will read blocks the close handshake ------------------------------


def test_close_after_app_returns_completes_with_a_full_inbox(serve):
    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(1.0)  # reads nothing, then returns

    with serve(app, ws_close_timeout=3.0) as server, RawWebSocket(server.port) as raw:
        raw.open()
        for _ in range(24):  # 1.5 MiB
            raw.send(TextMessage(data="m" * 65536))
        event = raw.next_event(5)
        assert isinstance(event, CloseConnection) and event.code == 1000, event
        raw.send(event.response())
        started = time.monotonic()
        raw.wait_closed(timeout=6)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the server closed {elapsed:.1f} s after the close reply"
