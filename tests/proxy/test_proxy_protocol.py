"""The PROXY protocol reader against HAProxy's spec (doc/proxy-protocol.txt): every rule, valid and
invalid, whole and one byte at a time, then hypothesis properties over arbitrary bytes, generated
headers and chunkings.

v2 headers are built here with struct and socket.inet_pton, and CRC32C with a bitwise loop, so the
tests do not share code with the reader they check.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.proxy.protocol import (
    MAX_V1,
    MAX_V2,
    ProxyHeaderError,
    ProxyHeaderReader,
    ProxyInfo,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
AFTER = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # the start of a TLS ClientHello


def v2(command: int = 1, fam: int = 0x11, block: bytes = b"", length: int | None = None) -> bytes:
    size = len(block) if length is None else length
    return SIG + struct.pack("!BBH", 0x20 | command, fam, size) + block


def inet(family: int, src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_pton(family, src) + socket.inet_pton(family, dst) + struct.pack("!HH", sport, dport)


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def with_crc(header: bytes) -> bytes:
    """Append a CRC32C TLV to a v2 header, fixing its length field and filling in the checksum."""
    body = header[16:] + tlv(0x03, b"\0\0\0\0")
    unsigned = header[:14] + struct.pack("!H", len(body)) + body
    return unsigned[:-4] + struct.pack("!I", crc32c_bitwise(unsigned))


def parse_whole(data: bytes, **options) -> tuple[ProxyInfo, bytes]:
    reader = ProxyHeaderReader(**options)
    info = reader.feed(data)
    assert info is not None
    return info, reader.rest


def parse_bytewise(data: bytes, **options) -> tuple[ProxyInfo | None, bytes]:
    """Feed one byte at a time; once complete, the bytes not yet fed belong to rest."""
    reader = ProxyHeaderReader(**options)
    for index in range(len(data)):
        info = reader.feed(data[index : index + 1])
        if info is not None:
            return info, reader.rest + data[index + 1 :]
    return None, b""


def assert_parses(data: bytes, expected: ProxyInfo, **options) -> None:
    for tail in (b"", AFTER):
        assert parse_whole(data + tail, **options) == (expected, tail)
        assert parse_bytewise(data + tail, **options) == (expected, tail)


def assert_refused(data: bytes, **options) -> None:
    with pytest.raises(ProxyHeaderError):
        ProxyHeaderReader(**options).feed(data + AFTER)
    reader = ProxyHeaderReader(**options)
    with pytest.raises(ProxyHeaderError):
        for index in range(len(data)):
            assert reader.feed(data[index : index + 1]) is None
        reader.feed(AFTER)


def refused_at(data: bytes, **options) -> int:
    """How many bytes, fed one at a time, it takes to refuse `data`."""
    reader = ProxyHeaderReader(**options)
    for index in range(len(data)):
        try:
            assert reader.feed(data[index : index + 1]) is None
        except ProxyHeaderError:
            return index + 1
    raise AssertionError(f"{data!r} not refused")


# --- version 1 ---------------------------------------------------------------------------------


def tcp(family: str, src: str, dst: str, sport: int, dport: int, version: int = 1, **tlvs) -> ProxyInfo:
    return ProxyInfo("PROXY", family, (src, sport), (dst, dport), version=version, **tlvs)


UNKNOWN_V1 = ProxyInfo("PROXY", "UNKNOWN", None, None, version=1)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # The spec's own example.
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            tcp("TCP4", "192.168.0.1", "192.168.0.11", 56324, 443),
        ),
        (
            b"PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
            tcp("TCP4", "255.255.255.255", "0.0.0.0", 65535, 0),
        ),
        (b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n", tcp("TCP6", "2001:db8::1", "::1", 1, 2)),
        # Full form and upper case come back in canonical form.
        (
            b"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 FFFF::FFFF 80 8080\r\n",
            tcp("TCP6", "2001:db8::1", "ffff::ffff", 80, 8080),
        ),
        # As HAProxy's inet_ntop writes an IPv4-mapped address.
        (
            b"PROXY TCP6 ::ffff:192.0.2.1 ::ffff:10.0.0.1 1 2\r\n",
            tcp(
                "TCP6",
                str(ipaddress.IPv6Address("::ffff:192.0.2.1")),
                str(ipaddress.IPv6Address("::ffff:a00:1")),
                1,
                2,
            ),
        ),
        (b"PROXY UNKNOWN\r\n", UNKNOWN_V1),
        (b"PROXY UNKNOWN ffff:f...f:ffff whatever 1 2\r\n", UNKNOWN_V1),
        (b"PROXY UNKNOWN \r\n", UNKNOWN_V1),
    ],
)
def test_v1_valid(line: bytes, expected: ProxyInfo) -> None:
    assert_parses(line, expected)
    assert_parses(line, expected, versions="v1")


def test_v1_longest_lines_fit() -> None:
    full = ":".join(["ffff"] * 8).encode()
    line = b"PROXY TCP6 " + full + b" " + full + b" 65535 65535\r\n"
    assert len(line) == 104
    assert_parses(
        line,
        tcp(
            "TCP6",
            str(ipaddress.IPv6Address(full.decode())),
            str(ipaddress.IPv6Address(full.decode())),
            65535,
            65535,
        ),
    )
    worst = b"PROXY UNKNOWN " + full + b" " + full + b" 65535 65535\r\n"
    assert len(worst) == MAX_V1 == 107
    assert_parses(worst, UNKNOWN_V1)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n",  # 108 bytes: the CRLF is not in the first 107
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",  # two spaces
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",  # trailing space
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
        b"PROXY\r\n",
        b"PROXY TCP4\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  # destination port missing
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",  # a fifth field
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",  # leading zero: octal?
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 00 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa1 443\r\n",  # an Arabic-Indic digit
        b"PROXY TCP4 ::1 ::1 1 2\r\n",  # family and address disagree
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  # a zone id
        b"PROXY TCP6 1::2::3 ::1 1 2\r\n",
        b"PROXY TCP6 12345:: ::1 1 2\r\n",
        b"PROXY TCP6 ::ffff:1.2.3.04 ::1 1 2\r\n",
        b"PROXY TCP6 [::1] ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # bare LF ends the line
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        b"PROXY UNKNOWN foo\nbar\r\n",
        b"PROXY UNKNOWN foo\rbar\r\n",
    ],
)
def test_v1_invalid(line: bytes) -> None:
    assert_refused(line)


@pytest.mark.parametrize(
    ("data", "at"),
    [
        (b"GET / HTTP/1.1\r\n", 1),
        (b"\x16\x03\x01\x02\x00", 1),
        (b"PROXZ TCP4", 5),
        (b"PROXY TCP7", 10),
        (b"PROXY TCP4 1.2.3.256 ", 20),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01", 29),  # nothing may follow a port of 0 but a space or CRLF
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536", 32),
        (b"PROXY TCP6 :::", 14),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r", 29),  # CR where the line cannot end
        (b"PROXY UNKNOWN " + b"x" * 100, MAX_V1),
    ],
)
def test_v1_refused_as_soon_as_it_cannot_be_a_header(data: bytes, at: int) -> None:
    assert refused_at(data) == at


# --- version 2 ---------------------------------------------------------------------------------

# A header HAProxy sent (send-proxy-v2) before "GET /", from a capture: 172.19.0.1:42578 -> :80.
HAPROXY_V2_TCP4 = bytes.fromhex("0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050")


def test_v2_haproxy_capture() -> None:
    assert_parses(HAPROXY_V2_TCP4, tcp("TCP4", "172.19.0.1", "172.19.0.3", 42578, 80, version=2))


def test_v2_tcp6_with_tlvs_as_haproxy_sends_them() -> None:
    # send-proxy-v2-ssl with ALPN and SNI, plus TLVs the reader skips: SSL (with sub-TLVs), NOOP,
    # UNIQUE_ID, and AWS NLB's custom 0xEA (VPC endpoint id).
    ssl = tlv(0x20, b"\x01" + b"\0\0\0\0" + tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_128_GCM_SHA256"))
    tlvs = (
        tlv(0x01, b"h2")
        + tlv(0x02, "bücher.example".encode())
        + ssl
        + tlv(0x04, b"")
        + tlv(0x05, b"\x99" * 128)
        + tlv(0xEA, b"\x01vpce-0123456789abcdef")
    )
    header = v2(1, 0x21, inet(socket.AF_INET6, "2001:db8::1", "2001:db8::2", 50000, 443) + tlvs)
    expected = tcp(
        "TCP6", "2001:db8::1", "2001:db8::2", 50000, 443, 2, alpn=b"h2", authority="bücher.example"
    )
    assert_parses(header, expected)
    assert_parses(with_crc(header), expected)


def test_v2_unix_paths() -> None:
    block = b"/run/haproxy/client.sock".ljust(108, b"\0") + b"/run/gateway.sock".ljust(108, b"\0")
    assert_parses(
        v2(1, 0x31, block),
        ProxyInfo("PROXY", "UNIX", "/run/haproxy/client.sock", "/run/gateway.sock", version=2),
    )
    # An unnamed client socket, and a Linux abstract one.
    block = b"\0" * 108 + b"\0gateway".ljust(108, b"\0")
    assert_parses(
        v2(1, 0x31, block + tlv(0x01, b"http/1.1")),
        ProxyInfo("PROXY", "UNIX", "", "\0gateway", b"http/1.1", version=2),
    )


@pytest.mark.parametrize(
    "header",
    [
        v2(0, 0x00),  # what HAProxy sends for its health checks
        v2(0, 0x11, inet(socket.AF_INET, "10.0.0.1", "10.0.0.2", 1, 2)),  # addresses ignored
        v2(0, 0x12, b"anything at all, TLVs too: none of it is read"),  # family ignored, even DGRAM
        v2(0, 0x21, b""),  # too short for TCP6, but LOCAL ignores the family
    ],
)
def test_v2_local_has_no_addresses(header: bytes) -> None:
    assert_parses(header, ProxyInfo("LOCAL", "UNKNOWN", None, None, version=2))


def test_v2_unspec_family_is_unknown() -> None:
    assert_parses(v2(1, 0x00), ProxyInfo("PROXY", "UNKNOWN", None, None, version=2))
    assert_parses(v2(1, 0x00, b"\x01\x02"), ProxyInfo("PROXY", "UNKNOWN", None, None, version=2))


TCP4_BLOCK = inet(socket.AF_INET, "10.0.0.1", "10.0.0.2", 1, 2)


@pytest.mark.parametrize(
    "header",
    [
        v2(1, 0x12, TCP4_BLOCK),  # UDP: refused
        v2(1, 0x22, b"\0" * 36),
        v2(1, 0x32, b"\0" * 216),
        *(v2(1, fam, b"\0" * 216) for fam in (0x01, 0x02, 0x10, 0x13, 0x20, 0x33, 0x41, 0xFF)),
        SIG + bytes([0x12, 0x11]) + struct.pack("!H", 12) + TCP4_BLOCK,  # version 1
        SIG + bytes([0x31, 0x11]) + struct.pack("!H", 12) + TCP4_BLOCK,  # version 3
        SIG + bytes([0x22, 0x11]) + struct.pack("!H", 12) + TCP4_BLOCK,  # command 2
        v2(1, 0x11, TCP4_BLOCK[:11]),  # address block shorter than TCP4 needs
        v2(1, 0x21, b"\0" * 35),
        v2(1, 0x31, b"\0" * 215),
        v2(1, 0x11, TCP4_BLOCK + b"\x01"),  # a TLV header cut short
        v2(1, 0x11, TCP4_BLOCK + b"\x01\x00"),
        v2(1, 0x11, TCP4_BLOCK + tlv(0x01, b"h2")[:-1]),  # a TLV running past the end
        v2(1, 0x11, TCP4_BLOCK + tlv(0x20, b"")[:3] + b"\xff"),
        v2(1, 0x11, TCP4_BLOCK + tlv(0x02, b"\xff\xfe")),  # AUTHORITY not UTF-8
        v2(1, 0x11, TCP4_BLOCK + tlv(0x01, b"h2") + tlv(0x01, b"http/1.1")),  # which one?
        v2(1, 0x11, TCP4_BLOCK + tlv(0x02, b"a") + tlv(0x02, b"b")),
        v2(1, 0x11, TCP4_BLOCK + tlv(0x03, b"\0\0\0")),  # CRC32C of 3 bytes
        with_crc(v2(1, 0x11, TCP4_BLOCK))[:-1] + b"\x00",  # wrong checksum
        with_crc(with_crc(v2(1, 0x11, TCP4_BLOCK))),
        b"\r\n\r\n\x00\r\nQUIT\r" + bytes([0x21, 0x11]) + struct.pack("!H", 12) + TCP4_BLOCK,
    ],
)
def test_v2_invalid(header: bytes) -> None:
    assert_refused(header)


def test_v2_crc32c_matches_the_rfc_check_value() -> None:
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    header = with_crc(HAPROXY_V2_TCP4)
    assert_parses(header, tcp("TCP4", "172.19.0.1", "172.19.0.3", 42578, 80, version=2))
    for index in range(16, 28):  # a flipped bit in the addresses, which nothing else checks
        damaged = bytearray(header)
        damaged[index] ^= 0x40
        with pytest.raises(ProxyHeaderError):
            ProxyHeaderReader().feed(bytes(damaged))


@pytest.mark.parametrize(
    ("data", "at"),
    [
        (SIG[:5] + b"\x01", 6),
        (SIG + b"\x11", 13),  # version 1
        (SIG + b"\x23", 13),  # command 3
        (SIG + b"\x21\x12", 14),  # PROXY over UDP
        (SIG + b"\x21\x14", 14),
        (SIG + b"\x21\x11\x00\x0b", 16),  # TCP4 in 11 bytes
        (SIG + b"\x21\x11\x0f\xf1", 16),  # 4081 + 16 > 4096
    ],
)
def test_v2_refused_as_soon_as_it_cannot_be_a_header(data: bytes, at: int) -> None:
    assert refused_at(data) == at


def test_v2_length_bound() -> None:
    """The caller's bound, not the spec's 64 KiB, limits what one untrusted connection may make
    the server hold; the spec's largest header still parses when the caller allows it."""

    def padded(total: int) -> bytes:
        return v2(1, 0x11, TCP4_BLOCK + tlv(0x04, b"\0" * (total - 16 - 12 - 3)))

    expected = tcp("TCP4", "10.0.0.1", "10.0.0.2", 1, 2, version=2)
    assert parse_whole(padded(4096)) == (expected, b"")
    assert_refused(padded(4097))
    assert refused_at(padded(4097)) == 16
    assert parse_whole(padded(300), max_v2_length=300)[0] == expected
    assert_refused(padded(301), max_v2_length=300)
    largest = padded(MAX_V2)
    assert len(largest) == 16 + 65535
    assert parse_whole(largest + AFTER, max_v2_length=MAX_V2) == (expected, AFTER)


