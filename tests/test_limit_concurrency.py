"""`--limit-concurrency N`: past N app calls running (HTTP requests and WebSockets), a new
request is answered 503 without reaching the app, as uvicorn answers it: over HTTP/1.1 with
`connection: close`, over HTTP/2 on that stream alone, and a WebSocket handshake with an HTTP
503 before any accept. Once calls finish, new requests reach the app again."""

from __future__ import annotations

import asyncio
import threading

import pytest
from conftest import run_cli
from h1_client import RawClient, Response, request
from h2_client import GOAWAY, RST_STREAM, h2_connection
from support import captured_log, wait_until

pytestmark = pytest.mark.timeout(60)

UNAVAILABLE = b"Service Unavailable"
WS_HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class Gate:
    """An app whose `/block...` requests wait until `release`; it counts the calls that reach
    it. WebSockets are accepted and held until the client leaves."""

    def __init__(self) -> None:
        self.entered = 0
        self.lock = threading.Lock()
        self.event: asyncio.Event | None = None  # made on the server's loop

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return
        if self.event is None:
            self.event = asyncio.Event()
        with self.lock:
            self.entered += 1
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass
            return
        if scope["path"].startswith("/block"):
            await self.event.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done " + scope["path"].encode()})

    def wait_entered(self, count: int) -> None:
        assert wait_until(lambda: self.entered == count), f"{self.entered} calls, expected {count}"

    def release(self, server) -> None:
        """Let every waiting request finish; later ones wait for the next release."""

        def open_gate() -> None:
            assert self.event is not None
            self.event.set()
            self.event = asyncio.Event()

        server.call(open_gate)


def blocked_h1(port: int, count: int, path: str = "/block") -> list[RawClient]:
    clients = []
    for number in range(count):
        client = RawClient(port)
        client.send(request("GET", f"{path}{number}"))
        clients.append(client)
    return clients


def assert_unavailable_and_closed(client: RawClient) -> Response:
    response = client.read_response()
    assert response.status == 503
    assert response.body == UNAVAILABLE
    assert response.get(b"connection").lower() == b"close"
    assert response.get(b"content-type") == b"text/plain; charset=utf-8"
    assert client.is_closed(wait=2)
    return response


# -- HTTP/1.1 ------------------------------------------------------------------------------------


def test_http1_past_the_limit_gets_503_until_calls_finish(serve, http):
    gate = Gate()
    with serve(gate, http=http, limit_concurrency=2, headers=["X-Frame-Options:DENY"]) as server, \
            captured_log(level=30) as log:
        clients = blocked_h1(server.port, 2)
        gate.wait_entered(2)
        with RawClient(server.port) as third:
            third.send(request("GET", "/third"))
            response = assert_unavailable_and_closed(third)
        assert response.get(b"x-frame-options") == b"DENY"  # --header goes on it too
        assert response.get(b"server") == b"gateway"
        assert gate.entered == 2  # the app never saw it
        assert any("--limit-concurrency" in message for message in log.messages(30))

        gate.release(server)
        for number, client in enumerate(clients):
            response = client.read_response()
            assert response.status == 200 and response.body == b"done /block%d" % number
            # The connection goes on, and its next request is served.
            client.send(request("GET", "/next"))
            assert client.read_response().body == b"done /next"
            client.close()

        # The count is back to zero: two may block again, and the third is refused again.
        again = blocked_h1(server.port, 2, "/block-again")
        gate.wait_entered(6)
        with RawClient(server.port) as third:
            third.send(request("GET", "/third"))
            assert_unavailable_and_closed(third)
        gate.release(server)
        for client in again:
            assert client.read_response().status == 200
            client.close()


def test_http1_pipelined_requests_on_one_connection_fit_a_limit_of_one(serve, http):
    """The next pipelined request starts from inside the previous response's last send; the
    previous app call is over by then and is not counted."""
    gate = Gate()
    with serve(gate, http=http, limit_concurrency=1) as server, RawClient(server.port) as client:
        client.send(b"".join(request("GET", f"/p{number}") for number in range(5)))
        bodies = [client.read_response().body for _ in range(5)]
    assert bodies == [b"done /p%d" % number for number in range(5)]


