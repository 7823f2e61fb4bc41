"""One strict reading of HTTP/1.1 requests, the same whichever engine parses them.

Two parsers that disagree on where a message ends, or on what it says, are the building block
of request smuggling (a proxy in front reads the bytes one way, the server another). h11 is
lenient (bare LF, obs-fold, control bytes, identical Content-Lengths, unbounded chunk sizes);
llhttp is strict on most of that but lets other things through (extra spaces in the request
line, empty lines before it, a Transfer-Encoding in HTTP/1.0). This module holds the policy:
RFC 9112 and RFC 9110 read strictly, with every leniency that matters for framing refused, as
gunicorn 27 does. The verdicts are:

- 400: anything malformed or ambiguous; 501: a well-formed method or transfer coding that
  gateway does not implement; 505: an HTTP version other than 1.0 and 1.1; 431: a head or
  trailer section over `max_head_size`.

The checks of a request line, a field line, a chunk line and a head are functions here;
scanner.py walks the byte stream with them in front of either engine, so that both apply them
at the same points and in the same order.
"""

from __future__ import annotations

import ipaddress
import re

from ..fields import header_tokens
from .engine import Headers, RequestError

CHUNKED = -1  # the body length of a chunked request

# RFC 9110 section 5.6.2.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A request target is visible ASCII: no HTAB, no obs-text (llhttp refuses the same).
_NOT_TARGET_BYTE = re.compile(rb"[^\x21-\x7e]")
_METHOD_PREFIX = 64  # how much of an unfinished request line is judged
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_SERVED_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
# The methods llhttp parses in an HTTP/1.x request (the registered ones it knows), less
# CONNECT and PRI: a method the fast engine cannot parse gets the same 501 from both engines.
METHODS = frozenset(
    b"DELETE GET HEAD POST PUT OPTIONS TRACE PATCH COPY LOCK MKCOL MOVE PROPFIND PROPPATCH"
    b" SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY"
    b" SUBSCRIBE UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)
# field-line = field-name ":" OWS field-value OWS (RFC 9112 section 5), the value of
# field-vchar (VCHAR / obs-text), SP and HTAB: no CR, LF, NUL or other control byte, no
# whitespace before the colon, and no obs-fold (a line starting with SP or HTAB has no name).
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
# chunk-size [ chunk-ext ] (RFC 9112 section 7.1.1) without the BWS that llhttp refuses: at
# most 16 hex digits (h11 reads 20, and a longer run of zeros only hides the size), and the
# extensions as tokens or quoted strings without control bytes.
_CHUNK_LINE_SYNTAX = re.compile(
    rb"([0-9A-Fa-f]{1,16})"
    rb"(?:;[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
    rb"(?:=(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
    rb'|"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*'
)
# A signed 64-bit parser in front reads larger lengths as negative numbers.
_MAX_LENGTH = 2**63 - 1
# RFC 9110 section 6.5.1: fields that frame, route or authorize a message are not taken from
# trailers (the list gunicorn refuses).
_FORBIDDEN_TRAILERS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"trailer", b"authorization", b"te")
)
# uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986 section 3.2.2): an IP-literal, or a
# reg-name of unreserved, sub-delims and percent-encoded bytes (an IPv4 address is one).
_HOST = re.compile(
    rb"(\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?"
)
_HOST_CACHE: set[bytes] = set()  # valid ones seen, for the hot path
_HOST_CACHE_MAX = 256
# llhttp does not bound chunk extensions; h11 bounds a line by max_incomplete_event_size.
MAX_CHUNK_LINE = 4096
_BROKEN_LINES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")
_HEAD_FIELDS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"upgrade", b"connection", b"expect")
)


def check_request_line(line: bytes, target_bytes: bool = True) -> None:
    """`METHOD SP request-target SP HTTP-version`, one SP each (RFC 9112 section 3): no other
    whitespace, no empty line before it. In this order: a bare CR or LF, the shape, the
    method's syntax, the version, the method, then (`target_bytes`) the target's bytes, which
    llhttp checks itself in the same place. The target's form is checked with the head."""
    if 10 in line or 13 in line:  # LF, CR (an int is looked for with memchr)
        raise RequestError(400, "a bare CR or LF in the request line")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise RequestError(400, "the request line is not METHOD SP target SP version")
    method, target, version = parts
    known = method in METHODS
    if not known and _TOKEN.fullmatch(method) is None:
        raise RequestError(400, "the method is not a token")
    if version not in _SERVED_VERSIONS:
        if _VERSION.fullmatch(version) is None:
            raise RequestError(400, "the request line has no valid HTTP version")
        raise RequestError(505, f"{version.decode()} is not supported")
    if not known:
        # RFC 9110 section 9.1: methods are case-sensitive, so `get` is an unknown method too.
        raise RequestError(501, f"method {method.decode()} is not implemented")
    if target_bytes and _NOT_TARGET_BYTE.search(target) is not None:
        raise RequestError(400, "control, whitespace or non-ASCII bytes in the request target")


