"""A sans-IO reader for the PROXY protocol header, versions 1 and 2 (HAProxy's
doc/proxy-protocol.txt, revision 2020/03/05).

A load balancer in TCP mode (HAProxy, AWS NLB, nginx stream, stunnel) prepends this header to
each connection it relays so the server learns the real client address. It arrives before
anything else, TLS ClientHello included, so the server must read exactly the header and hand
every byte after it, untouched, to TLS or HTTP. `ProxyHeaderReader` does that and nothing else: it
takes bytes as they arrive and never touches a socket.

What it guarantees:

- Strictness. The spec says any sequence that does not exactly match the protocol must abort the
  connection, and as soon as possible. Every `feed` checks that the bytes seen so far can still
  begin a valid header, so a ClientHello (0x16) or "GET " sent to a PROXY listener fails on its
  first byte rather than after a timeout, and a malformed v1 field fails on the byte that breaks it.
- Bounded memory. Until the header is complete the peer is not trusted (the header is what tells
  us who it is), so the reader buffers at most one header: 107 bytes for v1, and for v2 at most
  `max_v2_length` bytes (default 4096), checked from the length field before the body is read.
  The spec allows 16 + 65535 bytes; real headers, TLVs included, are a few hundred bytes, and 64 KiB
  held per half-open connection is what a flood of them would cost.
- One exception. Anything a peer can send either parses, needs more bytes, or raises
  `ProxyHeaderError` whose message says what was wrong, for a debug log line.

Choices where the spec leaves room (each refused case raises `ProxyHeaderError`):

- v1: addresses must match the family (TCP4: dotted quad without leading zeros; TCP6: hex groups and
  colons, no "%zone"). TCP6 also takes a trailing dotted quad ("::ffff:192.0.2.1"), which the spec's
  grammar omits but HAProxy sends: it formats addresses with inet_ntop, which writes IPv4-mapped
  addresses that way. Ports are 0-65535 without signs or leading zeros, and fields are separated
  by exactly one space. A CR or LF outside the final CRLF is refused, even in the free text after
  "UNKNOWN": a sender that ends lines with a bare LF would otherwise have its next line swallowed
  as part of the header.
- v2: the family/protocol byte must be one the spec lists (0x00, 0x11, 0x12, 0x21, 0x22, 0x31,
  0x32). PROXY with DGRAM is refused: gateway serves streams only. LOCAL (a balancer's own health
  check) ignores the family and skips the address block and TLVs, as the spec says to. PROXY with
  AF_UNSPEC is accepted as family "UNKNOWN" with no addresses, its block skipped likewise.
- TLVs: ALPN (0x01) and AUTHORITY (0x02, UTF-8) are kept; CRC32C (0x03) is verified (pure Python,
  a table lookup per header byte: 6 us for an 80-byte header, 0.3 ms at the 4096-byte default);
  the rest are skipped. ALPN, AUTHORITY or CRC32C given twice is refused, so no two readers of the
  same header can disagree about which one counts.
- Addresses are returned in Python's canonical text form (`str(ipaddress.ip_address(...))`, so
  IPv6 is compressed and lower case) whichever version carried them. A UNIX address is the path
  up to its first NUL (decoded with surrogateescape, as `os.fsdecode` does), or for a Linux
  abstract socket "\\0name" with the padding removed; an unnamed socket is "".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["MAX_V1", "MAX_V2", "ProxyHeaderError", "ProxyHeaderReader", "ProxyInfo", "crc32c"]

# The longest v1 line including its CRLF: "PROXY UNKNOWN " + two full IPv6 addresses and ports.
MAX_V1 = 107
# The longest v2 header: 16 fixed bytes and a 16-bit length.
MAX_V2 = 16 + 0xFFFF

_V1_PREFIX = b"PROXY "
_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED = 16

_LOCAL = 0x0
_PROXY = 0x1
# Family/protocol byte -> (family name, address block size). The spec's list of valid values.
_V2_FAMILIES = {
    0x00: ("UNKNOWN", 0),
    0x11: ("TCP4", 12),
    0x12: ("UDP4", 12),
    0x21: ("TCP6", 36),
    0x22: ("UDP6", 36),
    0x31: ("UNIX", 216),
    0x32: ("UNIX_DGRAM", 216),
}
_DGRAM = 0x2

PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03

_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rb"(?:%s\.){3}%s" % (_OCTET, _OCTET))
# Every prefix of a valid octet is itself a valid octet or empty, so this matches exactly the
# prefixes of valid v1 IPv4 addresses.
_IPV4_PREFIX = re.compile(rb"(?:%s\.){0,3}(?:%s)?" % (_OCTET, _OCTET))
_IPV6_CHARS = re.compile(rb"[0-9A-Fa-f:.]*")
# Eight full groups, or six and a dotted quad.
_IPV6_LONGEST = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")
# The same holds for ports: every prefix of "0".."65535" written without leading zeros is one too.
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")
_V1_FIELDS = ("source address", "destination address", "source port", "destination port")


class ProxyHeaderError(Exception):
    """The bytes are not a PROXY protocol header this reader accepts; the message says why."""


@dataclass(frozen=True)
class ProxyInfo:
    """What the header says about the relayed connection.

    `client` and `server` are (host, port) for TCP4/TCP6, a path for UNIX, and None for LOCAL
    and UNKNOWN, where the caller keeps the socket's own addresses (the spec's instruction).
    """

    command: str
    family: str
    client: tuple[str, int] | str | None
    server: tuple[str, int] | str | None
    alpn: bytes | None = None
    authority: str | None = None
    version: int = 1


class ProxyHeaderReader:
    """Feed bytes as they arrive; it says when the header is complete.

    `feed` returns None while more bytes are needed, the `ProxyInfo` once the header is complete
    (after which `rest` holds every byte that followed it), or raises `ProxyHeaderError`. After
    an error every later `feed` raises the same error; feeding after completion is a caller bug
    and raises RuntimeError, because the bytes belong to TLS or HTTP now.

    `versions` is "v1", "v2" or "auto" (the first byte decides). `max_v2_length` bounds a v2
    header's total size (16 fixed bytes + its length field) and so the memory one untrusted
    connection can hold here; a larger header is refused as soon as its length field arrives.
    """

    def __init__(self, versions: str = "auto", *, max_v2_length: int = 4096) -> None:
        if versions not in ("auto", "v1", "v2"):
            raise ValueError(f"versions must be 'auto', 'v1' or 'v2', not {versions!r}")
        if isinstance(max_v2_length, bool) or not _V2_FIXED <= max_v2_length <= MAX_V2:
            raise ValueError(f"max_v2_length must be between {_V2_FIXED} and {MAX_V2}")
        self._version = {"auto": 0, "v1": 1, "v2": 2}[versions]
        self._max_v2 = max_v2_length
        self._buf = bytearray()
        self._v2_total: int | None = None
        self._info: ProxyInfo | None = None
        self._rest = b""
        self._error: ProxyHeaderError | None = None

    @property
    def rest(self) -> bytes:
        """The bytes after the header once it is complete (b"" before)."""
        return self._rest

    @property
    def needed_hint(self) -> int:
        """A number of bytes that can be read without reading past the header (0 once complete).

        A caller that must leave what follows the header in the socket (to start TLS on it, say)
        can read this many bytes at a time. Exact for v2 once the length field has arrived; for v1,
        whose end only the CRLF marks, it is the shortest way the line could still end.
        """
        if self._info is not None or self._error is not None:
            return 0
        have = len(self._buf)
        if self._version == 2:
            total = self._v2_total if self._v2_total is not None else _V2_FIXED
            return total - have
        shortest = len(b"PROXY UNKNOWN\r\n")
        if have < len(_V1_PREFIX):
            return shortest - have
        return 1 if self._buf.endswith(b"\r") else max(2, shortest - have)

    def feed(self, data: bytes) -> ProxyInfo | None:
        """Take the next bytes; return the header once complete, None while it is not."""
        if self._error is not None:
            raise self._error
        if self._info is not None:
            raise RuntimeError("the PROXY header is complete; the bytes after it are in .rest")
        try:
            return self._feed(data)
        except ProxyHeaderError as exc:
            self._error = exc
            self._buf = bytearray()
            raise

    def _feed(self, data: bytes) -> ProxyInfo | None:
        # Take only as many bytes as the longest header still possible could use, so the buffer
        # stays bounded whatever the caller passes; the remainder goes to `rest` untouched.
        view = memoryview(data)
        pos = 0
        if self._version == 0:
            if not view:
                return None
            self._version = _detect(view[:24])
        while True:
            room = self._limit() - len(self._buf)
            if room <= 0:
                # _advance refuses a full buffer; looping here instead would hang the event loop.
                raise RuntimeError("PROXY header reader made no progress (a bug in the reader)")
            taken = view[pos : pos + room]
            self._buf += taken
            pos += len(taken)
            end = self._advance()
            if end is not None:
                assert self._info is not None
                self._rest = bytes(self._buf[end:]) + bytes(view[pos:])
                self._buf = bytearray()
                return self._info
            if pos >= len(view):
                return None

    def _limit(self) -> int:
        if self._version == 1:
            return MAX_V1
        return self._v2_total if self._v2_total is not None else _V2_FIXED

    def _advance(self) -> int | None:
        """Check the buffer; return the header's length once it is complete."""
        return self._advance_v1() if self._version == 1 else self._advance_v2()

    def _advance_v1(self) -> int | None:
        buf = bytes(self._buf)
        end = buf.find(b"\r\n")
        line = buf if end < 0 else buf[:end]
        if b"\n" in line:
            raise ProxyHeaderError("PROXY v1: LF without CR before it")
        if end >= 0:
            if b"\r" in line:
                raise ProxyHeaderError("PROXY v1: CR without LF after it")
            self._info = _parse_v1(line, complete=True)
            return end + 2
        if line.endswith(b"\r"):
            # Only LF may follow, so the line must already be whole.
            line = line[:-1]
            if b"\r" in line:
                raise ProxyHeaderError("PROXY v1: CR without LF after it")
            _parse_v1(line, complete=True)
        elif b"\r" in line:
            raise ProxyHeaderError("PROXY v1: CR without LF after it")
        else:
            _parse_v1(line, complete=False)
        if len(buf) >= MAX_V1:
            raise ProxyHeaderError(f"PROXY v1: no CRLF in the first {MAX_V1} bytes")
        return None

    def _advance_v2(self) -> int | None:
        buf = self._buf
        seen = min(len(buf), len(_V2_SIGNATURE))
        if buf[:seen] != _V2_SIGNATURE[:seen]:
            raise ProxyHeaderError(f"PROXY v2: bad signature {_show(buf)}")
        if len(buf) > 12:
            if buf[12] >> 4 != 2:
                raise ProxyHeaderError(f"PROXY v2: version {buf[12] >> 4}, only 2 is defined")
            if buf[12] & 0x0F not in (_LOCAL, _PROXY):
                raise ProxyHeaderError(f"PROXY v2: unknown command {buf[12] & 0x0F}")
        if len(buf) > 13:
            if buf[13] not in _V2_FAMILIES:
                raise ProxyHeaderError(f"PROXY v2: unknown family/protocol byte 0x{buf[13]:02x}")
            if buf[12] & 0x0F == _PROXY and buf[13] & 0x0F == _DGRAM:
                raise ProxyHeaderError(f"PROXY v2: datagram family {_V2_FAMILIES[buf[13]][0]} refused")
        if len(buf) < _V2_FIXED:
            return None
        if self._v2_total is None:
            length = int.from_bytes(buf[14:16], "big")
            total = _V2_FIXED + length
            if total > self._max_v2:
                raise ProxyHeaderError(
                    f"PROXY v2: header of {total} bytes exceeds the {self._max_v2} allowed"
                )
            family, needs = _V2_FAMILIES[buf[13]]
            if buf[12] & 0x0F == _PROXY and length < needs:
                raise ProxyHeaderError(f"PROXY v2: {family} needs {needs} address bytes, length is {length}")
            self._v2_total = total
        if len(buf) < self._v2_total:
            return None
        self._info = _parse_v2(bytes(buf[: self._v2_total]))
        return self._v2_total


