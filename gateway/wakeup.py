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

    async def wait(self) -> None:
        future = self._future
        if future is None or future.done():  # done: a waiter that was cancelled
            future = self._future = asyncio.get_running_loop().create_future()
        await future

    def wake(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)
