"""The HTTP/2 connection: h2 (python-hyper) for the wire, one exchange per stream.

Streams map onto the same `Exchange` HTTP/1.1 uses. What is HTTP/2's own lives here: the
stream table, flow control both ways (request-body window granted as the app reads, response
data sent as the peer's windows allow, the app's `send` waiting meanwhile), trailers, GOAWAY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from ..asgi import (
    EARLY_HINT_EXTENSION,
    FILE_EXTENSIONS,
    PUSH_EXTENSION,
    TRAILERS_EXTENSION,
    Addresses,
    scope_address,
)
from ..guards import Ledger, StallWatch
from ..logs import address_text, error_logger
from ..reading import ReadingBlocks
from ..state import ServerState
from ..tls.scope import TLSInfo
from . import events
from .drain import Drains, Receiving
from .errors import precise_error_code
from .fields import (
    malformed_request,
    malformed_trailers,
)
from .frame_meter import FrameMeter
from .requests import RequestHead, open_stream
from .responses import StreamResponses
from .settings import server_connection
from .stream import Stream, wake
from .wire import goaway_frame

# Connection-level window granted at once for DATA received: stream windows are what bound
# the memory a client can make us hold, so the connection window never stalls other streams.
_CONNECTION_ACK_THRESHOLD = 32 * 1024
# Why reading is paused: a batch's rest waits its turn, or the client is not reading.
_HELD = 1
_SOCKET = 2
# After a connection error's GOAWAY: long enough for it to leave, short enough that a TLS
# client flooding on is not decrypted for long while its close_notify is awaited.
_ERROR_GRACE = 0.25
# Why a client's budget ran dry, as logged.
_FRAMES_PAST_BUDGET = "too many frames that carry no request (--control-frame-budget)"
_RESETS_PAST_BUDGET = "too many streams refused or malformed (--control-frame-budget)"


class H2Protocol(ReadingBlocks, StreamResponses, asyncio.Protocol):
    """One HTTP/2 connection, over TLS (ALPN h2) or plain (h2c)."""

    # The exchange always asks `drain` after a write: a stream may be out of window even when
    # the socket is not, and `drain` returns at once when neither holds it back.
    write_paused = True
    protocol_label = "h2"  # metrics: open connections by protocol

    def __init__(self, state: ServerState, tls_info: TLSInfo | None) -> None:
        self.state = state
        self.tls_info = tls_info
        self.loop = asyncio.get_running_loop()
        self.conn = server_connection(state.config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.drains = Drains()
        self.receiving = Receiving(self.streams, self.drains)
        self.closing = False
        self.goaway_sent = False
        self.goaway_after_read = False
        self.forwarded = False  # the peer is a trusted proxy: its forwarded headers count
        self.socket_paused = False
        self.reading_blocked = 0  # _HELD | _SOCKET: why the transport is not being read
        self.flush_scheduled = False
        self.grant_at = max(1, state.config.h2_initial_window_size // 4)  # see body_consumed
        self.unflushed = 0  # DATA bytes given to h2 since the last write to the socket
        self.connection_unacked = 0
        self.ledger: Ledger | None = None
        self.meter = FrameMeter()
        # Bytes read but not yet given to h2: the rest of a read whose batch was full.
        self.held: list[bytes | memoryview] = []
        self.headers_held = 0  # decoded request header bytes of the open streams
        self.last_head: RequestHead | None = None  # the last request head read and found valid
        self.idle_since: float | None = None
        self.header_block_since: float | None = None  # a header block arriving in pieces
        self.abort_handle: asyncio.TimerHandle | None = None
        self.stall = StallWatch()
        self.base_scope: dict[str, Any] = {}
        self.bytes_in = 0  # metrics: read from and written to the transport
        self.bytes_out = 0

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.BaseTransport, preamble: bytes = b"", upgrade: Any = None, *,
        ledger: Ledger, addresses: Addresses | None = None,
    ) -> None:
        """`preamble`: bytes already read (h2c); `upgrade`: the HTTP/1.1 request that asked for
        `Upgrade: h2c`, served as stream 1 (RFC 7540 section 3.2); `ledger`: the client's, from
        the door (admission.py) or from HTTP/1.1 when the connection began as that."""
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        self.ledger = ledger
        ssl_object = transport.get_extra_info("ssl_object")
        extensions: dict[str, Any] = {
            TRAILERS_EXTENSION: {}, EARLY_HINT_EXTENSION: {}, **FILE_EXTENSIONS,
        }
        if ssl_object is not None and self.tls_info is not None:
            extensions["tls"] = self.tls_info.extension(ssl_object)
        if addresses is None:
            client = scope_address(transport.get_extra_info("peername"))
            server = scope_address(transport.get_extra_info("sockname"))
        else:
            client, server = addresses
        self.forwarded = state.proxy_headers and state.trusted_peers.trusts(client[0] if client else None)
        self.base_scope = {
            "server": server,
            "client": client,
            "scheme": "https" if ssl_object is not None else "http",
            "extensions": extensions,
        }
        state.connections.add(self)
        self.idle_since = self.loop.time()
        if upgrade is None:
            self.conn.initiate_connection()
        else:
            try:
                self.conn.initiate_upgrade_connection(upgrade.settings)
            except (h2.exceptions.ProtocolError, ValueError) as exc:
                error_logger.debug("bad HTTP2-Settings from %s: %s", _client_text(self), exc)
                self._close()
                return
            self._open_stream(1, RequestHead(upgrade.request_headers()), True, upgrade.body)
        self._flush()
        if state.shutting_down:
            self.shutdown()
        if preamble:
            self.bytes_in -= len(preamble)  # HTTP/1.1 read and counted them
            self.data_received(preamble)

    def data_received(self, data: bytes | memoryview) -> None:
        if self.closing:
            return
        if self.held:
            self.held.append(data)
            return
        meter = self.meter
        cut = meter.measure(data, self.receiving)
        if meter.cost and not self._charge(meter.cost, _FRAMES_PAST_BUDGET):
            return
        if meter.in_header_block:
            if self.header_block_since is None:
                self.header_block_since = self.loop.time()
        elif self.header_block_since is not None:
            self.header_block_since = None
        if cut < len(data):
            # A full batch: the rest waits for the next turn of the loop, so that one client's
            # burst of frames never holds up the others. Views, not copies: a read of small
            # frames may be cut many times.
            view = memoryview(data)
            self.held.append(view[cut:])
            data = view[:cut]
            self.block_reading(_HELD)
            self.loop.call_soon(self._feed_held)
        self._receive(data)
        if self.goaway_after_read and self.conn.highest_inbound_stream_id:
            self.goaway_after_read = False
            self._go_away()

    def _feed_held(self) -> None:
        held = self.held
        if self.closing or not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        self.data_received(data)
        if not self.held:
            self.unblock_reading(_HELD)

    def _receive(self, data: bytes | memoryview) -> None:
        self.bytes_in += len(data)
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            error_logger.debug("HTTP/2 protocol error from %s: %s", _client_text(self), exc)
            code = precise_error_code(exc)
            if code is None:
                self._flush()
            else:
                self.conn.data_to_send()  # h2's GOAWAY says PROTOCOL_ERROR; send the RFC's code
                if self.transport is not None:
                    self.transport.write(goaway_frame(self.conn.highest_inbound_stream_id, code))
            self._close(_ERROR_GRACE)
            return
        for event in events:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
                if self.closing:
                    return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        self.state.connection_ended(self.bytes_in, self.bytes_out)
        self.held.clear()
        if self.abort_handle is not None:
            self.abort_handle.cancel()
        if self.ledger is not None:
            self.state.guard.release(self.ledger)
            self.ledger = None
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.exchange.feed_disconnect()
            if stream.session is not None:
                stream.session.feed_disconnect()
            wake(stream)

    def pause_writing(self) -> None:
        # A client that does not read what we send (PING and SETTINGS acknowledgements
        # included) is not read from either: floods cost it its own connection only.
        self.socket_paused = True
        self.block_reading(_SOCKET)

    def resume_writing(self) -> None:
        self.socket_paused = False
        self.unblock_reading(_SOCKET)
        for stream in self.streams.values():
            if not stream.pending:
                wake(stream)

    # -- h2 events ----------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        config = self.state.config
        if self.goaway_sent:
            self._reset_for_client(event.stream_id, ErrorCodes.REFUSED_STREAM)
            return
        fields = event.headers
        head = self.last_head
        if head is None or head.fields is not fields:
            problem = malformed_request(fields)
            if problem is not None:
                # RFC 9113 section 8.1.1: a malformed request is a stream error.
                error_logger.debug("malformed HTTP/2 request from %s: %s", _client_text(self), problem)
                self._reset_for_client(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
                return
            head = RequestHead(fields)
            if type(fields) is tuple:  # kept by the decoder (hpack_cache.py): it may recur
                self.last_head = head
        # HPACK lets a few bytes on the wire name a large field again and again: what open
        # streams hold decoded is bounded per connection, not only per request.
        if self.headers_held + head.size > config.h2_max_headers_held:
            error_logger.debug("refusing a stream from %s: --h2-max-headers-held", _client_text(self))
            self._reset_for_client(event.stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self._open_stream(event.stream_id, head, event.stream_ended is not None)

    def _reset_for_client(self, stream_id: int, code: ErrorCodes) -> None:
        """A reset the client made the server send costs it like a control frame would."""
        self.conn.reset_stream(stream_id, code)
        self._charge(1, _RESETS_PAST_BUDGET)

    def _charge(self, cost: int, reason: str) -> bool:
        """Charge the client's budget (guards.py); past it, the connection ends (`calm_down`)
        and False is returned."""
        if self.ledger.charge(cost, self.loop.time()):  # type: ignore[union-attr]
            return True
        self.calm_down(reason)
        return False

    def _open_stream(self, stream_id: int, head: RequestHead, ended: bool,
                     body: Iterable[bytes] = ()) -> None:
        """`body`: what already arrived of the request (an h2c Upgrade's, read by HTTP/1.1),
        given to the exchange before its app starts."""
        opened = open_stream(self, stream_id, head, ended)
        if opened is None:
            self.flush_soon()
            return
        stream, call = opened
        stream.header_size = head.size
        if self.state.response_timeout:
            stream.opened_at = self.loop.time()
        self.headers_held += head.size
        self.streams[stream_id] = stream
        self.ledger.opened += 1  # type: ignore[union-attr]
        self.idle_since = None
        self.state.h2_streams += 1
        # A whole request (not a WebSocket) may be answered before this returns (Python 3.12+,
        # state.py's new_task): the stream is registered and the connection ready for it.
        for chunk in body:
            stream.exchange.feed_body(chunk)
        stream.exchange.task = self.state.start_app(call, eager=ended and stream.session is None)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        flow = event.flow_controlled_length
        self.connection_unacked += flow
        if self.connection_unacked >= _CONNECTION_ACK_THRESHOLD:
            self.conn.increment_flow_control_window(self.connection_unacked)
            self.connection_unacked = 0
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.drains.received(self.conn, event.stream_id)
            return
        data = event.data
        padding = flow - len(data)
        if padding:
            self._grant(event.stream_id, padding)
        if stream.websocket is not None:
            stream.websocket.data_received(data)
        else:
            stream.exchange.feed_body(data)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            if stream.session is not None:
                stream.session.feed_disconnect()  # RFC 8441 section 5: END_STREAM is a FIN
            else:
                stream.exchange.feed_end()
        else:
            self.drains.ended(event.stream_id)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        problem = malformed_trailers(event.headers)
        if problem is None:
            return
        # RFC 9113 section 8.1.1: a stream error, when the stream is not closed already.
        error_logger.debug("malformed HTTP/2 trailers from %s: %s", _client_text(self), problem)
        self.drains.ended(event.stream_id)
        self._drop_stream(event.stream_id)
        try:
            self._reset_for_client(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
        except h2.exceptions.StreamClosedError:
            pass

    def _on_stream_refused(self, event: events.StreamRefused) -> None:
        # Past the stream limit (settings.py), reset already: it costs as _reset_for_client's do.
        self._charge(1, _RESETS_PAST_BUDGET)

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        if self.drains.ended(event.stream_id):
            return  # its response was complete: the reset cost nothing
        self.state.h2_resets += 1
        self._drop_stream(event.stream_id)
        # Rapid reset (CVE-2023-44487): streams opened only to be reset cost an app call each.
        if not self.ledger.stream_reset(self.loop.time()):  # type: ignore[union-attr]
            self.calm_down("too many streams reset by the client")

    def _drop_stream(self, stream_id: int) -> None:
        """The client reset the stream, or it is gone: its app sees a disconnect."""
        stream = self._pop_stream(stream_id)
        if stream is not None:
            stream.exchange.feed_disconnect()
            if stream.session is not None:
                stream.session.feed_disconnect()
            wake(stream)
            self._check_idle()

    def _on_window_updated(self, event: h2.events.WindowUpdated | h2.events.RemoteSettingsChanged) -> None:
        for stream_id, stream in list(self.streams.items()):
            if stream.pending:
                stream.stalled_since = None
                self._send_pending(stream_id, stream)
                if not stream.pending and not self.socket_paused:
                    wake(stream)

    def _on_settings_changed(self, event: h2.events.RemoteSettingsChanged) -> None:
        extensions = self.base_scope["extensions"]
        if self.conn.remote_settings.enable_push:
            extensions[PUSH_EXTENSION] = {}
        else:
            extensions.pop(PUSH_EXTENSION, None)
        self._on_window_updated(event)

    def _on_connection_terminated(self, event: h2.events.ConnectionTerminated) -> None:
        error_logger.debug("GOAWAY from %s (error code %s)", _client_text(self), event.error_code)
        self.goaway_sent = True
        if event.error_code or not self.streams:
            self._close()
            return
        # RFC 9113 section 6.8: the streams already open still get their responses.
        self.conn.keep_serving_after_goaway()

    # -- connection management ----------------------------------------------------------

    def calm_down(self, reason: str) -> None:
        """The client is abusing the connection: GOAWAY ENHANCE_YOUR_CALM, and its address is
        refused for a while."""
        if self.ledger is not None:
            self.state.guard.offence(self.ledger, self.loop.time(), reason)
        self.refuse(ErrorCodes.ENHANCE_YOUR_CALM, reason)

    def refuse(self, error_code: ErrorCodes, reason: str) -> None:
        """End the connection at once with GOAWAY, e.g. for RFC 9113 section 9.2."""
        error_logger.debug("refusing HTTP/2 from %s: %s", _client_text(self), reason)
        self.goaway_sent = True
        self.conn.close_connection(error_code)
        self._flush()
        self._close(_ERROR_GRACE)

    def shutdown(self) -> None:
        """The server stops: GOAWAY, and close once the streams in flight are done. A
        connection with no stream yet is left to open its first ones (data_received): its
        client connected to send them."""
        if self.closing:
            return
        if not self.conn.highest_inbound_stream_id and not self.goaway_sent:
            self.goaway_after_read = True
            return
        self._go_away()

    def _go_away(self) -> None:
        """GOAWAY with the last stream we will serve; close once those are done."""
        if self.closing:
            return
        if not self.goaway_sent:
            self.goaway_sent = True
            # Written by hand: h2's close_connection() would also close its state machine, and
            # the streams in flight still have responses to send.
            self._flush()
            if self.transport is not None:
                self.transport.write(goaway_frame(self.conn.highest_inbound_stream_id, 0))
        self.drains.stop_all(self.conn)
        self._flush()
        for stream in list(self.streams.values()):
            if stream.session is not None:
                stream.session.shutdown()  # 1001 to open WebSockets
        if not self.streams:
            self._close()

    def check_timeouts(self, now: float) -> None:
        state = self.state
        if self.stall.overdue(self.transport, now, state.send_timeout):
            error_logger.debug("dropping %s: it read nothing for --send-timeout", _client_text(self))
            self.force_close()
            return
        if self.closing:
            return
        if self.idle_since is not None and now - self.idle_since > state.keep_alive_timeout:
            self._go_away()
            return
        if self.header_block_since is not None and now - self.header_block_since > state.header_timeout:
            # A header block must arrive whole before any other frame (RFC 9113 section
            # 6.10): one trickled in blocks the connection.
            self.refuse(ErrorCodes.ENHANCE_YOUR_CALM, "header block not complete within --header-timeout")
            return
        if self.drains.expire(self.conn, now):
            self._flush()
        # A peer that keeps a window shut holds an app and its data: zero-window stalls end
        # the connection after --send-timeout (0: never).
        send_timeout = state.send_timeout
        stalled_before = now - send_timeout
        for stream in list(self.streams.values()):
            if send_timeout and stream.stalled_since is not None and stream.stalled_since < stalled_before:
                self.refuse(ErrorCodes.FLOW_CONTROL_ERROR, "no flow-control window granted in time")
                return
            if stream.session is None:
                stream.exchange.check_timeouts(
                    now, stream.opened_at, state.body_timeout, state.response_timeout
                )

    def force_close(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.abort()

    def _close(self, grace: float | None = None) -> None:
        """Close once what is buffered has gone; after a connection error, whose GOAWAY need
        not be waited for long, drop the connection after `grace` seconds anyway. (A client
        that reads nothing at all is dropped after --send-timeout, see `check_timeouts`.)"""
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()
            if grace is not None:
                self.abort_handle = self.loop.call_later(grace, self.transport.abort)


def _client_text(protocol: H2Protocol) -> str:
    return address_text(protocol.base_scope.get("client"))


_HANDLERS: dict[type, Any] = {
    h2.events.RequestReceived: H2Protocol._on_request,
    h2.events.DataReceived: H2Protocol._on_data,
    h2.events.StreamEnded: H2Protocol._on_stream_ended,
    h2.events.TrailersReceived: H2Protocol._on_trailers,
    h2.events.StreamReset: H2Protocol._on_stream_reset,
    events.StreamRefused: H2Protocol._on_stream_refused,
    h2.events.WindowUpdated: H2Protocol._on_window_updated,
    h2.events.RemoteSettingsChanged: H2Protocol._on_settings_changed,
    h2.events.ConnectionTerminated: H2Protocol._on_connection_terminated,
    # The fast engine's events (events.py), shaped as h2's.
    events.RequestReceived: H2Protocol._on_request,
    events.DataReceived: H2Protocol._on_data,
    events.StreamEnded: H2Protocol._on_stream_ended,
    events.TrailersReceived: H2Protocol._on_trailers,
    events.StreamReset: H2Protocol._on_stream_reset,
    events.WindowUpdated: H2Protocol._on_window_updated,
    events.RemoteSettingsChanged: H2Protocol._on_settings_changed,
    events.ConnectionTerminated: H2Protocol._on_connection_terminated,
}
