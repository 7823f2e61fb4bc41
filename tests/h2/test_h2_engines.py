"""gateway's own HTTP/2 engine (gateway/h2/engine.py) against h2, its reference.

Both engines get the same bytes, cut at the same places, and must report the same events and
write the same frames: for client sessions hypothesis makes up (requests with bodies and
trailers, resets, PING, SETTINGS, WINDOW_UPDATE, PRIORITY), answered the same way by both,
and for hostile inputs, which must end the same way (the same events, or the same GOAWAY code
as the connection would send it). Where RFC 9113 lets the engines differ and they do, the case
says so and checks each engine's answer is one the RFC allows.
"""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import Frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config
from gateway.h2 import events
from gateway.h2.engine import FastConnection
from gateway.h2.errors import precise_error_code
from gateway.h2.settings import h2_connection
from gateway.h2.wire import PREFACE, frame, settings_frame

CONFIG = Config(app="tests:app")

_NAMES = {
    h2.events.RequestReceived: "request", events.RequestReceived: "request",
    h2.events.DataReceived: "data", events.DataReceived: "data",
    h2.events.StreamEnded: "end", events.StreamEnded: "end",
    h2.events.TrailersReceived: "trailers", events.TrailersReceived: "trailers",
    h2.events.StreamReset: "reset", events.StreamReset: "reset",
    h2.events.WindowUpdated: "window", events.WindowUpdated: "window",
    h2.events.RemoteSettingsChanged: "settings", events.RemoteSettingsChanged: "settings",
    h2.events.ConnectionTerminated: "goaway", events.ConnectionTerminated: "goaway",
    events.StreamRefused: "refused",
}


def server(engine: str) -> Any:
    conn = FastConnection(CONFIG) if engine == "fast" else h2_connection(CONFIG)
    conn.initiate_connection()
    return conn


def described(event: Any) -> tuple | None:
    """An event as the connection (protocol.py) reads it; h2's others are not read."""
    name = _NAMES.get(type(event))
    if name is None:
        return None
    if name == "request":
        return name, event.stream_id, tuple(map(tuple, event.headers)), event.stream_ended is not None
    if name == "data":
        return name, event.stream_id, bytes(event.data), event.flow_controlled_length
    if name == "trailers":
        return name, event.stream_id, tuple(map(tuple, event.headers))
    if name == "reset":
        return name, event.stream_id, int(event.error_code)
    if name == "window":
        return name, event.stream_id, event.delta
    if name == "goaway":
        return name, int(event.error_code), event.last_stream_id
    if name == "settings":
        return (name,)
    return name, event.stream_id


# What a server's SETTINGS says whether it is sent or not: h2 spells these out, gateway's
# engine leaves them at their defaults (RFC 9113 section 6.5.2).
_SETTING_DEFAULTS = {0x1: 4096, 0x2: 0}


def frames_of(data: bytes) -> list[tuple]:
    """(type, flags, stream, payload) of each frame written; a SETTINGS payload as a dict."""
    found = []
    while data:
        header, length = Frame.parse_frame_header(memoryview(data[:9]))
        payload: Any = data[9:9 + length]
        if header.type == 0x4:
            payload = {code: value for code, value in struct.iter_unpack(">HL", payload)
                       if _SETTING_DEFAULTS.get(code) != value}
        found.append((header.type, sorted(header.flags), header.stream_id, payload))
        data = data[9 + length:]
    return found


def feed(conn: Any, chunks: list[bytes]) -> tuple[list, list, tuple | None]:
    """Events and frames after each chunk, and how the connection ended: None, or the GOAWAY
    code the connection would send (protocol.py's `_receive`)."""
    seen: list = []
    written: list = [frames_of(conn.data_to_send())]
    for chunk in chunks:
        try:
            found = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as exc:
            code = precise_error_code(exc) or exc.error_code
            return seen, written, ("error", int(code))
        seen.append([d for d in map(described, found) if d is not None])
        written.append(frames_of(conn.data_to_send()))
    return seen, written, None


def both(chunks: list[bytes]) -> tuple[Any, Any]:
    fast, reference = server("fast"), server("h2")
    return (fast, feed(fast, chunks)), (reference, feed(reference, chunks))


# -- client sessions ----------------------------------------------------------------------

def _client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    return client


_request_fields = st.lists(
    st.tuples(st.sampled_from([b"x-a", b"x-b", b"accept", b"user-agent"]),
              st.binary(min_size=0, max_size=20).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b"")
                                                        .replace(b"\x00", b""))),
    max_size=4,
)
_action = st.one_of(
    st.tuples(st.just("request"), _request_fields, st.binary(max_size=300), st.booleans(), st.booleans()),
    st.tuples(st.just("data"), st.integers(0, 5), st.binary(max_size=2000), st.booleans()),
    st.tuples(st.just("reset"), st.integers(0, 5)),
    st.tuples(st.just("ping")),
    st.tuples(st.just("settings"), st.integers(0, 2**20), st.sampled_from([16384, 32768])),
    st.tuples(st.just("window"), st.integers(0, 5), st.integers(1, 2**20)),
    st.tuples(st.just("priority"), st.integers(0, 5)),
)


