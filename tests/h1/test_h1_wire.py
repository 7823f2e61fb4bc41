"""The HTTP/1.1 hot path in C (gateway/h1/_wire.c) held to its references, sans-IO.

`parse_head` must take only heads the full way (scanner and llhttp) takes, and read them the
same: the httptools engine with it and without it give the same requests and errors for the
same bytes, however they are cut. `frame_headers` must give what its Python twin gives, and
raise what it raises. test_h1_strict.py also holds the engine, C path included, to h11."""

from __future__ import annotations

import shutil
import socket
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import read_response
from test_h1_engines import MALFORMED, VALID, every_split, parse
from test_h1_strict import PIECES

from gateway.asgi import http_scope, scope_template
from gateway.h1 import wire
from gateway.h1.encode import GATHER_FROM, ResponseEncoder
from gateway.h1.engine import BodyLengthError
from gateway.h1.httptools_engine import HttptoolsEngine

needs_c = pytest.mark.skipif(wire.parse_head is None, reason="gateway/h1/_wire.c is not built here")


class FullWayEngine(HttptoolsEngine):
    """Every head through the scanner and llhttp: the reference for the C path."""

    __slots__ = ()
    parse_head = None



BROWSER_HEAD = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: localhost:8000\r\nConnection: keep-alive\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\nSec-Fetch-Mode: no-cors\r\n"
    b"Referer: https://localhost:8000/\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nCookie: a=1; b=2\r\n\r\n"
)
WRK_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


def same_on_both_ways(pieces: list[bytes], max_head_size: int = 4096) -> None:
    assert parse("httptools", pieces, max_head_size) == parse(FullWayEngine, pieces, max_head_size), pieces


def test_the_extension_is_built():
    """The install builds it wherever it can (setup.py): with a C compiler and the Python
    headers, as CI has. Without it every head would go the full way, and this file's
    comparisons would compare nothing."""
    if shutil.which("cc") is None or not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        pytest.skip("no C compiler or no Python headers here: gateway runs its Python twins")
    assert wire.parse_head is not None and wire._frame_headers_c is not None


@needs_c
@pytest.mark.parametrize("head", [BROWSER_HEAD, WRK_HEAD], ids=["browser", "wrk"])
def test_common_heads_take_the_c_path(head):
    end, method, target, headers = wire.parse_head(head + b"GET", 0, 8192)
    assert (end, method) == (len(head), "GET")
    same_on_both_ways([head])
    assert headers[0][0] == b"host" and all(name == name.lower() for name, _ in headers)


@needs_c
@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xe9\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n",
    b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["close", "http10", "body", "upgrade", "ip-literal", "two-hosts", "no-host", "absolute",
        "obs-text", "incomplete", "rare-method"])
def test_other_heads_go_the_full_way(head):
    assert wire.parse_head(head, 0, 8192) is None
    same_on_both_ways([head])


@needs_c
def test_an_unfinished_head_goes_the_full_way():
    """However little of a head has come, nothing past the bytes is read."""
    for cut in range(len(BROWSER_HEAD)):
        assert wire.parse_head(BROWSER_HEAD[:cut], 0, 8192) is None
        assert wire.parse_head(BROWSER_HEAD, 0, cut) is None


@needs_c
def test_a_head_over_the_limit_goes_the_full_way():
    head = WRK_HEAD[:-2] + b"X-Pad: " + b"p" * 100 + b"\r\n\r\n"
    assert wire.parse_head(head, 0, len(head)) is not None
    assert wire.parse_head(head, 0, len(head) - 1) is None
    for limit in (len(head) - 1, len(head)):
        same_on_both_ways([head], max_head_size=limit)


@pytest.mark.parametrize("tail", [b"HTTP/1.0", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x01", b"\x00",
                                  b"GET /\rx"], ids=["not-a-request-line", "control-byte",
                                                      "nul", "bare-cr"])
def test_a_head_completed_from_held_bytes_leaves_nothing_of_them_behind(tail):
    """A head held in part, then completed by a read that brings the start of a bad one: the C
    path reads the first, and the second is refused at once, as the full way refuses it (the
    scanner kept where the held request line ended, which skipped the next one's checks:
    found by coverage-guided fuzzing)."""
    for cut in range(1, len(BROWSER_HEAD)):
        same_on_both_ways([BROWSER_HEAD[:cut], BROWSER_HEAD[cut:] + tail])


def test_nothing_after_connection_close_takes_the_c_path():
    """llhttp refuses bytes after a request that is not keep-alive; so must the C path."""
    close = b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for pieces in ([close + WRK_HEAD], [close, WRK_HEAD]):
        same_on_both_ways(pieces)


@pytest.mark.parametrize("name", sorted(VALID) + sorted(MALFORMED))
def test_the_corpus_reads_the_same_both_ways_split_anywhere(name):
    data = VALID[name] if name in VALID else MALFORMED[name][0]
    same_on_both_ways([data])
    for pieces in every_split(data):
        same_on_both_ways(pieces)


