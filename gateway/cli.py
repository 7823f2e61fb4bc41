"""The `gateway` command: settings from flags, environment and a config file to Config,
mistakes to one line and exit status 2.

Flag names follow uvicorn and hypercorn where they have one, and uvicorn's own spellings are
accepted too (uvicorn_flags.py), so a user can switch servers without relearning them. Every
flag is a Config field; the same setting can come from `GATEWAY_<NAME>` in the environment or
from `--config FILE` (settings_file.py), a flag winning over the environment, the environment
over the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .config import (
    DEFAULT_BIND,
    H2_ENGINES,
    HTTP_ENGINES,
    INTERFACES,
    LIFESPAN_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    LOOPS,
    PROXY_PROTOCOLS,
    VERIFY_MODES,
    Config,
    ConfigError,
)
from .settings_file import (
    Source,
    config_file_from_environment,
    convert,
    default_values,
    describe,
    layer,
    read_environment,
    read_file,
)
from .uvicorn_flags import add_uvicorn_flags, translate

EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3

_DESCRIPTION = """\
Serve an ASGI app over HTTP/1.1 and HTTP/2, with or without TLS.

  gateway main:app                              http://127.0.0.1:8000
  gateway --dev-tls main:app                    https with local development certificates
  gateway --certfile cert.pem --keyfile key.pem -b 0.0.0.0:443 main:app
  gateway --workers 4 --bind unix:/run/app.sock main:app
  gateway --reload main:app                     restart when the code changes
  gateway --interface wsgi main:app             a WSGI app (Flask, Django), with gateway[wsgi]
  gateway certs                                 make the development certificates only
  gateway certs --install                       trust them in this machine's browsers
  gateway config [OPTIONS] [MODULE:ATTR]        print the settings and where each came from

