"""Server processes: start pinned in their own group, wait until the app answers, stop, RSS.

The own process group matters: every server but a one-worker gateway or uvicorn starts
worker processes (gunicorn forks, hypercorn, granian and uvicorn spawn with
multiprocessing, gateway's supervisor with subprocess), all in the parent's group, and a
SIGKILL to the parent alone would leave those holding the port and a core.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from bench.model import EXPECTED_BODY, ROOT, SERVER_CPU, TlsFiles

START_TIMEOUT = 20.0
STOP_GRACE = 5.0


class StartError(Exception):
    """The server did not come up, or answered wrongly; the message says why."""


def on_cpu(cpu: str | None, cmd: list[str]) -> list[str]:
    """``cmd`` under ``taskset -c cpu``, or as it is when ``cpu`` is None (unpinned).

    taskset execs the command, so the pid Popen reports is the server's own.
    """
    return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def _raise_nofile() -> None:
    """Soft descriptor limit up to the hard one, so a server can hold the memory rows'
    thousands of idle connections (setrlimit in the child, before exec)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class RunningServer:
    """A server subprocess pinned to ``cpu`` (unpinned if None), in its own process group.

    stdout and stderr go to ``log_path``, a regular file: the access-log row measures each
    server writing its log to a file, not to a pipe or a terminal.
    """

    def __init__(self, cmd: list[str], log_path: Path, cpu: str | None = SERVER_CPU,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            on_cpu(cpu, cmd), cwd=ROOT, env=full_env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_raise_nofile,
        )

    def log_tail(self, lines: int = 8) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join("    " + line for line in text[-lines:])

    def log_lines(self) -> int:
        with self.log_path.open("rb") as file:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))

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


def fetch(port: int, tls: TlsFiles | None, path: str = "/",
          timeout: float = 2) -> tuple[int, dict[str, str], bytes]:
    """One GET on a new connection: status, headers (lower-case names), body."""
    if tls:
        ctx = ssl.create_default_context(cafile=str(tls.ca))
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def probe(port: int, tls: TlsFiles | None) -> None:
    """One real GET; raises unless the answer is the app's 200 ``Hello, world!``.

    Checking the body (not just an open port) catches a server that listens but
    fails to load the app, which would otherwise benchmark its error page.
    """
    status, _headers, body = fetch(port, tls)
    if status != 200 or body != EXPECTED_BODY:
        raise StartError(f"unexpected answer: {status} {body[:80]!r}")


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


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc (a parent plus its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces; ppid follows it.
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children.get(current, [])
    return pids


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in KiB (VmRSS from /proc).

    Summed over the tree, so a parent plus worker (hypercorn, granian, gunicorn) counts
    both; pages a forked worker shares with its parent count twice, which cancels out in
    a before/after difference.
    """
    total = 0
    for current in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds ``pid`` and its descendants have used so far (utime and
    stime from /proc), to split a row's cost between the server's own code and the kernel."""
    user = system = 0
    for current in tree_pids(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat[stat.rfind(")") + 2:].split()
            user += int(fields[11])     # utime, field 14 of proc(5)
            system += int(fields[12])   # stime, field 15
    return user / CLOCK_TICKS, system / CLOCK_TICKS
