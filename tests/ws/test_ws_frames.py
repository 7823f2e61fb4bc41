"""gateway's own frame layer (gateway/ws/frames.py) against wsproto, the reference: the same
client bytes give the same events, close codes and states, whole or a byte at a time, and
the same server frames go out. The one deliberate difference (a frame over the size limit is
refused from its header) has its own test. Its C reader of the commonest frames and its C
unmask (gateway/ws/_frames.c) are held to its Python parser and unmask: the same events, to
the type and the wording of a failure, for generated frames cut anywhere."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from gateway.ws import frames
from gateway.ws.frames import FrameConnection

LIMIT = 1 << 20


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                 masked: bool = True, length_bytes: int | None = None) -> bytes:
    """A client frame built by hand, so that it can be wrong in any one way."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 65536 else 8
    mask_bit = 0x80 if masked else 0
    if length_bytes == 0:
        head = bytes((first, mask_bit | size))
    elif length_bytes == 2:
        head = bytes((first, mask_bit | 126)) + struct.pack(">H", size)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack(">Q", size)
    if not masked:
        return head + payload
    key = b"\x12\x34\x56\x78"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack(">H", code) + reason


SEQUENCES = {
    "text": client_frame(TEXT, "héllo wörld".encode()),
    "binary": client_frame(BINARY, bytes(range(256)) * 3),
    "empty text": client_frame(TEXT, b""),
    "126 bytes": client_frame(BINARY, b"x" * 126),
    "65536 bytes": client_frame(BINARY, b"y" * 65536),
    "fragmented text": client_frame(TEXT, b"ab", fin=False)
    + client_frame(CONTINUATION, "cd€".encode()[:3], fin=False)
    + client_frame(CONTINUATION, "cd€".encode()[3:]),
    "fragmented binary with a ping between": client_frame(BINARY, b"12", fin=False)
    + client_frame(PING, b"p") + client_frame(CONTINUATION, b"34"),
    "ping and pong": client_frame(PING, b"hello") + client_frame(PONG, b""),
    "close with code and reason": client_frame(CLOSE, close_payload(1000, b"bye")),
    "close without a code": client_frame(CLOSE, b""),
    "close with a private code": client_frame(CLOSE, close_payload(4321, "ça".encode())),
    "messages then close": client_frame(TEXT, b"a") + client_frame(BINARY, b"b")
    + client_frame(CLOSE, close_payload(1001)),
    "unmasked": client_frame(TEXT, b"hi", masked=False),
    "reserved bit": client_frame(TEXT, b"hi", rsv=0x40),
    "reserved opcode": client_frame(3, b"hi"),
    "reserved control opcode": client_frame(11, b""),
    "fragmented ping": client_frame(PING, b"p", fin=False),
    "long ping": client_frame(PING, b"p" * 126),
    "non-minimal 2-byte length": client_frame(TEXT, b"short", length_bytes=2),
    "non-minimal 8-byte length": client_frame(BINARY, b"z" * 300, length_bytes=8),
    "continuation first": client_frame(CONTINUATION, b"x"),
    "new message inside a fragmented one": client_frame(TEXT, b"a", fin=False)
    + client_frame(TEXT, b"b"),
    "invalid UTF-8": client_frame(TEXT, b"\xff\xfe"),
    "invalid UTF-8 across fragments": client_frame(TEXT, b"\xe2\x82", fin=False)
    + client_frame(CONTINUATION, b"\x41"),
    "truncated UTF-8 at the end": client_frame(TEXT, b"ok\xe2\x82"),
    "close with one byte": client_frame(CLOSE, b"\x03"),
    "close with code 999": client_frame(CLOSE, close_payload(999)),
    "close with code 1005": client_frame(CLOSE, close_payload(1005)),
    "close with code 1016": client_frame(CLOSE, close_payload(1016)),
    "close with code 2999": client_frame(CLOSE, close_payload(2999)),
    "close with code 5000": client_frame(CLOSE, close_payload(5000)),
    "close with a bad reason": client_frame(CLOSE, close_payload(1000, b"\xff")),
}


