"""On Python 3.12+, an HTTP/2 request that arrives whole and whose app never waits is answered
from inside the read that brought it, as over HTTP/1.1 (tests/test_eager_start.py): its Task is
started eagerly. A request whose body is still coming, and an app that waits, are served as
before."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from support import wait_until

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks came with Python 3.12"),
]


def inside_read() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "data_received":
            return True
        frame = frame.f_back
    return False


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    eager = inside_read() and asyncio.current_task() is not None
    if scope["path"] == "/wait":
        await asyncio.sleep(0.1)
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"eager" if eager else b"task"})


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_whole_request_is_answered_from_the_read(serve, loop):
    with serve(app, loop=loop, lifespan="off") as server, \
            httpx.Client(http1=False, http2=True) as client:
        url = f"http://127.0.0.1:{server.port}"
        assert [client.get(f"{url}/{n}").text for n in range(3)] == ["eager"] * 3
        assert client.get(f"{url}/wait").text == "eager"  # started eagerly, then waited
        assert client.post(f"{url}/post", content=b"x" * 100).text == "task"
        # The POST's Task leaves the set in its done callback, a turn of the loop after the
        # response went out.
        assert wait_until(lambda: not server.server.state.app_tasks())
