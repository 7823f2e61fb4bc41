"""The TLS object of every server connection, where two behaviours of the loops are changed.

Both asyncio and uvloop drive TLS through `SSLContext.sslobject_class`, so a change made here
holds for both loops and every Python version:

- A failed handshake is dropped without a word unless the loop runs in debug mode: it is
  logged here, one debug line.
- A close waits for the client's close_notify after sending ours, for up to 30 s (Python 3.11+
  and uvloop; --send-timeout here) or without end (Python 3.10's asyncio). While the client is
  still sending, that wait is worth having: the loop reads and drops what arrives, so the
  client reads our last response (a 413 during an upload, a GOAWAY during a flood) instead of
  the reset that closing a socket with unread bytes sends (a lingering close). An idle client
  has nothing in flight, and one that neither reads nor closes held a graceful stop for the
  whole --graceful-timeout. So the wait is kept only if unread bytes are waiting on the socket
  when our close_notify goes; otherwise `unwrap` reports the shutdown complete at once (RFC
  8446 section 6.1 lets either side close without waiting for the other's close_notify; Go's
  crypto/tls and nginx do so) and the loop closes the socket once what it holds is written.

Python 3.10's asyncio closes its socket before it writes what `unwrap` produced, so there the
close_notify of a close without a wait is lost unless other data is still queued; RFC 9112
section 9.8 has HTTP clients accept such an incomplete close once the response is complete.
"""

from __future__ import annotations

import asyncio
import ssl
import struct

from ..logs import error_logger

try:
    import fcntl
    import termios
except ImportError:  # not on this platform: every close waits, as the loops do
    fcntl = None  # type: ignore[assignment]

_HANDSHAKE_FAILURES = {
    "HTTP_REQUEST": "the client spoke plain HTTP to the TLS port",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the certificate's CA",
    "UNSUPPORTED_PROTOCOL": "the client offered only TLS versions older than 1.2",
    "NO_SHARED_CIPHER": "no cipher in common with the client",
    "WRONG_VERSION_NUMBER": "the client did not send a TLS handshake",
}


class ServerSSLObject(ssl.SSLObject):
    """A server connection's TLS state (see the module's docstring)."""

    # The connection's socket (`watch_socket`), and whether its close waits for the client's
    # close_notify, decided when ours is sent.
    socket_fd: int | None = None
    linger: bool | None = None

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            error_logger.debug("TLS handshake failed: %s", _HANDSHAKE_FAILURES.get(reason, reason))
            raise

    def unwrap(self) -> None:  # type: ignore[override]
        try:
            super().unwrap()
        except ssl.SSLWantReadError:  # ours is sent; theirs has not come
            if self.linger is None:
                self.linger = self.socket_fd is None or _unread(self.socket_fd)
            if self.linger:
                raise


def watch_socket(ssl_object: ssl.SSLObject, transport: asyncio.BaseTransport) -> None:
    """Show a connection's TLS object its socket, so its close can tell whether the client
    is still sending; called once the handshake is done."""
    sock = transport.get_extra_info("socket")
    if isinstance(ssl_object, ServerSSLObject) and sock is not None:
        ssl_object.socket_fd = sock.fileno()


def _unread(fd: int) -> bool:
    """Whether bytes the client sent wait unread in the kernel (FIONREAD)."""
    if fcntl is None:
        return True
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0] > 0
    except OSError:
        return False  # the socket is gone: nothing to read, nothing to wait for
