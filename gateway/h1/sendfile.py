"""A file copied onto a plain HTTP/1.1 connection's socket by the kernel (os.sendfile): the
bytes go from the page cache to the socket and Python never holds them.

The socket belongs to the loop's transport, so the copy writes to it only while the transport
holds nothing unsent (the head and a chunk-size line go through the transport and leave first),
and it waits for the socket to take more on a duplicate of its descriptor: both loops refuse
`add_writer` on a descriptor one of their transports owns. One implementation serves both loops:
uvloop has no `loop.sendfile` (it raises NotImplementedError), and asyncio's pauses reading for
the whole copy, which this connection's own reading rules (reading.py) must decide.
"""

from __future__ import annotations

import asyncio
import errno
import os

from ..files import FileSendError

# The most one copy sends in one turn of the loop. A client that reads as fast as the kernel
# writes never makes the copy wait, so without a bound one big file would hold the loop, and
# every other connection, for the whole copy.
TURN_BYTES = 1024 * 1024

# sendfile errors that are the file's, not the connection's.
_FILE_ERRORS = frozenset((errno.EIO, errno.EINVAL, errno.EBADF, errno.EOVERFLOW, errno.ESPIPE))


class KernelCopy:
    """`count` bytes of the file `fd` from `offset`, onto the socket under `transport`."""

    __slots__ = ("loop", "transport", "sock_fd", "fd", "offset", "left", "sent", "gone", "error",
                 "watch_fd", "waiter", "stall_left", "stall_since")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, fd: int,
                 offset: int, count: int) -> None:
        self.loop = loop
        self.transport = transport
        self.sock_fd: int = transport.get_extra_info("socket").fileno()
        self.fd = fd
        self.offset = offset
        self.left = count
        self.sent = 0
        self.gone = False  # the connection ended before the copy did
        self.error: FileSendError | None = None
        self.watch_fd = -1  # the socket's duplicate, while waiting for it to take more
        self.waiter: asyncio.Future[None] | None = None
        self.stall_left = -1
        self.stall_since = 0.0

    async def run(self) -> int:
        """Copy the region; returns the bytes the client was given, fewer than asked when the
        connection ended first. Raises FileSendError when the file ends before the region."""
        if not self._step():
            self.watch_fd = os.dup(self.sock_fd)
            self.waiter = self.loop.create_future()
            self.loop.add_writer(self.watch_fd, self._writable)
            try:
                await self.waiter
            finally:
                self._unwatch()
        if self.error is not None:
            raise self.error
        return self.sent

    def abandon(self) -> None:
        """The connection is ending (lost, or dropped): the copy stops where it is."""
        self.gone = True
        self._finish()

    def overdue(self, now: float, timeout: float) -> bool:
        """Whether the copy has made no progress for more than `timeout` seconds (the client
        reads nothing): --send-timeout, as guards.StallWatch applies it to the transport's
        buffer, which stays empty during a copy. Called once a second."""
        if self.left != self.stall_left:
            self.stall_left = self.left
            self.stall_since = now
            return False
        return now - self.stall_since > timeout

    def _writable(self) -> None:
        if self._step():
            self._finish()

    def _step(self) -> bool:
        """Send what the socket takes now, up to TURN_BYTES; whether the copy is over."""
        if self.gone or self.transport.is_closing():
            self.gone = True
            return True
        if self.transport.get_write_buffer_size():
            return False  # the transport's bytes go first; they leave as the socket drains
        budget = TURN_BYTES
        while self.left:
            try:
                sent = os.sendfile(self.sock_fd, self.fd, self.offset, min(self.left, budget))
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno in _FILE_ERRORS:
                    self.error = FileSendError(f"cannot send the file: {exc.strerror}")
                else:
                    self.gone = True  # EPIPE, ECONNRESET: the client went away
                return True
            if not sent:
                self.error = FileSendError(
                    f"the file ended {self.left} bytes short of what was to be sent"
                )
                return True
            self.offset += sent
            self.left -= sent
            self.sent += sent
            budget -= sent
            if budget <= 0:
                return not self.left
        return True

    def _finish(self) -> None:
        self._unwatch()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _unwatch(self) -> None:
        # The duplicate leaves the loop's poller before it is closed: epoll keeps watching a
        # closed descriptor whose socket is still open under another one.
        if self.watch_fd >= 0:
            self.loop.remove_writer(self.watch_fd)
            os.close(self.watch_fd)
            self.watch_fd = -1
