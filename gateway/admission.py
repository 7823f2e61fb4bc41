"""The door: every connection passes here once, as it is accepted, before any TLS handshake.

gateway accepts connections itself rather than through `loop.create_server`:
- Admission comes first. A connection past `--limit-connections`, or from an address the guards
  have blocked, is closed as soon as it is accepted, before a transport, a protocol or any TLS
  state exists for it. Connections still in their TLS handshake count against the limit.
- Running out of descriptors (EMFILE) is handled the same on both loops. asyncio logs a
  traceback per failed accept and schedules a retry for each, up to the backlog per wake-up (a
  30 MB log in 6 s); libuv accepts and drops every waiting connection without a word. Here
  accepting pauses for ACCEPT_PAUSE at a time, with one warning per episode, and the clients
  waiting in the kernel's backlog are served once descriptors free.
- A TLS connection gets its TLS state (50 KiB with uvloop, 300 KiB with asyncio's loop) only once
  its first bytes, the ClientHello, arrive; until then it is a bare socket of about 1 KiB, for
  at most --tls-handshake-timeout. First bytes that are a plain HTTP request instead get a 400
  saying to use https:// (tls/plain_http.py).

Every admitted connection holds its client's ledger (guards.py) from here until its protocol's
`connection_lost`, or until the door drops it before a protocol took it; `AddressGuard.open`
counts those ledgers, so the count is exact whatever the handshake does.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .asgi import Addresses
from .guards import Ledger
from .logs import error_logger
from .proxy.protocol import ProxyHeaderError, ProxyHeaderReader, ProxyInfo
from .state import ServerState
from .tls.plain_http import PlainHTTPAnswers, sent_plain_http

try:
    import resource
except ImportError:  # not on this platform
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .choice import ProtocolChoice

# Connections accepted per wake-up of a listener: a flood of new connections still leaves the
# loop to the ones already served, and at 1 ms per turn this is over 100,000 a second.
ACCEPT_BATCH = 128
# How long accepting pauses when the process is out of descriptors or memory: long enough not
# to spin on a listener the kernel keeps reporting readable, short enough that a client
# waiting in the backlog is served well within a second of a descriptor freeing.
ACCEPT_PAUSE = 0.5
# An episode (limit reached, accepting paused) is over once it has not recurred for this long.
EPISODE_QUIET = 10.0
# How much is peeked for a PROXY protocol header: the longest v2 header read (its 16-byte
# preamble and a 4 KiB address block, plenty for addresses, ALPN and authority).
PROXY_PEEK = 16 + 4096
# What asyncio and uvloop use when given no handshake timeout (--tls-handshake-timeout 0).
LOOP_HANDSHAKE_TIMEOUT = 60.0

# accept(2) on Linux passes on errors of the connection being accepted, which is gone; the
# listener is fine and the next one is accepted.
_PEER_GONE = frozenset(
    code for code in (
        getattr(errno, name, None) for name in (
            "ECONNABORTED", "EPROTO", "EPERM", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
            "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH",
        )
    ) if code is not None
)
_ADVICE = {
    errno.EMFILE: "the process may open {limit} descriptors: raise that (ulimit -n) or set "
                  "--limit-connections below it",
    errno.ENFILE: "the system's file table is full (fs.file-max)",
}


class Episode:
    """Trouble that can last (the connection limit reached, descriptors run out): one warning
    as it begins, one info line once it has not recurred for EPISODE_QUIET, not a line each."""

    __slots__ = ("since", "last", "count")

    def __init__(self) -> None:
        self.since: float | None = None
        self.last = 0.0
        self.count = 0

    def occurred(self, now: float) -> bool:
        """Count one occurrence; True when it begins an episode."""
        self.last = now
        self.count += 1
        if self.since is None:
            self.since = now
            return True
        return False

    def ended(self, now: float) -> tuple[float, int] | None:
        """How long the episode lasted and how often it occurred, if it is over by now."""
        if self.since is None or now - self.last < EPISODE_QUIET:
            return None
        over = (self.last - self.since, self.count)
        self.since, self.count = None, 0
        return over


class Route(NamedTuple):
    """How a listener's connections are served."""

    make_entry: Callable[[Ledger], ProtocolChoice]
    ssl_context: ssl.SSLContext | None
    # PROXY protocol versions expected first on each connection ("v1", "v2", "auto"), or None.
    proxy: str | None = None


