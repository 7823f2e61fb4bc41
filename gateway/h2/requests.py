"""From a request's HEADERS to a stream: the pseudo-header fields become the scope, and an
extended CONNECT with `:protocol websocket` (RFC 8441) becomes a WebSocket session instead of
an HTTP exchange. The connection only registers what comes back and starts the app."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..asgi import Exchange, http_scope
from ..logs import error_logger
from ..proxy.forwarded import apply_forwarded
from ..ws.handshake import VERSION_FIELD, HandshakeError, read_request
from ..ws.session import WebSocketSession
from .fields import header_list_size, plain_fields, response_fields
from .stream import Stream
from .websocket import H2WebSocket

if TYPE_CHECKING:
    from ..state import AppCall
    from .protocol import H2Protocol


class RequestHead:
    """A request's fields read once: the pseudo-header fields apart, the rest as the scope's
    `headers` (with `host` from :authority). A client repeats its request fields, and the
    decoder then gives back the same fields (hpack_cache.py): the connection keeps the last
    head read and reads a repeated one no more."""

    __slots__ = ("fields", "method", "path", "scheme", "extended", "headers", "size")

    def __init__(self, fields: Iterable[tuple[bytes, bytes]]) -> None:
        self.fields = fields
        method = path = authority = b""
        scheme = extended = None
        headers = []
        for name, value in fields:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":protocol":
                    extended = value
            else:
                headers.append((name, value))
        if authority and not any(name == b"host" for name, _ in headers):
            headers.insert(0, (b"host", authority))
        self.method = method.decode("ascii")
        self.path = path
        self.scheme = scheme.decode("ascii") if scheme else None
        self.extended = extended
        self.headers = headers
        self.size = header_list_size(fields)


def open_stream(protocol: H2Protocol, stream_id: int, head: RequestHead,
                ended: bool) -> tuple[Stream, AppCall] | None:
    """The stream and the app call that serves it, or None when the request was answered
    here (an unsupported `:protocol`, a bad WebSocket handshake)."""
    state = protocol.state
    base = protocol.base_scope
    scope = http_scope(
        "2", base["server"], base["client"], head.scheme or base["scheme"], head.method,
        head.path, list(head.headers), state.root_path, state.lifespan_state, base["extensions"],
    )
    extended = head.extended
    if protocol.forwarded:
        apply_forwarded(scope, state.trusted_peers)
    if extended is not None:
        # WebSocket is the one protocol gateway speaks over extended CONNECT.
        if extended != b"websocket":
            _answer(protocol, stream_id, 501)
            return None
        return _open_websocket(protocol, stream_id, scope)
    exchange = Exchange(protocol, scope, ended, False, state.log_access, stream_id)
    stream = Stream(exchange)
    stream.no_body = head.method == "HEAD"
    return stream, exchange


def pushed_request(scope: dict[str, Any], path: str, headers: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    """The GET a server push promises for `path`, from the scope of the request it answers."""
    authority = next((v for n, v in scope["headers"] if n == b"host"), b"")
    return [
        (b":method", b"GET"),
        (b":path", path.encode("utf-8")),
        (b":scheme", scope["scheme"].encode("ascii")),
        (b":authority", authority),
        *plain_fields(headers),
    ]


def _open_websocket(protocol: H2Protocol, stream_id: int,
                    scope: dict) -> tuple[Stream, AppCall] | None:
    state = protocol.state
    try:
        request = read_request("CONNECT", scope["headers"], http2=True)
    except HandshakeError as exc:
        error_logger.debug("bad WebSocket handshake on HTTP/2: %s", exc)
        _answer(protocol, stream_id, 400, [VERSION_FIELD])
        return None
    exchange = Exchange(protocol, scope, True, False, state.log_access, stream_id)
    stream = Stream(exchange)
    carrier = stream.websocket = H2WebSocket(protocol, stream_id, stream)
    session = stream.session = WebSocketSession(carrier, exchange, request, state.ws_settings)
    return stream, session


def _answer(protocol: H2Protocol, stream_id: int, status: int,
            headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A request refused before any app sees it: the status alone, with the default fields."""
    state = protocol.state
    fields, _ = response_fields(status, headers or (), state.head_fields, state.date_value)
    protocol.conn.send_headers(stream_id, fields, end_stream=True)
