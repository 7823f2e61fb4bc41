"""The benchmark's vocabulary: paths, what a measurement needs, what it returns, rows and servers.

Every other bench module imports from here and from nowhere else in bench/ that would import
it back, so the pieces (servers, load tools, report) stay independent of each other.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = BENCH_DIR / ".venv" / "bin"
RESULTS = BENCH_DIR / "results" / "latest.md"
APP = "bench.app:app"
EXPECTED_BODY = b"Hello, world!"
WS_LOAD = VENV_BIN / "ws_load"   # bench/ws_load.c, compiled by setup.sh

SERVER_CPU = "0"
LOAD_CPU = "1"
MIB = 1 << 20


def version_venv_bin(version: str) -> Path:
    """Where ``bash bench/setup.sh VERSION`` puts the servers for another Python."""
    return BENCH_DIR / f".venv-{version}" / "bin"


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate made for this run; ``ca`` lets our clients verify it."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class LoadOptions:
    """The load knobs of a run, one field per command-line flag (``--h2-streams`` -> h2_streams)."""

    connections: int = 64                  # HTTP/1.1 rate rows: wrk -c
    h2_connections: int = 32               # h2 rate rows: h2load -c per batch
    h2_streams: int = 32                   # h2 rate rows: h2load -m
    h2_requests_per_connection: int = 500  # h2: at most this many per connection per batch
    ws_connections: int = 64
    ws_in_flight: int = 1
    ws_size: int = 32
    ws_binary: bool = False
    body_size: int = MIB                   # download, upload and static rows: bytes per body
    transfer_connections: int = 4          # download, upload and static rows: wrk/h2load -c
    transfer_streams: int = 4              # h2-download: h2load -m
    latency_connections: int = 16          # latency row: wrk -c
    memory_connections: int = 5000         # memory rows: idle connections held


@dataclass(frozen=True)
class LoadSpec:
    """What a load generator needs to know to hit one running server."""

    port: int
    tls: TlsFiles | None
    duration: float
    options: LoadOptions
    server_pid: int = 0          # the server's top process (memory rows read its tree's RSS)
    cpu: str | None = LOAD_CPU   # taskset CPU list for the load generator; None: unpinned


@dataclass(frozen=True)
class ServerCpu:
    """The server's CPU over one measurement, per request or message (``per``): microseconds
    in its own code (user) and in the kernel (system, the socket calls and the loopback TCP
    they drive), and the share of the wall time it was busy. Near 100% busy means the server
    limits the rate; a system share near the total means little is left to win in the server."""

    user_us: float
    system_us: float
    busy: float
    per: str

    def text(self) -> str:
        return (f"server {self.user_us:.1f} user + {self.system_us:.1f} sys \u00b5s/{self.per},"
                f" {self.busy:.0%} busy")


@dataclass(frozen=True)
class LoadResult:
    """One measurement; ``errors`` > 0 makes the measurement unusable.

    ``values`` maps each of the scenario's figure keys to its value (req/s, MB/s, ms, ...),
    plus whatever else the load tool counted (``requests``: the access-log check uses it).
    ``client_cpu`` is the load generator's CPU time over the measured wall time, where the
    tool reports it (ws_load): near 1.0 would mean the client, not the server, limits.
    ``note`` is what the report shows beside the row (e.g. the server's RSS). ``server_cpu``
    is filled in by the run, for rows that count requests or messages.
    """

    values: dict[str, float]
    errors: int = 0
    error_detail: str = ""
    client_cpu: float | None = None
    note: str = ""
    server_cpu: ServerCpu | None = None


def failed(detail: str) -> LoadResult:
    """A measurement that produced no figure."""
    return LoadResult({}, 1, detail)


LoadFn = Callable[[LoadSpec], LoadResult]


@dataclass(frozen=True)
class Figure:
    """One number a scenario reports per server: a row of the table of its unit."""

    key: str                       # in LoadResult.values
    unit: str                      # req/s, msg/s, MB/s, ms, KiB/conn: one table per unit
    label: str = ""                # after the scenario's name when it reports several (p50, p99)
    lower_is_better: bool = False
    decimals: int = 0


RATE = Figure("rate", "req/s")


# A check of a row's own path on a started server: (port, tls, options) -> note, or StartError.
Check = Callable[[int, TlsFiles | None, LoadOptions], str]


@dataclass(frozen=True)
class Scenario:
    """A kind of traffic, one ``--scenarios`` key; servers read its flags to build their command.

    ``check`` runs once per start, after the readiness probe and before the warm-up: it asks
    for the row's own path (a 1 MiB download, the static file) and raises StartError unless
    the answer is right; what it returns goes into the row's note (e.g. whether the app saw
    pathsend). ``unavailable`` says why the whole row cannot run here (e.g. ws_load without
    the flag the row needs), or "".
    """

    key: str
    name: str
    tls: bool
    load: LoadFn
    describe: Callable[[LoadOptions], str]   # the load method, one line for the report header
    figures: tuple[Figure, ...] = (RATE,)
    tool: str = "wrk"         # the load generator it needs (on PATH, or in bench/.venv/bin)
    http2: bool = False       # servers switch their HTTP/2 support on
    websocket: bool = False   # servers pick their WebSocket implementation
    deflate: bool = False     # WebSocket with permessage-deflate offered (and required)
    workers: int = 1          # worker processes per server
    canned: bool = False      # only GET / answered with the app's body: the ceiling can serve it
    access_log: bool = False  # every server with its own default access log on
    idle: bool = False        # connections stay open and idle: servers raise keep-alive limits
    warmup: bool = True       # a discarded run of the same load first
    check: Check | None = None
    unavailable: Callable[[], str] = lambda: ""

    @property
    def pinned(self) -> bool:
        """One worker: server on SERVER_CPU, load on LOAD_CPU. More workers than the one
        server core would be pointless pinned, so then nothing is pinned and servers and
        load generator share every core: the row is for ratios between servers only."""
        return self.workers == 1


@dataclass(frozen=True)
class Launch:
    """Everything a server's command builder reads."""

    port: int
    scenario: Scenario
    tls: TlsFiles | None
    bin_dir: Path           # the venv whose interpreter and scripts run the server
    options: LoadOptions    # e.g. how many idle connections it must hold


