"""Which protocol serves a connection: decided once, then out of the way.

Over TLS the ALPN result decides (`h2`, else HTTP/1.1) as soon as the handshake is done; on a
plain listener HTTP/1.1 starts and hands over to HTTP/2 if the first bytes are the HTTP/2
client preface (h2c with prior knowledge). Either way the protocol chosen gets the client's
ledger, which the door (admission.py) took when it admitted the connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from h2.errors import ErrorCodes

from .asgi import Addresses
from .guards import Ledger
from .h1.h2c import H2CSwitch, H2CUpgrade
from .h1.protocol import H1Protocol
from .h2.protocol import H2Protocol
from .tls.sslobject import watch_socket

# RFC 9113 section 9.2.2: over TLS 1.2, HTTP/2 needs an ephemeral key exchange and an AEAD
# cipher; everything else is on the block list.
_ADEQUATE_TLS12 = ("ECDHE-", "DHE-")
_AEAD = ("GCM", "CHACHA20", "CCM")


class ProtocolChoice(asyncio.Protocol):
    """Stands in for the real protocol until the connection is ready (at once on a plain
    listener, once the TLS handshake ends on a TLS one), and hands it the client's ledger from
    the door. `ledger` is None once handed over: the door releases it if it never was."""

    __slots__ = ("make_h1", "make_h2", "ledger", "addresses")

    def __init__(self, make_h1: Callable[[], H1Protocol],
                 make_h2: Callable[[], H2Protocol], ledger: Ledger) -> None:
        self.make_h1 = make_h1
        self.make_h2 = make_h2
        self.ledger: Ledger | None = ledger
        # (client, server) from a PROXY protocol header; None: the socket's own.
        self.addresses: Addresses | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ledger, self.ledger = self.ledger, None
        assert ledger is not None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            watch_socket(ssl_object, transport)
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            h2 = self.make_h2()
            transport.set_protocol(h2)
            h2.connection_made(transport, ledger=ledger, addresses=self.addresses)
            problem = inadequate_security(ssl_object)
            if problem is not None:
                h2.refuse(ErrorCodes.INADEQUATE_SECURITY, problem)
            return
        protocol = self.make_h1()
        transport.set_protocol(protocol)
        protocol.connection_made(transport, ledger, self.addresses)


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

    def prior_knowledge(transport: asyncio.Transport, preamble: bytes, ledger: Ledger,
                        addresses: Addresses) -> None:
        protocol = make_h2()
        transport.set_protocol(protocol)
        protocol.connection_made(transport, preamble, ledger=ledger, addresses=addresses)

    def upgrade(transport: asyncio.Transport, request: H2CUpgrade, preamble: bytes,
                ledger: Ledger, addresses: Addresses) -> None:
        protocol = make_h2()
        transport.set_protocol(protocol)
        protocol.connection_made(transport, preamble, request, ledger=ledger, addresses=addresses)

    return H2CSwitch(prior_knowledge, upgrade)
