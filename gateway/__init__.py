"""gateway: an ASGI server that speaks HTTP/1.1, HTTP/2, WebSocket and TLS itself."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any  # noqa: E402

from .config import Config, ConfigError  # noqa: E402
from .server import serve  # noqa: E402

__all__ = ["Config", "ConfigError", "__version__", "run", "serve"]


def run(app: Any = None, config: Config | None = None, **settings: Any) -> None:
    """Serve `app` until SIGINT or SIGTERM, with `settings` as Config fields: in this process,
    or under a supervisor with worker processes when `workers`, `reload` or `max_requests`
    ask for them (the app then given as an import string, "main:app").

    Raises ConfigError (bad setting, app, certificate or address) before serving; SystemExit
    with the supervisor's status if a worker could not start."""
    if config is None:
        config = Config(app=app, **settings)
    elif settings:
        config = config.replace(**settings)
    if not config.uses_supervisor:
        from .server import run as run_here

        run_here(config=config)
        return
    from .logs import configure_logging
    from .supervisor import supervise

    configure_logging(config.log_level_number, config.access_log, config.log_config,
                      config.use_colors, config.log_format)
    status = supervise(config)
    if status:
        raise SystemExit(status)
