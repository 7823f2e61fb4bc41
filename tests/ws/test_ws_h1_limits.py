"""permessage-deflate (RFC 7692), --ws-max-size (1009, with or without compression, and without
inflating a compression bomb), frames the server must refuse (RFC 6455 sections 5 and 8: 1002,
1007), and pings both ways (--ws-ping-interval, --ws-ping-timeout)."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from support import captured_log
from websockets.exceptions import ConnectionClosed
from ws_support import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    RawWebSocket,
    close_event,
    count_pings,
    frame,
    handshake,
    read_http_response,
    recording_app,
    ws_app,
    ws_connect,
    ws_url,
)
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024


def sizes_app(received: list, done: threading.Event | None = None):
    """Accepts and answers every message with its size in bytes; records the disconnect."""
    return recording_app(received, done, lambda message, received: str(
        len(message["bytes"]) if message.get("bytes") is not None else len(message["text"].encode())
    ))


# -- permessage-deflate -------------------------------------------------------------------------


def test_deflate_is_negotiated_when_offered(serve, http):
    received: list = []
    text = "compress me please " * 5000
    with serve(sizes_app(received), http=http) as server, ws_connect(ws_url(server)) as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert answer is not None and answer.startswith("permessage-deflate")
        ws.send(text)
        assert ws.recv(timeout=5) == str(len(text))
    assert received[0] == {"type": "websocket.receive", "text": text}


def test_server_messages_are_compressed(serve):
    """What the app sends goes out deflated: RSV1 set, far fewer bytes than the message, and
    the payload inflates (RFC 7692 section 7.2.2) to the text."""
    text = "z" * 100_000

    @ws_app
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": text})
        await receive()

    with serve(app) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(handshake(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        response, data = read_http_response(sock)
        assert response.get(b"sec-websocket-extensions") == b"permessage-deflate"
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
    assert data[0] == 0x80 | 0x40 | TEXT, "not a single compressed text frame (FIN, RSV1, text)"
    length = data[1]
    assert length < 126, f"100,000 repeated bytes took {length} bytes or more"
    inflated = zlib.decompressobj(wbits=-15).decompress(data[2:2 + length] + b"\x00\x00\xff\xff")
    assert inflated == text.encode()


def test_no_deflate_when_disabled(serve, http):
    received: list = []
    with serve(sizes_app(received), http=http, ws_per_message_deflate=False) as server, \
            ws_connect(ws_url(server)) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        ws.send("plain " * 1000)
        assert ws.recv(timeout=5) == "6000"


def offer(port: int, extensions: str) -> tuple:
    """A handshake offering `extensions`, then a text frame "hi": the response, and the
    bytes after it (the echo, compressed or not) once some arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(handshake(extra=f"Sec-WebSocket-Extensions: {extensions}\r\n") + frame(TEXT, b"hi"))
        response, rest = read_http_response(sock)
        while response.status == 101 and len(rest) < 3:
            chunk = sock.recv(100)
            if not chunk:
                break
            rest += chunk
        return response, rest


@pytest.mark.parametrize("extensions, answer", [
    ("permessage-deflate", b"permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", b"permessage-deflate; client_max_window_bits=15"),
    ("permessage-deflate; server_max_window_bits=7", None),  # out of range: declined
    ("x-webkit-deflate-frame", None),  # unknown extension: ignored
    ("x-unknown, permessage-deflate", b"permessage-deflate"),
])
def test_deflate_negotiation_on_the_wire(serve, extensions, answer):
    with captured_log() as log, serve(sizes_app([])) as server:
        response, rest = offer(server.port, extensions)
    assert response.status == 101
    assert response.get(b"sec-websocket-extensions") == answer
    if answer is None:
        assert rest == b"\x81\x01" + b"2"  # the size of "hi", uncompressed
    else:
        assert rest[0] & 0x40, "the answer is not compressed though deflate was agreed"
    assert log.tracebacks() == []


def test_quoted_window_bits_offer_is_valid(serve):
    with captured_log() as log, serve(sizes_app([])) as server:
        response, rest = offer(server.port, 'permessage-deflate; client_max_window_bits="10"')
    assert response.status == 101
    assert log.tracebacks() == []


