"""Listening sockets from binds: TCP, Unix, inherited descriptors and systemd, bound once.

Whoever starts first binds: the server when it runs alone, the supervisor when there are
worker processes, which then adopt the same sockets by descriptor and never bind themselves.
Binding is all or nothing: if one address cannot be had, the ones already bound are closed
(and their socket files removed) before the error is reported, so a failed start leaves
nothing listening.

TCP sockets are bound the way asyncio's `create_server` would: every address the host name
resolves to, SO_REUSEADDR so a restart does not wait out TIME_WAIT, IPv6 sockets IPv6-only so
`::` and `0.0.0.0` can be bound side by side. gateway accepts connections itself
(admission.py), so it needs the sockets, not a loop server.

With no address given, gateway listens on 127.0.0.1; with --dev-tls on [::1] too, on the same
port, since browsers try `localhost` as ::1 first and a page on https://localhost should not
wait for the fallback, nor reach another server listening there. A machine without IPv6 gets
127.0.0.1 alone and one line saying so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass, field

from .config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Bind,
    BindAddress,
    Config,
    ConfigError,
    InheritedBind,
    UnixBind,
    parse_listen,
)
from .logs import error_logger

# systemd's socket activation passes its sockets from descriptor 3 on (sd_listen_fds(3)).
SYSTEMD_FIRST_FD = 3
# How binding ::1 fails where IPv6 is turned off (on lo, or in the kernel).
_NO_IPV6 = frozenset((errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT))
# Tries at an ephemeral port (--port 0) free on both 127.0.0.1 and ::1.
_PAIR_TRIES = 5


class BindError(ConfigError):
    """A listening address could not be bound."""


@dataclass
class Listener:
    """One listening socket and how it is served."""

    sock: socket.socket
    bind: Bind
    # TLS on this listener when the server has a certificate; False for --insecure-bind.
    secure: bool
    # gateway created the Unix socket file, so it removes it when it stops.
    owns_path: bool = False
    # A plain listener that answers every request with a redirect to HTTPS (--redirect-bind).
    redirect: bool = False
    # Where it listens, read once: it stays known after the socket is closed.
    address: object = field(init=False)

    def __post_init__(self) -> None:
        self.address = self.sock.getsockname()

    @property
    def port(self) -> int | None:
        return self.address[1] if isinstance(self.address, tuple) else None

    @property
    def is_unix(self) -> bool:
        return self.sock.family == socket.AF_UNIX

    def describe(self, scheme: str) -> str:
        """What the `listening on` line shows: a URL for TCP, the file for a Unix socket."""
        address = self.address
        if not isinstance(address, tuple):
            where = f"unix:{address or self.bind}"
        else:
            host = address[0]
            if isinstance(self.bind, BindAddress) and self.bind.host:
                host = self.bind.host
            where = f"{scheme}://{f'[{host}]' if ':' in host else host}:{address[1]}"
        if isinstance(self.bind, InheritedBind):
            source = str(self.bind) if self.bind.fd is not None else f"systemd, fd {self.sock.fileno()}"
            where += f" (from {source})"
        return where

    def close(self) -> None:
        """Close the socket; remove the socket file if gateway made it."""
        if self.owns_path and isinstance(self.bind, UnixBind):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(self.bind.path).st_mode):
                    os.unlink(self.bind.path)
        self.sock.close()


def open_listeners(config: Config) -> list[Listener]:
    """Every listener the config asks for, or BindError with none left open."""
    listeners: list[Listener] = []
    try:
        if _loopback_pair(config):
            listeners += _open_loopback_pair(config)
        else:
            for bind in _binds(config):
                listeners += _open(bind, True, config)
        for bind in config.insecure_binds:
            listeners += _open(bind, False, config)
        for bind in config.redirect_binds:
            for listener in _open(bind, False, config):
                listener.redirect = True
                listeners.append(listener)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def adopt(fd: int, bind_text: str, secure: bool, redirect: bool = False) -> Listener:
    """A listener the supervisor bound, inherited as descriptor `fd` by a worker."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return Listener(sock, parse_listen(bind_text), secure, redirect=redirect)


