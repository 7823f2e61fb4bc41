"""The small interface an HTTP/1.1 engine offers the connection protocol.

An engine is sans-IO: it takes the bytes the client sent and calls the handler back for each
request head, body chunk and request end; it turns the app's response into bytes. h11 is the
reference engine; the httptools engine must behave the same on the same inputs (the tests
feed both), so the connection protocol never knows which one it drives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

Headers = list[tuple[bytes, bytes]]


class RequestError(Exception):
    """The client's request cannot be served; `status` is the 4xx/5xx to answer with."""

    def __init__(self, status: int, reason: str, headers: Headers | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []  # sent with the error response


class ResponseDefaults(Protocol):
    """The fields every response carries (ServerState builds them once, from --server-header,
    --date-header and --header): as lines for the fast engine, as fields for h11."""

    head_lines: bytes  # server and --header fields: b"server: gateway\r\n..." or b""
    header_lines: bytes  # the --header fields alone, for a response that names its own server
    date_line: bytes  # b"date: ...\r\n" or b"", refreshed once a second
    head_fields: list[tuple[bytes, bytes]]  # head_lines as fields
    header_fields: list[tuple[bytes, bytes]]  # header_lines as fields
    date_value: bytes  # date_line's value


class RequestHandler(Protocol):
    """What an engine calls while parsing (the connection protocol)."""

    def on_request(self, method: str, target: bytes, http_version: str, headers: Headers,
                   keep_alive: bool, body_length: int, switching: bool,
                   expect_continue: bool) -> None:
        """A request head, as strict.check_head reads it: `body_length` is 0 (no body), the
        Content-Length, or strict.CHUNKED; `switching` a request to switch protocols
        (Upgrade with `Connection: upgrade`)."""

    def on_body(self, data: bytes) -> None: ...

    def on_request_end(self) -> None: ...


class H1Engine(Protocol):
    """Parser and encoder for one connection, one request/response cycle at a time."""

    def feed(self, data: bytes) -> None:
        """Parse `data`; raises RequestError on a request that cannot be served."""

    def start_response(self, status: int, headers: Iterable[Any], body: bytes,
                       more_body: bool, keep_alive: bool) -> tuple[bytes, bool]:
        """Bytes for the head and first body chunk, and whether the connection may be reused
        after this response. Raises TypeError/ValueError on headers that cannot be sent."""

    def body(self, data: bytes, more_body: bool) -> bytes:
        """Bytes for a further body chunk. Raises BodyLengthError on a Content-Length breach."""

    def file_chunk(self, size: int) -> tuple[bytes, bytes]:
        """The bytes that go before and after `size` body bytes the connection writes itself
        (a file the kernel copies to the socket), counted against the response's framing like
        a chunk from `body`. Only for a response whose body goes on the wire (not HEAD, 204 or
        304: the exchange sends no file for those). Raises BodyLengthError like `body`."""

    def informational(self, status: int, headers: Headers) -> bytes: ...

    def upgrade_tail(self) -> bytes:
        """After an Upgrade request, the bytes that followed it unparsed."""

    def next_cycle(self) -> None:
        """The response is complete and the connection goes on: parse what is buffered."""


class BodyLengthError(Exception):
    """The response body disagrees with its declared Content-Length."""
