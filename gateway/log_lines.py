"""gateway's own log handler: whole lines to a stream, access lines written in batches.

Writing every access line on its own, through a LogRecord, the handler's lock, a write and a
flush, halved HTTP/1.1 throughput. `configure_logging` (logs.py) gives gateway's loggers a
`LineHandler`; the access log's handler is `batched`: its lines wait in the stream's
`LineBatch` and go out together, within `BATCH_DELAY` of the first, at once past
`BATCH_SIZE` characters, before any unbatched line on the same stream (so the stream keeps
the order the lines were made in) and when the handler is flushed or closed (logging's own
shutdown at exit does that, so a graceful stop loses nothing).

A batch is written in chunks of whole lines of at most PIPE_BUF bytes, each with one write:
workers sharing a pipe for stderr never interleave within a line (POSIX makes a pipe write of
at most PIPE_BUF bytes atomic), as when each line was written on its own.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
from typing import TextIO

# How long a line may wait for others, and how much may wait (characters).
BATCH_DELAY = 0.1
BATCH_SIZE = 64 * 1024
_CHUNK = getattr(select, "PIPE_BUF", 4096)


class LineBatch:
    """Lines for one stream not yet written. `add` takes no lock (it runs once per response):
    appending to the list is atomic, and `write_out`, which may run in any thread (an error
    line, logging's shutdown at exit), takes the lines it found and leaves any added
    meanwhile for the next write. `size` is approximate across threads; it only decides when
    to write early."""

    __slots__ = ("stream", "lines", "size", "timer", "lock")

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.size = 0
        # Pending while lines wait: every line is written within BATCH_DELAY of its `add`.
        self.timer: asyncio.TimerHandle | None = None
        self.lock = threading.Lock()  # one writer at a time, so chunks stay in order

    def add(self, line: str) -> None:
        """`line` ends with its newline."""
        self.lines.append(line)
        self.size += len(line)
        if self.size >= BATCH_SIZE or (self.timer is None and not self._schedule()):
            self.write_out()

    def _schedule(self) -> bool:
        """Write out in BATCH_DELAY; False when no event loop runs here to do it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self.timer = loop.call_later(BATCH_DELAY, self._due)
        return True

    def _due(self) -> None:
        self.timer = None
        self.write_out()

    def write_out(self) -> None:
        with self.lock:
            lines = self.lines
            count = len(lines)
            if not count:
                return
            text = "".join(lines[:count])
            del lines[:count]
            self.size = 0
            _write_in_chunks(self.stream, text)


def _write_in_chunks(stream: TextIO, text: str) -> None:
    """`text`, whole lines, in writes of at most PIPE_BUF bytes, each of whole lines; a line
    longer than that alone in its write."""
    # A character outside ASCII takes up to 4 bytes in UTF-8.
    limit = _CHUNK if text.isascii() else _CHUNK // 4
    start = 0
    end = len(text)
    while start < end:
        stop = start + limit
        if stop < end:
            cut = text.rfind("\n", start, stop)
            stop = cut + 1 if cut >= 0 else text.find("\n", stop) + 1 or end
        stream.write(text[start:stop])
        stream.flush()
        start = stop


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose lines share `batch` with the other handlers of the same stream:
    `batched`, a line waits in it; otherwise the batch is written out first, then the line.
    `own_formatter` is the formatter it was made with: while it is still the one in use,
    `AccessLog` may format an access line with it and add it to the batch itself."""

    def __init__(self, batch: LineBatch, formatter: logging.Formatter, batched: bool) -> None:
        super().__init__(batch.stream)
        self.batch = batch
        self.batched = batched
        self.setFormatter(formatter)
        self.own_formatter = formatter

    def emit(self, record: logging.LogRecord) -> None:
        if not self.batched:
            self.batch.write_out()
            super().emit(record)
            return
        try:
            self.batch.add(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.batch.write_out()
        super().flush()