def session_bytes(actions: list[tuple]) -> bytes:
    """What a well-behaved h2 client sends for `actions` (those its state allows)."""
    client = _client()
    opened: list[int] = []
    for action in actions:
        kind = action[0]
        on_stream = opened and kind in ("data", "reset", "window", "priority")
        stream = opened[action[1] % len(opened)] if on_stream else None
        try:
            if kind == "request":
                _, fields, body, trailers, end = action
                stream_id = client.get_next_available_stream_id()
                headers = [(b":method", b"POST"), (b":path", b"/p"), (b":scheme", b"http"),
                           (b":authority", b"a"), *fields]
                client.send_headers(stream_id, headers, end_stream=end and not body and not trailers)
                opened.append(stream_id)
                if body:
                    client.send_data(stream_id, body[:client.local_flow_control_window(stream_id)],
                                     end_stream=end and not trailers)
                if trailers:
                    client.send_headers(stream_id, [(b"x-trailer", b"t")], end_stream=True)
            elif kind == "data" and stream is not None:
                window = min(client.local_flow_control_window(stream), client.max_outbound_frame_size)
                client.send_data(stream, action[2][:window], end_stream=action[3])
            elif kind == "reset" and stream is not None:
                client.reset_stream(stream)
            elif kind == "ping":
                client.ping(b"12345678")
            elif kind == "settings":
                client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: action[1],
                                        h2.settings.SettingCodes.MAX_FRAME_SIZE: action[2]})
            elif kind == "window" and stream is not None:
                client.increment_flow_control_window(action[2], stream_id=stream)
            elif kind == "window":
                client.increment_flow_control_window(action[2])
            elif kind == "priority" and stream is not None:
                client.prioritize(stream, weight=32)
        except (h2.exceptions.ProtocolError, KeyError, ValueError):
            pass  # not allowed in the client's state (h2 says so in one of these): skipped
    return client.data_to_send()


def answer(conn: Any, described_events: list[tuple], body: bytes) -> None:
    """Answer each request the same way on both engines: head, then as much body as fits."""
    for event in described_events:
        if event[0] != "request":
            continue
        stream_id = event[1]
        try:
            conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"text/plain")])
            size = min(len(body), conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            conn.send_data(stream_id, body[:size], end_stream=size == len(body))
        except h2.exceptions.ProtocolError:
            pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(_action, min_size=1, max_size=12), cuts=st.lists(st.integers(1, 4000), max_size=6),
       body=st.binary(max_size=40000))