_OUR_KINDS = {TEXT: "TextMessage", BINARY: "BytesMessage", PING: "Ping", PONG: "Pong"}


def normalised(events) -> list[tuple]:
    """Events, wsproto's or ours (tuples keyed by opcode), as comparable tuples; the wording
    of a failure's reason is each library's own."""
    out = []
    for event in events:
        if isinstance(event, tuple):
            kind = event[0]
            if kind == CLOSE:
                out.append(("Close", int(event[1])))
            elif kind == BINARY or kind in (PING, PONG):
                out.append((_OUR_KINDS[kind], bytes(event[1]), *event[2:]))
            else:
                out.append((_OUR_KINDS[kind], *event[1:]))
            continue
        if isinstance(event, (TextMessage, BytesMessage)):
            out.append((type(event).__name__, bytes(event.data) if isinstance(event, BytesMessage)
                        else event.data, event.message_finished))
        elif isinstance(event, (Ping, Pong)):
            out.append((type(event).__name__, bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            out.append(("Close", int(event.code)))
        else:
            out.append((type(event).__name__,))
    return out


def reference_events(data: bytes) -> tuple[list[tuple], str]:
    connection = Connection(ConnectionType.SERVER)
    connection.receive_data(data)
    return normalised(connection.events()), connection.state.name


def our_events(data: bytes, chunk: int | None = None,
               compiled: object = frames.compiled_frames) -> tuple[list[tuple], str]:
    connection = FrameConnection(LIMIT, compiled=compiled)
    events = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        connection.receive_data(piece)
        events.extend(connection.events())
    return normalised(events), connection.state.name


@pytest.mark.parametrize("name", SEQUENCES)
def test_same_events_as_wsproto(name):
    data = SEQUENCES[name]
    assert our_events(data) == reference_events(data)
    assert our_events(data, compiled=None) == reference_events(data)  # the Python parser alone


@pytest.mark.parametrize("name", SEQUENCES)
def test_same_events_a_byte_at_a_time(name):
    data = SEQUENCES[name]
    assert our_events(data, chunk=1) == our_events(data)


@pytest.mark.parametrize("event", [
    TextMessage(data=""), TextMessage(data="ünïcode"), BytesMessage(data=b"x" * 125),
    BytesMessage(data=b"x" * 126), BytesMessage(data=b"x" * 65535), BytesMessage(data=b"x" * 65536),
    Ping(payload=b"ping"), Pong(payload=b""), CloseConnection(code=1000, reason="bye"),
    CloseConnection(code=CloseReason.NO_STATUS_RCVD), CloseConnection(code=1005),
    CloseConnection(code=1006), CloseConnection(code=4000, reason="é" * 100),
], ids=repr)
def test_same_frames_out_as_wsproto(event):
    ours, reference = FrameConnection(LIMIT), Connection(ConnectionType.SERVER)
    assert ours.send(event) == bytes(reference.send(event))
    assert ours.state == reference.state


def test_close_handshake_states_match_wsproto():
    for first in ("client", "server"):
        ours, reference = FrameConnection(LIMIT), Connection(ConnectionType.SERVER)
        for connection in (ours, reference):
            if first == "server":
                connection.send(CloseConnection(code=1000))
                connection.receive_data(client_frame(CLOSE, close_payload(1000)))
                list(connection.events())  # wsproto moves its state as events are read
            else:
                connection.receive_data(client_frame(CLOSE, close_payload(1000)))
                list(connection.events())
                connection.send(CloseConnection(code=1000))
        assert ours.state == reference.state


def test_a_frame_over_the_limit_is_refused_from_its_header():
    """Only its header has arrived, and the answer is already 1009 (wsproto would wait and
    hand up the pieces)."""
    connection = FrameConnection(1000)
    frame = client_frame(BINARY, b"x" * 1001)
    connection.receive_data(frame[:20])
    assert normalised(connection.events()) == [("Close", 1009)]


needs_c = pytest.mark.skipif(frames.compiled_frames is None, reason="gateway/ws/_frames.c is not built here")

# Frames of every kind the C reader takes or must leave to Python: whole text and binary
# messages of each length form, and each thing that stops it.
_PAYLOADS = st.one_of(st.binary(max_size=140), st.text(max_size=60).map(str.encode),
                      st.sampled_from([b"\xff", b"ok\xe2\x82", b"\xed\xa0\x80", b"a" * 300,
                                       b"b" * 65536]))
_FRAMES = st.one_of(
    st.builds(client_frame, st.sampled_from([TEXT, BINARY]), _PAYLOADS),
    st.builds(client_frame, st.sampled_from([TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG, 3, 11]),
              st.binary(max_size=130), fin=st.booleans(), rsv=st.sampled_from([0, 0x10, 0x40]),
              masked=st.booleans(), length_bytes=st.sampled_from([None, 0, 2, 8])),
)


def parsed(data: bytes, cuts: list[int], limit: int, compiled) -> tuple:
    """Everything the frame layer reports of `data` fed in pieces at `cuts`: its events,
    whole (a failure's reason text included), and its state."""
    connection = FrameConnection(limit, compiled=compiled)
    events = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        connection.receive_data(data[start:end])
        events += [tuple((type(part), part) for part in event) for event in connection.events()]
    return events, connection.state, connection._failed, bytes(connection._buffer)


@needs_c
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAMES, min_size=1, max_size=6), st.lists(st.integers(0, 70000), max_size=4),
       st.sampled_from([LIMIT, 300, 125, 0]))
