"""The ASGI lifespan protocol: start-up before serving, shut-down after, failures, modes, state.

https://asgi.readthedocs.io/en/latest/specs/lifespan.html
"""

from __future__ import annotations

import asyncio
import logging
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from support import assert_port_free, free_port

import gateway
from gateway.lifespan import LifespanFailure

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """gateway.run() configures gateway's loggers; put them back for the other tests."""
    loggers = [logging.getLogger(name) for name in ("gateway.error", "gateway.access", "asyncio")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


async def respond(send, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class Journal:
    """A lifespan-speaking app that writes down every event, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.lifespan_scope: dict | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            self.lifespan_scope = scope
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["greeting"] = "hello"
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.events.append(f"request {scope['path']}")
        await respond(send, scope["state"]["greeting"].encode())


def test_startup_before_requests_and_shutdown_after(serve):
    app = Journal()
    with serve(app) as server:
        assert app.events == ["lifespan.startup"]
        response = httpx.get(server.url + "/one", timeout=5)
        assert response.text == "hello"
        assert app.events == ["lifespan.startup", "request /one"]
    assert app.events == ["lifespan.startup", "request /one", "lifespan.shutdown"]
    scope = app.lifespan_scope
    assert scope["type"] == "lifespan"
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["state"], dict)


def test_state_set_at_startup_is_in_every_request_scope(serve):
    connection_pool = object()
    seen = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["pool"] = connection_pool
                    scope["state"]["name"] = "db"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen.append(scope["state"])
        await respond(send)

    with serve(app) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        client.get("/")
        client.get("/")
    assert len(seen) == 2
    for state in seen:
        assert state["pool"] is connection_pool
        assert state["name"] == "db"
    assert seen[0] is not seen[1]


def failing_startup_app(port_to_probe: int | None = None, probes: list | None = None):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            if port_to_probe is not None and probes is not None:
                with socket.socket() as probe:
                    probes.append(probe.connect_ex(("127.0.0.1", port_to_probe)))
            await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
            return
        await respond(send)

    return app


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_makes_run_raise_and_leaves_nothing_bound(restore_logging, mode):
    port = free_port()
    probes: list[int] = []
    app = failing_startup_app(port, probes)
    with pytest.raises(LifespanFailure) as info:
        gateway.run(app, bind=[f"127.0.0.1:{port}"], lifespan=mode, loop="asyncio")
    assert "database unreachable" in str(info.value)
    # Bound before start-up ran (a client waits in the backlog), and closed once it failed.
    assert probes == [0]
    assert_port_free(port)


def test_startup_failed_with_the_serve_fixture(serve):
    with pytest.raises(LifespanFailure, match="database unreachable"), serve(failing_startup_app()):
        pass


FAILING_MODULE = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""

RAISING_MODULE = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("cannot open the database")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_cli_startup_failed_exits_3_with_one_line(tmp_path: Path):
    (tmp_path / "failing.py").write_text(textwrap.dedent(FAILING_MODULE))
    port = free_port()
    result = run_cli("-b", f"127.0.0.1:{port}", "failing:app", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    mentions = [line for line in output.splitlines() if "database unreachable" in line]
    assert len(mentions) == 1, output
    assert mentions[0].startswith("gateway:")
    assert output.strip().splitlines()[-1] == mentions[0]
    assert "listening on" not in output
    assert_port_free(port)


def test_cli_startup_exception_with_lifespan_on_exits_3(tmp_path: Path):
    (tmp_path / "raising.py").write_text(textwrap.dedent(RAISING_MODULE))
    port = free_port()
    result = run_cli("--lifespan", "on", "-b", f"127.0.0.1:{port}", "raising:app", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("gateway:") and "cannot open the database" in last
    assert "listening on" not in output
    assert_port_free(port)


async def no_lifespan_support(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']}")
    await respond(send, b"served")


async def returns_on_lifespan(scope, receive, send):
    if scope["type"] != "http":
        return
    await respond(send, b"served")


@pytest.mark.parametrize("app", [no_lifespan_support, returns_on_lifespan], ids=["raises", "returns"])
def test_auto_serves_an_app_without_lifespan_support(serve, caplog, app):
    caplog.set_level(logging.DEBUG)
    with serve(app, lifespan="auto") as server:
        response = httpx.get(server.url + "/", timeout=5)
    assert response.text == "served"
    # not an error, and no traceback: many apps simply don't speak lifespan
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r for r in caplog.records if r.exc_info] == []


def test_on_refuses_an_app_that_raises_at_lifespan(serve):
    with pytest.raises(LifespanFailure, match="unsupported scope type"), \
            serve(no_lifespan_support, lifespan="on"):
        pass


def test_on_refuses_an_app_that_returns_at_lifespan(serve):
    with pytest.raises(LifespanFailure), serve(returns_on_lifespan, lifespan="on"):
        pass


def test_off_never_calls_lifespan(serve):
    app = Journal()

    async def wrapper(scope, receive, send):
        if scope["type"] == "http":
            scope["state"]["greeting"] = "no lifespan"
        await app(scope, receive, send)

    with serve(wrapper, lifespan="off") as server:
        response = httpx.get(server.url + "/x", timeout=5)
    assert response.text == "no lifespan"
    assert app.lifespan_scope is None
    assert app.events == ["request /x"]


def test_shutdown_runs_after_requests_in_flight_finish(serve):
    app = Journal()
    entered = threading.Event()
    release = threading.Event()

    async def slow(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/slow":
            entered.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
        await app(scope, receive, send)

    result: list[httpx.Response] = []
    with serve(slow) as server:
        thread = threading.Thread(
            target=lambda: result.append(httpx.get(server.url + "/slow", timeout=10))
        )
        thread.start()
        assert entered.wait(5)
        server.stop()
        time.sleep(0.2)
        assert "lifespan.shutdown" not in app.events
        release.set()
        thread.join(10)
    assert result and result[0].status_code == 200
    assert app.events == ["lifespan.startup", "request /slow", "lifespan.shutdown"]
