"""The fast HTTP/1.1 engine: llhttp (through httptools) parses, encode.py frames responses.

llhttp parses ahead: pipelined requests arrive while an earlier response is still being
written, and the connection protocol queues them (so what the encoder must know of each
request, HEAD or HTTP/1.0, is queued here too). The checks llhttp leaves to its user (HTTP
version, head size, transfer codings) are made here so this engine answers like h11.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import httptools

from .encode import ResponseEncoder, status_line
from .engine import Headers, RequestError, RequestHandler

# Bytes a header line costs beyond its name and value (": " and CRLF).
_LINE_OVERHEAD = 4
_OWS = b" \t"


class HttptoolsEngine:
    """Parser callbacks go straight to the handler: no event objects in between."""

    __slots__ = (
        "handler", "parser", "encoder", "max_head_size", "_url", "_headers", "_head_size",
        "_in_head", "_began", "_unfinished", "_framing", "_upgrade", "_tail",
    )

    def __init__(self, handler: RequestHandler, max_head_size: int, server_line: bytes,
                 date_source: Any) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.encoder = ResponseEncoder(server_line, date_source)
        self.max_head_size = max_head_size
        self._url = b""
        self._headers: Headers = []
        self._head_size = 0
        self._in_head = False
        self._began = False
        self._unfinished = 0
        # (HEAD request, HTTP/1.0) per request parsed and not yet answered, oldest first.
        self._framing: deque[tuple[bool, bool]] = deque()
        self._upgrade = False
        self._tail = b""

    # -- bytes in ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # An Upgrade or CONNECT request: llhttp stops at the end of its head, body unread.
            # Unless the connection switches protocol, it is served as a plain request and the
            # connection closes after it.
            self._upgrade = True
            self._tail = data[exc.args[0]:]
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, RequestError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            raise RequestError(400, _describe_parse_error(exc)) from None
        # llhttp keeps an unfinished header line to itself, so an unfinished head is measured
        # here: every byte of a read that began inside the head belongs to it.
        if self._in_head:
            if self._began:
                # The unfinished line is what follows the last LF of this read.
                tail = len(data) - data.rfind(b"\n") - 1
                self._unfinished = self._head_size + len(self._url) + tail
            else:
                self._unfinished += len(data)
            if self._unfinished > self.max_head_size:
                raise RequestError(431, "request head too large")

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._unfinished = 0
        self._in_head = True
        self._began = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if value and value[-1] in _OWS:  # RFC 9110 section 5.5: not part of the value
            value = value.rstrip(b" \t")
        self._headers.append((name.lower(), value))
        self._head_size += len(name) + len(value) + _LINE_OVERHEAD

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_size + len(self._url) > self.max_head_size:
            raise RequestError(431, "request head too large")
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise RequestError(505, f"HTTP/{version} is not supported")
        method = parser.get_method().decode("ascii")
        headers = self._headers
        body_expected = False
        expect_continue = False
        for name, value in headers:
            if name == b"content-length":
                body_expected = value != b"0"
            elif name == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise RequestError(501, "only the chunked transfer coding is supported")
                body_expected = True
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = version == "1.1"
        http10 = version == "1.0"
        self._framing.append((method == "HEAD", http10))
        self.handler.on_request(
            method, self._url, version, headers, parser.should_keep_alive() and not http10,
            body_expected, expect_continue,
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
            status, headers, body, more_body, keep_alive and not self._upgrade, head_request, http10
        )
        self._framing.popleft()
        return result

    def body(self, data: bytes, more_body: bool) -> bytes:
        return self.encoder.body(data, more_body)

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
