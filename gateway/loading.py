"""Turn "module:attr" into an ASGI 3 callable, from an ASGI 3, ASGI 2 or WSGI app.

Import failures are the most common first-run mistake, so each way of failing gets its own
message naming the module or attribute, instead of a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .config import ConfigError
from .wsgi import INSTALL_HINT, WSGIAdapter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AppLoadError(ConfigError):
    """The application named on the command line could not be loaded. `details` is the
    app's own traceback when its code raised, for the user to see their file and line."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


# Frames in these say nothing about the user's mistake.
_INTERNAL_DIRS = tuple(
    os.path.dirname(os.path.abspath(module.__file__ or "")) + os.sep
    for module in (sys.modules[__name__], importlib)
)


def user_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised by the user's code, without gateway's frames and
    importlib's, which say nothing about the mistake."""
    report = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    pending = [report]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if not _internal(frame.filename)]
        )
        pending += [chained for chained in (current.__cause__, current.__context__) if chained]
    return "".join(report.format())


def _internal(filename: str) -> bool:
    return filename.startswith(_INTERNAL_DIRS) or filename.startswith("<frozen importlib")


def import_from_string(spec: str, app_dir: str | None = None) -> Any:
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"invalid app {spec!r}: expected MODULE:ATTRIBUTE, for example main:app")
    if app_dir is not None:
        sys.path.insert(0, app_dir)
    elif "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppLoadError(
                f"could not import module {module_name!r}: no such module"
                + (f" in {app_dir!r}" if app_dir else " (use --app-dir to say where it is)")
            ) from None
        raise AppLoadError(f"error while importing {module_name!r}: {describe_exception(exc)}",
                           user_traceback(exc)) from exc
    except Exception as exc:
        raise AppLoadError(f"error while importing {module_name!r}: {describe_exception(exc)}",
                           user_traceback(exc)) from exc
    value: Any = module
    for attr in attrs.split("."):
        try:
            value = getattr(value, attr)
        except AttributeError:
            raise AppLoadError(
                f"module {module_name!r} has no attribute {attrs!r}"
            ) from None
    return value


def load_app(app: Any, factory: bool = False, app_dir: str | None = None,
             interface: str = "auto", wsgi_threads: int = 10) -> ASGIApp:
    """Load and normalise the app: import it, call the factory, wrap ASGI 2 and WSGI apps
    (ASGI 2 detected or as `interface` says; WSGI only when `interface` says, since its
    requests run on threads, which the user should choose knowingly)."""
    name = app if isinstance(app, str) else f"the app {app!r}"
    flag = "--interface wsgi" if isinstance(app, str) else "interface='wsgi'"
    if isinstance(app, str):
        app = import_from_string(app, app_dir)
    if factory:
        if not callable(app):
            raise AppLoadError("--factory was given but the app is not callable")
        try:
            app = app()
        except Exception as exc:
            raise AppLoadError(f"the app factory raised {describe_exception(exc)}",
                               user_traceback(exc)) from exc
    if not callable(app):
        raise AppLoadError(f"the app must be an ASGI callable, got {type(app).__name__}")
    if _looks_like_factory(app) and not factory:
        raise AppLoadError(
            "the app takes no arguments: if it is a factory that builds the app, add --factory"
        )
    if interface == "wsgi":
        if is_asgi3(app):
            raise AppLoadError(f"{name} is an ASGI app, not a WSGI one: serve it without {flag}")
        if _required_positional(app) not in (2, None):
            raise AppLoadError(f"{name} is not a WSGI app, which takes (environ, start_response):"
                               f" serve it without {flag}")
        return WSGIAdapter(app, wsgi_threads)
    if interface == "asgi3" or (interface == "auto" and is_asgi3(app)):
        return app
    if interface == "auto" and is_wsgi(app):
        raise AppLoadError(f"{name} looks like a WSGI app; serve it with {flag} ({INSTALL_HINT})")
    return ASGI2Adapter(app)


def is_asgi3(app: Any) -> bool:
    """ASGI 2 apps are classes or callables taking only a scope; ASGI 3 apps are coroutine
    functions (or objects whose `__call__` is one)."""
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if asyncio.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - we want the method itself
    return asyncio.iscoroutinefunction(call)


def is_wsgi(app: Any) -> bool:
    """A WSGI app (a Flask app, Django's WSGIHandler, a plain function) is a callable taking
    (environ, start_response), where an ASGI 2 app takes (scope) and an ASGI 3 one is async."""
    return not is_asgi3(app) and _required_positional(app) == 2


def _required_positional(app: Any) -> int | None:
    """How many positional arguments calling `app` needs; None when its signature cannot say."""
    try:
        params = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(param.kind is inspect.Parameter.VAR_POSITIONAL for param in params):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for param in params if param.kind in positional and param.default is param.empty)


def _looks_like_factory(app: Any) -> bool:
    try:
        params = inspect.signature(app).parameters
    except (TypeError, ValueError):
        return False
    return len(params) == 0


class ASGI2Adapter:
    """Presents an ASGI 2 (double-callable) app as ASGI 3."""

    def __init__(self, app: Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]]):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def describe_exception(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