def test_buffer_never_holds_more_than_one_header() -> None:
    # White-box: the reader's own buffer, whatever the caller hands it at once.
    reader = ProxyHeaderReader()
    assert reader.feed(b"PROXY UNKNOWN " + b"x" * 80) is None
    assert len(reader._buf) <= MAX_V1
    with pytest.raises(ProxyHeaderError):
        reader.feed(b"x" * 1_000_000)
    reader = ProxyHeaderReader()
    assert reader.feed(SIG + b"\x21\x11\x0f\xf0" + b"\0" * 100) is None
    assert reader.feed(b"\0" * 100_000) is not None  # completes at 4096; the rest is `rest`
    assert len(reader.rest) == 16 + 100 + 100_000 - 4096


# --- versions, state and misuse ----------------------------------------------------------------


def test_versions_choose_the_formats() -> None:
    v1_line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    assert parse_whole(v1_line, versions="v1")[0].version == 1
    assert parse_whole(HAPROXY_V2_TCP4, versions="v2")[0].version == 2
    assert refused_at(HAPROXY_V2_TCP4, versions="v1") == 1
    assert refused_at(v1_line, versions="v2") == 1
    with pytest.raises(ValueError):
        ProxyHeaderReader("v3")
    for bad in (15, MAX_V2 + 1, True):
        with pytest.raises(ValueError):
            ProxyHeaderReader(max_v2_length=bad)


