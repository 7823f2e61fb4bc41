"""HTTP field (header) checks shared by HTTP/1.1 and HTTP/2 (RFC 9110 section 5).

Both protocols send the app's headers; both must refuse a name that is not a token and a value
that could end a line. The checks run per response, so names go through a small cache.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than HTAB.
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_NAME_CACHE: dict[bytes, bytes] = {}
_NAME_CACHE_MAX = 512


def lower_name(name: bytes) -> bytes:
    """The lower-cased header name, after checking it is a token. The type is checked before
    the cache, where a subclass of bytes equal to a cached name would be found."""
    if type(name) is not bytes:
        raise TypeError(f"header names must be bytes, got {type(name).__name__}")
    lowered = _NAME_CACHE.get(name)
    if lowered is not None:
        return lowered
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    lowered = name.lower()
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = lowered
    return lowered


def has_control_characters(value: bytes) -> bool:
    """CR, LF, NUL and other controls would split a field or smuggle another one."""
    return _CTL.search(value) is not None


CONTROL_CHARACTERS_MESSAGE = "header values may not contain CR, LF, NUL or other control characters"


def header_tokens(values: Iterable[bytes]) -> set[bytes]:
    """The comma-separated tokens of a list field (Connection, Upgrade) over all its lines,
    lower-cased: RFC 9110 section 5.6.1."""
    return {token.strip().lower() for value in values for token in value.split(b",")}
