"""The HTTP/1.1 connection: bytes from the socket to exchanges and back.

One `asyncio.Protocol` per connection, driven straight from `data_received`. It owns what is
per-connection on the wire: keep-alive, pipelining (responses leave in request order), the
request-body back-pressure on the socket, the write back-pressure on the app, and the errors a
client can cause. Parsing and framing are the engine's; the ASGI rules are the exchange's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..asgi import (
    BODY_HIGH_WATER,
    EARLY_HINT_EXTENSION,
    HEAD_PENDING,
    START,
    Exchange,
    ResponseFramingError,
    http_scope,
    scope_address,
)
from ..config import ConfigError
from ..guards import Ledger
from ..logs import access_logger, address_text, error_logger
from ..state import ServerState
from ..tls.scope import TLSInfo
from ..wakeup import Wakeup
from ..ws.handshake import VERSION_FIELD, HandshakeError, read_request, wants_websocket
from ..ws.session import WebSocketSession
from .encode import simple_response
from .engine import BodyLengthError, Headers, RequestError
from .h2c import H2CSwitch, H2CUpgrade
from .websocket import H1WebSocket

try:
    from .httptools_engine import HttptoolsEngine
except ImportError:  # the `standard` extra is not installed
    HttptoolsEngine = None  # type: ignore[assignment,misc]
from .h11_engine import H11Engine

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def engine_class(name: str) -> type:
    """The engine for `--http`: auto picks httptools when it is installed."""
    if name == "h11" or (name == "auto" and HttptoolsEngine is None):
        return H11Engine
    if HttptoolsEngine is None:
        raise ConfigError("--http httptools needs httptools: pip install 'gateway[standard]'")
    return HttptoolsEngine


class H1Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection (plain or over TLS)."""

    def __init__(self, state: ServerState, engine: type, tls_info: TLSInfo | None,
                 h2c: H2CSwitch | None = None) -> None:
        self.state = state
        # On a plain listener with h2c: the HTTP/2 hand-over, by preface (only until the first
        # bytes decide) or by `Upgrade: h2c`.
        self.h2c = h2c
        self.switch_to_h2 = h2c.prior_knowledge if h2c is not None else None
        self.sniffed = b""
        self.upgrade: H2CUpgrade | None = None
        # A WebSocket handshake waiting for the app; bytes after it are kept for the session.
        self.websocket: H1WebSocket | None = None
        self.websocket_early = b""
        self.engine_class = engine
        self.tls_info = tls_info
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.engine: Any = None
        self.closing = False
        self.broken = False
        self.write_paused = False
        self.reading_paused = False
        self._drained = Wakeup()
        # The exchange whose response is being written, and whether the connection may be
        # reused after it; `incoming` is the one whose request body is arriving.
        self.current: Exchange | None = None
        self.current_keep_alive = False
        self.incoming: Exchange | None = None
        self.incoming_body_size = 0
        # Requests parsed ahead of their turn (pipelining), or a RequestError to answer in turn.
        self.pipeline: deque[tuple[Exchange, bool] | RequestError] = deque()
        self.idle_since: float | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.extensions: dict[str, Any] = {}
        # The client's budget; it goes with the connection to HTTP/2 or a WebSocket.
        self.ledger: Ledger | None = None

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.BaseTransport, ledger: Ledger
    ) -> None:
        """`ledger`: the client's, from the door (admission.py) that admitted the connection."""
        self.transport = transport  # type: ignore[assignment]
        self.client = scope_address(transport.get_extra_info("peername"))
        self.server = scope_address(transport.get_extra_info("sockname"))
        ssl_object = transport.get_extra_info("ssl_object")
        self.extensions = {EARLY_HINT_EXTENSION: {}}
        if ssl_object is not None:
            self.scheme = "https"
            if self.tls_info is not None:
                self.extensions["tls"] = self.tls_info.extension(ssl_object)
        state = self.state
        self.ledger = ledger
        self.engine = self.engine_class(self, state.max_head_size, state.server_line, state)
        state.connections.add(self)
        self.idle_since = self.loop.time()
        if state.shutting_down:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.closing or self.broken:
            return
        if self.websocket is not None:
            # Frames sent before the 101 are kept for the session; reading goes on (a client
            # that leaves is noticed) until they pass a bound.
            self.websocket_early += data
            if len(self.websocket_early) > BODY_HIGH_WATER:
                self._pause_reading()
            return
        if self.switch_to_h2 is not None:
            data = self._sniff_preface(data)
            if not data:
                return
        if self.upgrade is not None:
            self._continue_upgrade(data)
            return
        try:
            self.engine.feed(data)
        except RequestError as exc:
            self._request_error(exc)
            return
        if self.upgrade is not None and self.upgrade.ended:
            self._continue_upgrade(self.engine.upgrade_tail())

    def _sniff_preface(self, data: bytes) -> bytes:
        """h2c with prior knowledge (RFC 9113 section 3.3): the HTTP/2 client preface instead
        of a request line hands the connection to HTTP/2. Returns the bytes left for HTTP/1.1."""
        head = self.sniffed + data
        if len(head) < len(H2_PREFACE) and H2_PREFACE.startswith(head):
            self.sniffed = head
            return b""
        switch, self.switch_to_h2, self.sniffed = self.switch_to_h2, None, b""
        if head.startswith(H2_PREFACE):
            self.state.connections.discard(self)
            self.closing = True
            switch(self.transport, head, self._give_ledger())  # type: ignore[misc,arg-type]
            return b""
        return head

    def _continue_upgrade(self, data: bytes) -> None:
        """Collect the upgrading request's body, then answer 101 and hand over to HTTP/2."""
        upgrade = self.upgrade
        assert upgrade is not None and self.h2c is not None
        rest = upgrade.take_body(data)
        if not upgrade.complete:
            return
        self.transport.write(H2CUpgrade.SWITCHING)  # type: ignore[union-attr]
        self.state.connections.discard(self)
        self.closing = True
        self.h2c.upgrade(self.transport, upgrade, rest, self._give_ledger())  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        if self.ledger is not None:
            self.state.guard.release(self._give_ledger())
        if self.websocket is not None and self.websocket.session is not None:
            self.websocket.session.feed_disconnect()
        for exchange in (self.current, self.incoming):
            if exchange is not None:
                exchange.feed_disconnect()
        for item in self.pipeline:
            if not isinstance(item, RequestError):
                item[0].feed_disconnect()
        self.pipeline.clear()
        self.write_paused = False
        self._drained.wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._drained.wake()

    # -- engine callbacks ---------------------------------------------------------------

    def on_request(self, method: str, target: bytes, http_version: str, headers: Headers,
                   keep_alive: bool, body_expected: bool, expect_continue: bool) -> None:
        self.idle_since = None
        hosts = 0
        upgrade = False
        max_body = self.state.max_body_size
        for name, value in headers:
            if name == b"host":
                hosts += 1
            elif name == b"upgrade":
                upgrade = True
            elif name == b"content-length" and max_body is not None and int(value) > max_body:
                raise RequestError(413, f"request body larger than {max_body} bytes")
        if hosts != 1 and (hosts > 1 or http_version == "1.1"):
            raise RequestError(400, "a request needs exactly one Host header")
        if upgrade and self.current is None and not self.pipeline:
            if wants_websocket(headers):
                self._open_websocket(method, target, http_version, headers, body_expected)
                return
            if self.h2c is not None:
                self.upgrade = H2CUpgrade.requested(method, target, headers)
                if self.upgrade is not None:
                    return
        state = self.state
        scope = self._scope(method, target, http_version, headers)
        exchange = Exchange(self, scope, not body_expected, expect_continue, state.log_access)
        if body_expected:
            self.incoming = exchange
            self.incoming_body_size = 0
        if self.current is None:
            self._start(exchange, keep_alive)
        else:
            self.pipeline.append((exchange, keep_alive))
            self._pause_reading()

    def on_body(self, data: bytes) -> None:
        if self.upgrade is not None:
            self.upgrade.add_body(data)
            return
        exchange = self.incoming
        if exchange is None:
            return
        max_body = self.state.max_body_size
        if max_body is not None:
            self.incoming_body_size += len(data)
            if self.incoming_body_size > max_body:
                raise RequestError(413, f"request body larger than {max_body} bytes")
        exchange.feed_body(data)
        if exchange.buffered > BODY_HIGH_WATER and not self.reading_paused:
            self._pause_reading()

    def on_request_end(self) -> None:
        if self.upgrade is not None:
            self.upgrade.ended = True
            return
        exchange = self.incoming
        if exchange is not None:
            self.incoming = None
            exchange.feed_end()

    def _open_websocket(self, method: str, target: bytes, http_version: str, headers: Headers,
                        body_expected: bool) -> None:
        """RFC 6455 section 4.2: the app is called with a websocket scope; it accepts (the
        connection goes to H1WebSocket) or denies (an HTTP response, then close)."""
        try:
            if http_version != "1.1":
                raise HandshakeError(f"a WebSocket handshake needs HTTP/1.1, not HTTP/{http_version}")
            if body_expected:
                # The engines differ on where a body before the frames would end; a GET
                # handshake has no use for one.
                raise HandshakeError("a WebSocket handshake request has no body")
            request = read_request(method, headers, http2=False)
        except HandshakeError as exc:
            raise RequestError(400, str(exc), [VERSION_FIELD]) from None
        state = self.state
        scope = self._scope(method, target, http_version, headers)
        exchange = Exchange(self, scope, True, False, state.log_access)
        assert request.key is not None
        carrier = H1WebSocket(self, request.key)
        session = carrier.session = WebSocketSession(carrier, exchange, request, state.ws_settings)
        self.websocket = carrier
        self.current = exchange
        self.current_keep_alive = False
        state.start_app(session.run(state.app))

    def _scope(self, method: str, target: bytes, http_version: str, headers: Headers) -> dict[str, Any]:
        state = self.state
        return http_scope(
            http_version, self.server, self.client, self.scheme, method, _origin_form(target),
            headers, state.root_path, state.lifespan_state, self.extensions,
        )

    def hand_over(self) -> tuple[bytes, Ledger]:
        """The WebSocket was accepted: this protocol lets go of the connection, and returns the
        bytes read after the handshake request and the client's ledger."""
        self.closing = True
        self.current = None
        self.state.connections.discard(self)
        return self.engine.upgrade_tail() + self.websocket_early, self._give_ledger()

    def _give_ledger(self) -> Ledger:
        ledger, self.ledger = self.ledger, None
        assert ledger is not None
        return ledger

    # -- the exchange's carrier calls ----------------------------------------------------

    def write_head(self, exchange: Exchange, status: int, headers: Iterable[Any], body: bytes,
                   more_body: bool) -> None:
        if self.closing or exchange is not self.current:
            return
        keep_alive = (
            self.current_keep_alive and exchange.body_complete and not self.state.shutting_down
        )
        try:
            data, self.current_keep_alive = self.engine.start_response(
                status, headers, body, more_body, keep_alive
            )
        except BodyLengthError as exc:
            self._framing_error(exchange, exc)
        self.transport.write(data)  # type: ignore[union-attr]
        if not more_body:
            self._response_done()

    def write_body(self, exchange: Exchange, body: bytes, more_body: bool) -> None:
        if self.closing or exchange is not self.current:
            return
        try:
            data = self.engine.body(body, more_body)
        except BodyLengthError as exc:
            self._framing_error(exchange, exc)
        if data:
            self.transport.write(data)  # type: ignore[union-attr]
        if not more_body:
            self._response_done()

    async def drain(self, exchange: Exchange) -> None:
        if self.write_paused:
            await self._drained.wait()

    def send_early_hint(self, exchange: Exchange, links: list[bytes]) -> None:
        """103 Early Hints (RFC 8297), to HTTP/1.1 clients only: HTTP/1.0 knows no 1xx."""
        if self.closing or exchange is not self.current or exchange.scope["http_version"] != "1.1":
            return
        hints = [(b"link", link) for link in links]
        self.transport.write(self.engine.informational(103, hints))  # type: ignore[union-attr]

    def send_continue(self, exchange: Exchange) -> None:
        if not self.closing and exchange is self.current:
            self.transport.write(self.engine.informational(100, []))  # type: ignore[union-attr]

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        if self.reading_paused and not self.pipeline:
            self._resume_reading()

    def abort(self, exchange: Exchange) -> None:
        exchange.feed_disconnect()
        self._close()

    # -- connection management ----------------------------------------------------------

    def shutdown(self) -> None:
        if self.websocket is not None and self.websocket.session is not None:
            self.websocket.session.shutdown()  # closes with 1001 if the app accepts
        if self.current is None and not self.pipeline:
            self._close()

    def check_timeouts(self, now: float) -> None:
        if self.idle_since is not None and now - self.idle_since > self.state.keep_alive_timeout:
            self._close()

    def force_close(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.abort()

    def _start(self, exchange: Exchange, keep_alive: bool) -> None:
        self.current = exchange
        self.current_keep_alive = keep_alive
        self.state.start_app(exchange.run(self.state.app))

    def _response_done(self) -> None:
        self.current = None
        if not self.current_keep_alive or self.state.shutting_down:
            self._close()
            return
        try:
            self.engine.next_cycle()
        except RequestError as exc:
            self._request_error(exc)
            return
        if self.current is None and self.pipeline:
            item = self.pipeline.popleft()
            if isinstance(item, RequestError):
                self._send_error(item)
                return
            self._start(*item)
        if self.current is None:
            self.idle_since = self.loop.time()
        if self.reading_paused and not self.pipeline:
            self._resume_reading()

    def _request_error(self, exc: RequestError) -> None:
        error_logger.debug("invalid request from %s: %s", address_text(self.client), exc.reason)
        incoming = self.incoming
        if incoming is not None:
            # The error is in a request body: that request cannot go on.
            self.incoming = None
            incoming.feed_disconnect()
            if incoming is not self.current:
                self.pipeline = deque(
                    exc if not isinstance(item, RequestError) and item[0] is incoming else item
                    for item in self.pipeline
                )
                self._stop_parsing()
                return
            if incoming.state is not START and incoming.state is not HEAD_PENDING:
                # The response has begun: nothing more can be said on this connection.
                self._close()
                return
            self.current = None
        if self.current is None:
            self._send_error(exc)
        else:
            self.pipeline.append(exc)
            self._stop_parsing()

    def _send_error(self, exc: RequestError) -> None:
        state = self.state
        self.transport.write(  # type: ignore[union-attr]
            simple_response(exc.status, exc.reason, state.server_line, state.date_line, exc.headers)
        )
        if state.log_access:
            access_logger.info('%s - "-" %d', address_text(self.client), exc.status)
        self._close()

    def _framing_error(self, exchange: Exchange, exc: BodyLengthError) -> None:
        exchange.feed_disconnect()
        self._close()
        raise ResponseFramingError(str(exc)) from None

    def _stop_parsing(self) -> None:
        """After a bad request nothing more from this client is read; the responses already
        owed are still written, then the connection closes."""
        self.broken = True
        self._pause_reading()

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closing:
            self.reading_paused = False
            self.transport.resume_reading()

    def _close(self) -> None:
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()


def _origin_form(target: bytes) -> bytes:
    """Absolute-form targets (RFC 9112 section 3.2.2) are reduced to their path and query."""
    if target[:1] == b"/" or target == b"*":
        return target
    scheme_end = target.find(b"://")
    if scheme_end < 0:
        return target
    path_start = target.find(b"/", scheme_end + 3)
    query_start = target.find(b"?", scheme_end + 3)
    if path_start < 0 or (0 <= query_start < path_start):
        return b"/" + (target[query_start:] if query_start >= 0 else b"")
    return target[path_start:]
