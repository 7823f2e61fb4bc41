"""What every connection of one server shares.

The server builds one `ServerState`; each connection protocol gets it at construction, so the
per-request path reads settings from plain attributes instead of digging through Config.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from email.utils import formatdate
from typing import Any, Protocol

from .asgi import Exchange, scope_address, service_unavailable
from .config import Config
from .guards import AddressGuard
from .loading import ASGIApp
from .logs import AccessLog, error_logger
from .tally import HANDSHAKE_FAILURES, RequestTally
from .ws.session import WebSocketSession, WebSocketSettings


class Connection(Protocol):
    """What the server asks of every live connection, whatever its protocol."""

    def shutdown(self) -> None:
        """Stop taking requests: close now if idle, else after the response in flight."""

    def check_timeouts(self, now: float) -> None:
        """Once a second: close what has idled, or waited for the client, too long."""

    def force_close(self) -> None:
        """Drop the connection now; apps still running see a disconnect."""


class AppCall(Protocol):
    """One call of the app: an HTTP `Exchange` or a `WebSocketSession`."""

    async def run(self, app: ASGIApp) -> None: ...


class ServerState:
    """Settings flattened for the hot path, the live connections, the app tasks."""

    def __init__(self, config: Config, app: ASGIApp, lifespan_state: dict[str, Any]) -> None:
        self.config = config
        self.app = app
        self.lifespan_state = lifespan_state
        self.root_path = config.root_path
        # None when the access log is off: the exchanges then take no time and call nothing.
        self.log_access = AccessLog(config.access_log_format) if config.access_log else None
        self.max_head_size = config.max_head_size
        self.max_body_size = config.max_body_size
        self.keep_alive_timeout = config.keep_alive_timeout
        self.send_timeout = config.send_timeout
        self.header_timeout = config.header_timeout
        self.body_timeout = config.body_timeout
        self.response_timeout = config.response_timeout
        # Peers believed about who the client is (--forwarded-allow-ips), and whether their
        # forwarded headers are read (--proxy-headers).
        self.trusted_peers = config.trusted_peers
        self.proxy_headers = config.proxy_headers
        self.guard = AddressGuard(
            config.control_frame_budget, config.address_block_time, config.exempt_networks
        )
        self._default_fields(config)
        self.ws_settings = WebSocketSettings(
            config.ws_max_size, config.ws_ping_interval or None, config.ws_ping_timeout or None,
            config.ws_close_timeout, config.ws_per_message_deflate,
        )
        self.shutting_down = False
        self.connections: set[Connection] = set()
        # Counters (admission.py): connections closed at accept because --limit-connections
        # were open, and episodes of accepting paused for want of descriptors or memory.
        # Connections refused because their address is blocked are `guard.refused`.
        self.refused_over_limit = 0
        self.accept_pauses = 0
        self.loop = asyncio.get_running_loop()
        # App calls started (HTTP requests and WebSocket sessions), for --max-requests.
        self.requests = 0
        # App calls running (--limit-concurrency); counted only when the limit is set, in
        # which case `start_app` is the counting one and the unlimited path has no check.
        self.limit_concurrency = config.limit_concurrency
        self.in_flight = 0
        if self.limit_concurrency is not None:
            self.start_app = self._start_app_limited  # type: ignore[method-assign]
        self._metric_counters(config)
        self.update_date()
        self._server_addresses: dict[Any, tuple[str, int | None] | None] = {}

    def server_address(self, sockname: Any) -> tuple[str, int | None] | None:
        """The scope's `server` for a connection's own socket address: one tuple per address,
        shared by all its connections (idle ones are many). The addresses are few (those
        listened on), yet the memo is bounded."""
        address = self._server_addresses.get(sockname)
        if address is None:
            if len(self._server_addresses) >= 64:
                self._server_addresses.clear()
            address = self._server_addresses[sockname] = scope_address(sockname)
        return address

    def _metric_counters(self, config: Config) -> None:
        """Counters metrics.py reads once a second (--metrics-bind). Plain integers, counted
        whether metrics are on or not; `tally`, which costs more, only when they are on."""
        self.tally = RequestTally() if config.metrics_bind is not None else None
        # Bytes read and written by connections that have ended; live ones keep their own.
        self.bytes_in = 0
        self.bytes_out = 0
        self.tls_handshakes = 0
        self.tls_failures = dict.fromkeys(HANDSHAKE_FAILURES, 0)
        self.h2_streams = 0
        self.h2_resets = 0  # streams the client reset (RST_STREAM) before their response ended
        self.ws_counts = self.ws_settings.counts

    def connection_ended(self, bytes_in: int, bytes_out: int) -> None:
        """A connection's byte counts, once it is gone (or handed to another protocol)."""
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out

    def _default_fields(self, config: Config) -> None:
        """The fields every response carries unless the app sends its own server or date,
        built once. `--header server:X` and `--header date:X` take the place of gateway's own
        (uvicorn does so for server, and sends a second Date field for date, which RFC 9110
        section 5.3 forbids); other `--header` fields are sent beside the app's, even of the
        same name, as uvicorn does. Over HTTP/1.1 they are written as `head_lines` (server
        and --header) and `date_line`; over HTTP/2 as `head_fields` and `date_value`."""
        fields = config.header_fields
        if config.hsts is not None:  # browsers ignore it over plain HTTP (RFC 6797 section 8.1)
            fields = [*fields, (b"strict-transport-security", b"max-age=%d" % config.hsts)]
        given = dict(fields)
        server = given.get(b"server", b"gateway" if config.server_header else b"")
        self.fixed_date = given.get(b"date")
        self.header_fields = [(name, value) for name, value in fields if name not in (b"server", b"date")]
        self.header_lines = b"".join(name + b": " + value + b"\r\n" for name, value in self.header_fields)
        self.head_lines = (b"server: " + server + b"\r\n" if server else b"") + self.header_lines
        self.head_fields = ([(b"server", server)] if server else []) + self.header_fields
        self.date_value = self.fixed_date or b""
        self.date_line = b"date: " + self.fixed_date + b"\r\n" if self.fixed_date else b""

    def update_date(self) -> None:
        if self.config.date_header and self.fixed_date is None:
            self.date_value = formatdate(usegmt=True).encode("ascii")
            self.date_line = b"date: " + self.date_value + b"\r\n"

    def start_app(self, call: AppCall, app: ASGIApp | None = None,
                  eager: bool = False) -> asyncio.Task[None]:
        """Run the app (or `app`, a listener's own, such as the HTTPS redirect) for `call`.
        `eager`: the carrier is ready for the app to run, and even finish, before this
        returns: the request is whole and its connection's state allows a response now
        (`new_task`)."""
        self.requests += 1
        return new_task(self.loop, call.run(app or self.app), eager)

    def _start_app_limited(self, call: AppCall, app: ASGIApp | None = None,
                           eager: bool = False) -> asyncio.Task[None]:
        """`start_app` under --limit-concurrency."""
        self.requests += 1
        return new_task(self.loop, self._run_limited(call, app or self.app), eager)

    def app_tasks(self) -> list[asyncio.Task[None]]:
        """The app calls still running, which a graceful stop waits for, then cancels: found
        among the loop's tasks by their coroutine, so that a request pays nothing to be
        tracked (a set of tasks kept by a done callback cost 0.8 us of a request's 7.5)."""
        return [task for task in asyncio.all_tasks(self.loop)
                if getattr(task.get_coro(), "cr_code", None) in APP_CALL_CODE]

    async def _run_limited(self, call: AppCall, app: ASGIApp) -> None:
        """The count is taken when the call starts running and given back the moment the app
        returns, so that a pipelined request started from inside the previous response's last
        `send`, or a request read just after a response, does not count an app that is done.
        Past the limit the call gets a 503 instead of the app, and is not counted."""
        if self.in_flight >= self.limit_concurrency:  # type: ignore[operator]
            error_logger.warning("--limit-concurrency (%d) app calls running: 503", self.limit_concurrency)
            await call.run(service_unavailable)
            return
        self.in_flight += 1
        try:
            await call.run(app)
        finally:
            self.in_flight -= 1


