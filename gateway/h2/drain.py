"""Streams whose response ended before their request did (RFC 9113 section 8.1).

A server may answer before the request body has all arrived. The stream is then half-closed
(local), not gone: the client may still send DATA, trailers and END_STREAM, and h2 goes on
checking them as RFC 9113 sections 5.1 and 8.1 say (a HEADERS frame without END_STREAM, DATA
beyond the declared content-length, DATA after END_STREAM are still errors). Resetting such a
stream at once, as RFC 9113 section 8.1 also allows, would make those checks depend on whether
the response or the client's next frame came first.

What still arrives is thrown away unread, and two bounds keep it short: no flow-control window
is granted for it, so a client can send at most what its stream window allowed when the
response ended (the window running out means the stream is reset NO_ERROR at once: the client
could only wait); and a stream whose request has not ended --body-timeout after the response is
reset NO_ERROR. Until then it counts against MAX_CONCURRENT_STREAMS, as a half-closed stream
does (RFC 9113 section 5.1.2).
"""

from __future__ import annotations

from collections.abc import Container

import h2.connection
import h2.exceptions
from h2.errors import ErrorCodes


class Drains:
    """The request bodies still arriving for responses already sent: stream id -> deadline."""

    __slots__ = ("deadlines",)

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.deadlines)

    def start(self, conn: h2.connection.H2Connection, stream_id: int, deadline: float) -> None:
        """The response on `stream_id` has ended, its request has not."""
        self.deadlines[stream_id] = deadline
        self.received(conn, stream_id)

    def received(self, conn: h2.connection.H2Connection, stream_id: int) -> None:
        """DATA arrived on a stream that may be draining: stop it once its window is spent."""
        if stream_id not in self.deadlines:
            return
        try:
            spent = conn.remote_flow_control_window(stream_id) <= 0
        except h2.exceptions.StreamClosedError:  # it ended with this DATA frame
            spent = False
        if spent:
            self._stop(conn, stream_id)

    def ended(self, stream_id: int) -> bool:
        """The request ended (END_STREAM) or the stream was reset; True if it was draining."""
        return self.deadlines.pop(stream_id, None) is not None

    def expire(self, conn: h2.connection.H2Connection, now: float) -> bool:
        """Reset the streams past their deadline; True if any was."""
        late = [stream_id for stream_id, deadline in self.deadlines.items() if deadline <= now]
        for stream_id in late:
            self._stop(conn, stream_id)
        return bool(late)

    def stop_all(self, conn: h2.connection.H2Connection) -> None:
        """The connection is going away: tell each client to stop sending."""
        for stream_id in list(self.deadlines):
            self._stop(conn, stream_id)

    def _stop(self, conn: h2.connection.H2Connection, stream_id: int) -> None:
        del self.deadlines[stream_id]
        try:
            conn.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass


class Receiving:
    """The streams whose DATA is expected, for the frame meter: those being served and those
    draining. DATA for any other stream is charged as work that carries no request."""

    __slots__ = ("served", "drains")

    def __init__(self, served: Container[int], drains: Drains) -> None:
        self.served = served
        self.drains = drains

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self.served or stream_id in self.drains.deadlines
