"""Protocol errors: each malformed frame or request ends with the error code RFC 9113 asks for,
on the connection (GOAWAY, then close) or on the stream (RST_STREAM) as the RFC allows; the
server logs no traceback and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_client import (
    CONTINUATION,
    DATA,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    H2Client,
    client_tls_context,
    h2_connection,
    raw_frame,
    respond,
)
from support import TIMEOUT, captured_log, read_body, wait_until

pytestmark = pytest.mark.timeout(60)

P = ErrorCodes.PROTOCOL_ERROR
REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]


class HoldingApp:
    """Answers /fine at once. Any other path holds its stream open (reading the body) for up
    to `hold` seconds, so that frames can arrive on an open or half-closed stream, then answers
    unless the client went away."""

    def __init__(self, hold: float = 1.0) -> None:
        self.hold = hold
        self.paths: list[str] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        with self.lock:
            self.paths.append(scope["path"])
        if scope["path"] == "/fine":
            try:
                await read_body(receive)
            except ConnectionError:
                return  # the client (or the server, for its protocol error) ended the stream
            await respond(send, 200, b"fine")
            return
        try:
            await asyncio.wait_for(_until_disconnect(receive), self.hold)
            return
        except asyncio.TimeoutError:
            pass
        await respond(send, 200, b"held")


async def _until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@pytest.fixture(scope="module")
def server(h2_engine):
    """One server for the whole module: every case also checks it keeps serving."""
    from conftest import run_server

    app = HoldingApp()
    with run_server(app, h2_initial_window_size=65535) as running:
        running.app = app
        yield running


@pytest.fixture
def log():
    with captured_log() as records, captured_log("asyncio") as loop_records:
        yield records
    problems = [r for r in records.records + loop_records.records
                if r.exc_info or r.levelno >= logging.ERROR]
    assert not problems, "\n".join(f"{r.levelname} {r.getMessage()}" for r in problems)


def assert_still_serving(server) -> None:
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        response = client.get(server.url + "/fine")
    assert response.http_version == "HTTP/2"
    assert response.text == "fine"


def ready(client: H2Client) -> H2Client:
    """Wait for the server's SETTINGS, so that what follows is judged on an open connection."""
    assert client.until(lambda: client.frames_of(SETTINGS), 3)
    client.until(lambda: [f for f in client.frames_of(SETTINGS) if "ACK" in f.flags], 1)
    return client


def goaway_code(client: H2Client) -> int | None:
    frames = client.goaway_frames()
    return frames[-1].error_code if frames else None


def assert_connection_error(client: H2Client, code: int) -> None:
    assert client.read_until_closed(3), f"connection not closed; frames: {client.frames}"
    assert goaway_code(client) == code, f"expected GOAWAY {code!r}; frames: {client.frames}"


def assert_stream_or_connection_error(client: H2Client, stream_id: int, code: int) -> None:
    """A stream error (RST_STREAM `code`, connection still answering PINGs) or the connection
    error the RFC allows instead (GOAWAY `code`, then closed)."""
    client.until(lambda: client.frames_of(RST_STREAM, stream_id) or client.goaway, 3)
    resets = client.frames_of(RST_STREAM, stream_id)
    if resets:
        assert resets[0].frame.error_code == code, client.frames
        client.send_raw(raw_frame(PING, 0, 0, b"stillok!"))
        assert client.until(lambda: [f for f in client.frames_of(PING) if "ACK" in f.flags], 3), (
            "connection unusable after a stream error"
        )
    else:
        assert_connection_error(client, code)


def connection_case(build: Callable[[H2Client], bytes], code: int):
    return ("connection", build, code)


def stream_case(build: Callable[[H2Client], bytes], code: int, stream_id: int = 1):
    return ("stream", build, code, stream_id)


def headers(client: H2Client, fields, stream_id: int = 1, end: bool = True) -> bytes:
    return client.raw_headers(stream_id, fields, end_stream=end)


def settings_payload(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack(">HI", key, value) for key, value in pairs)


def _split_headers(client: H2Client) -> bytes:
    """HEADERS without END_HEADERS, then a DATA frame instead of its CONTINUATION."""
    block = client.conn.encoder.encode(POST)
    return raw_frame(HEADERS, 0, 1, block) + raw_frame(DATA, 0, 1, b"x")


