"""The fast HTTP/1.1 engine: llhttp (through httptools) parses, encode.py frames responses.

llhttp parses ahead: pipelined requests arrive while an earlier response is still being
written, and the connection protocol queues them (so what the encoder must know of each
request, HEAD or HTTP/1.0, is queued here too). A scanner.Scanner goes in front of llhttp: it
checks what llhttp lets through (the request line, chunk lines, trailers, the head's meaning)
and hands llhttp one checked element at a time, so this engine answers like h11.

Most request heads are of the plainest kind (a GET of HTTP/1.1, keep-alive, no body): those
are read by `wire.parse_head` in one C call, where it is built, and never reach llhttp or the
scanner; it declines every other head, which then goes that full way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httptools

from .encode import ResponseEncoder, status_line
from .engine import Headers, RequestError, RequestHandler, ResponseDefaults
from .scanner import Scanner
from .strict import strip_value
from .wire import parse_head

_OWS = b" \t"


class HttptoolsEngine:
    """Parser callbacks go straight to the handler: no event objects in between."""

    __slots__ = (
        "handler", "parser", "encoder", "scanner", "_url", "_headers", "_framing",
        "_upgrade", "_tail", "_last",
    )
    # The heads llhttp need not see (None: every head goes the full way); a class attribute,
    # so that the tests can hold the full way and this one to the same answers.
    parse_head = parse_head

    def __init__(self, handler: RequestHandler, max_head_size: int,
                 defaults: ResponseDefaults) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.encoder = ResponseEncoder(defaults)
        self.scanner = Scanner(max_head_size, full=False)
        # The request head being parsed: None outside one, and nothing of the last request is
        # kept past its head (an idle connection holds no copy of it).
        self._url = b""
        self._headers: Headers | None = None
        # (HEAD request, HTTP/1.0) per request parsed and not yet answered, oldest first. A
        # list: an empty deque is ten times the size, on every idle connection.
        self._framing: list[tuple[bool, bool]] = []
        self._upgrade = False
        self._tail = b""
        # A request that is not keep-alive was parsed: llhttp refuses what follows it, so
        # nothing more takes the C path.
        self._last = False

    # -- bytes in ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._upgrade:
            # After a protocol switch request nothing more is HTTP/1.1: a switched connection
            # takes its bytes elsewhere, and a refused switch closes after its response.
            return
        scanner = self.scanner
        if scanner.held or scanner.error is not None:
            data = scanner.receive(data)
        pos = 0
        if self.parse_head is not None and scanner.at_head() and not self._last:
            pos = self._plain_heads(data)
        end = len(data)
        parser = self.parser
        while pos < end:
            stop = scanner.scan(data, pos)
            if stop > pos:
                try:
                    parser.feed_data(data if stop - pos == end else memoryview(data)[pos:stop])
                except httptools.HttpParserUpgrade as exc:
                    # A protocol switch request: llhttp stops at the end of its head, body
                    # unread. Unless the connection switches protocol, it is served as a plain
                    # request and the connection closes after it.
                    self._upgrade = True
                    self._tail = data[pos + exc.args[0]:]
                    return
                except httptools.HttpParserCallbackError as exc:
                    cause = exc.__context__
                    if isinstance(cause, RequestError):
                        raise cause from None
                    raise
                except httptools.HttpParserError as exc:
                    raise RequestError(400, _describe_parse_error(exc)) from None
            if stop == pos or scanner.held:
                break
            pos = stop
        if scanner.error is not None:
            raise scanner.error

    def _plain_heads(self, data: bytes) -> int:
        """Serve the plain heads at the start of `data`; returns where the first other one
        (or an incomplete one) starts, for the full way."""
        pos = 0
        parse = self.parse_head
        handler = self.handler
        max_head_size = self.scanner.max_head_size
        framing = self._framing
        while True:
            head = parse(data, pos, max_head_size)  # type: ignore[misc]
            if head is None:
                return pos
            pos, method, target, headers = head
            framing.append((method == "HEAD", False))
            handler.on_request(method, target, "1.1", headers, True, 0, False, False)
            handler.on_request_end()

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        if headers is None:
            return  # a trailer: the scanner checked it, and the app does not see trailers
        lowered = name.lower()
        if value and value[-1] in _OWS:  # llhttp leaves trailing whitespace in
            value = strip_value(lowered, value)
        headers.append((lowered, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        headers = self._headers
        url, self._url, self._headers = self._url, b"", None
        assert headers is not None
        target, length, switching, expect_continue = self.scanner.head(method, url, version, headers)
        http10 = version == "1.0"
        self._framing.append((method == "HEAD", http10))
        keep_alive = parser.should_keep_alive() and not http10 and not switching
        if not keep_alive:
            self._last = True
        self.handler.on_request(
            method, target, version, headers, keep_alive, length, switching, expect_continue,
        )

    def on_body(self, body: bytes) -> None:
        self.handler.on_body(body)

    def on_message_complete(self) -> None:
        self.handler.on_request_end()

    # -- bytes out ---------------------------------------------------------------------

    def start_response(self, status: int, headers: Iterable[Any], body: bytes,
                       more_body: bool, keep_alive: bool) -> tuple[bytes, bool]:
        head_request, http10 = self._framing[0]
        result = self.encoder.start(
            status, headers, body, more_body, keep_alive, head_request, http10
        )
        del self._framing[0]
        return result

    def body(self, data: bytes, more_body: bool) -> bytes:
        return self.encoder.body(data, more_body)

    def file_chunk(self, size: int) -> tuple[bytes, bytes]:
        return self.encoder.file_chunk(size)

    def informational(self, status: int, headers: Headers) -> bytes:
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return status_line(status) + lines + b"\r\n"

    def upgrade_tail(self) -> bytes:
        return self._tail

    def next_cycle(self) -> None:
        """llhttp has already parsed ahead; nothing is held back."""


def _describe_parse_error(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")
