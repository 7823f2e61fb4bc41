"""Is an HTTP/2 request well-formed? RFC 9113 sections 8.2 and 8.3, checked in one pass.

h2's own inbound checks run a chain of generators over every field; this does the same checks
with a cache of field names already seen and one regular expression per value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_GOOD_NAMES: set[bytes] = set()
_GOOD_NAMES_MAX = 512


def malformed_request(fields: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why the request is malformed, or None when it is fine."""
    seen_regular = False
    pseudo: set[bytes] = set()
    method = path = b""
    for name, value in fields:
        if name[:1] == b":":
            if seen_regular:
                return f"pseudo-header {name!r} after a regular field"
            if name not in _REQUEST_PSEUDO or name in pseudo:
                return f"unexpected or repeated pseudo-header {name!r}"
            pseudo.add(name)
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
        else:
            seen_regular = True
            if name not in _GOOD_NAMES:
                if _NAME.fullmatch(name) is None:
                    return f"invalid field name {name!r}"
                if name in _CONNECTION_SPECIFIC:
                    return f"connection-specific field {name!r}"
                if name != b"te" and len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
                    _GOOD_NAMES.add(name)
            if name == b"te" and value.lower() != b"trailers":
                return "TE other than 'trailers'"
        if value and _BAD_VALUE.search(value) is not None:
            return f"invalid value for {name!r}"
    if b":method" not in pseudo:
        return "no :method"
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":authority" not in pseudo or b":path" in pseudo or b":scheme" in pseudo:
            return "CONNECT needs :authority and no :path or :scheme"
        return None
    if b":scheme" not in pseudo or not path:
        return "missing :scheme or :path"
    if b":protocol" in pseudo:
        return ":protocol is not enabled"
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        return f"invalid :path {path!r}"
    return None
