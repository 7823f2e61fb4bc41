"""HTTP/1.1's side of h2c: what the connection needs to hand itself over to HTTP/2.

HTTP/1.1 never imports HTTP/2; the server gives it an `H2CSwitch` with the two hand-overs
(by client preface, by `Upgrade: h2c`) and HTTP/1.1 calls one when the request says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..asgi import Addresses
from ..fields import header_tokens
from ..guards import Ledger
from .engine import Headers

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
# How much of an unfinished first line is held to tell; a longer one is left to HTTP/1.1 (and
# its --max-head-size). Small, since the line is searched again as each piece comes.
_LINE_HOLD = 8192
# No start line holds these (CR aside, which may come just before its LF).
_CONTROLS = re.compile(rb"[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]")

# Request fields that belong to the HTTP/1.1 hop and are not carried onto stream 1.
_HOP_FIELDS = frozenset(
    (b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
     b"transfer-encoding", b"host", b"te")
)


def speaks_http2(head: bytes | bytearray) -> bool | None:
    """Whether the first bytes on a plain listener are HTTP/2 with prior knowledge (True) or
    HTTP/1.1 (False); None while they cannot tell yet.

    HTTP/2 begins with the connection preface, and an invalid preface is an HTTP/2 connection
    error (RFC 9113 section 3.4), not a request HTTP/1.1 should answer with 400. HTTP/1.1
    owns a first line that looks like its request line (RFC 9112 section 2.2): a method, a
    target, an HTTP-version (or HTTP/0.9's method and target only, which it refuses itself). A
    first line starting with the PRI method, which RFC 9113 section 11.6 reserves for the
    preface, or made of three or more words of which the last is no HTTP-version, is a broken
    preface. Bytes no start line holds (a TLS ClientHello) are HTTP/1.1's to refuse at once;
    others are held until their line ends (up to 8 KiB, past which HTTP/1.1's limits decide)."""
    if len(head) < len(PREFACE) and PREFACE.startswith(head):
        return None
    if head.startswith(PREFACE):
        return True
    end = head.find(b"\n")
    if end < 0:
        return None if len(head) < _LINE_HOLD and _CONTROLS.search(head) is None else False
    line = head[:end].rstrip(b"\r")
    if line.startswith(b"PRI "):
        return True
    words = line.split(b" ")
    return len(words) >= 3 and _HTTP_VERSION.fullmatch(words[-1]) is None


class H2CUpgrade:
    """An `Upgrade: h2c` request (RFC 7540 section 3.2) waiting for its body to arrive."""

    SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"

    def __init__(self, method: str, target: bytes, headers: Headers, settings: bytes,
                 length: int) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.settings = settings
        self.length = length
        self.body: list[bytes] = []
        self.received = 0
        self.ended = False

    @classmethod
    def requested(cls, method: str, target: bytes, headers: Headers) -> H2CUpgrade | None:
        """The pending upgrade if the request asks for h2c properly, else None (served as
        HTTP/1.1, which RFC 9110 section 7.8 allows)."""
        upgrade = connection = b""
        settings: list[bytes] = []
        length = 0
        for name, value in headers:
            if name == b"upgrade":
                upgrade += b"," + value.lower()
            elif name == b"connection":
                connection += b"," + value.lower()
            elif name == b"http2-settings":
                settings.append(value)
            elif name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                return None
        if b"h2c" not in header_tokens((upgrade,)) or len(settings) != 1:
            return None
        tokens = header_tokens((connection,))
        if b"upgrade" not in tokens or b"http2-settings" not in tokens:
            return None
        return cls(method, target, headers, settings[0], length)

    @property
    def complete(self) -> bool:
        return self.ended and self.received >= self.length

    def add_body(self, data: bytes) -> None:
        self.body.append(data)
        self.received += len(data)

    def take_body(self, data: bytes) -> bytes:
        """Keep what is still owed of the body; return what follows it."""
        need = self.length - self.received
        if need > 0 and data:
            self.add_body(data[:need])
            data = data[need:]
        return data

    def request_headers(self) -> Headers:
        """The request as HTTP/2 header fields, for stream 1."""
        authority = next((value for name, value in self.headers if name == b"host"), b"")
        fields = [
            (b":method", self.method.encode("ascii")),
            (b":scheme", b"http"),
            (b":path", self.target),
            (b":authority", authority),
        ]
        fields.extend(item for item in self.headers if item[0] not in _HOP_FIELDS)
        return fields


@dataclass(frozen=True)
class H2CSwitch:
    """Each hand-over takes the transport, the bytes read so far, the client's ledger and the
    connection's (client, server) addresses as HTTP/1.1 saw them."""

    prior_knowledge: Callable[[asyncio.Transport, bytes, Ledger, Addresses], None]
    upgrade: Callable[[asyncio.Transport, H2CUpgrade, bytes, Ledger, Addresses], None]
