"""Hold N idle keep-alive connections to a server, for the memory rows of bench/run.py.

Opens ``--connections`` connections to 127.0.0.1:PORT (TLS with ``--ca``), at most
``--parallel`` in progress at a time so that no server's listen backlog overflows; on each
one GET / whose answer must be the app's 200 ``Hello, world!``. The connection then stays
open, idle. When all are done it prints one JSON line (``open``, ``errors``, ``detail``) and
waits for a line on stdin: meanwhile the harness reads the server's RSS. Then it checks
that every connection is still open (none readable: a readable idle socket is an EOF or a
reset from the server) and prints a second JSON line (``still_open``), and exits.

One thread, non-blocking sockets and a selector (epoll): tens of thousands of sockets are
fine, threads would not be.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import ssl
import sys
import time

EXPECTED = b"Hello, world!"


class Conn:
    """One connection's progress: connect, (handshake), send the request, read the answer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.state = "connect"
        self.buf = b""


class Opener:
    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        self.port = port
        self.context = context
        self.request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode("ascii")
        self.selector = selectors.DefaultSelector()
        self.idle: list[socket.socket] = []
        self.errors = 0
        self.details: list[str] = []

    def fail(self, conn: Conn, why: str) -> None:
        self.errors += 1
        if len(self.details) < 3:
            self.details.append(why)
        self.selector.unregister(conn.sock)
        conn.sock.close()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))
        self.selector.register(sock, selectors.EVENT_WRITE, Conn(sock))

    def step(self, conn: Conn) -> None:
        """Advance ``conn`` as far as it goes without blocking."""
        if conn.state == "connect":
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(conn, f"connect: errno {err}")
                return
            if self.context is not None:
                # The wrapped socket is a new object on the same descriptor.
                self.selector.unregister(conn.sock)
                conn.sock = self.context.wrap_socket(conn.sock, server_hostname="127.0.0.1",
                                                     do_handshake_on_connect=False)
                self.selector.register(conn.sock, selectors.EVENT_WRITE, conn)
                conn.state = "handshake"
            else:
                conn.state = "send"
        if conn.state == "handshake":
            try:
                conn.sock.do_handshake()  # type: ignore[attr-defined]
            except ssl.SSLWantReadError:
                self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
                return
            except ssl.SSLWantWriteError:
                self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
                return
            except (ssl.SSLError, OSError) as exc:
                self.fail(conn, f"handshake: {exc}")
                return
            conn.state = "send"
        if conn.state == "send":
            try:
                conn.sock.sendall(self.request)   # a few dozen bytes: fits any empty buffer
            except OSError as exc:
                self.fail(conn, f"send: {exc}")
                return
            conn.state = "recv"
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        if conn.state == "recv":
            self.receive(conn)

    def receive(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        except OSError as exc:
            self.fail(conn, f"recv: {exc}")
            return
        if not data:
            self.fail(conn, "closed before the answer")
            return
        conn.buf += data
        head, sep, body = conn.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith(b"content-length:")), None)
        if length is None:
            self.fail(conn, f"no content-length in {lines[0]!r}")
            return
        if len(body) < length:
            return
        if lines[0].split()[1:2] != [b"200"] or body != EXPECTED:
            self.fail(conn, f"unexpected answer {lines[0]!r} {body[:40]!r}")
            return
        self.selector.unregister(conn.sock)
        self.idle.append(conn.sock)

    def open_all(self, total: int, parallel: int, deadline: float) -> None:
        started = 0
        while started < total or self.selector.get_map():
            while started < total and len(self.selector.get_map()) < parallel:
                self.start()
                started += 1
            if time.monotonic() > deadline:
                pending = len(self.selector.get_map())
                self.errors += pending
                self.details.append(f"{pending} connections unfinished at the deadline")
                return
            for key, _events in self.selector.select(timeout=1.0):
                self.step(key.data)

    def closed_count(self) -> int:
        """Idle connections the server has closed (or written to) since they went idle."""
        for sock in self.idle:
            self.selector.register(sock, selectors.EVENT_READ)
        return len(self.selector.select(timeout=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=64)
    parser.add_argument("--ca", help="CA file: connect with TLS and verify against it")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.connections + 64:
        print(json.dumps({"open": 0, "errors": 1, "detail":
                          f"RLIMIT_NOFILE hard limit {hard} is below {args.connections + 64}"}))
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    opener = Opener(args.port, context)
    opener.open_all(args.connections, args.parallel, time.monotonic() + args.timeout)
    print(json.dumps({"open": len(opener.idle), "errors": opener.errors,
                      "detail": "; ".join(opener.details)}), flush=True)
    sys.stdin.readline()
    closed = opener.closed_count()
    print(json.dumps({"still_open": len(opener.idle) - closed}), flush=True)


if __name__ == "__main__":
    main()
