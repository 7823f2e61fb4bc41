"""The response side of an HTTP/1.1 connection: the calls an exchange makes on its carrier
(head, body, early hints, 100-continue, drain) and the answers gateway writes itself to a
request it cannot serve.

`ResponseWriting` is a part of `H1Protocol` (protocol.py), kept in a module of its own: the
connection class reads the request stream and keeps the request cycle, this part writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..asgi import HEAD_PENDING, START, Exchange, ResponseFramingError
from ..files import FileSendError
from ..logs import address_text, error_logger
from ..wakeup import Wakeup
from .encode import simple_response
from .engine import BodyLengthError, RequestError
from .sendfile import KernelCopy

if TYPE_CHECKING:
    from ..state import ServerState

# Why the socket is not being read (any of them is enough).
BODY = 1  # a request body the app has not read yet
HELD = 2  # held bytes past BODY_HIGH_WATER
WRITE = 4  # the client is not reading its responses
BROKEN = 8  # a bad request: nothing more is read


class ResponseWriting:
    """The carrier calls and the error answers of `H1Protocol`."""

    __slots__ = ()  # the attributes are H1Protocol's

    state: ServerState
    engine: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    scheme: str
    copy: KernelCopy | None
    bytes_out: int
    client: tuple[str, int] | None
    closing: bool
    broken: bool
    write_paused: bool
    _drained: Wakeup
    current: Exchange | None
    current_keep_alive: bool
    incoming: Exchange | None
    pipeline: list[tuple[Exchange, bool] | RequestError] | None

    if TYPE_CHECKING:  # H1Protocol's own, which this part calls
        def block_reading(self, reason: int) -> None: ...

        def unblock_reading(self, reason: int) -> None: ...

        def _response_done(self) -> None: ...

        def _close(self) -> None: ...

        def force_close(self) -> None: ...

        def queue(self, item: tuple[Exchange, bool] | RequestError) -> None: ...

    # -- the exchange's carrier calls ----------------------------------------------------

    def write_head(self, exchange: Exchange, status: int, headers: Iterable[Any], body: bytes,
                   more_body: bool) -> None:
        if self.closing or exchange is not self.current:
            return
        keep_alive = (
            self.current_keep_alive and exchange.body_complete and not self.state.shutting_down
        )
        try:
            data, self.current_keep_alive = self.engine.start_response(
                status, headers, body, more_body, keep_alive
            )
        except BodyLengthError as exc:
            self._framing_error(exchange, exc)
        if type(data) is list:  # a large body beside its head, uncopied (encode.py)
            self.bytes_out += sum(map(len, data))
            self.transport.writelines(data)  # type: ignore[union-attr]
        else:
            self.bytes_out += len(data)
            self.transport.write(data)  # type: ignore[union-attr]
        if not more_body:
            self._response_done()

    def write_body(self, exchange: Exchange, body: bytes, more_body: bool) -> None:
        if self.closing or exchange is not self.current:
            return
        try:
            data = self.engine.body(body, more_body)
        except BodyLengthError as exc:
            self._framing_error(exchange, exc)
        if data:
            transport = self.transport
            if type(data) is list:  # a large chunk beside its framing, uncopied (encode.py)
                self.bytes_out += sum(map(len, data))
                transport.writelines(data)  # type: ignore[union-attr]
            else:
                self.bytes_out += len(data)
                transport.write(data)  # type: ignore[union-attr]
            if transport.is_closing():  # type: ignore[union-attr]
                # The write failed (the client reset the connection) and the loop has not told
                # us yet: a transport that is going drops writes and never pauses, so an app
                # sending in a loop would spin on it and never let the loop say so.
                exchange.feed_disconnect()
                return
        if not more_body:
            self._response_done()

    @property
    def sends_files(self) -> bool:
        """Whether `send_file` may be used: the kernel can copy a file only onto a plain socket
        (TLS encrypts in user space)."""
        return self.scheme == "http"

    async def send_file(self, exchange: Exchange, fd: int, offset: int, count: int) -> int:
        """`count` bytes of the file `fd` from `offset`, as one body chunk of the response
        begun, copied by the kernel (sendfile.py). Returns the bytes the client was given: fewer
        when it went away, which the exchange is told as for any body chunk."""
        if self.closing or exchange is not self.current:
            exchange.feed_disconnect()  # the connection is going: nothing more reaches the client
            return 0
        try:
            before, after = self.engine.file_chunk(count)
        except BodyLengthError as exc:
            self._framing_error(exchange, exc)
        transport = self.transport
        assert transport is not None
        if before:
            self.bytes_out += len(before)
            transport.write(before)
        copy = self.copy = KernelCopy(self.loop, transport, fd, offset, count)
        try:
            sent = await copy.run()
        except FileSendError:
            # The response cannot be completed as framed: the connection ends with it.
            self.abort(exchange)
            raise
        finally:
            self.copy = None
            self.bytes_out += copy.sent
        if sent < count:
            exchange.feed_disconnect()
            self.force_close()
        elif after:
            self.bytes_out += len(after)
            transport.write(after)
        return sent

    async def drain(self, exchange: Exchange) -> None:
        if self.write_paused:
            await self._drained.wait(self.loop)

    def send_early_hint(self, exchange: Exchange, links: list[bytes]) -> None:
        """103 Early Hints (RFC 8297), to HTTP/1.1 clients only: HTTP/1.0 knows no 1xx."""
        if self.closing or exchange is not self.current or exchange.scope["http_version"] != "1.1":
            return
        hints = [(b"link", link) for link in links]
        self.transport.write(self.engine.informational(103, hints))  # type: ignore[union-attr]

    def send_continue(self, exchange: Exchange) -> None:
        if not self.closing and exchange is self.current:
            self.transport.write(self.engine.informational(100, []))  # type: ignore[union-attr]

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        self.unblock_reading(BODY)

    def abort(self, exchange: Exchange) -> None:
        exchange.feed_disconnect()
        self._close()

    def _request_error(self, exc: RequestError) -> None:
        error_logger.debug("invalid request from %s: %s", address_text(self.client), exc.reason)
        incoming = self.incoming
        if incoming is not None:
            # The error is in a request body: that request cannot go on.
            self.incoming = None
            incoming.feed_disconnect()
            if incoming is not self.current:
                self.pipeline = [
                    exc if not isinstance(item, RequestError) and item[0] is incoming else item
                    for item in self.pipeline or ()
                ]
                self._stop_parsing()
                return
            if incoming.state is not START and incoming.state is not HEAD_PENDING:
                # The response has begun: nothing more can be said on this connection.
                self._close()
                return
            self.current = None
        if self.current is None:
            self._send_error(exc)
        else:
            self.queue(exc)
            self._stop_parsing()

    def _send_error(self, exc: RequestError) -> None:
        state = self.state
        self.transport.write(  # type: ignore[union-attr]
            simple_response(exc.status, exc.reason, state.head_lines, state.date_line, exc.headers)
        )
        if state.log_access:
            state.log_access.refused(self.client, exc.status)
        self._close()

    def _framing_error(self, exchange: Exchange, exc: BodyLengthError) -> None:
        exchange.feed_disconnect()
        self._close()
        raise ResponseFramingError(str(exc)) from None

    def _stop_parsing(self) -> None:
        """After a bad request nothing more from this client is read; the responses already
        owed are still written, then the connection closes."""
        self.broken = True
        self.block_reading(BROKEN)
