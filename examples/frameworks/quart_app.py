"""Quart: `gateway --dev-tls examples.frameworks.quart_app:app`

/ answers JSON with what `before_serving` set up, /stream sends five lines one by one, /ws
echoes (wss:// over HTTP/1.1 or HTTP/2). `after_serving` prints a line when the server stops."""

from __future__ import annotations

import asyncio

from quart import Quart, websocket

app = Quart(__name__)


@app.before_serving
async def startup() -> None:
    app.config["STARTED"] = "quart"


@app.after_serving
async def shutdown() -> None:
    print("quart app: shut down", flush=True)


@app.get("/")
async def index() -> dict[str, str]:
    return {"framework": "quart", "started": app.config["STARTED"]}


@app.get("/stream")
async def stream():
    async def lines():
        for number in range(5):
            yield f"chunk {number}\n".encode()
            await asyncio.sleep(0.01)

    return lines(), 200, {"content-type": "text/plain"}


@app.websocket("/ws")
async def echo() -> None:
    while True:
        await websocket.send(await websocket.receive())