def test_after_the_header() -> None:
    reader = ProxyHeaderReader()
    assert reader.rest == b""
    assert reader.feed(b"") is None
    assert reader.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r") is None
    assert reader.rest == b""
    assert reader.feed(b"\n") is not None
    assert reader.rest == b""
    with pytest.raises(RuntimeError):
        reader.feed(b"GET")


def test_an_error_sticks() -> None:
    reader = ProxyHeaderReader()
    with pytest.raises(ProxyHeaderError) as first:
        reader.feed(b"GET / HTTP/1.1\r\n")
    assert "GET / HTTP/1.1" in str(first.value)  # enough for a debug log line to tell
    with pytest.raises(ProxyHeaderError) as again:
        reader.feed(b"PROXY UNKNOWN\r\n")
    assert again.value is first.value


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        b"PROXY TCP6 ::1 ::1 1 2\r\n",
        HAPROXY_V2_TCP4,
        with_crc(HAPROXY_V2_TCP4),
        v2(0, 0x00),
    ],
)
def test_needed_hint_never_reads_past_the_header(header: bytes) -> None:
    # A caller that must leave the TLS bytes in the socket reads needed_hint bytes at a time.
    reader = ProxyHeaderReader()
    stream = header + AFTER
    pos = 0
    while True:
        want = reader.needed_hint
        assert want >= 1
        info = reader.feed(stream[pos : pos + want])
        pos += want
        if info is not None:
            break
    assert reader.rest == b""
    assert stream[pos:] == AFTER
    assert reader.needed_hint == 0