CASES = {
    # -- frames in the wrong place (RFC 9113 section 6) --
    "data_on_stream_0": connection_case(lambda c: raw_frame(DATA, 0, 0, b"x"), P),
    "headers_on_stream_0": connection_case(lambda c: headers(c, REQUEST, stream_id=0), P),
    "settings_on_a_stream": connection_case(lambda c: raw_frame(SETTINGS, 0, 1, b""), P),
    "ping_on_a_stream": connection_case(lambda c: raw_frame(PING, 0, 1, b"12345678"), P),
    "goaway_on_a_stream": connection_case(lambda c: raw_frame(GOAWAY, 0, 1, b"\0" * 8), P),
    "data_on_idle_stream": connection_case(lambda c: raw_frame(DATA, 1, 7, b"x"), P),
    "rst_stream_on_idle_stream": connection_case(lambda c: raw_frame(RST_STREAM, 0, 7, b"\0\0\0\x08"), P),
    "window_update_on_idle_stream": connection_case(
        lambda c: raw_frame(WINDOW_UPDATE, 0, 7, struct.pack(">I", 100)), P),
    "even_stream_id_from_client": connection_case(lambda c: headers(c, REQUEST, stream_id=2), P),
    "stream_id_going_backwards": connection_case(
        lambda c: headers(c, REQUEST, stream_id=5) + headers(c, REQUEST, stream_id=3), P),
    "continuation_without_headers": connection_case(
        lambda c: raw_frame(CONTINUATION, 4, 1, b""), P),
    "frame_between_headers_and_continuation": connection_case(_split_headers, P),
    # -- frame sizes (RFC 9113 section 4.2) --
    "data_larger_than_max_frame_size": connection_case(
        lambda c: headers(c, POST, end=False) + raw_frame(DATA, 0, 1, b"x" * 16385),
        ErrorCodes.FRAME_SIZE_ERROR),
    "settings_length_not_multiple_of_6": connection_case(
        lambda c: raw_frame(SETTINGS, 0, 0, b"\0" * 5), ErrorCodes.FRAME_SIZE_ERROR),
    "settings_ack_with_payload": connection_case(
        lambda c: raw_frame(SETTINGS, 1, 0, settings_payload((SettingCodes.ENABLE_PUSH, 0))),
        ErrorCodes.FRAME_SIZE_ERROR),
    "ping_of_7_bytes": connection_case(lambda c: raw_frame(PING, 0, 0, b"1234567"),
                                       ErrorCodes.FRAME_SIZE_ERROR),
    "window_update_of_3_bytes": connection_case(lambda c: raw_frame(WINDOW_UPDATE, 0, 0, b"\0\0\1"),
                                                ErrorCodes.FRAME_SIZE_ERROR),
    # -- SETTINGS values (RFC 9113 section 6.5.2) --
    "settings_enable_push_2": connection_case(
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload((SettingCodes.ENABLE_PUSH, 2))), P),
    "settings_initial_window_too_large": connection_case(
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload((SettingCodes.INITIAL_WINDOW_SIZE, 2**31))),
        ErrorCodes.FLOW_CONTROL_ERROR),
    "settings_max_frame_size_too_small": connection_case(
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload((SettingCodes.MAX_FRAME_SIZE, 100))), P),
    # -- flow control (RFC 9113 section 6.9) --
    "window_update_zero_on_connection": connection_case(
        lambda c: raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), P),
    "connection_window_overflow": connection_case(
        lambda c: raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)),
        ErrorCodes.FLOW_CONTROL_ERROR),
    # -- HPACK (RFC 9113 section 4.3) --
    "hpack_index_out_of_range": connection_case(
        lambda c: raw_frame(HEADERS, 5, 1, b"\xff\xff\xff\x0f"), ErrorCodes.COMPRESSION_ERROR),
    # -- padding (RFC 9113 section 6.1) --
    "padding_longer_than_frame": connection_case(
        lambda c: headers(c, POST, end=False) + raw_frame(DATA, 0x8, 1, b"\x09abc"), P),
    # -- malformed requests (RFC 9113 section 8.1.1): stream errors, or connection errors --
    "uppercase_header_name": stream_case(lambda c: headers(c, [*REQUEST, (b"X-Upper", b"1")]), P),
    "connection_specific_header": stream_case(
        lambda c: headers(c, [*REQUEST, (b"connection", b"keep-alive")]), P),
    "te_other_than_trailers": stream_case(lambda c: headers(c, [*REQUEST, (b"te", b"gzip")]), P),
    "missing_path": stream_case(lambda c: headers(c, REQUEST[:3]), P),
    "missing_method": stream_case(lambda c: headers(c, REQUEST[1:]), P),
    "empty_path": stream_case(lambda c: headers(c, [*REQUEST[:3], (b":path", b"")]), P),
    "unknown_pseudo_header": stream_case(lambda c: headers(c, [*REQUEST, (b":foo", b"bar")]), P),
    "pseudo_header_after_regular": stream_case(
        lambda c: headers(c, [*REQUEST[:3], (b"x-a", b"1"), REQUEST[3]]), P),
    "duplicate_pseudo_header": stream_case(lambda c: headers(c, [*REQUEST, (b":path", b"/b")]), P),
    "response_pseudo_header_in_request": stream_case(
        lambda c: headers(c, [*REQUEST, (b":status", b"200")]), P),
    "newline_in_header_value": stream_case(
        lambda c: headers(c, [*REQUEST, (b"x-bad", b"a\r\nb: c")]), P),
    # -- stream states (RFC 9113 section 5.1) --
    "data_after_end_stream": stream_case(
        lambda c: headers(c, [*REQUEST[:3], (b":path", b"/hold")]) + raw_frame(DATA, 0, 1, b"late"),
        ErrorCodes.STREAM_CLOSED),
    "window_update_zero_on_stream": stream_case(
        lambda c: headers(c, [*POST[:3], (b":path", b"/hold")], end=False)
        + raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)), P),
    "stream_flow_control_violated": stream_case(
        lambda c: headers(c, [*POST[:3], (b":path", b"/hold")], end=False)
        + b"".join(raw_frame(DATA, 0, 1, b"x" * 16384) for _ in range(4)) + raw_frame(DATA, 0, 1, b"x"),
        ErrorCodes.FLOW_CONTROL_ERROR),
}


