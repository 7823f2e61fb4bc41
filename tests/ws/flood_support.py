"""WebSocket ping floods for the hardening tests (and bench/ws_flood.py): a client that sends
pings as fast as it can and never reads the pongs, over HTTP/1.1 (plain, TLS, with
permessage-deflate) or over HTTP/2 (RFC 8441) granting the server no window; a well-behaved
client's echo round trips beside it, from another address; and the server process's memory.

Every wait has a timeout, so a server that stalls fails a test instead of hanging it."""

from __future__ import annotations

import contextlib
import socket
import ssl
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2.settings
from h1_client import RawClient
from h2_client import H2Client
from h2_ws_client import H2WebSocket
from support import OTHER_ADDRESS, TIMEOUT
from ws_support import PING, frame, handshake
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage

# The largest ping (RFC 6455 section 5.5): each one owes a pong of the same size.
PING_PAYLOAD = b"p" * 125
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
_CHUNK = 64 * 1024


def resident_kib(pid: int) -> int:
    """The process's resident memory (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


@dataclass
class FloodResult:
    sent: int = 0  # bytes of pings the server took
    dropped_after: float | None = None  # seconds from the first ping until the server cut us off
    pongs: int = 0  # bytes the server sent back meanwhile (HTTP/2: DATA on the stream)


class _PingStream:
    """An endless run of identical masked ping frames, sent from where the last send stopped,
    so that a partial send never cuts the frame sequence."""

    def __init__(self, payload: bytes) -> None:
        one = frame(PING, payload)
        self.size = len(one)
        self.data = memoryview(one * (_CHUNK // len(one) + 2))
        self.offset = 0

    def next(self) -> memoryview:
        return self.data[self.offset:self.offset + _CHUNK]

    def advance(self, sent: int) -> None:
        self.offset = (self.offset + sent) % self.size


def _open_socket(port: int, context: ssl.SSLContext | None, source: str | None = None,
                 rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source is not None:
        sock.bind((source, 0))
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    return sock


def h1_ping_flood(port: int, seconds: float, context: ssl.SSLContext | None = None,
                  deflate: bool = False) -> FloodResult:
    """Open a WebSocket over HTTP/1.1 and send pings for `seconds` without ever reading again;
    stop early when the server cuts the connection."""
    sock = _open_socket(port, context, rcvbuf=4096)
    result = FloodResult()
    try:
        sock.sendall(handshake(extra=DEFLATE_OFFER if deflate else ""))
        response = RawClient(sock=sock).read_response()
        assert response.status == 101, response
        assert (response.get(b"sec-websocket-extensions") is not None) == deflate, response.headers
        pings = _PingStream(PING_PAYLOAD)
        sock.settimeout(0.1)
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            try:
                sent = sock.send(pings.next())
            except TimeoutError:
                continue  # the server is not reading us
            except (OSError, ssl.SSLError):
                result.dropped_after = time.monotonic() - started
                break
            pings.advance(sent)
            result.sent += sent
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return result


def h2_ping_flood(port: int, seconds: float, context: ssl.SSLContext | None = None) -> FloodResult:
    """Open a WebSocket on an extended CONNECT stream with SETTINGS_INITIAL_WINDOW_SIZE 0 and
    never grant the server window, so that every pong must wait; send pings in whatever window
    the server grants us, for `seconds` or until the server resets the stream or the connection."""
    sock = _open_socket(port, context)
    result = FloodResult()
    try:
        client = H2Client(sock, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
                          auto_ack=False)
        websocket = H2WebSocket.connect(client)
        stream = websocket.result
        pings = _PingStream(PING_PAYLOAD)
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            try:
                sent = client.send_body(websocket.stream_id, bytes(pings.next()))
                pings.advance(sent)
                result.sent += sent
                client.pump(0.01 if sent else 0.1)
            except (OSError, ssl.SSLError):
                client.closed = True
            if client.closed or stream.done or client.goaway is not None:
                result.dropped_after = time.monotonic() - started
                break
        result.pongs = len(stream.data)
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return result


@dataclass
class Latencies:
    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("inf")

    @property
    def worst(self) -> float:
        return max(self.samples) if self.samples else float("inf")


class EchoClient:
    """A well-behaved WebSocket client over HTTP/1.1 from OTHER_ADDRESS (an address a flood
    from 127.0.0.1 cannot get blocked): it answers the server's pings and times echoes."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.sock = _open_socket(port, context, source=OTHER_ADDRESS)
        self.ws = WSConnection(ConnectionType.CLIENT)
        try:
            self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target="/")))
            self._next(AcceptConnection)
        except BaseException:
            self.close()
            raise

    def echo(self, text: str) -> float:
        """Seconds until `text` came back."""
        started = time.monotonic()
        self.sock.sendall(self.ws.send(TextMessage(data=text)))
        echoed = self._next(TextMessage)
        assert echoed.data == text, echoed
        return time.monotonic() - started

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _next(self, kind: type):
        """The next event of type `kind`, answering pings on the way."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.ws.events():
                if isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
                elif isinstance(event, kind):
                    return event
                else:
                    raise AssertionError(f"expected {kind.__name__}, got {event!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind.__name__} within {TIMEOUT}s")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the server closed the connection")
            self.ws.receive_data(data)


def echo_from_another_address(port: int, context: ssl.SSLContext | None = None) -> float:
    """One echo on a new WebSocket from OTHER_ADDRESS: the server still serves others."""
    client = EchoClient(port, context)
    try:
        return client.echo("still served?")
    finally:
        client.close()


class EchoProber:
    """An `EchoClient` in a thread that sends a short text every `interval` and times its echo
    until stopped."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None, interval: float = 0.02) -> None:
        self.client = EchoClient(port, context)
        self.interval = interval
        self.latencies = Latencies()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="echo-prober", daemon=True)

    def __enter__(self) -> EchoProber:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2 * TIMEOUT)
        self.client.close()

    def _run(self) -> None:
        count = 0
        try:
            while not self._stop.is_set():
                count += 1
                self.latencies.samples.append(self.client.echo(f"probe {count}"))
                self._stop.wait(self.interval)
        except (OSError, AssertionError, ssl.SSLError) as exc:
            self.latencies.failures.append(repr(exc))
