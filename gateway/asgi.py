"""The ASGI side of a request, shared by every protocol.

An `Exchange` is one request/response cycle: it builds nothing of the wire, it only knows the
ASGI spec (message order, field types, disconnect rules) and talks to its carrier (the h1 or
h2 connection) through a handful of calls. Both HTTP versions use this one implementation, so
a rule of the spec is written once.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import time
from collections.abc import Iterable
from logging import DEBUG, ERROR, WARNING
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from .fields import has_control_characters
from .files import FileRegion, FileSendError, open_path, read_region, zerocopy_region
from .loading import ASGIApp, Message
from .logs import log_request_event

if TYPE_CHECKING:
    from .logs import AccessLog

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

# Request body bytes held for an app that is not reading before the carrier stops reading the
# socket (h1) or stops granting flow-control window (h2).
BODY_HIGH_WATER = 64 * 1024

_ERROR_BODIES = {
    408: b"Request Timeout",
    500: b"Internal Server Error",
    504: b"Gateway Timeout",
}


_UNAVAILABLE_BODY = b"Service Unavailable"
_UNAVAILABLE_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"%d" % len(_UNAVAILABLE_BODY)),
    (b"connection", b"close"),
]


async def service_unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app a request is given past --limit-concurrency: a 503 through the same exchange as
    any response, so it is framed, logged and carries the default headers like the others. A
    WebSocket handshake is denied with it. HTTP/2 drops the `connection` field."""
    prefix = "websocket.http." if scope["type"] == "websocket" else "http."
    await send({"type": prefix + "response.start", "status": 503, "headers": _UNAVAILABLE_HEADERS})
    await send({"type": prefix + "response.body", "body": _UNAVAILABLE_BODY})


def _error_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]


class ASGIMessageError(Exception):
    """The app sent a message the spec does not allow; the text names the message and field."""


class ClientDisconnected(OSError):
    """Raised by `send` once the client has gone (ASGI spec 2.4)."""


class ResponseFramingError(Exception):
    """The app's body does not agree with the Content-Length it declared; the carrier raises it
    after closing the connection so that the app sees the mistake at its `send`."""


class ExchangeState(enum.Enum):
    START = 0  # waiting for http.response.start
    HEAD_PENDING = 1  # start received; held so head and first body chunk leave in one write
    HEAD_SENT = 2  # body streaming
    TRAILERS_PENDING = 3  # final body sent, trailers announced and not yet sent
    DONE = 4  # response complete


START = ExchangeState.START
HEAD_PENDING = ExchangeState.HEAD_PENDING
HEAD_SENT = ExchangeState.HEAD_SENT
TRAILERS_PENDING = ExchangeState.TRAILERS_PENDING
DONE = ExchangeState.DONE
TRAILERS_EXTENSION = "http.response.trailers"
EARLY_HINT_EXTENSION = "http.response.early_hint"
PUSH_EXTENSION = "http.response.push"
PATHSEND_EXTENSION = "http.response.pathsend"
ZEROCOPYSEND_EXTENSION = "http.response.zerocopysend"
_EXTENSION_MESSAGES = frozenset((EARLY_HINT_EXTENSION, PUSH_EXTENSION))
_FILE_MESSAGES = frozenset((PATHSEND_EXTENSION, ZEROCOPYSEND_EXTENSION))
_NO_BODY_STATUS = frozenset((204, 304))
_FRAMING_FIELDS = frozenset((b"content-length", b"transfer-encoding"))
# A file part this small is read and sent like a body chunk even where the kernel could copy
# it: the head and the bytes then leave in one write, against a write and a sendfile.
KERNEL_COPY_MIN = 64 * 1024
# The scope extensions every HTTP carrier declares, for sending files: a carrier that cannot
# have the kernel copy a file gets it as body chunks (`Exchange._send_file`). Their empty dicts
# are shared by every connection's `extensions`, which costs a connection nothing more.
FILE_EXTENSIONS: dict[str, Any] = {PATHSEND_EXTENSION: {}, ZEROCOPYSEND_EXTENSION: {}}


