"""Response framing for the fast engine: RFC 9112 section 6 as h11 applies it.

The tests feed this encoder and h11 the same responses and check that an HTTP client reads the
same thing from both. Everything here runs once per response, so it is written for speed:
the fields are checked and joined by `wire.frame_headers`, in C where it is built.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from typing import Any

from ..fields import CONTROL_CHARACTERS_MESSAGE
from .engine import BodyLengthError, ResponseDefaults
from .wire import frame_headers, frame_whole

_NO_BODY_STATUS = frozenset((204, 304))
# A body chunk this large goes out beside its framing, not copied into one bytes with it: the
# connection writes the pieces with writelines (a download of 1 MiB bodies paid a copy each).
GATHER_FROM = 16 * 1024
_STATUS_LINES: dict[int, bytes] = {}

MODE_NONE = 0  # no body on the wire (HEAD, 204, 304)
MODE_LENGTH = 1
MODE_CHUNKED = 2
MODE_CLOSE = 3  # HTTP/1.0 client, unknown length: the body ends when the connection does


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = http.HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        _STATUS_LINES[status] = line
    return line


class ResponseEncoder:
    """Frames one response at a time; `start` decides the framing, `body` applies it."""

    __slots__ = ("mode", "remaining", "head_lines", "defaults")
    # The commonest response made whole in one C call (`wire.frame_whole`); None makes every
    # response the way below, the reference the tests hold the C call to.
    whole = staticmethod(frame_whole) if frame_whole is not None else None

    def __init__(self, defaults: ResponseDefaults) -> None:
        self.mode = MODE_NONE
        self.remaining = 0
        self.head_lines = defaults.head_lines
        self.defaults = defaults  # its date_line changes once a second

    def start(self, status: int, headers: Iterable[Any], body: bytes, more_body: bool,
              keep_alive: bool, head_request: bool, http10: bool) -> tuple[bytes | list[bytes], bool]:
        whole = self.whole
        if whole is not None and not more_body and not head_request and len(body) < GATHER_FROM \
                and status not in _NO_BODY_STATUS:
            data = whole(headers, body, status_line(status), self.head_lines,
                         self.defaults.date_line, keep_alive)
            if data is not NotImplemented:
                self.mode = MODE_LENGTH
                self.remaining = 0
                return data, keep_alive
        block, content_length, chunked, close, server, date, bad = frame_headers(headers)
        if close:
            keep_alive = False
        defaults = self.defaults
        head_lines = defaults.header_lines if server else self.head_lines
        date_line = b"" if date else defaults.date_line
        framing = b""
        no_body = head_request or status in _NO_BODY_STATUS
        if content_length is not None:
            length = _parse_length(content_length)
            framing = b"content-length: " + content_length + b"\r\n"
            if no_body:
                self.mode = MODE_NONE
            else:
                self.mode = MODE_LENGTH
                self.remaining = length
        elif chunked:
            self.mode = MODE_NONE if no_body else MODE_CHUNKED
        elif status in _NO_BODY_STATUS:
            self.mode = MODE_NONE
        elif not more_body:
            framing = b"content-length: %d\r\n" % len(body)
            self.mode = MODE_NONE if head_request else MODE_LENGTH
            self.remaining = len(body)
        elif head_request:
            self.mode = MODE_NONE
        elif http10:
            self.mode = MODE_CLOSE
            keep_alive = False
        else:
            framing = b"Transfer-Encoding: chunked\r\n"
            self.mode = MODE_CHUNKED
        if bad:
            raise ValueError(CONTROL_CHARACTERS_MESSAGE)
        head = b"".join((status_line(status), head_lines, date_line, block, framing,
                         b"\r\n" if keep_alive else b"Connection: close\r\n\r\n"))
        if body or not more_body:
            framed = self.body(body, more_body)
            if type(framed) is list:
                return [head, *framed], keep_alive
            return head + framed, keep_alive
        return head, keep_alive

    def body(self, data: bytes, more_body: bool) -> bytes | list[bytes]:
        """The chunk as it goes on the wire: one bytes, or pieces for a large chunk (see
        GATHER_FROM)."""
        mode = self.mode
        if mode == MODE_LENGTH:
            remaining = self.remaining - len(data)
            if remaining < 0:
                raise BodyLengthError(
                    f"response body is longer than its Content-Length ({self.remaining} bytes"
                    " left, got {len(data)})"
                )
            if not more_body and remaining:
                raise BodyLengthError(
                    f"response ended {remaining} bytes short of its Content-Length"
                )
            self.remaining = remaining
            if len(data) >= GATHER_FROM:
                return [data]
            return data
        if mode == MODE_CHUNKED:
            if len(data) >= GATHER_FROM:
                return [b"%x\r\n" % len(data), data, b"\r\n" if more_body else b"\r\n0\r\n\r\n"]
            if data:
                framed = b"%x\r\n%b\r\n" % (len(data), data)
                return framed if more_body else framed + b"0\r\n\r\n"
            return b"" if more_body else b"0\r\n\r\n"
        if mode == MODE_CLOSE:
            return [data] if len(data) >= GATHER_FROM else data
        return b""

    def file_chunk(self, size: int) -> tuple[bytes, bytes]:
        """What goes before and after `size` body bytes the connection sends itself (a file
        the kernel copies), the response going on after them."""
        mode = self.mode
        if mode == MODE_LENGTH:
            if size > self.remaining:
                raise BodyLengthError(
                    f"response body is longer than its Content-Length ({self.remaining} bytes"
                    f" left, got {size})"
                )
            self.remaining -= size
        elif mode == MODE_CHUNKED and size:  # (an empty chunk would end the body)
            return b"%x\r\n" % size, b"\r\n"
        return b"", b""


def _parse_length(value: bytes) -> int:
    if type(value) is not bytes:
        raise TypeError(f"header values must be bytes, got {type(value).__name__}")
    if not value.isdigit():
        raise ValueError(f"invalid Content-Length {value!r}")
    return int(value)


def simple_response(status: int, reason: str, head_lines: bytes, date_line: bytes,
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete error response that closes the connection, written without an engine because
    the engine may be the thing that failed."""
    phrase = status_line(status)[13:-2].decode("latin-1")
    body = f"{phrase}: {reason}\n".encode("utf-8", "replace")
    return b"".join((
        status_line(status), head_lines, date_line,
        *(name + b": " + value + b"\r\n" for name, value in headers),
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n", body,
    ))
