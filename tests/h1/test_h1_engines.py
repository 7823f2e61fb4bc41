"""The two HTTP/1.1 engines side by side, sans-IO: the same bytes in must give the same request
callbacks (or the same error status), and the same response calls must give bytes that an
HTTP client (h11, client side) reads as the same response. h11 is the reference.

Requests get one verdict from both (gateway/h1/strict.py); test_h1_strict.py tries them on
hostile inputs. Response differences judged acceptable are listed with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h11
import pytest

from gateway.h1.engine import BodyLengthError, RequestError
from gateway.h1.h11_engine import H11Engine
from gateway.h1.httptools_engine import HttptoolsEngine

ENGINE_CLASSES = {"h11": H11Engine, "httptools": HttptoolsEngine}
MAX_HEAD = 4096


class Defaults:
    """What ServerState gives the engines by default: a server field and a fixed date."""

    head_lines = b"server: gateway\r\n"
    header_lines = b""
    date_line = b"date: X\r\n"
    head_fields = [(b"server", b"gateway")]
    header_fields: list[tuple[bytes, bytes]] = []
    date_value = b"X"


@dataclass
class Parsed:
    """One request as the handler saw it."""

    method: str
    target: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    body_length: int
    switching: bool
    expect_continue: bool
    body: bytes = b""
    ended: bool = False


@dataclass
class Recorder:
    requests: list[Parsed] = field(default_factory=list)

    def on_request(self, method, target, http_version, headers, keep_alive, body_length, switching,
                   expect_continue) -> None:
        assert type(target) is bytes
        assert all(type(name) is bytes and type(value) is bytes for name, value in headers)
        self.requests.append(Parsed(method, bytes(target), http_version, list(headers), keep_alive,
                                    body_length, switching, expect_continue))

    def on_body(self, data: bytes) -> None:
        current = self.requests[-1]
        assert not current.ended
        current.body += bytes(data)

    def on_request_end(self) -> None:
        current = self.requests[-1]
        assert not current.ended
        current.ended = True


def make(engine: str | type, recorder: Any = None, max_head_size: int = MAX_HEAD):
    """`engine`: a name of ENGINE_CLASSES, or an engine class of the caller's."""
    recorder = recorder if recorder is not None else Recorder()
    engine_class = ENGINE_CLASSES[engine] if isinstance(engine, str) else engine
    return engine_class(recorder, max_head_size, Defaults()), recorder


def parse(engine: str | type, pieces: list[bytes], max_head_size: int = MAX_HEAD):
    """Feed `pieces`, answering each finished request as the connection protocol would, and
    return what a server acts on: the requests up to the first that ends the connection, and
    the error status if parsing failed before that point."""
    eng, recorder = make(engine, max_head_size=max_head_size)
    answered = 0
    error = None
    try:
        for piece in pieces:
            eng.feed(piece)
            while answered < len(recorder.requests) and recorder.requests[answered].ended:
                keep_alive = recorder.requests[answered].keep_alive
                answered += 1
                eng.start_response(200, [], b"", False, keep_alive)
                if not keep_alive:
                    break
                eng.next_cycle()
            if answered and not recorder.requests[answered - 1].keep_alive:
                break
    except RequestError as exc:
        error = exc.status
    requests = recorder.requests
    for index, parsed in enumerate(requests):
        if parsed.ended and not parsed.keep_alive:
            # Nothing after a request that closes the connection is ever served (h11 stops
            # parsing there, llhttp parses ahead): only what a server acts on is compared.
            requests = requests[:index + 1]
            error = None
            break
    return requests, error


def every_split(data: bytes) -> list[list[bytes]]:
    return [[data[:index], data[index:]] for index in range(1, len(data))]


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[index:index + 1] for index in range(len(data))]


# -- the request corpus ----------------------------------------------------------------------

