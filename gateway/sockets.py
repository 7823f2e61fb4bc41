"""Listening sockets from binds, bound once before the loop serves them.

gateway accepts connections itself (admission.py) rather than through `loop.create_server`,
so it binds its own sockets, the way asyncio's `create_server` would: every address the host
name resolves to, SO_REUSEADDR so a restart does not wait out TIME_WAIT, IPv6 sockets IPv6-only
so `::` and `0.0.0.0` can be bound side by side.
"""

from __future__ import annotations

import socket

from .config import BindAddress


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
