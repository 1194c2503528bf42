"""Canonical prefix strings and address parsing shared by the RIB, the collector and the controller.

A prefix is carried everywhere as its canonical string (``"192.0.2.0/24"``, ``"2001:db8::/32"``):
that is what ExaBGP, the API and operators read, and it hashes cheaply.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPV4: Final = 4
IPV6: Final = 6


class PrefixError(ValueError):
    """A prefix or address string that cannot be parsed."""


def canonical_prefix(text: str) -> str:
    """Return the canonical form of a prefix; host bits must be zero."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError as exc:
        raise PrefixError(f"invalid prefix {text!r}: {exc}") from None


def prefix_family(prefix: str) -> int:
    """4 or 6, from the canonical prefix string."""
    return IPV6 if ":" in prefix else IPV4


def parse_prefix(prefix: str) -> tuple[int, int, int]:
    """(family, network as int, length) of a prefix string."""
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError as exc:
        raise PrefixError(f"invalid prefix {prefix!r}: {exc}") from None
    return net.version, int(net.network_address), net.prefixlen


def format_prefix(family: int, network: int, length: int) -> str:
    """Canonical string of (family, network int, length)."""
    if family == IPV4:
        return f"{ipaddress.IPv4Address(network)}/{length}"
    return f"{ipaddress.IPv6Address(network)}/{length}"


def parse_address(text: str) -> tuple[int, int]:
    """(family, address as int) of an IP address string."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise PrefixError(f"invalid address {text!r}: {exc}") from None
    return addr.version, int(addr)


def contains(outer: str, inner: str) -> bool:
    """True when prefix ``inner`` lies inside (or equals) prefix ``outer``."""
    fo, no, lo = parse_prefix(outer)
    fi, ni, li = parse_prefix(inner)
    if fo != fi or li < lo:
        return False
    bits = 32 if fo == IPV4 else 128
    return (ni >> (bits - lo)) == (no >> (bits - lo)) if lo else True
