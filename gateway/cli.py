"""The `gateway` command: flags to Config, mistakes to one line and exit status 2.

Flag names follow uvicorn and hypercorn where they have one, so a user can switch servers
without relearning them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .config import (
    DEFAULT_BIND,
    HTTP_ENGINES,
    LIFESPAN_MODES,
    LOG_LEVELS,
    LOOPS,
    VERIFY_MODES,
    Config,
    ConfigError,
)

EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3

_DESCRIPTION = """\
Serve an ASGI app over HTTP/1.1 and HTTP/2, with or without TLS.

  gateway main:app                              http://127.0.0.1:8000
  gateway --dev-tls main:app                    https with local development certificates
  gateway --certfile cert.pem --keyfile key.pem -b 0.0.0.0:443 main:app
  gateway certs                                 make the development certificates only
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gateway",
        usage="gateway [OPTIONS] MODULE:ATTR\n       gateway certs [--certs-dir DIR]",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("app", metavar="MODULE:ATTR", help="the ASGI app, for example main:app")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")

    app = parser.add_argument_group("application")
    app.add_argument("--factory", action="store_true",
                     help="MODULE:ATTR is a function that returns the app")
    app.add_argument("--app-dir", metavar="DIR", help="look for MODULE in DIR (default: .)")
    app.add_argument("--root-path", default="", metavar="PATH",
                     help="the path the app is mounted at behind a proxy, for example /api")
    app.add_argument("--lifespan", choices=LIFESPAN_MODES, default="auto",
                     help="ASGI lifespan events (default: auto, on when the app supports them)")

    net = parser.add_argument_group("listening")
    net.add_argument("-b", "--bind", action="append", metavar="HOST:PORT",
                     help=f"address to listen on, repeatable; [::1]:8443 for IPv6 "
                          f"(default: {DEFAULT_BIND})")
    net.add_argument("--backlog", type=int, default=2048, metavar="N",
                     help="connections the kernel queues before accepting (default: 2048)")
    net.add_argument("--keep-alive-timeout", type=float, default=5.0, metavar="SECONDS",
                     help="close idle connections after this long (default: 5)")
    net.add_argument("--send-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="drop a client that takes none of what is sent to it (reads nothing, or "
                          "grants no HTTP/2 window) for this long; 0: never (default: 30)")
    net.add_argument("--graceful-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="on SIGINT/SIGTERM, let requests in flight finish for this long "
                          "(default: 30)")
    net.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="a request head not complete this long after its first byte gets 408 "
                          "(default: 10)")
    net.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="an app waiting this long for more request body gets a disconnect, the "
                          "client 408 (default: 30)")
    net.add_argument("--response-timeout", type=float, default=0.0, metavar="SECONDS",
                     help="an app that has not finished its response this long after the request "
                          "is cancelled; the client gets 504, or a cut-off response (default: 0, off)")
    net.add_argument("--max-head-size", type=int, default=32 * 1024, metavar="BYTES",
                     help="larger request heads get 431 (default: 32768)")
    net.add_argument("--max-body-size", type=int, default=None, metavar="BYTES",
                     help="larger request bodies get 413 (default: no limit)")
    net.add_argument("--limit-connections", type=int, default=None, metavar="N",
                     help="connections past N open (TLS handshakes included) are closed as "
                          "soon as they are accepted; keep N below the descriptor limit "
                          "(ulimit -n) (default: no limit)")

    guard = parser.add_argument_group("hostile clients")
    guard.add_argument("--control-frame-budget", type=int, default=1000, metavar="N",
                       help="HTTP/2 control frames, empty DATA frames, resets and WebSocket pings a "
                            "client may send per 10 seconds; past it the connection is closed "
                            "(default: 1000)")
    guard.add_argument("--address-block-time", type=float, default=10.0, metavar="SECONDS",
                       help="a client address that trips a flood or rapid-reset guard has new "
                            "connections refused this long; its connections share one budget; "
                            "0 turns per-address counting off (default: 10)")
    guard.add_argument("--address-guard-exempt", default="", metavar="IPS",
                       help="comma-separated addresses or networks never counted together nor "
                            "refused, such as a load balancer that does not send PROXY protocol")

    h2 = parser.add_argument_group("HTTP/2")
    h2.add_argument("--h2c", action=argparse.BooleanOptionalAction, default=True,
                    help="HTTP/2 without TLS, by prior knowledge, on plain listeners (default: on)")
    h2.add_argument("--h2-max-concurrent-streams", type=int, default=100, metavar="N",
                    help="streams a client may have open at once (default: 100)")
    h2.add_argument("--h2-initial-window-size", type=int, default=256 * 1024, metavar="BYTES",
                    help="request body a stream may send before the app reads it (default: 262144)")
    h2.add_argument("--h2-max-frame-size", type=int, default=16 * 1024, metavar="BYTES",
                    help="largest frame a client may send (default: 16384)")
    h2.add_argument("--h2-max-header-list-size", type=int, default=64 * 1024, metavar="BYTES",
                    help="largest request head a client may send (default: 65536)")
    h2.add_argument("--h2-max-headers-held", type=int, default=1024 * 1024, metavar="BYTES",
                    help="decoded request heads a connection may hold across its open streams; "
                         "streams past it are refused (default: 1048576)")

    ws = parser.add_argument_group("WebSocket")
    ws.add_argument("--ws-max-size", type=int, default=16 * 1024 * 1024, metavar="BYTES",
                    help="larger messages close the WebSocket with 1009 (default: 16777216)")
    ws.add_argument("--ws-ping-interval", type=float, default=20.0, metavar="SECONDS",
                    help="ping an idle peer this often; 0 turns pings off (default: 20)")
    ws.add_argument("--ws-ping-timeout", type=float, default=20.0, metavar="SECONDS",
                    help="a peer that does not answer a ping this soon is dropped (default: 20)")
    ws.add_argument("--ws-close-timeout", type=float, default=5.0, metavar="SECONDS",
                    help="a close the peer does not answer this soon ends the connection (default: 5)")
    ws.add_argument("--ws-per-message-deflate", type=_boolean, default=True, metavar="true|false",
                    help="permessage-deflate compression when the client offers it (default: true)")

    tls = parser.add_argument_group("TLS")
    tls.add_argument("--certfile", metavar="FILE", help="PEM certificate (chain) to serve HTTPS")
    tls.add_argument("--keyfile", metavar="FILE", help="PEM private key for --certfile")
    tls.add_argument("--keyfile-password", metavar="PASSWORD", help="password of --keyfile")
    tls.add_argument("--ca-certs", metavar="FILE", help="CA file to check client certificates")
    tls.add_argument("--verify-mode", choices=VERIFY_MODES, default="none",
                     help="ask clients for certificates (mutual TLS; default: none)")
    tls.add_argument("--ciphers", metavar="LIST", help="OpenSSL cipher list for TLS 1.2")
    tls.add_argument("--dev-tls", action="store_true",
                     help="serve HTTPS with local development certificates (made once)")
    tls.add_argument("--certs-dir", default="certs", metavar="DIR",
                     help="where --dev-tls keeps its certificates (default: certs)")
    tls.add_argument("--tls-handshake-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="drop clients that have not finished the handshake by then (default: 10)")

    run = parser.add_argument_group("running")
    run.add_argument("--http", choices=HTTP_ENGINES, default="auto",
                     help="HTTP/1.1 engine (default: auto, httptools when installed)")
    run.add_argument("--loop", choices=LOOPS, default="auto",
                     help="event loop (default: auto, uvloop when installed)")
    run.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    run.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                     help="one line per response (default: on)")
    run.add_argument("--server-header", action=argparse.BooleanOptionalAction, default=True,
                     help="send 'server: gateway' (default: on)")
    run.add_argument("--date-header", action=argparse.BooleanOptionalAction, default=True,
                     help="send a Date header (default: on)")
    _add_uvicorn_compatibility(parser)
    return parser


