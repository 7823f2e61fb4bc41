"""Plain helpers shared by test modules in more than one directory: free ports, IPv6, reading
responses off blocking sockets, TLS settings, small ASGI apps, log capture and waiting.
(Fixtures live in conftest.py; protocol clients in h1_client.py and h2_client.py.)"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

ENGINES = ("h11", "httptools")
TIMEOUT = 5.0
# Another client address on loopback (Linux routes all of 127/8 there): a well-behaved client
# beside an attacker on 127.0.0.1, whose address the server may have blocked.
OTHER_ADDRESS = "127.0.0.2"


def other_client(**kwargs: Any) -> Any:
    """An httpx client connecting from OTHER_ADDRESS."""
    import httpx

    http2 = kwargs.pop("http2", False)
    transport = httpx.HTTPTransport(local_address=OTHER_ADDRESS, http2=http2,
                                    verify=kwargs.pop("verify", True), http1=kwargs.pop("http1", True))
    return httpx.Client(transport=transport, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_port_free(port: int) -> None:
    """Nothing listens there: a connection is refused and we can bind it ourselves."""
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def read_response(sock: socket.socket) -> bytes:
    """One response (head and its Content-Length body; none without one) off a blocking socket.
    Fails if the connection closes before the response is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a complete head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed with {length - len(body)} body bytes missing"
        body += chunk
    return head + b"\r\n\r\n" + body


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def ended_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server ends the connection (EOF or reset) within `seconds`, what is in
    flight read and dropped."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except ConnectionResetError:
            return True
        except (TimeoutError, ssl.SSLWantReadError):
            continue
    return False


def tls_settings(certs, **extra: Any) -> dict[str, Any]:
    """Server settings for TLS with the test certificate (the `certs` fixture), plus `extra`."""
    return {"certfile": certs.cert_file, "keyfile": certs.key_file, **extra}


def assert_request_target(scope: dict[str, Any], method: str, scheme: str, path: str, raw_path: bytes,
                          query_string: bytes, root_path: str = "") -> None:
    """The scope's method, scheme, path, raw_path, query_string and root_path, checked in that order."""
    for key, expected in (("method", method), ("scheme", scheme), ("path", path), ("raw_path", raw_path),
                          ("query_string", query_string), ("root_path", root_path)):
        assert scope[key] == expected, f"scope[{key!r}] is {scope[key]!r}, expected {expected!r}"


# -- apps -----------------------------------------------------------------------------------------


def http_app(func):
    """The app for `http` scopes only; it returns at once for lifespan, which `lifespan auto`
    takes as "no lifespan support"."""

    @functools.wraps(func)
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await func(scope, receive, send)

    return app


async def read_body(receive) -> bytes:
    """The whole request body, as an app reads it; ConnectionError on `http.disconnect`."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


# -- logs and waiting -----------------------------------------------------------------------------


class LogRecords(logging.Handler):
    """Collects records from one logger, whatever thread logs them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock_:
            self.records.append(record)

    def at_least(self, level: int) -> list[logging.LogRecord]:
        with self.lock_:
            return [record for record in self.records if record.levelno >= level]

    def errors(self) -> list[logging.LogRecord]:
        return self.at_least(logging.ERROR)

    def tracebacks(self) -> list[logging.LogRecord]:
        with self.lock_:
            return [record for record in self.records if record.exc_info]

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [record.getMessage() for record in self.at_least(level)]

    def describe(self, level: int = logging.WARNING) -> str:
        return "\n".join(f"{r.levelname} {r.getMessage()}" for r in self.at_least(level))

    def wait_for(self, level: int, timeout: float = TIMEOUT) -> list[str]:
        """The messages at `level` and above, as soon as there are any; [] after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(level)
            if found:
                return found
            time.sleep(0.02)
        return []


@contextlib.contextmanager
def captured_log(name: str = "gateway.error", level: int = logging.DEBUG) -> Iterator[LogRecords]:
    """Records of logger `name` at `level` and above, for the duration of the block (gateway's
    loggers do not propagate, so pytest's caplog cannot see them)."""
    logger = logging.getLogger(name)
    handler = LogRecords()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def process_memory(pid: int, field: str = "VmRSS") -> int:
    """A /proc/PID/status size (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT, interval: float = 0.01) -> bool:
    """Whether `predicate()` became true within `timeout` (checked once more at the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
