"""What an idle keep-alive connection costs a `gateway` process: 2,000 connections, each after
one request, raise its RSS by less than a generous bound per connection (about 3.5 KiB each
when this was written, 6.9 KiB before the protocol's slots and lazily made parts), and every
one of them is still open and served afterwards."""

from __future__ import annotations

import select
import socket
import textwrap
import time
from pathlib import Path

import pytest
from support import ENGINES, process_memory

pytestmark = pytest.mark.timeout(120)

CONNECTIONS = 2000
BOUND = 5.5 * 1024  # bytes per idle connection
APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"idle"})
"""
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def get(sock: socket.socket) -> None:
    sock.sendall(REQUEST)
    received = b""
    while not received.endswith(b"idle"):
        data = sock.recv(4096)
        assert data, f"closed before the response ended: {received!r}"
        received += data


@pytest.mark.parametrize("http", ENGINES)
def test_idle_connections_cost_little(tmp_path: Path, gateway_cli, http):
    (tmp_path / "idleapp.py").write_text(textwrap.dedent(APP))
    process = gateway_cli("-b", "127.0.0.1:0", "--http", http, "--no-access-log",
                          "--keep-alive-timeout", "120", "--backlog", "4096", "idleapp:app",
                          cwd=tmp_path)
    port = process.wait_listening()
    warm = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
    for sock in warm:
        get(sock)
    time.sleep(0.3)
    before = process_memory(process.process.pid)
    held = []
    try:
        for _ in range(CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append(sock)
            get(sock)
        time.sleep(0.3)
        per_connection = (process_memory(process.process.pid) - before) / CONNECTIONS
        assert per_connection < BOUND, f"{per_connection / 1024:.2f} KiB per idle connection"
        poll = select.poll()
        for sock in held:
            poll.register(sock, select.POLLIN)
        events = poll.poll(0)
        assert not events, f"{len(events)} idle connections closed or written to"
        get(held[0])
        get(held[-1])
    finally:
        for sock in held + warm:
            sock.close()
