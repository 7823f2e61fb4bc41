"""The supervisor: binds every listener once, runs worker processes over those sockets, and
keeps the right number of them alive.

It never runs the app. Its loop is plain `select` over a wake-up pipe (signals, file changes)
and the workers' report pipes (worker.py), so it has nothing to block on and nothing a worker's
trouble can reach.

- A worker that dies is replaced. One whose loop is blocked (no report for --worker-timeout)
  has its stacks printed (faulthandler) and is killed, then replaced.
- A worker that fails to start stops everything with exit status 3, with the reason said
  once; under --reload the supervisor waits for the next edit instead, and the workers
  already serving keep serving.
- SIGHUP, a change under --reload, and a worker past --max-requests roll: one new worker
  starts, and only once it accepts is the old one told to stop. The sockets stay open
  throughout, so no client is refused.
- SIGTTIN and SIGTTOU add and remove a worker. SIGTERM and SIGINT stop every worker
  gracefully within --graceful-timeout, then the supervisor exits 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .logs import error_logger
from .reload import ChangeWatcher
from .sockets import Listener, open_listeners
from .tls.context import certificate_files, create_ssl_context
from .worker import DUMP_SIGNAL, set_process_title

# Exit status when a worker cannot start: the CLI's "start-up failed".
EXIT_STARTUP_FAILED = 3
# How long a worker may take to import the app and run lifespan start-up: longer than a
# heartbeat may lapse, since a large app can take many seconds to import.
BOOT_TIMEOUT = 60.0
# After the stacks of a blocked worker are printed, how long before it is killed.
DUMP_GRACE = 0.5
# Past --graceful-timeout, how long workers get to finish their own forced stop.
STOP_MARGIN = 5.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HANDLED = (*_STOP_SIGNALS, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)
# What the file watcher writes to the wake-up pipe; signals write their number.
_CHANGES = 0


@dataclass(eq=False)
class Worker:
    """One worker process as the supervisor sees it."""

    number: int
    process: subprocess.Popen[bytes]
    reports: int
    last_seen: float
    ready: bool = False
    retiring: bool = False
    # The worker this one takes over from: told to stop once this one is ready.
    replaces: Worker | None = None
    failure: str | None = None
    kill_at: float | None = None
    # A retiring worker still running by then is killed.
    deadline: float | None = None
    buffer: bytes = b""
    # Why it was killed, if the supervisor killed it.
    killed_for: str | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def __str__(self) -> str:
        return f"worker {self.number} (pid {self.pid})"


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.target = config.workers
        self.listeners: list[Listener] = []
        self.workers: list[Worker] = []
        self.selector = selectors.DefaultSelector()
        self.wake_read, self.wake_write = os.pipe()
        # Workers still to be replaced, one at a time, in a rolling restart.
        self.rolling: deque[Worker] = deque()
        self.roll_again = False
        self.stopping = False
        self.exit_status = 0
        # Under --reload, after a start-up failure: start nothing until the next change.
        self.broken = False
        self.watcher: ChangeWatcher | None = None
        self.changes: list[str] = []
        self.changes_lock = threading.Lock()
        # --metrics-bind: the scrape of every worker, /livez and /readyz (metrics.py).
        self.metrics: Any = None

    # -- start and stop -----------------------------------------------------------------------

    def run(self) -> int:
        """Serve until told to stop; the exit status. ConfigError (bad certificate, address
        in use) before any worker starts."""
        config = self.config
        set_process_title(f"gateway: supervisor {config.app}")
        material = certificate_files(config)
        if material is not None:  # checked once here: a bad certificate is one line, exit 2
            create_ssl_context(config, material[0], material[1], ["h2", "http/1.1"])
        self.listeners = open_listeners(config)
        try:
            if config.metrics_bind is not None:
                self._start_metrics()
            scheme = "https" if material is not None else "http"
            for listener in self.listeners:
                shown = scheme if listener.secure else "http"
                error_logger.info("listening on %s%s", listener.describe(shown),
                                  " (redirects to HTTPS)" if listener.redirect else "")
            return self._supervise()
        finally:
            for listener in self.listeners:
                listener.close()
            if self.watcher is not None:
                self.watcher.stop()
            if self.metrics is not None:
                self.metrics.stop()

    def _start_metrics(self) -> None:
        """Workers write their metrics to a fresh multiprocess directory (named in the
        environment they inherit); a thread answers scrapes with the sum over them."""
        from .metrics import SupervisorMetrics, prepare_directory, remove_directory

        prepare_directory()
        try:
            self.metrics = SupervisorMetrics(self.config, self._ready)
        except BaseException:
            remove_directory()
            raise
        self.metrics.start()

    def _ready(self) -> bool:
        """/readyz: a worker is serving and no stop has begun. Read from the metrics thread."""
        return not self.stopping and any(
            worker.ready and not worker.retiring for worker in list(self.workers)
        )

    def _supervise(self) -> int:
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        previous = {signum: signal.signal(signum, _note_signal) for signum in _HANDLED}
        previous_fd = signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        try:
            if self.config.reload:
                self._watch()
            error_logger.info(
                "supervisor pid %d: starting %d worker(s)%s", os.getpid(), self.target,
                ", reloading on changes" if self.config.reload else "",
            )
            for number in range(1, self.target + 1):
                self._spawn(number)
            while self.workers or not self.stopping:
                self._turn()
        finally:
            signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.exit_status

    def _watch(self) -> None:
        config = self.config
        self.watcher = ChangeWatcher(config.reload_dirs, config.reload_includes,
                                     config.reload_excludes, config.reload_delay)

        def changed(paths: list[str]) -> None:
            with self.changes_lock:
                self.changes += paths
            with contextlib.suppress(BlockingIOError):
                os.write(self.wake_write, bytes([_CHANGES]))

        self.watcher.start(changed)
        dirs = ", ".join(config.reload_dirs) or os.getcwd()
        error_logger.info("watching %s for changes (%s)", dirs, self.watcher.backend)

    def _stop(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.stopping:
            error_logger.info("%s again: stopping the workers now", name)
            for worker in self.workers:
                _signal(worker, signal.SIGINT)
            return
        error_logger.info("%s received: stopping %d worker(s) gracefully", name, len(self.workers))
        self._halt(0)

    def _halt(self, status: int) -> None:
        """Stop every worker gracefully, then exit with `status`."""
        self.stopping = True
        self.exit_status = status
        self.rolling.clear()
        for listener in self.listeners:
            listener.sock.close()  # once the workers close theirs, new clients are refused
        for worker in self.workers:
            self._retire(worker)

    # -- the loop -----------------------------------------------------------------------------

    def _turn(self) -> None:
        for key, _ in self.selector.select(self._next_deadline()):
            if key.fd == self.wake_read:
                self._woken()
            else:
                self._read_reports(key.data)
        self._reap()
        self._check_health()
        if not self.stopping:
            self._keep_count()

    def _next_deadline(self) -> float:
        pending = [worker.kill_at for worker in self.workers if worker.kill_at is not None]
        return max(0.0, min([1.0, *(at - time.monotonic() for at in pending)]))

    def _woken(self) -> None:
        try:
            data = os.read(self.wake_read, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum in _STOP_SIGNALS:
                self._stop(signum)
            elif self.stopping:
                continue
            elif signum == signal.SIGHUP:
                error_logger.info("SIGHUP received: replacing the workers one at a time")
                self._roll()
            elif signum == signal.SIGTTIN:
                self.target += 1
                error_logger.info("SIGTTIN received: %d worker(s) now", self.target)
            elif signum == signal.SIGTTOU:
                self._remove_one()
            elif signum == _CHANGES:
                self._changed()

    def _changed(self) -> None:
        with self.changes_lock:
            paths, self.changes = self.changes, []
        if not paths:
            return
        shown = ", ".join(sorted({os.path.relpath(path) for path in paths})[:5])
        error_logger.info("changes in %s: reloading", shown)
        self.broken = False
        self._roll()

    def _remove_one(self) -> None:
        if self.target <= 1:
            error_logger.info("SIGTTOU received: keeping the last worker")
            return
        self.target -= 1
        error_logger.info("SIGTTOU received: %d worker(s) now", self.target)
        for worker in sorted(self._serving(), key=lambda worker: -worker.number):
            if worker.number > self.target:
                self._retire(worker)

    # -- reports ------------------------------------------------------------------------------

    def _read_reports(self, worker: Worker) -> None:
        try:
            data = os.read(worker.reports, 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(worker.reports)
            os.close(worker.reports)
            worker.reports = -1
            return
        worker.last_seen = time.monotonic()
        lines = (worker.buffer + data).split(b"\n")
        worker.buffer = lines.pop()
        for line in lines:
            self._report(worker, line)

    def _report(self, worker: Worker, line: bytes) -> None:
        kind, _, rest = line.partition(b" ")
        if kind == b"ready":
            worker.ready = True
            error_logger.info("%s ready", worker)
            old = worker.replaces
            worker.replaces = None
            if old is not None and old in self.workers:
                self._retire(old)
            self._next_in_roll()
        elif kind == b"recycle" and not worker.retiring and not self.stopping:
            if self.metrics is not None:
                self.metrics.restarted("recycled")
            self._replace(worker)
        elif kind == b"failed":
            try:
                worker.failure = json.loads(rest)
            except ValueError:
                worker.failure = rest.decode(errors="replace")

    # -- workers ending -----------------------------------------------------------------------

    def _reap(self) -> None:
        for worker in list(self.workers):
            status = worker.process.poll()
            if status is None:
                continue
            self.workers.remove(worker)
            if worker.reports >= 0:
                with contextlib.suppress(OSError):
                    self._read_reports(worker)  # the last words: a start-up failure
                if worker.reports >= 0:
                    self.selector.unregister(worker.reports)
                    os.close(worker.reports)
            if self.metrics is not None:
                self.metrics.worker_ended(worker.pid)
            self._ended(worker, status)

    def _ended(self, worker: Worker, status: int) -> None:
        if worker.retiring:
            error_logger.info("%s stopped", worker)
            return
        if not worker.ready:
            self._failed_to_start(worker, status)
            return
        if worker.killed_for is None:
            error_logger.warning("%s exited (%s): starting another", worker, _describe_status(status))
        if self.metrics is not None and not self.stopping:
            self.metrics.restarted("died" if worker.killed_for is None else "heartbeat")
        if worker in self.rolling:
            self.rolling.remove(worker)

    def _failed_to_start(self, worker: Worker, status: int) -> None:
        reason = worker.failure or worker.killed_for or (
            f"it exited ({_describe_status(status)}) before it was ready"
        )
        replacing = worker.replaces is not None
        if self.stopping:
            return
        if self.config.reload:
            error_logger.error(
                "the app failed to start%s; waiting for the next change:\n%s",
                ", the workers already running keep serving" if replacing else "", reason.rstrip(),
            )
            self.broken = True
            self.rolling.clear()
            return
        if replacing:
            error_logger.error(
                "%s failed to start, the workers already running keep serving:\n%s", worker,
                reason.rstrip(),
            )
            self.rolling.clear()
            return
        error_logger.error("%s failed to start, stopping:\n%s", worker, reason.rstrip())
        self._halt(EXIT_STARTUP_FAILED)

    # -- health -------------------------------------------------------------------------------

    def _check_health(self) -> None:
        now = time.monotonic()
        timeout = self.config.worker_timeout
        for worker in self.workers:
            if worker.kill_at is not None:
                if now >= worker.kill_at:
                    worker.kill_at = None
                    _signal(worker, signal.SIGKILL)
                continue
            if worker.retiring:
                # Draining: its loop no longer beats, but it has a deadline.
                if worker.deadline is not None and now >= worker.deadline:
                    error_logger.warning("%s still running past --graceful-timeout: killing it", worker)
                    worker.deadline = None
                    _signal(worker, signal.SIGKILL)
                continue
            if worker.killed_for is not None:
                continue
            if worker.ready and now - worker.last_seen > timeout:
                worker.killed_for = (f"no heartbeat for {timeout:g}s (--worker-timeout): its "
                                     "event loop is blocked")
                error_logger.error("%s sent no heartbeat for %gs (--worker-timeout): its event "
                                   "loop is blocked; killing it, stacks below", worker, timeout)
            elif not worker.ready and now - worker.last_seen > max(timeout, BOOT_TIMEOUT):
                worker.killed_for = (f"it did not start within {max(timeout, BOOT_TIMEOUT):g}s "
                                     "(importing the app and lifespan start-up); stacks above")
            else:
                continue
            _signal(worker, DUMP_SIGNAL)
            worker.kill_at = now + DUMP_GRACE

    def _keep_count(self) -> None:
        """Start workers for missing places, unless the app is broken (--reload)."""
        if self.broken:
            return
        taken = {worker.number for worker in self.workers if not worker.retiring}
        for number in range(1, self.target + 1):
            if number not in taken:
                self._spawn(number)

    # -- rolling restarts ---------------------------------------------------------------------

    def _roll(self) -> None:
        """Replace every serving worker, one at a time."""
        if self.stopping:
            return
        if self.rolling or any(worker.replaces is not None for worker in self.workers):
            self.roll_again = True  # a roll is under way: another follows it, with the new code
            return
        self.rolling.extend(sorted(self._serving(), key=lambda worker: worker.number))
        self._next_in_roll()

    def _next_in_roll(self) -> None:
        if self.stopping or any(worker.replaces is not None for worker in self.workers):
            return  # one replacement at a time
        while self.rolling:
            old = self.rolling.popleft()
            if old in self.workers and not old.retiring:
                self._replace(old)
                return
        if self.roll_again:
            self.roll_again = False
            self._roll()

    def _replace(self, old: Worker) -> None:
        new = self._spawn(old.number)
        new.replaces = old

    def _retire(self, worker: Worker) -> None:
        """Tell a worker to stop gracefully: it finishes what it serves, then exits."""
        if not worker.retiring:
            worker.retiring = True
            worker.deadline = time.monotonic() + self.config.graceful_timeout + STOP_MARGIN
        _signal(worker, signal.SIGTERM)

    def _serving(self) -> list[Worker]:
        return [worker for worker in self.workers if not worker.retiring and worker.ready]

    def _spawn(self, number: int) -> Worker:
        read_end, write_end = os.pipe()
        fds = [listener.sock.fileno() for listener in self.listeners]
        spec = {
            "config": dataclasses.asdict(self.config),
            "listeners": [
                {"fd": listener.sock.fileno(), "bind": str(listener.bind), "secure": listener.secure,
                 "redirect": listener.redirect}
                for listener in self.listeners
            ],
            "worker": number,
            "report_fd": write_end,
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway.worker"], stdin=subprocess.PIPE,
                pass_fds=[*fds, write_end],
            )
        finally:
            os.close(write_end)
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(json.dumps(spec).encode())
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        os.set_blocking(read_end, False)
        worker = Worker(number, process, read_end, time.monotonic())
        self.selector.register(read_end, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker


def supervise(config: Config) -> int:
    """Run worker processes for `config` until stopped; the exit status."""
    return Supervisor(config).run()


def _note_signal(signum: int, frame: object) -> None:
    """The wake-up pipe carries the signal; the handler only has to exist."""


def _signal(worker: Worker, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        worker.process.send_signal(signum)


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"status {status}"
