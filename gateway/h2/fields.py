"""HTTP/2 header fields: checking the client's, building ours (RFC 9113 sections 8.2, 8.3).

h2's own checks run a chain of generators over every field; these do the same work in one
pass, with a cache of field names already seen and one regular expression per value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..fields import CONTROL_CHARACTERS_MESSAGE, has_control_characters, lower_name

Fields = list[tuple[bytes, bytes]]

_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a token (RFC 9110 section 9.1)
# Space and controls: a request target has none (RFC 9112 section 3.2), and a :path carrying
# one could end the request line of an HTTP/1.1 request made from it further on.
_BAD_PATH = re.compile(rb"[\x00-\x20\x7f]")
_DEFAULT_PORT = {b"http": b"80", b"https": b"443"}
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
# Section 8.2.2: fields that belong to one HTTP/1.1 connection; never sent, refused if received.
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_STATUS = {status: str(status).encode() for status in range(100, 600)}
_GOOD_NAMES: set[bytes] = set()
_GOOD_NAMES_MAX = 512


def malformed_request(fields: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why the request is malformed, or None when it is fine."""
    seen_regular = False
    pseudo: set[bytes] = set()
    method = path = scheme = authority = b""
    host = None
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
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value
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
            if name == b"host":
                if host is not None:
                    return "two host fields"  # RFC 9110 section 7.2
                host = value
        if value and _BAD_VALUE.search(value) is not None:
            return f"invalid value for {name!r}"
    if b":method" not in pseudo:
        return "no :method"
    if _METHOD.fullmatch(method) is None:
        return f"invalid :method {method!r}"
    if host is not None and b":authority" in pseudo and not same_authority(host, authority, scheme):
        return "host differs from :authority"  # RFC 9113 section 8.3.1
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":authority" not in pseudo or b":path" in pseudo or b":scheme" in pseudo:
            return "CONNECT needs :authority and no :path or :scheme"
        return None
    if b":scheme" not in pseudo or not path:
        return "missing :scheme or :path"
    if b":protocol" in pseudo and method != b"CONNECT":
        return ":protocol outside an extended CONNECT (RFC 8441 section 4)"
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        return f"invalid :path {path!r}"
    if _BAD_PATH.search(path) is not None:
        return f"space or control character in :path {path!r}"
    return None


def malformed_trailers(fields: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why a request's trailers are malformed (RFC 9113 section 8.1: no pseudo-header fields;
    the field rules of section 8.2), or None when they are fine."""
    for name, value in fields:
        if name[:1] == b":":
            return f"pseudo-header {name!r} in trailers"
        if _NAME.fullmatch(name) is None or name in _CONNECTION_SPECIFIC:
            return f"invalid or connection-specific field name {name!r} in trailers"
        if value and _BAD_VALUE.search(value) is not None:
            return f"invalid value for {name!r} in trailers"
    return None


def same_authority(host: bytes, authority: bytes, scheme: bytes) -> bool:
    """Whether a Host field and :authority name the same thing once normalized as RFC 9113
    section 8.3.1 asks (RFC 3986 section 6.2.3): case aside, and with an empty or default
    port left out. Percent-encoded hosts are compared as sent."""
    return host == authority or _normal_authority(host, scheme) == _normal_authority(authority, scheme)


def _normal_authority(value: bytes, scheme: bytes) -> bytes:
    value = value.lower()
    host, colon, port = value.rpartition(b":")
    if colon and b"]" not in port and (not port or port == _DEFAULT_PORT.get(scheme)):
        return host  # (a colon inside an IPv6 literal is left alone: its "port" holds a "]")
    return value


def response_fields(status: int, headers: Iterable[Any], head: Fields,
                    date: bytes) -> tuple[Fields, int | None]:
    """The response head as h2 fields, and the Content-Length the app declared (or None).

    `head` and `date` are gateway's defaults (ServerState.head_fields, date_value). Names are
    lower-cased, connection-specific fields dropped, values checked; the app's own `server` or
    `date` replaces gateway's."""
    out = [(b":status", _STATUS[status]), *head]
    if date:
        out.append((b"date", date))
    length = None
    for name, value in headers:
        lname = lower_name(name)
        if type(value) is not bytes:
            raise TypeError(f"header {name!r}: values must be bytes, got {type(value).__name__}")
        if lname in _CONNECTION_SPECIFIC:
            continue
        if has_control_characters(value):
            raise ValueError(CONTROL_CHARACTERS_MESSAGE)
        if lname == b"content-length":
            if not value.isdigit():
                raise ValueError(f"invalid Content-Length {value!r}")
            length = int(value)
        elif lname == b"server" or lname == b"date":
            out = [item for item in out if item[0] != lname]
        out.append((lname, value))
    return out, length


def plain_fields(headers: Iterable[Any]) -> Fields:
    """Trailers and pushed-request fields: checked and lower-cased, hop fields dropped."""
    out = []
    for name, value in headers:
        lname = lower_name(name)
        if type(value) is not bytes or has_control_characters(value):
            raise ValueError(f"bad value for header {name!r}")
        if lname not in _CONNECTION_SPECIFIC and lname != b"host":
            out.append((lname, value))
    return out


def header_list_size(fields: Iterable[tuple[bytes, bytes]]) -> int:
    """A request head's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 section
    6.5.2): decoded names and values, and 32 bytes for each field."""
    return sum(len(name) + len(value) + 32 for name, value in fields)
