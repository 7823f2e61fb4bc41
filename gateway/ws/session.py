"""One WebSocket, as the ASGI app sees it, over either carrier.

The session knows the ASGI websocket spec and the frame layer's events; the carrier (an HTTP/1.1
connection after its 101, or an HTTP/2 extended CONNECT stream) only moves bytes. Until the
app accepts, the session holds an HTTP `Exchange` for the same request: a denial (a close
before accept, `websocket.http.response.*`, an app error) is an ordinary HTTP response written
by the carrier's HTTP code, access log included.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Iterable
from logging import DEBUG, ERROR
from typing import Any, Protocol

from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Ping
from wsproto.frame_protocol import CloseReason

from ..asgi import DONE, ASGIMessageError, ClientDisconnected, Exchange, websocket_scope
from ..fields import CONTROL_CHARACTERS_MESSAGE, has_control_characters, lower_name
from ..loading import ASGIApp, Message
from ..logs import log_request_event
from .flow import INBOX, Flow
from .frames import BINARY, CLOSE, PING, PONG, TEXT, FrameConnection
from .handshake import WebSocketRequest, negotiate_deflate

HTTP_RESPONSE_EXTENSION = "websocket.http.response"

# Received message bytes held for an app that is not reading before the carrier stops reading.
_INBOX_HIGH_WATER = 1024 * 1024
# RFC 6455 section 7.4: 1004-1006 and 1015 are never sent in a close frame.
_SENDABLE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
_DENIED_BODY = b"WebSocket connection denied"
_DENIED_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
# Why a client was closed with 1008 (policy violation) and its address blocked, as logged.
PING_FLOOD = "WebSocket pings past --control-frame-budget"


class WebSocketCarrier(Protocol):
    """What a session needs from the connection or stream under it. The carrier calls the
    session's `writable` when `write_paused` has turned false."""

    write_paused: bool  # what is sent now waits: the peer is not reading (or has no window)

    def accept(self, session: WebSocketSession, headers: list[tuple[bytes, bytes]]) -> None:
        """Complete the handshake (101 on HTTP/1.1, 200 on HTTP/2) with these fields."""

    def send_frames(self, session: WebSocketSession, data: bytes) -> None: ...

    async def drain(self, session: WebSocketSession) -> None: ...

    def pause_reading(self, session: WebSocketSession) -> None: ...

    def resume_reading(self, session: WebSocketSession) -> None: ...

    def charge(self, session: WebSocketSession, frames: int) -> bool:
        """Charge frames that cost the server work but carry no message to the client's budget
        (`guards.Ledger`); False once it is overdrawn, the client's address then blocked."""

    def close(self, session: WebSocketSession) -> None:
        """The WebSocket is over: end the connection (HTTP/1.1) or the stream (HTTP/2) once
        what is queued has gone, and wake a sender waiting in `drain`."""

    def abort(self, session: WebSocketSession) -> None:
        """End it now, dropping what is queued: the peer is not reading."""


class SessionState(enum.Enum):
    CONNECTING = 0  # the app has not accepted yet
    DENYING = 1  # the app is answering with an HTTP response
    OPEN = 2
    CLOSING = 3  # we sent a close frame; the peer's is awaited
    CLOSED = 4


CONNECTING = SessionState.CONNECTING
DENYING = SessionState.DENYING
OPEN = SessionState.OPEN
CLOSING = SessionState.CLOSING
CLOSED = SessionState.CLOSED


class WebSocketCounts:
    """Sessions opened and closed, and messages in and out, for metrics: one per server,
    shared by its sessions through their settings."""

    __slots__ = ("opened", "closed", "messages_in", "messages_out")

    def __init__(self) -> None:
        self.opened = self.closed = self.messages_in = self.messages_out = 0


