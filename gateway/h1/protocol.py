"""The HTTP/1.1 connection: bytes from the socket to exchanges and back.

One `asyncio.Protocol` per connection, driven straight from `data_received`. It owns what is
per-connection on the wire: keep-alive, pipelining (responses leave in request order), the
request-body back-pressure on the socket, the write back-pressure on the app, and the errors a
client can cause. Parsing and framing are the engine's; the ASGI rules are the exchange's;
writing responses is `ResponseWriting`'s (responses.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..asgi import (
    BODY_HIGH_WATER,
    EARLY_HINT_EXTENSION,
    FILE_EXTENSIONS,
    Addresses,
    Exchange,
    http_scope,
    scope_address,
    scope_template,
)
from ..config import ConfigError
from ..guards import Ledger, StallWatch
from ..loading import ASGIApp
from ..logs import address_text, error_logger
from ..proxy.forwarded import apply_forwarded
from ..reading import ReadingBlocks
from ..state import ServerState
from ..tls.scope import TLSInfo
from ..wakeup import Wakeup
from ..ws.handshake import VERSION_FIELD, HandshakeError, read_request, wants_websocket
from ..ws.session import WebSocketSession
from .engine import Headers, RequestError
from .h2c import H2CSwitch, H2CUpgrade, speaks_http2
from .responses import BODY, HELD, WRITE, ResponseWriting
from .sendfile import KernelCopy
from .websocket import H1WebSocket
from .wire import make_scope

try:
    from .httptools_engine import HttptoolsEngine
except ImportError:  # the `standard` extra is not installed
    HttptoolsEngine = None  # type: ignore[assignment,misc]
from .h11_engine import H11Engine

# A large read is parsed this much at a time (see `_parse`).
_FEED_SLICE = 16 * 1024
# The scope of an HTTP/1.1 request with no root path, for make_scope to copy.
_SCOPE_TEMPLATE = scope_template("1.1")
# At a graceful stop, a connection idle for less than this may have its next request on the
# way: it is given this long before it is closed (see `shutdown`).
_RECENTLY_SERVED = 0.5


def engine_class(name: str) -> type:
    """The engine for `--http`: auto picks httptools when it is installed."""
    if name == "h11" or (name == "auto" and HttptoolsEngine is None):
        return H11Engine
    if HttptoolsEngine is None:
        raise ConfigError("--http httptools needs httptools: pip install 'gateway[standard]'")
    return HttptoolsEngine


class H1Protocol(ReadingBlocks, ResponseWriting, asyncio.Protocol):
    """One HTTP/1.1 connection (plain or over TLS).

    Idle keep-alive connections are many: everything here is in slots (an instance dict took
    a third of what an idle connection held), and what only some connections need (the
    pipeline, the preface sniffed for h2c) is made when it is needed."""

    __slots__ = (
        "state", "app", "h2c", "switch_to_h2", "sniffed", "upgrade", "websocket",
        "engine_class", "tls_info", "loop", "transport", "engine", "closing", "broken",
        "write_paused", "reading_blocked", "_drained", "stall", "held", "held_size",
        "next_after_drain", "current", "current_keep_alive", "current_since", "incoming",
        "incoming_body_size", "pipeline", "idle_since", "served", "forwarded", "head_since",
        "client", "server", "scheme", "extensions", "ledger", "bytes_in", "bytes_out", "copy",
    )
    protocol_label = "http/1.1"  # metrics: open connections by protocol

    def __init__(self, state: ServerState, engine: type, tls_info: TLSInfo | None,
                 h2c: H2CSwitch | None = None, app: ASGIApp | None = None) -> None:
        self.state = state
        # The listener's own app (the HTTPS redirect), else None for the server's.
        self.app = app
        # On a plain listener with h2c: the HTTP/2 hand-over, by preface (only until the first
        # bytes decide) or by `Upgrade: h2c`.
        self.h2c = h2c
        self.switch_to_h2 = h2c.prior_knowledge if h2c is not None else None
        # The first bytes while they cannot tell h2c from HTTP/1.1 yet (a first line may
        # come a byte at a time: grown in place); most first reads tell at once.
        self.sniffed: bytearray | None = None
        self.upgrade: H2CUpgrade | None = None
        # A WebSocket handshake waiting for the app; bytes after it are held for the session.
        self.websocket: H1WebSocket | None = None
        self.engine_class = engine
        self.tls_info = tls_info
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.engine: Any = None
        self.closing = False
        self.broken = False
        self.write_paused = False
        self.reading_blocked = 0  # BODY | HELD | WRITE | BROKEN (responses.py): why not read
        self._drained = Wakeup()
        self.stall = StallWatch()
        # Bytes read while a request is being served and nothing more of it is to be read
        # (pipelining, or frames after a WebSocket handshake): parsed once it is answered.
        self.held: list[bytes] | None = None
        self.held_size = 0
        self.next_after_drain = False  # a response is done; the next waits for the client to read
        # The exchange whose response is being written, and whether the connection may be
        # reused after it; `incoming` is the one whose request body is arriving.
        self.current: Exchange | None = None
        self.current_keep_alive = False
        self.current_since = 0.0  # loop time the current exchange's app was called
        self.incoming: Exchange | None = None
        self.incoming_body_size = 0
        # Requests parsed ahead of their turn (pipelining), or a RequestError to answer in turn.
        # A list, made when first needed (a deque, even empty, is ten times the size); the
        # queue stays short, as a read is parsed one slice at a time (`_parse`).
        self.pipeline: list[tuple[Exchange, bool] | RequestError] | None = None
        self.idle_since: float | None = None
        self.served = False
        self.forwarded = False  # the peer is a trusted proxy: its forwarded headers count
        self.head_since: float | None = None  # the first byte of a request head not yet whole
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.extensions: dict[str, Any] = {}
        # The client's budget; it goes with the connection to HTTP/2 or a WebSocket.
        self.ledger: Ledger | None = None
        self.bytes_in = 0  # metrics: read from and written to the transport
        self.bytes_out = 0
        self.copy: KernelCopy | None = None  # a file the kernel is copying to the socket

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.BaseTransport, ledger: Ledger, addresses: Addresses | None = None
    ) -> None:
        """`ledger`: the client's, from the door (admission.py) that admitted the connection;
        `addresses`: (client, server) when a PROXY protocol header named them."""
        self.transport = transport  # type: ignore[assignment]
        if addresses is None:
            self.client = scope_address(transport.get_extra_info("peername"))
            self.server = self.state.server_address(transport.get_extra_info("sockname"))
        else:
            self.client, self.server = addresses
        self.forwarded = self.state.proxy_headers and self.state.trusted_peers.trusts(
            self.client[0] if self.client else None)
        ssl_object = transport.get_extra_info("ssl_object")
        self.extensions = {EARLY_HINT_EXTENSION: {}, **FILE_EXTENSIONS}
        if ssl_object is not None:
            self.scheme = "https"
            if self.tls_info is not None:
                self.extensions["tls"] = self.tls_info.extension(ssl_object)
        state = self.state
        self.ledger = ledger
        self.engine = self.engine_class(self, state.max_head_size, state)
        state.connections.add(self)
        # A connection accepted before a graceful stop began is still served: its first
        # response goes out with `connection: close` (responses.py), and one that sends
        # nothing is closed by the keep-alive timeout.
        self.idle_since = self.loop.time()

    @property
    def reading_paused(self) -> bool:
        return bool(self.reading_blocked)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._received(data)

    def _received(self, data: bytes) -> None:
        """What `data_received` does; also fed the bytes held back, counted already."""
        if self.closing or self.broken:
            return
        if self.held or self.websocket is not None or self.next_after_drain or (
            self.current is not None and self.incoming is None
        ):
            self._hold(data)
            return
        if self.idle_since is not None:
            self.idle_since = None
            self.head_since = self.loop.time()
        if self.switch_to_h2 is not None:
            data = self._sniff_preface(data)
            if not data:
                return
        if self.upgrade is not None:
            self._continue_upgrade(data)
            return
        if len(data) <= _FEED_SLICE:  # the usual read: nothing to slice
            try:
                self.engine.feed(data)
            except RequestError as exc:
                self._request_error(exc)
            rest = b""
        else:
            rest = self._parse(data)
        if self.upgrade is not None and self.upgrade.ended:
            self._continue_upgrade(self.engine.upgrade_tail() + rest)
        elif rest:
            self._received(rest)

    def _parse(self, data: bytes) -> bytes:
        """Feed the engine a large read a slice at a time, stopping where parsing must wait (a
        request to answer first, a protocol switch, an error); returns what was not fed. An
        engine that parses ahead (llhttp) would otherwise queue every request of the read."""
        engine = self.engine
        for offset in range(0, len(data), _FEED_SLICE):
            try:
                engine.feed(data[offset:offset + _FEED_SLICE])
            except RequestError as exc:
                self._request_error(exc)
                return b""
            if (self.current is not None and self.incoming is None) or self.upgrade is not None \
                    or self.websocket is not None or self.closing or self.broken \
                    or self.next_after_drain:
                return data[offset + _FEED_SLICE:]
        return b""

    def _hold(self, data: bytes) -> None:
        if self.held is None:
            self.held = [data]
        else:
            self.held.append(data)
        self.held_size += len(data)
        if self.held_size > BODY_HIGH_WATER:
            self.block_reading(HELD)

    def _take_held(self) -> bytes:
        held = self.held
        assert held is not None
        data = held[0] if len(held) == 1 else b"".join(held)
        self.held = None
        self.held_size = 0
        self.unblock_reading(HELD)
        return data

    def _sniff_preface(self, data: bytes) -> bytes:
        """h2c with prior knowledge (RFC 9113 section 3.3): the HTTP/2 client preface instead
        of a request line hands the connection to HTTP/2, and so does a broken preface, for
        HTTP/2 to refuse. Returns the bytes left for HTTP/1.1."""
        sniffed = self.sniffed
        if sniffed is not None:
            sniffed += data
        http2 = speaks_http2(data if sniffed is None else sniffed)
        if http2 is None:
            if sniffed is None:
                self.sniffed = bytearray(data)
            return b""
        head = data if sniffed is None else bytes(sniffed)
        switch, self.switch_to_h2, self.sniffed = self.switch_to_h2, None, None
        if http2:
            self.state.connections.discard(self)
            self.closing = True
            self._reading_for_next_protocol()
            switch(self.transport, head, self._give_ledger(),  # type: ignore[misc,arg-type]
                   (self.client, self.server))
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
        self._reading_for_next_protocol()
        self.h2c.upgrade(self.transport, upgrade, rest, self._give_ledger(),  # type: ignore[arg-type]
                         (self.client, self.server))

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
        for item in self.pipeline or ():
            if not isinstance(item, RequestError):
                item[0].feed_disconnect()
        self.pipeline = None
        self.held = None
        if self.copy is not None:
            self.copy.abandon()
        self.write_paused = False
        self._drained.wake()

    def pause_writing(self) -> None:
        # A client that does not read its responses is not read from either: what it sends
        # meanwhile (pipelined requests) waits in its own socket buffer, not in our memory.
        self.write_paused = True
        self.block_reading(WRITE)

    def resume_writing(self) -> None:
        self.write_paused = False
        self.unblock_reading(WRITE)
        self._drained.wake()
        if self.next_after_drain:
            self.next_after_drain = False
            self._next_request()

    # -- engine callbacks ---------------------------------------------------------------

    def on_request(self, method: str, target: bytes, http_version: str, headers: Headers,
                   keep_alive: bool, body_length: int, switching: bool,
                   expect_continue: bool) -> None:
        # The engine has applied gateway/h1/strict.py: one valid Host, the target in origin
        # form (an absolute-form target's authority is the Host the app sees), sound framing.
        if self.closing:
            # Parsed from the same read after a response that closes the connection (an app
            # started eagerly has answered already): nothing more is served.
            return
        self.idle_since = None
        max_body = self.state.max_body_size
        if max_body is not None and body_length > max_body:
            raise RequestError(413, f"request body larger than {max_body} bytes")
        body_expected = body_length != 0
        if switching:
            if self.current is None and not self.pipeline:
                if wants_websocket(headers):
                    self._open_websocket(method, target, http_version, headers, body_expected)
                    return
                if self.h2c is not None:
                    self.upgrade = H2CUpgrade.requested(method, target, headers)
                    if self.upgrade is not None:
                        return  # its body too must come within --header-timeout
            if body_expected:
                # A protocol switch request served as plain HTTP/1.1: llhttp hands its body over
                # as the new protocol's bytes, h11 reads it as the body, and a proxy in front may
                # do either. Refused rather than read one way.
                raise RequestError(400, "a body on an Upgrade request that is not switched")
        self.head_since = None
        state = self.state
        scope = self._scope(method, target, http_version, headers)
        exchange = Exchange(self, scope, not body_expected, expect_continue, state.log_access)
        if body_expected:
            self.incoming = exchange
            self.incoming_body_size = 0
        if self.current is None and not self.next_after_drain:
            self._start(exchange, keep_alive)
        else:
            self.queue((exchange, keep_alive))

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
        if exchange.buffered > BODY_HIGH_WATER:
            self.block_reading(BODY)

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
        self.head_since = None
        state = self.state
        scope = self._scope(method, target, http_version, headers)
        exchange = Exchange(self, scope, True, False, state.log_access)
        assert request.key is not None
        carrier = H1WebSocket(self, request.key)
        session = carrier.session = WebSocketSession(carrier, exchange, request, state.ws_settings)
        self.websocket = carrier
        self.current = exchange
        self.current_keep_alive = False
        # Not eagerly: an app accepting at once would take the connection over from inside the
        # parser's callback, before the engine has set aside the bytes that followed the
        # handshake (`upgrade_tail`).
        state.start_app(session, self.app)

    def _scope(self, method: str, target: bytes, http_version: str, headers: Headers) -> dict[str, Any]:
        state = self.state
        scope = NotImplemented
        if make_scope is not None and http_version == "1.1" and not state.root_path:
            scope = make_scope(_SCOPE_TEMPLATE, self.server, self.client, self.scheme, method,
                               target, headers, state.lifespan_state, self.extensions)
        if scope is NotImplemented:
            scope = http_scope(
                http_version, self.server, self.client, self.scheme, method, target,
                headers, state.root_path, state.lifespan_state, self.extensions,
            )
        if self.forwarded:
            apply_forwarded(scope, state.trusted_peers)
        return scope

    def hand_over(self) -> tuple[bytes, Ledger]:
        """The WebSocket was accepted: this protocol lets go of the connection, and returns the
        bytes read after the handshake request and the client's ledger."""
        self.closing = True
        self.current = None
        self.state.connections.discard(self)
        tail = self.engine.upgrade_tail()
        if self.held:
            tail += self._take_held()
        return tail, self._give_ledger()

    def _give_ledger(self) -> Ledger:
        """Every way the connection leaves this protocol (closed, or handed over) passes
        here once: its byte counts go to the server's totals too."""
        self.state.connection_ended(self.bytes_in, self.bytes_out)
        ledger, self.ledger = self.ledger, None
        assert ledger is not None
        return ledger

    # -- connection management ----------------------------------------------------------

    def shutdown(self) -> None:
        if self.websocket is not None and self.websocket.session is not None:
            self.websocket.session.shutdown()  # closes with 1001 if the app accepts
        if self.current is None and not self.pipeline and self.served:
            # Idle between requests: closed now, unless a response went out just before. Its
            # client may be sending the next request on it this moment, which a close would
            # answer with a reset; that request is served with `connection: close` instead.
            # A connection that has had no request yet is left to send its first (its client
            # connected to send one); a silent one ends at the keep-alive timeout.
            quiet = self.loop.time() - (self.idle_since or 0.0)
            if quiet >= _RECENTLY_SERVED:
                self._close()
            else:
                self.loop.call_later(_RECENTLY_SERVED - quiet, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.current is None and not self.pipeline:
            self._close()

    def check_timeouts(self, now: float) -> None:
        state = self.state
        copy = self.copy
        if self.stall.overdue(self.transport, now, state.send_timeout) or (
            copy is not None and state.send_timeout and copy.overdue(now, state.send_timeout)
        ):
            error_logger.debug("dropping %s: it read nothing for --send-timeout", address_text(self.client))
            self.force_close()
            return
        if self.closing:
            return
        if self.idle_since is not None:
            if now - self.idle_since > state.keep_alive_timeout:
                self._close()
        elif self.head_since is not None:
            if now - self.head_since > state.header_timeout and self.current is None:
                self._send_error(RequestError(408, "request head not complete within --header-timeout"))
        elif self.current is not None and self.websocket is None:
            self.current.check_timeouts(now, self.current_since, state.body_timeout,
                                        state.response_timeout)

    def force_close(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.abort()
        if self.copy is not None:
            self.copy.abandon()

    def _start(self, exchange: Exchange, keep_alive: bool) -> None:
        self.current = exchange
        self.served = True
        self.current_keep_alive = keep_alive
        if self.state.response_timeout:
            self.current_since = self.loop.time()
        # A request with a body is not started eagerly: its app would run before the engine
        # has parsed the body, however much of it came in the same read.
        exchange.task = self.state.start_app(exchange, self.app, eager=exchange.body_complete)

    def _response_done(self) -> None:
        self.current = None
        if not self.current_keep_alive or self.state.shutting_down:
            self._close()
            return
        if self.write_paused:
            # The client has not read this response yet: the next one waits, so that a client
            # pipelining without reading fills its own buffers and not our memory.
            self.next_after_drain = True
            return
        self._next_request()

    def queue(self, item: tuple[Exchange, bool] | RequestError) -> None:
        """A request (or a refusal) to answer after those before it."""
        if self.pipeline is None:
            self.pipeline = [item]
        else:
            self.pipeline.append(item)

    def _next_request(self) -> None:
        if self.closing:
            return
        try:
            self.engine.next_cycle()
        except RequestError as exc:
            self._request_error(exc)
            return
        if self.current is None and self.pipeline:
            item = self.pipeline.pop(0)
            if isinstance(item, RequestError):
                self._send_error(item)
                return
            self._start(*item)
        if self.current is None:
            self.idle_since = self.loop.time()
            if self.held:
                self._received(self._take_held())

    def _reading_for_next_protocol(self) -> None:
        """The protocol taking the transport over expects it to be read."""
        if self.reading_blocked and self.transport is not None:
            self.reading_blocked = 0
            self.transport.resume_reading()

    def _close(self) -> None:
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()