def test_malformed_deflate_offer_is_not_an_app_error(serve):
    with captured_log() as log, serve(sizes_app([])) as server:
        response, rest = offer(server.port, "permessage-deflate; client_max_window_bits=abc")
    assert response.status in (101, 400)
    assert log.tracebacks() == []
    assert log.errors() == []


@pytest.mark.parametrize("extensions", [
    "permessage-deflate; foo=bar",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
])
def test_invalid_deflate_offer_is_declined(serve, extensions):
    with serve(sizes_app([])) as server:
        response, rest = offer(server.port, extensions)
    assert response.status == 101
    assert response.get(b"sec-websocket-extensions") is None


def deflated(data: bytes) -> bytes:
    """One message's payload as RFC 7692 section 7.2.1 deflates it (no context carried over)."""
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(b"\x00\x00\xff\xff")
    return payload[:-4]


def test_compressed_message_in_fragments(serve):
    """RSV1 on the first frame only (RFC 7692 section 6.1); the fragments inflate as one."""
    text = "fragmented and deflated ✓ " * 200
    payload = deflated(text.encode())
    third = len(payload) // 3
    with serve(sizes_app([])) as server, RawWebSocket(server.port, extensions=[PerMessageDeflate()]) as raw:
        raw.open()
        raw.send_raw(frame(TEXT, payload[:third], fin=False, rsv1=True)
                     + frame(CONTINUATION, payload[third:2 * third], fin=False)
                     + frame(CONTINUATION, payload[2 * third:]))
        assert raw.next_event().data == str(len(text.encode()))


def test_ping_between_compressed_fragments(serve):
    """RFC 6455 section 5.4 lets control frames come between the fragments of any message."""
    text = "hello deflate " * 100
    payload = deflated(text.encode())
    half = len(payload) // 2
    with serve(sizes_app([])) as server, RawWebSocket(server.port, extensions=[PerMessageDeflate()]) as raw:
        raw.open()
        raw.send_raw(frame(TEXT, payload[:half], fin=False, rsv1=True) + frame(PING, b"mid")
                     + frame(CONTINUATION, payload[half:]))
        pong = raw.next_event()
        assert isinstance(pong, Pong) and pong.payload == b"mid"
        answer = raw.next_event()
        assert isinstance(answer, TextMessage), answer
        assert answer.data == str(len(text.encode()))


# -- --ws-max-size ----------------------------------------------------------------------------------


def expect_close(ws, code: int) -> None:
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    assert ws.close_code == code


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_max_size_boundary(serve, http, compression):
    received: list = []
    with captured_log() as log, serve(sizes_app(received), http=http, ws_max_size=1024) as server:
        with ws_connect(ws_url(server), compression=compression) as ws:
            ws.send(b"a" * 1024)
            assert ws.recv(timeout=5) == "1024"
            ws.send("é" * 512)  # 1024 bytes of UTF-8
            assert ws.recv(timeout=5) == "1024"
            ws.send(b"a" * 1025)
            expect_close(ws, 1009)
        with ws_connect(ws_url(server), compression=compression) as ws:
            ws.send("é" * 513)  # 513 characters, but 1026 bytes
            expect_close(ws, 1009)
    assert log.tracebacks() == []
    assert log.errors() == []


def test_max_size_counts_the_whole_fragmented_message(serve):
    received: list = []
    done = threading.Event()
    with serve(sizes_app(received, done), ws_max_size=1024) as server, RawWebSocket(server.port) as raw:
        raw.open()
        raw.send(BytesMessage(data=b"x" * 600, message_finished=False))
        raw.send(BytesMessage(data=b"x" * 600, message_finished=True))
        assert close_event(raw.events_until_close()).code == 1009
        assert done.wait(5)
    assert received == [{"type": "websocket.disconnect", "code": 1009, "reason": ""}]


def test_highly_compressible_megabyte_over_max_size_is_1009(serve):
    received: list = []
    with serve(sizes_app(received), ws_max_size=1024) as server, \
            ws_connect(ws_url(server), compression="deflate") as ws:
        ws.send(b"\x00" * MiB)
        expect_close(ws, 1009)
    assert [message["type"] for message in received] == ["websocket.disconnect"]


