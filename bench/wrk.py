"""HTTP/1.1 load with wrk, one thread: rates, latency percentiles, and bytes moved.

Every run uses bench/wrk.lua, which defines no per-request function (so wrk sends its one
pre-formatted request, as without a script) and prints wrk's own summary as a JSON line:
requests, duration, bytes read, errors by kind, latency percentiles.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from bench.model import BENCH_DIR, LoadFn, LoadResult, LoadSpec, failed
from bench.process import on_cpu

SCRIPT = BENCH_DIR / "wrk.lua"


@dataclass(frozen=True)
class WrkSummary:
    requests: int
    seconds: float
    bytes_read: int
    errors: int
    error_detail: str
    p50_ms: float
    p99_ms: float

    def result(self, values: dict[str, float]) -> LoadResult:
        return LoadResult({**values, "requests": float(self.requests)}, self.errors,
                          self.error_detail)


def url(spec: LoadSpec, path: str = "/") -> str:
    return f"http{'s' if spec.tls else ''}://127.0.0.1:{spec.port}{path}"


def run_wrk(spec: LoadSpec, connections: int, path: str = "/", upload: int = 0,
            latency: bool = False) -> WrkSummary | str:
    """One wrk run; the summary, or why there is none."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(spec.duration))}s",
           *(["--latency"] if latency else []), "-s", str(SCRIPT), url(spec, path)]
    if upload:
        cmd += ["--", "upload", str(upload)]
    out = subprocess.run(on_cpu(spec.cpu, cmd), capture_output=True, text=True,
                         timeout=spec.duration + 60)
    if out.returncode != 0:
        return f"wrk exited {out.returncode}: {out.stderr.strip()[:200]}"
    return parse_wrk(out.stdout)


def parse_wrk(text: str) -> WrkSummary | str:
    """The JSON line wrk.lua's done() prints; every socket error and non-2xx/3xx counts."""
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("{")), "")
    try:
        data = json.loads(line)
    except ValueError:
        return "no summary in wrk output"
    kinds = ("connect", "read", "write", "timeout", "status")
    errors = sum(data[k] for k in kinds)
    detail = ", ".join(f"{k} {data[k]}" for k in kinds if data[k])
    return WrkSummary(data["requests"], data["duration_us"] / 1e6, data["bytes"], errors,
                      f"wrk errors: {detail}" if detail else "",
                      data["p50_us"] / 1000, data["p99_us"] / 1000)


def rate(spec: LoadSpec) -> LoadResult:
    """Requests/s of keep-alive GET / over ``--connections``."""
    run = run_wrk(spec, spec.options.connections)
    if isinstance(run, str):
        return failed(run)
    return run.result({"rate": run.requests / run.seconds})


def latency(spec: LoadSpec) -> LoadResult:
    """p50 and p99 in ms of GET / over ``--latency-connections`` (few: a latency, not a queue)."""
    run = run_wrk(spec, spec.options.latency_connections, latency=True)
    if isinstance(run, str):
        return failed(run)
    return run.result({"p50": run.p50_ms, "p99": run.p99_ms, "rate": run.requests / run.seconds})


def download(path: str) -> LoadFn:
    """MB/s (10^6 bytes) read from ``path`` over ``--transfer-connections``."""

    def load(spec: LoadSpec) -> LoadResult:
        run = run_wrk(spec, spec.options.transfer_connections,
                      path.format(size=spec.options.body_size))
        if isinstance(run, str):
            return failed(run)
        return run.result({"mbps": run.bytes_read / run.seconds / 1e6})

    return load


def upload(spec: LoadSpec) -> LoadResult:
    """MB/s of request bodies POSTed to /upload, which reads each fully (400 if short)."""
    size = spec.options.body_size
    run = run_wrk(spec, spec.options.transfer_connections, "/upload", upload=size)
    if isinstance(run, str):
        return failed(run)
    return run.result({"mbps": run.requests * size / run.seconds / 1e6})

