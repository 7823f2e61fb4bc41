"""Raw-socket helpers for the HTTP/1.1 tests: a client that reads responses byte-exact off the
wire, so that tests can check framing, ordering and connection closes as a user's client sees
them. Every socket has a timeout, so a server that stalls fails a test instead of hanging it."""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field

from support import TIMEOUT


class Incomplete(Exception):
    """The connection ended (or went quiet) before a whole response arrived."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.data = data


@dataclass
class Response:
    status: int
    reason: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    raw: bytes = b""
    chunked: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def get_all(self, name: bytes) -> list[bytes]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def get(self, name: bytes) -> bytes | None:
        values = self.get_all(name)
        assert len(values) <= 1, f"{name!r} appears {len(values)} times: {self.headers}"
        return values[0] if values else None

    def names(self) -> list[bytes]:
        return [key.lower() for key, _ in self.headers]


def connect_tcp(port: int, timeout: float = TIMEOUT, rcvbuf: int | None = None,
                sndbuf: int | None = None) -> socket.socket:
    """A TCP connection to 127.0.0.1 with a timeout, NODELAY, and the buffer sizes a
    back-pressure test asks for (set before connecting, so that they take effect)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RawClient:
    """One TCP connection to 127.0.0.1 (or a socket opened elsewhere) and a read buffer."""

    def __init__(self, port: int = 0, timeout: float = TIMEOUT, rcvbuf: int | None = None,
                 sndbuf: int | None = None, sock: socket.socket | None = None) -> None:
        self.sock = sock if sock is not None else connect_tcp(port, timeout, rcvbuf, sndbuf)
        self.buffer = bytearray()
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float | None = None) -> bool:
        """Read more bytes into the buffer; False at EOF (or a reset)."""
        if self.eof:
            return False
        if deadline is not None:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        finally:
            if deadline is not None:
                self.sock.settimeout(TIMEOUT)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _read_line(self, consumed: bytearray) -> bytes:
        while True:
            index = self.buffer.find(b"\r\n")
            if index >= 0:
                line = self._take(index + 2)
                consumed += line
                return line[:-2]
            if not self._fill():
                raise Incomplete("connection closed in the middle of a line", bytes(consumed + self.buffer))

    def _read_exact(self, n: int, consumed: bytearray) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise Incomplete(
                    f"connection closed with {n - len(self.buffer)} body bytes missing",
                    bytes(consumed + self.buffer),
                )
        data = self._take(n)
        consumed += data
        return data

    def read_response(self, head_request: bool = False) -> Response:
        """Read exactly one response (a 1xx counts as one) as RFC 9112 section 6.3 frames it."""
        consumed = bytearray()
        status_line = self._read_line(consumed)
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        assert version.startswith(b"HTTP/") and code.isdigit(), f"bad status line {status_line!r}"
        headers: list[tuple[bytes, bytes]] = []
        while True:
            line = self._read_line(consumed)
            if not line:
                break
            name, sep, value = line.partition(b":")
            assert sep, f"bad header line {line!r}"
            headers.append((name, value.strip(b" \t")))
        response = Response(int(code), reason, version, headers)
        status = response.status
        if head_request or 100 <= status < 200 or status in (204, 304):
            response.raw = bytes(consumed)
            return response
        transfer = response.get(b"transfer-encoding")
        length = response.get(b"content-length")
        if transfer is not None:
            assert transfer.lower() == b"chunked", transfer
            response.chunked = True
            body = bytearray()
            while True:
                size_line = self._read_line(consumed)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                body += self._read_exact(size, consumed)
                assert self._read_exact(2, consumed) == b"\r\n", "chunk not followed by CRLF"
            while True:
                line = self._read_line(consumed)
                if not line:
                    break
                name, _, value = line.partition(b":")
                response.trailers.append((name, value.strip()))
            response.body = bytes(body)
        elif length is not None:
            response.body = self._read_exact(int(length), consumed)
        else:
            while self._fill():
                pass
            response.body = self._take(len(self.buffer))
            consumed += response.body
        response.raw = bytes(consumed)
        return response

    def read_final_response(self, head_request: bool = False) -> Response:
        """The next non-1xx response."""
        while True:
            response = self.read_response(head_request)
            if response.status >= 200:
                return response

    def read_until_close(self, timeout: float = TIMEOUT) -> bytes:
        """Everything until the server closes; fails if it is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    return self._take(len(self.buffer))
            except TimeoutError:
                raise AssertionError(
                    f"server did not close the connection within {timeout}s;"
                    f" got {bytes(self.buffer)[:200]!r}"
                ) from None

    def is_closed(self, wait: float = 0.2) -> bool:
        """True if the server has closed (EOF) within `wait` seconds and sent nothing more."""
        deadline = time.monotonic() + wait
        try:
            more = self._fill(deadline)
        except TimeoutError:
            return False
        assert not more, f"unexpected bytes from the server: {bytes(self.buffer)[:200]!r}"
        return True


def request(method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None,
            body: bytes = b"", version: str = "1.1", host: bool = True) -> bytes:
    """A request head (and body); adds Host and, for a body, Content-Length unless given."""
    lines = [f"{method} {target} HTTP/{version}"]
    given = {name.lower() for name, _ in headers or []}
    if host and "host" not in given:
        lines.append("Host: 127.0.0.1")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body and "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes) -> bytes:
    """A chunked body of `parts` and its last chunk."""
    return b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts if part) + b"0\r\n\r\n"


async def respond(send, status: int = 200, body: bytes = b"", headers=None) -> None:
    """A whole response from an app, with `headers` (none by default)."""
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})
