"""One server process: serves its listeners on one event loop, tracks connections, stops
gracefully.

Everything a user can get wrong (app path, certificates, addresses) is checked in `prepare`,
before the event loop runs: the app is loaded, the certificates read, and every listener bound
(or adopted from the supervisor) before lifespan start-up and before the first `listening on`
line. A failure leaves nothing bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

from . import __version__
from .admission import Door
from .choice import ProtocolChoice, h2c_switch
from .config import Config, ConfigError
from .guards import Ledger
from .h1.protocol import H1Protocol, engine_class
from .h2.protocol import H2Protocol
from .lifespan import Lifespan
from .loading import ASGIApp, load_app
from .logs import configure_embedded_logging, configure_logging, error_logger
from .redirect import RedirectToHTTPS
from .sockets import BindError, Listener, open_listeners
from .state import ServerState
from .tls.context import certificate_files, create_ssl_context
from .tls.scope import TLSInfo
from .tls.sslobject import ServerSSLContext

__all__ = ["BindError", "Server", "run", "serve", "serve_on_new_loop"]

ALPN_PROTOCOLS = ["h2", "http/1.1"]
_QUIET_ERRORS = (ssl.SSLError, ConnectionError, TimeoutError)
# During a graceful stop, how long a connection may sit idle: long enough for a client that
# just connected to send its request, short enough not to hold the stop up.
DRAIN_IDLE_TIMEOUT = 1.0


class SupervisorLink(Protocol):
    """What a worker tells its supervisor (worker.py): alive, ready, due for recycling."""

    def ready(self) -> None: ...

    def beat(self) -> None: ...

    def recycle(self) -> None: ...


class Server:
    """One server: its listeners, its connections and its lifecycle."""

    def __init__(self, config: Config, app: Any = None, listeners: list[Listener] | None = None,
                 link: SupervisorLink | None = None) -> None:
        self.config = config
        self.app_spec = app if app is not None else config.app
        self.app: ASGIApp | None = None
        self.ssl_context: ServerSSLContext | None = None
        self.tls_info: TLSInfo | None = None
        self.engine: type | None = None
        self.door: Door | None = None
        # Sockets a supervisor bound are adopted; otherwise `prepare` binds (and `serve` closes).
        self.bound: list[Listener] = listeners or []
        self.owns_listeners = listeners is None
        self.link = link
        self.max_requests: int | None = None
        self.state: ServerState | None = None
        # --metrics-bind: metrics.py, imported only then (a worker under a supervisor exports
        # to the supervisor's scrape; a single process serves the listener itself).
        self.metrics: Any = None
        self.started = asyncio.Event()
        self._stop: asyncio.Event | None = None
        self._force = False

    # -- before the loop -----------------------------------------------------------------

    def prepare(self) -> None:
        """Load the app and certificates, then bind. Raises ConfigError with a one-line
        message (AppLoadError with the app's own traceback), leaving nothing bound."""
        config = self.config
        config.validate()
        self.engine = engine_class(config.http)
        if self.app_spec is None:
            raise ConfigError("no app given: name one as MODULE:ATTRIBUTE, for example main:app")
        self.app = load_app(self.app_spec, config.factory, config.app_dir, config.interface,
                            config.wsgi_threads)
        material = certificate_files(config)
        if material is not None:
            certfile, keyfile = material
            self.ssl_context = create_ssl_context(config, certfile, keyfile, ALPN_PROTOCOLS)
            self.tls_info = TLSInfo(self.ssl_context, certfile)
        if config.max_requests is not None:
            self.max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
        if config.metrics_bind is not None and self.metrics is None:
            from .metrics import ServerMetrics

            self.metrics = ServerMetrics(config, serve=self.link is None)
        if self.owns_listeners and not self.bound:
            try:
                self.bound = open_listeners(config)
            except BaseException:
                if self.metrics is not None and self.metrics.sock is not None:
                    self.metrics.sock.close()
                raise

    def close_listeners(self) -> None:
        """Close the listeners this server bound, removing its Unix socket files."""
        if self.owns_listeners:
            for listener in self.bound:
                listener.close()

    # -- on the loop ---------------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until asked to stop (signal or `request_shutdown`)."""
        if self.app is None:
            self.prepare()
        assert self.app is not None
        try:
            await self._serve(self.app)
        finally:
            self.close_listeners()

    async def _serve(self, app: ASGIApp) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_exception_handler)
        self._stop = asyncio.Event()
        # Installed before lifespan start-up, so that a signal during it stops the server
        # gracefully instead of killing the process (a worker told to stop while booting).
        restore_signals = self._install_signal_handlers()
        if self.metrics is not None:  # /livez answers from here on, /readyz once started
            await self.metrics.start(self._ready)
        try:
            lifespan = Lifespan(app, self.config.lifespan)
            await lifespan.startup()
            self.state = ServerState(self.config, app, lifespan.state)
            self._listen()
            ticker = loop.create_task(self._tick())
            self.started.set()
            if self.link is not None:
                self.link.ready()
            try:
                await self._stop.wait()
            finally:
                try:
                    await self._shutdown()  # timeouts still apply while connections drain
                finally:
                    ticker.cancel()
                await lifespan.shutdown()
                error_logger.info("stopped")
        finally:
            restore_signals()
            if self.metrics is not None:
                if self.state is not None:
                    self.metrics.sync(self.state)  # the last counts, for the supervisor's scrape
                await self.metrics.close()

    def _ready(self) -> bool:
        """/readyz: serving, and no stop begun (so a balancer stops sending before the drain)."""
        return self.started.is_set() and self._stop is not None and not self._stop.is_set()

    def request_shutdown(self, force: bool = False) -> None:
        """Begin a graceful stop; a second request (or `force`) skips the grace period."""
        if self._stop is None:
            return
        if self._stop.is_set() or force:
            self._force = True  # also ends the graceful wait in _shutdown
        self._stop.set()

    def _listen(self) -> None:
        """Start accepting on every listener and say so."""
        assert self.state is not None and self.engine is not None
        state, engine, tls_info = self.state, self.engine, self.tls_info

        def make_h2() -> H2Protocol:
            return H2Protocol(state, tls_info)

        def make_plain_h2() -> H2Protocol:
            return H2Protocol(state, None)

        switch = h2c_switch(make_plain_h2) if self.config.h2c else None

        def make_h1() -> H1Protocol:
            return H1Protocol(state, engine, tls_info, None)

        def make_plain_h1() -> H1Protocol:
            return H1Protocol(state, engine, None, switch)

        def tls_entry(ledger: Ledger) -> ProtocolChoice:
            return ProtocolChoice(make_h1, make_h2, ledger)

        def plain_entry(ledger: Ledger) -> ProtocolChoice:
            return ProtocolChoice(make_plain_h1, make_plain_h2, ledger)

        redirect = RedirectToHTTPS(self.config.redirect_port or self._https_port())

        def make_redirect_h1() -> H1Protocol:
            return H1Protocol(state, engine, None, None, redirect)

        def redirect_entry(ledger: Ledger) -> ProtocolChoice:
            return ProtocolChoice(make_redirect_h1, make_plain_h2, ledger)

        self.door = door = Door(state)
        for listener in self.bound:
            proxy = self.config.proxy_protocol
            if listener.redirect:
                door.listen(listener.sock, redirect_entry, None, proxy)
                scheme, protocols = "http", "redirects to HTTPS"
            elif listener.secure and self.ssl_context is not None:
                door.listen(listener.sock, tls_entry, self.ssl_context, proxy)
                scheme, protocols = "https", "h2, http/1.1"
            else:
                door.listen(listener.sock, plain_entry, None, proxy)
                scheme = "http"
                protocols = "http/1.1, h2c" if self.config.h2c else "http/1.1"
            # Under a supervisor, which said where it listens, a worker only says it is ready.
            if proxy is not None:
                protocols += f"; PROXY protocol {proxy}"
            error_logger.log(logging.INFO if self.owns_listeners else logging.DEBUG,
                             "listening on %s (%s)", listener.describe(scheme), protocols)

    def _https_port(self) -> int | None:
        """The port redirects send clients to: the first TLS listener's on TCP."""
        for listener in self.bound:
            if listener.secure and not listener.redirect and listener.port:
                return listener.port
        return None

    async def _tick(self) -> None:
        """Once a second: the Date header, the door's timeouts, and those of every connection."""
        assert self.state is not None and self.door is not None
        loop = asyncio.get_running_loop()
        state, door = self.state, self.door
        while True:
            await asyncio.sleep(1.0)
            state.update_date()
            now = loop.time()
            door.check_timeouts(now)
            for connection in list(state.connections):
                connection.check_timeouts(now)
            state.guard.sweep(now)
            if self.metrics is not None:
                self.metrics.sync(state)
            if self.link is not None:
                self.link.beat()
                if (self.max_requests is not None and state.requests >= self.max_requests
                        and not state.shutting_down):
                    self.max_requests = None
                    error_logger.info("served %d requests (--max-requests): recycling", state.requests)
                    self.link.recycle()

    async def _shutdown(self) -> None:
        assert self.state is not None and self.door is not None
        state = self.state
        self.door.close()
        state.shutting_down = True
        # A connection accepted before the stop, with no request yet, is waited for this long
        # (connections.shutdown()); so is any connection gone quiet while the others drain.
        state.keep_alive_timeout = min(state.keep_alive_timeout, DRAIN_IDLE_TIMEOUT)
        if self.ssl_context is not None:
            self.ssl_context.lingering = False  # idle clients are closed without a wait
        for connection in list(state.connections):
            connection.shutdown()
        if (state.connections or state.app_tasks() or self.door.busy) and not self._force:
            timeout = self.config.graceful_timeout
            error_logger.info(
                "shutting down: waiting up to %gs for %d connection(s) to finish",
                timeout, len(state.connections),
            )
            try:
                await asyncio.wait_for(self._wait_drained(), timeout)
            except asyncio.TimeoutError:
                pass
        self.door.abort()
        tasks = state.app_tasks()
        if state.connections or tasks:
            error_logger.warning(
                "graceful timeout: closing %d connection(s) and cancelling %d app task(s)",
                len(state.connections), len(tasks),
            )
            for connection in list(state.connections):
                connection.force_close()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
        await self.door.wait_closed()

    async def _wait_drained(self) -> None:
        """Until every connection and app task is done, or a second signal says stop now."""
        assert self.state is not None
        assert self.door is not None
        while (self.state.connections or self.state.app_tasks() or self.door.busy) and not self._force:
            await asyncio.sleep(0.05)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

        def restore() -> None:
            for signum in installed:
                loop.remove_signal_handler(signum)

        return restore

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop is not None and self._stop.is_set():
            error_logger.info("%s again: stopping now", name)
        else:
            error_logger.info("%s received: stopping gracefully", name)
        self.request_shutdown()


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Failed TLS handshakes and dropped connections are the client's business: one debug
    line. Anything else is ours and keeps asyncio's full report."""
    exc = context.get("exception")
    if isinstance(exc, _QUIET_ERRORS):
        error_logger.debug("%s: %s", context.get("message", "connection error"), exc)
        return
    loop.default_exception_handler(context)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError("--loop uvloop needs uvloop: pip install 'gateway[standard]'") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(app: Any = None, config: Config | None = None, **settings: Any) -> None:
    """Serve `app` until SIGINT or SIGTERM, with `settings` as Config fields.

    Raises ConfigError (bad setting, app or certificate) before binding anything."""
    if config is None:
        config = Config(app=app, **settings)
    elif settings:
        config = config.replace(**settings)
    configure_logging(config.log_level_number, config.access_log, config.log_config, config.use_colors,
                      config.log_format)
    server = Server(config, app)
    factory = loop_factory(config.loop)
    server.prepare()
    _log_version()
    serve_on_new_loop(server, factory)


def _log_version() -> None:
    error_logger.info("gateway %s, Python %s, pid %d", __version__, sys.version.split()[0], os.getpid())


def serve_on_new_loop(server: Server, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """Run `server.serve()` on a new loop from `factory` until it returns."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(server.serve())
    else:
        loop = factory()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        finally:
            loop.close()


async def serve(app: Any, config: Config | None = None, **settings: Any) -> None:
    """Serve `app` on the running loop until cancelled or until a signal; for embedding. It logs
    what the CLI logs: to stderr, or through the program's own root handlers if it has some
    (`configure_embedded_logging`)."""
    if config is None:
        config = Config(app=app, **settings)
    elif settings:
        config = config.replace(**settings)
    configure_embedded_logging(config.log_level_number, config.access_log, config.log_config,
                               config.use_colors, config.log_format)
    server = Server(config, app)
    server.prepare()
    _log_version()
    await server.serve()

