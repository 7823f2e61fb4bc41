"""WebSocket over HTTP/2 (RFC 8441) as a client sees it on the wire, over h2c and over TLS:
SETTINGS_ENABLE_CONNECT_PROTOCOL, the extended CONNECT handshake and its refusals, messages
and the close handshake on the stream's DATA, resets and lost connections, and denial through
an HTTP response. The client is h2's client connection with wsproto's client frames
(h2_ws_client.py) over a real socket."""

from __future__ import annotations

import queue

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_client import HEADERS, RST_STREAM
from h2_ws_client import H2WebSocket, ws_connection
from h2_ws_support import (
    EchoApp,
    Mode,
    assert_ended_cleanly,
    connect,
    get,
    make_mode,
    server_settings,
)
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["h2c", "tls"])
def mode(request: pytest.FixtureRequest, certs) -> Mode:
    return make_mode(request.param, certs)


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


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_a_burst_of_messages_in_one_write_is_echoed_in_order(serve, deflate):
    """More DATA frames in one read than the connection handles in a turn (h2/frame_meter.py):
    the rest is fed on later turns, while the first echoes are already on their way out, and
    every message comes back once, in order."""
    with connect(serve, EchoApp()) as (_, client):
        websocket = H2WebSocket.connect(client, "/echo", deflate=deflate)
        assert websocket.ws is not None
        messages = [f"message {i} " * (i % 7) for i in range(200)]
        for message in messages:  # each in its own DATA frame, all in one sendall
            client.conn.send_data(websocket.stream_id, websocket.ws.send(TextMessage(data=message)))
        client.flush()
        assert [websocket.receive() for _ in messages] == messages


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