def _detect(start: memoryview) -> int:
    """With versions="auto", the first byte decides: "P" for v1, CR for v2's signature."""
    if start[0] == _V1_PREFIX[0]:
        return 1
    if start[0] == _V2_SIGNATURE[0]:
        return 2
    raise ProxyHeaderError(f"not a PROXY protocol header: starts with {_show(start)}")


def _parse_v1(line: bytes, *, complete: bool) -> ProxyInfo | None:
    """Check a v1 line without its CRLF. With complete=False `line` is what has arrived so far and
    must be the start of some valid line (None is returned); otherwise it is the whole line."""
    if len(line) < len(_V1_PREFIX) and not complete:
        if not _V1_PREFIX.startswith(line):
            raise ProxyHeaderError(f"not a PROXY v1 header: starts with {_show(line)}")
        return None
    if not line.startswith(_V1_PREFIX):
        raise ProxyHeaderError(f"not a PROXY v1 header: starts with {_show(line)}")
    family, space, tail = line[len(_V1_PREFIX) :].partition(b" ")
    if family == b"UNKNOWN" and (space or complete):
        # The spec: the receiver must ignore anything before the CRLF.
        return ProxyInfo("PROXY", "UNKNOWN", None, None, version=1) if complete else None
    if not space and not complete:
        if not any(name.startswith(family) for name in (b"TCP4", b"TCP6", b"UNKNOWN")):
            raise ProxyHeaderError(f"PROXY v1: unknown family {_show(family)}")
        return None
    if family not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"PROXY v1: unknown family {_show(family)}")
    fields = tail.split(b" ") if space else []
    if len(fields) > 4:
        raise ProxyHeaderError("PROXY v1: more than four fields after the family")
    if complete and len(fields) < 4:
        raise ProxyHeaderError(f"PROXY v1: {_V1_FIELDS[len(fields)]} missing")
    v6 = family == b"TCP6"
    values: list[str | int] = []
    for index, field in enumerate(fields):
        partial = not complete and index == len(fields) - 1
        if index < 2:
            if partial:
                ok = _ipv6_prefix(field) if v6 else _IPV4_PREFIX.fullmatch(field) is not None
            else:
                address = _ipv6(field) if v6 else _ipv4(field)
                ok = address is not None
                values.append(address or "")
            kind = "an IPv6" if v6 else "an IPv4"
        else:
            ok = (partial and not field) or _port(field) is not None
            if ok and not partial:
                values.append(int(field))
            kind = "a"
        if not ok:
            what = "cannot begin" if partial else "is not"
            raise ProxyHeaderError(
                f"PROXY v1: {_V1_FIELDS[index]} {_show(field)} {what} {kind} {_V1_FIELDS[index].split()[1]}"
            )
    if not complete:
        return None
    src, dst, sport, dport = values
    assert isinstance(src, str) and isinstance(dst, str)
    assert isinstance(sport, int) and isinstance(dport, int)
    return ProxyInfo("PROXY", family.decode(), (src, sport), (dst, dport), version=1)