class Announced(NamedTuple):
    """A connection whose PROXY protocol header is being read."""

    reader: ProxyHeaderReader
    deadline: float
    route: Route
    peer: Any


class Door:
    """Accepts from the listeners, admits or refuses, and hands each admitted connection to
    a loop transport: at once on a plain listener, with TLS once the client has spoken."""

    def __init__(self, state: ServerState) -> None:
        config = state.config
        self.loop = asyncio.get_running_loop()
        self.state = state
        self.guard = state.guard
        self.limit = config.limit_connections
        self.handshake_timeout = config.tls_handshake_timeout or LOOP_HANDSHAKE_TIMEOUT
        self.tls_options: dict[str, Any] = {}
        if sys.version_info >= (3, 11) or not isinstance(self.loop, asyncio.BaseEventLoop):
            # How long a TLS close may take, past which the loop aborts the connection: handing
            # our last bytes to a client that does not read them (uvloop waits for that before
            # its close_notify), then reading what a client still sending sends until its
            # close_notify (tls/sslobject.py). --send-timeout, the bound on any send; 0 leaves
            # the loop's 30 s. Python 3.10's asyncio takes no such argument.
            self.tls_options["ssl_shutdown_timeout"] = config.send_timeout or None
        self.listeners: dict[socket.socket, asyncio.TimerHandle | None] = {}
        # How each listener's connections are served: the protocol entry, and TLS or not.
        self.routes: dict[socket.socket, Route] = {}
        # Connections from a balancer whose PROXY protocol header has not arrived whole yet,
        # in arrival (so deadline) order; they hold no ledger until it names the client.
        self.announcing: dict[socket.socket, Announced] = {}
        # TLS connections whose client has sent nothing yet, in arrival (so deadline) order.
        self.silent: dict[socket.socket, tuple[Ledger, float, Route, Addresses | None]] = {}
        self.trusted_peers = state.trusted_peers
        # Connections being made into transports (and TLS handshakes); `unstarted` ones still
        # belong to the door, the others to the loop.
        self.starting: set[asyncio.Task[None]] = set()
        self.unstarted: set[socket.socket] = set()
        # Plain HTTP clients of a TLS listener, answered 400 and given time to read it.
        self.plain_http = PlainHTTPAnswers(self.loop, self.guard.release)
        self.over_limit = Episode()
        self.starved = Episode()

    def listen(self, listener: socket.socket, make_entry: Callable[[Ledger], ProtocolChoice],
               ssl_context: ssl.SSLContext | None, proxy: str | None = None) -> None:
        self.listeners[listener] = None
        self.routes[listener] = Route(make_entry, ssl_context, proxy)
        self.loop.add_reader(listener, self._accept, listener)

    @property
    def busy(self) -> bool:
        """Connections accepted that no protocol has taken yet (TLS handshakes included)."""
        return bool(self.silent or self.starting or self.announcing or self.plain_http)

    def check_timeouts(self, now: float) -> None:
        """Once a second: drop TLS clients silent past the handshake timeout, and say when an
        episode is over."""
        expired = []
        for sock, (_, deadline, _, _) in self.silent.items():
            if deadline > now:
                break
            expired.append(sock)
        self.state.tls_failures["timeout"] += len(expired)  # the client never spoke (metrics)
        for sock in expired:
            self._drop_silent(sock)
        late = []
        for sock, announced in self.announcing.items():
            if announced.deadline > now:
                break
            late.append(sock)
        for sock in late:
            self._drop_announcing(sock, "no whole PROXY protocol header within --tls-handshake-timeout")
        self.plain_http.expire(now)
        over = self.over_limit.ended(now)
        if over is not None:
            error_logger.info(
                "connection limit: accepting again, %d connection(s) refused over %.0fs",
                over[1], over[0],
            )
        over = self.starved.ended(now)
        if over is not None:
            error_logger.info("accepting connections again after %.0fs", over[0])

    def close(self) -> None:
        """Stop accepting; this process's copy of each listener is closed. Connections
        already accepted go on to be served: a client whose TLS handshake was under way when a
        worker was told to stop still gets its answer."""
        for listener, resume in self.listeners.items():
            if resume is not None:
                resume.cancel()
            self.loop.remove_reader(listener)
            listener.close()
        self.listeners.clear()

    def abort(self) -> None:
        """Drop the connections no protocol has taken yet: the grace period is over."""
        for sock in list(self.silent):
            self._drop_silent(sock)
        for sock in list(self.announcing):
            self._drop_announcing(sock, "stopping")
        self.plain_http.abort()
        for task in self.starting:
            task.cancel()

    async def wait_closed(self) -> None:
        if self.starting:
            await asyncio.wait(list(self.starting))

    # -- accepting ----------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        now = self.loop.time()
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _PEER_GONE:
                    continue
                self._pause(listener, exc, now)
                return
            self._admit(sock, peer, now, self.routes[listener])

    def _pause(self, listener: socket.socket, exc: OSError, now: float) -> None:
        """Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) or anything else a
        listener can fail with: retry in a while rather than spin or give up."""
        self.loop.remove_reader(listener)
        self.listeners[listener] = self.loop.call_later(ACCEPT_PAUSE, self._resume, listener)
        if not self.starved.occurred(now):
            return
        self.state.accept_pauses += 1
        name = errno.errorcode.get(exc.errno or 0, "error")
        advice = _ADVICE.get(exc.errno or 0, "")
        if advice:
            advice = "; " + advice.format(limit=_descriptor_limit())
        error_logger.warning(
            "cannot accept connections: %s (%s), %d connections open; accepting pauses %gs at a "
            "time until it works again%s", exc.strerror or exc, name, self.guard.open,
            ACCEPT_PAUSE, advice,
        )

    def _resume(self, listener: socket.socket) -> None:
        self.listeners[listener] = None
        self.loop.add_reader(listener, self._accept, listener)

    # -- admitting ----------------------------------------------------------------------------

    def _admit(self, sock: socket.socket, peer: Any, now: float, route: Route) -> None:
        guard = self.guard
        if self.limit is not None and guard.open + len(self.announcing) >= self.limit:
            self.state.refused_over_limit += 1
            if self.over_limit.occurred(now):
                error_logger.warning(
                    "connection limit reached (--limit-connections %d): new connections are "
                    "closed as they arrive until open ones end", self.limit,
                )
            sock.close()
            return
        if route.proxy is not None:
            self._expect_proxy_header(sock, peer, now, route)
            return
        self._welcome(sock, peer, now, now + self.handshake_timeout, route, None)

    def _welcome(self, sock: socket.socket, peer: Any, now: float, deadline: float, route: Route,
                 addresses: Addresses | None) -> None:
        """Charge the client's address, then on to HTTP (plain) or to the TLS handshake."""
        ledger = self.guard.admit(peer, now)
        if ledger is None:
            sock.close()  # the address is blocked; the guard said so when it blocked it
            return
        if route.ssl_context is None:
            self._connect(sock, ledger, route, {}, addresses)
        else:
            self.silent[sock] = (ledger, deadline, route, addresses)
            self.loop.add_reader(sock, self._spoke, sock)

    # -- PROXY protocol -----------------------------------------------------------------------

    def _expect_proxy_header(self, sock: socket.socket, peer: Any, now: float, route: Route) -> None:
        """Only a trusted balancer may say who the client is; its header comes before anything
        else (before TLS), within the handshake timeout."""
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if not self.trusted_peers.trusts(host):
            error_logger.debug("closing a connection from %s: not in --forwarded-allow-ips, so it "
                               "may not send a PROXY protocol header", host or "a Unix socket")
            sock.close()
            return
        assert route.proxy is not None
        self.announcing[sock] = Announced(
            ProxyHeaderReader(route.proxy), now + self.handshake_timeout, route, peer)
        self.loop.add_reader(sock, self._read_proxy_header, sock)

    def _read_proxy_header(self, sock: socket.socket) -> None:
        """Peek, so that not one byte past the header is taken from the socket: what follows
        is the client's, a TLS ClientHello or an HTTP request, for the loop's transport."""
        announced = self.announcing[sock]
        try:
            data = sock.recv(PROXY_PEEK, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop_announcing(sock, f"the balancer's connection failed ({exc})")
            return
        if not data:
            self._drop_announcing(sock, "closed before its PROXY protocol header")
            return
        try:
            info = announced.reader.feed(data)
        except ProxyHeaderError as exc:
            self._drop_announcing(sock, f"bad PROXY protocol header: {exc}")
            return
        taken = len(data) - (len(announced.reader.rest) if info is not None else 0)
        try:
            sock.recv(taken)  # peeked, so there: the header's bytes, and no more
        except OSError as exc:
            self._drop_announcing(sock, f"the balancer's connection failed ({exc})")
            return
        if info is None:
            return
        self.loop.remove_reader(sock)
        del self.announcing[sock]
        addresses = proxied_addresses(info)
        client = addresses[0] if addresses is not None else announced.peer
        self._welcome(sock, client, self.loop.time(), announced.deadline, announced.route, addresses)

    def _drop_announcing(self, sock: socket.socket, why: str) -> None:
        announced = self.announcing.pop(sock)
        error_logger.debug("closing a connection from %s: %s", announced.peer, why)
        self.loop.remove_reader(sock)
        sock.close()

    def _spoke(self, sock: socket.socket) -> None:
        """The TLS client's first bytes (or its leaving) arrived: now the handshake, unless
        they are plain HTTP."""
        remaining = self.silent[sock][1] - self.loop.time()
        if remaining <= 0:
            self._drop_silent(sock)
            return
        self.loop.remove_reader(sock)
        ledger, _, route, addresses = self.silent.pop(sock)
        if sent_plain_http(sock):
            self.state.tls_failures["protocol_error"] += 1  # as OpenSSL's HTTP_REQUEST was
            client, server = addresses if addresses is not None else (None, None)
            self.plain_http.answer(sock, ledger, server, client)
            return
        self._connect(sock, ledger, route, {
            **self.tls_options, "ssl": route.ssl_context, "ssl_handshake_timeout": remaining,
        }, addresses)

    def _drop_silent(self, sock: socket.socket) -> None:
        ledger, _, _, _ = self.silent.pop(sock)
        self.loop.remove_reader(sock)
        sock.close()
        self.guard.release(ledger)

    # -- handing over -------------------------------------------------------------------------

    def _connect(self, sock: socket.socket, ledger: Ledger, route: Route,
                 options: dict[str, Any], addresses: Addresses | None) -> None:
        entry = route.make_entry(ledger)
        entry.addresses = addresses
        self.unstarted.add(sock)
        task = self.loop.create_task(self._transport(sock, entry, options))
        self.starting.add(task)
        task.add_done_callback(functools.partial(self._connected, sock, entry))

    async def _transport(self, sock: socket.socket, entry: ProtocolChoice,
                         options: dict[str, Any]) -> None:
        self.unstarted.discard(sock)  # from here the loop's transport closes the socket
        try:
            await self.loop.connect_accepted_socket(lambda: entry, sock, **options)
        except ssl.SSLError as exc:
            self._handshake_failed(exc)  # logged where it happened (tls/context.py)
        except (OSError, asyncio.TimeoutError) as exc:  # the client left, or was too slow
            if options:
                self._handshake_failed(exc)
            error_logger.debug("connection ended before a protocol took it: %r", exc)
        else:
            if options:
                self.state.tls_handshakes += 1

    def _handshake_failed(self, exc: BaseException) -> None:
        """Count a failed TLS handshake (metrics) by a reason from a short, fixed list."""
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or (
            # How asyncio and uvloop end a handshake past its timeout.
            isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc)
        ):
            reason = "timeout"
        elif isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or not isinstance(exc, ssl.SSLError):
            reason = "client_closed"
        else:
            reason = "protocol_error"
        self.state.tls_failures[reason] += 1

    def _connected(self, sock: socket.socket, entry: ProtocolChoice, task: asyncio.Task[None]) -> None:
        self.starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error_logger.error("cannot serve a connection", exc_info=task.exception())
        if entry.ledger is not None:  # no protocol took the connection: it ended here
            self.guard.release(entry.ledger)
            entry.ledger = None
        if sock in self.unstarted:  # cancelled before it began (a stop)
            self.unstarted.discard(sock)
            sock.close()


def proxied_addresses(info: ProxyInfo) -> Addresses | None:
    """The scope's (client, server) from a PROXY header; None keeps the socket's own: LOCAL
    (the balancer's health check) and UNKNOWN name nobody."""
    if info.command != "PROXY" or info.client is None:
        return None
    if isinstance(info.client, str):  # UNIX: a path has no place in `client`
        return (None, (info.server, None) if isinstance(info.server, str) else None)
    server = info.server if isinstance(info.server, tuple) else None
    return (info.client, server)


def _descriptor_limit() -> str:
    # Imported beforehand: importing needs a descriptor, and there is none left by now.
    if resource is None:
        return "so many"
    return str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
