"""`gateway` as a process tree: its log read as it is written, its workers found by pid.

The supervisor and its workers share one stderr, read here by a thread, so that a test can
wait for a line ("worker 2 (pid 123) ready") while the processes keep logging."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_READY = re.compile(r"worker (\d+) \(pid (\d+)\) ready")
_LISTENING = re.compile(r"listening on \w+://\S+:(\d+)")


class Tree:
    """`python -m gateway ARGS` in `cwd`, with its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                 pass_fds: tuple[int, ...] = (), prefix: list[str] | None = None) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        command = prefix if prefix is not None else [sys.executable, "-m", "gateway"]
        self.process = subprocess.Popen(
            [*command, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=full_env, pass_fds=pass_fds,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 15.0) -> list[re.Match[str]]:
        """The first `count` matches of `pattern` in the log, waiting for them to appear."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for line in self.lines for m in [regex.search(line)] if m]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {count} x {pattern!r} in the log:\n{''.join(self.lines)}")
                self._changed.wait(min(remaining, 0.2))

    def port(self) -> int:
        return int(self.wait_for(_LISTENING.pattern)[0].group(1))

    def ready_workers(self, count: int, timeout: float = 20.0) -> list[tuple[int, int]]:
        """(number, pid) of the first `count` workers that said they were ready."""
        return [(int(m.group(1)), int(m.group(2)))
                for m in self.wait_for(_READY.pattern, count, timeout)]

    def live_workers(self) -> set[int]:
        """Pids of the supervisor's children alive now."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"gateway did not exit within {timeout}s:\n{self.text}") from None
        self._reader.join(5)
        return code

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Kill the whole tree (the test failed or is over)."""
        for pid in self.live_workers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def process_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
