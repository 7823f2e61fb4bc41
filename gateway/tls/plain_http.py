"""Plain HTTP sent to a TLS port gets a 400 that says to use https://, as nginx answers it.

Without it, `curl http://localhost:8443/` (or a browser given http://) sees the connection
closed without a word ("Empty reply from server") and the user is left guessing. The door
(admission.py) holds a TLS connection as a bare socket until its first bytes arrive; a TLS
ClientHello starts with 0x16, an HTTP request with a method and a space. Only the second,
after one byte check, comes here: the request is read and dropped, the 400 written, our side
shut (SHUT_WR), and what the client still sends read and dropped until it closes, for at most
LINGER seconds, so that our close does not reset the connection before the client has read
the answer.

It counts as the failed TLS handshake it is (metrics: protocol_error) and is logged as one,
at debug level: a client can send many.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

from ..guards import Ledger
from ..logs import error_logger
from .sslobject import HANDSHAKE_FAILURE_TEXT

# The first byte of a TLS record of type handshake, which every ClientHello is.
TLS_HANDSHAKE = 0x16
# Enough of the first bytes to tell a request line: a method token and its space.
SNIFF_SIZE = 16
# The most of the request read before answering: its head, as far as it has arrived.
REQUEST_READ = 8192
# How long the client has to read the answer and close once ours is written.
LINGER = 2.0
# A request line's start (RFC 9110 section 5.6.2 token, then SP), or only letters so far.
_REQUEST_START = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ |[A-Za-z]+\Z")
_HOST_FIELD = re.compile(rb"\r\nhost:[ \t]*([^\r\n]*?)[ \t]*\r\n", re.IGNORECASE)
# A Host value fit to be shown back: a name or an address, and a port.
_HOST_VALUE = re.compile(rb"([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")


def sent_plain_http(sock: socket.socket) -> bool:
    """Whether the first bytes waiting on `sock` start an HTTP request rather than a TLS
    ClientHello; nothing is taken from the socket."""
    try:
        first = sock.recv(SNIFF_SIZE, socket.MSG_PEEK)
    except OSError:
        return False  # the handshake finds out, and counts it
    return bool(first) and first[0] != TLS_HANDSHAKE and _REQUEST_START.match(first) is not None


def answer(request: bytes, server: Any) -> bytes:
    """The 400, naming the https:// URL of the port the client connected to (`server`, a
    socket address), with the host it asked for when its Host field arrived."""
    host, port = server[:2] if isinstance(server, tuple) and isinstance(server[1], int) else (
        "localhost", None)
    found = _HOST_FIELD.search(request)
    value = _HOST_VALUE.match(found[1]) if found else None
    if value is not None:
        host = value[1].decode("ascii")
    elif ":" in host:
        host = f"[{host}]"
    where = host if port in (None, 443) else f"{host}:{port}"
    body = f"This port speaks HTTPS: use https://{where}/ instead.\n".encode("ascii")
    return (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


class PlainHTTPAnswers:
    """Connections answered with the 400, each held until its client closes or LINGER passes;
    each holds its client's ledger until then, so the connection count stays exact."""

    def __init__(self, loop: asyncio.AbstractEventLoop, release: Callable[[Ledger], None]) -> None:
        self.loop = loop
        self.release = release
        # In arrival (so deadline) order.
        self.lingering: dict[socket.socket, tuple[Ledger, float]] = {}

    def __len__(self) -> int:
        return len(self.lingering)

    def answer(self, sock: socket.socket, ledger: Ledger, server: Any, client: Any) -> None:
        """Read the request as far as it came, write the 400 and shut our side. `server` is
        the (host, port) the client connected to; `client` is only for the log line."""
        try:
            if error_logger.isEnabledFor(logging.DEBUG):
                error_logger.debug("TLS handshake failed: %s (from %s); answering 400",
                                   HANDSHAKE_FAILURE_TEXT["HTTP_REQUEST"],
                                   _address(client if client is not None else sock.getpeername()))
            request = sock.recv(REQUEST_READ)
            sock.send(answer(request, server if server is not None else sock.getsockname()))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            self.release(ledger)
            return
        self.lingering[sock] = (ledger, self.loop.time() + LINGER)
        self.loop.add_reader(sock, self._drain, sock)

    def expire(self, now: float) -> None:
        """Close the connections whose client has not closed within LINGER."""
        late = []
        for sock, (_, deadline) in self.lingering.items():
            if deadline > now:
                break
            late.append(sock)
        for sock in late:
            self._close(sock)

    def abort(self) -> None:
        for sock in list(self.lingering):
            self._close(sock)

    def _drain(self, sock: socket.socket) -> None:
        try:
            if sock.recv(REQUEST_READ):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close(sock)  # the client closed (or is gone): it has had the answer

    def _close(self, sock: socket.socket) -> None:
        ledger, _ = self.lingering.pop(sock)
        self.loop.remove_reader(sock)
        sock.close()
        self.release(ledger)


def _address(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address or "unix")