class WebSocketSettings:
    """The --ws-* settings, read once per server, and the server's session counts."""

    __slots__ = ("max_size", "ping_interval", "ping_timeout", "close_timeout", "per_message_deflate",
                 "counts")

    def __init__(self, max_size: int, ping_interval: float | None, ping_timeout: float | None,
                 close_timeout: float, per_message_deflate: bool) -> None:
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout  # a close we sent waits this long for the peer's
        self.per_message_deflate = per_message_deflate
        self.counts = WebSocketCounts()


class WebSocketSession:
    """The app's receive/send for one WebSocket, and the frames under them."""

    def __init__(self, carrier: WebSocketCarrier, exchange: Exchange, request: WebSocketRequest,
                 settings: WebSocketSettings) -> None:
        self.carrier = carrier
        self.exchange = exchange
        http = exchange.scope
        extensions: dict[str, Any] = {HTTP_RESPONSE_EXTENSION: {}}
        if "tls" in http["extensions"]:
            extensions["tls"] = http["extensions"]["tls"]
        self.scope = websocket_scope(http, request.subprotocols, extensions)
        self.request = request
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.state = CONNECTING
        self.connection: FrameConnection | None = None
        self.connect_delivered = False
        self.inbox: deque[tuple[Message, int]] = deque()  # messages and their sizes in bytes
        self.inbox_bytes = 0
        self.flow = Flow(self, carrier)
        self.parts: list[Any] = []
        self.part_size = 0
        self.close_code = CloseReason.NO_STATUS_RCVD.value
        self.close_reason = ""
        self.going_away = False
        self.app_done = False
        # For the access line when the session ends: whole messages and their payload bytes.
        self.messages_in = self.bytes_in = self.messages_out = self.bytes_out = 0
        self.closed_by: str | None = None  # who began the close: "client" or "server"
        # What `receive` waits on: a message, or the close. `Wakeup`'s logic, written out here
        # because its coroutine, one per message, was a measurable part of an echo.
        self._arrived: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pong_due: asyncio.TimerHandle | None = None

    # -- fed by the carrier -------------------------------------------------------------

    def feed_data(self, data: bytes) -> None:
        connection = self.connection
        if connection is None or self.state is CLOSED:
            return
        connection.receive_data(data)
        for event in connection.events():
            kind = event[0]
            if kind < CLOSE:  # TEXT or BINARY
                self._on_message_part(event[1], event[2])
            elif kind == PING:
                self._on_ping(connection, event[1])
            elif kind == PONG:
                self._on_pong()
            else:
                self._on_close(event[1], event[2])
            if self.state is CLOSED:
                return

    def feed_disconnect(self) -> None:
        """The connection or stream is gone without a close handshake (or after ours)."""
        if self.state is CONNECTING or self.state is DENYING:
            self.exchange.feed_disconnect()
        if self.state is not CLOSED:
            self.close_code = CloseReason.ABNORMAL_CLOSURE.value  # no close frame came
            self._closed(by="client")
        # Nothing is left to time out: a timer would keep the session, its connection and its
        # TLS state alive until it fired (--ws-close-timeout after every close).
        self._cancel_timers()

    def shutdown(self) -> None:
        """Server shutdown: close with 1001 (going away) and wait for the peer's close."""
        self.going_away = True
        if self.state is OPEN:
            self._send_close(CloseReason.GOING_AWAY.value, "server shutting down")

    def _on_message_part(self, data: str | bytes, finished: bool) -> None:
        size = self.part_size + (len(data) if type(data) is not str or data.isascii()
                                 else len(data.encode()))
        if size > self.settings.max_size:
            self._fail(CloseReason.MESSAGE_TOO_BIG, "message larger than --ws-max-size")
            return
        if not finished:
            self.part_size = size
            if data:  # empty fragments, sent without end, would grow the list and not the size
                self.parts.append(data)
            return
        self.part_size = 0
        self.messages_in += 1
        self.bytes_in += size
        if self.app_done:
            self.parts = []
            return
        if self.parts:
            self.parts.append(data)
            data = "".join(self.parts) if type(data) is str else b"".join(self.parts)
            self.parts = []
        if type(data) is str:
            message = {"type": "websocket.receive", "text": data}
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self.settings.counts.messages_in += 1
        self.inbox.append((message, size))
        self.inbox_bytes += size
        if self.inbox_bytes > _INBOX_HIGH_WATER:
            self.flow.hold(INBOX)
        self._wake()

    def _on_ping(self, connection: FrameConnection, payload: bytes) -> None:
        # A peer that reads its pongs could otherwise have one written per ping forever.
        if not self.carrier.charge(self, 1):
            self._log(DEBUG, "closing the WebSocket: %s", PING_FLOOD)
            self._fail(CloseReason.POLICY_VIOLATION, "too many pings")
            return
        if connection.state is ConnectionState.OPEN:  # after our close, pings go unanswered
            self.flow.answer_ping(connection, payload)

    def writable(self) -> None:
        """Called by the carrier when `write_paused` turns false."""
        if self.state is not CLOSED:
            self.flow.writable(self.connection)

    def _on_close(self, code: int, reason: str) -> None:
        connection = self.connection
        assert connection is not None
        if connection.state is ConnectionState.OPEN:
            # The frame layer reports a frame it could not accept (bad UTF-8, a protocol
            # error, a message too big) as a close in our name.
            self._log(DEBUG, "closing the WebSocket: %s", reason)
            self._fail(CloseReason(code), reason)
            return
        self.close_code = code
        self.close_reason = reason
        if connection.state is ConnectionState.REMOTE_CLOSING:  # the peer's close, echoed
            self._write(connection.send(CloseConnection(code=code, reason=reason)))
        self._closed(by="client")

    def _fail(self, code: CloseReason, reason: str) -> None:
        """A protocol failure: close with `code` and end the connection without waiting."""
        if self.connection is not None and self.connection.state is ConnectionState.OPEN:
            self._write(self.connection.send(CloseConnection(code=code.value, reason=reason)))
        self.close_code = code.value
        self._closed()

    def _closed(self, abort: bool = False, by: str = "server") -> None:
        if self.closed_by is None:
            self.closed_by = by
        if self.state is not CLOSED and self.connection is not None and self.exchange.log_access:
            self.exchange.log_access.websocket(self)
        if self.connection is not None and self.state is not CLOSED:  # it was accepted
            self.settings.counts.closed += 1
        self.state = CLOSED
        self._cancel_timers()
        if abort:
            self.carrier.abort(self)
        else:
            self.carrier.close(self)
            # What is still queued for a peer that has stopped reading is not waited for
            # beyond --ws-close-timeout.
            self._timer = self.loop.call_later(self.settings.close_timeout, self.carrier.abort, self)
        self._wake()

    # -- the app's receive and send -----------------------------------------------------

    async def receive(self) -> Message:
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        while True:
            if self.inbox:
                message, size = self.inbox.popleft()
                self.inbox_bytes -= size
                if self.flow.held and self.inbox_bytes <= _INBOX_HIGH_WATER // 2:
                    self.flow.release(INBOX)
                return message
            if self.state is CLOSED:
                return {"type": "websocket.disconnect", "code": self.close_code,
                        "reason": self.close_reason}
            arrived = self._arrived
            if arrived is None or arrived.done():  # done: a receive that was cancelled
                arrived = self._arrived = self.loop.create_future()
            await arrived

    def _wake(self) -> None:
        arrived = self._arrived
        if arrived is not None:
            self._arrived = None
            if not arrived.done():
                arrived.set_result(None)

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise ASGIMessageError(f"an ASGI message must be a dict with a 'type', got {message!r}") from None
        state = self.state
        if state is OPEN:
            if kind == "websocket.send":
                self._send_message(message)
                if self.carrier.write_paused:
                    await self.carrier.drain(self)
            elif kind == "websocket.close":
                self._send_close(_close_code(message), _close_reason(message))
            else:
                raise ASGIMessageError(f"expected 'websocket.send' or 'websocket.close', got {kind!r}")
            return
        if state is CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                await self._deny(403)
            elif kind == "websocket.http.response.start":
                self.state = DENYING
                await self.exchange.send({"type": "http.response.start", "status": message.get("status"),
                                          "headers": message.get("headers", ())})
            else:
                raise ASGIMessageError(
                    "expected 'websocket.accept', 'websocket.close' or"
                    f" 'websocket.http.response.start', got {kind!r}"
                )
            return
        if state is DENYING:
            if kind != "websocket.http.response.body":
                raise ASGIMessageError(f"expected 'websocket.http.response.body', got {kind!r}")
            await self.exchange.send({"type": "http.response.body", "body": message.get("body", b""),
                                      "more_body": message.get("more_body", False)})
            return
        if kind == "websocket.close":
            return  # closing twice is harmless
        raise ClientDisconnected(f"the WebSocket is closed (code {self.close_code})")

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        headers = _accept_headers(message.get("headers", ()))
        if subprotocol is not None:
            if type(subprotocol) is not str or subprotocol not in self.request.subprotocols:
                raise ASGIMessageError(
                    f"'websocket.accept' field 'subprotocol': {subprotocol!r} was not offered by the client"
                )
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        deflate = answer = None
        if self.settings.per_message_deflate:
            deflate, answer = negotiate_deflate(self.request.extension_offers, self.settings.max_size)
        if answer is not None:
            headers.append((b"sec-websocket-extensions", answer))
        self.connection = FrameConnection(self.settings.max_size, deflate)
        self.state = OPEN
        self.settings.counts.opened += 1
        self.carrier.accept(self, headers)
        if self.state is not OPEN:
            return  # bytes the client sent before the 101 already closed it
        if self.settings.ping_interval:
            self._timer = self.loop.call_later(self.settings.ping_interval, self._ping)
        if self.going_away:
            self._send_close(CloseReason.GOING_AWAY.value, "server shutting down")

    async def _deny(self, status: int) -> None:
        self.state = DENYING
        await self.exchange.send({"type": "http.response.start", "status": status,
                                  "headers": _DENIED_HEADERS})
        await self.exchange.send({"type": "http.response.body", "body": _DENIED_BODY})

    def _send_message(self, message: Message) -> None:
        """The message's frame goes to the carrier. Not a coroutine: `send` waits for the
        carrier, when it must, without a second coroutine per message."""
        text = message.get("text")
        data = message.get("bytes")
        if (text is None) == (data is None):
            raise ASGIMessageError("'websocket.send' needs exactly one of 'bytes' and 'text'")
        if text is not None:
            if type(text) is not str:
                raise ASGIMessageError(
                    f"'websocket.send' field 'text' must be str, got {type(text).__name__}"
                )
            data = text.encode()
            opcode = TEXT
        else:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ASGIMessageError(
                    f"'websocket.send' field 'bytes' must be bytes, got {type(data).__name__}"
                )
            if type(data) is not bytes:
                data = bytes(data)
            opcode = BINARY
        assert self.connection is not None
        self.bytes_out += len(data)
        self.messages_out += 1
        self.settings.counts.messages_out += 1
        self.carrier.send_frames(self, self.connection.message(data, opcode))

    def _send_close(self, code: int, reason: str) -> None:
        assert self.connection is not None
        self._write(self.connection.send(CloseConnection(code=code, reason=reason)))
        self.close_code = code
        self.closed_by = self.closed_by or "server"
        self.state = CLOSING
        self._cancel_timers()
        self._timer = self.loop.call_later(self.settings.close_timeout, self._close_timed_out)

    def _write(self, data: bytes) -> None:
        if data:
            self.carrier.send_frames(self, data)

    # -- keep-alive and timeouts --------------------------------------------------------

    def _ping(self) -> None:
        self._timer = None
        if self.state is not OPEN or self.connection is None:
            return
        self._write(self.connection.send(Ping()))
        if self.settings.ping_timeout:
            self._pong_due = self.loop.call_later(self.settings.ping_timeout, self._pong_missed)
        else:
            self._timer = self.loop.call_later(self.settings.ping_interval, self._ping)  # type: ignore[arg-type]

    def _on_pong(self) -> None:
        if self._pong_due is not None:
            self._pong_due.cancel()
            self._pong_due = None
            if self.state is OPEN and self.settings.ping_interval:
                self._timer = self.loop.call_later(self.settings.ping_interval, self._ping)

    def _pong_missed(self) -> None:
        self._pong_due = None
        self._log(DEBUG, "WebSocket: no pong within --ws-ping-timeout")
        self.close_code = CloseReason.ABNORMAL_CLOSURE.value
        self._closed(abort=True)

    def _close_timed_out(self) -> None:
        self._timer = None
        if self.state is CLOSING:
            self.close_code = CloseReason.ABNORMAL_CLOSURE.value  # no close frame came
            self._closed(abort=True)

    def _cancel_timers(self) -> None:
        for handle in (self._timer, self._pong_due):
            if handle is not None:
                handle.cancel()
        self._timer = self._pong_due = None

    # -- running the app ----------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Call the app; settle the handshake or the close it left undone."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._abandon()
            raise
        except BaseException as exc:
            self._app_failed(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if self.state is CONNECTING:
                if not self.exchange.disconnected:
                    self._log(ERROR, "ASGI app returned without accepting or closing the WebSocket")
                    await self._deny(500)
            elif self.state is OPEN:
                self._send_close(CloseReason.NORMAL_CLOSURE.value, "")
            elif self.state is DENYING and self.exchange.state is not DONE:
                self.exchange.carrier.abort(self.exchange)  # the denial was left unfinished
        finally:
            # Nobody reads any more: messages are dropped and reading goes on, so that the
            # peer's close can still arrive (RFC 6455 section 5.5.1).
            self.app_done = True
            self.inbox.clear()
            self.inbox_bytes = 0
            self.flow.release(INBOX)

    def _app_failed(self, exc: BaseException) -> None:
        if self.state is CONNECTING or self.state is DENYING:
            self.exchange.app_failed(exc)  # a 500 while no response has begun
            return
        if isinstance(exc, ClientDisconnected):
            self._log(DEBUG, "client went away during the WebSocket")
            return
        self._log(ERROR, "Exception in ASGI app", exc=exc)
        if self.state is OPEN:
            self._fail(CloseReason.INTERNAL_ERROR, "")

    def _abandon(self) -> None:
        if self.state is OPEN or self.state is CLOSING:
            self._closed()
        elif self.state is not CLOSED and not self.exchange.disconnected:
            self.exchange.carrier.abort(self.exchange)

    def _log(self, level: int, message: str, *args: Any, exc: BaseException | None = None) -> None:
        log_request_event(level, self.scope, self.exchange.carrier_key, message, *args, exc_info=exc)


def _accept_headers(headers: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    out = []
    try:
        for name, value in headers:
            lname = lower_name(name)
            if type(value) is not bytes or has_control_characters(value):
                raise ValueError(CONTROL_CHARACTERS_MESSAGE)
            out.append((lname, value))
    except (TypeError, ValueError) as exc:
        raise ASGIMessageError(f"'websocket.accept' field 'headers': {exc}") from None
    return out


def _close_code(message: Message) -> int:
    code = message.get("code", CloseReason.NORMAL_CLOSURE.value)
    if type(code) is not int or not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
        raise ASGIMessageError(
            f"'websocket.close' field 'code': {code!r} is not a close code an app may send"
        )
    return code


def _close_reason(message: Message) -> str:
    reason = message.get("reason") or ""
    if type(reason) is not str or len(reason.encode()) > 123:
        raise ASGIMessageError("'websocket.close' field 'reason' must be a str of at most 123 bytes")
    return reason
