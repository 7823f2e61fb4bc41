"""The frame meter against hyperframe: the same frame boundaries whatever the reads are cut
into, the cost of each kind of frame, and batches cut at frame boundaries."""

from __future__ import annotations

import random

from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from gateway.h2.frame_meter import COST_PER_TURN, FRAMES_PER_TURN, PREFACE_SIZE, FrameMeter

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
assert len(PREFACE) == PREFACE_SIZE


def random_frame(rng: random.Random) -> tuple[Frame, int]:
    """A frame and what it should cost, with stream 1 the only stream being served."""
    kind = rng.randrange(8)
    if kind == 0:
        data = DataFrame(1, data=b"x" * rng.randrange(1, 40000))
        if rng.random() < 0.3:
            data.flags.add("END_STREAM")
        return data, 0
    if kind == 1:
        return DataFrame(1), 1  # empty, no END_STREAM
    if kind == 2:
        return DataFrame(3, data=b"late"), 1  # a stream not being served
    if kind == 3:
        return HeadersFrame(5, data=b"\x82" * rng.randrange(1, 300), flags=["END_HEADERS"]), 0
    if kind == 4:
        return PingFrame(0, opaque_data=b"12345678"), 1
    if kind == 5:
        return WindowUpdateFrame(rng.choice((0, 1)), window_increment=1), 1
    if kind == 6:
        return RstStreamFrame(7, error_code=8), 1
    return rng.choice((SettingsFrame(0, settings={4: 65535}), PriorityFrame(9, depends_on=0))), 1


def test_costs_and_boundaries_do_not_depend_on_how_reads_are_cut():
    rng = random.Random(8)
    for _ in range(200):
        frames = [random_frame(rng) for _ in range(rng.randrange(1, 60))]
        wire = PREFACE + b"".join(frame.serialize() for frame, _ in frames)
        expected = sum(cost for _, cost in frames)
        meter = FrameMeter()
        total = fed = 0
        while fed < len(wire):
            read = wire[fed:fed + rng.choice((1, 5, 9, 17, 100, 4096, 70000))]
            while read:  # what a batch leaves is measured again, as the connection does
                cut = meter.measure(read, {1})
                assert 0 < cut <= len(read)
                total += meter.cost
                fed += cut
                read = read[cut:]
        assert total == expected


def test_a_batch_ends_at_a_frame_boundary_when_full():
    pings = b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(100))
    meter = FrameMeter()
    cut = meter.measure(PREFACE + pings, set())
    assert cut == PREFACE_SIZE + COST_PER_TURN * 17  # eight PINGs of 17 bytes each
    assert meter.cost == COST_PER_TURN
    headers = b"".join(HeadersFrame(2 * i + 1, data=b"\x82", flags=["END_HEADERS"]).serialize()
                       for i in range(100))
    meter = FrameMeter()
    cut = meter.measure(PREFACE + headers, set())
    assert cut == PREFACE_SIZE + FRAMES_PER_TURN * 10
    assert meter.cost == 0


def test_a_header_block_in_pieces_is_noticed_until_it_ends():
    meter = FrameMeter()
    meter.measure(PREFACE + HeadersFrame(1, data=b"\x82").serialize(), set())
    assert meter.in_header_block
    meter.measure(ContinuationFrame(1, data=b"\x84").serialize(), set())
    assert meter.in_header_block and meter.cost == 1
    meter.measure(ContinuationFrame(1, data=b"\x86", flags=["END_HEADERS"]).serialize(), set())
    assert not meter.in_header_block
