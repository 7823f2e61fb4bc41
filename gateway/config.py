"""Every setting gateway has, with its default and its validation.

The CLI, `gateway.run()` and `gateway.serve()` all end up here, so a setting is checked once,
in one place, and a bad value becomes a `ConfigError` whose message a user can act on.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .proxy.trust import TrustedPeers

from .access import AccessFormat
from .fields import has_control_characters, lower_name

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_BIND = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LOG_FORMATS = ("text", "json")
LIFESPAN_MODES = ("auto", "on", "off")
LOOPS = ("auto", "asyncio", "uvloop")
HTTP_ENGINES = ("auto", "h11", "httptools")
# HTTP/2: gateway's own engine (h2/engine.py), or h2, the reference it is tested against.
H2_ENGINES = ("fast", "h2")
VERIFY_MODES = ("none", "optional", "required")
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")
PROXY_PROTOCOLS = ("v1", "v2", "auto")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_BIND_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)$")
# Fields gateway frames each response with: a default value for them would break the framing.
_FRAMING_FIELDS = frozenset((
    b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"proxy-connection",
    b"upgrade",
))


class ConfigError(Exception):
    """A setting the user gave cannot work; the message says which and why."""


@dataclass(frozen=True)
class BindAddress:
    """One listening address, parsed from `HOST:PORT` or `[V6]:PORT`."""

    host: str
    port: int

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self.url_host}:{self.port}"


@dataclass(frozen=True)
class UnixBind:
    """`unix:PATH`: a Unix domain socket file."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class InheritedBind:
    """`fd://N`: a listening socket a parent process passed as descriptor N, or `systemd`:
    every socket systemd passed (LISTEN_FDS), `fd` None."""

    fd: int | None

    def __str__(self) -> str:
        return "systemd" if self.fd is None else f"fd://{self.fd}"


Bind = BindAddress | UnixBind | InheritedBind


def parse_listen(text: str, flag: str = "--bind") -> Bind:
    """Any listening address: `HOST:PORT`, `unix:PATH`, `fd://N` or `systemd`."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise ConfigError(f"invalid {flag} {text!r}: expected unix:PATH, for example unix:/run/app.sock")
        return UnixBind(path)
    if text.startswith("fd://"):
        number = text[len("fd://"):]
        if not (number.isascii() and number.isdigit()):
            raise ConfigError(f"invalid {flag} {text!r}: expected fd://N, N a descriptor number")
        return InheritedBind(int(number))
    if text == "systemd":
        return InheritedBind(None)
    return parse_bind(text, flag)


def parse_bind(text: str, flag: str = "--bind") -> BindAddress:
    """Parse `HOST:PORT`, `[::1]:PORT` or `:PORT` (all interfaces)."""
    match = _BIND_RE.match(text.strip())
    if match is None:
        raise ConfigError(
            f"invalid {flag} {text!r}: expected HOST:PORT (for example 127.0.0.1:8000 or"
            " [::1]:8443), unix:PATH, fd://N or systemd"
        )
    port = int(match["port"])
    if not 0 <= port <= 65535:
        raise ConfigError(f"invalid {flag} {text!r}: port must be between 0 and 65535")
    host = match["v6"] if match["v6"] is not None else match["host"]
    return BindAddress(host or "0.0.0.0", port)


def parse_header(text: str) -> tuple[bytes, bytes]:
    """Parse one `--header NAME:VALUE` into a lower-cased name and a value, both latin-1, as
    uvicorn encodes them; whitespace around the value is dropped, as a client would drop it.
    The checks are the ones an app's headers pass (fields.py)."""
    name, colon, value = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not colon or not name:
        raise ConfigError(
            f"invalid --header {text!r}: expected NAME:VALUE, for example 'X-Frame-Options:DENY'"
        )
    try:
        raw_name, raw_value = name.encode("latin-1"), value.strip(" \t").encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(f"invalid --header {text!r}: only latin-1 characters can be sent") from None
    try:
        lowered = lower_name(raw_name)
    except ValueError:
        raise ConfigError(
            f"invalid --header {text!r}: {name!r} is not a header name (letters, digits and"
            " !#$%&'*+-.^_`|~, no spaces)"
        ) from None
    if lowered in _FRAMING_FIELDS:
        raise ConfigError(f"invalid --header {text!r}: gateway sets {name} for each response itself")
    if has_control_characters(raw_value):
        raise ConfigError(f"invalid --header {text!r}: the value may not hold CR, LF, NUL or other controls")
    return lowered, raw_value


