"""Prometheus metrics, /livez and /readyz (--metrics-bind).

Everything prometheus lives here. The request path never imports this module: it counts in
plain integers on `ServerState`, its connections and `WebSocketCounts`, plus a `RequestTally`
when metrics are on (tally.py). Once a second the server's tick calls `Exporter.sync`, which
pushes what changed into prometheus_client objects.

With one process the server answers on the metrics address itself, from a small asyncio
server on its own loop. Under a supervisor the workers only export: they write their values
to prometheus_client's multiprocess files in a directory the supervisor made for this run
(PROMETHEUS_MULTIPROC_DIR), and the supervisor answers, from a thread, with the sum over
every worker, living or dead (counters keep what dead workers counted; gauges drop a dead
worker's values, `mark_process_dead`).

The listener is plain HTTP/1.1, one request per connection: GET /metrics, /livez and /readyz,
404 for anything else. A request head must arrive within --metrics-timeout and fit in
`MAX_HEAD` bytes, and at most `MAX_CLIENTS` are served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .config import BindAddress, ConfigError, parse_bind
from .logs import error_logger
from .tally import DURATION_BOUNDS, HANDSHAKE_FAILURES, labels_of

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_HEAD = 8 * 1024
MAX_CLIENTS = 16
PROTOCOLS = {"1.0": "http/1.0", "1.1": "http/1.1", "2": "h2"}
CONNECTION_PROTOCOLS = ("http/1.1", "h2", "websocket")
RESTART_REASONS = ("died", "heartbeat", "recycled")

# -- the listener ------------------------------------------------------------------------------

Answer = tuple[int, bytes, bytes]  # status, content type, body
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 503: b"Service Unavailable"}
_TEXT = b"text/plain; charset=utf-8"


class HealthView:
    """What the listener answers: the scrape, and whether the process is ready."""

    def __init__(self, scrape: Callable[[], bytes], ready: Callable[[], bool]) -> None:
        self.scrape = scrape
        self.ready = ready

    def answer(self, method: bytes, target: bytes) -> Answer:
        path = target.split(b"?", 1)[0]
        if method != b"GET":
            return 404, _TEXT, b"not found\n"
        if path == b"/metrics":
            return 200, CONTENT_TYPE_LATEST.encode(), self.scrape()
        if path == b"/livez":
            return 200, _TEXT, b"ok\n"
        if path == b"/readyz":
            if self.ready():
                return 200, _TEXT, b"ready\n"
            return 503, _TEXT, b"not ready\n"
        return 404, _TEXT, b"not found\n"


def bind_metrics(text: str) -> socket.socket:
    """The metrics listener's socket, bound before anything else starts."""
    address: BindAddress = parse_bind(text, "--metrics-bind")
    try:
        sock = socket.create_server((address.host, address.port), reuse_port=False,
                                    family=socket.AF_INET6 if ":" in address.host else socket.AF_INET)
    except OSError as exc:
        raise ConfigError(f"cannot listen on --metrics-bind {text}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class MetricsListener:
    """The plain-HTTP listener on the running loop: one request per connection, bounded in
    size, time and number."""

    def __init__(self, sock: socket.socket, view: HealthView, timeout: float) -> None:
        self.sock = sock
        self.view = view
        self.timeout = timeout
        self.clients = 0
        self.server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, sock=self.sock, limit=MAX_HEAD)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.clients >= MAX_CLIENTS:
            writer.close()
            return
        self.clients += 1
        try:
            await asyncio.wait_for(self._serve(reader, writer), self.timeout)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            error_logger.exception("metrics listener: request failed")
        finally:
            self.clients -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            status, kind, body = 400, _TEXT, b"request head too large\n"
        else:
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                status, kind, body = 400, _TEXT, b"bad request\n"
            else:
                status, kind, body = self.view.answer(parts[0], parts[1])
        writer.write(b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n" % (status, _REASONS[status], kind, len(body)) + body)
        await writer.drain()


# -- the exporter ------------------------------------------------------------------------------


class Exporter:
    """The prometheus_client objects, and `sync` from a server's counters into them. In a
    worker under a supervisor the values go to the multiprocess files (the registry is
    unused); in one process `registry` is what the listener scrapes."""

    def __init__(self, multiprocess: bool) -> None:
        self.registry = CollectorRegistry()
        registry = None if multiprocess else self.registry
        self.multiprocess = multiprocess

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, text, labels, registry=registry)

        def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, text, labels, registry=registry, multiprocess_mode="livesum")

        self.requests = counter("gateway_requests", "HTTP responses completed, by protocol, method "
                                "and status class", ("protocol", "method", "status"))
        self.duration = Histogram("gateway_request_duration_seconds", "Time from the request head "
                                  "to the response's end", buckets=DURATION_BOUNDS, registry=registry)
        self.in_flight = gauge("gateway_requests_in_flight", "App calls running (HTTP requests and "
                               "WebSocket sessions)")
        self.connections = gauge("gateway_connections", "Open connections, by protocol", ("protocol",))
        self.bytes_in = counter("gateway_received_bytes", "Bytes read from clients")
        self.bytes_out = counter("gateway_sent_bytes", "Bytes written to clients")
        self.handshakes = counter("gateway_tls_handshakes", "TLS handshakes completed")
        self.handshake_failures = counter("gateway_tls_handshake_failures", "TLS handshakes failed, "
                                          "by reason", ("reason",))
        self.ws_opened = counter("gateway_websocket_sessions", "WebSocket sessions accepted")
        self.ws_open = gauge("gateway_websocket_sessions_open", "WebSocket sessions open now")
        self.ws_messages = counter("gateway_websocket_messages", "WebSocket messages, by direction",
                                   ("direction",))
        self.h2_streams = counter("gateway_h2_streams", "HTTP/2 streams opened")
        self.h2_resets = counter("gateway_h2_streams_reset", "HTTP/2 streams the client reset "
                                 "before their response ended")
        # Label sets known up front appear at 0 from the first scrape.
        for protocol in CONNECTION_PROTOCOLS:
            self.connections.labels(protocol)
        for reason in HANDSHAKE_FAILURES:
            self.handshake_failures.labels(reason)
        for direction in ("in", "out"):
            self.ws_messages.labels(direction)
        self.last: dict[str, int] = {}

    def _add(self, key: str, value: int, counter: Any) -> None:
        """Push a cumulative count into `counter` as its increase since the last sync."""
        delta = value - self.last.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self.last[key] = value

    def sync(self, state: Any) -> None:
        """Once a second (the server's tick): the counts since the last sync."""
        tally = state.tally
        if tally is not None:
            counts, buckets, duration_sum = tally.take()
            for index, count in enumerate(counts):
                if count:
                    version, method, status_class = labels_of(index)
                    self.requests.labels(PROTOCOLS.get(version, "other"), method,
                                         f"{status_class}xx").inc(count)
            # prometheus_client has no call to add n observations to a bucket, and one
            # observe() per request would cost more than the request path saved; the
            # histogram's own values are incremented as observe() would (non-cumulative
            # per bucket; cumulated when collected).
            for index, count in enumerate(buckets):
                if count:
                    self.duration._buckets[index].inc(count)
            if duration_sum:
                self.duration._sum.inc(duration_sum)
        bytes_in, bytes_out = state.bytes_in, state.bytes_out
        open_by = dict.fromkeys(CONNECTION_PROTOCOLS, 0)
        for connection in state.connections:
            bytes_in += getattr(connection, "bytes_in", 0)
            bytes_out += getattr(connection, "bytes_out", 0)
            label = getattr(connection, "protocol_label", None)
            if label in open_by:
                open_by[label] += 1
        for protocol, count in open_by.items():
            self.connections.labels(protocol).set(count)
        self._add("bytes_in", bytes_in, self.bytes_in)
        self._add("bytes_out", bytes_out, self.bytes_out)
        self.in_flight.set(len(state.app_tasks()))
        self._add("handshakes", state.tls_handshakes, self.handshakes)
        for reason, count in state.tls_failures.items():
            self._add("tls_" + reason, count, self.handshake_failures.labels(reason))
        ws = state.ws_counts
        self._add("ws_opened", ws.opened, self.ws_opened)
        self.ws_open.set(ws.opened - ws.closed)
        self._add("ws_in", ws.messages_in, self.ws_messages.labels("in"))
        self._add("ws_out", ws.messages_out, self.ws_messages.labels("out"))
        self._add("h2_streams", state.h2_streams, self.h2_streams)
        self._add("h2_resets", state.h2_resets, self.h2_resets)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class ServerMetrics:
    """One server's metrics: the exporter, and, in a single process, the listener."""

    def __init__(self, config: Any, serve: bool) -> None:
        self.sock = bind_metrics(config.metrics_bind) if serve else None
        self.exporter = Exporter(multiprocess=not serve and MULTIPROC_ENV in os.environ)
        self.timeout = config.metrics_timeout
        self.listener: MetricsListener | None = None

    async def start(self, ready: Callable[[], bool]) -> None:
        if self.sock is not None:
            self.listener = MetricsListener(self.sock, HealthView(self.exporter.scrape, ready), self.timeout)
            await self.listener.start()
            error_logger.info("metrics on http://%s:%d/metrics", *self.sock.getsockname()[:2])

    def sync(self, state: Any) -> None:
        self.exporter.sync(state)

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        elif self.sock is not None:
            self.sock.close()


