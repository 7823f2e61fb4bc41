"""What a client and the error log see when an ASGI app misbehaves: exceptions, early returns,
malformed messages, and sends after the client has gone."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from support import ENGINES, LogRecords, captured_log, read_until_closed

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def error_log() -> Iterator[LogRecords]:
    """Everything logged on gateway.error, whatever an earlier test did to its handlers."""
    with captured_log("gateway.error") as handler:
        yield handler


def wait_until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def get_until_closed(port: int, target: bytes) -> bytes:
    """A raw GET of `target` on a new connection: everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % target)
        return read_until_closed(sock)


def start(status=200, headers=None):
    return {"type": "http.response.start", "status": status, "headers": headers or []}


def body(data=b"", more_body=False):
    return {"type": "http.response.body", "body": data, "more_body": more_body}


# -- exceptions -------------------------------------------------------------------------------


async def raise_before_start(scope, receive, send):
    if scope["type"] != "http":
        return
    raise RuntimeError("boom before start")


def test_exception_before_response_start_gives_500_and_one_traceback(serve, error_log):
    with serve(raise_before_start) as server:
        response = httpx.get(server.url + "/fail", timeout=5)
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("text/plain")
        assert "boom" not in response.text  # no internals leak to the client
        wait_until(error_log.tracebacks)
        # the server keeps serving
        assert httpx.get(server.url + "/again", timeout=5).status_code == 500
    tracebacks = error_log.tracebacks()
    assert len(tracebacks) == 2  # one per failed request
    record = tracebacks[0]
    assert record.levelno == logging.ERROR
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "boom before start" in str(record.exc_info[1])
    assert "/fail" in record.getMessage()
    assert len(error_log.errors()) == 2


