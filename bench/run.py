"""Benchmark gateway against other ASGI servers, in one run, on one machine.

Every server serves the same trivial app (bench/app.py) from the benchmark
venv (bench/.venv, made by bench/setup.sh), pinned to CPU 0, while the load
generator runs pinned to CPU 1, so the two never compete for a core. The one
exception is the multi-worker row (h1-workers: every server with 2 worker
processes): there nothing is pinned, servers and wrk share all cores, and the
row is for ratios between servers only, not for comparing with the others. Rounds
are interleaved (round 1: every server, round 2: every server, ...) so that a
slow drift of the machine (thermal, noisy neighbours) spreads over all servers
instead of penalising whichever ran last; the report gives the median.

HTTP/1.1 rows are measured with wrk, HTTP/2 rows (h2 over TLS, h2c by prior
knowledge) with h2load, in batches of fresh connections: servers close an h2
connection after some number of requests (hypercorn after 1,000) and h2load
does not reconnect, so one long h2load run would measure that cap instead.
The WebSocket echo row is measured in messages/s with bench/ws_load.c (built by
setup.sh into the venv), a one-thread epoll client: Python clients are too slow
to load a server on one core.

Usage:  python bench/run.py [--duration 10] [--rounds 3] [--connections 64]
                            [--h2-connections 32] [--h2-streams 32]
                            [--ws-connections 64] [--ws-in-flight 1] [--ws-size 32]
                            [--servers gateway,uvicorn]
                            [--scenarios h1,h1-tls,h2-tls,h2c,ws,h1-workers]

Without --scenarios every scenario runs, h1-workers included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
START_TIMEOUT = 20.0
STOP_GRACE = 5.0


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate made for this run; ``ca`` lets our probe verify it."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class LoadSpec:
    """What a load generator needs to know to hit one running server."""

    port: int
    tls: bool
    duration: float
    connections: int
    streams: int = 1                   # h2: concurrent streams per connection (h2load -m)
    requests_per_connection: int = 0   # h2: at most this many per connection per h2load batch
    in_flight: int = 1                 # ws: messages outstanding per connection
    message_size: int = 32             # ws: bytes per message
    binary: bool = False               # ws: binary messages instead of text
    cpu: str | None = LOAD_CPU         # taskset CPU list for the load generator; None: unpinned


@dataclass(frozen=True)
class LoadResult:
    """One measurement; ``errors`` > 0 makes the measurement unusable.

    ``rps`` is in the scenario's unit (requests/s, or messages/s for WebSocket echo).
    ``client_cpu`` is the load generator's CPU time over the measured wall time, where
    the tool reports it (ws_load): near 1.0 would mean the client, not the server, limits.
    """

    rps: float
    errors: int = 0
    error_detail: str = ""
    client_cpu: float | None = None


LoadFn = Callable[[LoadSpec], LoadResult]


@dataclass(frozen=True)
class Scenario:
    """A kind of traffic. New scenarios (WebSocket, ...) are one list entry each."""

    key: str
    name: str
    tls: bool
    load: LoadFn
    http2: bool = False   # servers read this to switch their HTTP/2 support on
    tool: str = "wrk"     # the load generator it needs (on PATH, or in bench/.venv/bin)
    websocket: bool = False   # servers read this to pick their WebSocket implementation
    unit: str = "req/s"   # what LoadResult.rps counts; one report table per unit
    workers: int = 1      # worker processes per server; servers read this for their flag

    @property
    def pinned(self) -> bool:
        """One worker: server on SERVER_CPU, load on LOAD_CPU. More workers than the one
        server core would be pointless pinned, so then nothing is pinned and servers and
        load generator share every core: the row is for ratios between servers only."""
        return self.workers == 1


@dataclass(frozen=True)
class Server:
    """How to start one server; ``command`` gets the scenario so h2 etc. can add flags."""

    name: str
    distribution: str
    command: Callable[[int, Scenario, TlsFiles | None], list[str]]


@dataclass
class Cell:
    """All rounds of one server in one scenario."""

    results: list[LoadResult] = field(default_factory=list)
    skipped: str = ""

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def median(self) -> float | None:
        return statistics.median(r.rps for r in self.results) if self.results else None

    @property
    def client_cpu(self) -> float | None:
        cpus = [r.client_cpu for r in self.results if r.client_cpu is not None]
        return statistics.median(cpus) if cpus else None

    @property
    def spread(self) -> str:
        """(max - min) / median: how far apart the rounds were, i.e. how much to trust a ratio."""
        if len(self.results) < 2 or not self.median:
            return "—"
        rps = [r.rps for r in self.results]
        return f"{(max(rps) - min(rps)) / self.median:.0%}"


# ---------------------------------------------------------------------- servers


def on_cpu(cpu: str | None, cmd: list[str]) -> list[str]:
    """``cmd`` under ``taskset -c cpu``, or as it is when ``cpu`` is None (unpinned)."""
    return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def venv_exe(name: str) -> str:
    """Servers run from the bench venv, so all of them see the same Python and app."""
    return str(VENV_BIN / name)


# Extra gateway flags from --gateway-args (e.g. "--http h11"), to compare its own options.
GATEWAY_EXTRA: list[str] = []


def gateway_cmd(port: int, scenario: Scenario, tls: TlsFiles | None) -> list[str]:
    # --workers 1 (the default) runs in one process; more start a supervisor, whose workers
    # (subprocess, no new session) stay in its process group.
    cmd = [venv_exe("python"), "-m", "gateway", "--bind", f"127.0.0.1:{port}", "--no-access-log",
           "--workers", str(scenario.workers)]
    if tls:
        cmd += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    return [*cmd, *GATEWAY_EXTRA, APP]


def uvicorn_cmd(port: int, scenario: Scenario, tls: TlsFiles | None) -> list[str]:
    # HTTP/2 is experimental in uvicorn and only with the zttp protocol (pip install zttp):
    # `--http zttp --http2` serves h2 by ALPN, h2c by prior knowledge, and HTTP/1.1.
    http = ["--http", "zttp", "--http2"] if scenario.http2 else ["--http", "httptools"]
    cmd = [venv_exe("uvicorn"), APP, "--host", "127.0.0.1", "--port", str(port),
           *http, "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
           # 1 runs in one process; more start uvicorn's multiprocess supervisor.
           "--workers", str(scenario.workers)]
    if scenario.websocket:
        # uvicorn 0.54 offers websockets (the legacy websockets.legacy protocol),
        # websockets-sansio and wsproto; --ws auto picks websockets-sansio when the
        # websockets package is installed. Spelled out, so that the row says what it is.
        cmd += ["--ws", "websockets-sansio"]
    if tls:
        cmd += ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    return cmd


def hypercorn_cmd(port: int, scenario: Scenario, tls: TlsFiles | None) -> list[str]:
    # No --access-logfile means no access log; --log-level keeps the error log quiet.
    # h2 by ALPN and h2c by prior knowledge are on by default; it closes a connection
    # after 1,000 requests (keep_alive_max_requests), h2 streams included.
    # --workers 1 is its default: a parent process plus one worker.
    cmd = [venv_exe("hypercorn"), APP, "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
           "--workers", str(scenario.workers)]
    if tls:
        cmd += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    return cmd


def granian_cmd(port: int, scenario: Scenario, tls: TlsFiles | None) -> list[str]:
    cmd = [venv_exe("granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(scenario.workers), "--no-access-log", "--log-level", "warning"]
    if scenario.http2:
        # auto (the default, spelled out): h2 by ALPN or h2c preface, else HTTP/1.1.
        # `--http 2` would refuse the HTTP/1.1 readiness probe.
        cmd += ["--http", "auto"]
    if scenario.websocket:
        cmd += ["--ws"]   # the default (enabled), spelled out
    if tls:
        # granian reads only PKCS#8 keys; make_tls_files writes the key that way for everyone.
        cmd += ["--ssl-certificate", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    return [*cmd, APP]


def gunicorn_cmd(port: int, scenario: Scenario, tls: TlsFiles | None) -> list[str]:
    # gunicorn's native asgi worker (25+). Ask for the C parser (gunicorn[fast]) and
    # uvloop explicitly: the defaults ("auto") silently fall back to slower ones.
    # gunicorn 26 also opens a control socket in ~/.gunicorn/ by default; not wanted here.
    # WebSocket: the asgi worker has its own RFC 6455 code (gunicorn/asgi/websocket.py),
    # always on, without flags (and without permessage-deflate).
    cmd = [venv_exe("gunicorn"), "-k", "asgi", "-w", str(scenario.workers), "-b", f"127.0.0.1:{port}",
           "--http-parser", "fast", "--asgi-loop", "uvloop", "--log-level", "warning",
           "--no-control-socket"]
    if scenario.http2:
        # HTTP/2 in gunicorn is beta. h2c needs its own flag and is only offered to peers in
        # --forwarded-allow-ips (default 127.0.0.1). "both" rather than "prior-knowledge":
        # prior knowledge alone answers the HTTP/1.1 readiness probe with 400.
        cmd += ["--http-protocols", "h2,h1"]
        if not tls:
            cmd += ["--http2-cleartext", "both"]
    if tls:
        cmd += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    return [*cmd, APP]


SERVERS = [
    Server("gateway", "gateway", gateway_cmd),
    Server("uvicorn", "uvicorn", uvicorn_cmd),
    Server("hypercorn", "hypercorn", hypercorn_cmd),
    Server("granian", "granian", granian_cmd),
    Server("gunicorn", "gunicorn", gunicorn_cmd),
]


class StartError(Exception):
    """The server did not come up; the message says why (exit code, log tail)."""


class RunningServer:
    """A server subprocess pinned to ``cpu`` (unpinned if None), in its own process group.

    The own group matters: every server but a one-worker gateway or uvicorn starts
    worker processes (gunicorn forks, hypercorn, granian and uvicorn spawn with
    multiprocessing, gateway's supervisor with subprocess), all in the parent's group,
    and a SIGKILL to the parent alone would leave those holding the port and a core.
    """

    def __init__(self, cmd: list[str], log_path: Path, cpu: str | None = SERVER_CPU) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            on_cpu(cpu, cmd), cwd=ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log_tail(self, lines: int = 8) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self) -> None:
        """SIGTERM for a clean shutdown, SIGKILL the whole group after STOP_GRACE."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                print(f"    (did not stop in {STOP_GRACE:.0f}s, killing)", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def free_port() -> int:
    """A fresh port per start, so a previous server's TIME_WAIT sockets never interfere."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(port: int, tls: TlsFiles | None) -> None:
    """One real GET; raises unless the answer is the app's 200 ``Hello, world!``.

    Checking the body (not just an open port) catches a server that listens but
    fails to load the app, which would otherwise benchmark its error page.
    """
    if tls:
        ctx = ssl.create_default_context(cafile=str(tls.ca))
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=2, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200 or body != EXPECTED_BODY:
        raise StartError(f"unexpected answer: {resp.status} {body[:80]!r}")


# With several workers the first answer may come from the only one ready so far (they share
# one listening socket, so a worker still starting just does not accept). Before the warm-up,
# keep probing until SETTLE_PROBES answers in a row and at least SETTLE_SECONDS since the first.
SETTLE_PROBES = 20
SETTLE_SECONDS = 1.0


def wait_ready(server: RunningServer, port: int, tls: TlsFiles | None, workers: int = 1) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error: Exception | None = None
    first_ok: float | None = None
    in_a_row = 0
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise StartError(f"exited with code {server.proc.returncode}:\n{server.log_tail()}")
        try:
            probe(port, tls)
        except StartError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            last_error, in_a_row = exc, 0
            time.sleep(0.1)
            continue
        if workers == 1:
            return
        now = time.monotonic()
        first_ok = now if first_ok is None else first_ok
        in_a_row += 1
        if in_a_row >= SETTLE_PROBES and now - first_ok >= SETTLE_SECONDS:
            return
        time.sleep(0.02)
    raise StartError(f"no answer within {START_TIMEOUT:.0f}s ({last_error}):\n{server.log_tail()}")


# ------------------------------------------------------------------------- load


def base_url(spec: LoadSpec, scheme: str = "http") -> str:
    return f"{scheme}{'s' if spec.tls else ''}://127.0.0.1:{spec.port}/"


def wrk_load(spec: LoadSpec) -> LoadResult:
    """HTTP/1.1 keep-alive load with wrk, one thread (one core's worth of client)."""
    cmd = on_cpu(spec.cpu, ["wrk", "-t1", f"-c{spec.connections}",
                            f"-d{max(1, round(spec.duration))}s", base_url(spec)])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=spec.duration + 60)
    if out.returncode != 0:
        return LoadResult(0.0, 1, f"wrk exited {out.returncode}: {out.stderr.strip()[:200]}")
    return parse_wrk(out.stdout)


def parse_wrk(text: str) -> LoadResult:
    """Requests/sec plus every error wrk reports (socket errors, non-2xx/3xx)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        return LoadResult(0.0, 1, "no Requests/sec in wrk output")
    errors, details = 0, []
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        n = sum(int(g) for g in sock.groups())
        errors += n
        if n:
            details.append(sock.group(0))
    status = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if status:
        errors += int(status.group(1))
        details.append(status.group(0))
    return LoadResult(float(rps.group(1)), errors, "; ".join(details))


# The first h2load batch of a measurement is this many requests per connection (or
# fewer, under --h2-requests-per-connection); later batches are sized from the rate
# seen so far to end near the deadline, but never below this floor.
H2_MIN_PER_CONNECTION = 64
H2_BATCH_TIMEOUT = 120.0


@dataclass(frozen=True)
class H2Batch:
    """One h2load run: requests that succeeded, h2load's own elapsed time, and problems."""

    succeeded: int
    seconds: float
    errors: int = 0
    error_detail: str = ""


def h2load_load(spec: LoadSpec) -> LoadResult:
    """HTTP/2 load with h2load, one thread, in batches of fresh connections.

    Every batch opens ``spec.connections`` new connections and sends at most
    ``spec.requests_per_connection`` requests on each, ``spec.streams`` at a time,
    so no connection reaches a server's requests-per-connection cap (h2load would
    not reconnect, and the figure would measure the cap). Batches repeat until
    ``spec.duration`` has passed; the result is the sum of succeeded requests over
    the sum of h2load's own elapsed times (which include each batch's connection
    setup and TLS handshakes, but not the process start between batches). The
    first batch with any failure or a protocol other than h2 ends the measurement.
    """
    conns = spec.connections
    cap = max(1, spec.requests_per_connection)
    per_conn = min(cap, H2_MIN_PER_CONNECTION)
    succeeded, seconds, batches = 0, 0.0, 0
    deadline = time.monotonic() + spec.duration
    while True:
        cmd = on_cpu(spec.cpu, ["h2load", "-t1", f"-c{conns}", f"-m{spec.streams}",
                                f"-n{conns * per_conn}", base_url(spec)])
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=H2_BATCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            return LoadResult(0.0, 1, f"h2load batch {batches + 1} took over "
                                      f"{H2_BATCH_TIMEOUT:.0f}s")
        batch = parse_h2load(out.stdout, spec.tls)
        if out.returncode != 0 and not batch.errors:
            batch = H2Batch(batch.succeeded, batch.seconds, 1,
                            f"h2load exited {out.returncode}: {out.stderr.strip()[:200]}")
        batches += 1
        succeeded += batch.succeeded
        seconds += batch.seconds
        rps = succeeded / seconds if seconds > 0 else 0.0
        if batch.errors:
            return LoadResult(rps, batch.errors, f"batch {batches}: {batch.error_detail}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return LoadResult(rps)
        # Size the next batch to end near the deadline, within [floor, cap] per connection.
        rate = batch.succeeded / batch.seconds if batch.seconds > 0 else 0.0
        wanted = int(rate * remaining / conns) if rate else cap
        per_conn = max(min(cap, H2_MIN_PER_CONNECTION), min(cap, wanted))


def parse_h2load(text: str, tls: bool) -> H2Batch:
    """Succeeded requests and elapsed time of one h2load run; failures and protocol checked.

    The errors counted are h2load's failed requests (which include the errored and
    timed-out ones, and non-2xx/3xx answers), or the shortfall of succeeded against
    the total asked for if larger (requests never sent); plus one if the negotiated
    protocol was not HTTP/2 (``h2`` by ALPN, ``h2c`` by prior knowledge in clear text).
    """
    want = "h2" if tls else "h2c"
    proto = re.search(r"^Application protocol: (\S+)", text, re.MULTILINE)
    finished = re.search(r"^finished in ([\d.]+)(us|ms|s),", text, re.MULTILINE)
    reqs = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.MULTILINE)
    if not finished or not reqs:
        last = text.strip().splitlines()[-1:] or ["no output"]
        return H2Batch(0, 0.0, 1, f"no result in h2load output ({last[0][:120]})")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[finished.group(2)]
    seconds = float(finished.group(1)) * scale
    total, _started, _done, ok, failed, errored, timeout = (int(g) for g in reqs.groups())
    # h2load counts errored (no response) and timeout within failed; don't add them twice.
    errors = max(failed, errored + timeout, total - ok)
    details = [reqs.group(0)] if errors else []
    status = re.search(r"^status codes: .*$", text, re.MULTILINE)
    if errors and status:
        details.append(status.group(0))
    if not proto or proto.group(1) != want:
        errors += 1
        got = proto.group(1) if proto else "none"
        details.insert(0, f"protocol {got}, not {want}")
    return H2Batch(ok, seconds, errors, "; ".join(details))


WS_TIMEOUT_EXTRA = 60.0   # ws_load's own connect/drain/close timeouts are 10 + 5 + 5 s


def ws_load(spec: LoadSpec) -> LoadResult:
    """WebSocket echo with bench/ws_load (one thread, epoll), pinned to the load CPU.

    It opens ``spec.connections`` WebSockets (HTTP/1.1 upgrade, no permessage-deflate
    offered), starts the clock once all are open, keeps ``spec.in_flight`` messages of
    ``spec.message_size`` bytes outstanding on each for ``spec.duration`` seconds, then
    collects the stragglers and closes every connection with a close handshake. Its
    error count covers failed connects and handshakes, wrong echoes, server closes or
    EOFs, echoes that never came and close handshakes that did not complete.
    """
    cmd = on_cpu(spec.cpu, [str(WS_LOAD), "--port", str(spec.port),
                            "--connections", str(spec.connections),
                            "--in-flight", str(spec.in_flight),
                            "--size", str(spec.message_size), "--duration", f"{spec.duration:g}"])
    if spec.binary:
        cmd.append("--binary")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=spec.duration + WS_TIMEOUT_EXTRA)
    except subprocess.TimeoutExpired:
        return LoadResult(0.0, 1, f"ws_load took over {spec.duration + WS_TIMEOUT_EXTRA:.0f}s")
    return parse_ws_load(out.stdout, out.returncode, out.stderr)


