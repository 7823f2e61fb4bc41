"""Interleaved rounds: every row, every server, one fresh server process per measurement.

Round 1 runs every server in every row, then round 2, and so on, so that a slow drift of
the machine (thermal, noisy neighbours) spreads over all servers instead of penalising
whichever ran last. A server that cannot take part in a row (no RFC 8441, the ceiling
outside GET /, a ``--python`` venv never built) or fails to start is skipped in that row,
with the reason, from then on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.environment import missing_venv
from bench.model import (
    LOAD_CPU,
    SERVER_CPU,
    Cell,
    Launch,
    LoadOptions,
    LoadResult,
    LoadSpec,
    Scenario,
    Server,
    ServerCpu,
    TlsFiles,
)
from bench.process import RunningServer, StartError, free_port, tree_cpu_seconds, wait_ready
from bench.report import one_line


class Run:
    """The settings of one run, shared by every measurement in it."""

    def __init__(self, options: LoadOptions, duration: float, warmup: float, rounds: int,
                 tls: TlsFiles, log_dir: Path, env: dict[str, str]) -> None:
        self.options = options
        self.duration = duration
        self.warmup = warmup
        self.rounds = rounds
        self.tls = tls
        self.log_dir = log_dir
        self.env = env   # for every server, e.g. BENCH_STATIC_FILE

    def spec(self, scenario: Scenario, port: int, pid: int, duration: float) -> LoadSpec:
        return LoadSpec(port, self.tls if scenario.tls else None, duration, self.options, pid,
                        LOAD_CPU if scenario.pinned else None)

    def measure(self, server: Server, scenario: Scenario) -> LoadResult:
        """Start, wait until it answers, check the row's path, warm up, measure, stop.

        Raises StartError. In the access-log row the log file must hold at least a line per
        measured request afterwards, or the server was not logging and the row is invalid.
        """
        port = free_port()
        tls = self.tls if scenario.tls else None
        log_path = self.log_dir / f"{server.name}-{scenario.key}.log"
        launch = Launch(port, scenario, tls, server.bin_dir, self.options)
        try:
            running = RunningServer(server.command(launch), log_path,
                                    SERVER_CPU if scenario.pinned else None, self.env)
        except OSError as exc:
            raise StartError(str(exc)) from exc
        try:
            wait_ready(running, port, tls, scenario.workers)
            note = scenario.check(port, tls, self.options) if scenario.check else ""
            pid = running.proc.pid
            if scenario.warmup and self.warmup > 0:
                scenario.load(self.spec(scenario, port, pid, self.warmup))
            cpu_before, started = tree_cpu_seconds(pid), time.monotonic()
            result = scenario.load(self.spec(scenario, port, pid, self.duration))
            result = with_server_cpu(result, tree_cpu_seconds(pid), cpu_before,
                                     time.monotonic() - started)
            if running.proc.poll() is not None:
                raise StartError(f"died during the run:\n{running.log_tail()}")
        finally:
            running.stop()
        if note:
            result = replace(result, note="; ".join(n for n in (note, result.note) if n))
        if scenario.access_log:
            result = check_logged(result, running.log_lines())
        return result


def with_server_cpu(result: LoadResult, after: tuple[float, float], before: tuple[float, float],
                    wall: float) -> LoadResult:
    """``result`` with the server's CPU per request or message over the load tool's run (its
    connects and closes around the measured seconds included)."""
    for key, per in (("requests", "req"), ("messages", "msg")):
        count = result.values.get(key)
        if count and wall > 0:
            user, system = after[0] - before[0], after[1] - before[1]
            return replace(result, server_cpu=ServerCpu(user / count * 1e6, system / count * 1e6,
                                                         (user + system) / wall, per))
    return result


def check_logged(result: LoadResult, lines: int) -> LoadResult:
    requests = int(result.values.get("requests", 0))
    if lines >= requests:
        return result
    return replace(result, errors=result.errors + 1,
                   error_detail=f"{lines:,} log lines for {requests:,} requests: access log off?")


def unable(server: Server, scenario: Scenario) -> str:
    """Why this server sits out this row ("" if it takes part)."""
    return scenario.unavailable() or server.supports(scenario) or missing_venv(server)


def run_all(servers: Sequence[Server], scenarios: Sequence[Scenario],
            run: Run) -> dict[tuple[str, str], Cell]:
    cells = {(sc.key, sv.name): Cell(skipped=unable(sv, sc)) for sc in scenarios for sv in servers}
    for rnd in range(1, run.rounds + 1):
        for scenario in scenarios:
            for server in servers:
                cell = cells[(scenario.key, server.name)]
                if cell.skipped:
                    continue
                label = f"[round {rnd}/{run.rounds}] {scenario.key:<12} {server.name:<14}"
                print(label, end=" ", flush=True, file=sys.stderr)
                try:
                    result = run.measure(server, scenario)
                except StartError as exc:
                    cell.skipped = one_line(str(exc))
                    print(f"SKIPPED: {exc}", file=sys.stderr)
                    continue
                cell.results.append(result)
                print(progress(scenario, result), file=sys.stderr)
    return cells


def progress(scenario: Scenario, result: LoadResult) -> str:
    """One stderr line per measurement: every figure, then the note and any errors."""
    figures = [f"{result.values[f.key]:>10,.{f.decimals}f} {f.unit} {f.label}".rstrip()
               for f in scenario.figures if f.key in result.values]
    extra = [result.note] if result.note else []
    if result.client_cpu is not None:
        extra.append(f"client CPU {result.client_cpu:.0%}")
    if result.server_cpu is not None:
        extra.append(result.server_cpu.text())
    if result.errors:
        extra.append(f"ERRORS {result.errors}: {result.error_detail}")
    return "  ".join([*figures, *(f"({e})" for e in extra)]) or "no figure"
