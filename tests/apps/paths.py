"""Answers every request with its own path, so a test can tell responses apart and check their
order; served by `gateway` processes in the tests (`--app-dir tests/apps paths:app`).
`GET /calls/HOST` answers how many times the app was called from client address HOST."""

from __future__ import annotations

from collections import Counter

calls: Counter[str] = Counter()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    calls[scope["client"][0]] += 1
    body = scope["raw_path"]
    if body.startswith(b"/calls/"):
        body = b"%d" % calls[body[7:].decode()]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