def _add_uvicorn_compatibility(parser: argparse.ArgumentParser) -> None:
    """uvicorn's flags of the same names, so its command lines work here unchanged."""
    compat = parser.add_argument_group("compatibility with uvicorn")
    compat.add_argument("--header", action="append", dest="headers", default=[], metavar="NAME:VALUE",
                        help="a header sent with every response, repeatable; server and date "
                             "replace gateway's own")
    compat.add_argument("--limit-concurrency", type=int, default=None, metavar="N",
                        help="requests (and WebSockets) past N running in the app get 503 "
                             "(default: no limit)")
    compat.add_argument("--log-config", metavar="FILE",
                        help="logging configuration: .json or .yaml/.yml for dictConfig, else INI "
                             "for fileConfig")
    compat.add_argument("--use-colors", action=argparse.BooleanOptionalAction, default=None,
                        help="colour log levels and access statuses (default: when stderr is a "
                             "terminal)")


def build_certs_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gateway certs",
                     description="Make (once) the local development CA and certificate.")
    parser.add_argument("--certs-dir", default="certs", metavar="DIR",
                        help="where to keep them (default: certs)")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        app=args.app,
        factory=args.factory,
        app_dir=args.app_dir,
        bind=args.bind or [DEFAULT_BIND],
        backlog=args.backlog,
        certfile=args.certfile,
        keyfile=args.keyfile,
        keyfile_password=args.keyfile_password,
        ca_certs=args.ca_certs,
        verify_mode=args.verify_mode,
        ciphers=args.ciphers,
        dev_tls=args.dev_tls,
        certs_dir=args.certs_dir,
        tls_handshake_timeout=args.tls_handshake_timeout,
        root_path=args.root_path,
        http=args.http,
        loop=args.loop,
        lifespan=args.lifespan,
        server_header=args.server_header,
        date_header=args.date_header,
        log_level=args.log_level,
        access_log=args.access_log,
        graceful_timeout=args.graceful_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        send_timeout=args.send_timeout,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        response_timeout=args.response_timeout,
        max_head_size=args.max_head_size,
        max_body_size=args.max_body_size,
        limit_connections=args.limit_connections,
        control_frame_budget=args.control_frame_budget,
        address_block_time=args.address_block_time,
        address_guard_exempt=args.address_guard_exempt,
        h2c=args.h2c,
        h2_max_concurrent_streams=args.h2_max_concurrent_streams,
        h2_initial_window_size=args.h2_initial_window_size,
        h2_max_frame_size=args.h2_max_frame_size,
        h2_max_header_list_size=args.h2_max_header_list_size,
        h2_max_headers_held=args.h2_max_headers_held,
        ws_max_size=args.ws_max_size,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_close_timeout=args.ws_close_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate,
        headers=args.headers,
        limit_concurrency=args.limit_concurrency,
        log_config=args.log_config,
        use_colors=args.use_colors,
    )


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["certs"]:
        _certs(argv[1:])
        return
    args = build_parser().parse_args(argv)
    from .lifespan import LifespanFailure
    from .server import run

    try:
        run(config=config_from_args(args))
    except ConfigError as exc:
        _fail(str(exc))
    except LifespanFailure as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(EXIT_STARTUP_FAILED)
    except KeyboardInterrupt:
        sys.exit(130)


def _certs(argv: list[str]) -> None:
    from .tls.devcerts import DevCertificateError, ensure_dev_certificates, trust_instructions

    args = build_certs_parser().parse_args(argv)
    try:
        certs, created = ensure_dev_certificates(args.certs_dir)
    except DevCertificateError as exc:
        _fail(str(exc))
    print(("created" if created else "reusing") + f" development certificates in {certs.directory}")
    print(f"  certificate: {certs.cert}\n  key:         {certs.key}\n  CA:          {certs.ca_cert}")
    print(trust_instructions(certs))


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _fail(message: str) -> NoReturn:
    print(f"gateway: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)
