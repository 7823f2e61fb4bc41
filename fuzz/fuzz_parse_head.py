"""Fuzz `parse_head` (gateway/h1/_wire.c) against the full way: the scanner and llhttp.

parse_head reads the plainest request heads in one call and declines the rest (None), which
then go the full way; it must never serve a request differently. So the httptools engine with
it and without it get the same bytes, whole and cut in two, and must serve the same requests
and refuse with the same status. Each head it takes is also checked against its bytes, and
ASan watches every read.

Input: byte 0 is `pos`, bytes 1-2 `max_head_size` (little-endian; 0xffff means sys.maxsize and
0xfffe means -1), byte 3 where the bytes are cut in two, the rest the bytes.
"""

from __future__ import annotations

import sys

import harness

wire, httptools_engine = harness.import_gateway("gateway.h1.wire", "gateway.h1.httptools_engine")
parse_head = wire.parse_head
assert parse_head is not None
# The suite's sans-IO driver: what a server acts on, as the engine tests compare it.
sys.path.insert(0, str(harness.REPO / "tests" / "h1"))
from test_h1_engines import parse  # noqa: E402

TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
FULL_WAY_FIELDS = (b"content-length", b"transfer-encoding", b"upgrade", b"expect")


class FullWayEngine(httptools_engine.HttptoolsEngine):
    """Every head through the scanner and llhttp: the reference (as in tests/h1/test_h1_wire.py)."""

    __slots__ = ()
    parse_head = None


def check_head(data: bytes, pos: int, max_head_size: int, head: tuple) -> None:
    """A head parse_head takes is the plainest kind, read from exactly its own bytes: a wrong
    offset or field here would be served before any engine could notice."""
    end, method, target, headers = head
    assert type(end) is int and pos < end <= len(data) and end - pos <= max_head_size, (pos, end)
    raw = data[pos:end]
    assert raw.endswith(b"\r\n\r\n") and raw.count(b"\r\n\r\n") == 1, raw
    lines = raw[:-4].split(b"\r\n")
    assert type(method) is str and method in METHODS, method
    assert type(target) is bytes and lines[0] == method.encode() + b" " + target + b" HTTP/1.1", lines[0]
    assert target[:1] == b"/" and all(0x21 <= c <= 0x7E and c != ord("#") for c in target), target
    assert type(headers) is list and len(headers) == len(lines) - 1, (headers, lines)
    for (name, value), line in zip(headers, lines[1:], strict=True):
        line_name, colon, line_value = line.partition(b":")
        assert type(name) is bytes and colon and name == line_name.lower(), (name, line)
        assert name and all(c in TCHAR for c in name), name
        assert type(value) is bytes and value and value == line_value.strip(b" \t"), (value, line)
        assert all(c == 9 or 0x20 <= c <= 0x7E for c in value), value
        assert name not in FULL_WAY_FIELDS, name
        assert name != b"connection" or value.lower() == b"keep-alive", value
    assert [name for name, _ in headers].count(b"host") == 1, headers


def test_one_input(raw: bytes) -> None:
    if len(raw) < 4:
        return
    pos = raw[0]
    limit = raw[1] | raw[2] << 8
    max_head_size = {0xFFFF: sys.maxsize, 0xFFFE: -1}.get(limit, limit)
    data = raw[4:]
    if pos > len(data):
        # Refused, unless a negative limit declines first.
        try:
            head = parse_head(data, pos, max_head_size)
        except ValueError as exc:
            assert max_head_size >= 0 and str(exc) == "pos outside data", exc
        else:
            assert max_head_size < 0 and head is None, (pos, len(data), max_head_size, head)
        pos = len(data)
    head = parse_head(data, pos, max_head_size)
    if head is not None:
        check_head(data, pos, max_head_size, head)
        # Pipelining: the engine reads the next head from where this one ended.
        after = parse_head(data, head[0], max_head_size)
        if after is not None:
            check_head(data, head[0], max_head_size, after)
    engine_limit = limit if 0 < limit < 0xFFFE else 4096
    cut = raw[3] * len(data) // 255
    for pieces in ([data], [data[:cut], data[cut:]]):
        harness.same("the engine served these bytes differently with parse_head",
                     parse(httptools_engine.HttptoolsEngine, pieces, engine_limit),
                     parse(FullWayEngine, pieces, engine_limit),
                     pieces=pieces, max_head_size=engine_limit)


BROWSER = (b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: localhost:8000\r\nConnection: keep-alive\r\n"
           b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
           b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
           b"Sec-Fetch-Mode: no-cors\r\nReferer: https://localhost:8000/\r\n"
           b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
           b"Cookie: a=1; b=2\r\nUpgrade-Insecure-Requests: 1\r\n\r\n")
CURL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
WRK = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
HEADS = [
    BROWSER, CURL, WRK,
    WRK + CURL + b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" + WRK,
    WRK + b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + WRK,
    WRK + b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + CURL,
    b"".join(b"%s /m HTTP/1.1\r\nHost: x\r\n\r\n" % method for method in
             (b"DELETE", b"OPTIONS", b"PATCH", b"PUT", b"POST", b"TRACE", b"get")),
    b"GET / HTTP/1.1\r\nHost:x\r\nX-A:   a  b \t\r\nX-B:\tv\t\r\nX-Empty:\r\nX-Sp: \r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\tc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\nX-Nul: a\x00b\r\nX-Del: \x7f\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\rHost: x\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a%41b.example:80\r\n\r\nGET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n"
    b"GET / HTTP/1.1\r\nHost: :80\r\n\r\nGET / HTTP/1.1\r\nHost: x:\r\n\r\n"
    b"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n"
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
    b"GET /a%2Fb/%E2%82%AC?x=%20&y=1 HTTP/1.1\r\nHost: x\r\n\r\nGET //x?# HTTP/1.1\r\nHost: x\r\n\r\n"
    b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\nGET / HTTP/1.2\r\nHost: x\r\n\r\n",
    BROWSER[:-3],
]


def seeds() -> list[bytes]:
    """Heads from browsers, curl and wrk, pipelined, and each thing parse_head declines; with
    no limit, a small one and the head's own length, cut in different places."""
    made = []
    for data in HEADS:
        for control in (bytes([0, 0x00, 0x10, 128]), bytes([0, 0xFF, 0xFF, 40]),
                        bytes([0, len(data) & 0xFF, len(data) >> 8, 200])):
            made.append(control + data)
    made.append(bytes([len(WRK), 0x00, 0x10, 0]) + WRK + CURL)  # pos in a pipeline
    made.append(bytes([0, len(WRK) - 1, 0, 0]) + WRK)  # one byte over the limit
    return made


if __name__ == "__main__":
    harness.main(test_one_input, seeds)
