"""The floor: the least any ASGI server does per HTTP/1.1 request in Python, with no I/O.

httptools parses a keep-alive GET, a scope dict is built, the app runs in a Task (Python 3.11
has no eager start, and frameworks need `current_task()`), sends its two messages, and the head
is joined to the body. Beside the ceiling's system calls and loop turn (bench/ceiling.py), this
says how close a pure-Python server can come to the ceiling: what it adds per request on top of
this floor is its own (strict parsing, guards, timeouts, logging hooks).

Run: ``python bench/floor.py`` (pin it with ``taskset -c 1``); prints microseconds per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httptools
import uvloop

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
REQUESTS = 200_000


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


class Connection:
    """httptools callbacks straight to an app call, as a minimal server would make them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.written: list[bytes] = []
        self.response_headers: Any = ()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "server": None,
            "client": None, "scheme": "http", "method": "GET", "root_path": "", "path": "/",
            "raw_path": self.url, "query_string": b"", "headers": self.headers, "state": {},
            "extensions": {},
        }
        self.headers = []
        self.loop.create_task(app(scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.response_headers = message["headers"]
            return
        lines = [name + b": " + value + b"\r\n" for name, value in self.response_headers]
        self.written.append(b"".join([b"HTTP/1.1 200 OK\r\n", *lines, b"\r\n"]) + message["body"])


async def per_request(count: int) -> float:
    connection = Connection(asyncio.get_running_loop())
    start = time.perf_counter()
    for _ in range(count):
        connection.parser.feed_data(REQUEST)
        await asyncio.sleep(0)  # the loop turn in which the app's Task runs
        connection.written.clear()
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    for _ in range(3):
        print(f"{uvloop.run(per_request(REQUESTS)):.2f} us per request")


if __name__ == "__main__":
    main()
