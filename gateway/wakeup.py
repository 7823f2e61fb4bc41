"""One coroutine waiting until a protocol callback says it may go on.

Senders wait while the transport's buffer is full, a WebSocket app's `receive` while no
message has come; a callback (`resume_writing`, a frame arriving, the connection lost) wakes
them. The future is made only when someone actually waits.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """`loop`: the caller's connection's, known to it; asking asyncio for the running
        loop costs a getpid() system call before Python 3.12."""
        future = self._future
        if future is None or future.done():  # done: a waiter that was cancelled
            future = self._future = loop.create_future()
        await future

    def wake(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)
