"""uvicorn's command line, so that `uvicorn ...` becomes `gateway ...` with the same meaning.

Each uvicorn option is one of two things here:
- a spelling of a gateway setting (`--host`/`--port` are a bind, `--ssl-certfile` is
  `--certfile`, `--timeout-keep-alive` is `--keep-alive-timeout`), translated;
- the choice of a uvicorn internal gateway does not have (`--ws wsproto`, `--loop zuvloop`),
  accepted with one note saying what gateway uses instead;
Options whose name gateway shares (`--workers`, `--root-path`, `--ws-max-size`, ...) are
gateway's own and need nothing here.
"""

from __future__ import annotations

import argparse
from typing import Any

from .config import DEFAULT_HOST, DEFAULT_PORT, ConfigError

# uvicorn's --ssl-cert-reqs takes the ssl module's numbers.
_CERT_REQS = {0: "none", 1: "optional", 2: "required"}
# Straight renames: uvicorn's flag destination -> gateway's setting.
_RENAMED = {
    "ssl_certfile": "certfile",
    "ssl_keyfile": "keyfile",
    "ssl_keyfile_password": "keyfile_password",
    "ssl_ca_certs": "ca_certs",
    "ssl_ciphers": "ciphers",
    "timeout_keep_alive": "keep_alive_timeout",
    "timeout_graceful_shutdown": "graceful_timeout",
    "timeout_worker_healthcheck": "worker_timeout",
    "limit_max_requests": "max_requests",
    "limit_max_requests_jitter": "max_requests_jitter",
    "h11_max_incomplete_event_size": "max_head_size",
}


def add_uvicorn_flags(parser: argparse.ArgumentParser) -> None:
    """uvicorn's options that gateway spells differently or does not need."""
    group = parser.add_argument_group(
        "uvicorn's options", "accepted so that a uvicorn command line works unchanged"
    )
    group.add_argument("--host", metavar="HOST", help=f"with --port: --bind HOST:PORT "
                       f"(default: {DEFAULT_HOST})")
    group.add_argument("--port", type=int, metavar="PORT",
                       help="with --host: --bind HOST:PORT; alone: the port of the default "
                            "listeners, 127.0.0.1 (and ::1 with --dev-tls)")
    group.add_argument("--uds", metavar="PATH", help="--bind unix:PATH")
    group.add_argument("--fd", type=int, metavar="N", help="--bind fd://N")
    group.add_argument("--ssl-certfile", metavar="FILE", help="--certfile")
    group.add_argument("--ssl-keyfile", metavar="FILE", help="--keyfile")
    group.add_argument("--ssl-keyfile-password", metavar="PASSWORD", help="--keyfile-password")
    group.add_argument("--ssl-ca-certs", metavar="FILE", help="--ca-certs")
    group.add_argument("--ssl-ciphers", metavar="LIST", help="--ciphers")
    group.add_argument("--ssl-cert-reqs", type=int, choices=sorted(_CERT_REQS), metavar="0|1|2",
                       help="--verify-mode none|optional|required")
    group.add_argument("--ssl-version", type=int, metavar="N",
                       help="ignored: gateway speaks TLS 1.2 and 1.3")
    group.add_argument("--timeout-keep-alive", type=float, metavar="SECONDS",
                       help="--keep-alive-timeout")
    group.add_argument("--timeout-graceful-shutdown", type=float, metavar="SECONDS",
                       help="--graceful-timeout")
    group.add_argument("--timeout-worker-healthcheck", type=float, metavar="SECONDS",
                       help="--worker-timeout")
    group.add_argument("--limit-max-requests", type=int, metavar="N", help="--max-requests")
    group.add_argument("--limit-max-requests-jitter", type=int, metavar="N",
                       help="--max-requests-jitter")
    group.add_argument("--h11-max-incomplete-event-size", type=int, metavar="BYTES",
                       help="--max-head-size")
    group.add_argument("--http2", action="store_true",
                       help="ignored: HTTP/2 is always on (ALPN over TLS, h2c on plain listeners)")
    group.add_argument("--ws", metavar="NAME",
                       help="ignored: gateway has its own WebSocket implementation")
    group.add_argument("--ws-max-queue", type=int, metavar="N",
                       help="ignored: gateway bounds unread WebSocket messages by size")
    group.add_argument("--reset-contextvars", action="store_true",
                       help="ignored: every request runs in its own copy of the server's context")


def translate(flags: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """uvicorn's options in `flags` (only those typed) as gateway settings, and the notes to
    print about options that change nothing. ConfigError for those gateway cannot honour."""
    settings = dict(flags)
    notes: list[str] = []
    for old, new in _RENAMED.items():
        if old in settings:
            settings[new] = settings.pop(old)
    if "ssl_cert_reqs" in settings:
        settings["verify_mode"] = _CERT_REQS[settings.pop("ssl_cert_reqs")]
    binds = _binds(settings)
    if (binds or "port" in settings) and "bind" in flags:
        raise ConfigError("--bind and uvicorn's --host/--port/--uds/--fd both say where to "
                          "listen: use one or the other")
    if binds:
        settings["bind"] = binds
    if settings.pop("ssl_version", None) is not None:
        notes.append("--ssl-version: gateway speaks TLS 1.2 and 1.3 and chooses the version itself")
    if settings.pop("http2", False):
        notes.append("--http2: HTTP/2 is always on in gateway (ALPN h2 over TLS, h2c on plain "
                     "listeners; --no-h2c turns the latter off)")
    ws = settings.pop("ws", None)
    if ws is not None:
        notes.append(f"--ws {ws}: gateway has its own WebSocket implementation (wsproto with "
                     "permessage-deflate), over HTTP/1.1 and HTTP/2")
    if settings.pop("ws_max_queue", None) is not None:
        notes.append("--ws-max-queue: gateway bounds unread WebSocket messages by size "
                     "(1 MiB of whole messages), not by count")
    if settings.pop("reset_contextvars", False):
        notes.append("--reset-contextvars: every request already runs in its own copy of the "
                     "server's context, not the lifespan's")
    if settings.get("http") == "zttp":
        settings.pop("http")
        notes.append("--http zttp: gateway uses its own HTTP/2 and httptools (or h11) for "
                     "HTTP/1.1: --http auto")
    if settings.get("loop") == "zuvloop":
        settings.pop("loop")
        notes.append("--loop zuvloop: gateway uses uvloop when installed: --loop auto")
    return settings, notes


def _binds(settings: dict[str, Any]) -> list[str]:
    """As uvicorn chooses: --uds, else --fd, else --host/--port; the others are ignored. --port
    alone stays in `settings` as the port of the default listeners (config.py), so that
    --dev-tls still listens on ::1 beside 127.0.0.1 there."""
    host = settings.pop("host", None)
    uds = settings.pop("uds", None)
    fd = settings.pop("fd", None)
    if host is None and uds is None and fd is None:
        return []
    port = settings.pop("port", None)
    if uds is not None:
        return [f"unix:{uds}"]
    if fd is not None:
        return [f"fd://{fd}"]
    port = DEFAULT_PORT if port is None else port
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
