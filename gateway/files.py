"""The file bodies of two ASGI extensions, `http.response.pathsend` (a file by its path) and
`http.response.zerocopysend` (a part of a file the app has open): which bytes of which file a
message names, and reading them for a carrier that cannot hand a file to the kernel.

The exchange (asgi.py) sends a file one of two ways: over a plain HTTP/1.1 socket the kernel
copies it (os.sendfile, h1/sendfile.py); over TLS or HTTP/2 it is read here, a chunk at a time,
and each chunk goes out as an ordinary body chunk, under the same flow control as the app's own.
Everything that can be wrong with a file (a relative path, a missing or unreadable file, a part
past its end) is found here before the response head is sent, so the client gets a 500 rather
than a response cut short.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

# A chunk read for a carrier that cannot send a file by itself. Large enough that a chunk costs
# few calls per byte, small enough that HTTP/2's flow control and the transport's high-water
# mark still pace the reads.
READ_CHUNK = 256 * 1024


class FileSendError(Exception):
    """A file the app named cannot be sent as it asked: logged as one line naming the file,
    answered with 500 when no response has begun (the connection is cut otherwise)."""


class FileRegion:
    """`count` bytes of the open file `fd` from `offset`. A region opened from a path owns its
    descriptor; a zerocopysend region whose message gave no offset started at the file's
    position, which is moved past what was sent, as reading the file would have."""

    __slots__ = ("fd", "offset", "count", "owned", "file")

    def __init__(self, fd: int, offset: int, count: int, owned: bool, file: Any = None) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count
        self.owned = owned
        self.file = file  # the app's file (or descriptor) whose position follows the send

    def release(self, sent: int) -> None:
        """The send is over, `sent` bytes of the region sent: close what was opened here, or
        move the app's file position past what was sent."""
        if self.owned:
            os.close(self.fd)
        elif self.file is not None:
            position = self.offset + sent
            if type(self.file) is int:
                os.lseek(self.fd, position, os.SEEK_SET)
            else:
                self.file.seek(position)


def open_path(path: Any) -> FileRegion:
    """The whole file at `path`, the field of an `http.response.pathsend` message."""
    if type(path) is not str or not os.path.isabs(path):
        raise FileSendError(
            f"'http.response.pathsend' field 'path' must be an absolute path, got {path!r}"
        )
    try:
        # Non-blocking: opening a FIFO would otherwise wait for a writer, holding the loop.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        raise FileSendError(f"cannot send {path!r}: {_reason(exc)}") from None
    try:
        size = _regular_size(fd, repr(path))
    except FileSendError:
        os.close(fd)
        raise
    return FileRegion(fd, 0, size, True)


def zerocopy_region(message: Any) -> FileRegion:
    """The part of the app's open file an `http.response.zerocopysend` message names: from
    `offset` (else the file's position) for `count` bytes (else to the end)."""
    file = message.get("file")
    offset = message.get("offset")
    count = message.get("count")
    for name, value in (("offset", offset), ("count", count)):
        if value is not None and (type(value) is not int or value < 0):
            raise FileSendError(
                f"'http.response.zerocopysend' field {name!r} must be a non-negative int or None,"
                f" got {value!r}"
            )
    try:
        if type(file) is int:
            fd = file
            start = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else offset
        else:
            fd = file.fileno()
            start = file.tell() if offset is None else offset
    except (AttributeError, OSError, ValueError) as exc:
        raise FileSendError(
            f"'http.response.zerocopysend' field 'file' must be an open file or descriptor,"
            f" got {file!r}: {_reason(exc)}"
        ) from None
    size = _regular_size(fd, repr(file))
    available = max(size - start, 0)
    if count is None:
        count = available
    elif count > available:
        raise FileSendError(
            f"cannot send {count} bytes of {file!r} from offset {start}: it has {available}"
        )
    return FileRegion(fd, start, count, False, file if offset is None else None)


def read_region(region: FileRegion) -> Iterator[bytes]:
    """The region's bytes, READ_CHUNK at a time, read on the loop: a 256 KiB read from the page
    cache took about 30 us here, the same read through a thread about 50 (a file not in the
    cache holds the loop for its disk read)."""
    fd = region.fd
    offset = region.offset
    left = region.count
    while left:
        try:
            chunk = os.pread(fd, min(left, READ_CHUNK), offset)
        except OSError as exc:
            raise FileSendError(f"cannot read the file to send: {_reason(exc)}") from None
        if not chunk:
            raise FileSendError(f"the file ended {left} bytes short of what was to be sent")
        offset += len(chunk)
        left -= len(chunk)
        yield chunk


def _regular_size(fd: int, name: str) -> int:
    try:
        info = os.fstat(fd)
    except OSError as exc:
        raise FileSendError(f"cannot send {name}: {_reason(exc)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileSendError(f"cannot send {name}: not a regular file")
    return info.st_size


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
