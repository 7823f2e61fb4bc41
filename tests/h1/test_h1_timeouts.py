"""--header-timeout, --body-timeout and --response-timeout over HTTP/1.1 (issue 8, point 5):
a client that trickles its head or stalls its body gets 408, an app that does not answer in
time gets 504 (or a cut-off response) and is cancelled; a well-behaved client beside them is
served all along. The server checks its timeouts once a second, so each fires between its
setting and a second or so later."""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time

import pytest
from h1_client import RawClient, request
from support import ended_within, other_client, read_body, tls_settings, wait_until

pytestmark = pytest.mark.timeout(30)


def test_a_head_trickled_in_gets_408_after_the_header_timeout(serve, http, hello_app):
    with serve(hello_app, http=http, header_timeout=1, keep_alive_timeout=10) as server, \
            RawClient(server.port) as client:
        started = time.monotonic()
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        # Every byte keeps the connection from looking idle; only the head timeout ends it.
        while not select.select([client.sock], [], [], 0.3)[0] and time.monotonic() - started < 5:
            assert_served(server)
            client.send(b"X-Slow: 1\r\n")
        response = client.read_response()
        elapsed = time.monotonic() - started
    assert response.status == 408 and response.get(b"connection") == b"close"
    assert 1 <= elapsed < 3.5


def test_the_header_timeout_covers_tls_too(serve, certs, hello_app):
    with serve(hello_app, **tls_settings(certs, header_timeout=1)) as server:
        context = ssl.create_default_context(cafile=certs.ca_file)
        sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                   server_hostname="localhost")
        with RawClient(sock=sock) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
            started = time.monotonic()
            response = client.read_response()
            assert response.status == 408
            assert time.monotonic() - started < 3.5


def test_a_body_that_stops_coming_gets_408_and_the_app_a_disconnect(serve, http):
    seen = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            await read_body(receive)
        except ConnectionError:
            seen.append("disconnect")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app, http=http, body_timeout=1) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "10")]) + b"abc")
        started = time.monotonic()
        response = client.read_response()
        elapsed = time.monotonic() - started
        assert_served(server)
    assert response.status == 408 and response.get(b"connection") == b"close"
    assert 1 <= elapsed < 3.5
    assert wait_until(lambda: seen == ["disconnect"])


def test_a_body_that_keeps_coming_is_not_timed_out(serve, http):
    """The body timeout is idle time: a slow body that keeps moving is read to its end."""

    async def app(scope, receive, send):
        if scope["type"] == "http":
            body = await read_body(receive)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"%d" % len(body)})

    with serve(app, http=http, body_timeout=1) as server, RawClient(server.port) as client:
        client.send(request("POST", "/", [("Content-Length", "5")]))
        for _ in range(5):
            time.sleep(0.5)
            client.send(b"x")
        response = client.read_response()
    assert response.status == 200 and response.body == b"5"


def test_an_app_that_never_answers_gets_504_and_is_cancelled(serve, http):
    cancelled = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(scope["path"])
            raise

    with serve(app, http=http, response_timeout=1) as server, RawClient(server.port) as client:
        client.send(request("GET", "/stuck"))
        started = time.monotonic()
        response = client.read_response()
        elapsed = time.monotonic() - started
    assert response.status == 504 and response.get(b"connection") == b"close"
    assert 1 <= elapsed < 3.5
    assert wait_until(lambda: cancelled == ["/stuck"])


def test_a_response_not_finished_in_time_is_cut_off(serve, http):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"100")]})
            await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
            await asyncio.sleep(30)

    with serve(app, http=http, response_timeout=1) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        started = time.monotonic()
        data = client.read_until_close(timeout=5)
        assert time.monotonic() - started < 3.5
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"x" * 10)


def test_without_a_response_timeout_a_slow_app_is_waited_for(serve, http):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await asyncio.sleep(2.2)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        assert client.read_response().body == b"late"


def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout(serve, http):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})

    with serve(app, http=http, send_timeout=1) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        time.sleep(3.5)  # reading nothing: the server fills the socket and its buffer, and waits
        assert ended_within(client.sock, 3)
    with serve(app, http=http, send_timeout=0) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        time.sleep(3.5)
        assert not ended_within(client.sock, 1)  # 0: never dropped


def assert_served(server) -> None:
    """A well-behaved client from another address is answered meanwhile."""
    with other_client(timeout=5) as other:
        assert other.get(server.url + "/").status_code == 200


@pytest.fixture
def hello_app():
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hello"})

    return app


def test_an_app_sending_in_a_loop_to_a_client_that_reset_stops(serve, http):
    """A reset makes the loop's transport drop writes without ever pausing; the app's `send`
    must still fail, or an app sending in a loop would hold the event loop for good."""
    import socket
    import struct

    sent = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            if scope["path"] != "/loop":
                await send({"type": "http.response.body", "body": b"hello"})
                return
            try:
                while True:
                    await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            finally:
                sent.append("ended")

    with serve(app, http=http, send_timeout=0) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(request("GET", "/loop"))
        sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset while the server writes
        assert wait_until(lambda: sent == ["ended"], timeout=5)
        assert_served(server)