def parse_ws_load(text: str, returncode: int = 0, stderr: str = "") -> LoadResult:
    """messages/s, errors and client CPU from ws_load's JSON line."""
    lines = text.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        why = (stderr.strip() or text.strip() or "no output")[:200]
        return LoadResult(0.0, 1, f"ws_load exited {returncode}: {why}")
    errors = int(result["errors"])
    detail = result.get("error_detail", "")
    if errors and result.get("open", 0) < result.get("connections", 0):
        detail = f"{result['open']}/{result['connections']} connections opened; {detail}"
    if returncode != 0 and not errors:
        errors, detail = 1, f"ws_load exited {returncode}"
    return LoadResult(float(result["msg_per_sec"]), errors, detail,
                      client_cpu=float(result["client_cpu"]))


SCENARIOS = [
    Scenario("h1", "HTTP/1.1 plain", tls=False, load=wrk_load),
    Scenario("h1-tls", "HTTP/1.1 TLS", tls=True, load=wrk_load),
    Scenario("h2-tls", "h2 TLS", tls=True, load=h2load_load, http2=True, tool="h2load"),
    Scenario("h2c", "h2c", tls=False, load=h2load_load, http2=True, tool="h2load"),
    Scenario("ws", "WebSocket echo", tls=False, load=ws_load, tool="ws_load", websocket=True,
             unit="msg/s"),
    # Every server with 2 workers; unpinned (see Scenario.pinned): ratios only.
    Scenario("h1-workers", "HTTP/1.1 plain, 2 workers (unpinned: ratio only)", tls=False,
             load=wrk_load, workers=2),
]


