"""The rows of the benchmark, one ``--scenarios`` key each, and how rows compare with each other.

A row is the kind of traffic (load function and tool), what it reports (figures, each in
its unit: one table per unit), the flags servers read to serve it, and a line describing
its method for the report header.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import h2load, memory, wrk, ws
from bench.model import MIB, Check, Figure, LoadOptions, Scenario, TlsFiles
from bench.process import StartError, fetch

MSG = Figure("rate", "msg/s")
MBPS = Figure("mbps", "MB/s")
P50 = Figure("p50", "ms", "p50", lower_is_better=True, decimals=2)
P99 = Figure("p99", "ms", "p99", lower_is_better=True, decimals=2)
KIB = Figure("kib", "KiB/conn", lower_is_better=True, decimals=1)

Describe = Callable[[LoadOptions], str]


def size(n: int) -> str:
    return f"{n // MIB} MiB" if n and n % MIB == 0 else f"{n:,} bytes"


def full_body(path: str) -> Check:
    """GET ``path`` (``{size}`` filled in) must answer 200 with exactly ``--body-size`` bytes.

    Run once per start, so a server answering the row's path wrongly is skipped instead of
    measured. Returns the app's ``x-bench-static`` (``pathsend`` or ``body``), if any.
    """

    def check(port: int, tls: TlsFiles | None, options: LoadOptions) -> str:
        status, headers, body = fetch(port, tls, path.format(size=options.body_size), timeout=10)
        if status != 200 or len(body) != options.body_size:
            raise StartError(f"GET {path}: {status}, {len(body)} bytes, not {options.body_size}")
        return headers.get("x-bench-static", "")

    return check


def h1_rate(o: LoadOptions) -> str:
    return f"wrk -t1 -c{o.connections}, keep-alive GET /; req/s"


def h1_log(o: LoadOptions) -> str:
    return h1_rate(o) + "; each server's own default access log on, into its log file"


def h2_rate(o: LoadOptions) -> str:
    return (f"h2load -t1 -c{o.h2_connections} -m{o.h2_streams} GET / in batches of fresh "
            f"connections, at most {o.h2_requests_per_connection} requests each; req/s")


def ws_echo(carrier: str) -> Describe:
    def describe(o: LoadOptions) -> str:
        kind = "binary" if o.ws_binary else "text"
        return (f"bench/ws_load {carrier}-c{o.ws_connections}, {o.ws_in_flight} in flight per "
                f"connection, {o.ws_size}-byte {kind} messages; msg/s = echoes received per s")

    return describe


def latency(o: LoadOptions) -> str:
    return (f"wrk -t1 -c{o.latency_connections} --latency, keep-alive GET /; p50 and p99 of "
            "wrk's latency histogram, ms, lower is better")


def h1_download(o: LoadOptions) -> str:
    return (f"wrk -t1 -c{o.transfer_connections} GET /download ({size(o.body_size)} in one body "
            "message); MB/s = bytes read per s (10^6 bytes)")


def h1_upload(o: LoadOptions) -> str:
    return (f"wrk -t1 -c{o.transfer_connections} POST /upload of {size(o.body_size)} "
            "(bench/wrk.lua), read fully by the app; MB/s = bodies sent per s")


def h2_download(o: LoadOptions) -> str:
    return (f"h2load -t1 -c{o.transfer_connections} -m{o.transfer_streams} GET /download "
            f"({size(o.body_size)}) over TLS, in batches as above; MB/s = DATA bytes per s")


def static(o: LoadOptions) -> str:
    return (f"wrk -t1 -c{o.transfer_connections} GET /static, a {size(o.body_size)} file: "
            "http.response.pathsend where the server offers it, else read and sent as the body; "
            "MB/s = bytes read per s")


def idle(tls: bool) -> Describe:
    def describe(o: LoadOptions) -> str:
        what = "TLS connections (handshake done)" if tls else "plain connections"
        return (f"{o.memory_connections:,} idle keep-alive {what}, one GET / each "
                "(bench/idle_client.py); KiB/conn = server RSS (process tree) after minus "
                "before, over the count; lower is better")

    return describe


SCENARIOS = [
    Scenario("h1", "HTTP/1.1 plain", False, wrk.rate, h1_rate, canned=True),
    Scenario("h1-tls", "HTTP/1.1 TLS", True, wrk.rate, h1_rate, canned=True),
    Scenario("h2-tls", "h2 TLS", True, h2load.rate, h2_rate, tool="h2load", http2=True),
    Scenario("h2c", "h2c", False, h2load.rate, h2_rate, tool="h2load", http2=True),
    Scenario("ws", "WebSocket echo", False, ws.echo(), ws_echo(""), (MSG,), tool="ws_load",
             websocket=True),
    Scenario("ws-deflate", "WebSocket echo, permessage-deflate", False, ws.echo(("--deflate",)),
             ws_echo("--deflate "), (MSG,), tool="ws_load", websocket=True, deflate=True,
             unavailable=lambda: ws.needs_flag("--deflate")),
    Scenario("ws-h2", "WebSocket echo over h2c (RFC 8441)", False, ws.echo(("--h2",)),
             ws_echo("--h2 "), (MSG,), tool="ws_load", http2=True, websocket=True,
             unavailable=lambda: ws.needs_flag("--h2")),
    Scenario("h1-log", "HTTP/1.1 plain, access log on", False, wrk.rate, h1_log,
             access_log=True),
    Scenario("latency", "HTTP/1.1 plain latency", False, wrk.latency, latency, (P50, P99),
             canned=True),
    Scenario("h1-download", "HTTP/1.1 download", False, wrk.download("/download?size={size}"),
             h1_download, (MBPS,), check=full_body("/download?size={size}")),
    Scenario("h1-upload", "HTTP/1.1 upload", False, wrk.upload, h1_upload, (MBPS,)),
    Scenario("h2-download", "h2 TLS download", True, h2load.download, h2_download, (MBPS,),
             tool="h2load", http2=True, check=full_body("/download?size={size}")),
    Scenario("static", "HTTP/1.1 static file", False, wrk.download("/static"), static, (MBPS,),
             check=full_body("/static")),
    Scenario("memory", "idle memory, plain", False, memory.idle, idle(False), (KIB,), tool="",
             canned=True, idle=True, warmup=False),
    Scenario("memory-tls", "idle memory, TLS", True, memory.idle, idle(True), (KIB,), tool="",
             canned=True, idle=True, warmup=False),
    # Every server with 2 workers; unpinned (see Scenario.pinned): ratios only.
    Scenario("h1-workers", "HTTP/1.1 plain, 2 workers (unpinned: ratio only)", False, wrk.rate,
             h1_rate, workers=2),
]

# Rows read against another row of the same server: (row, reference row, what the ratio says).
COMPARISONS = [
    ("h1-log", "h1", "access log on / off"),
    ("ws-deflate", "ws", "WebSocket echo with permessage-deflate / without"),
    ("ws-h2", "ws", "WebSocket echo over h2c / over HTTP/1.1"),
]
