"""WebSocket ping floods (issue 8, point 3): a client that sends pings and never reads is owed
one pong at most and is not read until it reads, then dropped by the keep-alive; a client that
reads its pongs and floods pings runs out of --control-frame-budget and gets 1008; a slow
reader gets the pong it is owed. Others are served meanwhile, from another address."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path

import h2.settings
import pytest
from flood_support import (
    EchoProber,
    FloodResult,
    echo_from_another_address,
    h1_ping_flood,
    h2_ping_flood,
    resident_kib,
)
from h2_client import RST_STREAM
from h2_ws_client import H2WebSocket, ws_connection
from support import read_until_closed
from ws_support import BINARY, CONTINUATION, RawWebSocket, close_event, echo_app, frame
from wsproto.events import BytesMessage, Ping, Pong, TextMessage

from gateway.h1.websocket import H1WebSocket

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status"),
]

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
MiB = 1024 * 1024
# Keep-alive small enough that a flooder is dropped within the test: our ping goes out 0.5 s
# after the accept and its pong is due 0.5 s later.
KEEPALIVE = ("--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5", "--ws-close-timeout", "0.5")
DROPPED_WITHIN = 3.0
# The flood is the only limit under test there: the budget stays out of the way.
NO_BUDGET = ("--control-frame-budget", "100000000")


def peak_growth_during(pid: int, action) -> tuple[int, object]:
    """The peak of the process's resident memory above where it started, in KiB, while
    `action()` runs; and what it returned."""
    start = resident_kib(pid)
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], resident_kib(pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], resident_kib(pid)) - start, result


@pytest.mark.parametrize("carrier", ["plain", "tls", "deflate", "h2"])
def test_a_ping_flood_from_a_client_that_never_reads_is_bounded_and_dropped(gateway_cli, certs, carrier):
    tls = ("--certfile", certs.cert_file, "--keyfile", certs.key_file) if carrier == "tls" else ()
    process = gateway_cli("--app-dir", str(EXAMPLES), "-b", "127.0.0.1:0", "--no-access-log",
                          *KEEPALIVE, *NO_BUDGET, *tls, "websocket_echo:app")
    port = process.wait_listening()
    context = certs.client_context() if carrier == "tls" else None
    with EchoProber(port, context) as prober:
        if carrier == "h2":
            growth, flood = peak_growth_during(process.process.pid, lambda: h2_ping_flood(port, 5))
        else:
            growth, flood = peak_growth_during(
                process.process.pid, lambda: h1_ping_flood(port, 5, context, deflate=carrier == "deflate"))
        time.sleep(0.2)
    assert isinstance(flood, FloodResult)
    assert growth < 16 * 1024, f"the server grew by {growth // 1024} MiB for {flood.sent // MiB} MiB of pings"
    # Dropped by the keep-alive: our ping is never answered by a client that does not read.
    assert flood.dropped_after is not None and flood.dropped_after < DROPPED_WITHIN, flood
    if carrier == "h2":
        # Once pongs waited for window, no more window was granted for pings.
        assert flood.sent < 2 * MiB, flood
    latencies = prober.latencies
    assert not latencies.failures, latencies.failures
    assert latencies.median < 0.2 and latencies.worst < 2, sorted(latencies.samples)[-5:]
    echo_from_another_address(port, context)
    code, output = process.stop()
    assert "Traceback" not in output


def test_without_pings_a_flooder_that_never_reads_is_dropped_after_the_send_timeout(serve):
    with serve(echo_app, ws_ping_interval=0, send_timeout=1,
               control_frame_budget=100_000_000) as server:
        flood = h1_ping_flood(server.port, 5)
        # The stall is seen on the server's once-a-second check.
        assert flood.dropped_after is not None and flood.dropped_after < 3.5, flood
        echo_from_another_address(server.port)


# -- a flood from a client that reads its pongs ---------------------------------------------------


BUDGET = 40


def test_pings_past_the_budget_over_http1_get_1008_and_the_address_blocked(serve):
    with serve(echo_app, control_frame_budget=BUDGET, address_block_time=30) as server:
        with RawWebSocket(server.port) as raw:
            raw.open()
            pongs = 0
            for number in range(3 * BUDGET):
                raw.send(Ping(payload=str(number).encode()))
                event = raw.next_event()
                if not isinstance(event, Pong):
                    break
                assert event.payload == str(number).encode()
                pongs += 1
            close = close_event([event, *raw.events_until_close()])
            assert close is not None and close.code == 1008, event
        # The budget is the client's, not the connection's: 10 s at the default rate refill it.
        assert BUDGET - 2 <= pongs <= BUDGET + 2, pongs
        # The address is blocked: its next connection is closed at once.
        with RawWebSocket(server.port) as raw:
            with contextlib.suppress(OSError):
                raw.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_until_closed(raw.sock) == b""
        echo_from_another_address(server.port)


def test_pings_past_the_budget_over_http2_get_1008(serve):
    with serve(echo_app, control_frame_budget=BUDGET, address_block_time=30) as server, \
            ws_connection(server.port) as client:
        websocket = H2WebSocket.connect(client)
        pongs = 0
        for number in range(3 * BUDGET):
            websocket.send_event(Ping(payload=str(number).encode()))
            event = websocket.next_event()
            if not isinstance(event, Pong):
                break
            pongs += 1
        assert websocket.close is not None and websocket.close.code == 1008, event
        # Over HTTP/2 the frames of the connection (SETTINGS, WINDOW_UPDATE) share the budget.
        assert 5 <= pongs <= BUDGET, pongs
        echo_from_another_address(server.port)


# -- a slow reader gets the pong it is owed -------------------------------------------------------


def test_a_slow_reader_over_http1_gets_the_pong_for_its_last_ping(serve):
    """The app's 8 MiB answer fills the connection; pings sent meanwhile are owed one pong, for
    the most recent (RFC 6455 section 5.5.3), which comes once the client reads again."""
    size = 8 * MiB
    with serve(echo_app) as server, RawWebSocket(server.port, rcvbuf=16 * 1024) as raw:
        raw.open()
        raw.send(BytesMessage(data=bytes(size)))
        assert wait_until_paused(server), "the server's writes never waited for the client"
        raw.send_raw(b"".join(raw.ws.send(Ping(payload=f"ping {n}".encode())) for n in range(3)))
        received = 0
        pongs = []
        while received < size or not pongs:
            event = raw.next_event()
            if isinstance(event, BytesMessage):
                received += len(event.data)
            else:
                assert isinstance(event, Pong), event
                pongs.append(event.payload)
        assert received == size
        assert pongs == [b"ping 2"]
        # Not punished: the WebSocket goes on.
        raw.send(TextMessage(data="still here"))
        assert raw.next_event().data == "still here"


def wait_until_paused(server, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(isinstance(c, H1WebSocket) and c.write_paused for c in list(server.server.state.connections)):
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_grants_no_window_over_http2_gets_the_owed_pong_once_it_does(serve):
    """The first pong waits for window; the pings after it are owed one pong, for the most
    recent, sent once the client grants window."""
    with serve(echo_app) as server, ws_connection(
            server.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}) as client:
        websocket = H2WebSocket.connect(client)
        for number in range(4):
            websocket.send_event(Ping(payload=f"ping {number}".encode()))
        client.pump(0.3)
        assert not websocket.result.data, "data sent with no window"
        client.conn.increment_flow_control_window(MiB, websocket.stream_id)
        client.flush()
        pongs = []
        while len(pongs) < 2:
            event = websocket.next_event()
            assert isinstance(event, Pong), event
            pongs.append(event.payload)
        assert pongs == [b"ping 0", b"ping 3"]
        websocket.pump(0.2)
        assert not websocket.events, websocket.events
        websocket.send_text("still here")
        assert websocket.receive() == "still here"
        assert not client.frames_of(RST_STREAM)


# -- empty fragments --------------------------------------------------------------------------------


def test_empty_fragments_of_an_unfinished_message_do_not_grow_the_server(gateway_cli):
    """A message that never ends, in empty frames: nothing to count against --ws-max-size, so
    nothing may be kept either."""
    process = gateway_cli("--app-dir", str(EXAMPLES), "-b", "127.0.0.1:0", "--no-access-log",
                          "websocket_echo:app")
    port = process.wait_listening()
    empties = frame(CONTINUATION, b"", fin=False) * 100_000

    def send() -> None:
        raw.send_raw(frame(BINARY, b"start ", fin=False))
        for _ in range(30):
            raw.send_raw(empties)
        raw.send_raw(frame(CONTINUATION, b"end"))

    with RawWebSocket(port) as raw:
        raw.open()
        growth, _ = peak_growth_during(process.process.pid, send)
        event = raw.next_event()
        assert isinstance(event, BytesMessage) and event.data == b"start end", event
    assert growth < 10 * 1024, f"the server grew by {growth // 1024} MiB"