@pytest.mark.parametrize("name", list(CASES))
def test_protocol_error(server, log, name):
    kind, build, code, *rest = CASES[name]
    with h2_connection(server.port) as client:
        ready(client)
        client.send_raw(build(client))
        if kind == "connection":
            assert_connection_error(client, code)
        else:
            assert_stream_or_connection_error(client, rest[0], code)
    assert_still_serving(server)


def test_malformed_requests_never_reach_the_app(serve, log):
    app = HoldingApp()
    bad = [
        [*REQUEST[:3], (b":path", b"/upper"), (b"X-Upper", b"1")],
        [*REQUEST[:3], (b":path", b"/conn"), (b"connection", b"close")],
        [*REQUEST[:3], (b":path", b"/pseudo"), (b":foo", b"1")],
        [*REQUEST[:3], (b":path", b"/newline"), (b"x-bad", b"a\nb")],
    ]
    with serve(app) as running:
        for fields in bad:
            with h2_connection(running.port) as client:
                ready(client)
                client.send_raw(client.raw_headers(1, fields))
                client.until(lambda c=client: c.frames_of(RST_STREAM, 1) or c.goaway, 3)
        assert_still_serving(running)
    assert app.paths == ["/fine"]


def test_invalid_preface_over_tls(serve, certs, log):
    """RFC 9113 section 3.4: an invalid preface is a connection error PROTOCOL_ERROR (the
    GOAWAY may be left out)."""
    with serve(HoldingApp(), certfile=certs.cert_file, keyfile=certs.key_file) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw, \
                client_tls_context(certs.ca_file).wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            client = H2Client(tls, start=False)
            client.send_raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + raw_frame(SETTINGS, 0, 0))
            assert client.read_until_closed(3)
            goaways = client.goaway_frames()
            assert not goaways or goaways[-1].error_code == P
            assert not client.frames_of(HEADERS)
        with httpx.Client(verify=certs.client_context(), http2=True, timeout=TIMEOUT) as httpx_client:
            response = httpx_client.get(f"https://localhost:{running.port}/fine")
        assert (response.http_version, response.text) == ("HTTP/2", "fine")


def test_http11_request_over_an_h2_alpn_connection(serve, certs, log):
    """A client that negotiated h2 but speaks HTTP/1.1: closed (GOAWAY PROTOCOL_ERROR allowed)."""
    with serve(HoldingApp(), certfile=certs.cert_file, keyfile=certs.key_file) as running, \
            socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw, \
            client_tls_context(certs.ca_file).wrap_socket(raw, server_hostname="localhost") as tls:
        client = H2Client(tls, start=False)
        client.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert client.read_until_closed(3)
        goaways = client.goaway_frames()
        assert not goaways or goaways[-1].error_code == P


