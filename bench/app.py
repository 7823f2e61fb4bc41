"""The trivial ASGI 3 app every server in the benchmark serves.

It is deliberately as cheap as possible, so that the numbers measure the
server's own overhead (parsing, framing, scheduling, TLS) and not the app.
WebSocket connections (any path) are accepted and every message is echoed back
as it came, text as text and bytes as bytes, until the client disconnects; that
is the ``ws`` scenario's app.

It speaks the lifespan protocol because some servers (gunicorn's asgi worker
with ``--asgi-lifespan on``, hypercorn) insist on or probe for it, and an app
that rejects lifespan makes them log noise or refuse to start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b"Hello, world!"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode("ascii")),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with 200 ``Hello, world!``; echo WebSockets; acknowledge lifespan."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    elif scope["type"] == "websocket":
        await _echo(receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _echo(receive: Receive, send: Send) -> None:
    """Accept, then send every message back until the client goes away.

    A receive event carries ``text`` or ``bytes``; servers differ in whether the
    other key is absent or None, so look for a text that is not None.
    """
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.disconnect":
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    """Complete startup and shutdown at once: there is nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