BOMB_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass
'''


def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_deflate_bomb_is_refused_without_inflating_it(tmp_path, gateway_cli):
    """256 MiB of zeros deflated to about 256 KiB in one frame: a gateway process with
    --ws-max-size 1024 closes with 1009 and its peak memory does not grow by the inflated size."""
    (tmp_path / "bomb.py").write_text(BOMB_APP)
    process = gateway_cli("bomb:app", "-b", "127.0.0.1:0", "--ws-max-size", "1024", "--lifespan", "off")
    port = process.wait_listening()
    with RawWebSocket(port, extensions=[PerMessageDeflate()]) as raw:
        accepted = raw.open()
        [deflate] = accepted.extensions
        assert deflate.client_max_window_bits == 15
        before = peak_memory_kib(process.process.pid)
        # A full flush resets the window, so one deflated MiB of zeros can be repeated.
        compressor = zlib.compressobj(wbits=-15)
        block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
        payload = block * 256
        assert payload.endswith(b"\x00\x00\xff\xff") and len(payload) < MiB
        assert len(zlib.decompressobj(wbits=-15).decompress(block)) == MiB
        raw.send_raw(frame(BINARY, payload[:-4], rsv1=True))
        close = close_event(raw.events_until_close(timeout=10))
        assert close is not None and close.code == 1009
        after = peak_memory_kib(process.process.pid)
    assert after - before < 32 * 1024, f"peak memory grew by {(after - before) // 1024} MiB"
    code, output = process.stop()
    assert "Traceback" not in output


# -- frames the server refuses ----------------------------------------------------------------------


REFUSED = {
    "invalid-utf8-text": ([frame(TEXT, b"\xff\xfe")], 1007),
    "invalid-utf8-across-fragments": ([frame(TEXT, b"ok\xc3", fin=False), frame(CONTINUATION, b"(")], 1007),
    "invalid-utf8-close-reason": ([frame(CLOSE, b"\x03\xe8\xff")], 1007),
    "unmasked": ([frame(TEXT, b"hi", mask=None)], 1002),
    "reserved-opcode": ([frame(0x3, b"")], 1002),
    "rsv1-without-deflate": ([frame(TEXT, b"hi", rsv1=True)], 1002),
    "continuation-first": ([frame(CONTINUATION, b"hi")], 1002),
    "new-message-inside-fragmented": ([frame(TEXT, b"a", fin=False), frame(TEXT, b"b")], 1002),
    "fragmented-ping": ([frame(PING, b"", fin=False)], 1002),
    "ping-over-125-bytes": ([frame(PING, b"p" * 126)], 1002),
    "close-code-999": ([frame(CLOSE, (999).to_bytes(2, "big"))], 1002),
    "close-code-1005-on-wire": ([frame(CLOSE, (1005).to_bytes(2, "big"))], 1002),
    "close-one-byte-payload": ([frame(CLOSE, b"\x03")], 1002),
}


# Once permessage-deflate is agreed RSV1 means "compressed", on the first frame of a message only.
REFUSED_WITH_DEFLATE = {
    "rsv1-on-ping": ([frame(PING, b"", rsv1=True)], 1002),
    "rsv1-on-continuation": ([frame(TEXT, b"", fin=False, rsv1=True),
                              frame(CONTINUATION, b"\x03\x00", rsv1=True)], 1002),
    "not-deflate-data": ([frame(BINARY, b"\xff\xff\xff\xff", rsv1=True)], 1007),
}
REFUSED_CASES = [pytest.param(case, False, id=f"{case}-plain") for case in REFUSED] + [
    pytest.param(case, True, id=f"{case}-deflate")
    for case in [*REFUSED, *REFUSED_WITH_DEFLATE] if case != "rsv1-without-deflate"
]


@pytest.mark.parametrize("case, deflate", REFUSED_CASES)
def test_refused_frames_get_their_close_code(serve, case, deflate):
    """Over a plain connection and over one with permessage-deflate agreed (the server reads
    them with different frame code)."""
    frames, code = REFUSED.get(case) or REFUSED_WITH_DEFLATE[case]
    received: list = []
    done = threading.Event()
    extensions = [PerMessageDeflate()] if deflate else []
    with captured_log() as log, serve(sizes_app(received, done)) as server, \
            RawWebSocket(server.port, extensions=extensions) as raw:
        accepted = raw.open()
        assert bool(accepted.extensions) == deflate
        raw.send_raw(b"".join(frames))
        close = close_event(raw.events_until_close())
        assert close is not None, "the server ended the connection without a close frame"
        assert close.code == code
        # The server fails the connection: it does not wait for our close.
        assert raw.wait_closed(timeout=3) == b""
        assert done.wait(5)
    assert received == [{"type": "websocket.disconnect", "code": code, "reason": ""}]
    # A client's protocol error is a debug line, never a traceback or an error.
    assert log.tracebacks() == []
    assert log.at_least(logging.WARNING) == []


# -- pings ------------------------------------------------------------------------------------------------


def test_client_ping_gets_a_pong(serve, http):
    with serve(sizes_app([]), http=http) as server:
        with ws_connect(ws_url(server)) as ws:
            assert ws.ping(b"are you there").wait(5)
            assert ws.ping().wait(5)
        with RawWebSocket(server.port) as raw:
            raw.open()
            raw.send(Ping(payload=b"\x00payload\xff"))
            event = raw.next_event()
            assert isinstance(event, Pong) and event.payload == b"\x00payload\xff"


def test_silent_client_is_dropped_after_ping_timeout(serve, http):
    received: list = []
    done = threading.Event()
    with captured_log() as log, serve(sizes_app(received, done), http=http, ws_ping_interval=0.2,
                                      ws_ping_timeout=0.5) as server:
        with RawWebSocket(server.port) as raw:
            raw.open()
            opened = time.monotonic()
            data = raw.wait_closed(timeout=3)  # read, never answered
            elapsed = time.monotonic() - opened
        assert data.startswith(b"\x89\x00"), f"expected a ping frame, got {data!r}"
        # The first ping goes out 0.2s after the accept, the pong is due 0.5s later.
        assert 0.4 <= elapsed < 2.0, f"dropped after {elapsed:.2f}s"
        assert done.wait(5)
    assert received == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert log.tracebacks() == []


def test_answering_client_stays_connected(serve, http):
    with serve(sizes_app([]), http=http, ws_ping_interval=0.2, ws_ping_timeout=0.5) as server:
        with RawWebSocket(server.port) as raw:
            raw.open()
            pings = count_pings(raw, 1.2, answer=True)
            assert pings >= 3, f"{pings} pings in 1.2s with --ws-ping-interval 0.2"
            raw.send(TextMessage(data="still here"))
            event = raw.next_event()
            while isinstance(event, Ping):  # the next ping may come before the answer
                raw.send(event.response())
                event = raw.next_event()
            assert event.data == "10"
        # websockets answers pings by itself.
        with ws_connect(ws_url(server)) as ws:
            time.sleep(1.2)
            ws.send("still here")
            assert ws.recv(timeout=5) == "10"


def test_pings_go_on_without_a_ping_timeout(serve):
    """--ws-ping-timeout 0: nobody is dropped, but pings still go out every interval."""
    with serve(sizes_app([]), ws_ping_interval=0.2, ws_ping_timeout=0) as server, \
            RawWebSocket(server.port) as raw:
        raw.open()
        pings = count_pings(raw, 1.0, answer=False)
        assert pings >= 3, f"{pings} pings in 1s with --ws-ping-interval 0.2"
        raw.send(TextMessage(data="unanswered"))
        event = raw.next_event()
        while isinstance(event, Ping):
            event = raw.next_event()
        assert event.data == "10"


def test_close_answered_after_pings_stop(serve):
    """A client close during ping keep-alive gets the normal closing handshake."""
    with serve(sizes_app([]), ws_ping_interval=0.1, ws_ping_timeout=1) as server, \
            RawWebSocket(server.port) as raw:
        raw.open()
        raw.send(CloseConnection(code=1000, reason="done"))
        events = raw.events_until_close()
        close = close_event(events)
        assert close is not None and close.code == 1000
        assert all(isinstance(event, (Ping, CloseConnection)) for event in events)


@pytest.mark.parametrize("value", [b"\xb2", b"1\xb3"])
def test_a_window_bits_digit_outside_ascii_declines_the_offer(serve, value):
    """latin-1 has digits that str.isdigit() takes and int() refuses (the superscripts ² and
    ³): such an offer is declined like any other malformed one, not an error in the
    handshake."""
    request = handshake(extra="Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=@\r\n")
    with captured_log() as log, serve(sizes_app([])) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.replace(b"@", value) + frame(TEXT, b"hi"))
        response, rest = read_http_response(sock)
    assert response.status == 101
    assert response.get(b"sec-websocket-extensions") is None
    assert log.tracebacks() == [] and log.errors() == []