def _ipv4(text: bytes) -> str | None:
    if _IPV4.fullmatch(text) is None:
        return None
    return str(ipaddress.IPv4Address(text.decode("ascii")))


def _ipv6(text: bytes) -> str | None:
    if not 2 <= len(text) <= _IPV6_LONGEST or _IPV6_CHARS.fullmatch(text) is None:
        return None
    try:
        return str(ipaddress.IPv6Address(text.decode("ascii")))
    except ValueError:
        return None


def _ipv6_prefix(text: bytes) -> bool:
    """Whether some valid v1 IPv6 address starts with `text`.

    A prefix ends inside a group, after one colon, or after "::"; one of these endings always
    completes it when anything does (finish the group, close a "::", or add a group then "::").
    Once a dot has appeared, the text after the last colon is the start of a dotted quad.
    """
    if not text:
        return True
    if len(text) > _IPV6_LONGEST or _IPV6_CHARS.fullmatch(text) is None:
        return False
    if b"." in text:
        head, _, quad = text.rpartition(b":")
        return _IPV4_PREFIX.fullmatch(quad) is not None and _ipv6(head + b":0.0.0.0") is not None
    return any(_ipv6(text + ending) is not None for ending in (b"", b"0", b":", b"::", b"0::"))


def _port(text: bytes) -> int | None:
    if _PORT.fullmatch(text) is None or int(text) > 0xFFFF:
        return None
    return int(text)


def _parse_v2(header: bytes) -> ProxyInfo:
    """Decode a complete v2 header whose fixed part `_advance_v2` has already checked."""
    if header[12] & 0x0F == _LOCAL:
        return ProxyInfo("LOCAL", "UNKNOWN", None, None, version=2)
    family, needs = _V2_FAMILIES[header[13]]
    client: tuple[str, int] | str | None
    server: tuple[str, int] | str | None
    if family == "TCP4":
        client = (str(ipaddress.IPv4Address(header[16:20])), int.from_bytes(header[24:26], "big"))
        server = (str(ipaddress.IPv4Address(header[20:24])), int.from_bytes(header[26:28], "big"))
    elif family == "TCP6":
        client = (str(ipaddress.IPv6Address(header[16:32])), int.from_bytes(header[48:50], "big"))
        server = (str(ipaddress.IPv6Address(header[32:48])), int.from_bytes(header[50:52], "big"))
    elif family == "UNIX":
        client = _unix_path(header[16:124])
        server = _unix_path(header[124:232])
    else:
        # AF_UNSPEC: the spec says to ignore the address information, so its block is skipped.
        return ProxyInfo("PROXY", "UNKNOWN", None, None, version=2)
    alpn, authority = _parse_tlvs(header, _V2_FIXED + needs)
    return ProxyInfo("PROXY", family, client, server, alpn, authority, version=2)