# -- the supervisor's side ---------------------------------------------------------------------


class SupervisorMetrics:
    """The supervisor's listener, in a thread of its own with its own loop, answering with the
    sum of every worker's multiprocess files and the supervisor's own worker restarts."""

    def __init__(self, config: Any, ready: Callable[[], bool]) -> None:
        self.directory = os.environ[MULTIPROC_ENV]
        self.sock = bind_metrics(config.metrics_bind)
        self.registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(self.registry, path=self.directory)
        # Counted here, in the supervisor, as plain integers the scrape thread reads.
        self.restarts = dict.fromkeys(RESTART_REASONS, 0)
        self.registry.register(_RestartCollector(self.restarts))
        self.view = HealthView(lambda: generate_latest(self.registry), ready)
        self.timeout = config.metrics_timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            loop = self.loop = asyncio.new_event_loop()
            listener = MetricsListener(self.sock, self.view, self.timeout)
            loop.run_until_complete(listener.start())
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(listener.close())
                loop.close()

        self.thread = threading.Thread(target=run, name="gateway-metrics", daemon=True)
        self.thread.start()
        started.wait(5.0)
        error_logger.info("metrics on http://%s:%d/metrics", *self.sock.getsockname()[:2])

    def restarted(self, reason: str) -> None:
        self.restarts[reason] += 1

    def worker_ended(self, pid: int) -> None:
        prometheus_multiprocess.mark_process_dead(pid, self.directory)

    def stop(self) -> None:
        if self.loop is not None and self.thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5.0)
        self.sock.close()
        remove_directory()


class _RestartCollector(Collector):
    def __init__(self, restarts: dict[str, int]) -> None:
        self.restarts = restarts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "gateway_worker_restarts", "Workers replaced, by reason: died (exited unexpectedly), "
            "heartbeat (killed, its loop blocked), recycled (--max-requests)", labels=["reason"],
        )
        for reason, count in list(self.restarts.items()):
            family.add_metric([reason], count)
        yield family


def prepare_directory() -> str:
    """A fresh directory for the workers' multiprocess files, named in the environment the
    workers inherit (and this process's, for its own counter)."""
    directory = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def remove_directory() -> None:
    directory = os.environ.pop(MULTIPROC_ENV, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
