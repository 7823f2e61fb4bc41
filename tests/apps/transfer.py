"""A large-transfer app served by a `gateway` process in the tests, so that the server's own
memory can be read from /proc: `GET /download?size=N` sends N bytes of a fixed pattern in 1 MiB
sends, `POST /upload` answers with the size and SHA-256 of what it read."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs

CHUNK = 1024 * 1024


def pattern(size: int) -> bytes:
    block = hashlib.sha256(b"gateway").digest() * 2048  # 64 KiB, not periodic at 256 bytes
    return (block * (size // len(block) + 1))[:size]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        size = int(parse_qs(scope["query_string"].decode())["size"][0])
        block = pattern(CHUNK)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode())]})
        for sent in range(0, size, CHUNK):
            await send({"type": "http.response.body", "body": block[:size - sent],
                        "more_body": sent + CHUNK < size})
        return
    digest = hashlib.sha256()
    total = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        digest.update(message["body"])
        total += len(message["body"])
        more = message["more_body"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{total} {digest.hexdigest()}".encode()})
