"""Why a connection's transport is not being read.

Several things may each stop reading one connection: a request body the app has not read, a
client not reading its responses, a batch of frames waiting for the next turn of the loop.
They overlap, and resuming for one must not undo another, so each connection keeps the set of
reasons and the transport is read again only once none is left.
"""

from __future__ import annotations

import asyncio


class ReadingBlocks:
    """A mixin for connection protocols: `block_reading` and `unblock_reading` by reason, one
    bit each. (A mixin rather than an object of its own: idle connections are many, and each
    object costs memory.)"""

    transport: asyncio.Transport | None
    reading_blocked: int  # the reasons, or 0: the transport is being read

    def block_reading(self, reason: int) -> None:
        if not self.reading_blocked and self.transport is not None:
            self.transport.pause_reading()
        self.reading_blocked |= reason

    def unblock_reading(self, reason: int) -> None:
        if self.reading_blocked & reason:
            self.reading_blocked &= ~reason
            if not self.reading_blocked and self.transport is not None:
                self.transport.resume_reading()
