"""The access line a WebSocket session gets when it ends, over HTTP/1.1 and HTTP/2: client,
path, carrier, duration, messages and payload bytes each way, close code and who began the
close; none when the access log is off or below its level; an app's exception in a session
names the connection; and the line as JSON from a `gateway` process."""

from __future__ import annotations

import json
import logging
import re

import pytest
from conftest import ROOT
from h2_ws_client import H2WebSocket
from h2_ws_support import H2C, EchoApp, connect
from support import captured_log, wait_until
from ws_support import RawWebSocket, echo_app, ws_app, ws_connect, ws_url
from wsproto.events import AcceptConnection, CloseConnection, TextMessage

from gateway.access import WebSocketEntry

pytestmark = pytest.mark.timeout(30)


def session_records(log) -> list[logging.LogRecord]:
    return [record for record in log.records if type(record.msg) is WebSocketEntry]


def one_session(log) -> tuple[logging.LogRecord, dict]:
    assert wait_until(lambda: session_records(log)), log.records
    [record] = session_records(log)
    assert record.levelno == logging.INFO
    return record, record.msg.fields()


def test_h1_session_closed_by_the_client(serve, http):
    with captured_log("gateway.access") as log, serve(echo_app, http=http) as server:
        with ws_connect(ws_url(server, "/chat?room=1")) as ws:
            client_port = ws.socket.getsockname()[1]
            for message in ("hello", "héllo", b"\x00\x01\x02"):
                ws.send(message)
                assert ws.recv(timeout=5) == message
        record, fields = one_session(log)
    assert fields.pop("duration_ms") > 0
    assert fields == {
        "type": "websocket", "client": f"127.0.0.1:{client_port}", "path": "/chat",
        "query": "room=1", "protocol": "HTTP/1.1", "http_version": "1.1", "stream_id": None,
        "messages_in": 3, "bytes_in": 14, "messages_out": 3, "bytes_out": 14,
        "close_code": 1000, "closed_by": "client", "user_agent": fields["user_agent"],
    }
    assert fields["user_agent"].startswith("Python/")
    text = record.getMessage()
    assert text.startswith(f'127.0.0.1:{client_port} - WebSocket "/chat?room=1" over HTTP/1.1 upgrade: ')
    assert text.endswith("ms, 3 messages (14B) in, 3 messages (14B) out, closed 1000 by client"), text
    # The handshake has its own line, as any response.
    [handshake] = [r.getMessage() for r in log.records if r is not record]
    assert re.fullmatch(rf'127\.0\.0\.1:{client_port} - "GET /chat\?room=1 HTTP/1\.1" 101 0B [\d.]+ms',
                        handshake), handshake


@ws_app
async def says_bye(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})
    await send({"type": "websocket.close", "code": 4001, "reason": "done"})


def test_session_closed_by_the_server(serve):
    with captured_log("gateway.access") as log, serve(says_bye) as server:
        with RawWebSocket(server.port, "/bye") as raw:
            raw.open()
            events = raw.events_until_close()
        _, fields = one_session(log)
    assert [type(event) for event in events] == [TextMessage, CloseConnection]
    assert (fields["close_code"], fields["closed_by"]) == (4001, "server")
    assert (fields["messages_in"], fields["messages_out"], fields["bytes_out"]) == (0, 1, 3)


def test_session_the_client_just_drops(serve):
    with captured_log("gateway.access") as log, serve(echo_app) as server, \
            RawWebSocket(server.port, "/drop") as raw:
        assert isinstance(raw.open(), AcceptConnection)
        raw.send(TextMessage(data="one"))
        assert raw.next_event() == TextMessage(data="one", frame_finished=True, message_finished=True)
        raw.close_socket()
        _, fields = one_session(log)
    assert (fields["close_code"], fields["closed_by"]) == (1006, "client")
    assert (fields["messages_in"], fields["bytes_in"], fields["messages_out"]) == (1, 3, 1)


def test_h2_session_names_its_stream(serve):
    with captured_log("gateway.access") as log, connect(serve, EchoApp(), H2C) as (_, client):
        websocket = H2WebSocket.connect(client, "/h2chat")
        websocket.send_text("over h2")
        assert websocket.receive() == "over h2"
        websocket.send_close(1000)
        websocket.receive_close(reply=False)
        record, fields = one_session(log)
    assert (fields["protocol"], fields["stream_id"], fields["path"]) == ("HTTP/2", 1, "/h2chat")
    assert (fields["messages_in"], fields["bytes_in"], fields["messages_out"]) == (1, 7, 1)
    assert (fields["close_code"], fields["closed_by"]) == (1000, "client")
    assert ' - WebSocket "/h2chat" over HTTP/2 stream 1: ' in record.getMessage()


@pytest.mark.parametrize(("access_log", "level"), [(False, logging.INFO), (True, logging.WARNING)],
                         ids=["access-log-off", "level-warning"])
def test_no_session_line_when_the_access_log_is_off(serve, access_log, level):
    with captured_log("gateway.access", level) as log, \
            serve(echo_app, access_log=access_log) as server:
        with ws_connect(ws_url(server)) as ws:
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
        assert wait_until(lambda: server.connection_count == 0)  # the session has ended
    assert log.records == []


@ws_app
async def fails_in_session(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("deliberate failure")


def test_an_app_exception_in_a_session_names_the_connection(serve):
    with captured_log("gateway.access") as access, captured_log() as errors, \
            serve(fails_in_session) as server, RawWebSocket(server.port, "/boom") as raw:
        raw.open()
        client_port = raw.sock.getsockname()[1]
        raw.send(TextMessage(data="go"))
        raw.events_until_close()
        _, fields = one_session(access)
        [record] = errors.tracebacks()
    assert record.getMessage() == f"Exception in ASGI app (WebSocket /boom; 127.0.0.1:{client_port} HTTP/1.1)"
    assert (record.client, record.protocol, record.stream_id, record.method, record.path) == (
        f"127.0.0.1:{client_port}", "HTTP/1.1", None, "WebSocket", "/boom")
    assert (fields["close_code"], fields["closed_by"]) == (1011, "server")


def test_json_session_line_from_a_gateway_process(gateway_cli):
    process = gateway_cli("--app-dir", str(ROOT / "examples"), "-b", "127.0.0.1:0", "--log-format", "json",
                          "websocket_echo:app")
    port = process.wait_listening()
    with ws_connect(f"ws://127.0.0.1:{port}/json") as ws:
        ws.send(b"12345678")
        assert ws.recv(timeout=5) == b"12345678"
    returncode, output = process.stop()
    assert returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines()]
    [session] = [line for line in lines if line.get("type") == "websocket"]
    assert session["logger"] == "gateway.access" and session["level"] == "INFO"
    assert (session["path"], session["messages_in"], session["bytes_in"], session["bytes_out"]) == (
        "/json", 1, 8, 8)
    assert (session["close_code"], session["closed_by"], session["protocol"]) == (1000, "client", "HTTP/1.1")
    assert session["message"].startswith(session["client"] + ' - WebSocket "/json" over HTTP/1.1 upgrade: ')