def test_http1_websocket_handshake_past_the_limit_gets_503(serve, http):
    gate = Gate()
    with serve(gate, http=http, limit_concurrency=1) as server:
        [blocked] = blocked_h1(server.port, 1)
        gate.wait_entered(1)
        with RawClient(server.port) as client:
            client.send(WS_HANDSHAKE)
            assert_unavailable_and_closed(client)
        gate.release(server)
        assert blocked.read_response().status == 200
        blocked.close()
        with RawClient(server.port) as client:
            client.send(WS_HANDSHAKE)
            assert client.read_response().status == 101


def test_an_open_websocket_counts_until_its_app_returns(serve, http):
    gate = Gate()
    with serve(gate, http=http, limit_concurrency=1) as server:
        websocket = RawClient(server.port)
        websocket.send(WS_HANDSHAKE)
        assert websocket.read_response().status == 101
        with RawClient(server.port) as client:
            client.send(request("GET", "/while-open"))
            assert_unavailable_and_closed(client)
        websocket.close()  # the app sees the disconnect and returns

        def served() -> bool:
            with RawClient(server.port) as client:
                client.send(request("GET", "/after"))
                return client.read_response().status == 200

        assert wait_until(served, interval=0.05)


# -- HTTP/2 --------------------------------------------------------------------------------------


def test_http2_past_the_limit_gets_503_on_that_stream_only(serve):
    gate = Gate()
    with serve(gate, limit_concurrency=2, headers=["X-Frame-Options:DENY"]) as server, \
            h2_connection(server.port) as client:
        blocked = [client.request("/block0"), client.request("/block1")]
        gate.wait_entered(2)
        refused = client.response(client.request("/third"))
        assert refused.status == 503
        assert bytes(refused.data) == UNAVAILABLE
        assert refused.header(b"connection") is None  # a connection-specific field (RFC 9113)
        assert refused.header(b"x-frame-options") == b"DENY"
        assert refused.reset is None and refused.ended
        assert gate.entered == 2

        gate.release(server)
        for number, stream in enumerate(blocked):
            result = client.response(stream)
            assert result.status == 200 and bytes(result.data) == b"done /block%d" % number
        # The same connection goes on serving, with the count back to zero.
        again = [client.request("/block2"), client.request("/block3")]
        gate.wait_entered(4)
        assert client.response(client.request("/fourth")).status == 503
        gate.release(server)
        assert [client.response(stream).status for stream in again] == [200, 200]
        assert bytes(client.response(client.request("/last")).data) == b"done /last"
        assert client.goaway is None and not client.frames_of(GOAWAY)
        assert not client.frames_of(RST_STREAM)


def test_http2_websocket_past_the_limit_gets_503(serve):
    gate = Gate()
    with serve(gate, limit_concurrency=1) as server, h2_connection(server.port) as client:
        client.wait_ready()
        blocked = client.request("/block")
        gate.wait_entered(1)
        stream = client.request("/ws", method="CONNECT", end=False,
                                headers=[(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")])
        result = client.response(stream)
        assert result.status == 503 and bytes(result.data) == UNAVAILABLE
        gate.release(server)
        assert client.response(blocked).status == 200
        assert gate.entered == 1


# -- the flag ------------------------------------------------------------------------------------


def test_limit_of_zero_is_one_error_line(tmp_path):
    (tmp_path / "hello.py").write_text("async def app(scope, receive, send):\n    pass\n")
    result = run_cli("-b", "127.0.0.1:0", "--limit-concurrency", "0", "hello:app", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert output.strip().splitlines() == [
        "gateway: error: invalid --limit-concurrency 0: it must be a whole number > 0"
    ]


def test_flag_from_the_command_line(tmp_path, gateway_cli):
    (tmp_path / "slow.py").write_text(
        "import asyncio, pathlib\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    if scope['path'] == '/slow':\n"
        "        pathlib.Path('entered').touch()\n"
        "        await asyncio.sleep(2)\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    process = gateway_cli("-b", "127.0.0.1:0", "--limit-concurrency", "1", "slow:app")
    port = process.wait_listening()
    with RawClient(port) as slow, RawClient(port) as client:
        slow.send(request("GET", "/slow"))
        assert wait_until((tmp_path / "entered").exists)
        client.send(request("GET", "/"))
        assert_unavailable_and_closed(client)
        assert slow.read_response().status == 200
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "WARNING --limit-concurrency (1) app calls running: 503" in output
