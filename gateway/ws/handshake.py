"""The WebSocket opening handshake, for both carriers: what the client asked for (RFC 6455
section 4.2.1 over HTTP/1.1, RFC 8441 section 4 over HTTP/2) and what the server answers.

The request is checked before the app is called; a bad one gets a 400 naming the version we
speak. Only what the app decides (accept or deny, subprotocol, extra headers) waits for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from wsproto.extensions import PerMessageDeflate
from wsproto.handshake import server_extensions_handshake

from ..fields import header_tokens
from .deflate import MessageDeflate

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION_FIELD = (b"sec-websocket-version", b"13")


class HandshakeError(Exception):
    """The client asked for a WebSocket the wrong way; it gets a 400 with `VERSION_FIELD`."""


@dataclass
class WebSocketRequest:
    """What the client offered: subprotocols in its order of preference, extension offers,
    and (HTTP/1.1 only) the key the accept field answers."""

    subprotocols: list[str] = field(default_factory=list)
    extension_offers: list[str] = field(default_factory=list)
    key: bytes | None = None


def wants_websocket(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """An HTTP/1.1 request that asks to upgrade to WebSocket (`Upgrade: websocket` with
    `Connection: upgrade`); any other Upgrade request is served as plain HTTP."""
    upgrade: list[bytes] = []
    connection: list[bytes] = []
    for name, value in headers:
        if name == b"upgrade":
            upgrade.append(value)
        elif name == b"connection":
            connection.append(value)
    return b"websocket" in header_tokens(upgrade) and b"upgrade" in header_tokens(connection)


def read_request(method: str, headers: Iterable[tuple[bytes, bytes]], http2: bool) -> WebSocketRequest:
    """The client's offer, checked; raises HandshakeError with a reason for the log."""
    request = WebSocketRequest()
    versions: list[bytes] = []
    keys: list[bytes] = []
    for name, value in headers:
        if name == b"sec-websocket-version":
            versions.append(value.strip())
        elif name == b"sec-websocket-key":
            keys.append(value.strip())
        elif name == b"sec-websocket-protocol":
            request.subprotocols.extend(
                token.strip().decode("latin-1") for token in value.split(b",") if token.strip()
            )
        elif name == b"sec-websocket-extensions":
            request.extension_offers.extend(
                offer.strip().decode("latin-1") for offer in value.split(b",") if offer.strip()
            )
    expected_method = "CONNECT" if http2 else "GET"
    if method != expected_method:
        raise HandshakeError(f"a WebSocket handshake must be a {expected_method} request, not {method}")
    if versions != [b"13"]:
        raise HandshakeError(f"unsupported Sec-WebSocket-Version {b', '.join(versions)!r}")
    if not http2:
        if len(keys) != 1 or not _valid_key(keys[0]):
            raise HandshakeError("missing or malformed Sec-WebSocket-Key")
        request.key = keys[0]
    return request


def _valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


def accept_value(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def negotiate_deflate(offers: list[str], max_size: int) -> tuple[MessageDeflate | None, bytes | None]:
    """permessage-deflate (RFC 7692) when the client offers it acceptably: our codec with the
    agreed parameters and the Sec-WebSocket-Extensions value to answer with, or (None, None).
    Offers are checked here first (section 5: unknown or repeated parameters and bad values
    decline that offer), so that wsproto, which settles the parameters, only ever sees
    well-formed ones."""
    for offer in offers:
        normalised = _deflate_offer(offer)
        if normalised is None:
            continue
        agreed = PerMessageDeflate()
        answer = server_extensions_handshake([normalised], [agreed])
        if answer is not None and agreed.enabled():
            return MessageDeflate(
                max_size,
                server_no_context_takeover=agreed.server_no_context_takeover,
                client_no_context_takeover=agreed.client_no_context_takeover,
                server_max_window_bits=agreed.server_max_window_bits,
                client_max_window_bits=agreed.client_max_window_bits,
            ), answer
    return None, None


def _deflate_offer(offer: str) -> str | None:
    """The offer with quotes dropped, if it is a permessage-deflate offer we can accept."""
    name, *parameters = (part.strip() for part in offer.split(";"))
    if name.lower() != "permessage-deflate":
        return None
    seen: set[str] = set()
    out = [name.lower()]
    for parameter in parameters:
        key, has_value, value = (piece.strip() for piece in parameter.partition("="))
        key = key.lower()
        value = value.strip('"') if len(value) >= 2 and value[0] == value[-1] == '"' else value
        if key in seen:
            return None
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if has_value:
                return None
            out.append(key)
        elif key in ("server_max_window_bits", "client_max_window_bits"):
            if has_value:
                # zlib cannot make a raw deflate stream with an 8-bit window for us to send.
                low = 9 if key == "server_max_window_bits" else 8
                # ASCII digits: str.isdigit() also takes latin-1's superscripts, int() does not.
                if not (value.isascii() and value.isdigit()) or not low <= int(value) <= 15:
                    return None
                out.append(f"{key}={int(value)}")
            elif key == "server_max_window_bits":
                return None  # section 7.1.2.1: it needs a value
            else:
                out.append(key)
        else:
            return None
    return "; ".join(out)
