"""`http.response.pathsend` and `http.response.zerocopysend` over HTTP/2 (TLS and h2c): the
file is read into body chunks and sent under the peer's flow control like any body, so a
client that grants no window holds the app's send, and one that resets the stream ends it."""

from __future__ import annotations

import logging
import os

import httpx
import pytest
from h2.errors import ErrorCodes
from h2_client import DATA, client_tls_context, h2_connection
from support import captured_log, http_app, tls_settings, wait_until

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    data = (os.urandom(4096) * (8 * MiB // 4096 + 1))[:8 * MiB + 321]
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(data)
    return str(path), data


def path_app(path: str, seen: dict | None = None):
    @http_app
    async def app(scope, receive, send):
        if seen is not None:
            seen["extensions"] = scope["extensions"]
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.pathsend", "path": path})
        finally:
            if seen is not None:
                seen["ended"] = True  # returned, or raised as a body send does once reset

    return app


@pytest.fixture(params=["tls", "h2c"])
def h2_server(request, serve, certs, big_file):
    """(server, httpx client speaking HTTP/2 to it, what the app saw)."""
    path, _ = big_file
    seen: dict = {}
    tls = request.param == "tls"
    settings = tls_settings(certs) if tls else {}
    client_options = {"verify": certs.client_context()} if tls else {"http1": False}
    with serve(path_app(path, seen), **settings) as server, \
            httpx.Client(http2=True, timeout=30, **client_options) as client:
        yield server, client, seen


def test_a_big_file_arrives_whole_with_its_length(h2_server, big_file):
    server, client, seen = h2_server
    _, data = big_file
    for _ in range(2):
        response = client.get(server.url)
        assert response.http_version == "HTTP/2"
        assert response.headers["content-length"] == str(len(data))
        assert response.content == data
    assert "http.response.pathsend" in seen["extensions"]
    assert "http.response.zerocopysend" in seen["extensions"]


def test_head_sends_the_length_and_no_body(h2_server, big_file):
    server, client, _ = h2_server
    _, data = big_file
    response = client.head(server.url)
    assert response.headers["content-length"] == str(len(data))
    assert response.content == b""


def test_zerocopysend_ranges_and_body_chunks(serve, certs, big_file):
    path, data = big_file

    @http_app
    async def app(scope, receive, send):
        with open(path, "rb") as file:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"<", "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 7,
                        "count": 3 * MiB, "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file.fileno(), "offset": 0,
                        "count": 10})

    with serve(app, **tls_settings(certs)) as server, \
            httpx.Client(http2=True, verify=certs.client_context()) as client:
        response = client.get(server.url)
        assert response.http_version == "HTTP/2"
        assert response.content == b"<" + data[7:3 * MiB + 7] + data[:10]


def test_a_missing_file_is_a_500_and_one_line(serve, certs):
    with captured_log() as log, serve(path_app("/no/such/file"), **tls_settings(certs)) as server, \
            httpx.Client(http2=True, verify=certs.client_context()) as client:
        assert client.get(server.url).status_code == 500
        errors = log.wait_for(logging.ERROR)
    assert len(errors) == 1 and "/no/such/file" in errors[0]
    assert not log.tracebacks()


def test_a_closed_window_holds_the_send_and_a_reset_ends_it(serve, certs, big_file):
    path, data = big_file
    seen: dict = {}
    context = client_tls_context(certs.ca_file)
    with captured_log() as log, serve(path_app(path, seen), **tls_settings(certs)) as server, \
            h2_connection(server.port, context, auto_ack=False) as client:
        stream = client.request("/")
        client.until(lambda: len(client.frames_of(DATA, stream)) > 0)
        client.until(lambda: False, 0.5)
        received = sum(len(f.frame.data) for f in client.frames_of(DATA, stream))
        assert received <= 65535  # the initial window, and no more
        assert not seen.get("ended")
        client.reset(stream, ErrorCodes.CANCEL)
        assert wait_until(lambda: seen.get("ended"))
        # The connection serves the next stream.
        client.auto_ack = True
        other = client.request("/")
        client.conn.increment_flow_control_window(2**30)
        client.flush()
        assert bytes(client.response(other, 20).data) == data
    assert not log.tracebacks() and not log.errors(), log.describe()