NAMES = [b"Host", b"host", b"HOST", b"User-Agent", b"Accept", b"Connection", b"X-A", b"x_b",
         b"Content-Length", b"Transfer-Encoding", b"Upgrade", b"Expect", b"Bad Name", b"", b"X:Y"]
VALUES = [b"x", b"127.0.0.1:8080", b"example.com:", b"[::1]", b"a b", b" padded \t", b"",
          b"keep-alive", b"Keep-Alive", b"close", b"%41", b"%zz", b"%4", b"\xe9", b"\x7f",
          b"a\tb", b"a:b@c", b"0", b"5", b"chunked", b"h2c", b"100-continue"]


@st.composite
def plain_heads(draw: st.DrawFn) -> bytes:
    """Heads near the C path's edge (mostly plain, some not), pipelined, a few bytes edited."""
    heads = []
    for _ in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS",
                                       b"PATCH", b"get", b"TRACE", b"GETS"]))
        target = draw(st.sampled_from([b"/", b"/a?b=c", b"/%41/x", b"/#x", b"*", b"http://x/",
                                       b"/a b", b"//", b"/\x7f"]))
        version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/1.2", b"http/1.1"]))
        lines = [b"Host: x"] if draw(st.booleans()) else []
        for _ in range(draw(st.integers(0, 4))):
            lines.append(draw(st.sampled_from(NAMES)) + draw(st.sampled_from([b": ", b":", b" : "]))
                         + draw(st.sampled_from(VALUES)))
        heads.append(b"%s %s %s\r\n%s\r\n" % (method, target, version,
                                               b"".join(line + b"\r\n" for line in lines)))
    data = bytearray(b"".join(heads))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from(PIECES))
    return bytes(data)


@settings(max_examples=1500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=plain_heads(), cut=st.integers(0, 400))
def test_generated_heads_read_the_same_both_ways(data, cut):
    same_on_both_ways([data])
    same_on_both_ways([data[:cut], data[cut:]])


# -- frame_headers against its Python twin ----------------------------------------------------

class _Bytes(bytes):
    """A subclass of bytes, equal to a name the twin's name cache holds (found by fuzzing: the
    cache took it for the name it equals, C refused it)."""


FIELD_NAMES = [b"content-type", b"Content-Length", b"content-length", b"Transfer-Encoding",
               b"Connection", b"Server", b"Date", b"X-Custom", b"bad name", b"", b"x\r\ny",
               "str-name", bytearray(b"x"), 7, _Bytes(b"content-type")]
FIELD_VALUES = [b"text/plain", b"13", b"14", b"chunked", b" Chunked\t", b"gzip", b"close",
                b"Keep-Alive, CLOSE", b"keep-alive", b"", b"a\r\nb: c", b"a\x00b", b"a\tb",
                b"\xe9", b"x" * 300, "str-value", bytearray(b"v"), None]


def field_pairs():
    pair = st.tuples(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_VALUES))
    odd = st.sampled_from([(b"a",), (b"a", b"b", b"c"), b"ab", None, [b"a", b"b"]])
    item = st.one_of(pair, pair.map(list), odd)
    return st.one_of(st.lists(item, max_size=6), st.lists(item, max_size=6).map(tuple))


def outcome(function, headers):
    try:
        result = function(headers)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)
    return result if result is NotImplemented else ("ok", tuple(result))


@needs_c
@settings(max_examples=2000, deadline=None, database=None)
@given(headers=field_pairs())
def test_frame_headers_matches_its_python_twin(headers):
    got = outcome(wire._frame_headers_c, headers)
    if got is NotImplemented:
        return  # the twin itself runs: nothing to compare
    assert got == outcome(wire.frame_headers_py, headers)


def test_frame_headers_takes_any_iterable():
    fields = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    assert wire.frame_headers(iter(fields)) == wire.frame_headers(fields) == (
        b"content-type: text/plain\r\n", b"2", False, False, False, False, False)


# -- frame_whole against the encoder's own way ------------------------------------------------

class Defaults:
    """What ServerState gives the encoder: its server and --header lines, and a date."""

    head_lines = b"server: gateway\r\nx-extra: 1\r\n"
    header_lines = b"x-extra: 1\r\n"
    date_line = b"date: Mon, 30 Nov 2026 22:00:00 GMT\r\n"


class EncoderWay(ResponseEncoder):
    """Every response framed in Python: the reference for the C call."""

    __slots__ = ()
    whole = None


def encoded(encoder_class, status, headers, body, more_body, keep_alive, head_request, http10):
    """What the connection would write, or the exception the app's send would get, and the
    state the encoder is left in for the body messages after it."""
    encoder = encoder_class(Defaults())
    try:
        made = encoder.start(status, headers, body, more_body, keep_alive, head_request, http10)
    except (TypeError, ValueError, BodyLengthError) as exc:
        made = (type(exc).__name__, str(exc))
    return made, encoder.mode, encoder.remaining


