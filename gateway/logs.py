"""Log set-up: one readable line per event, for operators.

Two loggers: `gateway.error` for the server's own events and app failures, `gateway.access`
for one line per response. Both can be reconfigured with the standard logging module, or with
a file (`--log-config`, log_config.py).
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
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def address_text(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"


def configure_logging(level: int, access_log: bool, log_config: str | None = None) -> None:
    """Send gateway's loggers to stderr, except those the embedding program gave handlers and
    those `log_config` (--log-config) configures, which keep the file's handlers and levels."""
    configured = apply_log_config(log_config) if log_config is not None else frozenset()
    for logger in (error_logger, access_logger):
        if covers(configured, logger.name):
            continue
        if not logger.handlers:
            logger.addHandler(_stderr_handler())
        logger.propagate = False
        logger.setLevel(level)
    if not access_log:
        access_logger.setLevel(logging.CRITICAL + 1)
    if level <= logging.DEBUG and not covers(configured, "asyncio"):
        asyncio_logger = logging.getLogger("asyncio")
        asyncio_logger.setLevel(level)
        if not asyncio_logger.handlers:
            asyncio_logger.addHandler(_stderr_handler())


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, _DATE_FORMAT))
    return handler
