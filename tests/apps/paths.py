"""Answers every request with its own path, so a test can tell responses apart and check their
order; served by `gateway` processes in the tests (`--app-dir tests/apps paths:app`)."""

from __future__ import annotations


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = scope["raw_path"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
