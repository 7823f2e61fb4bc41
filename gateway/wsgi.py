"""Serve a WSGI app (Flask, Django's WSGIHandler) as ASGI, through a2wsgi's WSGIMiddleware.

a2wsgi runs each request's app call on a thread of a pool of `threads`, reads the request body
back from the event loop and hands the response to it through a queue of ten messages. This
module adds two things. A body without Content-Length (chunked, or HTTP/2 without the header)
can be read to its end. And a client who goes away does not cost a thread: a2wsgi stops draining
that queue when `send` raises (ASGI 2.4's OSError once the client is gone), and a thread putting
a streamed chunk into a full queue would then wait for ever, so that `threads` such clients would
stop the app. Here `send` goes quiet instead of raising, and the app's iterable is closed before
its next chunk, so a generator that would stream for ever ends too.

The threads are gateway's, not a2wsgi's ThreadPoolExecutor: the interpreter joins an executor's
threads before it exits, so a view still blocked when --graceful-timeout ends would keep the
process alive after "stopped", for as long as the view likes. gateway's threads are daemons,
abandoned at exit as the cancelled ASGI tasks are.

WebSocket requests are refused by a2wsgi with a close before any accept, which the connection
turns into a 403; lifespan events are answered by a2wsgi, so `--lifespan auto` just works.
"""

from __future__ import annotations

import contextvars
import functools
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import Executor, Future
from typing import Any

from .config import ConfigError

INSTALL_HINT = "pip install 'gateway[wsgi]'"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The current request's "the client is gone" flag, seen by the app's thread because a2wsgi runs
# the app in a copy of the context its ASGI call was made in.
_client_gone: contextvars.ContextVar[threading.Event] = contextvars.ContextVar("client_gone")


def require_a2wsgi() -> type:
    """a2wsgi's WSGIMiddleware; a ConfigError naming the extra to install when it is missing."""
    try:
        from a2wsgi import WSGIMiddleware
    except ImportError:
        raise ConfigError(f"--interface wsgi needs a2wsgi: {INSTALL_HINT}") from None
    return WSGIMiddleware


class WSGIAdapter:
    """Presents a WSGI app as ASGI 3; the app runs on at most `threads` threads at once."""

    def __init__(self, app: WSGIApp, threads: int) -> None:
        self.middleware = require_a2wsgi()(_closed_when_client_gone(app), workers=threads)
        self.middleware.executor = DaemonThreadPool(threads)

    async def __call__(self, scope: Message, receive: Callable[[], Awaitable[Message]],
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.middleware(scope, receive, send)
            return
        gone = threading.Event()
        token = _client_gone.set(gone)
        try:
            await self.middleware(scope, receive, _quiet_when_gone(send, gone))
        finally:
            gone.set()
            _client_gone.reset(token)


def _quiet_when_gone(send: Send, gone: threading.Event) -> Send:
    async def send_while_connected(message: Message) -> None:
        if gone.is_set():
            return
        try:
            await send(message)
        except OSError:
            gone.set()

    return send_while_connected


def _closed_when_client_gone(app: WSGIApp) -> WSGIApp:
    def app_until_client_gone(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        # a2wsgi's wsgi.input returns b"" at the end of the body, so a body without
        # Content-Length (chunked, or HTTP/2 without the header) can be read to its end; this
        # key (mod_wsgi's and gunicorn's) tells Werkzeug so, which would otherwise read nothing.
        environ["wsgi.input_terminated"] = True
        gone = _client_gone.get()
        iterable = app(environ, start_response)
        try:
            for chunk in iterable:
                if gone.is_set():
                    return
                yield chunk
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()

    return app_until_client_gone


class DaemonThreadPool(Executor):
    """Runs calls on at most `threads` daemon threads, started as the work needs them. Work is
    submitted from the event loop's thread only (`run_in_executor`), so counting the threads
    needs no lock."""

    def __init__(self, threads: int) -> None:
        self._limit = threads
        self._threads: list[threading.Thread] = []
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = \
            queue.SimpleQueue()
        self._idle = threading.Semaphore(0)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._work.put((future, functools.partial(fn, **kwargs) if kwargs else fn, args))
        if not self._idle.acquire(blocking=False) and len(self._threads) < self._limit:
            thread = threading.Thread(target=self._serve, name=f"wsgi-{len(self._threads) + 1}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _serve(self) -> None:
        while True:
            future, call, args = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            # An idle thread holds no request's objects (its environ, its response).
            del future, call, args
            self._idle.release()
