"""A client that pipelines requests as fast as it can and never reads (issue 8, point 2): the
server stops reading it once its responses back up, so its memory stays bounded, other clients
are served, and the responses arrive in order once the client reads."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import GatewayProcess
from support import ENGINES, other_client, process_memory

pytestmark = pytest.mark.timeout(60)

APPS = Path(__file__).resolve().parents[1] / "apps"
MiB = 1024 * 1024
BATCH = 1000  # requests per sendall


def requests(start: int) -> bytes:
    return b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(start, start + BATCH))


def read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """The bodies of the next `count` responses (each with a Content-Length)."""
    bodies: list[bytes] = []
    buffer = b""
    while len(bodies) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(bodies)} responses"
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(buffer) < length:
            buffer += sock.recv(65536)
        bodies.append(buffer[:length])
        buffer = buffer[length:]
    return bodies


@pytest.mark.parametrize("engine", ENGINES)
def test_pipelining_without_reading_is_bounded_and_answered_in_order(tmp_path, engine):
    process = GatewayProcess(["--app-dir", str(APPS), "-b", "127.0.0.1:0", "--no-access-log",
                              "--http", engine, "paths:app"], tmp_path)
    port = process.wait_listening()
    pid = process.process.pid
    try:
        start = process_memory(pid)
        sock = socket.create_connection(("127.0.0.1", port))
        sent = [0]
        stop = threading.Event()

        def pipeline() -> None:
            try:
                while not stop.is_set():
                    sock.sendall(requests(sent[0]))
                    sent[0] += BATCH
            except OSError:
                pass

        sender = threading.Thread(target=pipeline, daemon=True)
        sender.start()
        # Until the server has stopped taking requests (the sender is stuck in sendall).
        last, deadline = -1, time.monotonic() + 20
        while sent[0] != last and time.monotonic() < deadline:
            last = sent[0]
            time.sleep(0.5)
        grown = process_memory(pid) - start
        assert grown < 16 * MiB, f"{grown / MiB:.1f} MiB held for a client that reads nothing"
        with other_client(timeout=5) as other:
            assert other.get(f"http://127.0.0.1:{port}/other").text == "/other"
        bodies = read_responses(sock, 5000)
        assert bodies == [b"/%d" % i for i in range(5000)]
        stop.set()
        sock.shutdown(socket.SHUT_RDWR)  # wakes the sender, which close() alone would not
        sock.close()
        sender.join(5)
    finally:
        code, output = process.stop()
    assert code == 0 and "Traceback" not in output, output
