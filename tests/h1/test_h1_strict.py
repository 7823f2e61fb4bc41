"""One verdict for hostile requests on both engines (gateway/h1/strict.py).

Over real sockets, each input of strict_corpus.py goes to a server on each engine, and the
client must read the verdict the corpus states: the error status, then a close; or a 200 for
each request the app saw, with the scope and body the corpus states. Then hypothesis mutates
valid requests and feeds both engines sans-IO: same requests, same error status."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest
from conftest import run_server
from h1_client import Incomplete, RawClient, respond
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strict_corpus import CORPUS, Seen
from strict_corpus import post as post_request
from support import ENGINES
from test_h1_engines import parse

SENTINEL = b"GET /sentinel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class RecordingApp:
    """Records each request the app read to its end, as the app saw it."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = Seen(scope["method"], scope["path"], scope["raw_path"], scope["query_string"],
                       [tuple(pair) for pair in scope["headers"]], body)
        with self.lock:
            self.seen.append(request)
        await respond(send, 200, b"ok")

    def take(self) -> list[Seen]:
        with self.lock:
            seen, self.seen = self.seen, []
        return [request for request in seen if request.raw_path != b"/sentinel"]


@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[object, RecordingApp]]:
    app = RecordingApp()
    with run_server(app, http=request.param, lifespan="off", h2c=False) as running:
        yield running, app


def what_the_client_reads(port: int, data: bytes, answers: int, closes: bool) -> tuple[list[int], bool]:
    """Send `data`, read `answers` responses; then, if the connection should stay open, one
    more request must be answered in turn (nothing else came first). Returns the statuses
    read and whether the server closed the connection after them."""
    with RawClient(port) as client:
        client.send(data)
        statuses = []
        try:
            for _ in range(answers):
                statuses.append(client.read_response().status)
            if not closes:
                client.send(SENTINEL)
                statuses.append(client.read_response().status)
            closed = client.read_until_close(3) == b""
        except Incomplete:
            closed = True
        return statuses, closed


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_request_gets_the_corpus_verdict(server, name):
    running, app = server
    data, verdict = CORPUS[name]
    app.take()
    answers = len(verdict.served) + (verdict.status is not None)
    closes = verdict.closes or verdict.status is not None
    statuses, closed = what_the_client_reads(running.port, data, answers, closes)
    expected = [200] * len(verdict.served) + ([verdict.status] if verdict.status else [])
    if not closes:
        expected.append(200)  # the sentinel
    assert statuses == expected
    assert closed
    assert app.take() == verdict.served


@pytest.mark.parametrize("body", [b"", b"hello"], ids=["no-body", "body"])
def test_h2c_upgrade_with_or_without_a_body_is_switched(serve, http, body):
    """The switch request the corpus refuses a body on is the one that is not switched: an
    h2c upgrade (RFC 7540 section 3.2) still carries its body to the app, on both engines."""
    app = RecordingApp()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = client.initiate_upgrade_connection()  # the HTTP2-Settings value
    with serve(app, http=http, lifespan="off") as running, RawClient(running.port) as raw:
        raw.send(post_request(b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
                              b"HTTP2-Settings: " + settings, b"Content-Length: %d" % len(body), body=body))
        assert raw.read_response().status == 101
        raw.send(client.data_to_send())
        events = client.receive_data(bytes(raw.buffer))
        while not any(isinstance(event, h2.events.StreamEnded) for event in events):
            data = raw.sock.recv(65536)
            assert data, "the server closed before answering stream 1"
            events += client.receive_data(data)
    # Stream 1 is the upgrade request, less its hop-by-hop fields.
    fields = [(b"host", b"x"), (b"content-length", b"%d" % len(body))]
    assert app.take() == [Seen("POST", "/", b"/", b"", fields, body)]


# -- generated inputs, fed to both engines sans-IO -------------------------------------------