Every option can also be set as GATEWAY_<OPTION> in the environment (GATEWAY_WORKERS=4) or in
a TOML file given with --config (workers = 4); an option typed here wins over the environment,
the environment over the file.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gateway",
        usage="gateway [OPTIONS] MODULE:ATTR\n"
              "       gateway certs [--certs-dir DIR] [--install | --uninstall]\n"
              "       gateway config [OPTIONS] [MODULE:ATTR]",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # only what was typed: it layers over the rest
    )
    parser.add_argument("app", metavar="MODULE:ATTR", nargs="?",
                        help="the ASGI app, for example main:app")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("--config", metavar="FILE", dest="config_file",
                        help="read settings from this TOML file (also GATEWAY_CONFIG)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the settings, and where each came from, then exit")

    app = parser.add_argument_group("application")
    app.add_argument("--factory", action="store_true",
                     help="MODULE:ATTR is a function that returns the app")
    app.add_argument("--app-dir", metavar="DIR", help="look for MODULE in DIR (default: .)")
    app.add_argument("--root-path", metavar="PATH",
                     help="the path the app is mounted at behind a proxy, for example /api")
    app.add_argument("--lifespan", choices=LIFESPAN_MODES,
                     help="ASGI lifespan events (default: auto, on when the app supports them)")
    app.add_argument("--interface", choices=INTERFACES,
                     help="the app's interface (default: auto, ASGI 3 or ASGI 2 as detected); wsgi"
                          " serves a WSGI app such as Flask's, with pip install 'gateway[wsgi]'")
    app.add_argument("--wsgi-threads", type=int, metavar="N",
                     help="with --interface wsgi, how many requests the app runs at once, each on a"
                          " thread of its own (default: 10 per worker)")
    app.add_argument("--env-file", metavar="FILE",
                     help="load environment variables from this file first (python-dotenv)")

    proc = parser.add_argument_group("processes")
    proc.add_argument("-w", "--workers", type=int, metavar="N",
                      help="worker processes sharing the listeners (default: $WEB_CONCURRENCY or 1)")
    proc.add_argument("--worker-timeout", type=float, metavar="SECONDS",
                      help="a worker whose event loop is blocked this long is killed and replaced "
                           "(default: 30)")
    proc.add_argument("--max-requests", type=int, metavar="N",
                      help="replace a worker, gracefully, after it served about N requests")
    proc.add_argument("--max-requests-jitter", type=int, metavar="N",
                      help="add 0..N to --max-requests per worker, so they do not all restart "
                           "at once (default: 0)")
    proc.add_argument("--reload", action="store_true",
                      help="restart the workers when the code changes (development)")
    proc.add_argument("--reload-dir", action="append", dest="reload_dirs", metavar="DIR",
                      help="watch this directory, repeatable (default: the current one)")
    proc.add_argument("--reload-include", action="append", dest="reload_includes", metavar="GLOB",
                      help="also reload on files matching this, repeatable (default: *.py)")
    proc.add_argument("--reload-exclude", action="append", dest="reload_excludes", metavar="GLOB",
                      help="never reload on files matching this, repeatable (default: .*, "
                           ".py[cod], .sw.*, ~*)")
    proc.add_argument("--reload-delay", type=float, metavar="SECONDS",
                      help="wait this long for more changes before reloading (default: 0.25)")

    net = parser.add_argument_group("listening")
    net.add_argument("-b", "--bind", action="append", metavar="ADDRESS",
                     help=f"where to listen, repeatable: HOST:PORT ([::1]:8443 for IPv6), "
                          f"unix:PATH, fd://N, or systemd (default: the sockets systemd passed, "
                          f"else {DEFAULT_BIND}, and [::1] on its port with --dev-tls)")
    net.add_argument("--insecure-bind", action="append", metavar="ADDRESS",
                     help="a plain HTTP listener beside TLS ones, repeatable")
    net.add_argument("--redirect-bind", action="append", metavar="ADDRESS",
                     help="a plain listener that answers every request with 308 to the same URL "
                          "over HTTPS, repeatable (e.g. 0.0.0.0:80)")
    net.add_argument("--redirect-port", type=int, metavar="PORT",
                     help="the HTTPS port redirects name (default: the TLS listener's port)")
    net.add_argument("--hsts", type=int, metavar="SECONDS",
                     help="send Strict-Transport-Security: max-age=SECONDS on HTTPS responses")
    net.add_argument("--unix-socket-mode", metavar="OCTAL",
                     help="permissions of unix: socket files (default: 666)")
    net.add_argument("--backlog", type=int, metavar="N",
                     help="connections the kernel queues before accepting (default: 2048)")
    net.add_argument("--keep-alive-timeout", type=float, metavar="SECONDS",
                     help="close idle connections after this long (default: 5)")
    net.add_argument("--send-timeout", type=float, metavar="SECONDS",
                     help="drop a client that takes none of what is sent to it (reads nothing, or "
                          "grants no HTTP/2 window) for this long; 0: never (default: 30)")
    net.add_argument("--graceful-timeout", type=float, metavar="SECONDS",
                     help="on SIGINT/SIGTERM, let requests in flight finish for this long "
                          "(default: 30)")
    net.add_argument("--header-timeout", type=float, metavar="SECONDS",
                     help="a request head not complete this long after its first byte gets 408 "
                          "(default: 10)")
    net.add_argument("--body-timeout", type=float, metavar="SECONDS",
                     help="an app waiting this long for more request body gets a disconnect, the "
                          "client 408 (default: 30)")
    net.add_argument("--response-timeout", type=float, metavar="SECONDS",
                     help="an app that has not finished its response this long after the request "
                          "is cancelled; the client gets 504, or a cut-off response (default: 0, off)")
    net.add_argument("--max-head-size", type=int, metavar="BYTES",
                     help="larger request heads get 431 (default: 32768)")
    net.add_argument("--max-body-size", type=int, metavar="BYTES",
                     help="larger request bodies get 413 (default: no limit)")
    net.add_argument("--limit-connections", type=int, metavar="N",
                     help="connections past N open (TLS handshakes included) are closed as "
                          "soon as they are accepted; keep N below the descriptor limit "
                          "(ulimit -n) (default: no limit)")

    proxy = parser.add_argument_group("proxies and balancers")
    proxy.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction,
                       help="take the client, scheme and host from Forwarded and X-Forwarded-* "
                            "headers of trusted peers (default: on)")
    proxy.add_argument("--forwarded-allow-ips", metavar="IPS", type=_comma_list,
                       help="comma-separated peers trusted to say who the client is: addresses, "
                            "networks, '*', 'unix' for Unix-socket peers (default: "
                            "$FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)")

    proxy.add_argument("--proxy-protocol", choices=PROXY_PROTOCOLS,
                       help="every connection starts with a PROXY protocol header (HAProxy's "
                            "send-proxy, send-proxy-v2; auto takes either) naming the client; only "
                            "from --forwarded-allow-ips peers (default: off)")

    guard = parser.add_argument_group("hostile clients")
    guard.add_argument("--control-frame-budget", type=int, metavar="N",
                       help="HTTP/2 control frames, empty DATA frames, resets and WebSocket pings a "
                            "client may send per 10 seconds; past it the connection is closed "
                            "(default: 1000)")
    guard.add_argument("--address-block-time", type=float, metavar="SECONDS",
                       help="a client address that trips a flood or rapid-reset guard has new "
                            "connections refused this long; its connections share one budget; "
                            "0 turns per-address counting off (default: 10)")
    guard.add_argument("--address-guard-exempt", metavar="IPS",
                       help="comma-separated addresses or networks never counted together nor "
                            "refused, such as a load balancer that does not send PROXY protocol")

    h2 = parser.add_argument_group("HTTP/2")
    h2.add_argument("--h2c", action=argparse.BooleanOptionalAction,
                    help="HTTP/2 without TLS, by prior knowledge, on plain listeners (default: on)")
    h2.add_argument("--h2-engine", choices=H2_ENGINES,
                    help="HTTP/2 engine: gateway's own, or h2, the reference (default: fast)")
    h2.add_argument("--h2-max-concurrent-streams", type=int, metavar="N",
                    help="streams a client may have open at once (default: 100)")
    h2.add_argument("--h2-initial-window-size", type=int, metavar="BYTES",
                    help="request body a stream may send before the app reads it (default: 262144)")
    h2.add_argument("--h2-max-frame-size", type=int, metavar="BYTES",
                    help="largest frame a client may send (default: 16384)")
    h2.add_argument("--h2-max-header-list-size", type=int, metavar="BYTES",
                    help="largest request head a client may send (default: 65536)")
    h2.add_argument("--h2-max-headers-held", type=int, metavar="BYTES",
                    help="decoded request heads a connection may hold across its open streams; "
                         "streams past it are refused (default: 1048576)")

    ws = parser.add_argument_group("WebSocket")
    ws.add_argument("--ws-max-size", type=int, metavar="BYTES",
                    help="larger messages close the WebSocket with 1009 (default: 16777216)")
    ws.add_argument("--ws-ping-interval", type=float, metavar="SECONDS",
                    help="ping an idle peer this often; 0 turns pings off (default: 20)")
    ws.add_argument("--ws-ping-timeout", type=float, metavar="SECONDS",
                    help="a peer that does not answer a ping this soon is dropped (default: 20)")
    ws.add_argument("--ws-close-timeout", type=float, metavar="SECONDS",
                    help="a close the peer does not answer this soon ends the connection (default: 5)")
    ws.add_argument("--ws-per-message-deflate", type=_boolean, metavar="true|false",
                    help="permessage-deflate compression when the client offers it (default: true)")

    tls = parser.add_argument_group("TLS")
    tls.add_argument("--certfile", metavar="FILE", help="PEM certificate (chain) to serve HTTPS")
    tls.add_argument("--keyfile", metavar="FILE", help="PEM private key for --certfile")
    tls.add_argument("--keyfile-password", metavar="PASSWORD", help="password of --keyfile")
    tls.add_argument("--ca-certs", metavar="FILE", help="CA file to check client certificates")
    tls.add_argument("--verify-mode", choices=VERIFY_MODES,
                     help="ask clients for certificates (mutual TLS; default: none)")
    tls.add_argument("--ciphers", metavar="LIST", help="OpenSSL cipher list for TLS 1.2")
    tls.add_argument("--dev-tls", action="store_true",
                     help="serve HTTPS with local development certificates (made once)")
    tls.add_argument("--certs-dir", metavar="DIR",
                     help="where --dev-tls keeps its certificates (default: certs)")
    tls.add_argument("--tls-handshake-timeout", type=float, metavar="SECONDS",
                     help="drop clients that have not finished the handshake by then (default: 10)")

    run = parser.add_argument_group("running")
    run.add_argument("--http", choices=(*HTTP_ENGINES, "zttp"),
                     help="HTTP/1.1 engine (default: auto, httptools when installed)")
    run.add_argument("--loop", choices=(*LOOPS, "zuvloop"),
                     help="event loop (default: auto, uvloop when installed)")
    run.add_argument("--log-level", choices=LOG_LEVELS)
    run.add_argument("--log-format", choices=LOG_FORMATS,
                     help="text lines, or one JSON object per line (default: text)")
    run.add_argument("--access-log", action=argparse.BooleanOptionalAction,
                     help="one line per response and per WebSocket session (default: on)")
    run.add_argument("--access-log-format", "--access-logformat", metavar="FORMAT",
                     help="the access line in gunicorn's atoms, for example "
                          "'%%(h)s \"%%(r)s\" %%(s)s %%(b)s %%(D)s' (default: gateway's own)")
    run.add_argument("--server-header", action=argparse.BooleanOptionalAction,
                     help="send 'server: gateway' (default: on)")
    run.add_argument("--date-header", action=argparse.BooleanOptionalAction,
                     help="send a Date header (default: on)")
    run.add_argument("--use-colors", action=argparse.BooleanOptionalAction,
                     help="colour log levels and access statuses (default: when stderr is a "
                          "terminal)")
    run.add_argument("--log-config", metavar="FILE",
                     help="logging configuration: .json or .yaml/.yml for dictConfig, else INI "
                          "for fileConfig")
    run.add_argument("--header", action="append", dest="headers", metavar="NAME:VALUE",
                     help="a header sent with every response, repeatable; server and date "
                          "replace gateway's own")
    net.add_argument("--limit-concurrency", type=int, metavar="N",
                     help="requests (and WebSockets) past N running in the app get 503 "
                          "(default: no limit)")
    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--metrics-bind", metavar="HOST:PORT",
                         help="serve Prometheus metrics (GET /metrics), /livez and /readyz over "
                              "plain HTTP here (default: off)")
    metrics.add_argument("--metrics-timeout", type=float, metavar="SECONDS",
                         help="a request to the metrics listener must arrive and be answered "
                              "within this (default: 5)")
    add_uvicorn_flags(parser)
    return parser


