"""HTTP/1.1's side of h2c: what the connection needs to hand itself over to HTTP/2.

HTTP/1.1 never imports HTTP/2; the server gives it an `H2CSwitch` with the two hand-overs
(by client preface, by `Upgrade: h2c`) and HTTP/1.1 calls one when the request says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..fields import header_tokens
from ..guards import Ledger
from .engine import Headers

# Request fields that belong to the HTTP/1.1 hop and are not carried onto stream 1.
_HOP_FIELDS = frozenset(
    (b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
     b"transfer-encoding", b"host", b"te")
)


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
    """Each hand-over takes the transport, the bytes read so far and the client's ledger."""

    prior_knowledge: Callable[[asyncio.Transport, bytes, Ledger], None]
    upgrade: Callable[[asyncio.Transport, H2CUpgrade, bytes, Ledger], None]
