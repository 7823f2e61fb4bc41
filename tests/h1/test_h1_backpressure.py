"""Flow control both ways over real sockets: a slow reader makes the app's `send` wait, an app
that does not read makes the server stop reading, and a client that leaves is reported to the
app as `http.disconnect` (or a failing `send`)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time

from h1_client import RawClient, request, respond
from support import captured_log, http_app, wait_until

MiB = 1024 * 1024
CHUNK = 64 * 1024


def test_slow_reader_makes_app_send_wait(serve, http):
    total = 64 * MiB
    progress = {"sent": 0, "done": False}
    block = bytes(range(256)) * (CHUNK // 256)

    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        while progress["sent"] < total:
            await send({"type": "http.response.body", "body": block, "more_body": True})
            progress["sent"] += len(block)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        progress["done"] = True

    with serve(app, http=http) as server, RawClient(server.port, rcvbuf=256 * 1024) as client:
        client.send(request("GET", "/"))
        assert wait_until(lambda: progress["sent"] > 0)
        time.sleep(0.6)
        early = progress["sent"]
        time.sleep(0.4)
        stalled = progress["sent"]
        # The app was held back, and not by a little: it is stuck at the same point.
        assert stalled < 16 * MiB, f"the app pushed {stalled / MiB:.1f} MiB into a client that reads nothing"
        assert stalled == early, "the app's send kept returning while nobody read"
        assert not progress["done"]
        response = client.read_response()
        assert response.status == 200
        assert len(response.body) == total
        assert response.body[:CHUNK] == block and response.body[-CHUNK:] == block
        assert wait_until(lambda: progress["done"])


def _pattern(total: int) -> bytes:
    return (hashlib.sha256(b"seed").digest() * (total // 32 + 1))[:total]


def test_app_not_reading_makes_server_stop_reading(serve, http):
    total = 64 * MiB
    payload = _pattern(total)
    go = threading.Event()
    seen: dict[str, object] = {}

    @http_app
    async def app(scope, receive, send):
        while not go.is_set():
            await asyncio.sleep(0.01)
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            digest.update(message["body"])
            size += len(message["body"])
            if not message["more_body"]:
                break
        seen["size"] = size
        await respond(send, 200, digest.hexdigest().encode())

    with serve(app, http=http) as server, RawClient(server.port, sndbuf=256 * 1024) as client:
        sock = client.sock
        sock.sendall(request("POST", "/upload", [("Content-Length", str(total))]))
        view = memoryview(payload)
        pushed = 0
        sock.settimeout(0.5)
        try:
            while pushed < total:
                pushed += sock.send(view[pushed:pushed + CHUNK])
        except TimeoutError:
            pass
        assert pushed < 32 * MiB, (
            f"the client pushed {pushed / MiB:.1f} MiB to an app that reads nothing: the server"
            " kept reading the socket"
        )
        go.set()
        sock.settimeout(10)
        sock.sendall(view[pushed:])
        client.sock.settimeout(10)
        response = client.read_response()
        assert response.status == 200
        assert seen["size"] == total
        assert response.body == hashlib.sha256(payload).hexdigest().encode()


def test_disconnect_reaches_app_waiting_on_receive(serve, http):
    messages: list[dict] = []
    got = threading.Event()

    @http_app
    async def app(scope, receive, send):
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect":
                got.set()
                return

    with serve(app, http=http) as server:
        with RawClient(server.port) as client:
            client.send(request("GET", "/wait"))
            assert wait_until(lambda: len(messages) == 1)
            closed_at = time.monotonic()
        assert got.wait(3)
        assert time.monotonic() - closed_at < 1.5
        assert messages == [
            {"type": "http.request", "body": b"", "more_body": False},
            {"type": "http.disconnect"},
        ]
        # Mid-body: the app has part of the body and waits for the rest.
        messages.clear()
        got.clear()
        with RawClient(server.port) as client:
            client.send(request("POST", "/wait", [("Content-Length", "1000")]) + b"x" * 10)
            assert wait_until(lambda: len(messages) == 1)
        assert got.wait(3)
        assert messages == [
            {"type": "http.request", "body": b"x" * 10, "more_body": True},
            {"type": "http.disconnect"},
        ]


def test_client_leaving_mid_response_stops_the_app_send(serve, http):
    outcome: dict[str, object] = {}
    finished = threading.Event()

    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100_000):
                await send({"type": "http.response.body", "body": b"z" * CHUNK, "more_body": True})
                await asyncio.sleep(0)
            outcome["result"] = "sent everything"
        except Exception as exc:
            outcome["result"] = exc
            raise
        finally:
            finished.set()

    with captured_log("gateway.error") as log, serve(app, http=http) as server:
        with RawClient(server.port) as client:
            client.send(request("GET", "/stream"))
            client._fill()
            assert client.buffer.startswith(b"HTTP/1.1 200 ")
        assert finished.wait(5), "the app kept streaming to a client that left"
        assert isinstance(outcome["result"], OSError), outcome
        time.sleep(0.1)
        # A client going away is not the server's or the app's error.
        assert log.messages(logging.ERROR) == []


def test_slow_uploader_and_slow_reader_on_keep_alive(serve, http):
    """Flow control leaves the connection usable: after a paused upload and a paused
    download, the next request on the same socket works."""

    @http_app
    async def app(scope, receive, send):
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["path"] == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(64):
                await send({"type": "http.response.body", "body": b"b" * CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await respond(send, 200, str(size).encode())

    with serve(app, http=http) as server, RawClient(server.port, rcvbuf=128 * 1024) as client:
        client.send(request("GET", "/big"))
        time.sleep(0.3)
        assert len(client.read_response().body) == 64 * CHUNK
        client.send(request("POST", "/count", [("Content-Length", str(8 * MiB))]))
        client.send(b"u" * (8 * MiB))
        assert client.read_response().body == str(8 * MiB).encode()
        client.send(request("GET", "/small"))
        assert client.read_response().body == b"0"
