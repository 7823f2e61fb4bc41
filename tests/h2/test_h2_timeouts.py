"""Timeouts and the held-header budget over HTTP/2 (issue 8, points 4 and 5): a stream whose
body stops coming gets 408, an app that does not answer in time 504 (or a reset once it has
begun), a header block trickled in ends the connection, and the decoded heads a connection's
streams hold are bounded, while the other streams and connections are served."""

from __future__ import annotations

import asyncio
import time

import hpack
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_client import DATA, GOAWAY, HEADERS, RST_STREAM, client_tls_context, h2_connection, raw_frame, respond
from support import ended_within, read_body, tls_settings

pytestmark = pytest.mark.timeout(30)


async def reader_app(scope, receive, send):
    """Reads the body, then says how long it was; /stuck never answers; /late answers late."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/stuck":
        await asyncio.Event().wait()
    if scope["path"] == "/begun":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.Event().wait()
    try:
        body = await read_body(receive)
    except ConnectionError:
        return
    await respond(send, 200, b"%d" % len(body))


def test_a_stream_whose_body_stops_coming_gets_408_and_the_others_go_on(serve):
    with serve(reader_app, body_timeout=1) as server, h2_connection(server.port) as client:
        stalled = client.request("/", method="POST", body=b"abc", end=False)
        started = time.monotonic()
        finished = client.request("/", method="POST", body=b"12345")
        assert client.response(finished).status == 200
        result = client.response(stalled, timeout=5)
        elapsed = time.monotonic() - started
        assert result.status == 408
        assert 1 <= elapsed < 3.5
        # The connection goes on.
        assert client.response(client.request("/", body=b"x")).data == b"1"


def test_an_app_that_never_answers_gets_504_over_tls(serve, certs):
    with serve(reader_app, **tls_settings(certs, response_timeout=1)) as server, \
            h2_connection(server.port, client_tls_context(certs.ca_file)) as client:
        stuck = client.request("/stuck")
        started = time.monotonic()
        assert client.response(client.request("/", body=b"ok")).status == 200
        assert client.response(stuck, timeout=5).status == 504
        assert 1 <= time.monotonic() - started < 3.5


def test_a_response_not_finished_in_time_is_reset(serve):
    with serve(reader_app, response_timeout=1) as server, h2_connection(server.port) as client:
        begun = client.request("/begun")
        result = client.response(begun, timeout=5)
        assert result.status == 200 and bytes(result.data) == b"part"
        assert result.reset == ErrorCodes.INTERNAL_ERROR


def test_a_header_block_trickled_in_ends_the_connection(serve):
    with serve(reader_app, header_timeout=1) as server, h2_connection(server.port) as client:
        client.wait_ready()
        block = hpack.Encoder().encode([(b":method", b"GET"), (b":path", b"/"),
                                        (b":scheme", b"http"), (b":authority", b"a")])
        client.send_raw(raw_frame(HEADERS, 0x1, 1, block))  # no END_HEADERS: CONTINUATION due
        started = time.monotonic()
        assert client.read_until_closed(5)
        assert 1 <= time.monotonic() - started < 3.5
        assert client.goaway is not None and client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_heads_held_by_open_streams_are_bounded_per_connection(serve):
    """HPACK names a 16 KiB field again in a few bytes: streams that never send their body
    hold what they decode until --h2-max-headers-held refuses more of them; once their body
    timeout ends them, the connection takes streams again."""
    with serve(reader_app, h2_max_headers_held=100_000, body_timeout=1) as server, \
            h2_connection(server.port) as client:
        client.wait_ready()
        encoder = hpack.Encoder()
        request = [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"a")]
        big = [(b"x-big", b"v" * 4000)] * 4  # one table entry, named four times: 16 KiB decoded
        frames = b"".join(raw_frame(HEADERS, 0x4, 1 + 2 * index, encoder.encode(request + big))
                          for index in range(10))
        assert len(frames) < 4_000  # after the first, each head is a few bytes of references
        client.send_raw(frames)
        assert client.until(lambda: len(resets(client)) >= 4, 5)
        # Six heads of about 16.2 KB fit in 100 KB: streams 13 to 19 are refused.
        assert resets(client) == dict.fromkeys((13, 15, 17, 19), ErrorCodes.REFUSED_STREAM)
        # The six held streams time out waiting for their bodies (408), freeing the budget.
        assert client.until(lambda: len(client.frames_of(HEADERS)) >= 6, 5)
        client.send_raw(raw_frame(HEADERS, 0x5, 21, encoder.encode([*request[:3], (b":authority", b"b")])))
        assert client.until(lambda: client.frames_of(DATA, 21), 5)
        assert client.frames_of(DATA, 21)[0].frame.data == b"0"
        assert not client.frames_of(GOAWAY)


def resets(client) -> dict[int, int]:
    return {f.stream_id: f.frame.error_code for f in client.frames_of(RST_STREAM)}


def test_another_connection_is_not_held_to_a_full_connection_budget(serve):
    with serve(reader_app, h2_max_headers_held=10_000) as server, h2_connection(server.port) as hog:
        hog.request("/", method="POST", headers=[(b"x-big", b"v" * 9000)], end=False)
        refused = hog.request("/", method="POST", headers=[(b"x-big", b"v" * 9000)], end=False)
        assert hog.response(refused).reset == ErrorCodes.REFUSED_STREAM
        with h2_connection(server.port) as other:
            assert other.response(other.request("/", body=b"ok")).data == b"2"


def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout(serve):
    """Its windows are open, so flow control does not hold the app back; the socket does."""

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})

    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    with serve(app, send_timeout=1) as server, \
            h2_connection(server.port, settings=settings) as client:
        client.open_connection_window()
        client.request("/")
        time.sleep(3.5)  # reading nothing: the server fills the socket and its buffer, and waits
        assert ended_within(client.sock, 3)
    with serve(app, send_timeout=0) as server, \
            h2_connection(server.port, settings=settings) as client:
        client.open_connection_window()
        client.request("/")
        time.sleep(3.5)
        assert not ended_within(client.sock, 1)  # 0: never dropped

