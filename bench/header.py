"""The report's header: when, on what machine, which versions, and each row's method.

Versions are asked of the venv each server runs from (bench/.venv, or bench/.venv-3.13
for ``--python 3.13``), since that is what runs them, not of the harness's interpreter.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.model import LOAD_CPU, ROOT, SERVER_CPU, VENV_BIN, LoadOptions, Scenario, Server
from bench.servers import GATEWAY_EXTRA

VERSIONS_CODE = (
    "import importlib.metadata as m, platform, sys\n"
    "print('python', platform.python_version())\n"
    "for d in sys.argv[1:]:\n"
    "    try: print(d, m.version(d))\n"
    "    except m.PackageNotFoundError: print(d, 'not-installed')\n"
)


def venv_versions(bin_dir: Path, distributions: Sequence[str]) -> dict[str, str]:
    """``python`` and each distribution's version in one venv ({} if it cannot be asked)."""
    try:
        out = subprocess.run([str(bin_dir / "python"), "-c", VERSIONS_CODE, *distributions],
                             capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return {}
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def versions(servers: Sequence[Server]) -> dict[str, str]:
    """Each server's version, and its Python where that is not the bench venv's."""
    by_venv: dict[Path, dict[str, str]] = {}
    out = {}
    for server in servers:
        if server.bin_dir not in by_venv:
            dists = [s.distribution for s in servers if s.bin_dir == server.bin_dir]
            by_venv[server.bin_dir] = venv_versions(server.bin_dir, dists)
        found = by_venv[server.bin_dir]
        text = found.get(server.distribution, "?")
        if server.python:
            text += f" (Python {found.get('python', 'not set up')})"
        out[server.name] = text
    return out


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


def tool_version(command: list[str], pattern: str) -> str:
    """The version a load generator prints ("?" if it will not say)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True)
    except OSError:
        return "?"
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "?"


def tools_line(scenarios: Sequence[Scenario]) -> str:
    tools = {sc.tool for sc in scenarios}
    parts = []
    if "wrk" in tools:
        parts.append("wrk " + tool_version(["wrk", "-v"], r"wrk (?:debian/)?(\S+)"))
    if "h2load" in tools:
        parts.append("h2load " + tool_version(["h2load", "--version"], r"nghttp2/(\S+)"))
    if "ws_load" in tools:
        parts.append("bench/ws_load.c")
    if any(sc.key.startswith("memory") for sc in scenarios):
        parts.append("bench/idle_client.py")
    return ", ".join(parts)


def untimed(scenarios: Sequence[Scenario]) -> str:
    """The rows that take neither duration nor warm-up (memory: nothing there is timed)."""
    keys = [f"`{sc.key}`" for sc in scenarios if not sc.warmup]
    return f" (not {', '.join(keys)}: see below)" if keys else ""


def header(servers: Sequence[Server], scenarios: Sequence[Scenario], options: LoadOptions,
           duration: float, warmup: float, rounds: int) -> list[str]:
    vers = versions(servers)
    for name in vers:
        if name == "gateway" or name.startswith("gateway@"):
            vers[name] += f" at {git_revision()}"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    python = venv_versions(VENV_BIN, []).get("python", "?")
    lines = [
        f"# ASGI server benchmark, {now}",
        "",
        f"Machine: {cpu_model()}, nproc {os.cpu_count()}; Python {python}; "
        f"server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU}"
        + ("" if all(sc.pinned for sc in scenarios) else
           " (unpinned rows: servers and load generator share every core)") + ".",
        "Servers: " + ", ".join(f"{name} {v}" for name, v in vers.items()) + "."
        + (f" gateway extra flags: `{shlex.join(GATEWAY_EXTRA)}`." if GATEWAY_EXTRA else ""),
        f"Load: {tools_line(scenarios)}; {duration:g}s per measurement after {warmup:g}s "
        f"warm-up{untimed(scenarios)}, {rounds} interleaved round(s), median reported. Rows:",
        "",
    ]
    lines += [f"- `{sc.key}`: {sc.describe(options)}" for sc in scenarios]
    return [*lines, ""]
