"""What an access-log line says, and when it is written out.

An entry is taken when a response ends (or a WebSocket session does): a few references and
numbers, no text. Text is made only when a handler formats the record, by `str(entry)`, in
gateway's own form or in the `--access-log-format` the operator gave, which uses gunicorn's
atoms (`%(h)s %(r)s %(s)s ...`) plus gateway's `%(P)s` and `%(S)s`. The JSON formatter
(logs.py) asks the entry for its `fields()` instead, so both views come from one record.

This module imports nothing of gateway's but its C twin of `_gateway_line`, so that config.py
can check a format with it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

try:
    from ._accessline import line as _line_c
except ImportError:  # built without a C compiler: the Python twin
    _line_c = None

# ANSI SGR codes for a status class, uvicorn's choice of colours.
RESET = "\x1b[0m"
STATUS_COLOURS = {"1": "\x1b[97m", "2": "\x1b[32m", "3": "\x1b[33m", "4": "\x1b[31m", "5": "\x1b[91m"}


def address_text(address: tuple[str, int | None] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"


def protocol_text(scope: dict[str, Any]) -> str:
    """"HTTP/1.1", "HTTP/2": the request's protocol as its request line would name it."""
    version = scope.get("http_version")
    return f"HTTP/{version}" if version else "-"


def raw_target(scope: dict[str, Any]) -> str:
    """The request target as it came on the wire: percent-encoded, so it holds no space or
    control character a log line could be forged with (the parsers refuse those)."""
    path = (scope.get("raw_path") or b"").decode("latin-1")
    query = scope.get("query_string")
    return path + "?" + query.decode("latin-1") if query else path


def request_header(scope: dict[str, Any], name: bytes) -> str | None:
    """A request field's value (several joined with ", "), None when it is absent."""
    values = [value for key, value in scope.get("headers") or () if key == name]
    if not values:
        return None
    return values[0].decode("latin-1") if len(values) == 1 else b", ".join(values).decode("latin-1")


class HTTPEntry:
    """One HTTP response for the access log. `scope` is the request's (a request refused
    before it had one gets a scope holding only its `client`); `stream_id` is HTTP/2's, 0 on
    HTTP/1.1; `response_headers` are the app's, as it sent them."""

    __slots__ = ("form", "scope", "status", "size", "seconds", "stream_id", "response_headers")

    def __init__(self, form: AccessFormat, scope: dict[str, Any], status: int, size: int | None,
                 seconds: float, stream_id: int, response_headers: Iterable[Any]) -> None:
        self.form = form
        self.scope = scope
        self.status = status
        self.size = size
        self.seconds = seconds
        self.stream_id = stream_id
        self.response_headers = response_headers

    def __str__(self) -> str:
        return self.form.render(self, False)

    def coloured(self) -> str:
        return self.form.render(self, True)

    def line(self, prefix: str, colour: bool) -> str:
        """`prefix`, the text (`coloured` or not) and a newline: a text formatter's line."""
        return self.form.line(prefix, colour, self.scope, self.status, self.size, self.seconds,
                              self.stream_id, self.response_headers)

    def fields(self) -> dict[str, Any]:
        """The line's facts as JSON values."""
        scope = self.scope
        query = scope.get("query_string")
        return {
            "type": "http",
            "client": address_text(scope.get("client")),
            "method": scope.get("method"),
            "path": (scope.get("raw_path") or b"").decode("latin-1") if "method" in scope else None,
            "query": query.decode("latin-1") if query else "",
            "protocol": protocol_text(scope) if "method" in scope else None,
            "http_version": scope.get("http_version"),
            "status": self.status,
            "bytes": self.size,
            "duration_ms": round(self.seconds * 1000, 3),
            "stream_id": self.stream_id or None,
            "user_agent": request_header(scope, b"user-agent"),
            "referer": request_header(scope, b"referer"),
        }


