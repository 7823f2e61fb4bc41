"""Streams that never finish, with HPACK-amplified heads (issue 8, point 4), against a
`gateway` process: 20 connections open 100 streams each, every head naming one 4 KB table
entry fifteen times (60 KB decoded from 62 bytes) and never a body. Before, each connection
held 100 such streams, 2,000 app calls in all, waiting forever. Now the decoded heads a
connection holds are bounded by --h2-max-headers-held (the streams past it are refused, and
the refusals count against the client's budget), and the streams held end at --body-timeout."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import hpack
import pytest
from conftest import GatewayProcess
from h2.errors import ErrorCodes
from h2_client import HEADERS, RST_STREAM, H2Client, raw_frame
from support import other_client, process_memory

pytestmark = pytest.mark.timeout(60)

APPS = Path(__file__).resolve().parents[1] / "apps"
MiB = 1024 * 1024
# All from HPACK's static table, so that the one dynamic entry is the 4 KB field.
REQUEST = [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http")]
HELD = 1024 * 1024 // (15 * (5 + 4000 + 32) + 3 * 32 + 15)  # streams a 1 MiB budget holds: 17


def hoarder(port: int) -> H2Client:
    client = H2Client(socket.create_connection(("127.0.0.1", port), timeout=5))
    encoder = hpack.Encoder()
    client.send_raw(b"".join(
        raw_frame(HEADERS, 0x4, 1 + 2 * index, encoder.encode(REQUEST + [(b"x-big", b"v" * 4000)] * 15))
        for index in range(100)
    ))
    return client


def test_streams_hoarding_heads_are_bounded_and_time_out(tmp_path):
    process = GatewayProcess(["--app-dir", str(APPS), "-b", "127.0.0.1:0", "--no-access-log",
                              "--body-timeout", "2", "transfer:app"], tmp_path)
    port = process.wait_listening()
    pid = process.process.pid
    try:
        start = process_memory(pid)
        first = hoarder(port)
        others = []
        for _ in range(19):
            try:
                others.append(hoarder(port))
            except OSError:
                pass  # refused: the address ran through its budget with the refusals
        started = time.monotonic()
        assert first.until(lambda: len(first.frames_of(RST_STREAM)) >= 100 - HELD, 5)
        refused = [f for f in first.frames_of(RST_STREAM) if f.frame.error_code == ErrorCodes.REFUSED_STREAM]
        assert len(refused) == 100 - HELD
        grown = process_memory(pid) - start
        assert grown < 16 * MiB, f"{grown / MiB:.0f} MiB held for 20 x 6 KB of heads"
        with other_client(http1=False, http2=True, timeout=5) as other:
            assert other.get(f"http://127.0.0.1:{port}/download?size=5").status_code == 200
        # The streams held get 408 once they have waited --body-timeout for a body.
        assert first.until(lambda: len(first.frames_of(HEADERS)) >= HELD, 6)
        assert 1.5 <= time.monotonic() - started < 5.5
        for client in [first, *others]:
            client.close()
    finally:
        code, output = process.stop()
    assert code == 0 and "Traceback" not in output
