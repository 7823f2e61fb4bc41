"""Helpers for the WebSocket-over-HTTP/1.1 tests: small ASGI apps, the `websockets` client with
test defaults, a raw-socket client on wsproto's client side (for what `websockets` will not
send: fragments by hand, malformed frames, a client that never reads or never answers a ping),
hand-built frames and handshakes, and an HTTP response reader for denials.

Every socket has a timeout, so a server that stalls fails a test instead of hanging it."""

from __future__ import annotations

import base64
import contextlib
import functools
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from h1_client import RawClient, Response, connect_tcp
from support import TIMEOUT
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as _connect
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, CloseConnection, Event, Ping, Request
from wsproto.extensions import Extension

from examples import websocket_echo

KEY = base64.b64encode(b"0123456789abcdef").decode()


# -- apps -----------------------------------------------------------------------------------------


def ws_app(func):
    """The app for `websocket` scopes only; it returns at once for lifespan (taken as "no
    lifespan support") and is never called with an `http` scope in these tests."""

    @functools.wraps(func)
    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await func(scope, receive, send)

    return app


def recording_app(received: list, done: threading.Event | None = None,
                  answer: Callable[[dict, list], str] = lambda message, received: message["text"]):
    """Accepts, records every message and the final disconnect in `received` (setting `done`
    then), and answers each message with the text `answer(message, received)`."""

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "websocket.disconnect":
                if done is not None:
                    done.set()
                return
            await send({"type": "websocket.send", "text": answer(message, received)})

    return app


# The README's echo example: accepts, echoes text as text and bytes as bytes, returns on
# disconnect. Tested as it ships.
echo_app = websocket_echo.app


# -- the websockets client ---------------------------------------------------------------------------


# How long the client's reading thread waits for bytes: longer than any test runs.
_READ_TIMEOUT = 600.0
# How long a wss client waits for the server's session tickets before it goes on without.
_TICKET_WAIT = 2.0


class _ClientConnection(ClientConnection):
    """Two races of websockets 16's sync client (the last for Python 3.10), which reads in a
    thread of its own while the caller's thread writes, are kept out:

    - Over TLS 1.3 the server's session tickets come after the handshake, and the reading
      thread's first TLS read took them in while the caller's thread wrote the upgrade request
      on the same TLS object: about one wss connection in 12,000 on a busy machine, the request
      never left the client (the server's counters: the handshake's 597 bytes only) and the
      open timed out, or the read failed with a bad record MAC. The tickets are now read here,
      before the reading thread starts.
    - The socket is in timeout mode before the reading thread starts. `close` sets the
      socket's timeout from the caller's thread, and a TLS read that began on a blocking socket
      and finds it switched to timeout mode reports "The read operation timed out" at once
      (CPython's _ssl.c, PySSL_select), so the server's close frame, still on its way, was
      never read: close code 1006 in about one close in ten. Now `close` changes a timeout,
      not the mode."""

    def __init__(self, socket: socket.socket, *args: Any, **kwargs: Any) -> None:
        if isinstance(socket, ssl.SSLSocket) and socket.version() == "TLSv1.3":
            _read_session_tickets(socket)
        socket.settimeout(_READ_TIMEOUT)
        super().__init__(socket, *args, **kwargs)


def _read_session_tickets(sock: ssl.SSLSocket) -> None:
    """Read until the server's first TLS 1.3 session ticket is in, or for at most
    _TICKET_WAIT: the server sends nothing else before the upgrade request."""
    deadline = time.monotonic() + _TICKET_WAIT
    sock.setblocking(False)
    while sock.session is None or not sock.session.has_ticket:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        select.select([sock], [], [], left)
        try:
            data = sock.recv(1)
        except ssl.SSLWantReadError:
            continue
        if not data:
            return  # closed: the client finds out when it sends the request
        raise AssertionError(f"the server sent {data!r} before the upgrade request")


def ws_connect(url: str, **options: Any) -> ClientConnection:
    """`websockets.sync.client.connect` with short timeouts, no proxy from the environment, no
    keep-alive pings of its own (tests that want them say so) and a close safe over TLS."""
    options.setdefault("create_connection", _ClientConnection)
    options.setdefault("open_timeout", TIMEOUT)
    options.setdefault("close_timeout", 2)
    options.setdefault("ping_interval", None)
    options.setdefault("proxy", None)
    return _connect(url, **options)


def ws_url(server: Any, path: str = "/", scheme: str = "ws", host: str = "127.0.0.1") -> str:
    return f"{scheme}://{host}:{server.port}{path}"


