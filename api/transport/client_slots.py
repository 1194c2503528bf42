"""At most ``api.max_connections_per_client`` open API connections per client address.

Without it one stranger holding ``api.max_connections`` idle connections (TLS handshakes not
finished, requests trickled up to the deadline, reopened as they are closed) locked every access
point out. A client is an IPv4 address or an IPv6 /64 (one host's usual allocation: per address,
a host would have 2^64 of them). 127.0.0.1 and ::1 are not limited: a local reverse proxy connects
from there for all its clients, and limits them itself.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

UNLIMITED_CLIENTS = frozenset({ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")})
IPV6_CLIENT_PREFIX = 64
ClientKey = ipaddress.IPv4Network | ipaddress.IPv6Network | None


def client_key(address: str) -> ClientKey:
    """The network one client's connections count against; None for an unlimited or unparsable one."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 32 if ip.version == 4 else 128
    if ipaddress.ip_network(f"{ip}/{prefix}") in UNLIMITED_CLIENTS:
        return None
    if ip.version == 6:
        prefix = IPV6_CLIENT_PREFIX
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)


class ClientSlots:
    """Counts open connections per client key."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[ipaddress.IPv4Network | ipaddress.IPv6Network] = Counter()

    def take(self, address: str) -> tuple[bool, ClientKey]:
        """(admitted, the key to :meth:`give` back when it closes)."""
        key = client_key(address)
        if key is None:
            return True, None
        if self._open[key] >= self._limit:
            return False, key
        self._open[key] += 1
        return True, key

    def give(self, key: ClientKey) -> None:
        if key is None:
            return
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def open_for(self, address: str) -> int:
        key = client_key(address)
        return 0 if key is None else self._open[key]
