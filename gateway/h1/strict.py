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

The checks of a request line, a field line, a chunk line and a head are functions here, and
`Scanner` walks the byte stream with them in front of either engine, so that both apply them at
the same points and in the same order.
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


# Where a Scanner is in the request stream.
_HEAD = 0  # a request head comes next
_FRAMING = 1  # the engine is parsing the head just let through; its framing comes with `head`
_BODY = 2  # `left` bytes of a Content-Length body
_CHUNK_LINE = 3
_CHUNK_DATA = 4  # `left` bytes of chunk data
_CHUNK_END = 5  # the CRLF after chunk data
_TRAILERS = 6
_SWITCHED = 7  # after a request that may switch protocols: no longer HTTP/1.1 to check

# llhttp does not bound chunk extensions; h11 bounds a line by max_incomplete_event_size.
MAX_CHUNK_LINE = 4096
# What no unfinished line may hold: a control byte other than HTAB, CR not before LF, LF not
# after CR (RFC 9112 section 2.2: bare CR and bare LF are refused, not read as line ends).
_BROKEN_LINES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")


class Scanner:
    """Follows one connection's request stream in front of the engine: the engine parses only
    what the scanner let through, so both engines see the same verdicts at the same points.

    An element not complete yet (a head, a chunk line, the CRLF after chunk data, a trailer
    section) is held back until it is, then checked whole: an unfinished head is only checked
    for bytes no request line may hold and for its size. A `full` scanner checks every line
    and computes the framing itself (in front of h11, which is lenient); the other checks the
    request line, lets llhttp refuse bad header lines as it does, and learns each head's
    framing from `head`, which the engine calls once llhttp has parsed it. Chunk lines,
    the CRLF after chunk data and trailers are checked here in both cases.

    A refusal is kept in `error` rather than raised: the engine first parses what came before
    it, so that earlier pipelined requests are answered in order."""

    __slots__ = ("max_head_size", "full", "state", "left", "held", "line_end", "head_size",
                 "switching", "error")

    def __init__(self, max_head_size: int, full: bool) -> None:
        self.max_head_size = max_head_size
        self.full = full
        self.state = _HEAD
        self.left = 0
        self.held = bytearray()
        self.line_end = 0  # where the held head's request line ends, once it was checked
        self.head_size = 0
        self.switching = False
        self.error: RequestError | None = None

    def receive(self, data: bytes) -> bytes:
        """The bytes to scan next: `data` after what was held back, once the held element is
        complete; b"" while it is not (or after a refusal)."""
        if self.error is not None:
            return b""
        held = self.held
        if not held:
            return data
        start = len(held)
        held += data
        if not data or not self._held_complete(start):
            return b""
        self.held = bytearray()
        return bytes(held)

    def scan(self, data: bytes, pos: int) -> int:
        """Check data[pos:]; returns the offset the engine may parse up to. What lies beyond
        is held back, refused (`error`), or (not `full`) waits for the engine's `head` call."""
        end = len(data)
        while pos < end:
            state = self.state
            try:
                if state == _HEAD:
                    eol = data.find(b"\r\n", pos)
                    if eol < 0:
                        return self._hold(data, pos)
                    stop = data.find(b"\r\n\r\n", eol)
                    # llhttp checks the target's bytes as it parses, but a held head is not
                    # parsed until it is complete: then they are checked here.
                    check_request_line(data[pos:eol], self.full or stop < 0)
                    if stop < 0:
                        self.line_end = eol + 2 - pos
                        return self._hold(data, pos)
                    self.head_size = stop + 4 - pos
                    self.state = _FRAMING
                    if not self.full:
                        return stop + 4
                    self._read_head(data[pos:stop])
                    pos = stop + 4
                elif state in (_BODY, _CHUNK_DATA):
                    take = min(self.left, end - pos)
                    pos += take
                    self.left -= take
                    if not self.left:
                        if state == _BODY:
                            self._message_end()
                        else:
                            self.state = _CHUNK_END
                elif state == _CHUNK_LINE:
                    eol = data.find(b"\r\n", pos)
                    if eol < 0:
                        return self._hold(data, pos)
                    if eol - pos > MAX_CHUNK_LINE:
                        raise RequestError(400, "chunk line too long")
                    size = chunk_size(data[pos:eol])
                    pos = eol + 2
                    if size:
                        self.state = _CHUNK_DATA
                        self.left = size
                    else:
                        self.state = _TRAILERS
                elif state == _CHUNK_END:
                    if end - pos < 2 and data[pos:] == b"\r":
                        return self._hold(data, pos)
                    if not data.startswith(b"\r\n", pos):
                        raise RequestError(400, "chunk data not followed by CRLF")
                    pos += 2
                    self.state = _CHUNK_LINE
                elif state == _TRAILERS:
                    if data.startswith(b"\r\n", pos):
                        pos += 2
                        self._message_end()
                        continue
                    stop = data.find(b"\r\n\r\n", pos)
                    if stop < 0:
                        return self._hold(data, pos)
                    check_trailers(data[pos:stop].split(b"\r\n"))
                    if stop + 4 - pos > self.max_head_size:
                        raise RequestError(431, "request trailers too large")
                    pos = stop + 4
                    self._message_end()
                elif state == _SWITCHED:
                    return end
                else:  # _FRAMING: llhttp did not end the head where the scanner did
                    raise RequestError(400, "the request head could not be parsed")
            except RequestError as exc:
                self.error = exc
                return pos
        return pos

    def head(self, method: str, target: bytes, version: str, headers: Headers) -> Meaning:
        """The engine parsed the head that `scan` let through: what it means (`check_head`),
        after which the scanner follows its body. Raises RequestError."""
        if self.state != _FRAMING:
            raise RequestError(400, "the request head could not be parsed")
        meaning = check_head(method, target, version, headers)
        # Checked after the head's syntax and meaning, as llhttp reports those while parsing.
        if self.head_size > self.max_head_size:
            raise RequestError(431, "request head too large")
        length = meaning[1]
        self.switching = meaning[2]
        if not length:
            self._message_end()
        elif length == CHUNKED:
            self.state = _CHUNK_LINE
        else:
            self.state = _BODY
            self.left = length
        return meaning

    def _read_head(self, head: bytes) -> None:
        """A full scanner parses the head itself: the request line was checked already."""
        lines = head.split(b"\r\n")
        method, target, version = lines[0].split(b" ")
        headers = [parse_field_line(line) for line in lines[1:]]
        self.head(method.decode("ascii"), target, version[5:].decode("ascii"), headers)

    def _message_end(self) -> None:
        # h11 stops parsing after a request that may switch protocols; llhttp stops by itself.
        self.state = _SWITCHED if self.switching and self.full else _HEAD
        self.line_end = 0

    def _hold(self, data: bytes, pos: int) -> int:
        self.held = bytearray(memoryview(data)[pos:])
        self._held_complete(0)
        return pos

    def _held_complete(self, start: int) -> bool:
        """Whether the held element is complete now that bytes from `start` on were added,
        after the checks an unfinished element allows (`error` on a refusal): what no request
        line may begin with, a bare CR or LF, a control byte in a field line, the size."""
        held = self.held
        state = self.state
        if state == _CHUNK_END:
            return len(held) >= 2
        # A final CR may be the first half of a CRLF still on its way.
        check_from = max(0, start - 1)
        check_to = len(held) - held.endswith(b"\r")
        if state == _HEAD:
            if not self.line_end:
                eol = held.find(b"\r\n", check_from)
                if eol < 0:
                    if not request_line_prefix_ok(held, check_from, check_to):
                        self.error = RequestError(400, "not the start of a request line")
                    elif len(held) > self.max_head_size:
                        self.error = RequestError(431, "request head too large")
                    return False
                self.line_end = eol + 2
                try:
                    check_request_line(bytes(held[:eol]))
                except RequestError as exc:
                    self.error = exc
                    return False
            check_from = max(check_from, self.line_end)
        if _BROKEN_LINES.search(held, check_from, check_to) is not None:
            self.error = RequestError(400, "a bare CR or LF, or a control byte")
            return False
        if state == _CHUNK_LINE:
            if held.find(b"\r\n", check_from) >= 0:
                return True
            if len(held) > MAX_CHUNK_LINE:
                self.error = RequestError(400, "chunk line too long")
            return False
        if state == _TRAILERS and held.startswith(b"\r\n"):
            return True
        if held.find(b"\r\n\r\n", max(0, start - 3)) >= 0:
            return True
        if len(held) > self.max_head_size:
            what = "head" if state == _HEAD else "trailers"
            self.error = RequestError(431, f"request {what} too large")
        return False
