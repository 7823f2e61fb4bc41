"""The response side of an HTTP/2 connection: the calls an exchange makes on its carrier
(head, body, trailers, early hints, push, drain) and sending what the peer's flow-control
windows allow, keeping the rest, in the app's chunks, until they open.

`StreamResponses` is a part of `H2Protocol` (protocol.py), kept in a module of its own: the
connection class reads frames and manages the connection, this part writes streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import h2.connection
import h2.exceptions
from h2.errors import ErrorCodes

from ..asgi import Exchange, ResponseFramingError
from ..logs import error_logger
from .drain import Drains
from .fields import plain_fields, response_fields
from .requests import RequestHead, pushed_request
from .stream import Stream, wake

if TYPE_CHECKING:
    from ..guards import Ledger
    from ..state import ServerState

_NO_BODY_STATUS = frozenset((204, 304))
# Response data held in h2's output buffer before it is written out without waiting for the end
# of the loop's turn.
_FLUSH_AT = 64 * 1024
# Response data below which a flush joins its frames into one bytes: for small responses one
# copy is cheaper than a gather write.
_GATHER_BELOW = 16 * 1024


class StreamResponses:
    """The carrier calls and the sending half of `H2Protocol`."""

    state: ServerState
    conn: h2.connection.H2Connection
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    streams: dict[int, Stream]
    drains: Drains
    ledger: Ledger | None
    closing: bool
    goaway_sent: bool
    socket_paused: bool
    flush_scheduled: bool
    grant_at: int
    unflushed: int
    headers_held: int
    idle_since: float | None

    if TYPE_CHECKING:  # H2Protocol's own, which this part calls
        def _drop_stream(self, stream_id: int) -> None: ...

        def _open_stream(self, stream_id: int, head: RequestHead, ended: bool) -> None: ...

        def _close(self, grace: float | None = None) -> None: ...

    # -- the exchange's carrier calls ----------------------------------------------------

    def write_head(self, exchange: Exchange, status: int, headers: Iterable[Any], body: bytes,
                   more_body: bool) -> None:
        stream_id = exchange.carrier_key
        stream = self.streams.get(stream_id)
        if stream is None or self.closing:
            return
        state = self.state
        out, length = response_fields(status, headers, state.head_fields, state.date_value)
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
        self._open_stream(promised, RequestHead(request), True)
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
            # Granted in batches of a quarter of the window: the client keeps at least three
            # quarters to send in, and a WebSocket of small messages is not answered with a
            # WINDOW_UPDATE frame for each.
            owed = stream.window_owed + nbytes
            if owed < self.grant_at:
                stream.window_owed = owed
                return
            stream.window_owed = 0
            self._grant(exchange.carrier_key, owed)
            self.flush_soon()

    def abort(self, exchange: Exchange, code: ErrorCodes = ErrorCodes.INTERNAL_ERROR) -> None:
        stream_id = exchange.carrier_key
        stream = self._pop_stream(stream_id)
        exchange.feed_disconnect()
        if stream is not None and not self.closing:
            wake(stream)
            try:
                self.conn.reset_stream(stream_id, code)
            except h2.exceptions.StreamClosedError:
                pass
            self._flush()
            self._check_idle()

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
        if not stream.pending and (body or not more_body) and len(body) <= self.conn.max_outbound_frame_size:
            # Nothing waits before it and it fits one frame: sent now, unless out of window.
            try:
                self.conn.send_data(stream_id, body, end_stream=not more_body)
            except h2.exceptions.FlowControlError:
                pass  # it waits for window below
            except h2.exceptions.ProtocolError:  # the stream is closed
                self._drop_stream(stream_id)
                return
            else:
                self.unflushed += len(body)
                if self.ledger is not None:
                    self.ledger.earn(1)  # its DATA frame may bring a WINDOW_UPDATE back
                if not more_body:
                    self._response_sent(stream_id, stream)
                return
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
                    self.unflushed += len(chunk)
                    if end:
                        self._response_sent(stream_id, stream)
                        return
                else:
                    view = memoryview(chunk)
                    conn.send_data(stream_id, view[:size])
                    self.unflushed += size
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
            # The rest of the body is not needed, but its frames are still checked (drain.py).
            self.drains.start(self.conn, stream_id, self.loop.time() + self.state.body_timeout)
            stream.exchange.feed_end()
        self._forget(stream_id)

    def _forget(self, stream_id: int) -> None:
        stream = self._pop_stream(stream_id)
        if stream is not None:
            wake(stream)
            if stream.session is not None:
                stream.session.feed_disconnect()  # e.g. after a denial: the app's receive ends
        self._check_idle()

    def _pop_stream(self, stream_id: int) -> Stream | None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            self.headers_held -= stream.header_size
        return stream

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
        that is one system call instead of one per response. Past `_FLUSH_AT` bytes they leave
        at once, so that a full socket pauses the senders (an app sending in a loop never
        yields to the loop otherwise, and h2's buffer would take all it sends)."""
        if self.unflushed >= _FLUSH_AT:
            self._flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        bodies = self.unflushed
        self.unflushed = 0
        chunks = self.conn.take_output()
        if not chunks or self.transport is None or self.closing:
            return
        if bodies >= _GATHER_BELOW:
            # Frame headers and the app's body chunks go out as they are, the bodies uncopied:
            # one writev on a plain socket. Over TLS too: joining them first measured at half
            # the MB/s of a 1 MiB download (h2load -c4 -m4).
            self.bytes_out += sum(map(len, chunks))
            self.transport.writelines(chunks)
        else:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.bytes_out += len(data)
            self.transport.write(data)
