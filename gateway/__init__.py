"""gateway: an ASGI server that speaks HTTP/1.1, HTTP/2, WebSocket and TLS itself."""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, ConfigError  # noqa: E402
from .server import run, serve  # noqa: E402

__all__ = ["Config", "ConfigError", "__version__", "run", "serve"]
