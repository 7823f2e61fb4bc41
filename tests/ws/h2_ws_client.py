"""An RFC 8441 WebSocket client for the tests: an extended CONNECT stream opened by the raw
HTTP/2 client of h2_client.py (h2's client connection over a real socket, with its frame
log), and wsproto's client frame layer on the stream's DATA. Every wait has a timeout."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from h2_client import (
    H2Client,
    StreamResult,
    h2_connection,
)
from support import TIMEOUT
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate

DEFLATE_OFFER = b"permessage-deflate; client_max_window_bits"


@contextlib.contextmanager
def ws_connection(port: int, context: ssl.SSLContext | None = None, **options: Any) -> Iterator[H2Client]:
    """`h2_connection` with Nagle's algorithm off: WebSocket frames are small writes that must
    not wait for the server's delayed ACKs (over TLS a 1 MiB upload otherwise takes a second)."""
    with h2_connection(port, context, **options) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield client


def connect_request(path: str = "/", *, subprotocols: Iterable[str] = (), version: bytes | None = b"13",
                    extensions: bytes | None = None, protocol: bytes = b"websocket",
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
    """The fields after :method, :scheme, :authority and :path of an extended CONNECT."""
    fields = [(b":protocol", protocol)]
    if version is not None:
        fields.append((b"sec-websocket-version", version))
    subprotocols = list(subprotocols)
    if subprotocols:
        fields.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    if extensions is not None:
        fields.append((b"sec-websocket-extensions", extensions))
    fields.extend(headers)
    return fields


class H2WebSocket:
    """One WebSocket on an extended CONNECT stream of `client`."""

    def __init__(self, client: H2Client, stream_id: int, deflate: PerMessageDeflate | None) -> None:
        self.client = client
        self.stream_id = stream_id
        self.deflate = deflate
        self.ws: Connection | None = None
        self.events: deque[Event] = deque()  # received, not yet taken
        self.close: CloseConnection | None = None  # the server's close frame, once received
        self.fed = 0  # bytes of the stream's DATA given to wsproto
        self.pings = 0  # pings received from the server
        self.answer_pings = True

    @classmethod
    def open(cls, client: H2Client, path: str = "/", *, deflate: bool = False,
             authority: bytes = b"localhost", **request: Any) -> H2WebSocket:
        """Send the extended CONNECT (after the server's SETTINGS); the response is awaited
        by `handshake`."""
        client.wait_ready()
        extension = None
        if deflate:
            extension = PerMessageDeflate()
            request.setdefault("extensions", DEFLATE_OFFER)
        stream_id = client.request(path, method="CONNECT", headers=connect_request(**request),
                                   end=False, authority=authority)
        return cls(client, stream_id, extension)

    @classmethod
    def connect(cls, client: H2Client, path: str = "/", **options: Any) -> H2WebSocket:
        """Open and complete the handshake; fails unless the server answers 200."""
        websocket = cls.open(client, path, **options)
        result = websocket.handshake()
        assert result.status == 200, f"handshake answered {result.headers}, body {bytes(result.data)!r}"
        return websocket

    @property
    def result(self) -> StreamResult:
        return self.client.streams[self.stream_id]

    def handshake(self, timeout: float = TIMEOUT) -> StreamResult:
        """Wait for the response head; on a 200 the WebSocket is open."""
        result = self.result
        assert self.client.until(lambda: result.headers is not None or result.done, timeout), (
            f"no response to the extended CONNECT on stream {self.stream_id}: {self.client.frames}"
        )
        if result.status == 200:
            extensions = []
            answer = result.header(b"sec-websocket-extensions")
            if answer is not None:
                assert self.deflate is not None, f"an extension nobody offered: {answer!r}"
                self.deflate.finalize(answer.decode())
                extensions.append(self.deflate)
            self.ws = Connection(ConnectionType.CLIENT, extensions=extensions)
        return result

    # -- sending ---------------------------------------------------------------------------

    def send_event(self, event: Event, end_stream: bool = False) -> None:
        """Send one event's frames; with `end_stream`, END_STREAM on their (last) DATA frame
        (which the windows must admit at once)."""
        assert self.ws is not None, "the WebSocket is not open"
        data = self.ws.send(event)
        if end_stream:
            sent = self.client.send_body(self.stream_id, data, end=True)
            assert sent == len(data), f"only {sent} of {len(data)} bytes fitted the windows"
        else:
            self.client.send_all(self.stream_id, data, end=False)

    def send_text(self, text: str) -> None:
        self.send_event(TextMessage(data=text))

    def send_bytes(self, data: bytes) -> None:
        self.send_event(BytesMessage(data=data))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.send_event(CloseConnection(code=code, reason=reason))

    # -- receiving -------------------------------------------------------------------------

    def _feed(self) -> None:
        """Give wsproto the stream's DATA not yet seen; answer pings and the server's close."""
        assert self.ws is not None, "the WebSocket is not open"
        data = self.result.data
        if self.fed < len(data) and self.ws.state is not ConnectionState.CLOSED:
            self.ws.receive_data(bytes(data[self.fed:]))
            self.fed = len(data)
            for event in self.ws.events():
                if isinstance(event, Ping):
                    self.pings += 1
                    if self.answer_pings:
                        self.client.send_all(self.stream_id, self.ws.send(event.response()), end=False)
                    continue
                if isinstance(event, CloseConnection) and self.close is None:
                    self.close = event
                self.events.append(event)

    def next_event(self, timeout: float = TIMEOUT) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            self._feed()
            if self.events:
                return self.events.popleft()
            remaining = deadline - time.monotonic()
            assert remaining > 0 and not self.client.closed and not self.result.done, (
                f"no WebSocket event on stream {self.stream_id}: {self.result}; "
                f"closed={self.client.closed}; frames={self.client.frames[-10:]}"
            )
            self.client.pump(min(remaining, 0.5))

    def receive(self, timeout: float = TIMEOUT) -> str | bytes:
        """The next whole message (fragments joined)."""
        deadline = time.monotonic() + timeout
        parts: list[Any] = []
        while True:
            event = self.next_event(max(deadline - time.monotonic(), 0.01))
            assert isinstance(event, (TextMessage, BytesMessage)), f"expected a message, got {event!r}"
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def receive_close(self, timeout: float = TIMEOUT, reply: bool = True) -> CloseConnection:
        """The server's close frame (messages before it are skipped); answered when `reply`."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(deadline - time.monotonic(), 0.01))
            if isinstance(event, CloseConnection):
                break
        assert self.ws is not None
        if reply and self.ws.state is ConnectionState.REMOTE_CLOSING:
            self.send_event(event.response())
        return event

    def end_stream(self) -> None:
        """END_STREAM from the client (an empty DATA frame): its half of the stream is done."""
        self.client.conn.end_stream(self.stream_id)
        self.client.flush()

    def pump(self, seconds: float) -> None:
        """Read (answering pings) for `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self.client.closed:
            self.client.pump(min(remaining, 0.05))
            self._feed()

    def wait_stream_end(self, timeout: float = TIMEOUT) -> StreamResult:
        """Until the server ends or resets the stream."""
        result = self.result
        assert self.client.until(lambda: result.done, timeout), (
            f"stream {self.stream_id} did not end: {result}; frames={self.client.frames[-10:]}"
        )
        self._feed()
        return result