WHOLE_NAMES = [b"content-type", b"Content-Type", b"content-length", b"CONTENT-LENGTH",
               b"connection", b"transfer-encoding", b"server", b"Date", b"x-a", b"bad name", b"",
               "str-name", _Bytes(b"x-a")]
WHOLE_VALUES = [b"text/plain", b"13", b"013", b"0", b"12", b"99999999999999999999", b"1 3",
                b"\xd9\xa3", b"chunked", b"close", b"keep-alive", b"", b"a\r\nb", b"a\tb",
                b"\xe9", bytearray(b"13"), None]


def whole_fields():
    pair = st.tuples(st.sampled_from(WHOLE_NAMES), st.sampled_from(WHOLE_VALUES))
    item = st.one_of(pair, pair.map(list), st.sampled_from([(b"a",), b"ab", None]))
    return st.one_of(st.lists(item, max_size=5), st.lists(item, max_size=5).map(tuple))


@needs_c
@settings(max_examples=3000, deadline=None, database=None)
@given(status=st.sampled_from([200, 201, 204, 304, 404, 599]), headers=whole_fields(),
       body=st.sampled_from([b"", b"Hello, world!", b"x" * 12, b"y" * (GATHER_FROM - 1),
                             b"z" * GATHER_FROM]),
       more_body=st.booleans(), keep_alive=st.booleans(), head_request=st.booleans(),
       http10=st.booleans())
def test_frame_whole_makes_what_the_encoder_makes(status, headers, body, more_body, keep_alive,
                                                 head_request, http10):
    assert encoded(ResponseEncoder, status, headers, body, more_body, keep_alive, head_request,
                   http10) == encoded(EncoderWay, status, headers, body, more_body, keep_alive,
                                      head_request, http10)


@needs_c
@pytest.mark.parametrize("headers", [
    [(b"content-type", b"text/plain"), (b"content-length", b"13")],
    [(b"Content-Type", b"application/json")],
    ((b"content-length", b"13"), (b"Content-Length", b"13"), (b"connection", b"keep-alive")),
    [],
], ids=["starlette", "no-length", "repeated-length", "none"])
@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "close"])
def test_common_responses_are_made_whole_in_c(headers, keep_alive):
    """What frameworks send for a small response takes the C call, so the comparison above
    compares the C way and not two runs of the Python one."""
    body = b"Hello, world!"
    made = ResponseEncoder.whole(headers, body, b"HTTP/1.1 200 OK\r\n", Defaults.head_lines,
                                 Defaults.date_line, keep_alive)
    assert made == encoded(EncoderWay, 200, headers, body, False, keep_alive, False, False)[0][0]
    assert made.endswith((b"\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n") + body)


# -- make_scope against asgi.http_scope ----------------------------------------------------------

TEMPLATE = scope_template("1.1")
TARGETS = [b"/", b"/a/b.js", b"/?", b"/?x=1&y=%20", b"/a?b?c", b"//x", b"/a%2Fb", b"/caf\xe9",
           b"/\x00", b"*", b"", b"?q", b"/" + b"p" * 5000 + b"?" + b"q" * 300]


@needs_c
@settings(max_examples=500, deadline=None, database=None)
@given(target=st.one_of(st.sampled_from(TARGETS), st.binary(max_size=40)),
       server=st.sampled_from([("127.0.0.1", 8000), ("/run/gw.sock", None), None]),
       client=st.sampled_from([("127.0.0.1", 51000), None]),
       scheme=st.sampled_from(["http", "https"]),
       method=st.sampled_from(["GET", "POST", "HEAD"]),
       lifespan_state=st.sampled_from([{}, {"db": "pool", "n": 1}]))
def test_make_scope_makes_what_http_scope_makes(target, server, client, scheme, method,
                                               lifespan_state):
    headers = [(b"host", b"x")]
    extensions = {"http.response.pathsend": {}}
    made = wire.make_scope(TEMPLATE, server, client, scheme, method, target, headers,
                           lifespan_state, extensions)
    if b"%" in target:
        assert made is NotImplemented
        return
    expected = http_scope("1.1", server, client, scheme, method, target, headers, "",
                          lifespan_state, extensions)
    assert list(made.items()) == list(expected.items())
    assert [type(value) for value in made.values()] == [type(value) for value in expected.values()]
    # The request's own objects, as http_scope passes them; a fresh state and the template kept.
    assert made["headers"] is headers and made["extensions"] is extensions
    assert made["state"] is not lifespan_state and scope_template("1.1") == TEMPLATE


@needs_c
def test_a_served_request_gets_the_scope_http_scope_makes(serve):
    """Through the connection, the scope the app is given is http_scope's, key for key."""
    seen = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return  # lifespan: not supported
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 204 ")
    scope = seen[0]
    expected = http_scope("1.1", scope["server"], scope["client"], "http", "GET", b"/a/b?c=d",
                          [(b"host", b"x")], "", {}, scope["extensions"])
    assert list(scope.items()) == list(expected.items())
