"""The trivial ASGI 3 app every server in the benchmark serves.

It is deliberately as cheap as possible, so that the numbers measure the
server's own overhead (parsing, framing, scheduling, TLS) and not the app.
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
    """Answer every HTTP request with 200 ``Hello, world!``; acknowledge lifespan."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Complete startup and shutdown at once: there is nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