# ------------------------------------------------------------------------ setup


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and server cert for 127.0.0.1, key in PKCS#8 (granian needs it)."""
    import trustme
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    files.key.write_bytes(pkcs8)
    ca.cert_pem.write_to_path(str(files.ca))
    return files


def have_tool(tool: str) -> bool:
    """On PATH, or built into the bench venv (ws_load)."""
    return bool(shutil.which(tool)) or os.access(VENV_BIN / tool, os.X_OK)


def check_tools(scenarios: Sequence[Scenario]) -> list[str]:
    """What is missing for a run; setup.sh installs all of it."""
    taskset = ["taskset"] if any(sc.pinned for sc in scenarios) else []
    tools = dict.fromkeys([*taskset, *(sc.tool for sc in scenarios)])
    missing = [tool + (" (run bench/setup.sh)" if tool == "ws_load" else "")
               for tool in tools if not have_tool(tool)]
    if not (VENV_BIN / "python").exists():
        missing.append(f"{VENV_BIN / 'python'} (run bench/setup.sh)")
    if (os.cpu_count() or 1) < 2:
        missing.append("a second CPU (server and load generator each get one; "
                       "the unpinned rows share two)")
    return missing


# -------------------------------------------------------------------------- run


def load_spec(scenario: Scenario, port: int, duration: float,
              args: argparse.Namespace) -> LoadSpec:
    cpu = LOAD_CPU if scenario.pinned else None
    if scenario.http2:
        return LoadSpec(port, scenario.tls, duration, args.h2_connections, args.h2_streams,
                        args.h2_requests_per_connection, cpu=cpu)
    if scenario.websocket:
        return LoadSpec(port, scenario.tls, duration, args.ws_connections,
                        in_flight=args.ws_in_flight, message_size=args.ws_size,
                        binary=args.ws_binary, cpu=cpu)
    return LoadSpec(port, scenario.tls, duration, args.connections, cpu=cpu)


