"""Canonical prefix strings and address parsing shared by the RIB, the collector and the controller:
the one place for prefix and address rules.

A prefix is carried everywhere as its canonical string (``"192.0.2.0/24"``, ``"2001:db8::/32"``):
that is what ExaBGP, the API and operators read, and it hashes cheaply.

Two parsers, on purpose. The general-purpose one (:func:`canonical_prefix`, :func:`parse_prefix`)
goes through ``ipaddress`` objects (~3 µs each); :func:`parse_prefix` masks host bits. The strict,
fast one (:func:`split_prefix`, :func:`split_canonical`) serves the hot paths (BGP ingest, table
loads): a full table at ≥ 50k prefixes/s needs a cheaper path for IPv4, and a prefix with host bits
set must be rejected, not repaired: a peer sending ``10.0.0.1/24`` is sending garbage, and keying it
as ``10.0.0.0/24`` would hide that.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
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


def prefix_sort_key(prefix: str) -> tuple[int, int, int]:
    """The canonical prefix order: family, then network, then length (shorter first).

    ``inet_pton`` keeps it cheap enough to key every candidate selection looks at. Something that
    is not a prefix sorts after every prefix (family 99) instead of raising: ordering must not
    be where a stray string stops the control loop.
    """
    address, _, length = prefix.partition("/")
    try:
        if ":" in address:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address)), int(length)
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address)), int(length)
    except (OSError, ValueError):
        return 99, 0, 0


def canonical_address(text: str) -> str:
    """``text`` as ``inet_ntop`` writes it (the decoders' form); unchanged if not an address."""
    try:
        if ":" in text:
            return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
        return socket.inet_ntoa(socket.inet_aton(text)) if text.count(".") == 3 else text
    except OSError:
        return text


# --- strict and fast: the hot paths ---------------------------------------------------------

V4_BITS = 32
V6_BITS = 128


def split_prefix(text: str) -> tuple[int, int, int]:
    """(family, network as int, length) of a prefix string; host bits must be zero.

    Addresses are parsed by the C library's strict ``inet_pton`` (no leading zeros, exactly four
    IPv4 octets). Raises :class:`PrefixError` for anything that is not a valid prefix.
    """
    address, slash, length_text = text.partition("/")
    if not slash or not length_text.isascii() or not length_text.isdigit() or len(length_text) > 3:
        raise PrefixError(f"invalid prefix {text!r}: expected ADDRESS/LENGTH")
    length = int(length_text)
    if ":" in address:
        family, bits, packed = IPV6, V6_BITS, _pton(socket.AF_INET6, address, text)
    else:
        family, bits, packed = IPV4, V4_BITS, _pton(socket.AF_INET, address, text)
    if length > bits:
        raise PrefixError(f"invalid prefix {text!r}: length {length} > {bits}")
    network = int.from_bytes(packed, "big")
    if network & ((1 << (bits - length)) - 1):
        raise PrefixError(f"invalid prefix {text!r}: host bits set")
    return family, network, length


_inet_pton = socket.inet_pton
_unpack_v4 = struct.Struct("!I").unpack


def split_canonical(text: str) -> tuple[str, tuple[int, int, int]] | None:
    """(canonical string, ``split_prefix(text)``), or None where :func:`split_prefix` raises.

    The ingest hot path: an IPv4 prefix is parsed inline (no exception on the way for a good
    one) and is its own canonical string unless its length has a leading zero (``inet_pton``
    refuses leading zeros in the address).
    """
    address, slash, length_text = text.partition("/")
    if not slash or not length_text.isdigit() or not length_text.isascii() or len(length_text) > 3:
        return None
    length = int(length_text)
    if ":" in address:
        try:
            key = split_prefix(text)
        except PrefixError:
            return None
        return format_network(*key), key
    try:
        (network,) = _unpack_v4(_inet_pton(socket.AF_INET, address))
    except (OSError, ValueError):  # ValueError: embedded NUL
        return None
    if length > V4_BITS or network & ((1 << (V4_BITS - length)) - 1):
        return None
    key = (IPV4, network, length)
    if len(length_text) > 1 and length_text[0] == "0":  # "/024" is /24, written "/24"
        return format_network(IPV4, network, length), key
    return text, key


def _pton(family: int, address: str, context: str) -> bytes:
    try:
        return socket.inet_pton(family, address)
    except (OSError, ValueError):  # ValueError: embedded NUL
        raise PrefixError(f"invalid address in {context!r}") from None


def canonical(text: str) -> str:
    """The canonical string of a strict prefix (IPv6 compressed, lower case)."""
    family, network, length = split_prefix(text)
    return format_network(family, network, length)


def format_network(family: int, network: int, length: int) -> str:
    """Canonical prefix string of (family, network, length) without building a network object."""
    if family == IPV4:
        return f"{network >> 24}.{(network >> 16) & 255}.{(network >> 8) & 255}.{network & 255}/{length}"
    return f"{ipaddress.IPv6Address(network)}/{length}"
