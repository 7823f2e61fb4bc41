"""A worker process: adopts the supervisor's sockets, serves them on one event loop, and
reports to the supervisor through a pipe.

The supervisor (supervisor.py) starts `python -m gateway.worker` and writes a JSON spec to its
stdin: the settings, the listening sockets it passed (by descriptor), the worker's number and
the descriptor of the report pipe. A fresh interpreter per worker means a new worker runs the
app's code as it is on disk now (SIGHUP, --reload), and no thread of the supervisor's (the
file watcher) is ever forked.

Reports are lines: `ready` once accepting, `beat` once a second from the event loop (a worker
whose loop is blocked falls silent, and is replaced), `recycle` past --max-requests, and
`failed <json text>` when start-up fails, so that the supervisor says why once.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from typing import Any

from .config import Config, ConfigError
from .lifespan import LifespanFailure
from .loading import AppLoadError
from .logs import configure_logging, error_logger
from .server import Server, loop_factory, serve_on_new_loop
from .sockets import adopt

# Exit status of a worker whose start-up failed: the supervisor stops rather than retry.
EXIT_BOOT_FAILED = 3
# Sent by the supervisor before it kills a worker whose loop is blocked: faulthandler prints
# every thread's stack, which shows the user where their code blocks.
DUMP_SIGNAL = signal.SIGUSR1


class PipeLink:
    """The worker's end of the report pipe. Writes never block the loop: a supervisor that
    is not reading loses beats, not the worker's time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.orphaned = False
        os.set_blocking(fd, False)

    def ready(self) -> None:
        self._send(b"ready\n")

    def beat(self) -> None:
        self._send(b"beat\n")

    def recycle(self) -> None:
        self._send(b"recycle\n")

    def failed(self, text: str) -> None:
        os.set_blocking(self.fd, True)
        self._send(b"failed " + json.dumps(text).encode() + b"\n")

    def _send(self, line: bytes) -> None:
        try:
            os.write(self.fd, line)
        except BlockingIOError:
            pass
        except BrokenPipeError:
            # The supervisor is gone (killed): nobody would replace or stop this worker, and
            # it would hold the sockets. It stops as if told to, gracefully.
            if not self.orphaned:
                self.orphaned = True
                os.kill(os.getpid(), signal.SIGTERM)


def set_process_title(title: str) -> None:
    """Name the process in `ps` when setproctitle is installed."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


def main() -> None:
    spec: dict[str, Any] = json.load(sys.stdin)
    sys.stdin.close()
    sys.stdin = open(os.devnull)  # noqa: SIM115 - stays open for the app's lifetime
    number = spec["worker"]
    set_process_title(f"gateway: worker {number}")
    # The supervisor's signals: a terminal's hang-up or job-control keys reach the whole
    # process group, and are meant for the supervisor alone.
    for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(signum, signal.SIG_IGN)
    faulthandler.register(DUMP_SIGNAL, all_threads=True)
    link = PipeLink(spec["report_fd"])
    config = Config(**spec["config"])
    configure_logging(config.log_level_number, config.access_log, config.log_config,
                      config.use_colors, config.log_format)
    listeners = [adopt(item["fd"], item["bind"], item["secure"], item["redirect"])
                 for item in spec["listeners"]]
    server = Server(config, listeners=listeners, link=link)
    try:
        server.prepare()
        serve_on_new_loop(server, loop_factory(config.loop))
    except AppLoadError as exc:
        link.failed((exc.details or "") + str(exc))
        sys.exit(EXIT_BOOT_FAILED)
    except (ConfigError, LifespanFailure) as exc:
        link.failed(str(exc))
        sys.exit(EXIT_BOOT_FAILED)
    except KeyboardInterrupt:
        error_logger.debug("worker %d interrupted", number)


if __name__ == "__main__":
    main()
