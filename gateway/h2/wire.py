"""HTTP/2 frames as bytes (RFC 9113 section 4 and 6): the constants and the few frames the
server builds itself, shared by the fast engine (engine.py) and the connection (protocol.py).

Each builder returns the whole frame; DATA frames are the exception, their 9-byte header is
built alone so that the body goes out as it is, without a copy per frame.
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_SIZE = 9
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME_SIZE = 16384
MAX_FRAME_SIZE_LIMIT = 2**24 - 1

# Frame types (section 6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS parameters (section 6.5.2; 0x8 is RFC 8441's).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

# length (24 bits, as 16 + 8), type, flags, stream id (the reserved bit included).
_HEADER = struct.Struct(">HBBBL")
unpack_header = _HEADER.unpack_from
_U32 = struct.Struct(">L")
unpack_u32 = _U32.unpack_from
_SETTING = struct.Struct(">HL")
unpack_setting = _SETTING.unpack_from


def frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    return _HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return _HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


def settings_frame(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(code, value) for code, value in values.items()))


SETTINGS_ACK = frame(SETTINGS, ACK, 0)


def goaway_frame(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">LL", last_stream_id, error_code) + debug)


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(error_code))


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))