VALID = {
    "get": b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "target-bytes": b"GET /a%2Fb/%E2%82%AC?x=%20&y=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute-form": b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "delete": b"DELETE /thing HTTP/1.1\r\nHost: x\r\n\r\n",
    "post-content-length": (
        b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
        b"hello world"
    ),
    "post-zero-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "post-chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    ),
    "post-chunked-upper-hex": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n"
    ),
    "chunked-empty": b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "head": b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    "http10-with-host-and-body": b"POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "connection-close": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "connection-close-in-list": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
    "connection-keep-alive": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    "expect-continue": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
    ),
    "expect-continue-mixed-case": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\nabc"
    ),
    "header-whitespace": b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad:   padded  value \t \r\nX-Tab:\tv\r\n\r\n",
    "empty-header-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Empty-Space: \r\n\r\n",
    "repeated-headers-keep-order": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nCookie: a=1\r\nX-A: 2\r\nCookie: b=2\r\n\r\n"
    ),
    "mixed-case-names": b"GET / HTTP/1.1\r\nhOsT: x\r\ncOnTeNt-TyPe: Text/HTML\r\n\r\n",
    "obs-text-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n\r\n",
    "pipelined-three": (
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
        b"PUT /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ),
    "pipelined-then-close": (
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "head-just-under-limit": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"f" * (MAX_HEAD - 200) + b"\r\n\r\n"
    ),
    "partial-head": b"GET / HTTP/1.1\r\nHost: x\r\nX-Unfinished: abc",
    "partial-body": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
}