# --- properties --------------------------------------------------------------------------------


def feed_in_chunks(reader: ProxyHeaderReader, data: bytes, cuts: list[int]) -> tuple[ProxyInfo | None, bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    for index, piece in enumerate(pieces):
        info = reader.feed(piece)
        if info is not None:
            return info, reader.rest + b"".join(pieces[index + 1 :])
    return None, b""


def cuts_for(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=12)


ports = st.integers(0, 0xFFFF)


@st.composite
def v1_headers(draw: st.DrawFn) -> tuple[bytes, ProxyInfo]:
    if draw(st.integers(0, 9)) == 0:
        junk = draw(st.binary(max_size=MAX_V1 - 16).filter(lambda b: b"\r" not in b and b"\n" not in b))
        return b"PROXY UNKNOWN" + (b" " + junk if junk or draw(st.booleans()) else b"") + b"\r\n", UNKNOWN_V1
    v6 = draw(st.booleans())
    addresses = st.ip_addresses(v=6 if v6 else 4)
    src, dst, sport, dport = draw(addresses), draw(addresses), draw(ports), draw(ports)

    def text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
        form = draw(st.sampled_from(["compressed", "exploded", "upper"])) if v6 else "compressed"
        written = address.exploded if form == "exploded" else address.compressed
        return (written.upper() if form == "upper" else written).encode()

    family = b"TCP6" if v6 else b"TCP4"
    line = b" ".join([b"PROXY", family, text(src), text(dst), b"%d" % sport, b"%d" % dport]) + b"\r\n"
    return line, tcp(family.decode(), str(src), str(dst), sport, dport)


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[bytes, ProxyInfo]:
    kind = draw(st.sampled_from(["TCP4", "TCP6", "UNIX", "LOCAL"]))
    if kind == "LOCAL":
        return v2(0, 0x00, draw(st.binary(max_size=40))), ProxyInfo("LOCAL", "UNKNOWN", None, None, version=2)
    if kind == "UNIX":
        path = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30).filter(
            lambda p: len(p.encode()) <= 108
        )
        client, server = draw(path), draw(path)
        block = client.encode().ljust(108, b"\0") + server.encode().ljust(108, b"\0")
        fam = 0x31
    else:
        v6 = kind == "TCP6"
        address = st.ip_addresses(v=6 if v6 else 4)
        src, dst, sport, dport = draw(address), draw(address), draw(ports), draw(ports)
        block = src.packed + dst.packed + struct.pack("!HH", sport, dport)
        client, server = (str(src), sport), (str(dst), dport)
        fam = 0x21 if v6 else 0x11
    others = draw(
        st.lists(
            st.tuples(st.integers(0, 255).filter(lambda t: t not in (1, 2, 3)), st.binary(max_size=30)),
            max_size=4,
        )
    )
    tlvs = [tlv(t, value) for t, value in others]
    alpn = draw(st.none() | st.binary(max_size=20))
    authority = draw(st.none() | st.text(st.characters(codec="utf-8"), max_size=20))
    if alpn is not None:
        tlvs.insert(draw(st.integers(0, len(tlvs))), tlv(0x01, alpn))
    if authority is not None:
        tlvs.insert(draw(st.integers(0, len(tlvs))), tlv(0x02, authority.encode()))
    header = v2(1, fam, block + b"".join(tlvs))
    if draw(st.booleans()):
        header = with_crc(header)
    return header, ProxyInfo("PROXY", kind, client, server, alpn, authority, version=2)