def run_one(server: Server, scenario: Scenario, tls: TlsFiles | None, args: argparse.Namespace,
            log_dir: Path) -> LoadResult:
    """Start, wait until it answers, warm up, measure, stop. Raises StartError."""
    port = free_port()
    log_path = log_dir / f"{server.name}-{scenario.key}.log"
    try:
        running = RunningServer(server.command(port, scenario, tls), log_path,
                                SERVER_CPU if scenario.pinned else None)
    except OSError as exc:
        raise StartError(str(exc)) from exc
    try:
        wait_ready(running, port, tls, scenario.workers)
        if args.warmup > 0:
            scenario.load(load_spec(scenario, port, args.warmup, args))
        result = scenario.load(load_spec(scenario, port, args.duration, args))
        if running.proc.poll() is not None:
            raise StartError(f"died during the run:\n{running.log_tail()}")
        return result
    finally:
        running.stop()


def run_all(servers: Sequence[Server], scenarios: Sequence[Scenario], tls: TlsFiles,
            args: argparse.Namespace, log_dir: Path) -> dict[tuple[str, str], Cell]:
    """Interleaved rounds; a server that fails to start is skipped from then on."""
    cells = {(sc.key, sv.name): Cell() for sc in scenarios for sv in servers}
    for rnd in range(1, args.rounds + 1):
        for scenario in scenarios:
            for server in servers:
                cell = cells[(scenario.key, server.name)]
                if cell.skipped:
                    continue
                label = f"[round {rnd}/{args.rounds}] {scenario.name:<15} {server.name:<10}"
                print(label, end=" ", flush=True, file=sys.stderr)
                try:
                    result = run_one(server, scenario, tls if scenario.tls else None, args,
                                     log_dir)
                except StartError as exc:
                    cell.skipped = one_line(str(exc))
                    print(f"SKIPPED: {exc}", file=sys.stderr)
                    continue
                cell.results.append(result)
                note = f"  ERRORS {result.errors}: {result.error_detail}" if result.errors else ""
                if result.client_cpu is not None:
                    note = f"  (client CPU {result.client_cpu:.0%}){note}"
                print(f"{result.rps:>10.0f} {scenario.unit}{note}", file=sys.stderr)
    return cells