def request_line_prefix_ok(held: bytearray, start: int, stop: int) -> bool:
    """Whether an unfinished request line (held[:stop], new from `start`) can still become
    valid, judged on what the complete line's first checks refuse whatever follows: a bare CR
    or LF, a method that is no token. A client sending binary (a TLS hello on a plain port)
    hears 400 at once rather than at a timeout."""
    if held.find(b"\n", start, stop) >= 0 or held.find(b"\r", start, stop) >= 0:
        return False
    space = held.find(b" ", 0, min(stop, _METHOD_PREFIX))
    method = held[:space] if space >= 0 else held[:min(stop, _METHOD_PREFIX)]
    return (space != 0 or not stop) and (not method or _TOKEN.fullmatch(method) is not None)


def lines_prefix_ok(held: bytearray, start: int, stop: int) -> bool:
    """Whether held[start:stop], part of lines not finished yet, can still be valid: no
    control byte other than HTAB, no CR but before LF, no LF but after CR (RFC 9112 section
    2.2: a bare CR or LF is refused, never read as a line end)."""
    return _BROKEN_LINES.search(held, start, stop) is None


def parse_field_line(line: bytes) -> tuple[bytes, bytes]:
    """(lower-case name, value without surrounding whitespace) of one header or trailer line."""
    match = _FIELD_LINE.fullmatch(line)
    if match is None:
        raise RequestError(400, "malformed header line")
    name = match.group(1).lower()
    return name, strip_value(name, match.group(2).lstrip(b" \t"))


def strip_value(name: bytes, value: bytes) -> bytes:
    """`value` without its trailing whitespace (RFC 9110 section 5.5). llhttp reads HTAB after
    a Transfer-Encoding's last coding as part of it (a known obfuscation of `chunked`), so
    that is refused, on the field line, whichever engine parses it."""
    stripped = value.rstrip(b" \t")
    if 9 in value[len(stripped):] and name == b"transfer-encoding":
        raise RequestError(400, "HTAB after the Transfer-Encoding value")
    return stripped


def check_trailers(lines: list[bytes]) -> None:
    """Trailer lines are checked like header lines; the app never sees them (ASGI has no
    request trailers), so they are only refused, never used."""
    for line in lines:
        name, _ = parse_field_line(line)
        if name in _FORBIDDEN_TRAILERS:
            raise RequestError(400, f"{name.decode()} is not allowed in trailers")


def chunk_size(line: bytes) -> int:
    """The size on a chunk line: hex digits, at most 16 of them, then extensions (ignored)."""
    if len(line) <= 16 and line.isalnum():  # no extensions, the usual line
        try:
            size = int(line, 16)
        except ValueError:  # letters past F
            raise RequestError(400, "malformed chunk line") from None
    else:
        match = _CHUNK_LINE_SYNTAX.fullmatch(line)
        if match is None:
            raise RequestError(400, "malformed chunk line")
        size = int(match.group(1), 16)
    if size > _MAX_LENGTH:
        raise RequestError(400, "chunk size too large")
    return size


Meaning = tuple[bytes, int, bool, bool]


