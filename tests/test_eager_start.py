"""On Python 3.12+, an HTTP/1.1 request whose app never waits is answered from inside the read
that brought it: the app call's Task is started eagerly (state.py `new_task`), so nothing is
scheduled and the loop takes no turn. The app still runs in a Task (`current_task()`), on
uvloop and on asyncio's own loop; an app that waits is tracked and waited for as before, a
pipeline behind a waiting request does not nest its calls, requests with a body and WebSocket
handshakes are not started eagerly, and a task factory the app installs is used. Before 3.12
the same app runs in a Task the loop starts after the read."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest
from h1_client import RawClient, request
from support import ENGINES, wait_until

pytestmark = pytest.mark.timeout(60)
eager = pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks came with Python 3.12")
LOOPS = ("asyncio", "uvloop")


def callers() -> list[str]:
    """Names of the functions the caller of this was called from, innermost first."""
    frame = sys._getframe(2)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


class Recorder:
    """Answers every request with its path; notes for each whether it ran from inside the
    connection's `data_received`, in which Task, and how deep the stack was."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, bool, int]] = []
        self.lock = threading.Lock()
        self.waiting: asyncio.Event | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        names = callers()
        with self.lock:
            self.calls.append((scope["path"], "data_received" in names,
                               asyncio.current_task() is not None, len(names)))
        if scope["path"] == "/wait":
            await asyncio.sleep(0.2)
        body = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode() + body["body"]})


@eager
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("http", ENGINES)
def test_a_request_that_never_waits_is_answered_from_the_read(serve, loop, http):
    app = Recorder()
    with serve(app, loop=loop, http=http, lifespan="off") as server, RawClient(server.port) as client:
        for path in ("/one", "/two"):
            client.send(request("GET", path))
            assert client.read_response().body == path.encode()
        assert wait_until(lambda: not server.server.state.app_tasks())
    assert [call[:3] for call in app.calls] == [("/one", True, True), ("/two", True, True)]


@eager
@pytest.mark.parametrize("loop", LOOPS)
def test_under_limit_concurrency_too(serve, loop):
    app = Recorder()
    with serve(app, loop=loop, limit_concurrency=4, lifespan="off") as server, \
            RawClient(server.port) as client:
        client.send(request("GET", "/limited"))
        assert client.read_response().body == b"/limited"
        assert wait_until(lambda: server.server.state.in_flight == 0)
    assert [call[:3] for call in app.calls] == [("/limited", True, True)]


@eager
@pytest.mark.parametrize("http", ENGINES)
def test_a_request_that_waits_is_tracked_until_it_ends(serve, http):
    app = Recorder()
    with serve(app, http=http, lifespan="off") as server, RawClient(server.port) as client:
        client.send(request("GET", "/wait"))
        assert wait_until(lambda: len(server.server.state.app_tasks()) == 1)
        assert client.read_response().body == b"/wait"
        assert wait_until(lambda: not server.server.state.app_tasks())


@eager
@pytest.mark.parametrize("http", ENGINES)
def test_a_pipeline_behind_a_waiting_request_does_not_nest(serve, http):
    """The calls after /wait start from inside its last `send`: each gets a Task of its own
    instead of running one level deeper than the one before."""
    app = Recorder()
    count = 300
    pipeline = request("GET", "/wait") + b"".join(request("GET", f"/p{n}") for n in range(count))
    with serve(app, http=http, lifespan="off") as server, RawClient(server.port) as client:
        client.send(pipeline)
        bodies = [client.read_response().body for _ in range(count + 1)]
    assert bodies == [b"/wait"] + [f"/p{n}".encode() for n in range(count)]
    depths = [depth for _, _, _, depth in app.calls]
    assert max(depths) < min(depths) + 40, depths


@eager
@pytest.mark.parametrize("http", ENGINES)
def test_requests_with_a_body_and_websocket_handshakes_are_not_eager(serve, http):
    app = Recorder()
    with serve(app, http=http, lifespan="off") as server, RawClient(server.port) as client:
        client.send(request("POST", "/post", body=b"+body"))
        assert client.read_response().body == b"/post+body"
    assert [call[:3] for call in app.calls] == [("/post", False, True)]


@eager
def test_a_task_factory_the_app_installs_is_used(serve):
    made = []

    def factory(loop, coro, **kwargs):
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    recorder = Recorder()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            asyncio.get_running_loop().set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await recorder(scope, receive, send)

    with serve(app, lifespan="on") as server, RawClient(server.port) as client:
        client.send(request("GET", "/factory"))
        assert client.read_response().body == b"/factory"
    assert [call[:3] for call in recorder.calls] == [("/factory", False, True)]
    assert any(getattr(coro, "__qualname__", "") == "Exchange.run" for coro in made)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ starts the Task eagerly")
@pytest.mark.parametrize("http", ENGINES)
def test_before_3_12_the_app_runs_in_a_task_started_after_the_read(serve, http):
    app = Recorder()
    with serve(app, http=http, lifespan="off") as server, RawClient(server.port) as client:
        client.send(request("GET", "/one"))
        assert client.read_response().body == b"/one"
        assert wait_until(lambda: not server.server.state.app_tasks())
    assert [call[:3] for call in app.calls] == [("/one", False, True)]
