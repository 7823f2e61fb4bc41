"""The reference HTTP/1.1 engine, on h11.

h11 holds the connection's whole state machine: it parses one request at a time and only
moves to the next once the response has gone through it, which is why `next_cycle` exists.
h11 is lenient (bare LF, obs-fold, control bytes, repeated Content-Length, unbounded chunk
sizes), so a full scanner.Scanner checks every byte before h11 sees it.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from typing import Any

import h11

from ..fields import lower_name
from .engine import BodyLengthError, Headers, RequestError, RequestHandler, ResponseDefaults
from .scanner import Scanner
from .strict import MAX_CHUNK_LINE, check_head
from .wire import CONNECTION, CONTENT_LENGTH, DATE, SERVER, TRANSFER_ENCODING


class H11Engine:
    __slots__ = (
        "handler", "conn", "scanner", "defaults", "_head_request", "_no_body",
        "_cycle_wanted",
    )

    def __init__(self, handler: RequestHandler, max_head_size: int,
                 defaults: ResponseDefaults) -> None:
        self.handler = handler
        # The scanner bounds heads and chunk lines and hands h11 only whole ones, so h11's own
        # bound never comes first.
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max(max_head_size, MAX_CHUNK_LINE) + 1
        )
        self.scanner = Scanner(max_head_size, full=True)
        self.defaults = defaults
        self._head_request = False
        self._no_body = False
        # The response went out before h11 gave the request's end (an app started eagerly,
        # state.py, answers from inside the request event): the next cycle begins at the end.
        self._cycle_wanted = False

    def feed(self, data: bytes) -> None:
        scanner = self.scanner
        data = scanner.receive(data)
        if data:
            stop = scanner.scan(data, 0)
            if stop:
                self.conn.receive_data(data if stop == len(data) else data[:stop])
        self._drain_events()

    def _drain_events(self) -> None:
        conn = self.conn
        handler = self.handler
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise RequestError(exc.error_status_hint, str(exc)) from None
            if event is h11.NEED_DATA:
                # A refusal is answered once h11 has parsed everything before it, in order.
                if self.scanner.error is not None:
                    raise self.scanner.error
                return
            if event is h11.PAUSED:
                return
            kind = type(event)
            if kind is h11.Data:
                handler.on_body(bytes(event.data))
            elif kind is h11.Request:
                self._on_request(event)
            elif kind is h11.EndOfMessage:
                handler.on_request_end()
                if not self._cycle_wanted:
                    return
                self._cycle_wanted = False
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
            elif kind is h11.ConnectionClosed:
                return

    def _on_request(self, event: h11.Request) -> None:
        version = event.http_version.decode("ascii")
        method = event.method.decode("ascii")
        headers = list(event.headers)
        # The scanner checked this head already; this gives the app's view of it.
        target, length, switching, expect_continue = check_head(method, bytes(event.target), version, headers)
        self._head_request = method == "HEAD"
        keep_alive = self.conn.their_state is not h11.MUST_CLOSE and _keep_alive(headers, version)
        self.handler.on_request(
            method, target, version, headers, keep_alive and not switching, length, switching,
            expect_continue,
        )

    def start_response(self, status: int, headers: Iterable[Any], body: bytes,
                       more_body: bool, keep_alive: bool) -> tuple[bytes, bool]:
        out: list[tuple[bytes, bytes]] = []
        has_length = False
        defaults = self.defaults
        head = defaults.head_fields
        date = defaults.date_value
        for name, value in headers:
            lname = lower_name(name)
            if type(value) is not bytes:
                raise TypeError(f"header {name!r}: values must be bytes, got {type(value).__name__}")
            if lname == CONTENT_LENGTH:
                has_length = True
            elif lname == SERVER:
                head = defaults.header_fields
            elif lname == DATE:
                date = b""
            elif lname == CONNECTION:
                if b"close" in value.lower():
                    keep_alive = False
                continue
            elif lname == TRANSFER_ENCODING:
                has_length = True
            out.append((name, value))
        self._no_body = self._head_request or status in (204, 304)
        if not more_body and not has_length and status not in (204, 304):
            out.append((b"content-length", str(len(body)).encode()))
        if not keep_alive:
            out.append((b"connection", b"close"))
        if date:
            head = [*head, (b"date", date)]
        try:
            data = self.conn.send(
                h11.Response(status_code=status, headers=head + out, reason=_reason(status))
            )
        except h11.LocalProtocolError as exc:
            raise ValueError(str(exc)) from None
        data += self.body(body, more_body)
        return data, keep_alive and self.conn.our_state is not h11.MUST_CLOSE

    def body(self, data: bytes, more_body: bool) -> bytes:
        out = b""
        try:
            if data and not self._no_body:
                out = self.conn.send(h11.Data(data=data))
            if not more_body:
                out += self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise BodyLengthError(f"response body does not match its Content-Length: {exc}") from None
        return out

    def file_chunk(self, size: int) -> tuple[bytes, bytes]:
        # h11 frames data it never reads: `send_with_data_passthrough` hands back the object
        # given as Data.data, between the framing bytes, and needs only its len() (h11's docs
        # describe this use, for sendfile).
        if not size:
            return b"", b""
        stand_in = _Length(size)
        try:
            parts = self.conn.send_with_data_passthrough(h11.Data(data=stand_in))  # type: ignore[arg-type]
        except h11.LocalProtocolError as exc:
            raise BodyLengthError(f"response body does not match its Content-Length: {exc}") from None
        at = next(i for i, part in enumerate(parts) if part is stand_in)
        return b"".join(parts[:at]), b"".join(parts[at + 1:])

    def informational(self, status: int, headers: Headers) -> bytes:
        return self.conn.send(
            h11.InformationalResponse(status_code=status, headers=headers, reason=_reason(status))
        )

    def upgrade_tail(self) -> bytes:
        return bytes(self.conn.trailing_data[0])

    def next_cycle(self) -> None:
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._drain_events()
        elif conn.our_state is h11.DONE and conn.their_state is h11.SEND_BODY:
            self._cycle_wanted = True


class _Length:
    """Stands in for `size` bytes h11 frames but never sees."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _keep_alive(headers: Headers, version: str) -> bool:
    for name, value in headers:
        if name == b"connection" and b"close" in value.lower():
            return False
    return version == "1.1"
