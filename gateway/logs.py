"""Log set-up: one line per event, for operators to read or for a collector to parse.

Two loggers: `gateway.error` for the server's own events and app failures, `gateway.access`
for one line per response and one per WebSocket session. Both can be reconfigured with the
standard logging module, or with a file (`--log-config`, log_config.py). `--log-format text`
(the default) writes readable lines; on a terminal the level name, and an access line's
status, are coloured as uvicorn colours them (`--use-colors`), never in a file or a pipe
unless asked. `--log-format json` writes one JSON object per line, never coloured, with an
access line's facts as keys of their own.

The access log costs nothing when it is off or its level is above INFO: `AccessLog` checks
the level before it takes an entry, and an entry becomes text only when a handler formats it.
When the access logger's only handler is gateway's own (log_lines.py) with its own formatter,
no filter and nothing above it to propagate to, the entry goes straight to that formatter and
handler, without a LogRecord: whatever else the user configured takes the standard path. A
handler writes each line, traceback included, with one write (access lines several at a
time, whole), so that workers sharing stderr do not interleave within a line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .access import (
    AccessFormat,
    HTTPEntry,
    WebSocketEntry,
    protocol_text,
)
from .access import address_text as address_text  # h1 and h2 take it from here
from .log_config import apply_log_config, covers
from .log_lines import LineBatch, LineHandler

if TYPE_CHECKING:
    from .asgi import Exchange
    from .ws.session import WebSocketSession

TRACE = 5
logging.addLevelName(TRACE, "TRACE")
INFO = logging.INFO

error_logger = logging.getLogger("gateway.error")
access_logger = logging.getLogger("gateway.access")

_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(message)s"
_COLOUR_FORMAT = "%(asctime)s [%(process)d] %(coloured_levelname)s %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# ANSI SGR codes, uvicorn's choice of colours.
_RESET = "\x1b[0m"
_LEVEL_COLOURS = {
    TRACE: "\x1b[34m",  # blue
    logging.DEBUG: "\x1b[36m",  # cyan
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[91m",  # bright red
}
# One encoder for every line: json.dumps with an argument makes a new one each call.
_JSON = json.JSONEncoder(default=str)
# What a LogRecord holds of its own; anything else on it came as `extra` and is a JSON key.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "coloured_levelname", "taskName",
}


class AccessLog:
    """The access log of one server, with its `--access-log-format`. ServerState holds one
    when the access log is on (None when off), and the exchanges and sessions report to it."""

    __slots__ = ("form",)

    def __init__(self, access_log_format: str | None) -> None:
        self.form = AccessFormat(access_log_format)

    def response(self, exchange: Exchange) -> None:
        if not access_logger.isEnabledFor(INFO):
            return
        seconds = time.perf_counter() - exchange.started_at
        handler = _direct_handler()
        if handler is not None:  # the commonest line: no entry is made for it
            handler.batch.add(handler.own_formatter.format_response(  # type: ignore[attr-defined]
                self.form, exchange.scope, exchange.status, exchange.bytes_sent, seconds,
                exchange.carrier_key, exchange.headers,
            ))
            return
        _handle(HTTPEntry(self.form, exchange.scope, exchange.status, exchange.bytes_sent, seconds,
                          exchange.carrier_key, exchange.headers))

    def refused(self, client: tuple[str, int] | None, status: int) -> None:
        """A request answered before it was read whole (400, 408, 413, 431 ...)."""
        if access_logger.isEnabledFor(INFO):
            _emit(HTTPEntry(self.form, {"client": client}, status, None, 0.0, 0, ()))

    def websocket(self, session: WebSocketSession) -> None:
        if access_logger.isEnabledFor(INFO):
            _emit(WebSocketEntry(
                session.scope, session.exchange.carrier_key,
                time.perf_counter() - session.exchange.started_at,
                session.messages_in, session.bytes_in, session.messages_out, session.bytes_out,
                session.close_code, session.closed_by,
            ))


def _direct_handler() -> LineHandler | None:
    """The access logger's handler, when an access line may go straight to it: it is the only
    one, gateway's own, with its own formatter, and neither it nor the logger filters, nor
    does the logger propagate (anything else the user configured sees records)."""
    handlers = access_logger.handlers
    if len(handlers) == 1:
        handler = handlers[0]
        if (type(handler) is LineHandler and handler.formatter is handler.own_formatter
                and not handler.filters and not access_logger.filters
                and not access_logger.propagate and handler.level <= INFO):
            return handler
    return None


def _emit(entry: HTTPEntry | WebSocketEntry) -> None:
    handler = _direct_handler()
    if handler is not None:
        handler.batch.add(handler.own_formatter.format_entry(entry))  # type: ignore[attr-defined]
    else:
        _handle(entry)


def _handle(entry: HTTPEntry | WebSocketEntry) -> None:
    # The record is made here rather than by `access_logger.info`, which would walk the
    # stack for a caller no access line shows (findCaller: a third of the logging call).
    access_logger.handle(access_logger.makeRecord(
        access_logger.name, INFO, "(access)", 0, entry, (), None,
    ))


def request_context(scope: dict[str, Any], stream_id: int) -> dict[str, Any]:
    """What names a request in an error line, as `extra` fields: client, protocol, stream id,
    method (WebSocket for a session) and path (as sent)."""
    return {
        "client": address_text(scope.get("client")),
        "protocol": protocol_text(scope),
        "stream_id": stream_id or None,
        "method": "WebSocket" if scope.get("type") == "websocket" else scope.get("method"),
        "path": (scope.get("raw_path") or b"").decode("latin-1"),
    }


def context_text(context: dict[str, Any]) -> str:
    """`(GET /path; 127.0.0.1:50000 HTTP/2 stream 3)`."""
    stream = f" stream {context['stream_id']}" if context["stream_id"] else ""
    return (f"({context['method']} {context['path']}; {context['client']}"
            f" {context['protocol']}{stream})")


def log_request_event(level: int, scope: dict[str, Any], stream_id: int, message: str,
                      *args: Any, exc_info: BaseException | None = None) -> None:
    """`message % args` on gateway.error, followed by the request's context, which a JSON
    line also carries as fields; nothing is built when `level` is off."""
    if error_logger.isEnabledFor(level):
        context = request_context(scope, stream_id)
        error_logger.log(level, message + " %s", *args, context_text(context), exc_info=exc_info,
                         extra=context, stacklevel=2)


# -- formatters ---------------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """gateway's line, `2026-01-01 12:00:00 [1234] INFO message`; the time text is made once a
    second, not once a line."""

    def __init__(self, fmt: str = _FORMAT) -> None:
        super().__init__(fmt, _DATE_FORMAT)
        self._second = -1
        self._time_text = ""
        self._entry_second = -1
        self._entry_prefix = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._time_text = time.strftime(_DATE_FORMAT, self.converter(second))
            self._second = second
        return self._time_text

    def format_entry(self, entry: HTTPEntry | WebSocketEntry) -> str:
        """The line `format` makes of an INFO record holding `entry`, in gateway's own format,
        newline included, without the record."""
        return entry.line(self._prefix_now(), self._colour_entries)

    def format_response(self, form: AccessFormat, scope: dict[str, Any], status: int,
                        size: int | None, seconds: float, stream_id: int,
                        response_headers: Iterable[Any]) -> str:
        """`format_entry` of an HTTPEntry of these facts, without the entry. The commonest
        line, gateway's own uncoloured, goes to its C maker without the calls around it: they
        were a fifth of what the access log cost a request."""
        prefix = self._prefix_now()
        make = form.own_line_c
        if make is not None and not self._colour_entries:
            made = make(prefix, scope, status, size, seconds, "\n")
            if made is not NotImplemented:
                return made
        return form.line(prefix, self._colour_entries, scope, status, size, seconds, stream_id,
                         response_headers)

    def _prefix_now(self) -> str:
        """What comes before an access line's text: it changes once a second."""
        second = int(time.time())
        if second != self._entry_second:
            self._entry_prefix = (f"{time.strftime(_DATE_FORMAT, self.converter(second))}"
                                  f" [{os.getpid()}] {self._info_text} ")
            self._entry_second = second
        return self._entry_prefix

    _info_text = "INFO"
    _colour_entries = False


