"""gateway's permessage-deflate (gateway/ws/deflate.py in the frame layer) against wsproto's, the
reference: for every parameter a client may negotiate, the same client frames give the same
events, and the same messages go out as the same bytes, context takeover carried from message
to message. Then what wsproto does not bound or gets wrong, checked on ours alone: RSV1 where
it may not be, corrupt data, and a deflate bomb refused while it inflates."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ws_frames import BINARY, CONTINUATION, PING, TEXT, client_frame, normalised
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage
from wsproto.extensions import PerMessageDeflate

from gateway.ws.frames import FrameConnection
from gateway.ws.handshake import negotiate_deflate

LIMIT = 1 << 20
OFFERS = [
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; client_max_window_bits=9",
    "permessage-deflate; server_max_window_bits=9",
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
]


def pair(offer: str, limit: int = LIMIT) -> tuple[FrameConnection, Connection, Connection]:
    """Our server, wsproto's server and wsproto's client, all agreed on `offer`'s answer."""
    ours, answer = negotiate_deflate([offer], limit)
    assert ours is not None and answer is not None
    reference_extension = PerMessageDeflate()
    parameters = reference_extension.accept(offer)
    assert answer.decode() == "; ".join(filter(None, ["permessage-deflate", parameters]))
    client_extension = PerMessageDeflate()
    client_extension.finalize(answer.decode())
    return (FrameConnection(limit, ours),
            Connection(ConnectionType.SERVER, extensions=[reference_extension]),
            Connection(ConnectionType.CLIENT, extensions=[client_extension]))


def feed(connection, data: bytes, chunk: int | None = None) -> list[tuple]:
    events = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        connection.receive_data(piece)
        events.extend(connection.events())
    return normalised(events)


MESSAGES = [
    TextMessage(data="hello"),
    TextMessage(data="hello"),  # the second one leans on the first's context
    BytesMessage(data=bytes(range(256)) * 40),
    TextMessage(data=""),
    BytesMessage(data=b""),
    TextMessage(data='{"user": "ünïcode ✓", "items": [1, 2, 3]}' * 50),
    BytesMessage(data=b"z" * 200_000),
]


@pytest.mark.parametrize("offer", OFFERS)
def test_client_messages_give_the_same_events_as_wsproto(offer):
    ours, reference, client = pair(offer)
    data = b"".join(client.send(message) for message in MESSAGES)
    expected = feed(reference, data)
    assert len(expected) == len(MESSAGES)
    assert feed(ours, data) == expected


@pytest.mark.parametrize("offer", OFFERS[:4])
def test_a_byte_at_a_time_gives_the_same_events(offer):
    ours, reference, client = pair(offer)
    data = b"".join(client.send(message) for message in MESSAGES[:6])
    assert feed(ours, data, chunk=1) == feed(reference, data)


@pytest.mark.parametrize("offer", OFFERS)
def test_fragmented_compressed_messages_give_the_same_events(offer):
    ours, reference, client = pair(offer)
    text = "fragmented and deflated ✓ " * 300
    data = b"".join([
        client.send(TextMessage(data=text[:1000], message_finished=False)),
        client.send(TextMessage(data=text[1000:5000], message_finished=False)),
        client.send(TextMessage(data=text[5000:])),
        client.send(BytesMessage(data=b"ab" * 3000, message_finished=False)),
        client.send(BytesMessage(data=b"")),
        client.send(TextMessage(data="after")),
    ])
    assert feed(ours, data) == feed(reference, data)


@pytest.mark.parametrize("offer", OFFERS)
def test_the_same_frames_go_out_as_wsproto(offer):
    ours, reference, client = pair(offer)
    frames = []
    for message in MESSAGES + MESSAGES:
        frames.append(ours.send(message))
        assert frames[-1] == bytes(reference.send(message))
        assert frames[-1][0] & 0x40, "a message went out without RSV1"
    # And the client reads them back (the context it keeps matches ours).
    client.receive_data(b"".join(frames))
    assert normalised(client.events()) == normalised(MESSAGES + MESSAGES)


@settings(max_examples=60, deadline=None)
@given(offer=st.sampled_from(OFFERS),
       messages=st.lists(st.one_of(st.text(max_size=300).map(lambda text: TextMessage(data=text)),
                                   st.binary(max_size=300).map(lambda data: BytesMessage(data=data))),
                         max_size=12))
def test_any_messages_both_ways_match_wsproto(offer, messages):
    ours, reference, client = pair(offer)
    data = b"".join(client.send(message) for message in messages)
    assert feed(ours, data) == feed(reference, data)
    for message in messages:
        assert ours.send(message) == bytes(reference.send(message))


# -- what wsproto does not bound, or gets wrong: ours alone -----------------------------------------