async def raise_after_body_started(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(start(headers=[(b"content-type", b"text/plain")]))
    await send(body(b"partial", more_body=True))
    await asyncio.sleep(0.05)
    raise RuntimeError("boom while streaming")


def test_exception_while_streaming_closes_the_connection(serve, error_log):
    with serve(raise_after_body_started) as server:
        data = get_until_closed(server.port, b"/stream")
        with pytest.raises(httpx.RemoteProtocolError), \
                httpx.stream("GET", server.url + "/stream", timeout=5) as response:
            assert response.status_code == 200
            response.read()
        wait_until(lambda: len(error_log.tracebacks()) == 2)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"partial" in rest
    assert not rest.endswith(b"0\r\n\r\n")  # never told the body was complete
    assert "boom while streaming" in str(error_log.tracebacks()[0].exc_info[1])


async def raise_short_of_content_length(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(start(headers=[(b"content-length", b"100")]))
    await send(body(b"only ten b", more_body=True))
    raise RuntimeError("boom with content-length")


def test_exception_after_start_with_content_length_leaves_body_short(serve, error_log):
    with serve(raise_short_of_content_length) as server:
        data = get_until_closed(server.port, b"/")
        wait_until(error_log.tracebacks)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert rest == b"only ten b"


async def return_without_response(scope, receive, send):
    return None


def test_app_returning_without_response_gives_500_and_logs(serve, error_log):
    with serve(return_without_response) as server:
        response = httpx.get(server.url + "/nothing", timeout=5)
        wait_until(error_log.errors)
    assert response.status_code == 500
    (record,) = error_log.errors()
    assert "without" in record.getMessage() and "/nothing" in record.getMessage()


async def return_mid_stream(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(start())
    await send(body(b"first chunk", more_body=True))


def test_app_returning_before_finishing_the_body_closes_the_connection(serve, error_log):
    with serve(return_mid_stream) as server:
        data = get_until_closed(server.port, b"/half")
        with pytest.raises(httpx.RemoteProtocolError), \
                httpx.stream("GET", server.url + "/half", timeout=5) as response:
            response.read()
        wait_until(lambda: len(error_log.errors()) == 2)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"first chunk" in rest and not rest.endswith(b"0\r\n\r\n")
    assert "/half" in error_log.errors()[0].getMessage()


# -- malformed messages -----------------------------------------------------------------------

MALFORMED = {
    "status-as-str": ([start(status="200")], ["http.response.start", "status"]),
    "status-missing": ([{"type": "http.response.start"}], ["http.response.start", "status"]),
    "status-out-of-range": ([start(status=1000)], ["http.response.start", "status"]),
    "header-value-str": (
        [start(headers=[(b"content-type", "text/plain")]), body(b"x")],
        ["http.response.start", "headers"],
    ),
    "header-name-str": (
        [start(headers=[("content-type", b"text/plain")]), body(b"x")],
        ["http.response.start", "headers"],
    ),
    "header-not-a-pair": (
        [start(headers=[(b"x-lonely",)]), body(b"x")],
        ["http.response.start", "headers"],
    ),
    "header-value-with-newline": (
        [start(headers=[(b"x-evil", b"a\r\nset-cookie: stolen=1")]), body(b"x")],
        ["http.response.start", "headers"],
    ),
    "body-as-str": ([start(), {"type": "http.response.body", "body": "text"}],
                    ["http.response.body", "body"]),
    "body-before-start": ([body(b"early")], ["http.response.start", "http.response.body"]),
    "start-twice": ([start(), start()], ["http.response.body", "http.response.start"]),
    "unknown-type": ([{"type": "http.response.bogus"}], ["http.response.bogus"]),
    "no-type": ([{"status": 200}], ["type"]),
    "not-a-dict": (["http.response.start"], ["type"]),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_message_raises_error_naming_message_and_field(serve, error_log, engine, case):
    messages, words = MALFORMED[case]
    raised: list[Exception] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        for message in messages:
            try:
                await send(message)
            except Exception as exc:
                raised.append(exc)
                raise

    with serve(app, http=engine) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        response = client.get("/malformed")
        wait_until(error_log.tracebacks)
        after = client.get("/malformed")  # and the server goes on serving
    assert response.status_code == 500
    assert "set-cookie" not in response.headers and "x-evil" not in response.headers
    assert after.status_code == 500
    assert len(raised) == 2
    text = str(raised[0])
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    assert not isinstance(raised[0], OSError)
    logged = error_log.tracebacks()[0]
    assert logged.exc_info[1] is raised[0]


def test_body_after_the_response_is_complete_raises(serve, error_log):
    raised: list[Exception] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send(start())
        await send(body(b"done"))
        try:
            await send(body(b"too late"))
        except Exception as exc:
            raised.append(exc)

    with serve(app) as server:
        response = httpx.get(server.url + "/", timeout=5)
        wait_until(lambda: raised)
    assert response.status_code == 200
    assert response.text == "done"
    assert "http.response.body" in str(raised[0])
    assert not isinstance(raised[0], OSError)


# -- disconnects ------------------------------------------------------------------------------


class Watched:
    """An app for `http` scopes that runs `handler(receive, send, outcome)`; whatever the handler
    raises is appended to `outcome` (and raised on), and `done` is set when it has finished."""

    def __init__(self, handler: Callable[..., Awaitable[None]]) -> None:
        self.handler = handler
        self.outcome: list[object] = []
        self.done = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            await self.handler(receive, send, self.outcome)
        except BaseException as exc:
            self.outcome.append(exc)
            raise
        finally:
            self.done.set()


def test_send_after_client_disconnect_raises_oserror(serve, error_log):
    async def handler(receive, send, outcome):
        assert (await receive())["type"] == "http.request"
        message = await asyncio.wait_for(receive(), 5)
        outcome.append(message["type"])
        await send(start())
        outcome.append("send returned")

    app = Watched(handler)
    with serve(app) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)
        assert app.done.wait(5)
        time.sleep(0.1)
    assert app.outcome[0] == "http.disconnect"
    assert isinstance(app.outcome[1], OSError), app.outcome
    # the client's own doing: no traceback, no error line
    assert error_log.errors() == []


def test_streaming_to_a_client_that_leaves_gets_oserror(serve, error_log):
    async def handler(receive, send, outcome):
        await send(start())
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            await send(body(b"x" * 65536, more_body=True))
            await asyncio.sleep(0)
        outcome.append("never stopped")

    app = Watched(handler)
    with serve(app) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /firehose HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
        assert app.done.wait(8)
    assert isinstance(app.outcome[0], OSError), app.outcome
    assert error_log.errors() == []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("read_body_first", [True, False], ids=["body-read", "body-unread"])
def test_receive_after_the_response_returns_disconnect(serve, read_body_first, engine):
    """ASGI spec, http.disconnect: 'Sent to the application if receive is called after a
    response has been sent', whether or not the app read the request body first."""
    seen: list[object] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if read_body_first:
            seen.append((await receive())["type"])
        await send(start())
        await send(body(b"answered"))
        try:
            message = await asyncio.wait_for(receive(), 2)
            seen.append(message["type"])
        except asyncio.TimeoutError:
            seen.append("receive blocked")

    with serve(app, http=engine) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        # head and body in one write, so the body is there before the app runs
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nrequest body")
        response = b""
        while not response.endswith(b"answered"):
            chunk = sock.recv(65536)
            assert chunk, response
            response += chunk
        wait_until(lambda: len(seen) == (2 if read_body_first else 1))
    assert seen[-1] == "http.disconnect"
