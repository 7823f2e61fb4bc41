"""A raw HTTP/2 client for the h2 tests: h2's client-side connection over a real socket (plain
for h2c, TLS with ALPN h2), plus a frame log parsed independently with hyperframe, so tests
can check exactly what went over the wire (frame types, flags, sizes, error codes) even after
the client-side state machine has given up. Every socket has a timeout: a stalled server fails
a test instead of hanging it."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, GoAwayFrame
from support import TIMEOUT

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame type numbers (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)


@dataclass
class WireFrame:
    """One frame as received: its type, flags, stream and the parsed hyperframe object."""

    type: int
    flags: set[str]
    stream_id: int
    length: int
    frame: Any

    def __repr__(self) -> str:
        name = type(self.frame).__name__ if self.frame is not None else f"type {self.type}"
        return f"<{name} stream={self.stream_id} len={self.length} flags={sorted(self.flags)}>"


@dataclass
class StreamResult:
    """What the client saw of one stream."""

    headers: list[tuple[bytes, bytes]] | None = None
    informational: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    data_frames: list[int] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] | None = None
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int | None:
        if self.headers is None:
            return None
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers or ():
            if key == name:
                return value
        return None

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """Bytes of any frame, including ones hyperframe refuses to build (DATA on stream 0)."""
    return struct.pack(">I", len(payload))[1:] + bytes((frame_type, flags)) + \
        struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


def client_tls_context(ca_file: str, alpn: Iterable[str] = ("h2",)) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(list(alpn))
    return context


class H2Client:
    """h2's client connection over a blocking socket with a timeout."""

    def __init__(self, sock: socket.socket, *, settings: dict[int, int] | None = None,
                 auto_ack: bool = True, validate_outbound: bool = True,
                 start: bool = True) -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None,
            validate_outbound_headers=validate_outbound,
            normalize_outbound_headers=validate_outbound,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.auto_ack = auto_ack
        self.events: list[Any] = []
        self.frames: list[WireFrame] = []
        self.streams: dict[int, StreamResult] = {}
        self.closed = False
        self.goaway: GoAwayFrame | None = None  # the last GOAWAY the server sent
        self.state_error: Exception | None = None  # the client's h2 gave up; frames go on
        self._buffer = b""
        if start:
            if settings:
                self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
                # h2 keeps its own copy of the inbound frame size limit.
                self.conn.max_inbound_frame_size = self.conn.local_settings.max_frame_size
                self.conn.incoming_buffer.max_frame_size = self.conn.max_inbound_frame_size
            self.conn.initiate_connection()
            self.flush()

    # -- sending ---------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str = "/", method: str = "GET", headers: Iterable[tuple[bytes, bytes]] = (),
                body: bytes | None = None, end: bool = True, authority: bytes = b"localhost",
                scheme: bytes | None = None) -> int:
        """Open a stream; send the body (when it fits the windows) and END_STREAM if `end`."""
        stream_id = self.conn.get_next_available_stream_id()
        if scheme is None:
            scheme = b"https" if isinstance(self.sock, ssl.SSLSocket) else b"http"
        head = [(b":method", method.encode()), (b":scheme", scheme),
                (b":authority", authority), (b":path", path.encode())]
        head.extend(headers)
        self.streams[stream_id] = StreamResult()
        self.conn.send_headers(stream_id, head, end_stream=end and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> int:
        """Send as much of `data` as the windows allow now (in max-frame-size pieces); return
        how much went."""
        sent = 0
        while sent < len(data):
            size = min(self.conn.local_flow_control_window(stream_id),
                       self.conn.max_outbound_frame_size, len(data) - sent)
            if size <= 0:
                break
            last = end and sent + size == len(data)
            self.conn.send_data(stream_id, data[sent:sent + size], end_stream=last)
            sent += size
        if end and not data:
            self.conn.end_stream(stream_id)
        self.flush()
        return sent

    def send_all(self, stream_id: int, data: bytes, end: bool = True, timeout: float = TIMEOUT) -> None:
        """Send all of `data`, reading the server's WINDOW_UPDATEs whenever the windows close."""
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < len(data):
            sent += self.send_body(stream_id, data[sent:])
            if sent < len(data):
                assert time.monotonic() < deadline and not self.closed, (
                    f"only {sent} of {len(data)} bytes could be sent: the windows stayed closed"
                )
                self.pump(0.2)
        if end:
            self.conn.end_stream(stream_id)
            self.flush()

    def open_connection_window(self, increment: int = 2**30) -> None:
        """Grant the server a large connection-level window (stream windows still apply)."""
        self.conn.increment_flow_control_window(increment)
        self.flush()

    def reset(self, stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def ping(self, opaque: bytes = b"pingpong") -> None:
        self.conn.ping(opaque)
        self.flush()

    def send_goaway(self, code: int = 0, last_stream_id: int = 0) -> None:
        """GOAWAY from the client, written raw so that the client's h2 still takes the frames of
        the streams the server finishes afterwards."""
        self.send_raw(GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code).serialize())

    def raw_headers(self, stream_id: int, headers: Iterable[tuple[bytes, bytes]],
                    end_stream: bool = True) -> bytes:
        """A HEADERS frame encoded with this connection's HPACK state, unchecked by h2: for
        malformed requests and for streams the client's h2 would refuse to open."""
        block = self.conn.encoder.encode(list(headers))
        return raw_frame(HEADERS, 0x4 | (0x1 if end_stream else 0), stream_id, block)

    # -- receiving -------------------------------------------------------------------------

    def pump(self, timeout: float = TIMEOUT) -> bool:
        """One read (up to `timeout`): log the frames and feed them to h2; False once closed or
        quiet. GOAWAY frames are kept from the client's h2, which would otherwise refuse the
        frames that legitimately follow one (the rest of the streams it lets finish)."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        finally:
            self.sock.settimeout(TIMEOUT)
        if not data:
            self.closed = True
            return False
        for raw, frame in self._parse_frames(data):
            if frame.type == GOAWAY:
                self.goaway = frame.frame
                continue
            if self.state_error is not None:
                continue
            try:
                events = self.conn.receive_data(raw)
            except h2.exceptions.ProtocolError as exc:
                self.state_error = exc
                continue
            for event in events:
                self._handle(event)
        if self.state_error is None:
            # (Once the client's h2 has failed, what it queued, its own GOAWAY, stays unsent.)
            with contextlib.suppress(Exception):
                self.flush()
        return True

    def until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
        """Read until `predicate()` holds, the connection closes, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return predicate()
            self.pump(min(remaining, 0.5))
        return True

    def response(self, stream_id: int, timeout: float = TIMEOUT) -> StreamResult:
        result = self.streams.setdefault(stream_id, StreamResult())
        assert self.until(lambda: result.done, timeout), (
            f"stream {stream_id} did not finish: {result}; closed={self.closed}; frames={self.frames}"
        )
        return result

    def read_until_closed(self, timeout: float = TIMEOUT) -> bool:
        """Read until the server closes the connection; True if it did within `timeout`."""
        return self.until(lambda: self.closed, timeout)

    def wait_ready(self, timeout: float = 3) -> None:
        """Until the server's SETTINGS has arrived (and been acknowledged) and ours has been
        acknowledged: the connection preface exchange is over."""
        assert self.until(lambda: any("ACK" not in f.flags for f in self.frames_of(SETTINGS))
                          and any("ACK" in f.flags for f in self.frames_of(SETTINGS)), timeout), (
            f"no SETTINGS exchange: {self.frames}"
        )

    def frames_of(self, frame_type: int, stream_id: int | None = None) -> list[WireFrame]:
        return [f for f in self.frames
                if f.type == frame_type and (stream_id is None or f.stream_id == stream_id)]

    def goaway_frames(self) -> list[GoAwayFrame]:
        return [f.frame for f in self.frames_of(GOAWAY)]

    def _parse_frames(self, data: bytes) -> list[tuple[bytes, WireFrame]]:
        self._buffer += data
        complete = []
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                break
            raw, self._buffer = self._buffer[:9 + length], self._buffer[9 + length:]
            header, body = raw[:9], raw[9:]
            stream_id = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
            try:
                frame, _ = Frame.parse_frame_header(memoryview(header))
                frame.parse_body(memoryview(body))
                flags = set(frame.flags)
            except Exception:
                frame, flags = None, set()
            wire = WireFrame(header[3], flags, stream_id, length, frame)
            self.frames.append(wire)
            complete.append((raw, wire))
        return complete

    def _handle(self, event: Any) -> None:
        self.events.append(event)
        stream_id = getattr(event, "stream_id", None)
        stream = self.streams.setdefault(stream_id, StreamResult()) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived):
            stream.headers = list(event.headers)
        elif isinstance(event, h2.events.InformationalResponseReceived):
            stream.informational.append(list(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            stream.data += event.data
            stream.data_frames.append(len(event.data))
            if self.auto_ack and event.flow_controlled_length:
                self.ack(event.stream_id, event.flow_controlled_length)
        elif isinstance(event, h2.events.TrailersReceived):
            stream.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.reset = event.error_code

    def ack(self, stream_id: int, nbytes: int) -> None:
        """Give back `nbytes` of window on the stream and the connection."""
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.conn.acknowledge_received_data(nbytes, stream_id)
        with contextlib.suppress(Exception):
            self.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def h2_connection(port: int, context: ssl.SSLContext | None = None, **options: Any) -> Iterator[H2Client]:
    """A raw HTTP/2 client: h2c with prior knowledge without `context`, else TLS (ALPN h2)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock: socket.socket = raw
    try:
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        client = H2Client(sock, **options)
        yield client
    finally:
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(OSError):
            raw.close()


async def respond(send, status: int = 200, body: bytes = b"", headers=None) -> None:
    """A whole response from an app: `headers`, or a text/plain content-type without them."""
    await send({"type": "http.response.start", "status": status,
                "headers": headers if headers is not None else [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
