"""Frame headers read ahead of h2: what a read costs the client's budget, and where a batch ends.

h2 parses all of a read at once and answers every PING and SETTINGS in it, so a client sending
control frames as fast as it can would have the event loop do nothing else. The meter reads
only the 9-byte header of each frame (RFC 9113 section 4.1), charges the frames that carry no
request, and stops once a batch is full (`FRAMES_PER_TURN`, `COST_PER_TURN`): the connection
feeds h2 up to there and gives the loop back to other connections before going on.
"""

from __future__ import annotations

from collections.abc import Container

PREFACE_SIZE = 24  # "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", before the first frame
FRAME_HEADER_SIZE = 9
# Frames parsed per turn of the event loop, and of them frames that carry no request. h2 takes
# about 5 us per PING, so a turn of a flood costs less than one ordinary request does, and a
# client making requests one after another beside flooders keeps more than half its rate
# (measured with 256 frames a turn: a fifth). Ordinary reads rarely hold more: h2load -m32
# sends 32 HEADERS at a time, a browser a few SETTINGS, WINDOW_UPDATE and PRIORITY frames.
FRAMES_PER_TURN = 32
COST_PER_TURN = 8

_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
_PUSH_PROMISE, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
_END_STREAM = 0x1
_END_HEADERS = 0x4
# What a frame costs when it carries no request: control frames are answered or acted on
# without the app, so each costs one; HEADERS and DATA with data are what the budget is for.
_COST = bytes(
    1 if kind in (_PRIORITY, _RST_STREAM, _SETTINGS, _PING, _WINDOW_UPDATE, _CONTINUATION) else 0
    for kind in range(10)
) + b"\x01" * 246  # types h2 ignores (RFC 9113 section 5.5) still cost their parsing


class FrameMeter:
    """Follows the frame boundaries of one connection's bytes from the client."""

    __slots__ = ("skip", "partial", "cost", "in_header_block")

    def __init__(self) -> None:
        self.skip = PREFACE_SIZE  # bytes to pass over before the next frame header
        self.partial = b""  # the start of a frame header that a read cut in two
        self.cost = 0  # of the bytes measured last
        self.in_header_block = False  # HEADERS came without END_HEADERS; CONTINUATION is due

    def measure(self, data: bytes | memoryview, streams: Container[int]) -> int:
        """How many bytes of `data` to feed h2 in this turn (all of them unless the batch is
        full, then up to a frame boundary); `cost` is set to what those frames cost.
        `streams` are the streams being served: DATA for any other stream makes the server
        reset it, and costs one."""
        size = len(data)
        position = self.skip
        cost = 0
        frames = 0
        partial = self.partial
        if partial:
            need = FRAME_HEADER_SIZE - len(partial)
            if size < need:
                self.partial = partial + bytes(data)
                self.cost = 0
                return size
            self.partial = b""
            cost, position = self._frame(partial + bytes(data[:need]), 0, need, streams)
            frames = 1
        while position < size:
            if frames >= FRAMES_PER_TURN or cost >= COST_PER_TURN:
                self.skip = 0
                self.cost = cost
                return position
            if size - position < FRAME_HEADER_SIZE:
                self.partial = bytes(data[position:])
                position = size
                break
            frame_cost, position = self._frame(data, position, position + FRAME_HEADER_SIZE, streams)
            cost += frame_cost
            frames += 1
        self.skip = position - size
        self.cost = cost
        return size

    def _frame(self, header: bytes | memoryview, start: int, payload_start: int,
               streams: Container[int]) -> tuple[int, int]:
        """(cost, where the frame ends) for the frame whose header is at `start`."""
        length = (header[start] << 16) | (header[start + 1] << 8) | header[start + 2]
        kind = header[start + 3]
        flags = header[start + 4]
        cost = _COST[kind]
        if kind == _DATA:
            empty = length == 0 and not flags & _END_STREAM
            if empty or int.from_bytes(header[start + 5:start + 9], "big") & 0x7FFFFFFF not in streams:
                cost = 1
        elif kind in (_HEADERS, _PUSH_PROMISE):
            self.in_header_block = not flags & _END_HEADERS
        elif kind == _CONTINUATION and flags & _END_HEADERS:
            self.in_header_block = False
        return cost, payload_start + length