# ----------------------------------------------------------------------- report


def versions(servers: Sequence[Server]) -> dict[str, str]:
    """Installed versions, asked of the venv's Python since that is what runs them."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for d in sys.argv[1:]:\n"
        "    try: print(d, m.version(d))\n"
        "    except m.PackageNotFoundError: print(d, 'not-installed')\n"
    )
    dists = [s.distribution for s in servers]
    try:
        out = subprocess.run([venv_exe("python"), "-c", code, *dists], capture_output=True,
                             text=True, timeout=30).stdout
    except OSError:
        return {}
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {s.name: found.get(s.distribution, "?") for s in servers}


def git_revision() -> str:
    """Which gateway code was measured: short commit, plus '+dirty' for local edits."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"
    return (rev or "?") + ("+dirty" if dirty else "")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "?"
    match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
    return match.group(1).strip() if match else "?"


def venv_python_version() -> str:
    try:
        return subprocess.run([venv_exe("python"), "-c", "import platform;"
                               "print(platform.python_version())"],
                              capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def tool_version(command: list[str], pattern: str) -> str:
    """The version a load generator prints, for the report header ("?" if it will not say)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True)
    except OSError:
        return "?"
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "?"


def wrk_version() -> str:
    return tool_version(["wrk", "-v"], r"wrk (?:debian/)?(\S+)")


def h2load_version() -> str:
    return tool_version(["h2load", "--version"], r"nghttp2/(\S+)")


def load_line(scenarios: Sequence[Scenario], args: argparse.Namespace) -> str:
    tools = []
    if any(sc.tool == "wrk" for sc in scenarios):
        tools.append(f"wrk {wrk_version()} -t1 -c{args.connections} (HTTP/1.1)")
    if any(sc.tool == "h2load" for sc in scenarios):
        tools.append(f"h2load {h2load_version()} -t1 -c{args.h2_connections} -m{args.h2_streams} "
                     f"in batches of fresh connections, at most "
                     f"{args.h2_requests_per_connection} requests each (HTTP/2)")
    if any(sc.tool == "ws_load" for sc in scenarios):
        kind = "binary" if args.ws_binary else "text"
        tools.append(f"bench/ws_load.c -c{args.ws_connections}, {args.ws_in_flight} in flight "
                     f"per connection, {args.ws_size}-byte {kind} messages (WebSocket echo, "
                     f"msg/s = echoes received per second)")
    return (f"Load: {'; '.join(tools)}; {args.duration:g}s per measurement after "
            f"{args.warmup:g}s warm-up, {args.rounds} interleaved round(s), median reported.")


def header(servers: Sequence[Server], scenarios: Sequence[Scenario],
           args: argparse.Namespace) -> list[str]:
    vers = versions(servers)
    if "gateway" in vers:
        vers["gateway"] += f" ({git_revision()})"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# ASGI server benchmark, {now}",
        "",
        f"Machine: {cpu_model()}, nproc {os.cpu_count()}; Python {venv_python_version()}; "
        f"server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU}"
        + ("" if all(sc.pinned for sc in scenarios) else
           " (unpinned rows: servers and load generator share every core)") + ".",
        "Servers: " + ", ".join(f"{name} {v}" for name, v in vers.items()) + "."
        + (f" gateway extra flags: `{shlex.join(GATEWAY_EXTRA)}`." if GATEWAY_EXTRA else ""),
        load_line(scenarios, args),
        "",
    ]


def fmt_ratio(a: Cell, b: Cell) -> str:
    """a/b, blank when either side has no valid number to compare."""
    if a.median is None or b.median is None or a.errors or b.errors or not b.median:
        return "—"
    return f"{a.median / b.median:.2f}"


def table(servers: Sequence[Server], scenarios: Sequence[Scenario],
          cells: dict[tuple[str, str], Cell]) -> list[str]:
    """One markdown table per unit (req/s for HTTP, msg/s for WebSocket echo), so that
    every median column header names what it counts; tables are separated by a blank line."""
    lines: list[str] = []
    for unit in dict.fromkeys(sc.unit for sc in scenarios):
        if lines:
            lines.append("")
        group = [sc for sc in scenarios if sc.unit == unit]
        lines += unit_table(servers, group, cells, unit)
        lines += unpinned_note(group)
    return lines


def unpinned_note(scenarios: Sequence[Scenario]) -> list[str]:
    """Under a table with unpinned rows: what they may and may not be compared with."""
    unpinned = [sc for sc in scenarios if not sc.pinned]
    if not unpinned:
        return []
    keys = ", ".join(f"`{sc.key}` ({sc.workers} worker processes per server)" for sc in unpinned)
    return ["", f"Unpinned rows, {keys}: every server's processes and the load generator share "
                f"all {os.cpu_count()} cores, so the load generator takes CPU from the server. "
                "Compare their ratios between servers only, not their "
                f"{scenarios[0].unit} with the pinned rows'."]


def unit_table(servers: Sequence[Server], scenarios: Sequence[Scenario],
               cells: dict[tuple[str, str], Cell], unit: str) -> list[str]:
    ratio_cols = [s.name for s in servers]
    head = ["scenario", "server", f"{unit} (median)", *(f"vs {n}" for n in ratio_cols),
            "spread", "rounds", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        for sv in servers:
            cell = cells[(sc.key, sv.name)]
            median = "—" if cell.median is None else f"{cell.median:,.0f}"
            ratios = [fmt_ratio(cell, cells[(sc.key, other)]) for other in ratio_cols]
            rounds = " / ".join(f"{r.rps:.0f}" for r in cell.results) or "—"
            note = note_for(cell)
            row = [sc.name, sv.name, median, *ratios, cell.spread, rounds, note]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def one_line(reason: str) -> str:
    """First line of a failure plus the log's last line, which usually names the cause."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} {lines[-1]}"
    return text.replace("|", "/")[:160]


def note_for(cell: Cell) -> str:
    if cell.errors:
        details = "; ".join(r.error_detail for r in cell.results if r.errors)
        return f"INVALID: {cell.errors} errors ({details})".replace("|", "/")
    if cell.skipped:
        return "skipped: " + cell.skipped
    if cell.client_cpu is not None:
        return f"client CPU {cell.client_cpu:.0%}"
    return ""


# -------------------------------------------------------------------------- cli


def pick(names: str | None, items: Sequence, attr: str, what: str) -> list:
    if not names:
        return list(items)
    by_name = {getattr(item, attr): item for item in items}
    unknown = [n for n in names.split(",") if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(by_name)}")
    return [by_name[n] for n in names.split(",")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of discarded load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64, help="HTTP/1.1: wrk -c")
    parser.add_argument("--h2-connections", type=int, default=32,
                        help="HTTP/2: connections per h2load batch (h2load -c)")
    parser.add_argument("--h2-streams", type=int, default=32,
                        help="HTTP/2: concurrent streams per connection (h2load -m)")
    parser.add_argument("--h2-requests-per-connection", type=int, default=500,
                        help="HTTP/2: requests per connection per batch; keep it under every "
                             "server's per-connection cap (hypercorn: 1,000)")
    parser.add_argument("--ws-connections", type=int, default=64,
                        help="WebSocket: concurrent connections")
    parser.add_argument("--ws-in-flight", type=int, default=1,
                        help="WebSocket: messages outstanding per connection")
    parser.add_argument("--ws-size", type=int, default=32, help="WebSocket: bytes per message")
    parser.add_argument("--ws-binary", action="store_true",
                        help="WebSocket: binary messages (default: text)")
    parser.add_argument("--servers", help="comma list: " + ",".join(s.name for s in SERVERS))
    parser.add_argument("--scenarios", help="comma list: " + ",".join(s.key for s in SCENARIOS))
    parser.add_argument("--gateway-args", default="",
                        help='extra gateway flags, e.g. "--http h11" or "--loop uvloop"')
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for name in ("connections", "h2_connections", "h2_streams", "h2_requests_per_connection",
                 "ws_connections", "ws_in_flight", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.ws_size <= 1 << 24:
        parser.error("--ws-size must be between 0 and 16 MiB")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    GATEWAY_EXTRA[:] = shlex.split(args.gateway_args)
    servers = pick(args.servers, SERVERS, "name", "server")
    scenarios = pick(args.scenarios, SCENARIOS, "key", "scenario")
    missing = check_tools(scenarios)
    if missing:
        print("missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    log_dir = args.output.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        tls = make_tls_files(Path(tmp))
        cells = run_all(servers, scenarios, tls, args, log_dir)
    report = "\n".join([*header(servers, scenarios, args), *table(servers, scenarios, cells)]) + "\n"
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}; server logs in {log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
