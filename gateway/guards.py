"""The budget every protocol charges a client's unproductive work to, kept per client address.

A client can make the server work without asking for anything: HTTP/2 control frames (PING,
SETTINGS, PRIORITY, WINDOW_UPDATE), empty DATA frames, streams opened only to be reset, frames
that make the server reset a stream ("MadeYouReset"), WebSocket pings. Each is charged to a
`Ledger`, a token bucket of `--control-frame-budget` frames per 10 s: a burst at connection start
passes, a sustained flood runs dry and its connection is closed. DATA the server sends earns back
the WINDOW_UPDATE frames a client owes for it, so a long download never runs a client dry.

A ledger belongs to a client address rather than to one connection, so reconnecting neither
refills the budget nor restarts the rapid-reset count, and an address whose connection was cut
for abuse is refused new connections for `--address-block-time` seconds. IPv6 clients are
counted by /64, the block one subscriber usually holds. Addresses in `--address-guard-exempt`
(a load balancer without PROXY protocol speaks for every client at once) get a ledger per
connection, as does everyone when `--address-block-time` is 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from .config import IPNetwork
from .logs import error_logger

# The budget is so many frames per this many seconds.
BUDGET_PERIOD = 10.0
# Streams a client may reset (or make the server reset) per period before resets must be fewer
# than half the streams it opened: rapid reset, CVE-2023-44487.
RESET_ALLOWANCE = 200
# Addresses tracked at once; past it, new addresses get a ledger per connection, which still
# bounds each connection but not their sum.
MAX_ADDRESSES = 65536


class Ledger:
    """What one client address (or one connection) may still spend, and its stream counts."""

    __slots__ = ("key", "capacity", "tokens", "stamp", "opened", "resets", "counted_until",
                 "blocked_until", "live")

    def __init__(self, key: Any, capacity: int, now: float) -> None:
        self.key = key  # None: this ledger serves one connection only
        self.capacity = capacity
        self.tokens = float(capacity)
        self.stamp = now
        self.opened = 0  # streams that reached the app, this period
        self.resets = 0  # of them, reset by the client or because of it
        self.counted_until = now + BUDGET_PERIOD
        self.blocked_until = 0.0
        self.live = 0  # connections holding this ledger

    def charge(self, cost: int, now: float) -> bool:
        """Spend `cost` frames' worth; False once the budget is overdrawn."""
        tokens = self.tokens + (now - self.stamp) * (self.capacity / BUDGET_PERIOD)
        if tokens > self.capacity:
            tokens = self.capacity
        self.tokens = tokens - cost
        self.stamp = now
        return self.tokens >= 0

    def earn(self, frames: int) -> None:
        """Frames the server sent that a well-behaved client answers (DATA: WINDOW_UPDATE)."""
        tokens = self.tokens + frames
        self.tokens = tokens if tokens < self.capacity else self.capacity

    def stream_reset(self, now: float) -> bool:
        """Count a stream reset by (or because of) the client; False when resets have become
        most of what the client does."""
        if now >= self.counted_until:
            self.opened = self.resets = 0
            self.counted_until = now + BUDGET_PERIOD
        self.resets += 1
        return self.resets <= RESET_ALLOWANCE or self.resets * 2 <= self.opened


class AddressGuard:
    """The ledgers of the client addresses with live connections or a recent offence."""

    def __init__(self, budget: int, block_time: float, exempt: list[IPNetwork]) -> None:
        self.budget = budget
        self.block_time = block_time
        self.exempt = exempt
        self.ledgers: dict[Any, Ledger] = {}
        # Connections admitted and not yet released, whatever their stage (a TLS handshake
        # included) or protocol: what --limit-connections bounds.
        self.open = 0
        self.refused = 0  # connections refused because their address was blocked
        self.blocks = 0  # times an address was blocked

    def admit(self, peer: Any, now: float) -> Ledger | None:
        """The ledger a new connection from `peer` (a socket address) charges, or None when
        that address is blocked and the connection must be closed at once."""
        key = self._key(peer)
        if key is None:
            ledger = Ledger(None, self.budget, now)
        else:
            ledger = self.ledgers.get(key)  # type: ignore[assignment]
            if ledger is None:
                ledger = Ledger(key, self.budget, now)
                if len(self.ledgers) < MAX_ADDRESSES:
                    self.ledgers[key] = ledger
            elif ledger.blocked_until > now:
                self.refused += 1
                return None
        ledger.live += 1
        self.open += 1
        return ledger

    def release(self, ledger: Ledger) -> None:
        """The connection holding `ledger` is gone; called once per admitted connection."""
        ledger.live -= 1
        self.open -= 1

    def charge(self, ledger: Ledger, cost: int, now: float, what: str) -> bool:
        """`ledger.charge`, and once the budget is overdrawn an offence: False means the caller
        ends the connection (or the WebSocket) for abuse."""
        if ledger.charge(cost, now):
            return True
        self.offence(ledger, now, what)
        return False

    def offence(self, ledger: Ledger, now: float, what: str) -> None:
        """A connection on `ledger` was cut for abuse: its address is refused for a while."""
        if ledger.key is None or ledger.blocked_until > now:
            return
        ledger.blocked_until = now + self.block_time
        self.blocks += 1
        error_logger.warning(
            "refusing connections from %s for %gs: %s", _key_text(ledger.key), self.block_time, what
        )

    def sweep(self, now: float) -> None:
        """Forget addresses with no connection, no block and a full budget again."""
        idle = now - BUDGET_PERIOD
        stale = [
            key for key, ledger in self.ledgers.items()
            if ledger.live <= 0 and ledger.blocked_until <= now and ledger.stamp <= idle
        ]
        for key in stale:
            del self.ledgers[key]

    def _key(self, peer: Any) -> Any:
        if not self.block_time or not isinstance(peer, tuple) or not peer:
            return None
        try:
            address = ipaddress.ip_address(peer[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for network in self.exempt:
            if address in network:
                return None
        if isinstance(address, ipaddress.IPv6Address):
            return ("v6", int(address) >> 64)
        return address


def _key_text(key: Any) -> str:
    if isinstance(key, tuple):
        return f"{ipaddress.IPv6Address(key[1] << 64)}/64"
    return str(key)


class StallWatch:
    """How long a connection's unsent output has not shrunk. A client that stops reading
    holds the server's buffer, and an app waiting to send, for as long as it likes; nginx's
    `send_timeout` ends that once no byte has been taken for a while. Progress, not time
    paused, is what counts, so a slow reader that keeps reading is never cut off."""

    __slots__ = ("size", "since")

    def __init__(self) -> None:
        self.size = 0
        self.since = 0.0

    def overdue(self, transport: asyncio.BaseTransport | None, now: float, timeout: float) -> bool:
        """Whether what `transport` has buffered has not shrunk for more than `timeout`
        seconds (0: never overdue). Called once a second."""
        if transport is None or not timeout:
            return False
        buffered = transport.get_write_buffer_size()  # type: ignore[attr-defined]
        if buffered < self.size or not self.size:
            self.since = now
        self.size = buffered
        return bool(buffered) and now - self.since > timeout
