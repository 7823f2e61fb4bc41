"""Starlette and FastAPI WebSocket routes served over ws:// and wss://, with the `websockets`
client: echo, path and query parameters, subprotocols, closes and denials as those frameworks
produce them."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from support import captured_log, tls_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from ws_support import ws_connect, ws_url

pytestmark = pytest.mark.timeout(30)


def starlette_app(disconnects: list, done: threading.Event) -> Starlette:
    async def echo(websocket: StarletteWebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol="echo.v1" if "echo.v1" in offered else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    disconnects.append(message["code"])
                    return
                if message.get("text") is not None:
                    await websocket.send_text(message["text"].upper())
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        finally:
            done.set()

    async def private(websocket: StarletteWebSocket) -> None:
        if websocket.query_params.get("token") != "secret":
            await websocket.send_denial_response(PlainTextResponse("bad token", status_code=401))
            return
        await websocket.accept()
        await websocket.send_json({"user": "alice"})
        await websocket.close(code=4000, reason="that is all")

    async def refuse(websocket: StarletteWebSocket) -> None:
        await websocket.close()

    return Starlette(routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/private", private),
        WebSocketRoute("/refuse", refuse),
    ])


def test_starlette_echo(serve, http):
    disconnects: list = []
    done = threading.Event()
    with serve(starlette_app(disconnects, done), http=http) as server:
        with ws_connect(ws_url(server, "/echo"), subprotocols=["echo.v1"]) as ws:
            assert ws.subprotocol == "echo.v1"
            ws.send("hello starlette")
            assert ws.recv(timeout=5) == "HELLO STARLETTE"
            ws.send(b"\x01\x02\x03")
            assert ws.recv(timeout=5) == b"\x03\x02\x01"
            ws.close(code=1000)
        assert done.wait(5)
    assert disconnects == [1000]


def test_starlette_over_tls(serve, certs):
    with serve(starlette_app([], threading.Event()), **tls_settings(certs)) as server:
        url = ws_url(server, "/echo", scheme="wss", host="localhost")
        with ws_connect(url, ssl=certs.client_context()) as ws:
            ws.send("secure")
            assert ws.recv(timeout=5) == "SECURE"


def test_starlette_denial_close_and_unknown_route(serve):
    with captured_log() as log, serve(starlette_app([], threading.Event())) as server:
        with pytest.raises(InvalidStatus) as info:
            ws_connect(ws_url(server, "/private?token=wrong"))
        assert info.value.response.status_code == 401
        assert info.value.response.body == b"bad token"
        with ws_connect(ws_url(server, "/private?token=secret")) as ws:
            assert ws.recv(timeout=5) == '{"user":"alice"}'
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
            assert (ws.close_code, ws.close_reason) == (4000, "that is all")
        for path in ("/refuse", "/no-such-route"):
            with pytest.raises(InvalidStatus) as info:
                ws_connect(ws_url(server, path))
            assert info.value.response.status_code == 403, path
    assert log.tracebacks() == []


def fastapi_app(events: list) -> FastAPI:
    app = FastAPI()

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str, nick: str = "anon") -> None:
        await websocket.accept()
        await websocket.send_text(f"{nick} joined {room}")
        try:
            while True:
                data = await websocket.receive_json()
                await websocket.send_json({"room": room, "echo": data})
        except WebSocketDisconnect as exc:
            events.append(("left", exc.code))

    @app.websocket("/broken")
    async def broken(websocket: WebSocket) -> None:
        await websocket.accept()
        raise RuntimeError("fastapi handler failed")

    return app


def test_fastapi_echo(serve, http):
    events: list = []
    with serve(fastapi_app(events), http=http) as server:
        with ws_connect(ws_url(server, "/rooms/lobby?nick=bob")) as ws:
            assert ws.recv(timeout=5) == "bob joined lobby"
            ws.send('{"n": 1, "text": "hi ✓"}')
            assert ws.recv(timeout=5) == '{"room":"lobby","echo":{"n":1,"text":"hi ✓"}}'
            ws.close(code=4100, reason="bye")
        assert ws.close_code == 4100
    assert events == [("left", 4100)]


def test_fastapi_handler_error_after_accept_is_1011(serve):
    with captured_log() as log, serve(fastapi_app([])) as server, ws_connect(ws_url(server, "/broken")) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1011
    [record] = log.tracebacks()
    assert "fastapi handler failed" in str(record.exc_info[1])
