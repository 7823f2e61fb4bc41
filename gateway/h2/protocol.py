"""The HTTP/2 connection: h2 (python-hyper) for the wire, one exchange per stream.

Streams map onto the same `Exchange` HTTP/1.1 uses. What is HTTP/2's own lives here: the
stream table, flow control both ways (request-body window granted as the app reads, response
data sent as the peer's windows allow, the app's `send` waiting meanwhile), trailers, GOAWAY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from ..asgi import (
    EARLY_HINT_EXTENSION,
    PUSH_EXTENSION,
    TRAILERS_EXTENSION,
    Exchange,
    ResponseFramingError,
    scope_address,
)
from ..guards import Ledger
from ..logs import address_text, error_logger
from ..state import ServerState
from ..tls.scope import TLSInfo
from .errors import precise_error_code
from .fields import malformed_request, plain_fields, response_fields
from .requests import open_stream, pushed_request
from .settings import refuse_excess_streams_alone, server_connection
from .stream import Stream, wake

_NO_BODY_STATUS = frozenset((204, 304))
# Connection-level window granted at once for DATA received: stream windows are what bound
# the memory a client can make us hold, so the connection window never stalls other streams.
_CONNECTION_ACK_THRESHOLD = 32 * 1024


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection, over TLS (ALPN h2) or plain (h2c)."""

    # The exchange always asks `drain` after a write: a stream may be out of window even when
    # the socket is not, and `drain` returns at once when neither holds it back.
    write_paused = True

    def __init__(self, state: ServerState, tls_info: TLSInfo | None) -> None:
        self.state = state
        self.tls_info = tls_info
        self.loop = asyncio.get_running_loop()
        self.conn = server_connection(state.config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.closing = False
        self.goaway_sent = False
        self.socket_paused = False
        self.flush_scheduled = False
        self.connection_unacked = 0
        self.ledger: Ledger | None = None
        self.idle_since: float | None = None
        self.base_scope: dict[str, Any] = {}

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.BaseTransport, preamble: bytes = b"", upgrade: Any = None, *,
        ledger: Ledger,
    ) -> None:
        """`preamble`: bytes already read (h2c); `upgrade`: the HTTP/1.1 request that asked for
        `Upgrade: h2c`, served as stream 1 (RFC 7540 section 3.2); `ledger`: the client's, from
        the door (admission.py) or from HTTP/1.1 when the connection began as that."""
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        self.ledger = ledger
        ssl_object = transport.get_extra_info("ssl_object")
        extensions: dict[str, Any] = {TRAILERS_EXTENSION: {}, EARLY_HINT_EXTENSION: {}}
        if ssl_object is not None and self.tls_info is not None:
            extensions["tls"] = self.tls_info.extension(ssl_object)
        self.base_scope = {
            "server": scope_address(transport.get_extra_info("sockname")),
            "client": scope_address(transport.get_extra_info("peername")),
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
            self._open_stream(1, upgrade.request_headers(), True)
            for chunk in upgrade.body:
                self.streams[1].exchange.feed_body(chunk)
        refuse_excess_streams_alone(self.conn, self.state.config)
        self._flush()
        if preamble:
            self.data_received(preamble)
        if state.shutting_down:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            error_logger.debug("HTTP/2 protocol error from %s: %s", _client_text(self), exc)
            code = precise_error_code(exc)
            if code is None:
                self._flush()
            else:
                self.conn.data_to_send()  # h2's GOAWAY says PROTOCOL_ERROR; send the RFC's code
                goaway = GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id,
                                     error_code=code)
                if self.transport is not None:
                    self.transport.write(goaway.serialize())
            self._close()
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
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.socket_paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()
        for stream in self.streams.values():
            if not stream.pending:
                wake(stream)

    # -- h2 events ----------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        if self.goaway_sent or len(self.streams) >= self.state.config.h2_max_concurrent_streams:
            self.conn.reset_stream(event.stream_id, ErrorCodes.REFUSED_STREAM)
            return
        problem = malformed_request(event.headers)
        if problem is not None:
            # RFC 9113 section 8.1.1: a malformed request is a stream error.
            error_logger.debug("malformed HTTP/2 request from %s: %s", _client_text(self), problem)
            self.conn.reset_stream(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
            return
        self._open_stream(event.stream_id, event.headers, event.stream_ended is not None)

    def _open_stream(self, stream_id: int, request_headers: Iterable[tuple[bytes, bytes]],
                     ended: bool) -> None:
        opened = open_stream(self, stream_id, request_headers, ended)
        if opened is None:
            self.flush_soon()
            return
        stream, app_call = opened
        self.streams[stream_id] = stream
        self.ledger.opened += 1  # type: ignore[union-attr]
        self.idle_since = None
        self.state.start_app(app_call)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        flow = event.flow_controlled_length
        self.connection_unacked += flow
        if self.connection_unacked >= _CONNECTION_ACK_THRESHOLD:
            self.conn.increment_flow_control_window(self.connection_unacked)
            self.connection_unacked = 0
        stream = self.streams.get(event.stream_id)
        if stream is None:
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

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        self._drop_stream(event.stream_id)
        # Rapid reset (CVE-2023-44487): streams opened only to be reset cost an app call each.
        if not self.ledger.stream_reset(self.loop.time()):  # type: ignore[union-attr]
            self.calm_down("too many streams reset by the client")

    def _drop_stream(self, stream_id: int) -> None:
        """The client reset the stream, or it is gone: its app sees a disconnect."""
        stream = self.streams.pop(stream_id, None)
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
        # RFC 9113 section 6.8: the streams already open still get their responses, but h2
        # closes its state machine on any GOAWAY received; reopen it for them.
        self.conn.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN

    # -- the exchange's carrier calls ----------------------------------------------------

    def write_head(self, exchange: Exchange, status: int, headers: Iterable[Any], body: bytes,
                   more_body: bool) -> None:
        stream_id = exchange.carrier_key
        stream = self.streams.get(stream_id)
        if stream is None or self.closing:
            return
        state = self.state
        out, length = response_fields(status, headers, bool(state.server_line), state.date_value)
        stream.remaining = length
        if status in _NO_BODY_STATUS:
            stream.no_body = True
        elif not more_body and stream.remaining is None and not stream.no_body:
            out.append((b"content-length", str(len(body)).encode()))
            stream.remaining = len(body)
        end = not more_body and (stream.no_body or not body)
        try:
            self.conn.send_headers(stream_id, out, end_stream=end)
        except h2.exceptions.ProtocolError:
            self._drop_stream(stream_id)
            return
        if end:
            self._response_sent(stream_id, stream)
        else:
            self._write(stream_id, stream, body, more_body)
        self.flush_soon()

    def write_body(self, exchange: Exchange, body: bytes, more_body: bool) -> None:
        stream_id = exchange.carrier_key
        stream = self.streams.get(stream_id)
        if stream is None or self.closing:
            return
        self._write(stream_id, stream, body, more_body)
        self.flush_soon()

    def write_trailers(self, exchange: Exchange, headers: Iterable[Any]) -> None:
        stream_id = exchange.carrier_key
        stream = self.streams.get(stream_id)
        if stream is None or self.closing:
            return
        try:
            self.conn.send_headers(stream_id, plain_fields(headers), end_stream=True)
        except h2.exceptions.ProtocolError:
            self._drop_stream(stream_id)
            return
        self._response_sent(stream_id, stream)
        self.flush_soon()

    def send_early_hint(self, exchange: Exchange, links: list[bytes]) -> None:
        stream = self.streams.get(exchange.carrier_key)
        if stream is None or self.closing:
            return
        headers = [(b":status", b"103")]
        headers.extend((b"link", link) for link in links)
        self.conn.send_headers(exchange.carrier_key, headers)
        self.flush_soon()

    def push(self, exchange: Exchange, path: str, headers: list[Any]) -> None:
        """PUSH_PROMISE a GET for `path`, then serve it with the app like any request."""
        stream_id = exchange.carrier_key
        stream = self.streams.get(stream_id)
        if stream is None or self.closing or self.goaway_sent:
            return
        if not self.conn.remote_settings.enable_push:
            return
        request = pushed_request(exchange.scope, path, headers)
        promised = self.conn.get_next_available_stream_id()
        try:
            self.conn.push_stream(stream_id, promised, request)
        except h2.exceptions.ProtocolError as exc:
            error_logger.debug("server push refused: %s", exc)
            return
        self._open_stream(promised, request, True)
        self._flush()

    async def drain(self, exchange: Exchange) -> None:
        stream = self.streams.get(exchange.carrier_key)
        if stream is None or (not stream.pending and not self.socket_paused):
            return
        waiter = stream.waiter
        if waiter is None or waiter.done():  # done: a send cancelled while it waited
            waiter = stream.waiter = self.loop.create_future()
        await waiter

    def send_continue(self, exchange: Exchange) -> None:
        """HTTP/2 clients do not wait for 100 (Continue) before sending a body."""

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        stream = self.streams.get(exchange.carrier_key)
        if stream is not None and (not exchange.body_complete or stream.websocket is not None) \
                and not self.closing:
            self._grant(exchange.carrier_key, nbytes)
            self.flush_soon()

    def abort(self, exchange: Exchange, code: ErrorCodes = ErrorCodes.INTERNAL_ERROR) -> None:
        stream_id = exchange.carrier_key
        stream = self.streams.pop(stream_id, None)
        exchange.feed_disconnect()
        if stream is not None and not self.closing:
            wake(stream)
            try:
                self.conn.reset_stream(stream_id, code)
            except h2.exceptions.StreamClosedError:
                pass
            self._flush()
            self._check_idle()

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
        self._close()

    def shutdown(self) -> None:
        """Graceful: GOAWAY with the last stream we will serve; close once those are done."""
        if self.closing:
            return
        if not self.goaway_sent:
            self.goaway_sent = True
            # Written by hand: h2's close_connection() would also close its state machine, and
            # the streams in flight still have responses to send.
            self._flush()
            goaway = GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id)
            if self.transport is not None:
                self.transport.write(goaway.serialize())
        for stream in list(self.streams.values()):
            if stream.session is not None:
                stream.session.shutdown()  # 1001 to open WebSockets
        if not self.streams:
            self._close()

    def check_timeouts(self, now: float) -> None:
        if self.idle_since is not None and now - self.idle_since > self.state.keep_alive_timeout:
            self.shutdown()
            return
        # A peer that keeps a window shut holds an app and its data: zero-window stalls end
        # the connection after --send-timeout.
        stalled_before = now - self.state.config.send_timeout
        for stream in self.streams.values():
            if stream.stalled_since is not None and stream.stalled_since < stalled_before:
                self.refuse(ErrorCodes.FLOW_CONTROL_ERROR, "no flow-control window granted in time")
                return

    def force_close(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.abort()

    # -- sending -------------------------------------------------------------------------

    def _write(self, stream_id: int, stream: Stream, body: bytes, more_body: bool) -> None:
        if stream.no_body:
            if not more_body:
                self.conn.end_stream(stream_id)
                self._response_sent(stream_id, stream)
            return
        if stream.remaining is not None:
            stream.remaining -= len(body)
            if stream.remaining < 0 or (not more_body and stream.remaining):
                self.abort(stream.exchange)
                raise ResponseFramingError(
                    "response body does not match its Content-Length"
                )
        stream.pending_end = not more_body
        if body:
            stream.pending.append(body)
            stream.pending_size += len(body)
        if len(stream.pending) == 1 or not body:
            self._send_pending(stream_id, stream)

    def _send_pending(self, stream_id: int, stream: Stream) -> None:
        """Send what the windows allow now; keep the rest, as chunks, until a WINDOW_UPDATE."""
        conn = self.conn
        pending = stream.pending
        sent = 0
        try:
            while pending:
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:
                    if stream.stalled_since is None:
                        stream.stalled_since = self.loop.time()
                    return
                chunk = pending[0]
                sent += 1
                if size >= len(chunk):
                    pending.popleft()
                    stream.pending_size -= len(chunk)
                    end = stream.pending_end and not pending
                    conn.send_data(stream_id, chunk, end_stream=end)
                    if end:
                        self._response_sent(stream_id, stream)
                        return
                else:
                    view = memoryview(chunk)
                    conn.send_data(stream_id, view[:size])
                    pending[0] = view[size:]
                    stream.pending_size -= size
            if stream.pending_end:
                conn.end_stream(stream_id)
                self._response_sent(stream_id, stream)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._drop_stream(stream_id)
        finally:
            if sent and self.ledger is not None:
                self.ledger.earn(sent)  # each DATA frame may bring a WINDOW_UPDATE back

    def _response_sent(self, stream_id: int, stream: Stream) -> None:
        if not stream.exchange.body_complete:
            # RFC 9113 section 8.1: the response is complete, the rest of the body is not needed.
            try:
                self.conn.reset_stream(stream_id, ErrorCodes.NO_ERROR)
            except h2.exceptions.StreamClosedError:
                pass
            stream.exchange.feed_end()
        self._forget(stream_id)

    def _forget(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            wake(stream)
            if stream.session is not None:
                stream.session.feed_disconnect()  # e.g. after a denial: the app's receive ends
        self._check_idle()

    def _check_idle(self) -> None:
        if not self.streams:
            self.idle_since = self.loop.time()
            if self.goaway_sent:
                self._flush()
                self._close()

    def _grant(self, stream_id: int, nbytes: int) -> None:
        if nbytes <= 0:
            return  # an empty DATA frame (RFC 9113 section 6.1 allows it) owes no window
        try:
            self.conn.increment_flow_control_window(nbytes, stream_id=stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def flush_soon(self) -> None:
        """Responses finished in one turn of the loop leave in one write: with many streams
        that is one system call instead of one per response."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closing:
            self.transport.write(data)

    def _close(self) -> None:
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()


def _client_text(protocol: H2Protocol) -> str:
    return address_text(protocol.base_scope.get("client"))


_HANDLERS: dict[type, Any] = {
    h2.events.RequestReceived: H2Protocol._on_request,
    h2.events.DataReceived: H2Protocol._on_data,
    h2.events.StreamEnded: H2Protocol._on_stream_ended,
    h2.events.StreamReset: H2Protocol._on_stream_reset,
    h2.events.WindowUpdated: H2Protocol._on_window_updated,
    h2.events.RemoteSettingsChanged: H2Protocol._on_settings_changed,
    h2.events.ConnectionTerminated: H2Protocol._on_connection_terminated,
}