class ColourFormatter(TextFormatter):
    """gateway's line format with the level name coloured by severity and, for access lines,
    the status coloured by class."""

    _info_text = _LEVEL_COLOURS[INFO] + "INFO" + _RESET

    def __init__(self, access: bool) -> None:
        super().__init__(_COLOUR_FORMAT)
        self.access = access
        self._colour_entries = access

    def formatMessage(self, record: logging.LogRecord) -> str:
        colour = _LEVEL_COLOURS.get(record.levelno)
        record.coloured_levelname = colour + record.levelname + _RESET if colour else record.levelname
        entry = record.msg
        if self.access and (type(entry) is HTTPEntry or type(entry) is WebSocketEntry):
            record.message = entry.coloured()
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line (JSON escapes every newline and, with ASCII
    output, every other character a reader could take for one): `time` (ISO 8601, UTC, ms),
    `level`, `logger`, `message`, `pid`; an access entry's fields; the record's `extra`
    fields; `exc_info` and `stack_info` as text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # What logging.config passes to a formatter `class` (fmt, datefmt, style) is taken and
        # unused: the keys are fixed.
        super().__init__(*args, **kwargs)
        self._second = -1
        self._time_text = ""

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._time_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._time_text}.{int(msecs):03d}Z"

    def format_entry(self, entry: HTTPEntry | WebSocketEntry) -> str:
        """The line `format` makes of an INFO record of gateway.access holding `entry`,
        without the record."""
        created = time.time()
        line: dict[str, Any] = {
            "time": self._time(created, (created - int(created)) * 1000),
            "level": "INFO",
            "logger": access_logger.name,
            "message": str(entry),
            "pid": os.getpid(),
        }
        line.update(entry.fields())
        return _JSON.encode(line) + "\n"

    def format_response(self, form: AccessFormat, scope: dict[str, Any], status: int,
                        size: int | None, seconds: float, stream_id: int,
                        response_headers: Iterable[Any]) -> str:
        return self.format_entry(HTTPEntry(form, scope, status, size, seconds, stream_id,
                                           response_headers))

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry = record.msg
        if type(entry) is HTTPEntry or type(entry) is WebSocketEntry:
            line.update(entry.fields())
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return _JSON.encode(line)