TEMPLATES = [
    b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-List: a, b\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=v\r\nhello\r\n1A;q=\"a b\"\r\n" + b"z" * 26 + b"\r\n0\r\nX-T: t\r\n\r\n",
    b"GET http://a.example:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    b"DELETE /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
    b"GET /u HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: keep-alive, Upgrade\r\n\r\n"
    b"GET / HTTP/1.1\r\n\r\n",
    # Near max_head_size (4096 here), so that an edit can cross it.
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 4040 + b"\r\n\r\n",
]
PIECES = [
    b"\r", b"\n", b"\r\n", b" ", b"  ", b"\t", b"\x00", b"\x01", b"\x7f", b"\xe9", b":", b",", b";",
    b"=", b'"', b"\\", b"#", b"@", b"/", b"?", b"*", b"0", b"9", b"f", b"F", b"x", b"-", b"_",
    b"chunked", b"HTTP/1.1", b"http://", b"\r\n ", b"\r\n\t", b"\r\n\r\n",
    b"Host: y\r\n", b"Content-Length: 3\r\n", b"Content-Length: 1, 1\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, chunked\r\n",
    b"ffffffffffffffff", b"00000000000000000", b"7fffffffffffffff",
    b"[::1]", b"[v1.x]", b"%41", b"%zz", b"u@", b"HTTPS://", b"ftp://", b"GET", b"get", b"CONNECT",
]


@st.composite
def hostile_requests(draw: st.DrawFn) -> bytes:
    """A valid request or pipeline, with a few edits: bytes inserted, replaced or removed, a
    line repeated or folded, a span's case swapped."""
    data = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "replace", "delete", "repeat-line", "swapcase"]))
        if edit == "insert":
            data[at:at] = draw(st.sampled_from(PIECES))
        elif edit == "replace" and at < len(data):
            data[at:at + 1] = draw(st.sampled_from(PIECES))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 3))]
        elif edit == "repeat-line":
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            if end >= 0:
                data[start:start] = data[start:end + 1]
        else:
            data[at:at + 8] = bytes(data[at:at + 8]).swapcase()
    return bytes(data)


def verdict(engine: str, pieces: list[bytes]) -> tuple[list, int | None]:
    requests, error = parse(engine, pieces, max_head_size=4096)
    return [vars(request) for request in requests], error


def switches_with_body(requests: list[dict]) -> bool:
    """A protocol switch request with a body: llhttp hands the body over as the new
    protocol's bytes, h11 reads it; the connection protocol refuses it on both (see the
    corpus), so the engines alone may differ there."""
    return any(request["body_length"] and request["switching"] for request in requests)


# On CPython 3.13.0 (pyenv's 3.13 here), after some hundred examples of this run, a new httptools
# parser now and then never calls its engine's on_header: the request reaches the engine with
# no headers, though the scanner and llhttp saw them. It needs this Hypothesis run: the same
# inputs replayed alone, 100,000 parses with forced collections, and 5,000 connections to a
# 3.13 server (one parser each) all kept their headers; 3.10, 3.11 and 3.12 pass; httptools
# 0.7.1, 0.8.0 and 0.9.0 all show it.
@pytest.mark.skipif(sys.version_info[:3] == (3, 13, 0) and sys.implementation.name == "cpython",
                    reason="CPython 3.13.0 loses httptools' on_header callback under this run")
@settings(max_examples=1500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=hostile_requests(), cuts=st.lists(st.integers(0, 4200), max_size=2))
def test_generated_requests_get_one_verdict(data, cuts):
    """Both engines parse the same mutated bytes, whole and cut in pieces, to the same
    requests (method, target, headers, body, framing) and the same error status."""
    first, second = sorted([*cuts, len(data), len(data)][:2])
    for pieces in ([data], [data[:first], data[first:second], data[second:]]):
        fast, reference = verdict("httptools", pieces), verdict("h11", pieces)
        assume(not switches_with_body(fast[0] + reference[0]))
        assert fast == reference, pieces
