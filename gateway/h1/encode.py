"""Response framing for the fast engine: RFC 9112 section 6 as h11 applies it.

The tests feed this encoder and h11 the same responses and check that an HTTP client reads the
same thing from both. Everything here runs once per response, so it is written for speed:
header names are checked through a cache and all values are checked in one pass.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Any

from ..fields import CONTROL_CHARACTERS_MESSAGE, lower_name
from .engine import BodyLengthError, ResponseDefaults

# Control characters other than HTAB; CR and LF are counted separately (see _join_lines).
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

CONTENT_LENGTH = b"content-length"
TRANSFER_ENCODING = b"transfer-encoding"
CONNECTION = b"connection"
SERVER = b"server"
DATE = b"date"
_SPECIAL = frozenset((CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION, SERVER, DATE))

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

    def __init__(self, defaults: ResponseDefaults) -> None:
        self.mode = MODE_NONE
        self.remaining = 0
        self.head_lines = defaults.head_lines
        self.defaults = defaults  # its date_line changes once a second

    def start(self, status: int, headers: Iterable[Any], body: bytes, more_body: bool,
              keep_alive: bool, head_request: bool, http10: bool) -> tuple[bytes | list[bytes], bool]:
        lines: list[bytes] = []
        content_length: bytes | None = None
        chunked = False
        head_lines = self.head_lines
        date_line = self.defaults.date_line
        for header in headers:
            try:
                name, value = header
            except (TypeError, ValueError):
                raise ValueError(f"each header must be a [name, value] pair, got {header!r}") from None
            if type(value) is not bytes:
                raise TypeError(f"header {name!r}: values must be bytes, got {type(value).__name__}")
            lname = lower_name(name)
            if lname in _SPECIAL:
                if lname == CONTENT_LENGTH:
                    if content_length is not None and value != content_length:
                        raise ValueError("conflicting Content-Length headers")
                    content_length = value
                    continue
                if lname == TRANSFER_ENCODING:
                    if value.strip().lower() != b"chunked" or chunked:
                        raise ValueError("only 'Transfer-Encoding: chunked' can be sent")
                    chunked = True
                elif lname == CONNECTION:
                    if b"close" in value.lower():
                        keep_alive = False
                    continue
                elif lname == SERVER:
                    head_lines = self.defaults.header_lines
                else:
                    date_line = b""
            lines.append(name + b": " + value)

        no_body = head_request or status in _NO_BODY_STATUS
        if content_length is not None:
            length = _parse_length(content_length)
            lines.append(b"content-length: " + content_length)
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
            lines.append(b"content-length: %d" % len(body))
            self.mode = MODE_NONE if head_request else MODE_LENGTH
            self.remaining = len(body)
        elif head_request:
            self.mode = MODE_NONE
        elif http10:
            self.mode = MODE_CLOSE
            keep_alive = False
        else:
            lines.append(b"Transfer-Encoding: chunked")
            self.mode = MODE_CHUNKED
        if not keep_alive:
            lines.append(b"Connection: close")

        head = b"".join((status_line(status), head_lines, date_line, _join_lines(lines)))
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


def _join_lines(lines: list[bytes]) -> bytes:
    """Join header lines, refusing values that would split a line or smuggle a header."""
    if not lines:
        return b"\r\n"
    block = b"\r\n".join(lines)
    separators = len(lines) - 1
    if (
        block.count(b"\n") != separators
        or block.count(b"\r") != separators
        or _CTL.search(block) is not None
    ):
        raise ValueError(CONTROL_CHARACTERS_MESSAGE)
    return block + b"\r\n\r\n"


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