MALFORMED = {
    "garbage": (b"GARBAGE\r\n\r\n", 400),
    "tls-client-hello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 20, 400),
    "space-in-target": (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad-header-name": (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400),
    "header-without-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    "negative-content-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    "plus-content-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
    "conflicting-content-length": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400
    ),
    "content-length-and-chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n", 400
    ),
    "non-hex-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400
    ),
    "chunk-without-crlf": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", 400
    ),
    "transfer-coding-then-chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501
    ),
    "http2-request-line": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%03d: %s\r\n" % (i, b"v" * 40) for i in range(120))
        + b"\r\n", 431,
    ),
    "huge-header-unfinished": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * MAX_HEAD), 431),
    "huge-target": (b"GET /" + b"t" * (2 * MAX_HEAD) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    "pipelined-garbage-after-valid": (b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE / NOPE\r\n\r\n", 400),
    # Where the engines used to differ; gateway/h1/strict.py gives the one verdict.
    "missing-host": (b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400),
    "duplicate-equal-content-length": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nA", 400
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
    "bare-lf-line-ends": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "unknown-transfer-coding": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    "two-transfer-encoding-headers": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n0\r\n\r\n", 400,
    ),
    "http09-request-line": (b"GET /\r\n\r\n", 400),
    "http-1.2": (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    "extension-method": (b"PURGEX / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    "lowercase-method": (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
}

def _outcome(engine: str, pieces: list[bytes], max_head_size: int = MAX_HEAD):
    requests, error = parse(engine, pieces, max_head_size)
    return requests, error


@pytest.mark.parametrize("name", list(VALID))
def test_valid_requests_parse_the_same(name):
    data = VALID[name]
    reference = _outcome("h11", [data])
    assert reference[1] is None, f"h11 refused {name}: {reference[1]}"
    assert reference[0] or name.startswith("partial"), "h11 delivered nothing"
    assert _outcome("httptools", [data]) == reference


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_requests_fail_the_same(name):
    data, status = MALFORMED[name]
    h11_requests, h11_error = _outcome("h11", [data])
    fast_requests, fast_error = _outcome("httptools", [data])
    assert (h11_error, fast_error) == (status, status)
    assert [r.target for r in fast_requests] == [r.target for r in h11_requests]


@pytest.mark.parametrize(
    "name", ["get", "post-chunked", "pipelined-three", "expect-continue", "header-whitespace"]
)
def test_valid_requests_split_anywhere(name):
    data = VALID[name]
    reference = _outcome("h11", [data])
    for engine in ENGINE_CLASSES:
        for pieces in [*every_split(data), byte_by_byte(data)]:
            assert _outcome(engine, pieces) == reference, (engine, pieces)


@pytest.mark.parametrize(
    "name", ["non-hex-chunk-size", "bad-header-name", "http2-request-line", "huge-header-unfinished"]
)
def test_malformed_requests_split_anywhere(name):
    data, status = MALFORMED[name]
    splits = every_split(data) if len(data) < 200 else []
    for engine in ENGINE_CLASSES:
        for pieces in [*splits, byte_by_byte(data)]:
            assert _outcome(engine, pieces)[1] == status, (engine, pieces[:2])


def _first_refused_size(engine: str, whole: bool) -> int | None:
    """The smallest head (request line to final CRLF) refused with 431, fed in one piece or
    one byte at a time."""
    for size in range(MAX_HEAD - 64, MAX_HEAD + 65):
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Fill: "
        head += b"f" * (size - len(head) - 4) + b"\r\n\r\n"
        assert len(head) == size
        _, error = _outcome(engine, [head] if whole else byte_by_byte(head))
        if error is not None:
            assert error == 431
            return size
    return None


def test_head_size_limit_is_drawn_at_the_same_place():
    """Both engines refuse a head just over max_head_size, however it arrives. They may count
    the request line and the final CRLF differently, so a few bytes of slack are allowed."""
    limits = {
        (engine, whole): _first_refused_size(engine, whole)
        for engine in ENGINE_CLASSES for whole in (True, False)
    }
    assert all(limit is not None and abs(limit - MAX_HEAD) <= 32 for limit in limits.values()), limits


def test_head_size_limit_applies_however_the_head_arrives():
    """A head twice the limit is refused whether it comes in one piece or many."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%04d: %s\r\n" % (index, b"v" * 50) for index in range(2 * MAX_HEAD // 60)
    ) + b"\r\n"
    assert len(head) > 2 * MAX_HEAD
    for engine in ENGINE_CLASSES:
        assert _outcome(engine, [head])[1] == 431, f"{engine}: one piece"
        pieces = [head[index:index + 100] for index in range(0, len(head), 100)]
        assert _outcome(engine, pieces)[1] == 431, f"{engine}: 100-byte pieces"


def test_http10_keep_alive_request_is_not_kept_alive():
    """h11 serves HTTP/1.0 one request per connection, even with `Connection: keep-alive`
    (it never sends the `Connection: keep-alive` that an HTTP/1.0 client needs to see)."""
    data = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    verdicts = {engine: _outcome(engine, [data])[0][0].keep_alive for engine in ENGINE_CLASSES}
    assert verdicts == {"h11": False, "httptools": False}


# -- responses -------------------------------------------------------------------------------


@dataclass
class Case:
    request: bytes
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    parts: list[tuple[bytes, bool]] = field(default_factory=lambda: [(b"hello", False)])
    keep_alive: bool = True


GET = b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"HEAD /r HTTP/1.1\r\nHost: x\r\n\r\n"
GET10 = b"GET /r HTTP/1.0\r\n\r\n"
CLOSE = b"GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
STREAM = [(b"", True), (b"abc", True), (b"defg", True), (b"", False)]

RESPONSES = {
    "content-length-given": Case(GET, headers=[(b"content-type", b"text/plain"),
                                               (b"content-length", b"5")]),
    "content-length-given-streamed": Case(GET, headers=[(b"content-length", b"7")], parts=STREAM),
    "single-final-message": Case(GET, headers=[(b"content-type", b"text/plain")]),
    "empty-single-message": Case(GET, parts=[(b"", False)]),
    "streamed-chunked": Case(GET, parts=STREAM),
    "streamed-first-part-in-start": Case(GET, parts=[(b"first", True), (b"second", False)]),
    "app-says-chunked": Case(GET, headers=[(b"Transfer-Encoding", b"chunked")], parts=STREAM),
    "large-streamed": Case(GET, parts=[(b"x" * 100_000, True), (b"y" * 70_000, False)]),
    "repeated-headers": Case(GET, headers=[(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"),
                                           (b"X-Mixed-Case", b"V")]),
    "head-with-length": Case(HEAD, headers=[(b"content-length", b"5")]),
    "head-single-message": Case(HEAD),
    "head-empty-single-message": Case(HEAD, parts=[(b"", False)]),
    "head-streamed": Case(HEAD, parts=STREAM),
    "204": Case(GET, status=204, parts=[(b"", False)]),
    "204-streamed": Case(GET, status=204, parts=STREAM),
    "304-with-length": Case(GET, status=304, headers=[(b"content-length", b"100"),
                                                      (b"etag", b'"v1"')], parts=[(b"", False)]),
    "304": Case(GET, status=304, parts=[(b"", False)]),
    "http10-single-message": Case(GET10),
    "http10-streamed": Case(GET10, parts=STREAM),
    "http10-streamed-with-length": Case(GET10, headers=[(b"content-length", b"7")], parts=STREAM),
    "client-asked-close": Case(CLOSE, parts=STREAM),
    "app-says-connection-close": Case(GET, headers=[(b"connection", b"close")]),
    "app-says-connection-keep-alive": Case(GET, headers=[(b"Connection", b"keep-alive")]),
    "app-says-keep-alive-server-closes": Case(GET, headers=[(b"Connection", b"keep-alive")],
                                              keep_alive=False),
    "keep-alive-false": Case(GET, keep_alive=False),
    "keep-alive-false-streamed": Case(GET, keep_alive=False, parts=STREAM),
    "error-status-streamed": Case(GET, status=503, parts=STREAM),
    "app-server-and-date": Case(GET, headers=[(b"Server", b"mine"), (b"date", b"D")]),
    "unknown-status": Case(GET, status=299),
}


# Response differences judged acceptable: header names left out of the comparison, and why.
ACCEPTED_RESPONSE_DIFFERENCES = {
    "head-streamed": (
        {b"transfer-encoding"},
        "h11 announces `transfer-encoding: chunked` on a HEAD response as the GET would have had"
        " it; the fast encoder leaves it out. RFC 9110 9.3.2 allows omitting header fields whose"
        " value is only known while generating content, and no body follows either way.",
    ),
}


def respond_with(engine: str, case: Case):
    """Parse the case's request with `engine`, answer it, return (bytes, keep-alive verdict)."""
    eng, recorder = make(engine)
    eng.feed(case.request)
    [parsed] = recorder.requests
    (first, more), *rest = case.parts
    data, keep_alive = eng.start_response(
        case.status, list(case.headers), first, more, case.keep_alive and parsed.keep_alive
    )
    data = _joined(data)
    for part, more in rest:
        data += _joined(eng.body(part, more))
    return data, keep_alive


def _joined(data: bytes | list[bytes]) -> bytes:
    """The fast encoder gives a large chunk as pieces, to be written uncopied."""
    return b"".join(data) if type(data) is list else data


def read_as_client(case: Case, data: bytes, server_closes: bool):
    """What an h11 client makes of `data`: status, headers, body, and whether the message ended."""
    method, target, version = case.request.split(b"\r\n")[0].split(b" ")
    headers = [(name, value) for name, _, value in
               (line.partition(b": ") for line in case.request.split(b"\r\n")[1:] if line)]
    if version == b"HTTP/1.0":
        # h11 only sends HTTP/1.1; a 1.1 request with `Connection: close` makes it read the
        # answer as a 1.0 client would: no persistence, a body delimited by the close.
        headers = [(b"host", b"x"), (b"connection", b"close")]
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target=target, headers=headers))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    if server_closes:
        client.receive_data(b"")
    status, names, body, ended = None, [], b"", False
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or type(event) is h11.ConnectionClosed:
            break
        if type(event) is h11.Response:
            status = event.status_code
            names = sorted((name.lower(), value) for name, value in event.headers)
        elif type(event) is h11.Data:
            body += event.data
        elif type(event) is h11.EndOfMessage:
            ended = True
            break
    leftover = client.trailing_data[0] if ended else b""
    return {"status": status, "headers": names, "body": body, "ended": ended, "leftover": leftover}


