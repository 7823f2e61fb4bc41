"""WebSocket echo load with bench/ws_load (one thread, epoll), in messages/s.

Python clients cannot load a server on one core, hence the C client. Three carriers:
plain HTTP/1.1 upgrade (``ws``), the same offering permessage-deflate as browsers do
(``ws-deflate``, ws_load ``--deflate``), and HTTP/2 in clear text by prior knowledge with
RFC 8441 extended CONNECT, one WebSocket stream per connection (``ws-h2``, ``--h2``).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess

from bench.model import WS_LOAD, LoadFn, LoadResult, LoadSpec
from bench.process import on_cpu

WS_TIMEOUT_EXTRA = 60.0   # ws_load's own connect/drain/close timeouts are 10 + 5 + 5 s


def echo(flags: tuple[str, ...] = ()) -> LoadFn:
    """A load function running ws_load with ``flags`` (e.g. ``("--deflate",)``)."""

    def load(spec: LoadSpec) -> LoadResult:
        """It opens ``--ws-connections`` WebSockets, starts the clock once all are open,
        keeps ``--ws-in-flight`` messages of ``--ws-size`` bytes outstanding on each for
        ``spec.duration`` seconds, then collects the stragglers and closes every connection
        with a close handshake. Its error count covers failed connects and handshakes,
        wrong echoes, server closes or EOFs, echoes that never came and close handshakes
        that did not complete."""
        opts = spec.options
        cmd = [str(WS_LOAD), "--port", str(spec.port), "--connections", str(opts.ws_connections),
               "--in-flight", str(opts.ws_in_flight), "--size", str(opts.ws_size),
               "--duration", f"{spec.duration:g}", *flags]
        if opts.ws_binary:
            cmd.append("--binary")
        try:
            out = subprocess.run(on_cpu(spec.cpu, cmd), capture_output=True, text=True,
                                 timeout=spec.duration + WS_TIMEOUT_EXTRA)
        except subprocess.TimeoutExpired:
            return LoadResult({}, 1, f"ws_load took over {spec.duration + WS_TIMEOUT_EXTRA:.0f}s")
        return parse_ws_load(out.stdout, out.returncode, out.stderr)

    return load


def parse_ws_load(text: str, returncode: int = 0, stderr: str = "") -> LoadResult:
    """messages/s, errors and client CPU from ws_load's JSON line."""
    lines = text.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        why = (stderr.strip() or text.strip() or "no output")[:200]
        return LoadResult({}, 1, f"ws_load exited {returncode}: {why}")
    errors = int(result["errors"])
    detail = result.get("error_detail", "")
    if errors and result.get("open", 0) < result.get("connections", 0):
        detail = f"{result['open']}/{result['connections']} connections opened; {detail}"
    if returncode != 0 and not errors:
        errors, detail = 1, f"ws_load exited {returncode}"
    return LoadResult({"rate": float(result["msg_per_sec"]), "messages": float(result["messages"])},
                      errors, detail,
                      client_cpu=float(result["client_cpu"]))


@functools.cache
def usage() -> str:
    """What ``ws_load --help`` prints (it prints its usage for any unknown flag)."""
    try:
        out = subprocess.run([str(WS_LOAD), "--help"], capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return out.stdout + out.stderr


def needs_flag(flag: str) -> str:
    """Why a row cannot run, if this ws_load is older than the ``flag`` it needs; else ""."""
    if not WS_LOAD.exists():
        return ""   # check_tools reports the missing binary itself
    # A whole flag, so that e.g. --h2 is not found inside --h2-something.
    if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", usage()):
        return ""
    return f"{WS_LOAD.name} has no {flag} yet (rebuild it: bash bench/setup.sh)"