# -- set-up -------------------------------------------------------------------------------------


def configure_logging(level: int, access_log: bool, log_config: str | None = None,
                      use_colors: bool | None = None, log_format: str = "text") -> None:
    """Send gateway's loggers to stderr, except those the embedding program gave handlers and
    those `log_config` (--log-config) configures, which keep the file's handlers and levels.
    `use_colors` None colours when stderr is a terminal; `log_format` json never colours."""
    configured = apply_log_config(log_config) if log_config is not None else frozenset()
    colour = log_format == "text" and (sys.stderr.isatty() if use_colors is None else use_colors)
    for logger in (error_logger, access_logger):
        if covers(configured, logger.name):
            continue
        if not logger.handlers:
            logger.addHandler(_stderr_handler(log_format, colour, logger is access_logger))
        logger.propagate = False
        logger.setLevel(level)
    if not access_log:
        access_logger.setLevel(logging.CRITICAL + 1)
    if level <= logging.DEBUG and not covers(configured, "asyncio"):
        asyncio_logger = logging.getLogger("asyncio")
        asyncio_logger.setLevel(level)
        if not asyncio_logger.handlers:
            asyncio_logger.addHandler(_stderr_handler(log_format, colour, False))


def configure_embedded_logging(level: int, access_log: bool, log_config: str | None = None,
                               use_colors: bool | None = None, log_format: str = "text") -> None:
    """Logging for `gateway.serve()` inside another program: the CLI's lines (start-up, access,
    shutdown), unless the program has logging of its own. A program that configured the root
    logger gets gateway's lines through its own handlers, at gateway's levels; gateway's
    loggers are then given no handler of their own, which would print every line twice."""
    if log_config is not None or not logging.getLogger().handlers:
        configure_logging(level, access_log, log_config, use_colors, log_format)
        return
    for logger in (error_logger, access_logger):
        if not logger.handlers:
            logger.setLevel(level)
    if not access_log:
        access_logger.setLevel(logging.CRITICAL + 1)


def _stderr_handler(log_format: str, colour: bool, access: bool) -> logging.Handler:
    # A LineHandler writes a formatted record (or a batch of access lines), newline included,
    # with one `write`, which stderr (line-buffered, or unbuffered with -u) passes on as one
    # write(2).
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JSONFormatter()
    else:
        formatter = ColourFormatter(access) if colour else TextFormatter()
    return LineHandler(_stderr_batch(), formatter, batched=access)


def _stderr_batch() -> LineBatch:
    """The batch of stderr's lines, shared by every handler of ours that writes to it, so
    that an error line never overtakes an access line made before it."""
    for logger in (error_logger, access_logger, logging.getLogger("asyncio")):
        for handler in logger.handlers:
            if type(handler) is LineHandler and handler.batch.stream is sys.stderr:
                return handler.batch
    return LineBatch(sys.stderr)
