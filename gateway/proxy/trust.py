"""Which peers are believed when they say who the client is (--forwarded-allow-ips).

A forwarded header or a PROXY protocol header from anyone else is a forgery waiting to
happen: a client could name any address and walk past every per-address guard. So trust is
explicit: addresses, networks, `*` for everyone, and `unix` for peers on a Unix socket, which
have no address (a proxy on the same machine).
"""

from __future__ import annotations

import functools
import ipaddress

from ..config import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNIX = "unix"
EVERYONE = "*"


class TrustedPeers:
    """`trusts(host)` for a peer's address text; None is a Unix-socket peer."""

    def __init__(self, entries: list[str]) -> None:
        self.everyone = False
        self.unix = False
        self.addresses: set[IPAddress] = set()
        self.networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry == EVERYONE:
                self.everyone = True
            elif entry.lower() == UNIX:
                self.unix = True
            elif "/" in entry:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise _invalid(entry) from None
            else:
                try:
                    self.addresses.add(ipaddress.ip_address(entry))
                except ValueError:
                    raise _invalid(entry) from None
        # Peers are few and come back (a balancer's addresses): remember the answers.
        self._address_trusted = functools.lru_cache(maxsize=1024)(self._compute)

    def trusts(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if host is None or host == "":
            return self.unix
        if len(host) > 64:  # longer than any address text: not one
            return False
        return self._address_trusted(host)

    def _compute(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address in self.addresses or any(address in network for network in self.networks)


def _invalid(entry: str) -> ConfigError:
    return ConfigError(
        f"invalid --forwarded-allow-ips entry {entry!r}: expected an IP address, a network such as"
        " 10.0.0.0/8, '*' (everyone) or 'unix' (Unix-socket peers)"
    )