class WebSocketEntry:
    """One WebSocket session, logged when it ends: who it was, how long it lasted, what went
    each way (whole messages and their payload bytes), how it closed and who began the close
    ("client" also when the client just went away, code 1006)."""

    __slots__ = ("scope", "stream_id", "seconds", "messages_in", "bytes_in", "messages_out",
                 "bytes_out", "close_code", "closed_by")

    def __init__(self, scope: dict[str, Any], stream_id: int, seconds: float, messages_in: int,
                 bytes_in: int, messages_out: int, bytes_out: int, close_code: int,
                 closed_by: str | None) -> None:
        self.scope = scope
        self.stream_id = stream_id
        self.seconds = seconds
        self.messages_in = messages_in
        self.bytes_in = bytes_in
        self.messages_out = messages_out
        self.bytes_out = bytes_out
        self.close_code = close_code
        self.closed_by = closed_by

    def carrier_text(self) -> str:
        if self.stream_id:
            return f"{protocol_text(self.scope)} stream {self.stream_id}"
        return f"{protocol_text(self.scope)} upgrade"

    def __str__(self) -> str:
        return (
            f'{address_text(self.scope.get("client"))} - WebSocket "{raw_target(self.scope)}" over'
            f" {self.carrier_text()}: {self.seconds * 1000:.1f}ms, {self.messages_in} messages"
            f" ({self.bytes_in}B) in, {self.messages_out} messages ({self.bytes_out}B) out,"
            f" closed {self.close_code} by {self.closed_by or '-'}"
        )

    coloured = __str__

    def line(self, prefix: str, colour: bool) -> str:
        return prefix + str(self) + "\n"

    def fields(self) -> dict[str, Any]:
        scope = self.scope
        query = scope.get("query_string")
        return {
            "type": "websocket",
            "client": address_text(scope.get("client")),
            "path": (scope.get("raw_path") or b"").decode("latin-1"),
            "query": query.decode("latin-1") if query else "",
            "protocol": protocol_text(scope),
            "http_version": scope.get("http_version"),
            "stream_id": self.stream_id or None,
            "duration_ms": round(self.seconds * 1000, 3),
            "messages_in": self.messages_in,
            "bytes_in": self.bytes_in,
            "messages_out": self.messages_out,
            "bytes_out": self.bytes_out,
            "close_code": self.close_code,
            "closed_by": self.closed_by,
            "user_agent": request_header(scope, b"user-agent"),
        }


# -- --access-log-format ------------------------------------------------------------------------

Atom = Callable[[HTTPEntry], Any]


def _request_line(entry: HTTPEntry) -> str:
    scope = entry.scope
    if "method" not in scope:
        return "-"
    return f"{scope['method']} {raw_target(scope)} {protocol_text(scope)}"


def _wire_protocol(entry: HTTPEntry) -> str:
    """The connection's protocol by its ALPN name: h2 over TLS, h2c without."""
    scope = entry.scope
    version = scope.get("http_version")
    if version == "2":
        return "h2" if "tls" in (scope.get("extensions") or ()) else "h2c"
    return f"http/{version}" if version else "-"


def _response_header(entry: HTTPEntry, name: bytes) -> str:
    values = []
    try:
        for key, value in entry.response_headers:
            if key.lower() == name:
                values.append(value.decode("latin-1"))
    except (TypeError, ValueError, AttributeError):  # the app's, not checked again here
        return "-"
    return ", ".join(values) if values else "-"


# gunicorn's atoms, then gateway's own P and S; README.md has the table users read.
ATOMS: dict[str, Atom] = {
    "h": lambda e: (e.scope.get("client") or ("-",))[0],  # the address without its port
    "l": lambda e: "-",
    "u": lambda e: "-",  # gunicorn's user from Basic auth: not taken from a request here
    "t": lambda e: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": _request_line,
    "m": lambda e: e.scope.get("method", "-"),
    "U": lambda e: (e.scope.get("raw_path") or b"-").decode("latin-1"),
    "q": lambda e: (e.scope.get("query_string") or b"").decode("latin-1"),
    "H": lambda e: protocol_text(e.scope),
    "s": lambda e: e.status,
    "B": lambda e: e.size or 0,
    "b": lambda e: e.size or "-",
    "f": lambda e: request_header(e.scope, b"referer") or "-",
    "a": lambda e: request_header(e.scope, b"user-agent") or "-",
    "T": lambda e: int(e.seconds),
    "D": lambda e: int(e.seconds * 1_000_000),
    "M": lambda e: int(e.seconds * 1000),
    "L": lambda e: f"{e.seconds:.6f}",
    "p": lambda e: f"<{os.getpid()}>",  # as gunicorn writes it
    "P": _wire_protocol,
    "S": lambda e: e.stream_id or "-",
}
# `%%` is a literal %; any other `%(key)` is an atom.
_KEY = re.compile(r"%%|%\(([^)]*)\)")
_HEADER_ATOM = re.compile(r"\{([^{}]+)\}([io])")


