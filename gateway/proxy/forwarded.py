"""Forwarded headers from a trusted proxy: who the client is, and which scheme and host it
asked for (--proxy-headers).

RFC 7239 `Forwarded` when present, else the X-Forwarded-For/-Proto/-Host/-Port family. Each
proxy appends the address it received the request from, so the list is read from the right:
hops that are themselves trusted proxies are skipped, and the first untrusted one is the client
(uvicorn 0.49's rule). If every hop is trusted, the leftmost is. A value that does not parse is
ignored as a whole, with a debug line: the request goes on with the peer as its client, never
a 500.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..logs import error_logger
from .trust import TrustedPeers

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The headers this module reads; everything else is skipped on its first byte.
_FIRST_BYTES = frozenset(b"fxFX")
# Hops a value may list: more is no proxy chain anyone runs, and bounds the work.
MAX_HOPS = 64


class ForwardedError(ValueError):
    """A forwarded header that does not parse."""


def apply_forwarded(scope: dict[str, Any], trust: TrustedPeers) -> None:
    """Rewrite the scope's `client`, `scheme` and `server` from the forwarded headers of a
    request whose peer `trust` trusts."""
    forwarded: list[bytes] = []
    for_values: list[bytes] = []
    proto = host = port = None
    for name, value in scope["headers"]:
        if name[0] not in _FIRST_BYTES:
            continue
        if name == b"forwarded":
            forwarded.append(value)
        elif name == b"x-forwarded-for":
            for_values.append(value)
        elif name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-host":
            host = value
        elif name == b"x-forwarded-port":
            port = value
    try:
        if forwarded:
            _apply_rfc7239(scope, b",".join(forwarded).decode("latin-1"), trust)
        elif for_values or proto is not None or host is not None or port is not None:
            _apply_x_forwarded(scope, trust, for_values, proto, host, port)
    except ForwardedError as exc:
        error_logger.debug("ignoring forwarded headers from %s: %s", scope.get("client"), exc)


def _apply_x_forwarded(scope: dict[str, Any], trust: TrustedPeers, for_values: list[bytes],
                       proto: bytes | None, host: bytes | None, port: bytes | None) -> None:
    client = None
    if for_values:
        hops = [hop.strip() for hop in b",".join(for_values).decode("latin-1").split(",")]
        if len(hops) > MAX_HOPS or not all(hops):
            raise ForwardedError("X-Forwarded-For lists an empty or too many hops")
        client = _client([_node(hop) for hop in hops], trust)
    scheme = _scheme(proto.decode("latin-1")) if proto is not None else None
    server = None
    if host is not None:
        name, host_port = _host(host.decode("latin-1"))
        if port is not None:
            host_port = _port(port.decode("latin-1").strip())
        server = (name, host_port)
    elif port is not None:
        current = scope.get("server")
        if current is not None:
            server = (current[0], _port(port.decode("latin-1").strip()))
    _set(scope, client, scheme, server)


def _apply_rfc7239(scope: dict[str, Any], value: str, trust: TrustedPeers) -> None:
    elements = [_pairs(element) for element in _split(value, ",")]
    if len(elements) > MAX_HOPS:
        raise ForwardedError("Forwarded lists too many hops")
    nodes = [_node(element["for"]) if "for" in element else None for element in elements]
    chosen = len(elements) - 1
    for index in range(len(elements) - 1, -1, -1):
        node = nodes[index]
        chosen = index
        if node is None or node[0] is None or not trust.trusts(node[0]):
            break
    else:
        chosen = 0
    element, node = elements[chosen], nodes[chosen]
    client = node if node is not None and node[0] is not None else None
    scheme = _scheme(element["proto"]) if "proto" in element else None
    server = _host(element["host"]) if "host" in element else None
    _set(scope, client, scheme, server)


def _client(nodes: list[tuple[str | None, int]], trust: TrustedPeers) -> tuple[str, int] | None:
    for host, port in reversed(nodes):
        if host is None:
            return None  # "unknown" or an obfuscated name: nobody to name
        if not trust.trusts(host):
            return (host, port)
    host, port = nodes[0]
    return (host, port) if host is not None else None


def _set(scope: dict[str, Any], client: tuple[str, int] | None, scheme: str | None,
         server: tuple[str, int | None] | None) -> None:
    if client is not None:
        scope["client"] = client
    if scheme is not None:
        scope["scheme"] = scheme
    if server is not None:
        name, port = server
        scope["server"] = (name, port if port is not None else _DEFAULT_PORTS[scope["scheme"]])


def _scheme(text: str) -> str:
    scheme = _SCHEMES.get(text.strip().lower())
    if scheme is None:
        raise ForwardedError(f"unknown protocol {text!r}")
    return scheme


def _node(text: str) -> tuple[str | None, int]:
    """An address with an optional port: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`,
    `2001:db8::1`; `unknown` and obfuscated names (`_hidden`) name nobody."""
    text = text.strip()
    if text.lower() == "unknown" or text.startswith("_"):
        return (None, 0)
    port = 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ForwardedError(f"unclosed bracket in {text!r}")
        address, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ForwardedError(f"junk after the address in {text!r}")
            port = _port(rest[1:], obfuscated_ok=True)
    elif text.count(":") == 1:
        address, _, rest = text.partition(":")
        port = _port(rest, obfuscated_ok=True)
    else:
        address = text
    try:
        return (str(ipaddress.ip_address(address)), port)
    except ValueError:
        raise ForwardedError(f"not an address: {text!r}") from None


def _host(text: str) -> tuple[str, int | None]:
    """A Host-style value: `example.com`, `example.com:8443`, `[::1]:8443`."""
    text = text.strip()
    if not text or any(c in text for c in " /\\@,;\"'\t") or len(text) > 255:
        raise ForwardedError(f"not a host: {text!r}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ForwardedError(f"unclosed bracket in {text!r}")
        name, rest = text[1:end], text[end + 1:]
        return name, (_port(rest[1:]) if rest.startswith(":") else None)
    name, sep, rest = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return name, (_port(rest) if sep else None)


def _port(text: str, obfuscated_ok: bool = False) -> int:
    if obfuscated_ok and text.startswith("_"):
        return 0
    # ASCII digits only: str.isdigit() also takes latin-1's superscripts, which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise ForwardedError(f"not a port: {text!r}")
    return int(text)


def _pairs(element: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for pair in _split(element, ";"):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or not key or not key.isascii() or not key.replace("-", "").isalnum():
            raise ForwardedError(f"not a key=value pair: {pair!r}")
        if key in pairs:
            raise ForwardedError(f"{key} given twice in one element")
        pairs[key] = _unquote(value.strip())
    return pairs


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        if '"' in value or not value:
            raise ForwardedError(f"bad value {value!r}")
        return value
    if len(value) < 2 or not value.endswith('"'):
        raise ForwardedError(f"unclosed quotes in {value!r}")
    out = []
    escaped = False
    for char in value[1:-1]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            raise ForwardedError(f"quote inside {value!r}")
        else:
            out.append(char)
    if escaped:
        raise ForwardedError(f"dangling escape in {value!r}")
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    """`text` split on `separator` outside quoted strings."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise ForwardedError("unclosed quotes")
    parts.append("".join(current))
    return parts
