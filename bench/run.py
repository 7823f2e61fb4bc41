"""Benchmark gateway against other ASGI servers, in one run, on one machine.

Every server serves the same trivial app (bench/app.py) from the benchmark venv
(bench/.venv, made by bench/setup.sh), pinned to CPU 0, while the load generator runs
pinned to CPU 1, so the two never compete for a core. The one exception is the
multi-worker row (h1-workers: every server with 2 worker processes): there nothing is
pinned and the row is for ratios between servers only. Rounds are interleaved and the
report gives the median. See bench/README.md for every row's method.

The modules beside this one each have one job: model (the vocabulary), servers (how each
server starts, per row), process (start, readiness, stop, RSS), wrk / h2load / ws / memory
(the load tools), scenarios (the rows), rounds (the interleaved run), header and report
(the markdown), environment (tools, certificate, static file).

Usage:  python3 bench/run.py [--duration 10] [--rounds 3] [--servers gateway,uvicorn]
                             [--scenarios h1,h1-tls,...] [--python 3.13] [...]

Without --scenarios every row runs; without --servers every server (the ceiling too, in
the rows it can serve).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python3 bench/run.py): make the bench package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.environment import check_tools, make_static_file, make_tls_files  # noqa: E402
from bench.header import header  # noqa: E402
from bench.model import RESULTS, LoadOptions  # noqa: E402
from bench.report import comparisons, tables  # noqa: E402
from bench.rounds import Run, run_all  # noqa: E402
from bench.scenarios import COMPARISONS, SCENARIOS  # noqa: E402
from bench.servers import GATEWAY_EXTRA, SERVERS, with_pythons  # noqa: E402

DEFAULTS = LoadOptions()


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
    add = parser.add_argument
    add("--duration", type=float, default=10, help="seconds per measurement")
    add("--warmup", type=float, default=2, help="seconds of discarded load")
    add("--rounds", type=int, default=3)
    add("--connections", type=int, default=DEFAULTS.connections, help="HTTP/1.1 rates: wrk -c")
    add("--h2-connections", type=int, default=DEFAULTS.h2_connections,
        help="HTTP/2 rates: connections per h2load batch (h2load -c)")
    add("--h2-streams", type=int, default=DEFAULTS.h2_streams,
        help="HTTP/2 rates: concurrent streams per connection (h2load -m)")
    add("--h2-requests-per-connection", type=int, default=DEFAULTS.h2_requests_per_connection,
        help="HTTP/2: requests per connection per batch; keep it under every server's "
             "per-connection cap (hypercorn: 1,000)")
    add("--ws-connections", type=int, default=DEFAULTS.ws_connections,
        help="WebSocket: concurrent connections")
    add("--ws-in-flight", type=int, default=DEFAULTS.ws_in_flight,
        help="WebSocket: messages outstanding per connection")
    add("--ws-size", type=int, default=DEFAULTS.ws_size, help="WebSocket: bytes per message")
    add("--ws-binary", action="store_true", help="WebSocket: binary messages (default: text)")
    add("--body-size", type=int, default=DEFAULTS.body_size,
        help="download, upload and static rows: bytes per body (default 1 MiB)")
    add("--transfer-connections", type=int, default=DEFAULTS.transfer_connections,
        help="download, upload and static rows: wrk -c, h2load -c")
    add("--transfer-streams", type=int, default=DEFAULTS.transfer_streams,
        help="h2-download: concurrent streams per connection (h2load -m)")
    add("--latency-connections", type=int, default=DEFAULTS.latency_connections,
        help="latency row: wrk -c")
    add("--memory-connections", type=int, default=DEFAULTS.memory_connections,
        help="memory rows: idle connections held (e.g. 10000 with --servers gateway)")
    add("--servers", help="comma list: " + ",".join(s.name for s in SERVERS))
    add("--scenarios", help="comma list: " + ",".join(s.key for s in SCENARIOS))
    add("--python", default="",
        help="comma list of other Pythons (3.12,3.13): each chosen server also runs from "
             "bench/.venv-VERSION (bash bench/setup.sh VERSION), as e.g. gateway@3.13")
    add("--gateway-args", default="",
        help='extra gateway flags, e.g. "--http h11" or "--loop uvloop"')
    add("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for field in dataclasses.fields(LoadOptions):
        value = getattr(args, field.name)
        if field.type == "int" and field.name != "ws_size" and value < 1:
            parser.error(f"--{field.name.replace('_', '-')} must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 0 <= args.ws_size <= 1 << 24:
        parser.error("--ws-size must be between 0 and 16 MiB")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    GATEWAY_EXTRA[:] = shlex.split(args.gateway_args)
    options = LoadOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(LoadOptions)})
    pythons = [v for v in args.python.split(",") if v]
    servers = with_pythons(pick(args.servers, SERVERS, "name", "server"), pythons)
    scenarios = pick(args.scenarios, SCENARIOS, "key", "scenario")
    missing = check_tools(scenarios)
    if missing:
        print("missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    log_dir = args.output.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        static = make_static_file(Path(tmp), options.body_size)
        run = Run(options, args.duration, args.warmup, args.rounds, make_tls_files(Path(tmp)),
                  log_dir, {"BENCH_STATIC_FILE": str(static)})
        cells = run_all(servers, scenarios, run)
    report = "\n".join([
        *header(servers, scenarios, options, args.duration, args.warmup, args.rounds),
        *tables(servers, scenarios, cells),
        *comparisons(servers, scenarios, cells, COMPARISONS),
    ]) + "\n"
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}; server logs in {log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
