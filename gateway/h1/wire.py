"""The HTTP/1.1 hot path's C functions (`_wire.c`), and what stands in for them.

`parse_head` reads a request head of the plainest kind in one call, in place of llhttp's
callbacks and the scanner's checks; it declines (None) everything else, which then goes the
full way, so it is None where the extension is not built. `frame_headers` checks and joins a
response's fields; `frame_headers_py` is its Python twin: the reference the tests hold the C
function to, and what runs where the extension is not built or the fields are not a list or
tuple of pairs. `frame_whole` makes the commonest response whole (head and body in one
bytes) or declines it; its reference is the encoder's own way (encode.py), and it is None
where the extension is not built. `make_scope` makes asgi.http_scope's dict for a target
without percent-escapes from `asgi.scope_template`, or declines; http_scope is its reference.
The C functions are measured in bench/ (the h1 and h1-tls rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..fields import has_control_characters, lower_name

CONTENT_LENGTH = b"content-length"
TRANSFER_ENCODING = b"transfer-encoding"
CONNECTION = b"connection"
SERVER = b"server"
DATE = b"date"
_SPECIAL = frozenset((CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION, SERVER, DATE))

# (lines, Content-Length value or None, chunked, Connection: close asked, a Server field, a
# Date field, a value with a control byte)
Framed = tuple[bytes, "bytes | None", bool, bool, bool, bool, bool]


def frame_headers_py(headers: Iterable[Any]) -> Framed:
    """The app's fields as `name: value` lines, less Content-Length and Connection, which the
    encoder writes itself. Raises TypeError or ValueError for a field the app got wrong; a
    value with a control byte is reported, not raised, as the encoder refuses it only after
    the Content-Length's own check."""
    lines: list[bytes] = []
    content_length: bytes | None = None
    chunked = close = server = date = bad = False
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
                    close = True
                continue
            elif lname == SERVER:
                server = True
            else:
                date = True
        if has_control_characters(value):
            bad = True
        lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines), content_length, chunked, close, server, date, bad


try:
    from ._wire import frame_headers as _frame_headers_c
    from ._wire import frame_whole, make_scope, parse_head
except ImportError:  # built without a C compiler: the full path and the Python twins
    parse_head = None
    _frame_headers_c = None
    frame_whole = None
    make_scope = None


def frame_headers(headers: Iterable[Any]) -> Framed:
    """`frame_headers_py`'s result, from C where it can."""
    if _frame_headers_c is not None:
        framed = _frame_headers_c(headers)
        if framed is not NotImplemented:
            return framed
    return frame_headers_py(headers)
