"""HTTP/2's side of a WebSocket (RFC 8441): an extended CONNECT stream carries the frames.

The stream's DATA frames are the WebSocket's bytes both ways, under HTTP/2 flow control: what
the session sends waits for window like any response body, and window for what the client
sends is granted as soon as it arrives unless the session has paused reading (an app that does
not keep up), so a slow app stops the client, not the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h2.errors import ErrorCodes

from ..asgi import HEAD_PENDING, START
from ..ws.session import PING_FLOOD, WebSocketSession
from .fields import response_fields
from .stream import Stream, wake

if TYPE_CHECKING:
    from .protocol import H2Protocol


class H2WebSocket:
    """The session's carrier on one stream."""

    def __init__(self, protocol: H2Protocol, stream_id: int, stream: Stream) -> None:
        self.protocol = protocol
        self.stream_id = stream_id
        self.stream = stream
        self.reading_paused = False
        self.closing = False  # the session is over: nothing more is read
        self.unacked = 0  # DATA received while reading is paused, not yet granted back
        # DATA before the 200, kept for the session as HTTP/1.1 keeps bytes before the 101;
        # its window is granted only once it is read, which bounds it.
        self.early: list[bytes] = []

    def accept(self, session: WebSocketSession, headers: list[tuple[bytes, bytes]]) -> None:
        protocol = self.protocol
        if self.stream_id not in protocol.streams or protocol.closing:
            return
        state = protocol.state
        fields, _ = response_fields(200, headers, state.head_fields, state.date_value)
        protocol.conn.send_headers(self.stream_id, fields)
        session.exchange.switched(200)
        protocol.flush_soon()
        if self.early:
            early, self.early = b"".join(self.early), []
            session.feed_data(early)
            if not self.reading_paused:
                self.protocol.body_consumed(session.exchange, self.unacked)
                self.unacked = 0

    @property
    def write_paused(self) -> bool:
        """What is sent now waits: the stream is out of window, or the socket's buffer is full."""
        return bool(self.stream.pending) or self.protocol.socket_paused

    def writable(self) -> None:
        """Called by `wake`: what the stream had pending has gone (or the stream has). The
        session may write (a pong it owes), so it is told on the next turn of the loop, not
        from inside the protocol's walk over its streams."""
        session = self.stream.session
        if session is not None:
            self.protocol.loop.call_soon(session.writable)

    def send_frames(self, session: WebSocketSession, data: bytes) -> None:
        self.protocol.write_body(session.exchange, data, True)

    async def drain(self, session: WebSocketSession) -> None:
        await self.protocol.drain(session.exchange)

    def pause_reading(self, session: WebSocketSession) -> None:
        self.reading_paused = True

    def resume_reading(self, session: WebSocketSession) -> None:
        if self.closing:
            return
        self.reading_paused = False
        if self.unacked:
            self.protocol.body_consumed(session.exchange, self.unacked)
            self.unacked = 0

    def charge(self, session: WebSocketSession, frames: int) -> bool:
        protocol = self.protocol
        if protocol.ledger is None:
            return True  # the connection is gone
        # Each is answered in a DATA frame, which earns back the WINDOW_UPDATE owed for it
        # (`Ledger.earn`): charged once more, a ping costs at least what it costs over
        # HTTP/1.1, even from a client that grants a huge window and sends no WINDOW_UPDATE.
        return protocol.state.guard.charge(protocol.ledger, frames + 1, protocol.loop.time(), PING_FLOOD)

    def abort(self, session: WebSocketSession) -> None:
        """A peer that does not answer: the stream is reset, what it has not read dropped."""
        self.closing = True
        self.protocol.abort(session.exchange, ErrorCodes.CANCEL)

    def close(self, session: WebSocketSession) -> None:
        """END_STREAM after whatever is still waiting for window (the close frame); before
        any response head (the client left during the handshake), a reset instead. No more
        window is granted: what the client still sends would only be discarded."""
        self.closing = True
        if session.exchange.state is START or session.exchange.state is HEAD_PENDING:
            self.protocol.abort(session.exchange, ErrorCodes.CANCEL)
            return
        self.protocol.write_body(session.exchange, b"", False)
        wake(self.stream)  # an app blocked on window learns the WebSocket is closed

    def data_received(self, data: bytes) -> None:
        session = self.stream.session
        assert session is not None
        if session.connection is None:
            self.early.append(data)
            self.unacked += len(data)
            return
        if self.reading_paused or self.closing:
            self.unacked += len(data)
        else:
            self.protocol.body_consumed(session.exchange, len(data))
        session.feed_data(data)
