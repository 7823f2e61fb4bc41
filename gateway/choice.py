"""Which protocol serves a connection: decided once, then out of the way.

Over TLS the ALPN result decides (`h2`, else HTTP/1.1) as soon as the handshake is done; on a
plain listener HTTP/1.1 starts and hands over to HTTP/2 if the first bytes are the HTTP/2
client preface (h2c with prior knowledge).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from h2.errors import ErrorCodes

from .guards import Ledger
from .h1.h2c import H2CSwitch, H2CUpgrade
from .h2.protocol import H2Protocol

# RFC 9113 section 9.2.2: over TLS 1.2, HTTP/2 needs an ephemeral key exchange and an AEAD
# cipher; everything else is on the block list.
_ADEQUATE_TLS12 = ("ECDHE-", "DHE-")
_AEAD = ("GCM", "CHACHA20", "CCM")


class ALPNChoice(asyncio.Protocol):
    """Stands in for the real protocol until the TLS handshake ends."""

    def __init__(self, make_h1: Callable[[], asyncio.Protocol],
                 make_h2: Callable[[], H2Protocol]) -> None:
        self.make_h1 = make_h1
        self.make_h2 = make_h2

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            protocol: asyncio.Protocol = self.make_h2()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            problem = inadequate_security(ssl_object)
            if problem is not None:
                protocol.refuse(ErrorCodes.INADEQUATE_SECURITY, problem)  # type: ignore[attr-defined]
            return
        protocol = self.make_h1()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


def inadequate_security(ssl_object: ssl.SSLObject) -> str | None:
    version = ssl_object.version()
    if version == "TLSv1.3":
        return None
    if version != "TLSv1.2":
        return f"HTTP/2 needs TLS 1.2 or newer, the client negotiated {version}"
    cipher = (ssl_object.cipher() or ("",))[0]
    if cipher.startswith(_ADEQUATE_TLS12) and any(mode in cipher for mode in _AEAD):
        return None
    return f"cipher {cipher} is on the HTTP/2 block list (RFC 9113 section 9.2.2)"


def h2c_switch(make_h2: Callable[[], H2Protocol]) -> H2CSwitch:
    """The hand-overs HTTP/1.1 calls on a plain listener: on the HTTP/2 preface, and after
    answering `Upgrade: h2c` with 101."""

    def prior_knowledge(transport: asyncio.Transport, preamble: bytes, ledger: Ledger) -> None:
        protocol = make_h2()
        transport.set_protocol(protocol)
        protocol.connection_made(transport, preamble, ledger=ledger)

    def upgrade(transport: asyncio.Transport, request: H2CUpgrade, preamble: bytes,
                ledger: Ledger) -> None:
        protocol = make_h2()
        transport.set_protocol(protocol)
        protocol.connection_made(transport, preamble, request, ledger)

    return H2CSwitch(prior_knowledge, upgrade)