def deflated(data: bytes, wbits: int = 15) -> bytes:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -wbits)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def ours_alone(limit: int = LIMIT, offer: str = "permessage-deflate") -> FrameConnection:
    deflate, _ = negotiate_deflate([offer], limit)
    return FrameConnection(limit, deflate)


@pytest.mark.parametrize("frames", [
    client_frame(PING, b"p", rsv=0x40),
    client_frame(TEXT, deflated(b"ab"), fin=False, rsv=0x40)
    + client_frame(CONTINUATION, deflated(b"cd"), rsv=0x40),
    client_frame(TEXT, b"hi", rsv=0x20),
    client_frame(TEXT, b"hi", rsv=0x60),
], ids=["RSV1 on a ping", "RSV1 on a continuation", "RSV2", "RSV1 and RSV2"])
def test_reserved_bits_where_deflate_does_not_allow_them_are_a_protocol_error(frames):
    events = feed(ours_alone(), frames)
    assert events[-1] == ("Close", 1002)
    assert ("TextMessage", "abcd", True) not in events


def test_rsv1_without_deflate_agreed_is_a_protocol_error():
    assert feed(FrameConnection(LIMIT), client_frame(TEXT, deflated(b"hi"), rsv=0x40)) == [("Close", 1002)]


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x07" + b"\x00" * 20],
                         ids=["invalid block type", "bad stored length"])
def test_corrupt_deflate_data_closes_with_1007(payload):
    assert feed(ours_alone(), client_frame(BINARY, payload, rsv=0x40)) == [("Close", 1007)]


def test_compressed_text_that_is_not_utf8_closes_with_1007():
    assert feed(ours_alone(), client_frame(TEXT, deflated(b"\xff\xfe"), rsv=0x40)) == [("Close", 1007)]


def test_a_ping_between_compressed_fragments_keeps_the_message_compressed():
    """RFC 6455 section 5.4 lets a control frame sit between fragments; the continuation after
    it is still part of the compressed message."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    first = compressor.compress(b"hello ") + compressor.flush(zlib.Z_SYNC_FLUSH)
    last = (compressor.compress(b"world") + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    data = (client_frame(TEXT, first, fin=False, rsv=0x40) + client_frame(PING, b"p")
            + client_frame(CONTINUATION, last))
    assert feed(ours_alone(), data) == [
        ("TextMessage", "hello ", False), ("Ping", b"p"), ("TextMessage", "world", True)]


def test_a_message_that_fills_the_limit_exactly_is_accepted():
    data = client_frame(BINARY, deflated(b"x" * 1000), rsv=0x40)
    assert feed(ours_alone(limit=1000), data) == [("BytesMessage", b"x" * 1000, True)]


def test_a_deflate_bomb_is_refused_while_it_inflates():
    """64 MiB of zeros deflate to about 64 KiB, under a 1 MiB limit: the answer is 1009, and
    the server never held more than about the limit while finding out."""
    bomb = client_frame(BINARY, deflated(bytes(64 << 20)), rsv=0x40)
    assert len(bomb) < LIMIT
    connection = ours_alone()
    tracemalloc.start()
    try:
        events = feed(connection, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == [("Close", 1009)]
    assert peak < 4 * LIMIT, f"inflating the bomb held {peak >> 20} MiB"


def test_a_bomb_spread_over_fragments_is_refused_once_the_message_passes_the_limit():
    """Each fragment inflates under the limit; together they pass it."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    frames = [client_frame(BINARY if i == 0 else CONTINUATION,
                           compressor.compress(bytes(300_000)) + compressor.flush(zlib.Z_SYNC_FLUSH),
                           fin=False, rsv=0x40 if i == 0 else 0) for i in range(4)]
    events = feed(ours_alone(), b"".join(frames))
    assert events[-1] == ("Close", 1009)
    assert sum(len(event[1]) for event in events[:-1]) <= LIMIT


def test_the_limit_is_per_message():
    """Messages that each fit are all accepted, however much they add up to."""
    connection = ours_alone(limit=100_000)
    data = b"".join(client_frame(BINARY, deflated(bytes(90_000)), rsv=0x40) for _ in range(20))
    events = feed(connection, data)
    assert len(events) == 20 and all(event == ("BytesMessage", bytes(90_000), True) for event in events)


def test_no_context_takeover_starts_every_message_afresh():
    """With client_no_context_takeover a message that refers back into the previous one is
    corrupt: its decompressor was dropped."""
    connection = ours_alone(offer="permessage-deflate; client_no_context_takeover")
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    text = b"the same words again and again " * 4
    first = (compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    second = (compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]  # a back-reference
    events = feed(connection, client_frame(TEXT, first, rsv=0x40) + client_frame(TEXT, second, rsv=0x40))
    assert events[0] == ("TextMessage", text.decode(), True)
    assert events[1] == ("Close", 1007)