def systemd_fds() -> list[int]:
    """The descriptors systemd passed this process (LISTEN_FDS/LISTEN_PID), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return list(range(SYSTEMD_FIRST_FD, SYSTEMD_FIRST_FD + count))


def _binds(config: Config) -> list[Bind]:
    if config.bind:
        return config.binds
    if systemd_fds():
        return [InheritedBind(None)]
    return [BindAddress(DEFAULT_HOST, DEFAULT_PORT if config.port is None else config.port)]


def _loopback_pair(config: Config) -> bool:
    """--dev-tls with no address given: 127.0.0.1 and ::1."""
    return config.dev_tls and not config.bind and not systemd_fds()


def _open_loopback_pair(config: Config) -> list[Listener]:
    """127.0.0.1 and [::1] on one port, the one 127.0.0.1 got when the port is 0; 127.0.0.1
    alone where IPv6 is off."""
    port = DEFAULT_PORT if config.port is None else config.port
    tries = _PAIR_TRIES
    while True:
        [v4] = _open(BindAddress(DEFAULT_HOST, port), True, config)
        v6_bind = BindAddress("::1", v4.port or port)
        try:
            [v6_sock] = bind_tcp(v6_bind, config.backlog)
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno in _NO_IPV6:
                error_logger.info("not listening on %s: IPv6 is off on this machine (%s)", v6_bind,
                                  exc.strerror or exc)
                return [v4]
            v4.close()
            tries -= 1
            if port == 0 and exc.errno == errno.EADDRINUSE and tries:
                continue  # the port 127.0.0.1 got is taken on ::1: another one
            raise BindError(f"cannot listen on {v6_bind}: {exc.strerror or exc} (--dev-tls listens on "
                            f"{DEFAULT_HOST} and ::1; --bind {DEFAULT_HOST}:{v6_bind.port} listens on "
                            "the first alone)") from None
        return [v4, Listener(v6_sock, v6_bind, True)]


def _open(bind: Bind, secure: bool, config: Config) -> list[Listener]:
    if isinstance(bind, UnixBind):
        return [Listener(_bind_unix(bind.path, config.backlog, config.socket_mode), bind, secure,
                         owns_path=True)]
    if isinstance(bind, InheritedBind):
        if bind.fd is not None:
            return [Listener(_inherit(bind.fd, str(bind), config.backlog), bind, secure)]
        fds = systemd_fds()
        if not fds:
            raise BindError(
                "--bind systemd: systemd passed no sockets to this process (LISTEN_FDS and"
                " LISTEN_PID are not set for it); start it from a .socket unit"
            )
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)  # they describe this process, not its children
        return [Listener(_inherit(fd, f"systemd fd {fd}", config.backlog), bind, secure) for fd in fds]
    try:
        return [Listener(sock, bind, secure) for sock in bind_tcp(bind, config.backlog)]
    except OSError as exc:
        raise BindError(f"cannot listen on {bind}: {exc.strerror or exc}") from None


def bind_tcp(address: BindAddress, backlog: int) -> list[socket.socket]:
    """Non-blocking listening sockets for `address`; OSError (socket.gaierror included) if
    any cannot be bound, with none left open."""
    infos = socket.getaddrinfo(
        address.host or None, address.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
        socket.AI_PASSIVE,
    )
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


def _bind_unix(path: str, backlog: int, mode: int) -> socket.socket:
    """A Unix socket at `path`. A file left there by a server that died (a socket nobody
    listens on) is removed; a live one, or a file that is not a socket, is an error."""
    where = f"unix:{path}"
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise BindError(f"cannot listen on {where}: the file exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # stale: its server is gone
        except OSError as exc:
            raise BindError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        else:
            raise BindError(f"cannot listen on {where}: another server is listening on it")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def _inherit(fd: int, what: str, backlog: int) -> socket.socket:
    """The listening stream socket at descriptor `fd`, as a parent process passed it."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"cannot listen on {what}: descriptor {fd} is not an open socket "
                        f"({exc.strerror or exc})") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"cannot listen on {what}: descriptor {fd} is not a stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        try:
            sock.listen(backlog)
        except OSError as exc:
            sock.detach()
            raise BindError(f"cannot listen on {what}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock
