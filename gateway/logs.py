"""Log set-up: one readable line per event, for operators.

Two loggers: `gateway.error` for the server's own events and app failures, `gateway.access`
for one line per response. Both can be reconfigured with the standard logging module.
"""

from __future__ import annotations

import logging
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

error_logger = logging.getLogger("gateway.error")
access_logger = logging.getLogger("gateway.access")

_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def address_text(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"


def configure_logging(level: int, access_log: bool) -> None:
    """Send gateway's loggers to stderr unless the embedding program set handlers already."""
    formatter = logging.Formatter(_FORMAT, _DATE_FORMAT)
    for logger in (error_logger, access_logger):
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.propagate = False
    error_logger.setLevel(level)
    access_logger.setLevel(level if access_log else logging.CRITICAL + 1)
    if level <= logging.DEBUG:
        asyncio_logger = logging.getLogger("asyncio")
        asyncio_logger.setLevel(level)
        if not asyncio_logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(formatter)
            asyncio_logger.addHandler(handler)
