"""Closing TLS connections: gateway sends its close_notify and does not wait for the client's,
so a client that neither reads nor closes holds neither a stop nor a connection (issue 8,
point 8)."""

from __future__ import annotations

import select
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from h2_client import H2Client, client_tls_context
from support import read_response, tls_settings, wait_until

pytestmark = pytest.mark.timeout(60)

APP = """
import asyncio
from pathlib import Path

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        Path("slow-started").touch()
        await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
"""


def send_request(port: int, mode: str, ca_file: str, path: str) -> Callable[[], bytes]:
    """Open a connection (plain, or TLS with ALPN `mode`) and send a GET for `path`; returns
    what reads the response (head and body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if mode != "plain":
        sock = client_tls_context(ca_file, [mode]).wrap_socket(sock, server_hostname="localhost")
    if mode == "h2":
        client = H2Client(sock)
        stream_id = client.request(path)
        return lambda: bytes(client.response(stream_id).data)
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return lambda: read_response(sock)


def wait_for_file(path: Path, timeout: float = 5.0) -> None:
    assert wait_until(path.exists, timeout), f"{path.name} never appeared"


@pytest.mark.parametrize("mode", ["plain", "http/1.1", "h2"], ids=["plain", "tls-h1", "tls-h2"])
def test_graceful_stop_does_not_wait_for_an_idle_client_that_neither_reads_nor_closes(
        tmp_path, certs, gateway_cli, mode):
    (tmp_path / "closeapp.py").write_text(APP)
    tls = [] if mode == "plain" else ["--certfile", certs.cert_file, "--keyfile", certs.key_file]
    process = gateway_cli(*tls, "--graceful-timeout", "30", "-b", "127.0.0.1:0", "closeapp:app",
                          cwd=tmp_path)
    port = process.wait_listening()
    idle = send_request(port, mode, certs.ca_file, "/")  # and neither reads nor closes
    read_slow = send_request(port, mode, certs.ca_file, "/slow")
    wait_for_file(tmp_path / "slow-started")
    started = time.monotonic()
    process.signal(signal.SIGTERM)
    assert read_slow().endswith(b"done")  # the request in flight still finishes
    assert process.process.wait(timeout=10) == 0
    stopped_after = time.monotonic() - started
    del idle  # held open, unread, until the server had gone
    output = "".join(process.lines) + process.rest()
    assert stopped_after < 2.0, output
    assert "graceful timeout" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_an_idle_tls_connection_closes_after_the_keep_alive_timeout_with_our_close_notify(
        serve, certs, loop):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})

    with serve(app, **tls_settings(certs, keep_alive_timeout=1, loop=loop)) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        # A close without close_notify would raise SSLEOFError here instead of reading b"".
        with certs.client_context().wrap_socket(raw, server_hostname="localhost",
                                                suppress_ragged_eofs=False) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert wait_until(lambda: server.connection_count == 1)
            # Neither reading nor closing: the server closes after the keep-alive timeout and
            # lets the connection go at once instead of waiting for our close_notify.
            assert wait_until(lambda: server.connection_count == 0, timeout=4)
            assert read_response(tls).endswith(b"done")
            if loop == "asyncio" and sys.version_info < (3, 11):
                # Python 3.10's asyncio drops the close_notify (see tls/context.py).
                with pytest.raises(ssl.SSLEOFError):
                    tls.recv(1024)
            else:
                assert tls.recv(1024) == b""


def test_a_client_still_sending_when_the_server_closes_reads_the_response(serve, certs):
    """The close waits for the client's close_notify while the client is still sending (a
    lingering close): what arrives is read and dropped, so the client reads the 413 rather
    than the reset a socket closed with unread bytes sends."""
    async def app(scope, receive, send):
        pass

    outcomes = []
    with serve(app, **tls_settings(certs, max_body_size=1000)) as server:
        for _ in range(5):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            with certs.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n")
                outcomes.append(upload_until_answered(tls))
    assert outcomes == ["413"] * 5


def upload_until_answered(tls: ssl.SSLSocket) -> str:
    """Send body chunks until the server answers; what the client got: "413", or the error
    that ended the upload before any answer."""
    received = b""
    try:
        for _ in range(400):
            tls.sendall(b"x" * 65536)
            if tls.pending() or select.select([tls], [], [], 0)[0]:
                received += tls.recv(65536)
                if b" 413 " in received:
                    return "413"
    except (OSError, ssl.SSLError) as exc:
        return "413" if b" 413 " in received else type(exc).__name__
    return "no answer"
