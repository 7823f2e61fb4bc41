"""FastAPI: `gateway --dev-tls examples.frameworks.fastapi_app:app`

The Starlette example's routes (/, /stream, /ws) plus POST /reports, which answers at once and
writes the report afterwards in a background task; GET /reports lists the ones written."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import BackgroundTasks, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

REPORT_SECONDS = 0.5
written: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    yield {"started": "fastapi"}
    print("fastapi app: shut down", flush=True)


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, str]:
    return {"framework": "fastapi", "started": request.state.started}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def lines():
        for number in range(5):
            yield f"chunk {number}\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(lines(), media_type="text/plain")


async def write_report(name: str) -> None:
    await asyncio.sleep(REPORT_SECONDS)  # slow work the client should not wait for
    written.append(name)


@app.post("/reports", status_code=202)
async def order_report(name: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(write_report, name)
    return {"queued": name}


@app.get("/reports")
async def reports() -> list[str]:
    return written


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
