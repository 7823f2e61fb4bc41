"""WebSocket frames of one connection, permessage-deflate included, one pass per frame.

wsproto's frame layer is general (any extension, frames handed up piece by piece as they
arrive, a generator per step) and on the echo benchmarks it was most of the server's time per
message, with or without deflate. `FrameConnection` does the same work directly: it offers the
part of `wsproto.connection.Connection` the session uses (`receive_data`, `events`, `send`,
`state`) and gives the same events, close codes and frames; the tests feed both the same bytes,
wsproto with its own permessage-deflate as the reference for ours (`deflate.MessageDeflate`).
Events are tuples keyed by opcode, not wsproto's frozen dataclasses: one of those costs about
half a microsecond to make, a noticeable part of an echo's time.

The commonest frames (whole text and binary messages, no extension bits) are read by
`_frames.parse_plain` in C where it is built; everything else, and every error, by `_parse`
in Python, which is the reference the tests hold the C reader to; `_frames.unmask` unmasks
its payloads (`_unmask_py` is its twin). Measured on the echo benchmark (bench/, the ws row).

Two differences are deliberate: a frame longer than `max_size` is refused with 1009 from its
header, instead of being buffered first; and a compressed message is refused with 1009 while
it inflates past `max_size`, where wsproto would inflate it all.
"""

from __future__ import annotations

import zlib
from codecs import getincrementaldecoder
from types import ModuleType
from typing import Any

from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from .deflate import MessageDeflate, MessageTooBig

try:
    from . import _frames as compiled_frames
except ImportError:  # not built (no C compiler): Python reads and unmasks every frame
    compiled_frames = None

_CONTINUATION = 0x0
# Opcodes, and the kinds of event `FrameConnection.events` gives:
#   (TEXT, str, message_finished), (BINARY, bytes, message_finished), (PING, payload),
#   (PONG, payload), and (CLOSE, code, reason) for the peer's close or, while the state is still
#   OPEN, for a frame we refuse (the close we are to send).
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
Event = tuple[Any, ...]
_RSV1 = 0x40  # RFC 7692 section 6: set on the first frame of a compressed message
# RFC 6455 section 7.4: what a peer may put in a close frame.
_LOCAL_ONLY = frozenset((1005, 1006, 1015))
_DEFINED = frozenset(reason.value for reason in CloseReason) - _LOCAL_ONLY
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED


class _ParseFailed(Exception):
    def __init__(self, reason: str, code: CloseReason = CloseReason.PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.code = code


def _unmask_py(buffer: bytes | bytearray, start: int, end: int) -> bytes:
    """`buffer[start:end]` unmasked with the key in the 4 bytes before it."""
    size = end - start
    key = (buffer[start - 4:start] * (size // 4 + 1))[:size]
    payload = int.from_bytes(buffer[start:end], "little") ^ int.from_bytes(key, "little")
    return payload.to_bytes(size, "little")


def _frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 65536:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big") + payload


class FrameConnection:
    """The server side of a WebSocket, with permessage-deflate when `deflate` is given."""

    def __init__(self, max_size: int, deflate: MessageDeflate | None = None,
                 compiled: ModuleType | None = compiled_frames) -> None:
        """`compiled` is `_frames` or, for the Python parser alone (the reference), None."""
        self.max_size = max_size
        self.deflate = deflate
        self._plain = compiled.parse_plain if compiled is not None else None
        self._unmask = compiled.unmask if compiled is not None else _unmask_py
        self.state = _OPEN
        self._buffer = bytearray()
        self._events: list[Event] = []
        self._message_opcode: int | None = None  # of the fragmented message under way
        self._compressed = False  # the fragmented message under way came with RSV1
        self._decoder: Any = None  # UTF-8, across the fragments of a text message
        self._failed = False

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def receive_data(self, data: bytes | None) -> None:
        if data is None:
            self._events.append((CLOSE, CloseReason.ABNORMAL_CLOSURE, ""))
            self.state = _CLOSED
            return
        if self.state is _CLOSED:
            raise LocalProtocolError("Connection already closed.")
        if self._failed:
            return
        buffer = self._buffer
        # Usually a read holds whole frames and nothing waits: parse it where it lies.
        pending: bytes | bytearray = data
        if buffer:
            buffer += data
            pending = buffer
        try:
            consumed = self._parse(pending)
        except _ParseFailed as exc:
            self._failed = True
            buffer.clear()
            self._events.append((CLOSE, exc.code, str(exc)))
            return
        if pending is buffer:
            del buffer[:consumed]
        elif consumed < len(data):
            buffer += data[consumed:]

    def _parse(self, buffer: bytes | bytearray) -> int:
        """Turn every complete frame in `buffer` into events; return the bytes used."""
        position = 0
        if self._plain is not None and self._message_opcode is None:
            position = self._plain(buffer, 0, self.max_size, self._events)
        available = len(buffer)
        while available - position >= 2:
            first = buffer[position]
            second = buffer[position + 1]
            opcode = first & 0x0F
            final = first & 0x80
            rsv = first & 0x70
            if rsv and (rsv != _RSV1 or self.deflate is None):
                raise _ParseFailed("reserved bits set, and no extension uses them")
            if not second & 0x80:
                raise _ParseFailed("server received unexpected unmasked frame")
            size = second & 0x7F
            header = 6
            if rsv and (opcode & 0x08 or opcode == _CONTINUATION):
                # RFC 7692 section 6.1: only a message's first frame says it is compressed.
                raise _ParseFailed("RSV1 set on a control or continuation frame")
            if opcode & 0x08:
                if opcode not in (CLOSE, PING, PONG):
                    raise _ParseFailed(f"Invalid opcode {opcode:#x}")
                if not final:
                    raise _ParseFailed("Invalid attempt to fragment control frame")
                if size > 125:
                    raise _ParseFailed("Control frame with payload len > 125")
            elif opcode > BINARY:
                raise _ParseFailed(f"Invalid opcode {opcode:#x}")
            elif size == 126:
                if available - position < 4:
                    break
                size = int.from_bytes(buffer[position + 2:position + 4], "big")
                if size < 126:
                    raise _ParseFailed("Payload length used 2 bytes when 1 would have sufficed")
                header = 8
            elif size == 127:
                if available - position < 10:
                    break
                size = int.from_bytes(buffer[position + 2:position + 10], "big")
                if size < 65536:
                    raise _ParseFailed("Payload length used 8 bytes when 2 would have sufficed")
                if size >> 63:
                    raise _ParseFailed("8-byte payload length with non-zero MSB")
                header = 14
            if size > self.max_size:
                raise _ParseFailed("frame larger than --ws-max-size", CloseReason.MESSAGE_TOO_BIG)
            end = position + header + size
            if end > available:
                break
            payload = b""
            if size:
                start = position + header
                payload = self._unmask(buffer, start, end)
            position = end
            if opcode & 0x08:
                self._control(opcode, payload)
                if opcode == CLOSE:
                    break  # nothing after a close frame is read
            else:
                self._data(opcode, payload, bool(final), bool(rsv))
        return position

    def _data(self, opcode: int, payload: bytes, final: bool, compressed: bool) -> None:
        if opcode == _CONTINUATION:
            if self._message_opcode is None:
                raise _ParseFailed("unexpected CONTINUATION")
            opcode = self._message_opcode
            compressed = self._compressed
        elif self._message_opcode is not None:
            raise _ParseFailed(f"expected CONTINUATION, got {opcode:#x}")
        self._message_opcode = None if final else opcode
        self._compressed = compressed
        if compressed:
            payload = self._inflate(payload, final)
        if opcode == BINARY:
            self._events.append((BINARY, payload, final))
            return
        try:
            if final and self._decoder is None:
                text = payload.decode("utf-8")
            else:
                if self._decoder is None:
                    self._decoder = getincrementaldecoder("utf-8")()
                text = self._decoder.decode(payload, final)
                if final:
                    self._decoder = None
        except UnicodeDecodeError as exc:
            raise _ParseFailed(str(exc), CloseReason.INVALID_FRAME_PAYLOAD_DATA) from None
        self._events.append((TEXT, text, final))

    def _inflate(self, payload: bytes, final: bool) -> bytes:
        assert self.deflate is not None
        try:
            return self.deflate.inflate(payload, final)
        except MessageTooBig:
            raise _ParseFailed("message larger than --ws-max-size", CloseReason.MESSAGE_TOO_BIG) from None
        except zlib.error as exc:
            raise _ParseFailed(f"corrupt deflate data: {exc}",
                               CloseReason.INVALID_FRAME_PAYLOAD_DATA) from None

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode != CLOSE:
            self._events.append((opcode, payload))
        else:
            code, reason = self._close_payload(payload)
            closing = self.state is ConnectionState.LOCAL_CLOSING
            self.state = _CLOSED if closing else ConnectionState.REMOTE_CLOSING
            self._events.append((CLOSE, code, reason))

    @staticmethod
    def _close_payload(payload: bytes) -> tuple[int, str]:
        if not payload:
            return CloseReason.NO_STATUS_RCVD, ""
        if len(payload) == 1:
            raise _ParseFailed("CLOSE with 1 byte payload")
        code = int.from_bytes(payload[:2], "big")
        if code < 1000 or code > 4999:
            raise _ParseFailed("CLOSE with invalid code")
        if code in _LOCAL_ONLY:
            raise _ParseFailed("remote CLOSE with local-only reason")
        if code < 3000 and code not in _DEFINED:
            raise _ParseFailed("CLOSE with unknown reserved code")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _ParseFailed(
                "Error decoding CLOSE reason: " + str(exc), CloseReason.INVALID_FRAME_PAYLOAD_DATA
            ) from None
        return (CloseReason(code) if code in _DEFINED else code), reason

    def message(self, data: bytes, opcode: int) -> bytes:
        """A whole message's frame (`TEXT` with UTF-8, or `BINARY`), deflated if agreed:
        what `send` does for a message event, without the event."""
        if self.state is not _OPEN:
            raise LocalProtocolError(f"A message cannot be sent in state {self.state}.")
        if self.deflate is not None:
            return _frame(_RSV1 | opcode, self.deflate.compress(data))
        return _frame(opcode, data)

    def send(self, event: TextMessage | BytesMessage | Ping | Pong | CloseConnection) -> bytes:
        """The frame for a wsproto event, as `Connection.send` makes it."""
        kind = type(event)
        state = self.state
        if state is _OPEN:
            if kind is TextMessage:
                return self.message(event.data.encode("utf-8"), TEXT)  # type: ignore[attr-defined]
            if kind is BytesMessage:
                return self.message(bytes(event.data), BINARY)  # type: ignore[attr-defined]
            if kind is Ping:
                return _frame(PING, event.payload)  # type: ignore[attr-defined]
            if kind is Pong:
                return _frame(PONG, event.payload)  # type: ignore[attr-defined]
        if kind is CloseConnection and state in (_OPEN, ConnectionState.REMOTE_CLOSING):
            self.state = _CLOSED if state is ConnectionState.REMOTE_CLOSING else ConnectionState.LOCAL_CLOSING
            return _frame(CLOSE, _close_body(event))  # type: ignore[arg-type]
        raise LocalProtocolError(f"Event {event} cannot be sent in state {state}.")


def _close_body(event: CloseConnection) -> bytes:
    code = event.code
    if code is CloseReason.NO_STATUS_RCVD:  # the peer's empty close, echoed as empty
        return b""
    if code in _LOCAL_ONLY:
        code = CloseReason.NORMAL_CLOSURE
    reason = (event.reason or "").encode("utf-8")
    if len(reason) > 123:
        reason = reason[:123].decode("utf-8", "ignore").encode("utf-8")
    return int(code).to_bytes(2, "big") + reason