class Carrier(Protocol):
    """What an exchange needs from the connection that carries it (h1 or h2). The calls for
    an extension (trailers, early hints, push) are made only when the carrier declared it in
    the scope's `extensions`."""

    write_paused: bool
    # The connection's loop, which the exchange waits in (asking asyncio for the running loop
    # costs a getpid() system call before Python 3.12).
    loop: asyncio.AbstractEventLoop

    def write_head(self, exchange: Exchange, status: int, headers: Iterable[Any],
                   body: bytes, more_body: bool) -> None: ...

    def write_body(self, exchange: Exchange, body: bytes, more_body: bool) -> None: ...

    async def drain(self, exchange: Exchange) -> None: ...

    def write_trailers(self, exchange: Exchange, headers: Iterable[Any]) -> None: ...

    def send_early_hint(self, exchange: Exchange, links: list[bytes]) -> None: ...

    def push(self, exchange: Exchange, path: str, headers: list[Any]) -> None: ...

    def send_continue(self, exchange: Exchange) -> None: ...

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None: ...

    def abort(self, exchange: Exchange) -> None: ...

    # A carrier that can have the kernel copy a file to its socket also has `sends_files`
    # (true while it can) and `async send_file(exchange, fd, offset, count) -> int`, the bytes
    # the client was given; for any other, the exchange reads the file into body chunks.


# A connection's (client, server) as the scope gives them.
Addresses = tuple[tuple[str, Any] | None, tuple[str, Any] | None]


def scope_address(value: Any) -> tuple[str, int | None] | None:
    """A socket address as the scope's `client`/`server`: (host, port), IPv6 extras dropped;
    (path, None) for a Unix socket's path, as the ASGI spec gives it. An unnamed Unix socket
    (the client end, usually) is None."""
    if isinstance(value, tuple) and len(value) >= 2:
        # Interned: the connections of one client share its address's text.
        return (sys.intern(str(value[0])), int(value[1]))
    if isinstance(value, str) and value:
        return (value, None)
    return None


def split_target(target: bytes, root_path: str) -> tuple[str, bytes, bytes]:
    """(path, raw_path, query_string) from an origin-form request target.

    `path` is percent-decoded and includes root_path, as uvicorn and hypercorn give it."""
    raw_path, _, query = target.partition(b"?")
    if b"%" in raw_path:
        path = unquote(raw_path.decode("latin-1"))
    else:
        path = raw_path.decode("latin-1")
    if root_path:
        return root_path + path, root_path.encode() + raw_path, query
    return path, raw_path, query


def http_scope(http_version: str, server: Any, client: Any, scheme: str, method: str,
               target: bytes, headers: list[tuple[bytes, bytes]], root_path: str,
               lifespan_state: dict[str, Any], extensions: dict[str, Any]) -> dict[str, Any]:
    """The HTTP connection scope, exactly the keys the ASGI spec lists. `extensions` is the
    connection's dict, shared by its requests; `state` is a fresh copy of the lifespan state."""
    path, raw_path, query = split_target(target, root_path)
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": http_version,
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": method,
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "state": lifespan_state.copy(),
        "extensions": extensions,
    }


def scope_template(http_version: str) -> dict[str, Any]:
    """`http_scope`'s dict with no root path, the request's values still to set: the C
    `make_scope` (h1/wire.py) copies it and sets them, which keeps http_scope's keys and their
    order without building the dict key by key."""
    return http_scope(http_version, None, None, "", "", b"", [], "", {}, {})


def websocket_scope(http: dict[str, Any], subprotocols: list[str],
                    extensions: dict[str, Any]) -> dict[str, Any]:
    """The WebSocket connection scope for a handshake request whose HTTP scope is `http`."""
    return {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": http["http_version"],
        "server": http["server"],
        "client": http["client"],
        "scheme": "wss" if http["scheme"] == "https" else "ws",
        "root_path": http["root_path"],
        "path": http["path"],
        "raw_path": http["raw_path"],
        "query_string": http["query_string"],
        "headers": http["headers"],
        "subprotocols": subprotocols,
        "state": http["state"],
        "extensions": extensions,
    }


def with_length(headers: Iterable[Any], length: int) -> Iterable[Any]:
    """The app's response headers with a Content-Length of `length`, unless they frame the
    body themselves. Malformed headers are passed on as they are, for the carrier to refuse."""
    headers = list(headers)
    for header in headers:
        try:
            name = header[0]
        except (TypeError, IndexError, KeyError):
            return headers
        if isinstance(name, bytes) and name.lower() in _FRAMING_FIELDS:
            return headers
    headers.append((b"content-length", b"%d" % length))
    return headers