headers = st.one_of(v1_headers(), v2_headers())
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(headers, st.binary(max_size=40), st.data())
def test_property_round_trip(header: tuple[bytes, ProxyInfo], tail: bytes, data: st.DataObject) -> None:
    raw, expected = header
    stream = raw + tail
    versions = data.draw(st.sampled_from(["auto", "v1" if expected.version == 1 else "v2"]))
    got = feed_in_chunks(ProxyHeaderReader(versions), stream, data.draw(cuts_for(stream)))
    assert got == (expected, tail)


@FAST
@given(headers, st.data())
def test_property_strict_prefix_needs_more(header: tuple[bytes, ProxyInfo], data: st.DataObject) -> None:
    raw, _ = header
    size = data.draw(st.integers(0, len(raw) - 1))
    prefix = raw[:size]
    assert feed_in_chunks(ProxyHeaderReader(), prefix, data.draw(cuts_for(prefix))) == (None, b"")


def mutated(raw: bytes, draw: st.DrawFn) -> bytes:
    """A valid header with a byte changed, inserted or removed, or cut short, or left alone."""
    index = draw(st.integers(0, len(raw)))
    byte = bytes([draw(st.integers(0, 255))])
    how = draw(st.sampled_from(["replace", "insert", "delete", "cut", "none"]))
    if how == "replace":
        return raw[:index] + byte + raw[index + 1 :]
    if how == "insert":
        return raw[:index] + byte + raw[index:]
    if how == "delete":
        return raw[:index] + raw[index + 1 :]
    return raw[:index] if how == "cut" else raw


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_property_only_proxy_header_error(data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        stream = data.draw(st.binary(max_size=120))
        if data.draw(st.booleans()):
            stream = data.draw(st.sampled_from([b"PROXY ", SIG, SIG + b"\x21"])) + stream
    else:
        stream = mutated(data.draw(headers)[0], data.draw) + data.draw(st.binary(max_size=20))
    versions = data.draw(st.sampled_from(["auto", "v1", "v2"]))
    reader = ProxyHeaderReader(versions, max_v2_length=data.draw(st.integers(16, 600)))
    try:
        info, rest = feed_in_chunks(reader, stream, data.draw(cuts_for(stream)))
    except ProxyHeaderError:
        return
    if info is not None:
        assert isinstance(info, ProxyInfo)
        assert stream.endswith(rest)
