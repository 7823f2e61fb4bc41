"""HTTP/2 load with h2load, one thread, in batches of fresh connections: req/s and MB/s.

Servers close an h2 connection after some number of requests (hypercorn after 1,000) and
h2load does not reconnect, so one long run would measure that cap (or fail). A
measurement is therefore a series of h2load runs, each on new connections with at most
``--h2-requests-per-connection`` requests on each.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass

from bench.model import LoadResult, LoadSpec
from bench.process import on_cpu

# The first h2load batch of a measurement is this many requests per connection (or
# fewer, under --h2-requests-per-connection); later batches are sized from the rate
# seen so far to end near the deadline, but never below this floor.
H2_MIN_PER_CONNECTION = 64
H2_BATCH_TIMEOUT = 120.0


@dataclass(frozen=True)
class H2Batch:
    """One h2load run: requests that succeeded, DATA bytes, h2load's own time, problems."""

    succeeded: int
    seconds: float
    data_bytes: int = 0
    errors: int = 0
    error_detail: str = ""


def batches(spec: LoadSpec, connections: int, streams: int, path: str) -> LoadResult:
    """Batches until ``spec.duration`` has passed; values ``rate`` (req/s) and ``mbps``.

    Every batch opens ``connections`` new connections and sends at most
    ``--h2-requests-per-connection`` requests on each, ``streams`` at a time. The figures
    are sums over h2load's own elapsed times (which include each batch's connection setup
    and TLS handshakes, but not the process start between batches). The first batch with
    any failure or a protocol other than h2 ends the measurement.
    """
    cap = max(1, spec.options.h2_requests_per_connection)
    per_conn = min(cap, H2_MIN_PER_CONNECTION)
    target = f"http{'s' if spec.tls else ''}://127.0.0.1:{spec.port}{path}"
    succeeded, data, seconds, count = 0, 0, 0.0, 0
    deadline = time.monotonic() + spec.duration
    while True:
        cmd = on_cpu(spec.cpu, ["h2load", "-t1", f"-c{connections}", f"-m{streams}",
                                f"-n{connections * per_conn}", target])
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=H2_BATCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            return LoadResult({}, 1, f"h2load batch {count + 1} took over "
                                     f"{H2_BATCH_TIMEOUT:.0f}s")
        batch = parse_h2load(out.stdout, spec.tls is not None)
        if out.returncode != 0 and not batch.errors:
            batch = H2Batch(batch.succeeded, batch.seconds, batch.data_bytes, 1,
                            f"h2load exited {out.returncode}: {out.stderr.strip()[:200]}")
        count += 1
        succeeded += batch.succeeded
        data += batch.data_bytes
        seconds += batch.seconds
        values = ({"rate": succeeded / seconds, "mbps": data / seconds / 1e6,
                   "requests": float(succeeded)} if seconds > 0 else {})
        if batch.errors:
            return LoadResult(values, batch.errors, f"batch {count}: {batch.error_detail}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return LoadResult(values)
        # Size the next batch to end near the deadline, within [floor, cap] per connection.
        batch_rate = batch.succeeded / batch.seconds if batch.seconds > 0 else 0.0
        wanted = int(batch_rate * remaining / connections) if batch_rate else cap
        per_conn = max(min(cap, H2_MIN_PER_CONNECTION), min(cap, wanted))


def rate(spec: LoadSpec) -> LoadResult:
    """req/s of GET / over ``--h2-connections`` x ``--h2-streams``."""
    return batches(spec, spec.options.h2_connections, spec.options.h2_streams, "/")


def download(spec: LoadSpec) -> LoadResult:
    """MB/s of /download bodies over ``--transfer-connections`` x ``--transfer-streams``."""
    opts = spec.options
    return batches(spec, opts.transfer_connections, opts.transfer_streams,
                   f"/download?size={opts.body_size}")


def parse_h2load(text: str, tls: bool) -> H2Batch:
    """Succeeded requests, DATA bytes and elapsed time of one run; failures and protocol checked.

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
    traffic = re.search(r"^traffic: .*\((\d+)\) data", text, re.MULTILINE)
    if not finished or not reqs:
        last = text.strip().splitlines()[-1:] or ["no output"]
        return H2Batch(0, 0.0, 0, 1, f"no result in h2load output ({last[0][:120]})")
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
    data = int(traffic.group(1)) if traffic else 0
    return H2Batch(ok, seconds, data, errors, "; ".join(details))
