"""Fuzz `parse_plain` and `unmask` (gateway/ws/_frames.c) through the frame layer, against the
same frame layer without them (`FrameConnection(compiled=None)`: the Python parser and
unmask), which is their reference.

Byte 0 picks the size limit, byte 1 where the bytes are cut in two (0: not cut), the rest is
what the client sends. Both frame layers get the same pieces and must report the same events
(each part's type and value, a failure's reason text included), state and buffered bytes.
The seeds are masked frames of each kind, so that the fuzzer starts inside the C reader's
path rather than at its first check.
"""

from __future__ import annotations

import struct

import harness

(frames,) = harness.import_gateway("gateway.ws.frames")
assert frames.compiled_frames is not None

LIMITS = (1 << 20, 300, 125, 0)
MASK = b"\x12\x34\x56\x78"


def parsed(data: bytes, cut: int, limit: int, compiled: object) -> tuple:
    connection = frames.FrameConnection(limit, compiled=compiled)
    events = []
    for piece in (data[:cut], data[cut:]) if cut else (data,):
        connection.receive_data(piece)
        events += [tuple((type(part), part) for part in event) for event in connection.events()]
    return events, connection.state, connection._failed, bytes(connection._buffer)


def test_one_input(raw: bytes) -> None:
    if len(raw) < 2:
        return
    limit = LIMITS[raw[0] % len(LIMITS)]
    data = raw[2:]
    cut = raw[1] % (len(data) + 1)
    harness.same("the C frame reader differs from the Python parser",
                 parsed(data, cut, limit, frames.compiled_frames), parsed(data, cut, limit, None),
                 data=data, cut=cut, limit=limit)


def frame(first: int, payload: bytes, length_bytes: int = 0) -> bytes:
    size = len(payload)
    if length_bytes == 2 or (not length_bytes and 126 <= size < 65536):
        head = bytes((first, 0x80 | 126)) + struct.pack(">H", size)
    elif length_bytes == 8 or size >= 65536:
        head = bytes((first, 0x80 | 127)) + struct.pack(">Q", size)
    else:
        head = bytes((first, 0x80 | size))
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def seeds() -> list[bytes]:
    streams = [
        frame(0x81, "héllo".encode()) + frame(0x82, bytes(range(200))),
        frame(0x81, b"a" * 130) + frame(0x89, b"p") + frame(0x81, b"b"),
        frame(0x82, b"z" * 70000),
        frame(0x81, b"\xff\xfe") + frame(0x81, b"ok"),
        frame(0x01, b"ab") + frame(0x80, b"cd"),
        frame(0xC1, b"compressed?") + frame(0x81, b"x", length_bytes=2),
        frame(0x88, b"\x03\xe8bye"),
    ]
    return [bytes((i, 7 * i)) + stream for i, stream in enumerate(streams)]


if __name__ == "__main__":
    harness.main(test_one_input, seeds)