# -- frames and handshakes by hand ---------------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False,
          mask: bytes | None = b"\x37\xfa\x21\x3d") -> bytes:
    """One frame (RFC 6455 section 5.2) as a client sends it: masked unless `mask` is None."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 1 << 16:
        head = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask is None:
        return head + payload
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return head + mask + masked


TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def handshake(path: str = "/", *, version: str | None = "13", key: str | None = KEY,
              http_version: str = "1.1", method: str = "GET", extra: str = "",
              upgrade: str = "websocket", connection: str = "Upgrade") -> bytes:
    """An opening handshake request, with any of its required fields left out (None) or wrong."""
    lines = [f"{method} {path} HTTP/{http_version}", "Host: 127.0.0.1",
             f"Upgrade: {upgrade}", f"Connection: {connection}"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    head = "\r\n".join(lines) + "\r\n" + extra
    return (head + "\r\n").encode()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return b""


def read_http_response(sock: socket.socket) -> tuple[Response, bytes]:
    """One response off a socket (read by the HTTP/1.1 tests' client), and the bytes that came
    after it: the first frames, after a 101."""
    client = RawClient(sock=sock)
    response = client.read_response()
    return response, bytes(client.buffer)


def count_pings(raw: RawWebSocket, seconds: float, answer: bool) -> int:
    """How many pings the server sends in `seconds` (nothing else may come), answered or not."""
    pings = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = raw.next_event(left)
        except TimeoutError:
            break
        assert isinstance(event, Ping), event
        pings += 1
        if answer:
            raw.send(event.response())
    return pings


def exchange_raw(port: int, data: bytes, timeout: float = TIMEOUT) -> tuple[Response, bool]:
    """Send `data` on a new connection; the response and whether the server then closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response, rest = read_http_response(sock)
        closed = rest == b"" and _recv(sock) == b""
        return response, closed


# -- a raw client on wsproto ------------------------------------------------------------------------


class RawWebSocket:
    """One TCP connection driven by wsproto's client: the test decides what is sent,
    when it reads and whether it answers pings and closes."""

    def __init__(self, port: int, path: str = "/", *, subprotocols: list[str] | None = None,
                 extensions: list[Extension] | None = None, rcvbuf: int | None = None,
                 sndbuf: int | None = None, timeout: float = TIMEOUT) -> None:
        self.sock = connect_tcp(port, timeout, rcvbuf, sndbuf)
        self.timeout = timeout
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: list[Event] = []
        self.eof = False
        self.request = Request(host="127.0.0.1", target=path, subprotocols=subprotocols or [],
                               extensions=extensions or [])

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_socket()

    def close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def open(self) -> AcceptConnection:
        """Send the handshake and read the answer; fails unless it is a 101."""
        self.sock.sendall(self.ws.send(self.request))
        event = self.next_event()
        assert isinstance(event, AcceptConnection), f"handshake not accepted: {event!r}"
        return event

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def fill(self, timeout: float | None = None) -> bool:
        """Read once into wsproto; False at EOF."""
        if self.eof:
            return False
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = _recv(self.sock)
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        self.pending.extend(self.ws.events())
        return bool(data)

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event from the server; None once the connection has ended without one.
        Raises TimeoutError if nothing comes within `timeout`."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no WebSocket event from the server")
            if not self.fill(left) and not self.pending:
                return None
        return self.pending.pop(0)

    def events_until_close(self, timeout: float | None = None, answer: bool = True) -> list[Event]:
        """Events until the server's close frame (answered when `answer`) or the end of the
        connection, whichever is first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        events: list[Event] = []
        while True:
            event = self.next_event(max(0.01, deadline - time.monotonic()))
            if event is None:
                return events
            events.append(event)
            if isinstance(event, CloseConnection):
                if answer and self.ws.state is ConnectionState.REMOTE_CLOSING:
                    with contextlib.suppress(OSError):
                        self.send(event.response())
                return events

    def wait_closed(self, timeout: float | None = None) -> bytes:
        """Read raw bytes until the server closes the connection; fails on timeout. Returns
        what was read (without parsing it: nothing is answered)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        data = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not close the connection; got {data[:100]!r}")
            self.sock.settimeout(left)
            try:
                chunk = _recv(self.sock)
            except TimeoutError:
                continue
            if not chunk:
                return data
            data += chunk


def close_event(events: list[Event]) -> CloseConnection | None:
    closes = [event for event in events if isinstance(event, CloseConnection)]
    return closes[0] if closes else None

