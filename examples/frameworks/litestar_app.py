"""Litestar: `gateway --dev-tls examples.frameworks.litestar_app:app`

/ answers JSON with what the lifespan set up, /stream sends five lines one by one, /ws echoes
(wss:// over HTTP/1.1 or HTTP/2). The lifespan prints a line when the server stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar, Request, get, websocket_listener
from litestar.response import Stream


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    app.state.started = "litestar"
    yield
    print("litestar app: shut down", flush=True)


@get("/")
async def index(request: Request) -> dict[str, str]:
    return {"framework": "litestar", "started": request.app.state.started}


@get("/stream")
async def stream() -> Stream:
    async def lines() -> AsyncIterator[str]:
        for number in range(5):
            yield f"chunk {number}\n"
            await asyncio.sleep(0.01)

    return Stream(lines(), media_type="text/plain")


@websocket_listener("/ws")
async def echo(data: str) -> str:
    return data


app = Litestar([index, stream, echo], lifespan=[lifespan])
