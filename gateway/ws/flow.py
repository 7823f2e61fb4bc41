"""When a WebSocket's carrier is read, and the pong owed to a peer that is not reading.

Two things stop reading: an app that has not read what came (its inbox past a high-water
mark), and a peer that has not read what we sent. The second is for pings: every ping owes a
pong (RFC 6455 section 5.5.2), so a peer that sends pings and never reads would have pongs
queue without limit. While the carrier cannot write, only the most recent ping is owed its
pong (section 5.5.3 allows it), sent when the carrier can write again, and the peer is not read
meanwhile: it is then dropped by the keep-alive (our ping goes unanswered) or the close
timeout like any peer that stops reading. Reading resumes only when neither holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsproto.connection import ConnectionState
from wsproto.events import Pong

if TYPE_CHECKING:
    from .frames import FrameConnection
    from .session import WebSocketCarrier, WebSocketSession

INBOX = 1  # the app has not read what came
OUTPUT = 2  # the peer has not read what we sent, and a pong is owed


class Flow:
    """Why one session's carrier is not being read, and the pong owed meanwhile."""

    __slots__ = ("session", "carrier", "held", "owed_pong")

    def __init__(self, session: WebSocketSession, carrier: WebSocketCarrier) -> None:
        self.session = session
        self.carrier = carrier
        self.held = 0  # INBOX | OUTPUT
        self.owed_pong: bytes | None = None  # the payload of the last ping not yet answered

    def hold(self, reason: int) -> None:
        if not self.held:
            self.carrier.pause_reading(self.session)
        self.held |= reason

    def release(self, reason: int) -> None:
        if self.held & reason:
            self.held &= ~reason
            if not self.held:
                self.carrier.resume_reading(self.session)

    def answer_ping(self, connection: FrameConnection, payload: bytes) -> None:
        """Send the pong now, or owe it (and stop reading) while the carrier cannot write."""
        if self.carrier.write_paused:
            self.owed_pong = payload
            self.hold(OUTPUT)
        else:
            self.carrier.send_frames(self.session, connection.send(Pong(payload=payload)))

    def writable(self, connection: FrameConnection | None) -> None:
        """The carrier can write again: the owed pong goes (not after our close), and reading
        resumes unless the pong filled the carrier again."""
        if not self.held & OUTPUT:
            return
        payload, self.owed_pong = self.owed_pong, None
        if payload is not None and connection is not None and connection.state is ConnectionState.OPEN:
            self.carrier.send_frames(self.session, connection.send(Pong(payload=payload)))
            if self.carrier.write_paused:
                return  # still held: the next call releases it
        self.release(OUTPUT)
