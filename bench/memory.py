"""Idle memory per connection: the server's RSS before and after N idle keep-alive connections.

The client (bench/idle_client.py, pinned to the load CPU like every load generator) opens
the connections, one request each, and holds them; the server's RSS is read (summed over
its process tree) before it starts and once all are idle, and the difference divided by N
is the figure. Between the two readings nothing else runs on the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.model import BENCH_DIR, LoadResult, LoadSpec, failed
from bench.process import fetch, on_cpu, tree_rss_kib

CLIENT = BENCH_DIR / "idle_client.py"
# Before the first reading: a few requests, so that code a server loads or caches on its first
# requests (lazy imports, date header caches) is in the "before" and not charged to the
# connections; then a pause for the server to finish with them.
WARM_REQUESTS = 20
SETTLE = 1.0


def idle(spec: LoadSpec) -> LoadResult:
    """KiB per idle connection (``kib``) and the server's RSS with all of them open (``rss_mib``)."""
    count = spec.options.memory_connections
    for _ in range(WARM_REQUESTS):
        fetch(spec.port, spec.tls)
    time.sleep(SETTLE)
    before = tree_rss_kib(spec.server_pid)
    cmd = [sys.executable, str(CLIENT), "--port", str(spec.port), "--connections", str(count)]
    if spec.tls:
        cmd += ["--ca", str(spec.tls.ca)]
    client = subprocess.Popen(on_cpu(spec.cpu, cmd), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert client.stdin is not None and client.stdout is not None
    try:
        opened = json.loads(client.stdout.readline() or "{}")
        time.sleep(SETTLE)
        after = tree_rss_kib(spec.server_pid)
        client.stdin.write("\n")
        client.stdin.flush()
        held = json.loads(client.stdout.readline() or "{}")
    except ValueError as exc:
        return failed(f"idle client: {exc}")
    finally:
        client.stdin.close()
        client.wait(60)
    if "open" not in opened:
        return failed("idle client printed nothing")
    errors, details = int(opened["errors"]), [opened["detail"]] if opened["detail"] else []
    lost = opened["open"] - held.get("still_open", 0)
    if lost:
        errors += lost
        details.append(f"{lost} of {opened['open']} idle connections closed by the server")
    values = {"kib": (after - before) / count, "rss_mib": after / 1024}
    note = f"RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB with {count:,} open"
    return LoadResult(values, errors, "; ".join(details), note=note)