@pytest.mark.parametrize("name", list(RESPONSES))
def test_responses_read_the_same(name):
    case = RESPONSES[name]
    ignored = ACCEPTED_RESPONSE_DIFFERENCES.get(name, (set(), ""))[0]
    seen = {}
    for engine in ENGINE_CLASSES:
        data, keep_alive = respond_with(engine, case)
        seen[engine] = read_as_client(case, data, server_closes=not keep_alive)
        seen[engine]["keep_alive"] = keep_alive
        seen[engine]["headers"] = [item for item in seen[engine]["headers"] if item[0] not in ignored]
    assert seen["httptools"] == seen["h11"]
    assert seen["h11"]["ended"]
    assert seen["h11"]["leftover"] == b""


def test_expected_framing_on_the_wire():
    """A few framings spelled out, so both engines are also checked against the RFC and not
    only against each other."""
    for engine in ENGINE_CLASSES:
        data, keep_alive = respond_with(engine, RESPONSES["streamed-chunked"])
        assert data.endswith(b"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"), engine
        assert b"transfer-encoding: chunked\r\n" in data.lower() and keep_alive
        data, keep_alive = respond_with(engine, RESPONSES["http10-streamed"])
        assert data.endswith(b"\r\n\r\nabcdefg") and not keep_alive, engine
        assert b"transfer-encoding" not in data.lower() and b"\r\nconnection: close\r\n" in data.lower()
        data, _ = respond_with(engine, RESPONSES["head-with-length"])
        assert data.endswith(b"\r\n\r\n") and b"\r\ncontent-length: 5\r\n" in data.lower(), engine
        data, _ = respond_with(engine, RESPONSES["single-final-message"])
        assert data.endswith(b"\r\n\r\nhello") and b"\r\ncontent-length: 5\r\n" in data.lower()
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nserver: gateway\r\n" in data.lower() and b"\r\ndate: X\r\n" in data


