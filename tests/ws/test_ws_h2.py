"""WebSocket over HTTP/2 (RFC 8441) as a client sees it on the wire, over h2c and over TLS:
SETTINGS_ENABLE_CONNECT_PROTOCOL, the extended CONNECT handshake and its refusals, messages
and the close handshake on the stream's DATA, resets and lost connections, denial through an
HTTP response, streams multiplexed with ordinary requests, flow control, permessage-deflate
and graceful shutdown. The client is h2's client connection with wsproto's client frames
(h2_ws_client.py) over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_ws_client import (
    DATA,
    HEADERS,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    H2Client,
    H2WebSocket,
    client_tls_context,
    ws_connection,
)
from support import TIMEOUT, tls_settings
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

pytestmark = pytest.mark.timeout(30)

INITIAL_WINDOW = 256 * 1024  # the server's default SETTINGS_INITIAL_WINDOW_SIZE
CLIENT_MAX_FRAME = 16384  # the client's (default) SETTINGS_MAX_FRAME_SIZE


@dataclass
class Mode:
    """h2c with prior knowledge, or TLS with ALPN h2."""

    name: str
    settings: dict[str, Any]
    context: ssl.SSLContext | None
    scheme: str  # the WebSocket scope's


H2C = Mode("h2c", {}, None, "ws")


@pytest.fixture(params=["h2c", "tls"])
def mode(request: pytest.FixtureRequest, certs) -> Mode:
    if request.param == "h2c":
        return H2C
    return Mode("tls", tls_settings(certs), client_tls_context(certs.ca_file), "wss")


def get(box: queue.Queue, timeout: float = TIMEOUT) -> Any:
    """What the app (on the server's thread) handed over, within `timeout`."""
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the app reported nothing within {timeout} s") from None


async def respond(send, status: int, body: bytes, headers=((b"content-type", b"text/plain"),)) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


class EchoApp:
    """WebSocket: accepts, choosing subprotocol `chat.v2` when offered and adding a field,
    then echoes every message; a text `close CODE REASON` makes it close with those instead.
    Every scope and the final `websocket.disconnect` are reported. HTTP: `http PATH`."""

    def __init__(self) -> None:
        self.scopes: queue.Queue = queue.Queue()
        self.disconnects: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return
        self.scopes.put(scope)
        if scope["type"] == "http":
            await respond(send, 200, f"http {scope['path']}".encode())
            return
        connect = await receive()
        assert connect == {"type": "websocket.connect"}, connect
        subprotocol = "chat.v2" if "chat.v2" in scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol,
                    "headers": [(b"x-accepted-by", b"echo")]})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.put(message)
                return
            text = message.get("text")
            if text is not None and text.startswith("close "):
                _, code, reason = text.split(" ", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
            elif text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


@contextlib.contextmanager
def connect(serve, app, mode: Mode = H2C, **settings: Any) -> Iterator[tuple[Any, H2Client]]:
    """A server for `app` and a raw HTTP/2 client connected to it."""
    with serve(app, **mode.settings, **settings) as server, \
            ws_connection(server.port, mode.context) as client:
        yield server, client


def server_settings(client: H2Client) -> dict[int, int]:
    client.wait_ready()
    frames = [f for f in client.frames_of(SETTINGS) if "ACK" not in f.flags]
    return dict(frames[0].frame.settings)


def data_frames(client: H2Client, stream_id: int):
    return client.frames_of(DATA, stream_id)


def assert_ended_cleanly(client: H2Client, websocket: H2WebSocket) -> None:
    """The server ended its side of the stream with END_STREAM (not a reset)."""
    result = websocket.wait_stream_end()
    assert result.ended and result.reset is None, result
    assert not client.frames_of(RST_STREAM, websocket.stream_id)
    last = data_frames(client, websocket.stream_id)[-1]
    assert "END_STREAM" in last.flags, client.frames


# -- SETTINGS and the handshake -------------------------------------------------------------------


def test_server_settings_enable_connect_protocol(serve, mode):
    with connect(serve, EchoApp(), mode) as (_, client):
        settings = server_settings(client)
        assert settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1, settings
        assert client.conn.remote_settings.enable_connect_protocol == 1


def test_handshake_answers_200_and_the_app_sees_a_websocket_scope(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        websocket = H2WebSocket.open(client, "/chat/r%C3%B6om?x=1&y=two", authority=b"example.test:8443",
                                     subprotocols=["chat.v1", "chat.v2"],
                                     headers=[(b"user-agent", b"raw-h2-ws")])
        result = websocket.handshake()
        assert result.status == 200, result.headers
        assert result.header(b"sec-websocket-protocol") == b"chat.v2"
        assert result.header(b"x-accepted-by") == b"echo"
        # HTTP/2 has no Sec-WebSocket-Key, so no Sec-WebSocket-Accept; the stream stays open.
        assert result.header(b"sec-websocket-accept") is None
        assert not result.ended and result.reset is None
        headers_frame = client.frames_of(HEADERS, websocket.stream_id)[0]
        assert "END_STREAM" not in headers_frame.flags
        websocket.send_text("still open")
        assert websocket.receive() == "still open"

        scope = get(app.scopes)
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["scheme"] == mode.scheme
    assert scope["path"] == "/chat/röom"
    assert scope["raw_path"] == b"/chat/r%C3%B6om"
    assert scope["query_string"] == b"x=1&y=two"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
    headers = scope["headers"]
    assert [value for name, value in headers if name == b"host"] == [b"example.test:8443"]
    assert (b"sec-websocket-version", b"13") in headers
    assert (b"user-agent", b"raw-h2-ws") in headers
    assert not any(name.startswith(b":") for name, _ in headers), headers
    assert "method" not in scope
    assert "websocket.http.response" in scope["extensions"]
    assert ("tls" in scope["extensions"]) == (mode.name == "tls")
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"][0] == "127.0.0.1"


def test_handshake_without_subprotocols_answers_none(serve):
    app = EchoApp()
    with connect(serve, app) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        assert websocket.result.header(b"sec-websocket-protocol") is None
        assert get(app.scopes)["subprotocols"] == []


@pytest.mark.parametrize("version", [None, b"8", b"12, 13"], ids=["missing", "8", "list"])
def test_bad_websocket_version_gets_400_naming_13(serve, version):
    app = EchoApp()
    with connect(serve, app) as (_, client):
        refused = H2WebSocket.open(client, "/", version=version)
        result = client.response(refused.stream_id)
        assert result.status == 400
        assert result.header(b"sec-websocket-version") == b"13"
        assert result.ended and result.reset is None
        # The connection goes on: a correct handshake on it succeeds.
        websocket = H2WebSocket.connect(client, "/after")
        websocket.send_text("ok")
        assert websocket.receive() == "ok"
        assert get(app.scopes)["path"] == "/after"
        assert app.scopes.empty()  # the refused one never reached the app


def test_protocol_pseudo_header_on_a_get_is_a_stream_error(serve):
    app = EchoApp()
    with serve(app) as server, ws_connection(server.port, validate_outbound=False) as client:
        client.wait_ready()
        stream = client.request("/", method="GET",
                                headers=[(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")])
        result = client.response(stream)
        assert result.reset == ErrorCodes.PROTOCOL_ERROR
        assert result.headers is None
        [reset] = client.frames_of(RST_STREAM, stream)
        assert reset.frame.error_code == ErrorCodes.PROTOCOL_ERROR
        # A stream error only: the connection still serves.
        assert client.response(client.request("/next")).data == b"http /next"
        assert client.goaway is None
    assert get(app.scopes)["path"] == "/next"
    assert app.scopes.empty()


def test_unknown_protocol_gets_501(serve):
    app = EchoApp()
    with connect(serve, app) as (_, client):
        other = H2WebSocket.open(client, "/", protocol=b"foo")
        result = client.response(other.stream_id)
        assert result.status == 501
        assert result.ended and result.reset is None
        assert client.response(client.request("/next")).data == b"http /next"
    assert get(app.scopes)["path"] == "/next"
    assert app.scopes.empty()


# -- messages and closing -------------------------------------------------------------------------


def test_messages_both_ways(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        websocket = H2WebSocket.connect(client, "/echo")
        for message in ["hello", "ünïcødé ✓", "", b"\x00\x01binary\xff", b""]:
            if isinstance(message, str):
                websocket.send_text(message)
            else:
                websocket.send_bytes(message)
            assert websocket.receive() == message
        # Fragmented messages arrive at the app whole.
        websocket.send_event(TextMessage(data="frag", message_finished=False))
        websocket.send_event(TextMessage(data="men", message_finished=False))
        websocket.send_event(TextMessage(data="ted ✓", message_finished=True))
        assert websocket.receive() == "fragmented ✓"
        websocket.send_event(BytesMessage(data=b"\x01" * 10, message_finished=False))
        websocket.send_event(BytesMessage(data=b"\x02" * 10, message_finished=True))
        assert websocket.receive() == b"\x01" * 10 + b"\x02" * 10
        # A ping is answered with a pong carrying the same payload.
        websocket.send_event(Ping(payload=b"are you there"))
        pong = websocket.next_event()
        assert isinstance(pong, Pong) and pong.payload == b"are you there"


def test_client_close_is_answered_and_the_stream_ends(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.send_close(4001, "bye now")
        close = websocket.next_event()
        assert isinstance(close, CloseConnection)
        assert (close.code, close.reason) == (4001, "bye now")
        assert_ended_cleanly(client, websocket)
        assert get(app.disconnects) == {"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}
        # The connection is still usable.
        assert client.response(client.request("/after")).data == b"http /after"


def test_app_close_is_sent_and_the_stream_ends_after_the_reply(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.send_text("close 4002 done here")
        close = websocket.receive_close(reply=False)
        assert (close.code, close.reason) == (4002, "done here")
        # The server waits for our close before ending the stream.
        assert not websocket.result.done
        websocket.send_event(close.response())
        assert_ended_cleanly(client, websocket)
        disconnect = get(app.disconnects)
        assert disconnect["type"] == "websocket.disconnect"
        assert disconnect["code"] == 4002


def test_client_reset_gives_the_app_1006(serve):
    app = EchoApp()
    with connect(serve, app) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.send_text("one")
        assert websocket.receive() == "one"
        client.reset(websocket.stream_id, ErrorCodes.CANCEL)
        disconnect = get(app.disconnects)
        assert disconnect["type"] == "websocket.disconnect"
        assert disconnect["code"] == 1006
        # Only that stream is gone.
        other = H2WebSocket.connect(client, "/other")
        other.send_text("two")
        assert other.receive() == "two"
        assert client.goaway is None


class Collector:
    """Accepts and reads until the disconnect; reports the messages and the disconnect."""

    def __init__(self) -> None:
        self.results: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        messages = []
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.results.put((messages, message))
                return
            messages.append(message)


def test_client_end_stream_without_close_gives_the_app_1006(serve):
    """RFC 8441 section 5: END_STREAM is the TCP FIN; without a close frame that is 1006. The
    message in the DATA frame carrying END_STREAM is delivered first; the server then ends its
    side of the stream."""
    app = Collector()
    with connect(serve, app) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.send_text("first")
        websocket.send_event(TextMessage(data="last words"), end_stream=True)
        messages, disconnect = get(app.results)
        assert messages == [{"type": "websocket.receive", "text": "first"},
                            {"type": "websocket.receive", "text": "last words"}]
        assert disconnect == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        result = websocket.wait_stream_end()
        assert result.ended and result.reset is None
        assert client.response(client.request("/after")).status is not None


def test_client_end_stream_in_an_empty_data_frame_gives_the_app_1006(serve):
    """The usual way to send END_STREAM alone (h2's `end_stream`): an empty DATA frame."""
    app = EchoApp()
    with connect(serve, app) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        client.conn.end_stream(websocket.stream_id)
        client.flush()
        assert get(app.disconnects)["code"] == 1006
        result = websocket.wait_stream_end()
        assert result.ended and result.reset is None


def test_an_empty_data_frame_is_harmless(serve):
    """RFC 9113 section 6.1 allows DATA frames of length 0; the WebSockets go on."""
    app = EchoApp()
    with connect(serve, app) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        other = H2WebSocket.connect(client, "/other")
        client.conn.send_data(websocket.stream_id, b"")
        client.flush()
        websocket.send_text("after nothing")
        assert websocket.receive() == "after nothing"
        other.send_text("neighbour")
        assert other.receive() == "neighbour"
        assert not client.closed and client.goaway is None
        assert app.disconnects.empty()


def test_closed_websockets_free_their_streams(serve):
    """More WebSockets one after another than the concurrent-stream limit: each close
    handshake, with END_STREAM both ways, leaves the stream closed on both sides."""
    app = EchoApp()
    with connect(serve, app, h2_max_concurrent_streams=10) as (_, client):
        for n in range(25):
            websocket = H2WebSocket.connect(client, f"/{n}")
            websocket.send_text(f"number {n}")
            assert websocket.receive() == f"number {n}"
            websocket.send_close()
            assert websocket.next_event().code == 1000
            assert_ended_cleanly(client, websocket)
            websocket.end_stream()
        assert client.response(client.request("/after")).data == b"http /after"
        assert client.goaway is None
    assert [get(app.disconnects)["code"] for _ in range(25)] == [1000] * 25


def test_lost_connection_gives_every_app_1006(serve, mode):
    app = EchoApp()
    with connect(serve, app, mode) as (_, client):
        websockets = [H2WebSocket.connect(client, f"/{n}") for n in range(3)]
        for websocket in websockets:
            websocket.send_text("hi")
            assert websocket.receive() == "hi"
        client.close()
        codes = [get(app.disconnects)["code"] for _ in websockets]
    assert codes == [1006, 1006, 1006]


# -- denial ---------------------------------------------------------------------------------------


class Denials:
    """One denial per path; `/later` accepts and then fails."""

    def __init__(self) -> None:
        self.reached: queue.Queue = queue.Queue()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        path = scope["path"]
        await receive()
        if path == "/close":
            await send({"type": "websocket.close"})
        elif path == "/teapot":
            await send({"type": "websocket.http.response.start", "status": 418,
                        "headers": [(b"content-type", b"text/plain"), (b"x-why", b"short and stout")]})
            await send({"type": "websocket.http.response.body", "body": b"I'm a ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"teapot"})
        elif path == "/boom":
            raise RuntimeError("failed before accepting")
        elif path == "/later":
            await send({"type": "websocket.accept"})
            await receive()
            self.reached.put(path)
            raise RuntimeError("failed after accepting")
        elif path == "/silent":
            return


def test_close_before_accept_is_403(serve, mode):
    with connect(serve, Denials(), mode) as (_, client):
        websocket = H2WebSocket.open(client, "/close")
        result = client.response(websocket.stream_id)
        assert result.status == 403
        assert result.ended and result.reset is None
        assert bytes(result.data) == b"WebSocket connection denied"


def test_http_response_extension_sends_that_response(serve, mode):
    with connect(serve, Denials(), mode) as (_, client):
        websocket = H2WebSocket.open(client, "/teapot")
        result = client.response(websocket.stream_id)
        assert result.status == 418
        assert result.header(b"x-why") == b"short and stout"
        assert result.header(b"content-type") == b"text/plain"
        assert bytes(result.data) == b"I'm a teapot"
        assert result.ended and result.reset is None


@pytest.mark.parametrize("path", ["/boom", "/silent"])
def test_app_failing_or_returning_before_accept_is_500(serve, path):
    with connect(serve, Denials()) as (_, client):
        websocket = H2WebSocket.open(client, path)
        result = client.response(websocket.stream_id)
        assert result.status == 500
        assert result.ended and result.reset is None
        assert client.response(client.request("/after")).status is not None


def test_app_failing_after_accept_closes_with_1011(serve, mode):
    app = Denials()
    with connect(serve, app, mode) as (_, client):
        websocket = H2WebSocket.connect(client, "/later")
        websocket.send_text("go")
        assert get(app.reached) == "/later"
        close = websocket.receive_close(reply=False)
        assert close.code == 1011
        assert_ended_cleanly(client, websocket)


def test_a_message_over_ws_max_size_closes_with_1009(serve):
    app = EchoApp()
    with connect(serve, app, ws_max_size=1000) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.send_bytes(b"x" * 1000)
        assert websocket.receive() == b"x" * 1000
        websocket.send_bytes(b"x" * 1001)
        close = websocket.receive_close(reply=False)
        assert close.code == 1009
        assert_ended_cleanly(client, websocket)
        assert get(app.disconnects)["code"] == 1009


def test_server_pings_keep_an_answering_client_open(serve):
    app = EchoApp()
    with connect(serve, app, ws_ping_interval=0.1, ws_ping_timeout=0.5) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.pump(0.8)
        assert websocket.pings >= 3
        websocket.send_text("still here")
        assert websocket.receive() == "still here"
        assert not websocket.result.done


def test_a_client_that_does_not_answer_pings_is_dropped_with_1006(serve):
    app = EchoApp()
    with connect(serve, app, ws_ping_interval=0.1, ws_ping_timeout=0.2) as (_, client):
        websocket = H2WebSocket.connect(client, "/")
        websocket.answer_pings = False
        result = websocket.wait_stream_end()
        assert websocket.pings >= 1
        assert result.reset == ErrorCodes.CANCEL  # what it has not read is dropped
        assert get(app.disconnects)["code"] == 1006
        # Only the stream ends; the connection serves on.
        assert client.response(client.request("/after")).data == b"http /after"


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