def test_advertised_max_frame_size_is_accepted(serve, log):
    """A server advertising SETTINGS_MAX_FRAME_SIZE 65536 accepts DATA frames that large."""
    app = HoldingApp()
    with serve(app, h2_max_frame_size=65536) as running, h2_connection(running.port) as client:
        ready(client)
        assert client.frames[0].frame.settings[SettingCodes.MAX_FRAME_SIZE] == 65536
        client.open_connection_window()
        stream = client.request("/fine", method="POST", end=False)
        client.send_raw(raw_frame(DATA, 0, stream, b"y" * 60000) + raw_frame(DATA, 1, stream, b""))
        result = client.response(stream, 3)
    assert goaway_code(client) is None, client.frames
    assert bytes(result.data) == b"fine"


def test_header_list_larger_than_advertised_is_refused(serve, log):
    """SETTINGS_MAX_HEADER_LIST_SIZE is a limit gateway sets: a larger header list is refused
    (431, RST_STREAM or GOAWAY) and never reaches the app."""
    app = HoldingApp()
    with serve(app, h2_max_header_list_size=4096) as running, h2_connection(running.port) as client:
        ready(client)
        assert client.frames[0].frame.settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 4096
        stream = client.request("/fine", headers=[(b"x-big", b"v" * 10_000)])
        client.until(lambda: client.streams[stream].done or client.closed, 3)
        result = client.streams[stream]
        assert result.status in (None, 431), result
        assert result.status == 431 or result.reset is not None or client.goaway is not None
    assert app.paths == []


def test_header_list_within_a_raised_limit_is_accepted(serve, log):
    app = HoldingApp()
    with serve(app, h2_max_header_list_size=256 * 1024) as running, \
            h2_connection(running.port) as client:
        ready(client)
        stream = client.request("/fine", headers=[(b"x-big-%d" % n, b"v" * 10_000) for n in range(10)])
        result = client.response(stream, 3)
    assert result.status == 200 and bytes(result.data) == b"fine"


class OutcomeApp:
    """Holds /hold streams reading the body for up to 1 s, then tries to answer; records how
    that ended."""

    def __init__(self) -> None:
        self.started = False
        self.outcomes: list[str] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.started = True
        try:
            await asyncio.wait_for(_until_disconnect(receive), 1.0)
            self.outcomes.append("disconnect")
            return
        except asyncio.TimeoutError:
            pass
        try:
            await respond(send, 200, b"held")
        except OSError:
            self.outcomes.append("send raised OSError")
            return
        except Exception as exc:
            self.outcomes.append(f"send raised {type(exc).__name__}: {exc}")
            raise
        self.outcomes.append("sent")


HOLD_GET = [*REQUEST[:3], (b":path", b"/hold")]
HOLD_POST = [*POST[:3], (b":path", b"/hold")]
AFTER_START = {
    # name: (request fields, END_STREAM on them, the bad frames, the RFC's error code)
    "data_after_end_stream": (HOLD_GET, True, raw_frame(DATA, 0, 1, b"late"), ErrorCodes.STREAM_CLOSED),
    "window_update_zero_on_stream": (
        HOLD_POST, False, raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)), P),
    "stream_flow_control_violated": (
        HOLD_POST, False,
        b"".join(raw_frame(DATA, 0, 1, b"x" * 16384) for _ in range(4)) + raw_frame(DATA, 0, 1, b"x"),
        ErrorCodes.FLOW_CONTROL_ERROR),
}


@pytest.mark.parametrize("name", list(AFTER_START))
def test_stream_reset_by_the_server_is_a_disconnect_for_the_app(serve, log, name):
    """When the server resets a stream (or ends the connection) for the client's protocol
    error, the stream's app sees what a client reset gives it (ASGI: `http.disconnect`, or
    `send` raising OSError), and nothing is logged as an error."""
    fields, end, bad, code = AFTER_START[name]
    app = OutcomeApp()
    with serve(app, h2_initial_window_size=65535) as running, h2_connection(running.port) as client:
        ready(client)
        client.send_raw(client.raw_headers(1, fields, end_stream=end))
        assert wait_until(lambda: app.started, 3)
        client.send_raw(bad)
        assert_stream_or_connection_error(client, 1, code)
        deadline = time.monotonic() + 3
        while not app.outcomes and time.monotonic() < deadline:
            client.pump(0.1)
        assert app.outcomes and app.outcomes[0] in ("disconnect", "send raised OSError"), (
            app.outcomes, client.frames, log.describe(0))
    assert not client.frames_of(HEADERS, 1), "a response on a stream already reset"
