"""The TLS state of every server connection, where two behaviours of the loops are changed.

Both asyncio and uvloop drive TLS through `SSLContext.sslobject_class`, so a change made here
holds for both loops and every Python version:

- A failed handshake is dropped without a word unless the loop runs in debug mode: it is
  logged here, one debug line.
- A close waits for the client's close_notify after sending ours, for up to 30 s (Python 3.11+
  and uvloop; --send-timeout here) or without end (Python 3.10's asyncio). While the client is
  still sending, that wait is worth having: the loop reads and drops what arrives, so the
  client gets to read our last response (a 413 during an upload, a GOAWAY during a flood)
  instead of the reset that closing a socket with unread bytes sends: a lingering close. An
  idle client has nothing in flight, though, and one that neither reads nor closes held a
  graceful stop for the whole --graceful-timeout. So the wait is kept only for a client still
  sending when our close_notify goes (bytes unread on its socket, or received in the last
  STILL_SENDING seconds), and never once the server is stopping; otherwise `unwrap` reports
  the shutdown complete at once (RFC 8446 section 6.1 lets either side close without waiting
  for the other's close_notify, as Go's crypto/tls and nginx do) and the loop closes the
  socket once what it holds is written.

Python 3.10's asyncio closes its socket before it writes what `unwrap` produced, so there the
close_notify of a close that does not wait is lost unless other data is still queued; RFC 9112
section 9.8 has HTTP clients accept such an incomplete close once the response is complete.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from typing import Any

from ..logs import error_logger

try:
    import fcntl
    import termios
except ImportError:  # not on this platform: a close waits unless the server is stopping
    fcntl = None  # type: ignore[assignment]

# A client that sent something this recently may well have more on the way (the rest of a
# body, the next pipelined request, the rest of a flood).
STILL_SENDING = 0.25
# struct tcp_info (linux/tcp.h): tcpi_last_data_recv, in ms, after 8 one-byte fields and 11
# four-byte ones.
_TCP_INFO_SIZE = 104
_LAST_DATA_RECV = 52

# What the debug line of a failed handshake says for OpenSSL's reasons; plain_http.py, which
# answers plain HTTP before OpenSSL sees it, says the first.
HANDSHAKE_FAILURE_TEXT = {
    "HTTP_REQUEST": "the client spoke plain HTTP to the TLS port",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the certificate's CA",
    "UNSUPPORTED_PROTOCOL": "the client offered only TLS versions older than 1.2",
    "NO_SHARED_CIPHER": "no cipher in common with the client",
    "WRONG_VERSION_NUMBER": "the client did not send a TLS handshake",
}


class ServerSSLContext(ssl.SSLContext):
    """The server's context: its connections' TLS objects see whether the server is stopping."""

    lingering = True  # False once the server is stopping: no close waits any more


class ServerSSLObject(ssl.SSLObject):
    """A server connection's TLS state (see the module's docstring)."""

    # The connection's socket (a loop's wrapper, see `watch_socket`), and whether its close
    # waits for the client's close_notify, decided when ours is sent.
    watched: Any = None
    linger: bool | None = None

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            error_logger.debug("TLS handshake failed: %s", HANDSHAKE_FAILURE_TEXT.get(reason, reason))
            raise

    def unwrap(self) -> None:  # type: ignore[override]
        try:
            super().unwrap()
        except ssl.SSLWantReadError:  # ours is sent; theirs has not come
            if self.linger is None:
                lingering = getattr(self.context, "lingering", True)
                self.linger = lingering and _still_sending(self.watched)
            if self.linger:
                raise


def watch_socket(ssl_object: ssl.SSLObject, transport: asyncio.BaseTransport) -> None:
    """Show a connection's TLS object its socket, so that its close can tell whether the
    client is still sending; called once the handshake is done."""
    if isinstance(ssl_object, ServerSSLObject):
        ssl_object.watched = transport.get_extra_info("socket")


def _still_sending(sock: Any) -> bool:
    """Whether bytes from the client wait unread (FIONREAD) or came in the last
    STILL_SENDING seconds (TCP_INFO, Linux); True when that cannot be told."""
    if sock is None or fcntl is None:
        return True
    try:
        unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        if unread > 0:
            return True
        if not hasattr(socket, "TCP_INFO"):
            return False
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return False  # the socket is gone: nothing to read, nothing to wait for
    if len(info) < _LAST_DATA_RECV + 4:
        return False
    return struct.unpack_from("I", info, _LAST_DATA_RECV)[0] < STILL_SENDING * 1000