def test_the_c_reader_gives_what_the_python_parser_gives(frame_list, cuts, limit):
    data = b"".join(frame_list)
    cuts = sorted({cut for cut in cuts if cut < len(data)})
    assert parsed(data, cuts, limit, frames.compiled_frames) == parsed(data, cuts, limit, None)


@needs_c
def test_the_c_reader_takes_the_commonest_frames_and_stops_before_others():
    parse_plain = frames.compiled_frames.parse_plain
    events: list = []
    texts = client_frame(TEXT, "héllo".encode()) + client_frame(BINARY, b"\x00" * 200)
    big = client_frame(BINARY, b"z" * 70000)
    ping = client_frame(PING, b"p")
    data = texts + big + ping + client_frame(TEXT, b"after")
    assert parse_plain(data, 0, LIMIT, events) == len(texts) + len(big)
    assert events == [(TEXT, "héllo", True), (BINARY, b"\x00" * 200, True), (BINARY, b"z" * 70000, True)]
    # A bytearray (what is buffered across reads) is read the same, from any position.
    assert parse_plain(bytearray(data), len(texts), LIMIT, []) == len(texts) + len(big)
    # Not yet whole, over the limit, fragmented, compressed, not UTF-8: left to Python.
    for stop in (client_frame(BINARY, b"\x00" * 200)[:-1], client_frame(BINARY, b"z" * 301),
                 client_frame(TEXT, b"a", fin=False), client_frame(TEXT, b"a", rsv=0x40),
                 client_frame(TEXT, b"\xff")):
        assert parse_plain(stop, 0, 300, events := []) == 0 and events == []


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=4, max_size=100), st.data())
def test_the_c_unmask_is_its_python_twin(buffer, data):
    start = data.draw(st.integers(4, len(buffer)))
    end = data.draw(st.integers(start, len(buffer)))
    unmask = frames.compiled_frames.unmask
    assert unmask(buffer, start, end) == unmask(bytearray(buffer), start, end) \
        == frames._unmask_py(buffer, start, end)
    for outside in ((3, end), (start, len(buffer) + 1), (start, start - 1)):
        with pytest.raises(ValueError):
            unmask(buffer, *outside)