def _parse_tlvs(header: bytes, pos: int) -> tuple[bytes | None, str | None]:
    alpn: bytes | None = None
    authority: str | None = None
    crc_at: int | None = None
    total = len(header)
    while pos < total:
        if total - pos < 3:
            raise ProxyHeaderError(f"PROXY v2: {total - pos} stray bytes where a TLV should start")
        kind = header[pos]
        start = pos + 3
        end = start + int.from_bytes(header[pos + 1 : start], "big")
        if end > total:
            raise ProxyHeaderError(f"PROXY v2: TLV 0x{kind:02x} runs {end - total} bytes past the header")
        value = header[start:end]
        if kind == PP2_TYPE_ALPN:
            if alpn is not None:
                raise ProxyHeaderError("PROXY v2: two ALPN TLVs")
            alpn = value
        elif kind == PP2_TYPE_AUTHORITY:
            if authority is not None:
                raise ProxyHeaderError("PROXY v2: two AUTHORITY TLVs")
            try:
                authority = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ProxyHeaderError("PROXY v2: AUTHORITY TLV is not UTF-8") from None
        elif kind == PP2_TYPE_CRC32C:
            if crc_at is not None:
                raise ProxyHeaderError("PROXY v2: two CRC32C TLVs")
            if len(value) != 4:
                raise ProxyHeaderError(f"PROXY v2: CRC32C TLV of {len(value)} bytes, not 4")
            crc_at = start
        pos = end
    if crc_at is not None:
        # The checksum covers the whole header with its own field zeroed (spec 2.2.3).
        expected = int.from_bytes(header[crc_at : crc_at + 4], "big")
        if crc32c(header[:crc_at] + b"\0\0\0\0" + header[crc_at + 4 :]) != expected:
            raise ProxyHeaderError("PROXY v2: CRC32C mismatch")
    return alpn, authority


def _unix_path(raw: bytes) -> str:
    if raw[:1] == b"\0" and raw.strip(b"\0"):
        # A Linux abstract socket: a leading NUL, then the name, padded with NULs.
        name = raw.rstrip(b"\0")
    else:
        name = raw.split(b"\0", 1)[0]
    return name.decode("utf-8", "surrogateescape")


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 4960 appendix B), which the PP2_TYPE_CRC32C TLV carries."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _show(data: bytes | bytearray | memoryview) -> str:
    """The first bytes, for an error message: enough to tell TLS from HTTP from garbage."""
    return repr(bytes(data[:24]))