def test_client_sessions_give_the_same_events_and_frames(actions, cuts, body):
    data = session_bytes(actions)  # the client writes the preface itself
    points = sorted({0, len(data), *(c % len(data) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]
    fast, reference = server("fast"), server("h2")
    outcomes = []
    for conn in (fast, reference):
        seen: list = []
        written: list = [frames_of(conn.data_to_send())]
        ended = None
        for chunk in chunks:
            try:
                found = [d for d in map(described, conn.receive_data(chunk)) if d is not None]
            except h2.exceptions.ProtocolError as exc:
                ended = int(precise_error_code(exc) or exc.error_code)
                break
            answer(conn, found, body)
            seen.append(found)
            written.append(frames_of(conn.data_to_send()))
        outcomes.append((seen, written, ended))
    assert outcomes[0] == outcomes[1]


# -- hostile inputs -----------------------------------------------------------------------

def _headers_block(stream_id: int = 1, flags: int = 0x5, extra: bytes = b"") -> bytes:
    # GET / http, :authority "a" literal without indexing: no dynamic table state.
    return frame(0x1, flags, stream_id, extra + bytes((0x82, 0x84, 0x86, 0x01, 0x01)) + b"a")


def _post(stream_id: int = 1, length: bytes | None = None) -> bytes:
    block = bytes((0x83, 0x84, 0x86, 0x01, 0x01)) + b"a"
    if length is not None:
        block += bytes((0x0F, 0x0D, len(length))) + length  # content-length, literal
    return frame(0x1, 0x4, stream_id, block)


START = PREFACE + settings_frame({})
U32 = struct.Struct(">L").pack

HOSTILE = {
    "data on stream 0": frame(0x0, 0, 0, b"x"),
    "data on an idle stream": frame(0x0, 0, 1, b"x"),
    "headers on stream 0": _headers_block(0),
    "headers on an even stream": _headers_block(2),
    "a stream lower than an earlier one": _headers_block(5) + _headers_block(3),
    "continuation without headers": frame(0x9, 0x4, 1, b""),
    "a header block interrupted": _headers_block(1, 0x1) + frame(0x0, 0, 1, b"x"),
    "continuation on another stream": _headers_block(1, 0x1) + frame(0x9, 0x4, 3, b""),
    "ping of 7 bytes": frame(0x6, 0, 0, b"1234567"),
    "ping on a stream": frame(0x6, 0, 1, b"12345678"),
    "settings of 5 bytes": frame(0x4, 0, 0, b"12345"),
    "settings ack with a payload": frame(0x4, 0x1, 0, b"123456"),
    "settings on a stream": frame(0x4, 0, 1, b""),
    "enable_push 2": settings_frame({0x2: 2}),
    "initial window past 2^31-1": settings_frame({0x4: 2**31}),
    "max frame size too small": settings_frame({0x5: 1000}),
    "max frame size too large": settings_frame({0x5: 2**24}),
    "window update of 0 on the connection": frame(0x8, 0, 0, U32(0)),
    "connection window past 2^31-1": frame(0x8, 0, 0, U32(2**31 - 1)),
    "window update of 3 bytes": frame(0x8, 0, 0, b"123"),
    "window update on an idle stream": frame(0x8, 0, 1, U32(1)),
    "rst_stream on stream 0": frame(0x3, 0, 0, U32(8)),
    "rst_stream on an idle stream": frame(0x3, 0, 1, U32(8)),
    "rst_stream of 3 bytes": _headers_block(1, 0x4) + frame(0x3, 0, 1, b"123"),
    "push_promise from a client": frame(0x5, 0x4, 1, U32(2)),
    "a frame past max frame size": frame(0x0, 0, 1, b"x" * 16385),
    "hpack index 0": frame(0x1, 0x5, 1, b"\x80"),
    "hpack index past the table": frame(0x1, 0x5, 1, b"\xff\x80\x01"),
    "data past the stream window":
        _post() + frame(0x8, 0, 0, U32(2**20)) + frame(0x0, 0, 1, b"x" * 16384) * 17,
    "a body longer than content-length": _post(1, b"3") + frame(0x0, 0x1, 1, b"abcd"),
    "a body shorter than content-length": _post(1, b"5") + frame(0x0, 0x1, 1, b"abcd"),
    "trailers without end_stream": _post() + frame(0x1, 0x4, 1, b"\x40\x01x\x01y"),
    "goaway on a stream": frame(0x7, 0, 1, U32(0) + U32(0)),
    "goaway of 7 bytes": frame(0x7, 0, 0, b"1234567"),
    "padding past the frame": frame(0x1, 0xD, 1, b"\x10\x82"),
    "data padding past the frame": _post() + frame(0x0, 0x8, 1, b"\x05ab"),
    "data on a half-closed stream": _headers_block(1) + frame(0x0, 0, 1, b"x"),
    "headers on a half-closed stream": _headers_block(1) + _headers_block(1),
    "an unknown frame type": frame(0x20, 0, 0, b"whatever") + _headers_block(1),
    "a stream reset, then its data": _post() + frame(0x3, 0, 1, U32(8)) + frame(0x0, 0, 1, b"x"),
    "priority of 4 bytes": frame(0x2, 0, 1, b"1234"),
    "priority on stream 0": frame(0x2, 0, 0, U32(1) + b"\x10"),
    "a stream that depends on itself": frame(0x2, 0, 1, U32(1) + b"\x10"),
    "a request that depends on itself": _headers_block(1, 0x25, U32(1) + b"\x10"),
    "too many streams": b"".join(_post(i) for i in range(1, 2 * 101 + 1, 2)),
    "a first frame that is not settings": PREFACE + frame(0x6, 0, 0, b"12345678"),
    "a bad preface": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings_frame({}),
}

# RFC 9113 lets an engine answer some errors as a stream error or as a connection error; h2
# ends the connection where gateway's engine resets the stream alone. Each such case, and
# what each engine does.
STREAM_ERROR_IN_FAST = {
    "priority of 4 bytes": ErrorCodes.FRAME_SIZE_ERROR,  # section 6.3: a stream error
    "a stream that depends on itself": ErrorCodes.PROTOCOL_ERROR,  # section 5.3.1 (RFC 7540)
    "a request that depends on itself": ErrorCodes.PROTOCOL_ERROR,
}
# Section 3.4: the preface is followed by SETTINGS, else PROTOCOL_ERROR; h2 does not check.
CONNECTION_ERROR_IN_FAST_ONLY = {"a first frame that is not settings": ErrorCodes.PROTOCOL_ERROR}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("cut", [None, 1], ids=["whole", "byte-by-byte"])
def test_hostile_input_ends_the_same_way(case, cut):
    data = HOSTILE[case]
    data = data if data.startswith(PREFACE[:3]) else START + data
    chunks = [data] if cut is None else [data[i:i + cut] for i in range(len(data))]
    (fast, (fast_events, fast_frames, fast_end)), (_, (ref_events, ref_frames, ref_end)) = both(chunks)
    if case in STREAM_ERROR_IN_FAST:
        code = STREAM_ERROR_IN_FAST[case]
        resets = [f for batch in fast_frames for f in batch if f[0] == 0x3]
        assert fast_end is None and resets and resets[-1][3] == U32(code), (fast_frames, fast_end)
        assert ref_end is not None, ref_frames
        return
    if case in CONNECTION_ERROR_IN_FAST_ONLY:
        assert fast_end == ("error", CONNECTION_ERROR_IN_FAST_ONLY[case]) and ref_end is None
        return
    assert fast_end == ref_end, (fast_end, ref_end)
    if fast_end is None:
        assert fast_events == ref_events
        assert fast_frames == ref_frames