def check_head(method: str, target: bytes, version: str, headers: Headers) -> Meaning:
    """The head's meaning, after the engine parsed its lines: (origin-form target, body length
    or CHUNKED, whether it asks to switch protocols, whether it expects 100-continue).

    An absolute-form target's authority replaces the Host field the app sees, in place (RFC
    9112 section 3.2.2); a Transfer-Encoding value is shown lower-cased, as h11 shows it."""
    hosts = 0
    host = length = coding = None
    upgrade = expect = False
    connection = []
    for name, value in headers:
        if name not in _HEAD_FIELDS:
            continue
        if name == b"host":
            hosts += 1
            host = value
        elif name == b"content-length":
            # RFC 9112 section 6.3 lets a recipient accept repeated identical values or a list
            # of them; a proxy that reads `1, 1` as invalid or takes another line desyncs.
            if length is not None:
                raise RequestError(400, "more than one Content-Length")
            length = value
        elif name == b"transfer-encoding":
            if coding is not None:
                raise RequestError(400, "more than one Transfer-Encoding line")
            coding = value
        elif name == b"upgrade":
            upgrade = True
        elif name == b"connection":
            connection.append(value)
        else:  # expect
            # RFC 9110 section 10.1.1: case-insensitive, and ignored in HTTP/1.0.
            expect = version == "1.1" and value.lower() == b"100-continue"
    # RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0, valid.
    if host is None:
        if version == "1.1":
            raise RequestError(400, "a request needs exactly one Host header")
    elif hosts > 1:
        raise RequestError(400, "a request needs exactly one Host header")
    elif host not in _HOST_CACHE and not _valid_host(host):
        raise RequestError(400, "invalid Host header")
    if target[0] != 47:  # not "/": asterisk-form or absolute-form
        target = _other_form(method, target, headers, host is not None)
    elif 35 in target:  # "#"
        raise RequestError(400, "a fragment in the request target")
    body = 0
    if coding is not None:
        body = _chunked(coding, version, length, headers)
    elif length is not None:
        # At most 19 digits (2**63 - 1 has 19): more is too large, or zeros that hide the value.
        if not length.isdigit() or len(length) > 19 or int(length) > _MAX_LENGTH:
            raise RequestError(400, "invalid Content-Length")
        body = int(length)
    if upgrade:
        # What llhttp and h11 both treat as a protocol switch (RFC 9110 section 7.8).
        upgrade = b"upgrade" in header_tokens(connection)
    return target, body, upgrade, expect


def _chunked(coding: bytes, version: str, length: bytes | None, headers: Headers) -> int:
    """CHUNKED if the Transfer-Encoding is exactly `chunked`, else the refusal."""
    if version != "1.1":
        # RFC 9112 section 6.1: an HTTP/1.0 recipient may not know chunked at all.
        raise RequestError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if length is not None:
        # RFC 9112 section 6.3: a smuggling attempt more often than not.
        raise RequestError(400, "Content-Length and Transfer-Encoding together")
    if coding == b"chunked":
        return CHUNKED
    if coding.lower() == b"chunked":
        for index, (name, _) in enumerate(headers):
            if name == b"transfer-encoding":
                headers[index] = (name, b"chunked")
        return CHUNKED
    codings = [item.strip(b" \t").lower() for item in coding.split(b",")]
    if codings[-1] == b"chunked" and all(
        _TOKEN.fullmatch(item.split(b";")[0].strip(b" \t")) and item != b"chunked"
        for item in codings[:-1]
    ):
        # RFC 9112 section 6.1: a coding the server does not understand, framed by chunked.
        raise RequestError(501, "only the chunked transfer coding is supported")
    # RFC 9112 section 6.3: chunked missing, not last, or repeated: the length is unknown.
    raise RequestError(400, "the body framing is not chunked")


def _other_form(method: str, target: bytes, headers: Headers, has_host: bool) -> bytes:
    """An asterisk-form or absolute-form target (RFC 9112 section 3.2); authority-form goes
    only with CONNECT, which is refused with the request line."""
    if target == b"*":
        if method != "OPTIONS":
            raise RequestError(400, "the asterisk-form target is for OPTIONS only")
        return target
    if b"#" in target:
        raise RequestError(400, "a fragment in the request target")
    scheme_end = target.find(b"://")
    if scheme_end < 0 or target[:scheme_end].lower() not in (b"http", b"https"):
        raise RequestError(400, "the request target is not origin-form or an http(s) URI")
    rest = target[scheme_end + 3:]
    path_start = len(rest)
    for mark in (b"/", b"?"):
        found = rest.find(mark)
        if 0 <= found < path_start:
            path_start = found
    authority = rest[:path_start]
    # RFC 9110 section 4.2.1: an http URI has a host; section 4.2.4: userinfo is an error.
    if not authority or authority[:1] == b":" or b"@" in authority or not _valid_host(authority):
        raise RequestError(400, "invalid authority in the request target")
    if has_host:
        for index, (name, _) in enumerate(headers):
            if name == b"host":
                headers[index] = (name, authority)
    else:
        headers.append((b"host", authority))
    path = rest[path_start:]
    return path if path[:1] == b"/" else b"/" + path


def _valid_host(value: bytes) -> bool:
    if value in _HOST_CACHE:
        return True
    match = _HOST.fullmatch(value)
    valid = match is not None
    if valid and value[:1] == b"[" and value[1:2] != b"v":
        try:
            ipaddress.IPv6Address(match.group(1)[1:-1].decode("ascii"))
        except ValueError:
            valid = False
    if valid and len(_HOST_CACHE) < _HOST_CACHE_MAX:
        _HOST_CACHE.add(value)
    return valid