class AccessFormat:
    """An access-line format, compiled once: gateway's own when `text` is None, else the
    atoms it uses, each with its getter. ValueError names an unknown atom, or says why the
    format cannot be applied (a bare `%`, `%(s)d` where `%(b)s` may be '-')."""

    def __init__(self, text: str | None) -> None:
        self.text = text
        self.atoms: tuple[tuple[str, Atom], ...] = ()
        # `_gateway_line`'s C maker, for a caller that skips the Python calls around it (a
        # text formatter, once per response): None for a format of atoms, or where not built.
        self.own_line_c = _line_c if text is None else None
        # Colour goes on the status only where it is written as text.
        self.colour_status = text is None or "%(s)s" in text
        if text is None:
            return
        if not isinstance(text, str):
            raise ValueError("expected a format string such as '%(h)s \"%(r)s\" %(s)s %(b)s'")
        atoms = {}
        for match in _KEY.finditer(text):
            key = match.group(1)
            if key is None or key in atoms:
                continue
            atoms[key] = _atom(key)
        self.atoms = tuple(atoms.items())
        sample = HTTPEntry(self, {}, 200, 0, 0.0, 0, ())
        try:
            self.render(sample, False)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"it cannot be applied: {exc} (a literal % is written %%)") from None

    def line(self, prefix: str, colour: bool, scope: dict[str, Any], status: int, size: int | None,
             seconds: float, stream_id: int, response_headers: Iterable[Any]) -> str:
        """`prefix`, the text of an HTTPEntry of these facts and a newline, as one string: the
        line a text formatter writes, made without the entry in gateway's own format (this
        runs once per response)."""
        if self.text is None:
            return _gateway_line(scope, _coloured_status(status) if colour else status, size,
                                seconds, prefix, "\n")
        entry = HTTPEntry(self, scope, status, size, seconds, stream_id, response_headers)
        return prefix + self.render(entry, colour) + "\n"

    def render(self, entry: HTTPEntry, colour: bool) -> str:
        if self.text is None:
            return _gateway_line(entry.scope, _coloured_status(entry.status) if colour else entry.status,
                                entry.size, entry.seconds)
        values = {key: atom(entry) for key, atom in self.atoms}
        if colour and self.colour_status and "s" in values:
            values["s"] = _coloured_status(entry.status)
        return self.text % values


def _atom(key: str) -> Atom:
    found = ATOMS.get(key)
    if found is not None:
        return found
    header = _HEADER_ATOM.fullmatch(key)
    if key.endswith("}e"):
        raise ValueError(f"%({key})s: gunicorn's environment atom has no ASGI equivalent")
    if header is None:
        raise ValueError(
            f"unknown atom %({key})s; known: {', '.join(ATOMS)}, {{header}}i and {{header}}o"
        )
    name = header.group(1).strip().lower().encode("latin-1", "replace")
    if header.group(2) == "o":
        return lambda entry: _response_header(entry, name)
    return lambda entry: request_header(entry.scope, name) or "-"


def _coloured_status(status: int) -> str:
    text = str(status)
    colour = STATUS_COLOURS.get(text[:1])
    return colour + text + RESET if colour else text


def _gateway_line(scope: dict[str, Any], status: int | str, size: int | None, seconds: float,
                  prefix: str = "", end: str = "") -> str:
    """gateway's own line: `127.0.0.1:50000 - "GET /path?q HTTP/1.1" 200 5B 0.4ms`, and for a
    request refused before it was read whole, `127.0.0.1:50000 - "-" 400`; between `prefix`
    and `end`. Made in C (`_accessline.c`) where it is built and the scope is the usual one:
    in Python it was half of what the access log cost a request."""
    if _line_c is not None:
        made = _line_c(prefix, scope, status, size, seconds, end)
        if made is not NotImplemented:
            return made
    return gateway_line_py(scope, status, size, seconds, prefix, end)


def gateway_line_py(scope: dict[str, Any], status: int | str, size: int | None, seconds: float,
                    prefix: str = "", end: str = "") -> str:
    """`_gateway_line` in Python: the C function's twin and reference."""
    client = address_text(scope.get("client"))
    if "method" not in scope:
        return f'{prefix}{client} - "-" {status}{end}'
    return (f'{prefix}{client} - "{scope["method"]} {raw_target(scope)}'
            f' HTTP/{scope.get("http_version")}" {status} {size}B {seconds * 1000:.1f}ms{end}')
