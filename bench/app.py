"""The trivial ASGI 3 app every server in the benchmark serves.

It is deliberately as cheap as possible, so that the numbers measure the
server's own overhead (parsing, framing, scheduling, TLS) and not the app.
WebSocket connections (any path) are accepted and every message is echoed back
as it came, text as text and bytes as bytes, until the client disconnects; that
is the ``ws`` scenarios' app.

HTTP paths, for the transfer rows:

- ``/download?size=N``: N bytes (default 1 MiB) in one body message; the body is
  built once per size, so the row measures the server moving bytes, not the app
  making them.
- ``/upload``: reads the whole request body and answers 200 with its length, or
  400 if the length differs from ``content-length`` (wrk counts that as an error).
- ``/static``: the file named by ``BENCH_STATIC_FILE``, by path with
  ``http.response.pathsend`` where the server advertises that extension in
  ``scope["extensions"]``, otherwise read and sent as the body, as a framework's
  file response would. ``x-bench-static`` says which, for the benchmark's check.
- anything else: 200 ``Hello, world!``.

It speaks the lifespan protocol because some servers (gunicorn's asgi worker
with ``--asgi-lifespan on``, hypercorn) insist on or probe for it, and an app
that rejects lifespan makes them log noise or refuse to start.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b"Hello, world!"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode("ascii")),
]
DOWNLOAD_SIZE = 1 << 20
PATHSEND = "http.response.pathsend"

_downloads: dict[int, bytes] = {}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer HTTP by path (see above); echo WebSockets; acknowledge lifespan."""
    if scope["type"] == "http":
        path = scope["path"]
        if path == "/download":
            await _download(scope, send)
        elif path == "/upload":
            await _upload(scope, receive, send)
        elif path == "/static":
            await _static(scope, send)
        else:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": BODY})
    elif scope["type"] == "websocket":
        await _echo(receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _download(scope: Scope, send: Send) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    size = int(query.get("size", [DOWNLOAD_SIZE])[0])
    body = _downloads.get(size)
    if body is None:
        body = _downloads[size] = bytes(size)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(size).encode("ascii")),
    ]})
    await send({"type": "http.response.body", "body": body})


async def _upload(scope: Scope, receive: Receive, send: Send) -> None:
    """Read every chunk; only the count is kept, as an app storing a stream elsewhere would."""
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    declared = dict(scope["headers"]).get(b"content-length")
    status = 200 if declared is None or int(declared) == received else 400
    answer = str(received).encode("ascii")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode("ascii")),
    ]})
    await send({"type": "http.response.body", "body": answer})


async def _static(scope: Scope, send: Send) -> None:
    path = os.environ["BENCH_STATIC_FILE"]
    by_path = PATHSEND in (scope.get("extensions") or {})
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(os.stat(path).st_size).encode("ascii")),
        (b"x-bench-static", b"pathsend" if by_path else b"body"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if by_path:
        await send({"type": PATHSEND, "path": path})
    else:
        with open(path, "rb") as file:
            await send({"type": "http.response.body", "body": file.read()})


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
