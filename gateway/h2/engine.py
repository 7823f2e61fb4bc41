"""gateway's own HTTP/2 server engine: frames, stream states and flow control in one pass.

h2 (python-hyper) builds an object per frame, walks a state-machine table for every frame
sent and received and validates through layers of generators: about 80% of what a small
request cost. This engine does a server's part of RFC 9113 with plain integers, one dict of
open streams and one loop over a read; HPACK stays with the hpack package through gateway's
caching coders (hpack_cache.py). It offers the calls of h2's `H2Connection` that the
connection (protocol.py) makes, and reports events shaped as h2's (events.py), so the
connection and its guards are the same for both engines. h2 stays the reference
(`--h2-engine h2`); tests/h2/test_h2_engines.py feeds both the same bytes.

Errors: a connection error queues GOAWAY with RFC 9113's code and raises `ConnectionError_`
(an h2 `ProtocolError`); a stream error resets the stream and reports `StreamReset`, as a
reset from the client would be, so that the app sees a disconnect and the client's budget pays.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import h2.exceptions
from h2.errors import ErrorCodes
from hpack import HPACKError

from ..config import Config
from . import events
from .hpack_cache import CachingDecoder, CachingEncoder
from .wire import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    ENABLE_CONNECT_PROTOCOL,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER_SIZE,
    GOAWAY,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    SETTINGS_ACK,
    WINDOW_UPDATE,
    frame,
    frame_header,
    goaway_frame,
    rst_stream_frame,
    settings_frame,
    unpack_header,
    unpack_setting,
    unpack_u32,
    window_update_frame,
)

_PROTOCOL = ErrorCodes.PROTOCOL_ERROR
_FLOW = ErrorCodes.FLOW_CONTROL_ERROR
_FRAME_SIZE = ErrorCodes.FRAME_SIZE_ERROR
_CLOSED = ErrorCodes.STREAM_CLOSED
# Streams remembered after they close, to tell a frame for a closed stream (STREAM_CLOSED, or
# ignored after our own RST_STREAM: RFC 9113 section 5.1) from one for a stream never opened.
_CLOSED_REMEMBERED = 128
# Connection window taken by DATA nobody reads (closed or refused streams), given back in one
# WINDOW_UPDATE once this much has gathered.
_DISCARDED_ACK = 32 * 1024


class ConnectionError_(h2.exceptions.ProtocolError):
    """A connection error (RFC 9113 section 5.4.1): GOAWAY with `error_code` is queued."""

    def __init__(self, message: str, error_code: ErrorCodes) -> None:
        super().__init__(message)
        self.error_code = error_code


class RemoteSettings:
    """The client's SETTINGS, under the names the connection reads from h2's."""

    __slots__ = ("enable_push", "initial_window_size", "max_frame_size", "max_concurrent_streams",
                 "max_header_list_size", "header_table_size")

    def __init__(self) -> None:
        self.enable_push = 1
        self.initial_window_size = DEFAULT_WINDOW
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE
        self.max_concurrent_streams = 2**32 - 1
        self.max_header_list_size: int | None = None
        self.header_table_size = 4096


class _Stream:
    """What the engine keeps of an open or half-closed stream."""

    __slots__ = ("remote_open", "local_open", "send_window", "recv_window", "expected",
                 "received")

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.remote_open = True  # the client may still send on it
        self.local_open = True  # we may still send on it
        self.send_window = send_window
        self.recv_window = recv_window
        self.expected: int | None = None  # the request's content-length
        self.received = 0


class FastConnection:
    """The server side of one HTTP/2 connection (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self.encoder = CachingEncoder()
        self.decoder = CachingDecoder()
        self.decoder.max_header_list_size = config.h2_max_header_list_size
        self.stream_limit = config.h2_max_concurrent_streams
        self.local_values = {
            MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
            INITIAL_WINDOW_SIZE: config.h2_initial_window_size,
            MAX_FRAME_SIZE: config.h2_max_frame_size,
            MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
            ENABLE_CONNECT_PROTOCOL: 1,
        }
        # Streams get the window we advertise from the start: a client that has not applied
        # our SETTINGS yet sends less, never more.
        self.stream_recv_window = config.h2_initial_window_size
        self.max_inbound_frame_size = config.h2_max_frame_size
        # A header block and its CONTINUATION frames, bounded as a request's fields are.
        self.max_header_block = config.h2_max_header_list_size + config.h2_max_frame_size
        self.remote_settings = RemoteSettings()
        self.max_outbound_frame_size = DEFAULT_MAX_FRAME_SIZE
        self.outbound_window = DEFAULT_WINDOW  # what we may still send on the connection
        self.inbound_window = DEFAULT_WINDOW  # what the client may still send
        self.streams: dict[int, _Stream] = {}
        self.inbound_open = 0  # client-initiated streams open or half-closed
        self.closed: dict[int, bool] = {}  # recently closed stream -> we reset it
        self.highest_inbound_stream_id = 0
        self.highest_outbound_stream_id = 0
        self.output: list[bytes | memoryview] = []
        self.buffer = b""
        self.preface_left = len(PREFACE)
        self.settings_seen = False
        self.block: list[Any] | None = None  # [stream id, END_STREAM, fragments, size, promised]
        self.discarded = 0
        self.terminated = False

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes | memoryview) -> list[Any]:
        if self.terminated:
            return []
        if type(data) is not bytes:
            data = bytes(data)
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        position = 0
        if self.preface_left:
            position = self._preface(data)
            if self.preface_left:
                return []
        found: list[Any] = []
        size = len(data)
        try:
            while size - position >= FRAME_HEADER_SIZE:
                high, low, kind, flags, stream_id = unpack_header(data, position)
                length = high << 8 | low
                end = position + FRAME_HEADER_SIZE + length
                if length > self.max_inbound_frame_size:
                    raise self._connection_error(_FRAME_SIZE, f"frame of {length} bytes is too large")
                if end > size:
                    break
                payload = data[position + FRAME_HEADER_SIZE:end]
                position = end
                stream_id &= 0x7FFFFFFF
                if self.block is not None and kind != CONTINUATION:
                    raise self._connection_error(_PROTOCOL, "a header block was interrupted")
                if not self.settings_seen:
                    if kind != SETTINGS or flags & ACK:
                        raise self._connection_error(_PROTOCOL, "the first frame was not SETTINGS")
                    self.settings_seen = True
                if kind == HEADERS:
                    self._headers(payload, flags, stream_id, found)
                elif kind == DATA:
                    self._data(payload, flags, stream_id, found)
                elif kind == CONTINUATION:
                    self._continuation(payload, flags, stream_id, found)
                elif kind == WINDOW_UPDATE:
                    self._window_update(payload, stream_id, found)
                elif kind == SETTINGS:
                    self._settings(payload, flags, stream_id, found)
                elif kind == RST_STREAM:
                    self._rst_stream(payload, stream_id, found)
                elif kind == PING:
                    if len(payload) != 8:
                        raise self._connection_error(_FRAME_SIZE, "PING must be 8 bytes")
                    if stream_id:
                        raise self._connection_error(_PROTOCOL, "PING on a stream")
                    if not flags & ACK:
                        self.output.append(frame(PING, ACK, 0, payload))
                elif kind == PRIORITY:
                    self._priority(payload, stream_id, found)
                elif kind == GOAWAY:
                    if stream_id:
                        raise self._connection_error(_PROTOCOL, "GOAWAY on a stream")
                    if len(payload) < 8:
                        raise self._connection_error(_FRAME_SIZE, "GOAWAY shorter than 8 bytes")
                    found.append(events.ConnectionTerminated(
                        unpack_u32(payload, 4)[0], unpack_u32(payload)[0] & 0x7FFFFFFF, payload[8:]))
                elif kind == PUSH_PROMISE:
                    raise self._connection_error(_PROTOCOL, "PUSH_PROMISE from a client")
                # Other types are extensions this server does not know: ignored (section 5.5).
        except ConnectionError_:
            self.buffer = b""
            raise
        if position < size:
            self.buffer = data[position:]
        return found

    def _preface(self, data: bytes) -> int:
        offset = len(PREFACE) - self.preface_left
        take = min(self.preface_left, len(data))
        if data[:take] != PREFACE[offset:offset + take]:
            self.terminated = True
            raise h2.exceptions.ProtocolError("invalid HTTP/2 connection preface")
        self.preface_left -= take
        return take

    def _headers(self, payload: bytes, flags: int, stream_id: int, found: list[Any]) -> None:
        if not stream_id:
            raise self._connection_error(_PROTOCOL, "HEADERS on stream 0")
        start = 0
        end = len(payload)
        if flags & PADDED:
            if not end:
                raise self._connection_error(_FRAME_SIZE, "padded HEADERS without a pad length")
            end -= payload[0]
            start = 1
        self_dependent = False
        if flags & PRIORITY_FLAG:
            if end - start < 5:
                raise self._connection_error(_FRAME_SIZE, "HEADERS too short for its priority")
            # RFC 9113 section 5.3.1: a stream error, once the block has been decoded.
            self_dependent = unpack_u32(payload, start)[0] & 0x7FFFFFFF == stream_id
            start += 5
        if end < start:
            raise self._connection_error(_PROTOCOL, "padding longer than the frame")
        fragment = payload[start:end]
        if flags & END_HEADERS:
            self._header_block(stream_id, flags & END_STREAM, fragment, self_dependent, found)
        else:
            self.block = [stream_id, flags & END_STREAM, [fragment], len(fragment), self_dependent]

    def _continuation(self, payload: bytes, flags: int, stream_id: int, found: list[Any]) -> None:
        block = self.block
        if block is None or block[0] != stream_id:
            raise self._connection_error(_PROTOCOL, "CONTINUATION without a header block")
        block[2].append(payload)
        block[3] += len(payload)
        if block[3] > self.max_header_block:
            raise self._connection_error(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
        if flags & END_HEADERS:
            self.block = None
            self._header_block(stream_id, block[1], b"".join(block[2]), block[4], found)

    def _decode(self, block: bytes) -> list[Any]:
        # A header list past SETTINGS_MAX_HEADER_LIST_SIZE is a COMPRESSION_ERROR too, as with
        # h2: the decoder stops at the limit, so the table is out of step with the client's.
        try:
            return self.decoder.decode(block, raw=True)
        except (HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise self._connection_error(ErrorCodes.COMPRESSION_ERROR, f"bad header block: {exc}") from None

    def _header_block(self, stream_id: int, ended: int, block: bytes, self_dependent: bool,
                      found: list[Any]) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            headers = self._decode(block)
            if self_dependent:
                self._stream_error(stream_id, _PROTOCOL, found)
                return
            if not stream.remote_open:  # half-closed (remote): section 5.1
                self._stream_error(stream_id, _CLOSED, found)
                return
            if not ended:
                raise self._connection_error(_PROTOCOL, "trailers without END_STREAM")
            found.append(events.TrailersReceived(stream_id, headers))
            self._remote_end(stream_id, stream, found)
            return
        if stream_id <= self.highest_inbound_stream_id:
            headers = self._decode(block)  # the table must stay in step (RFC 9113 section 4.3)
            reset_by_us = self.closed.get(stream_id)
            if reset_by_us:
                return
            if reset_by_us is None:
                raise self._connection_error(_PROTOCOL, f"stream {stream_id} is lower than an earlier one")
            raise self._connection_error(_CLOSED, f"HEADERS on closed stream {stream_id}")
        if not stream_id & 1:
            raise self._connection_error(_PROTOCOL, f"a client opened even stream {stream_id}")
        self.highest_inbound_stream_id = stream_id
        headers = self._decode(block)
        if self_dependent:
            self.output.append(rst_stream_frame(stream_id, _PROTOCOL))
            self._remember(stream_id, True)
            return
        if self.inbound_open >= self.stream_limit:
            self.output.append(rst_stream_frame(stream_id, ErrorCodes.REFUSED_STREAM))
            self._remember(stream_id, True)
            found.append(events.StreamRefused(stream_id))
            return
        stream = _Stream(self.remote_settings.initial_window_size, self.stream_recv_window)
        self.streams[stream_id] = stream
        self.inbound_open += 1
        for name, value in headers:
            if name == b"content-length":
                if value.isdigit():
                    stream.expected = int(value)
                break
        if ended:
            found.append(events.RequestReceived(stream_id, headers, True))
            self._remote_end(stream_id, stream, found)
        else:
            found.append(events.RequestReceived(stream_id, headers, None))

    def _remote_end(self, stream_id: int, stream: _Stream, found: list[Any]) -> None:
        stream.remote_open = False
        if stream.expected is not None and stream.expected != stream.received:
            raise self._connection_error(_PROTOCOL, "request body shorter than its content-length")
        found.append(events.StreamEnded(stream_id))
        if not stream.local_open:
            self._close_stream(stream_id, False)

    def _data(self, payload: bytes, flags: int, stream_id: int, found: list[Any]) -> None:
        if not stream_id:
            raise self._connection_error(_PROTOCOL, "DATA on stream 0")
        length = len(payload)
        self.inbound_window -= length
        if self.inbound_window < 0:
            raise self._connection_error(_FLOW, "DATA beyond the connection's window")
        stream = self.streams.get(stream_id)
        if stream is None or not stream.remote_open:
            if stream is None and self._idle(stream_id):
                raise self._connection_error(_PROTOCOL, f"DATA on idle stream {stream_id}")
            self._discard(length)
            if stream is not None:  # half-closed (remote): section 5.1
                self._stream_error(stream_id, _CLOSED, found)
            elif not self.closed.get(stream_id, False):  # closed, and not by our RST_STREAM
                self.output.append(rst_stream_frame(stream_id, _CLOSED))
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            raise self._connection_error(_FLOW, f"DATA beyond stream {stream_id}'s window")
        data = payload
        if flags & PADDED:
            if not length or payload[0] >= length:
                raise self._connection_error(_PROTOCOL, "padding longer than the frame")
            data = payload[1:length - payload[0]]
        stream.received += len(data)
        if stream.expected is not None and stream.received > stream.expected:
            raise self._connection_error(_PROTOCOL, "request body longer than its content-length")
        found.append(events.DataReceived(stream_id, data, length))
        if flags & END_STREAM:
            self._remote_end(stream_id, stream, found)

    def _discard(self, length: int) -> None:
        self.discarded += length
        if self.discarded >= _DISCARDED_ACK:
            self.output.append(window_update_frame(0, self.discarded))
            self.inbound_window += self.discarded
            self.discarded = 0

    def _window_update(self, payload: bytes, stream_id: int, found: list[Any]) -> None:
        if len(payload) != 4:
            raise self._connection_error(_FRAME_SIZE, "WINDOW_UPDATE must be 4 bytes")
        increment = unpack_u32(payload)[0] & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise self._connection_error(_PROTOCOL, "WINDOW_UPDATE of 0")
            self.outbound_window += increment
            if self.outbound_window > MAX_WINDOW:
                raise self._connection_error(_FLOW, "connection window past 2^31-1")
            found.append(events.WindowUpdated(0, increment))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._idle(stream_id):
                raise self._connection_error(_PROTOCOL, f"WINDOW_UPDATE on idle stream {stream_id}")
            return
        if not increment:
            self._stream_error(stream_id, _PROTOCOL, found)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(stream_id, _FLOW, found)
            return
        found.append(events.WindowUpdated(stream_id, increment))

    def _idle(self, stream_id: int) -> bool:
        if stream_id & 1:
            return stream_id > self.highest_inbound_stream_id
        return stream_id > self.highest_outbound_stream_id

    def _settings(self, payload: bytes, flags: int, stream_id: int, found: list[Any]) -> None:
        if stream_id:
            raise self._connection_error(_PROTOCOL, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise self._connection_error(_FRAME_SIZE, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise self._connection_error(_FRAME_SIZE, "SETTINGS length not a multiple of 6")
        self._apply_settings(payload)
        self.output.append(SETTINGS_ACK)
        found.append(events.RemoteSettingsChanged())

    def _apply_settings(self, payload: bytes) -> None:
        remote = self.remote_settings
        for offset in range(0, len(payload), 6):
            code, value = unpack_setting(payload, offset)
            if code == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise self._connection_error(_FLOW, "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1")
                delta = value - remote.initial_window_size
                remote.initial_window_size = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise self._connection_error(_FLOW, "a stream window past 2^31-1")
            elif code == MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise self._connection_error(_PROTOCOL, f"SETTINGS_MAX_FRAME_SIZE of {value}")
                remote.max_frame_size = self.max_outbound_frame_size = value
            elif code == HEADER_TABLE_SIZE:
                remote.header_table_size = value
                self.encoder.header_table_size = value
            elif code == ENABLE_PUSH:
                if value > 1:
                    raise self._connection_error(_PROTOCOL, f"SETTINGS_ENABLE_PUSH of {value}")
                remote.enable_push = value
            elif code == MAX_CONCURRENT_STREAMS:
                remote.max_concurrent_streams = value
            elif code == MAX_HEADER_LIST_SIZE:
                remote.max_header_list_size = value
            elif code == ENABLE_CONNECT_PROTOCOL and value > 1:
                raise self._connection_error(_PROTOCOL, f"SETTINGS_ENABLE_CONNECT_PROTOCOL of {value}")

    def _rst_stream(self, payload: bytes, stream_id: int, found: list[Any]) -> None:
        if len(payload) != 4:
            raise self._connection_error(_FRAME_SIZE, "RST_STREAM must be 4 bytes")
        if not stream_id:
            raise self._connection_error(_PROTOCOL, "RST_STREAM on stream 0")
        if stream_id not in self.streams:
            if self._idle(stream_id):
                raise self._connection_error(_PROTOCOL, f"RST_STREAM on idle stream {stream_id}")
            return
        self._close_stream(stream_id, False)
        found.append(events.StreamReset(stream_id, unpack_u32(payload)[0]))

    def _priority(self, payload: bytes, stream_id: int, found: list[Any]) -> None:
        if not stream_id:
            raise self._connection_error(_PROTOCOL, "PRIORITY on stream 0")
        if len(payload) != 5:
            self._stream_error(stream_id, _FRAME_SIZE, found)
        elif unpack_u32(payload)[0] & 0x7FFFFFFF == stream_id:
            self._stream_error(stream_id, _PROTOCOL, found)

    # -- errors and closing --------------------------------------------------------------

    def _connection_error(self, code: ErrorCodes, message: str) -> ConnectionError_:
        self.output.append(goaway_frame(self.highest_inbound_stream_id, code))
        self.terminated = True
        return ConnectionError_(message, code)

    def _stream_error(self, stream_id: int, code: ErrorCodes, found: list[Any]) -> None:
        """Reset the stream; if it was one being served, say so as a client's reset would."""
        if self._reset(stream_id, code):
            found.append(events.StreamReset(stream_id, code))

    def _reset(self, stream_id: int, code: ErrorCodes) -> bool:
        self.output.append(rst_stream_frame(stream_id, code))
        if stream_id in self.streams:
            self._close_stream(stream_id, True)
            return True
        return False

    def _close_stream(self, stream_id: int, reset_by_us: bool) -> None:
        del self.streams[stream_id]
        if stream_id & 1:
            self.inbound_open -= 1
        self._remember(stream_id, reset_by_us)

    def _remember(self, stream_id: int, reset_by_us: bool) -> None:
        closed = self.closed
        closed[stream_id] = reset_by_us
        if len(closed) > _CLOSED_REMEMBERED:
            del closed[next(iter(closed))]

    # -- sending -------------------------------------------------------------------------

    def initiate_connection(self) -> None:
        self.output.append(settings_frame(self.local_values))

    def initiate_upgrade_connection(self, settings_header: bytes | str) -> None:
        """h2c by Upgrade (RFC 7540 section 3.2): the client's settings came in HTTP2-Settings
        and its request is stream 1, half-closed (remote)."""
        if isinstance(settings_header, str):
            settings_header = settings_header.encode("ascii")
        try:
            payload = base64.urlsafe_b64decode(settings_header + b"=" * (-len(settings_header) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"HTTP2-Settings is not base64url: {exc}") from exc
        if len(payload) % 6:
            raise ValueError("HTTP2-Settings is not a list of settings")
        try:
            self._apply_settings(payload)
        except ConnectionError_ as exc:
            self.output.clear()
            self.terminated = False
            raise ValueError(str(exc)) from exc
        self.initiate_connection()
        stream = _Stream(self.remote_settings.initial_window_size, 0)
        stream.remote_open = False
        self.streams[1] = stream
        self.inbound_open = 1
        self.highest_inbound_stream_id = 1

    def _sendable(self, stream_id: int) -> _Stream:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.local_open:
            raise h2.exceptions.StreamClosedError(stream_id)
        return stream

    def send_headers(self, stream_id: int, headers: Any, end_stream: bool = False) -> None:
        stream = self._sendable(stream_id)
        self._header_frames(HEADERS, stream_id, self.encoder.encode(headers),
                            END_STREAM if end_stream else 0)
        if end_stream:
            self._local_end(stream_id, stream)

    def _header_frames(self, kind: int, stream_id: int, block: bytes, flags: int) -> None:
        limit = self.max_outbound_frame_size
        output = self.output
        if len(block) <= limit:
            output.append(frame_header(len(block), kind, flags | END_HEADERS, stream_id))
            output.append(block)
            return
        output.append(frame_header(limit, kind, flags, stream_id))
        output.append(block[:limit])
        for start in range(limit, len(block), limit):
            piece = block[start:start + limit]
            last = start + limit >= len(block)
            output.append(frame_header(len(piece), CONTINUATION, END_HEADERS if last else 0, stream_id))
            output.append(piece)

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> None:
        stream = self._sendable(stream_id)
        size = len(data)
        if size > stream.send_window or size > self.outbound_window:
            raise h2.exceptions.FlowControlError(f"{size} bytes exceed the flow-control window")
        if size > self.max_outbound_frame_size:
            raise h2.exceptions.FrameTooLargeError(f"{size} bytes exceed SETTINGS_MAX_FRAME_SIZE")
        stream.send_window -= size
        self.outbound_window -= size
        self.output.append(frame_header(size, DATA, END_STREAM if end_stream else 0, stream_id))
        if size:
            self.output.append(data)
        if end_stream:
            self._local_end(stream_id, stream)

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", end_stream=True)

    def _local_end(self, stream_id: int, stream: _Stream) -> None:
        stream.local_open = False
        if not stream.remote_open:
            self._close_stream(stream_id, False)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        if stream_id not in self.streams:
            raise h2.exceptions.StreamClosedError(stream_id)
        self.output.append(rst_stream_frame(stream_id, error_code))
        self._close_stream(stream_id, True)

    def increment_flow_control_window(self, increment: int, stream_id: int | None = None) -> None:
        if not stream_id:
            self.inbound_window += increment
            self.output.append(window_update_frame(0, increment))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            raise h2.exceptions.StreamClosedError(stream_id)
        stream.recv_window += increment
        self.output.append(window_update_frame(stream_id, increment))

    def local_flow_control_window(self, stream_id: int) -> int:
        """What may be sent on the stream now."""
        stream = self._sendable(stream_id)
        window = stream.send_window
        return window if window < self.outbound_window else self.outbound_window

    def remote_flow_control_window(self, stream_id: int) -> int:
        """What the client may still send on the stream."""
        stream = self.streams.get(stream_id)
        if stream is None:
            raise h2.exceptions.StreamClosedError(stream_id)
        window = stream.recv_window
        return window if window < self.inbound_window else self.inbound_window

    def get_next_available_stream_id(self) -> int:
        return self.highest_outbound_stream_id + 2 if self.highest_outbound_stream_id else 2

    def push_stream(self, stream_id: int, promised_stream_id: int, request_headers: Any) -> None:
        self._sendable(stream_id)
        if not self.remote_settings.enable_push:
            raise h2.exceptions.ProtocolError("the client disabled server push")
        pushed = sum(1 for other in self.streams if not other & 1)
        if pushed >= self.remote_settings.max_concurrent_streams:
            raise h2.exceptions.TooManyStreamsError("the client's stream limit is reached")
        block = promised_stream_id.to_bytes(4, "big") + self.encoder.encode(request_headers)
        self._header_frames(PUSH_PROMISE, stream_id, block, 0)
        stream = _Stream(self.remote_settings.initial_window_size, 0)
        stream.remote_open = False
        self.streams[promised_stream_id] = stream
        self.highest_outbound_stream_id = promised_stream_id

    def close_connection(self, error_code: int = 0) -> None:
        self.output.append(goaway_frame(self.highest_inbound_stream_id, error_code))

    def keep_serving_after_goaway(self) -> None:
        """Nothing to do: a GOAWAY from the client leaves the open streams open here."""

    def data_to_send(self) -> bytes:
        output = self.output
        if not output:
            return b""
        data = output[0] if len(output) == 1 else b"".join(output)
        output.clear()
        return bytes(data) if type(data) is not bytes else data

    def take_output(self) -> list[bytes | memoryview]:
        """The frames queued, as the chunks they were made of (DATA bodies not copied); the
        list is the caller's, unless it is empty."""
        output = self.output
        if output:
            self.output = []
        return output