def test_status_line_reason_phrases_match():
    for status in (100, 200, 404, 503):
        lines = {}
        for engine in ENGINE_CLASSES:
            eng, _ = make(engine)
            eng.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n")
            if status == 100:
                data = eng.informational(100, [])
            else:
                data, _ = eng.start_response(status, [], b"", False, True)
            lines[engine] = data.split(b"\r\n")[0]
        assert lines["h11"] == lines["httptools"], lines


@pytest.mark.parametrize(
    ("headers", "parts"),
    [
        ([(b"content-length", b"5")], [(b"hello world", False)]),
        ([(b"content-length", b"5")], [(b"hel", False)]),
        ([(b"content-length", b"5")], [(b"hel", True), (b"", False)]),
        ([(b"content-length", b"5")], [(b"hel", True), (b"lo!!", False)]),
    ],
    ids=["long-single", "short-single", "short-streamed", "long-streamed"],
)
def test_content_length_breaches_raise_on_both(headers, parts):
    for engine in ENGINE_CLASSES:
        eng, _ = make(engine)
        eng.feed(GET)
        (first, more), *rest = parts
        with pytest.raises(BodyLengthError):
            eng.start_response(200, headers, first, more, True)
            for part, more_body in rest:
                eng.body(part, more_body)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ([(b"bad name", b"v")], ValueError),
        ([(b"x-a", b"v\r\nx-injected: 1")], ValueError),
        ([(b"x-a", b"v\nx")], ValueError),
        ([(b"x-a", b"v\x00")], ValueError),
        ([(b"x-a", "text")], TypeError),
        ([(b"content-length", b"abc")], ValueError),
        ([(b"content-length", b"5"), (b"content-length", b"6")], ValueError),
    ],
    ids=["bad-name", "crlf-injection", "lf-injection", "nul", "str-value", "bad-length",
         "conflicting-lengths"],
)
def test_invalid_response_headers_rejected_by_both(headers, error):
    for engine in ENGINE_CLASSES:
        eng, _ = make(engine)
        eng.feed(GET)
        with pytest.raises(error):
            eng.start_response(200, headers, b"hello", False, True)


def test_pipelined_head_then_get_framed_per_request():
    """llhttp parses ahead: when the HEAD's response is encoded, the GET behind it has already
    been parsed. Each response must still be framed for its own request."""
    data = HEAD + GET
    results = {}
    for engine in ENGINE_CLASSES:
        eng, recorder = make(engine)
        eng.feed(data)
        out = []
        for _ in range(2):
            out.append(eng.start_response(200, [], b"hello", False, True)[0])
            eng.next_cycle()
        assert [r.method for r in recorder.requests] == ["HEAD", "GET"]
        results[engine] = out
    assert results["h11"][0].endswith(b"\r\n\r\n")  # HEAD: no body
    assert results["h11"][1].endswith(b"\r\n\r\nhello")
    assert results["httptools"][0].endswith(b"\r\n\r\n"), results["httptools"][0]
    assert results["httptools"][1].endswith(b"\r\n\r\nhello"), results["httptools"][1]
