"""Plain helpers shared by test modules in more than one directory: free ports, IPv6 and
reading responses off blocking sockets. (Fixtures live in conftest.py.)"""

from __future__ import annotations

import errno
import socket

ENGINES = ("h11", "httptools")


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