if sys.version_info >= (3, 12):

    def new_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[None, None, None],
                 eager: bool) -> asyncio.Task[None]:
        """A Task for an app call, started eagerly: the app runs at once, up to its first
        wait, so that a request whose app never waits is answered with no Task scheduled and
        no turn of the loop (when the caller says `eager`: see `ServerState.start_app`).
        Not when a task is running: a call started from inside another (a pipelined request,
        begun by the previous response's last `send`) would run nested in it, one level deeper
        per request waiting in the pipeline. Not either when the app installed a task factory
        of its own (tracing, or asyncio's eager one), which then makes the task."""
        if eager and loop.get_task_factory() is None and asyncio.current_task(loop) is None:
            return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        return loop.create_task(coro)

else:

    def new_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[None, None, None],
                 eager: bool) -> asyncio.Task[None]:
        """A Task for an app call: Python 3.11 cannot start one eagerly. The server's loop is
        passed in: asking asyncio for the running loop costs a getpid() system call a request
        before 3.12 (its fork check)."""
        return loop.create_task(coro)


# The coroutines an app call's task runs (see `ServerState.app_tasks`).
APP_CALL_CODE = frozenset((
    Exchange.run.__code__, WebSocketSession.run.__code__, ServerState._run_limited.__code__,
))
