"""The ASGI lifespan protocol: start-up before the first request, shut-down after the last.

With `--lifespan auto`, an app that does not speak lifespan (it raises, or returns, at the
startup message) is served anyway; with `on` that is an error; with `off` nothing is sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .loading import ASGIApp, Message, describe_exception
from .logs import error_logger


class LifespanFailure(Exception):
    """The app reported, or raised, a failure during lifespan start-up or shut-down."""


class Lifespan:
    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self._receive_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsupported = False
        self._failure: str | None = None
        self._phase = "startup"

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._receive_queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self._failure is not None:
            raise LifespanFailure(f"application start-up failed: {self._failure}")

    async def shutdown(self) -> None:
        if self._task is None or self._unsupported:
            return
        self._phase = "shutdown"
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        if self._failure is not None:
            raise LifespanFailure(f"application shut-down failed: {self._failure}")

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if self._phase == "startup" and not self._startup_done.is_set() and self.mode == "auto":
                self._unsupported = True
                error_logger.info(
                    "the app does not support the ASGI lifespan protocol (%s); serving without it",
                    describe_exception(exc),
                )
            elif isinstance(exc, asyncio.CancelledError):
                raise
            else:
                self._failure = self._failure or describe_exception(exc)
                error_logger.error("exception in lifespan %s", self._phase, exc_info=exc)
        else:
            if not self._startup_done.is_set():
                if self.mode == "on":
                    self._failure = "the app returned before completing lifespan start-up"
                else:
                    self._unsupported = True
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> Message:
        return await self._receive_queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._failure = message.get("message") or "the app reported lifespan.startup.failed"
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._failure = message.get("message") or "the app reported lifespan.shutdown.failed"
            self._shutdown_done.set()
        else:
            raise ValueError(f"unexpected lifespan message {kind!r} during {self._phase}")

