"""Shared pieces of the WebSocket-over-HTTP/2 tests: the two modes (h2c, TLS), an echo app
that reports what it saw, a server-and-client context, and checks on the frames."""

from __future__ import annotations

import contextlib
import queue
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from h2_client import DATA, RST_STREAM, SETTINGS, H2Client, client_tls_context
from h2_ws_client import H2WebSocket, ws_connection
from support import TIMEOUT, tls_settings

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


def make_mode(name: str, certs) -> Mode:
    """The `mode` fixture's value: h2c, or TLS with the test certificate."""
    if name == "h2c":
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
