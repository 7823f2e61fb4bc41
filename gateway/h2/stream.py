"""The wire side of one HTTP/2 stream's response: what flow control holds back, and who
waits for it."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from ..asgi import Exchange

if TYPE_CHECKING:
    from ..ws.session import WebSocketSession
    from .websocket import H2WebSocket


class Stream:
    """The wire side of one stream's response; it lives in the protocol's stream table until
    the response is sent or the stream is reset."""

    __slots__ = ("exchange", "pending", "pending_size", "pending_end", "waiter", "remaining", "no_body",
                 "stalled_since", "session", "websocket", "header_size", "opened_at", "window_owed")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        # Response data not yet sent, in the app's chunks (the first one perhaps a view of what
        # is left of a chunk); it waits here for flow-control window.
        self.pending: deque[bytes | memoryview] = deque()
        self.pending_size = 0
        self.pending_end = False  # the response ends after what is pending
        self.waiter: asyncio.Future[None] | None = None
        self.remaining: int | None = None  # declared Content-Length still to send
        self.no_body = False
        self.stalled_since: float | None = None  # when the peer's window last ran out
        self.header_size = 0  # the request head, decoded, as --h2-max-headers-held counts it
        self.opened_at = 0.0  # loop time the app was called
        self.window_owed = 0  # request data the app has read and no WINDOW_UPDATE granted yet
        # An extended CONNECT stream (RFC 8441): the WebSocket session and its carrier.
        self.session: WebSocketSession | None = None
        self.websocket: H2WebSocket | None = None


def wake(stream: Stream) -> None:
    """What the stream had pending has gone (or the stream has): its sender may go on."""
    waiter = stream.waiter
    if waiter is not None:
        stream.waiter = None
        if not waiter.done():
            waiter.set_result(None)
    if stream.websocket is not None:
        stream.websocket.writable()
