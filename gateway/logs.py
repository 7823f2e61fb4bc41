"""Log set-up: one readable line per event, for operators.

Two loggers: `gateway.error` for the server's own events and app failures, `gateway.access`
for one line per response. Both can be reconfigured with the standard logging module, or with
a file (`--log-config`, log_config.py). On a terminal the level name, and an access line's
status, are coloured as uvicorn colours them (`--use-colors`); never in a file or a pipe unless
asked, so that logs stay plain text.
"""

from __future__ import annotations

import logging
import sys

from .log_config import apply_log_config, covers

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

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
_STATUS_COLOURS = {"1": "\x1b[97m", "2": "\x1b[32m", "3": "\x1b[33m", "4": "\x1b[31m", "5": "\x1b[91m"}


def address_text(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"


class ColourFormatter(logging.Formatter):
    """gateway's line format with the level name coloured by severity and, for access lines,
    the status coloured by class."""

    def __init__(self, access: bool) -> None:
        super().__init__(_COLOUR_FORMAT, _DATE_FORMAT)
        self.access = access

    def formatMessage(self, record: logging.LogRecord) -> str:
        colour = _LEVEL_COLOURS.get(record.levelno)
        record.coloured_levelname = colour + record.levelname + _RESET if colour else record.levelname
        line = super().formatMessage(record)
        return _colour_status(line) if self.access else line


def _colour_status(line: str) -> str:
    """An access line's status is the number after the closing quote of its request: no `" `
    can come before it, since a request target holds no space (both protocols refuse one)."""
    head, quote, tail = line.rpartition('" ')
    colour = _STATUS_COLOURS.get(tail[:1])
    if not quote or colour is None or not tail[:3].isdigit():
        return line
    return head + quote + colour + tail[:3] + _RESET + tail[3:]


def configure_logging(level: int, access_log: bool, log_config: str | None = None,
                      use_colors: bool | None = None) -> None:
    """Send gateway's loggers to stderr, except those the embedding program gave handlers and
    those `log_config` (--log-config) configures, which keep the file's handlers and levels.
    `use_colors` None colours when stderr is a terminal."""
    configured = apply_log_config(log_config) if log_config is not None else frozenset()
    colour = sys.stderr.isatty() if use_colors is None else use_colors
    for logger in (error_logger, access_logger):
        if covers(configured, logger.name):
            continue
        if not logger.handlers:
            logger.addHandler(_stderr_handler(colour, logger is access_logger))
        logger.propagate = False
        logger.setLevel(level)
    if not access_log:
        access_logger.setLevel(logging.CRITICAL + 1)
    if level <= logging.DEBUG and not covers(configured, "asyncio"):
        asyncio_logger = logging.getLogger("asyncio")
        asyncio_logger.setLevel(level)
        if not asyncio_logger.handlers:
            asyncio_logger.addHandler(_stderr_handler(colour, False))


def _stderr_handler(colour: bool, access: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ColourFormatter(access) if colour else logging.Formatter(_FORMAT, _DATE_FORMAT))
    return handler