@dataclass
class Config:
    """gateway's settings. Field names match the CLI flags (`--keep-alive-timeout` ->
    `keep_alive_timeout`) so documentation and errors can speak of either."""

    app: Any = None
    factory: bool = False
    app_dir: str | None = None

    # Empty: the sockets systemd passed (LISTEN_FDS) when there are any, else DEFAULT_BIND, and
    # [::1] on the same port under --dev-tls (sockets.py).
    bind: list[str] = field(default_factory=list)
    # The port of those default listeners (uvicorn's --port without --host); None: DEFAULT_PORT.
    port: int | None = None
    insecure_bind: list[str] = field(default_factory=list)
    redirect_bind: list[str] = field(default_factory=list)
    redirect_port: int | None = None
    hsts: int | None = None
    backlog: int = 2048
    unix_socket_mode: str = "666"

    workers: int = 1
    worker_timeout: float = 30.0
    max_requests: int | None = None
    max_requests_jitter: int = 0
    reload: bool = False
    reload_dirs: list[str] = field(default_factory=list)
    reload_includes: list[str] = field(default_factory=list)
    reload_excludes: list[str] = field(default_factory=list)
    reload_delay: float = 0.25
    env_file: str | None = None
    interface: str = "auto"
    # Threads a WSGI app's requests run on, at most, in each worker (a2wsgi's pool).
    wsgi_threads: int = 10

    certfile: str | None = None
    keyfile: str | None = None
    keyfile_password: str | None = None
    ca_certs: str | None = None
    verify_mode: str = "none"
    ciphers: str | None = None
    dev_tls: bool = False
    certs_dir: str = "certs"
    tls_handshake_timeout: float = 10.0

    root_path: str = ""
    http: str = "auto"
    loop: str = "auto"
    lifespan: str = "auto"
    server_header: bool = True
    date_header: bool = True
    headers: list[str] = field(default_factory=list)

    log_level: str = "info"
    access_log: bool = True
    log_config: str | None = None
    use_colors: bool | None = None
    log_format: str = "text"
    # None: gateway's own access line; else gunicorn's atoms (access.py).
    access_log_format: str | None = None

    # Prometheus metrics, /livez and /readyz on a listener of their own (metrics.py).
    metrics_bind: str | None = None
    metrics_timeout: float = 5.0

    graceful_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    send_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    response_timeout: float = 0.0

    max_head_size: int = 32 * 1024
    max_body_size: int | None = None
    limit_connections: int | None = None
    limit_concurrency: int | None = None

    # uvicorn's defaults: headers from proxies on this machine are believed.
    proxy_headers: bool = True
    forwarded_allow_ips: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    # A PROXY protocol header first on every connection ("v1", "v2", "auto"), or none.
    proxy_protocol: str | None = None

    control_frame_budget: int = 1000
    address_block_time: float = 10.0
    address_guard_exempt: list[str] = field(default_factory=list)

    h2c: bool = True
    h2_engine: str = "fast"
    h2_max_concurrent_streams: int = 100
    h2_initial_window_size: int = 256 * 1024
    h2_max_frame_size: int = 16 * 1024
    h2_max_header_list_size: int = 64 * 1024
    h2_max_headers_held: int = 1024 * 1024

    ws_max_size: int = 16 * 1024 * 1024
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_close_timeout: float = 5.0
    ws_per_message_deflate: bool = True

    def __post_init__(self) -> None:
        for name in ("bind", "insecure_bind", "redirect_bind", "reload_dirs", "reload_includes",
                     "reload_excludes", "headers"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, [getattr(self, name)])
        self.validate()

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def binds(self) -> list[Bind]:
        """Where to listen: TLS when a certificate is given, plain otherwise."""
        return [parse_listen(text) for text in self.bind]

    @property
    def insecure_binds(self) -> list[Bind]:
        """Plain listeners beside TLS ones (--insecure-bind)."""
        return [parse_listen(text, "--insecure-bind") for text in self.insecure_bind]

    @property
    def redirect_binds(self) -> list[Bind]:
        """Plain listeners that redirect every request to HTTPS (--redirect-bind)."""
        return [parse_listen(text, "--redirect-bind") for text in self.redirect_bind]

    @property
    def socket_mode(self) -> int:
        try:
            mode = int(self.unix_socket_mode, 8)
        except (TypeError, ValueError):
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ConfigError(
                f"invalid --unix-socket-mode {self.unix_socket_mode!r}: expected octal permissions"
                " such as 660"
            )
        return mode

    @property
    def uses_supervisor(self) -> bool:
        """Worker processes under a supervisor: several, reloaded, or recycled."""
        return self.workers > 1 or self.reload or self.max_requests is not None

    @property
    def header_fields(self) -> list[tuple[bytes, bytes]]:
        """`headers` parsed, in the order given; a name may repeat, except server and date,
        which gateway otherwise sends itself and which are never sent twice."""
        fields = [parse_header(text) for text in self.headers]
        for single in (b"server", b"date"):
            if sum(name == single for name, _ in fields) > 1:
                raise ConfigError(f"invalid --header: {single.decode()} given more than once; give it once")
        return fields

    @property
    def exempt_networks(self) -> list[IPNetwork]:
        networks = []
        for text in self.address_guard_exempt:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"invalid --address-guard-exempt {text!r}: expected an IP address or a network"
                    " such as 10.0.0.0/8"
                ) from None
        return networks

    @property
    def trusted_peers(self) -> TrustedPeers:
        """The peers whose forwarded and PROXY protocol headers are believed."""
        from .proxy.trust import TrustedPeers

        return TrustedPeers(self.forwarded_allow_ips)

    @property
    def is_tls(self) -> bool:
        return self.certfile is not None or self.dev_tls

    @property
    def log_level_number(self) -> int:
        return 5 if self.log_level == "trace" else getattr(logging, self.log_level.upper())

    def validate(self) -> None:
        """Check every field, so that nothing is bound before a mistake is reported."""
        _choice("--log-level", self.log_level, LOG_LEVELS)
        _choice("--log-format", self.log_format, LOG_FORMATS)
        _choice("--lifespan", self.lifespan, LIFESPAN_MODES)
        _choice("--loop", self.loop, LOOPS)
        _choice("--http", self.http, HTTP_ENGINES)
        _choice("--h2-engine", self.h2_engine, H2_ENGINES)
        _choice("--verify-mode", self.verify_mode, VERIFY_MODES)
        _choice("--interface", self.interface, INTERFACES)
        if self.proxy_protocol is not None:
            _choice("--proxy-protocol", self.proxy_protocol, PROXY_PROTOCOLS)
        self.binds  # noqa: B018 - parsing is the validation
        if self.port is not None:
            if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
                raise ConfigError(f"invalid --port {self.port!r}: a port from 0 to 65535")
            if self.bind:
                raise ConfigError("--port sets the port of the default listeners, and --bind says where "
                                  "to listen: give the port in each --bind address instead")
        self.insecure_binds  # noqa: B018
        self.redirect_binds  # noqa: B018
        self.socket_mode  # noqa: B018
        for name in ("graceful_timeout", "keep_alive_timeout", "tls_handshake_timeout", "send_timeout",
                     "header_timeout", "body_timeout", "response_timeout", "address_block_time",
                     "ws_ping_interval", "ws_ping_timeout", "ws_close_timeout", "reload_delay"):
            _non_negative(name, getattr(self, name))
        for name in ("max_head_size", "backlog", "h2_max_concurrent_streams", "h2_max_header_list_size",
                     "h2_max_headers_held", "control_frame_budget", "ws_max_size", "workers", "wsgi_threads"):
            _positive_int(name, getattr(self, name))
        for name in ("limit_connections", "max_requests", "limit_concurrency"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if not isinstance(self.max_requests_jitter, int) or self.max_requests_jitter < 0:
            raise ConfigError(
                f"invalid --max-requests-jitter {self.max_requests_jitter!r}: it must be a whole"
                " number >= 0"
            )
        if not isinstance(self.worker_timeout, (int, float)) or self.worker_timeout < 2:
            raise ConfigError(
                f"invalid --worker-timeout {self.worker_timeout!r}: it must be at least 2 seconds,"
                " since a worker reports once a second"
            )
        if self.interface == "wsgi":
            from .wsgi import require_a2wsgi

            require_a2wsgi()
        if self.uses_supervisor and self.app is not None and not isinstance(self.app, str):
            raise ConfigError(
                "--workers, --reload and --max-requests start the app in new processes, so they"
                " need it as an import string such as 'main:app', not an object"
            )
        if self.redirect_bind and not self.is_tls:
            raise ConfigError("--redirect-bind sends clients to HTTPS: it needs --certfile or --dev-tls")
        if self.redirect_port is not None and not (isinstance(self.redirect_port, int)
                                                   and 1 <= self.redirect_port <= 65535):
            raise ConfigError(f"invalid --redirect-port {self.redirect_port!r}: a port from 1 to 65535")
        if self.hsts is not None:
            if not isinstance(self.hsts, int) or isinstance(self.hsts, bool) or self.hsts < 0:
                raise ConfigError(f"invalid --hsts {self.hsts!r}: a whole number of seconds >= 0")
            if not self.is_tls:
                raise ConfigError("--hsts is for HTTPS responses: it needs --certfile or --dev-tls")
        if self.insecure_bind and not self.is_tls:
            raise ConfigError(
                "--insecure-bind adds plain listeners beside TLS ones: it needs --certfile or"
                " --dev-tls (without TLS, every --bind is plain already)"
            )
        self.header_fields  # noqa: B018 - parsing is the validation
        if self.use_colors is not None and not isinstance(self.use_colors, bool):
            raise ConfigError(f"invalid use_colors {self.use_colors!r}: True, False or None (auto)")
        if self.access_log_format is not None:
            try:
                AccessFormat(self.access_log_format)
            except ValueError as exc:
                raise ConfigError(f"invalid --access-log-format {self.access_log_format!r}: {exc}") from None
        if self.log_config is not None and not (
            isinstance(self.log_config, str) and os.path.isfile(self.log_config)
        ):
            raise ConfigError(
                f"invalid --log-config {self.log_config!r}: no such file (a .json, .yaml/.yml"
                " or INI logging configuration)"
            )
        if isinstance(self.forwarded_allow_ips, str):
            self.forwarded_allow_ips = [
                part.strip() for part in self.forwarded_allow_ips.split(",") if part.strip()
            ]
        self.trusted_peers  # noqa: B018 - parsing is the validation
        if isinstance(self.address_guard_exempt, str):
            self.address_guard_exempt = [
                part for part in self.address_guard_exempt.split(",") if part.strip()
            ]
        self.exempt_networks  # noqa: B018 - parsing is the validation
        if not 1 <= self.h2_initial_window_size <= 2**31 - 1:
            raise ConfigError("invalid --h2-initial-window-size: it must be from 1 to 2147483647")
        if not 2**14 <= self.h2_max_frame_size <= 2**24 - 1:
            raise ConfigError("invalid --h2-max-frame-size: it must be from 16384 to 16777215")
        if self.max_body_size is not None:
            _positive_int("max_body_size", self.max_body_size)
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(
                f"invalid --root-path {self.root_path!r}: it must start with '/' and not end with"
                " '/', for example /api"
            )
        if self.keyfile and not self.certfile:
            raise ConfigError("--keyfile was given without --certfile")
        if self.metrics_bind is not None:
            parse_bind(self.metrics_bind, "--metrics-bind")
        if not isinstance(self.metrics_timeout, (int, float)) or self.metrics_timeout <= 0:
            raise ConfigError(
                f"invalid --metrics-timeout {self.metrics_timeout!r}: it must be a number of seconds > 0"
            )
        if self.dev_tls and self.certfile:
            raise ConfigError("--dev-tls and --certfile exclude each other: pick one")
        if self.verify_mode != "none" and not self.is_tls:
            raise ConfigError("--verify-mode needs TLS: add --certfile/--keyfile or --dev-tls")
        if self.verify_mode != "none" and not self.ca_certs:
            raise ConfigError(
                f"--verify-mode {self.verify_mode} needs --ca-certs, the CA file that client"
                " certificates are checked against"
            )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"invalid {flag} {value!r}: choose one of {', '.join(choices)}")


def _non_negative(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"invalid {_flag(name)} {value!r}: it must be a number of seconds >= 0")


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"invalid {_flag(name)} {value!r}: it must be a whole number > 0")
