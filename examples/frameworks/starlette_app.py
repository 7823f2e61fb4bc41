"""Starlette: `gateway --dev-tls examples.frameworks.starlette_app:app`

/ answers JSON with what the lifespan set up, /stream sends five lines one by one, /ws echoes
(wss:// over HTTP/1.1 or HTTP/2). The lifespan prints a line when the server stops."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    yield {"started": "starlette"}
    print("starlette app: shut down", flush=True)


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"framework": "starlette", "started": request.state.started})


async def stream(request: Request) -> StreamingResponse:
    async def lines():
        for number in range(5):
            yield f"chunk {number}\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(lines(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[Route("/", index), Route("/stream", stream), WebSocketRoute("/ws", echo)],
    lifespan=lifespan,
)