@dataclass(frozen=True)
class Server:
    """How to start one server, and in which rows it cannot take part (and why)."""

    name: str
    distribution: str
    command: Callable[[Launch], list[str]]
    supports: Callable[[Scenario], str] = lambda scenario: ""   # "" or why not
    bin_dir: Path = VENV_BIN
    python: str = ""        # "" for the bench venv's; "3.13" for bench/.venv-3.13


@dataclass
class Cell:
    """All rounds of one server in one scenario."""

    results: list[LoadResult] = field(default_factory=list)
    skipped: str = ""

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    def series(self, key: str) -> list[float]:
        return [r.values[key] for r in self.results if key in r.values]

    def median(self, key: str) -> float | None:
        values = self.series(key)
        return statistics.median(values) if values else None

    @property
    def client_cpu(self) -> float | None:
        cpus = [r.client_cpu for r in self.results if r.client_cpu is not None]
        return statistics.median(cpus) if cpus else None

    def spread(self, key: str) -> str:
        """(max - min) / median: how far apart the rounds were, i.e. how much to trust a ratio."""
        values = self.series(key)
        median = self.median(key)
        if len(values) < 2 or not median:
            return "—"
        return f"{(max(values) - min(values)) / median:.0%}"

    @property
    def server_cpu(self) -> ServerCpu | None:
        """The median of each part over the rounds that measured it."""
        cpus = [r.server_cpu for r in self.results if r.server_cpu is not None]
        if not cpus:
            return None
        return ServerCpu(statistics.median(c.user_us for c in cpus),
                         statistics.median(c.system_us for c in cpus),
                         statistics.median(c.busy for c in cpus), cpus[0].per)

    @property
    def note(self) -> str:
        """The notes of the rounds, once each (usually all the same, e.g. "pathsend")."""
        return "; ".join(dict.fromkeys(r.note for r in self.results if r.note))