class Exchange:
    """One request/response cycle between a carrier and an ASGI app."""

    __slots__ = (
        "carrier", "scope", "state", "status", "headers", "_chunks", "buffered",
        "body_complete", "_body_delivered", "disconnected", "expect_continue", "_waiter",
        "bytes_sent", "started_at", "log_access", "carrier_key", "expect_trailers",
        "waiting_since", "task", "tally",
    )

    def __init__(self, carrier: Carrier, scope: dict[str, Any], body_complete: bool,
                 expect_continue: bool, log_access: AccessLog | None, carrier_key: int = 0) -> None:
        self.carrier = carrier
        self.carrier_key = carrier_key  # the carrier's own handle (the h2 stream id)
        self.expect_trailers = False
        self.scope = scope
        self.state = START
        self.status = 0
        self.headers: Iterable[Any] = ()
        self._chunks: list[bytes] = []
        self.buffered = 0
        self.body_complete = body_complete
        self._body_delivered = False
        self.disconnected = False
        self.expect_continue = expect_continue
        self._waiter: asyncio.Future[None] | None = None
        self.waiting_since = 0.0  # loop time the app began waiting for body; 0.0: not waiting
        self.task: asyncio.Task[None] | None = None  # the app call, set by the carrier
        self.bytes_sent = 0
        self.log_access = log_access
        # Requests by protocol, method and status, and their durations (--metrics-bind).
        self.tally = carrier.state.tally  # type: ignore[attr-defined]
        self.started_at = time.perf_counter() if log_access or self.tally is not None else 0.0

    # -- fed by the carrier -------------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self.buffered += len(data)
        if self._waiter is not None:
            self._wake()

    def feed_end(self) -> None:
        self.body_complete = True
        if self._waiter is not None:
            self._wake()

    def feed_disconnect(self) -> None:
        self.disconnected = True
        if self._waiter is not None:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the app's receive and send -----------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self.disconnected or self.state is DONE:
                return {"type": "http.disconnect"}
            if self._chunks:
                chunks = self._chunks
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                consumed, self.buffered = self.buffered, 0
                self.carrier.body_consumed(self, consumed)
                if self.body_complete:
                    self._body_delivered = True
                return {"type": "http.request", "body": body, "more_body": not self.body_complete}
            if self.body_complete and not self._body_delivered:
                self._body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.expect_continue:
                self.expect_continue = False
                self.carrier.send_continue(self)
            loop = self.carrier.loop
            self._waiter = loop.create_future()
            if not self.body_complete:
                self.waiting_since = loop.time()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self.waiting_since = 0.0

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise ASGIMessageError(f"an ASGI message must be a dict with a 'type', got {message!r}") from None
        state = self.state
        if state is START:
            if kind != "http.response.start":
                if kind in _EXTENSION_MESSAGES:
                    await self._send_extension(kind, message)
                    return
                raise ASGIMessageError(f"expected 'http.response.start', got {kind!r}")
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 599:
                raise ASGIMessageError(
                    f"'http.response.start' field 'status' must be an int from 200 to 599, got {status!r}"
                )
            self.status = status
            self.headers = message.get("headers", ())
            if message.get("trailers") and TRAILERS_EXTENSION in self.scope["extensions"]:
                self.expect_trailers = True
            self.state = HEAD_PENDING
            return
        if kind != "http.response.body":
            if kind in _FILE_MESSAGES and (state is HEAD_PENDING or state is HEAD_SENT):
                await self._send_file(kind, message)
                return
            if kind == "http.response.trailers" and state is TRAILERS_PENDING:
                await self._send_trailers(message)
                return
            if kind in _EXTENSION_MESSAGES:
                await self._send_extension(kind, message)
                return
            raise ASGIMessageError(
                f"expected 'http.response.body', got {kind!r}"
                if state is not DONE else f"the response is complete; got {kind!r} after it"
            )
        if state is DONE or state is TRAILERS_PENDING:
            raise ASGIMessageError(
                "the response body is complete; got 'http.response.body' after it"
            )
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if type(body) is not bytes:
            if not isinstance(body, (bytearray, memoryview)):
                raise ASGIMessageError(
                    f"'http.response.body' field 'body' must be bytes, got {type(body).__name__}"
                )
            body = bytes(body)
        if not more_body:
            if self.expect_trailers:
                # The carrier keeps the response open for the trailers.
                more_body = True
                self.state = TRAILERS_PENDING
            else:
                self.state = DONE
        if state is HEAD_PENDING:
            try:
                self.carrier.write_head(self, self.status, self.headers, body, more_body)
            except (TypeError, ValueError) as exc:
                self.state = HEAD_PENDING
                raise ASGIMessageError(f"'http.response.start' field 'headers': {exc}") from None
            if self.state is HEAD_PENDING:
                self.state = HEAD_SENT
        else:
            self.carrier.write_body(self, body, more_body)
        self.bytes_sent += len(body)
        if self.state is DONE:
            self._response_done()
        if self.carrier.write_paused:
            await self.carrier.drain(self)

    async def _send_file(self, kind: str, message: Message) -> None:
        """`http.response.pathsend` (the whole body, a file by path) and
        `http.response.zerocopysend` (a part of an open file, as a body chunk)."""
        if kind not in self.scope["extensions"]:
            raise ASGIMessageError(f"{kind!r} needs the {kind!r} extension, not offered here")
        if kind == PATHSEND_EXTENSION:
            if self.state is not HEAD_PENDING:
                raise ASGIMessageError(
                    "'http.response.pathsend' is the whole body: it cannot follow another body message"
                )
            region = open_path(message.get("path"))
            more_body = False
        else:
            region = zerocopy_region(message)
            more_body = bool(message.get("more_body", False))
        sent = 0
        try:
            sent = await self._send_region(region, more_body)
        finally:
            region.release(sent)

    async def _send_region(self, region: FileRegion, more_body: bool) -> int:
        """Send the region as body; returns the bytes of it sent."""
        if self.state is HEAD_PENDING and not more_body and self.status not in _NO_BODY_STATUS:
            # The file is the whole body: its length is known, so HTTP/1.1 need not chunk it.
            self.headers = with_length(self.headers, region.count)
        if self.scope["method"] == "HEAD" or self.status in _NO_BODY_STATUS:
            await self.send({"type": "http.response.body", "body": b"", "more_body": more_body})
            return 0
        carrier: Any = self.carrier
        if region.count > KERNEL_COPY_MIN and getattr(carrier, "sends_files", False):
            if self.state is HEAD_PENDING:
                try:
                    carrier.write_head(self, self.status, self.headers, b"", True)
                except (TypeError, ValueError) as exc:
                    raise ASGIMessageError(f"'http.response.start' field 'headers': {exc}") from None
                if self.state is HEAD_PENDING:
                    self.state = HEAD_SENT
            sent: int = await carrier.send_file(self, region.fd, region.offset, region.count)
            self.bytes_sent += sent
            if sent == region.count and not more_body:
                await self.send({"type": "http.response.body", "body": b"", "more_body": False})
            return sent
        sent = 0
        for chunk in read_region(region):
            sent += len(chunk)
            await self.send({"type": "http.response.body", "body": chunk,
                             "more_body": more_body or sent < region.count})
        if not region.count:
            await self.send({"type": "http.response.body", "body": b"", "more_body": more_body})
        return sent

    async def _send_extension(self, kind: str, message: Message) -> None:
        """Early hints (103) and server push, for carriers that declare them in the scope."""
        if kind not in self.scope["extensions"]:
            raise ASGIMessageError(f"{kind!r} needs the {kind!r} extension, not offered here")
        if kind == EARLY_HINT_EXTENSION:
            if self.state is not START:
                raise ASGIMessageError("'http.response.early_hint' must come before the response")
            links = list(message.get("links", ()))
            for link in links:
                if type(link) is not bytes or has_control_characters(link):
                    raise ASGIMessageError(
                        f"'http.response.early_hint' field 'links': {link!r} is not a header value"
                    )
            self.carrier.send_early_hint(self, links)
        else:
            path = message.get("path")
            if type(path) is not str or not path.startswith("/"):
                raise ASGIMessageError("'http.response.push' field 'path' must be a str starting with /")
            if self.state is DONE:
                raise ASGIMessageError("'http.response.push' must come before the response ends")
            try:
                self.carrier.push(self, path, list(message.get("headers", ())))
            except (TypeError, ValueError) as exc:
                raise ASGIMessageError(f"'http.response.push' field 'headers': {exc}") from None

    async def _send_trailers(self, message: Message) -> None:
        if message.get("more_trailers"):
            raise ASGIMessageError("'http.response.trailers' field 'more_trailers' is not supported")
        try:
            self.carrier.write_trailers(self, message.get("headers", ()))
        except (TypeError, ValueError) as exc:
            raise ASGIMessageError(f"'http.response.trailers' field 'headers': {exc}") from None
        self.state = DONE
        self._response_done()
        if self.carrier.write_paused:
            await self.carrier.drain(self)

    def check_timeouts(self, now: float, began: float, body_timeout: float,
                       response_timeout: float) -> None:
        """Called by the carrier once a second. The body timeout ends a wait for request body
        that the client lets drag (slowloris on the body: 408); the response timeout, when set,
        ends an app that does not finish its response in time (504, the app cancelled)."""
        if self.state is DONE or self.disconnected:
            return
        if response_timeout and now - began > response_timeout:
            self._log(WARNING, "ASGI app did not finish its response within --response-timeout (%gs),"
                      " cancelled", response_timeout)
            self._time_out(504)
            if self.task is not None:
                self.task.cancel()
        elif self.waiting_since and body_timeout and now - self.waiting_since > body_timeout:
            self._log(DEBUG, "request body not received within --body-timeout")
            self._time_out(408)

    def _time_out(self, status: int) -> None:
        if self.state is START or self.state is HEAD_PENDING:
            self._respond_error(status)
        else:
            self.carrier.abort(self)
        self.feed_disconnect()

    def switched(self, status: int) -> None:
        """The request was answered by a protocol switch (a WebSocket accepted): the HTTP
        exchange is over, and is logged with that status."""
        self.state = DONE
        self.status = status
        self._account()

    def _response_done(self) -> None:
        if self._waiter is not None:
            self._wake()
        self._account()

    # -- running the app ----------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Call the app and settle whatever it left undone; every path ends with the carrier
        knowing whether the connection can go on."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if self.state is not DONE:
                self.carrier.abort(self)
            raise
        except BaseException as exc:
            self.app_failed(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if self.state is START and not self.disconnected:
                self._log(ERROR, "ASGI app returned without starting a response")
                self._respond_error(500)
            elif self.state is not DONE and not self.disconnected:
                self._log(ERROR, "ASGI app returned without completing the response")
                self.carrier.abort(self)

    def app_failed(self, exc: BaseException) -> None:
        """Log the app's exception; answer 500 if no response has begun, else abort."""
        if isinstance(exc, ClientDisconnected) and self.disconnected:
            self._log(DEBUG, "client went away during the request")
            return
        if isinstance(exc, (ResponseFramingError, FileSendError)):
            self._log(ERROR, "%s", exc)
        else:
            self._log(ERROR, "Exception in ASGI app", exc=exc)
        if self.disconnected:
            return
        if self.state is START or self.state is HEAD_PENDING:
            self._respond_error(500)
        elif self.state is not DONE:
            self.carrier.abort(self)

    def _respond_error(self, status: int) -> None:
        """A response of gateway's own in place of the app's; the connection closes after it."""
        self.state = DONE
        self.status = status
        body = _ERROR_BODIES[status]
        self.headers = _error_headers(body)
        self.carrier.write_head(self, status, self.headers, body, False)
        self.bytes_sent = len(body)
        self._account()

    def _log(self, level: int, message: str, *args: Any, exc: BaseException | None = None) -> None:
        """An error-log line naming this request: method, path, client, protocol, stream."""
        log_request_event(level, self.scope, self.carrier_key, message, *args, exc_info=exc)

    def _account(self) -> None:
        """The exchange is over: its access line and its place in the metrics, if kept."""
        if self.log_access:
            self.log_access.response(self)
        if self.tally is not None:
            self.tally.record(self)