def build_certs_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gateway certs",
                     description="Make (once) the local development CA and certificate, show "
                                 "where the CA is trusted, and on request trust it on this "
                                 "machine or take that back.")
    parser.add_argument("--certs-dir", default="certs", metavar="DIR",
                        help="where to keep them (default: certs)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--install", action="store_true",
                        help="trust the CA in Chromium's and Firefox's NSS databases (certutil, "
                             "from libnss3-tools) and, as root, in the system store")
    action.add_argument("--uninstall", action="store_true",
                        help="remove the CA from the stores --install put it in")
    return parser


class Settings:
    """The effective settings and where each came from."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str], file: str | None,
                 notes: list[str], show: bool) -> None:
        self.values = values
        self.sources = sources
        self.file = file
        self.notes = notes
        self.show = show

    def config(self) -> Config:
        return Config(**self.values)

    def describe(self) -> str:
        return describe(self.values, self.sources, self.file)


def read_settings(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> Settings:
    """Flags over environment over file over defaults. The --env-file is loaded into
    `environ` before the environment is read, so it can hold GATEWAY_ settings too."""
    flags = vars(build_parser().parse_args(argv))
    show = bool(flags.pop("print_config", False))
    file = flags.pop("config_file", None) or config_file_from_environment(environ)
    flags, notes = translate(flags)
    from_file = read_file(file) if file else {}
    env_file = flags.get("env_file") or environ.get("GATEWAY_ENV_FILE") or from_file.get("env_file")
    if env_file:
        load_env_file(str(env_file), environ)
    from_env = read_environment(environ)
    if "workers" not in from_env and "WEB_CONCURRENCY" in environ:
        try:
            from_env["workers"] = convert("workers", environ["WEB_CONCURRENCY"], Source.ENV)
        except ConfigError:  # its message would name GATEWAY_WORKERS, which the user did not set
            raise ConfigError(f"invalid WEB_CONCURRENCY={environ['WEB_CONCURRENCY']!r}: expected "
                              "a whole number of worker processes") from None
    if "forwarded_allow_ips" not in from_env and "FORWARDED_ALLOW_IPS" in environ:
        from_env["forwarded_allow_ips"] = convert(  # read as uvicorn reads it
            "forwarded_allow_ips", environ["FORWARDED_ALLOW_IPS"], Source.ENV)
    values, sources = layer(default_values(), from_file, from_env, flags)
    return Settings(values, sources, file, notes, show)


def load_env_file(path: str, environ: dict[str, str] | os._Environ[str]) -> None:
    """Variables from a .env file, as uvicorn's --env-file: those already set win."""
    try:
        from dotenv import dotenv_values
    except ImportError:
        raise ConfigError(f"--env-file {path!r} needs python-dotenv: pip install python-dotenv "
                          "(or gateway[standard])") from None
    if not os.path.isfile(path):
        raise ConfigError(f"invalid --env-file {path!r}: no such file")
    for name, value in dotenv_values(path).items():
        if value is not None:
            environ.setdefault(name, value)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["certs"]:
        _certs(argv[1:])
        return
    show = argv[:1] == ["config"]
    try:
        settings = read_settings(argv[1:] if show else argv, os.environ)
    except ConfigError as exc:
        _fail(str(exc))
    for note in settings.notes:
        print(f"gateway: note: {note}", file=sys.stderr)
    if show or settings.show:
        try:
            settings.config()  # the checks serving makes: settings it would refuse are no answer
        except ConfigError as exc:
            _fail(str(exc))
        print(settings.describe())
        return
    if not settings.values.get("app"):
        _fail("no app given: name one as MODULE:ATTR, for example main:app (see 'gateway --help')")
    from . import run
    from .lifespan import LifespanFailure
    from .loading import AppLoadError

    try:
        run(config=settings.config())
    except AppLoadError as exc:
        if not exc.details:  # the module or attribute is not there: a usage mistake
            _fail(str(exc))
        print(exc.details, file=sys.stderr, end="")  # the app's code raised: start-up failed
        print(f"gateway: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_STARTUP_FAILED)
    except ConfigError as exc:
        _fail(str(exc))
    except LifespanFailure as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(EXIT_STARTUP_FAILED)
    except KeyboardInterrupt:
        sys.exit(130)


def _certs(argv: list[str]) -> None:
    from pathlib import Path

    from .tls import trust
    from .tls.devcerts import (
        DevCertificateError,
        dev_certificate_paths,
        ensure_dev_certificates,
        trust_instructions,
    )

    args = build_certs_parser().parse_args(argv)
    try:
        if args.uninstall:
            ca = trust.load_ca(dev_certificate_paths(args.certs_dir).ca_cert)
        else:
            certs, created = ensure_dev_certificates(args.certs_dir)
            ca = trust.load_ca(certs.ca_cert)
    except (DevCertificateError, trust.TrustError) as exc:
        _fail(str(exc))
    if args.install or args.uninstall:
        if args.install and created:
            print(f"created development certificates in {certs.directory}")
        print(f"development CA: {ca.path.absolute()} ({ca.nickname})")
        reports = (trust.install if args.install else trust.uninstall)(ca, Path.home())
        for report in reports:
            print(report.line())
        if trust.browsers_changed(reports):
            print("restart running browsers for them to see the change")
        failed = any(report.outcome is trust.Outcome.FAILED for report in reports)
        sys.exit(1 if failed or (args.install and not trust.is_trusted_somewhere(reports)) else 0)
    print(("created" if created else "reusing") + f" development certificates in {certs.directory}")
    print(f"  certificate: {certs.cert}\n  key:         {certs.key}\n  CA:          {certs.ca_cert}")
    print(f"The CA ({ca.nickname}) on this machine:")
    for report in trust.status(ca, Path.home()):
        print(f"  {report.line()}")
    print(trust_instructions(certs))


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


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
