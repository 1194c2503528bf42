"""Special-use address space: prefixes topfib never ingests, selects, requests, pins or announces.

The ranges come from the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
successors). Always filtered are the ranges that are never forwarded as unicast (RFC 6890's
"Forwardable: False", plus multicast and the reserved 240/4):

* IPv4: 0/8 "this network", 127/8 loopback, 169.254/16 link-local, 224/4 multicast, 240/4
  reserved (which holds 255.255.255.255/32, limited broadcast);
* IPv6: ::/128 unspecified, ::1/128 loopback, ::ffff:0:0/96 IPv4-mapped, fe80::/10 link-local,
  ff00::/8 multicast.

Filtered by default but configurable (``[special_use]``): the documentation ranges 192.0.2/24,
198.51.100/24, 203.0.113/24, 2001:db8::/32 and 3fff::/20 (labs and demos use them). Off by
default: 100.64/10, shared address space (CGNAT), which is routable inside some networks. An
operator may add ranges of their own (``special_use.extra``).

The rule: a prefix *inside* (or equal to) a filtered range is refused; a shorter prefix that
merely *covers* one (0.0.0.0/1 covers 127/8) also routes ordinary space and is kept. "Inside" is
judged against the union of the ranges: 224.0.0.0/3 is multicast plus reserved and nothing else,
so it is refused although neither range alone contains it. A default
route (/0) is always refused: topfib exists to install specific routes in front of it, and one
/0 would carry every unrouted destination.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from topfib.collector.common.metrics import REGISTRY
from topfib.collector.common.prefixes import IPV4, IPV6, PrefixError, split_prefix

FILTERED = REGISTRY.counter(
    "topfib_special_use_filtered_total",
    "Special-use prefixes and addresses refused, by where (rib, request, pin) and range name",
    ("where", "range"),
)

DEFAULT_ROUTE = "default route"

ALWAYS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
DOCUMENTATION: tuple[tuple[str, str], ...] = (
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
)
SHARED_ADDRESS_SPACE: tuple[tuple[str, str], ...] = (("100.64.0.0/10", "shared address space"),)

_BITS = {IPV4: 32, IPV6: 128}


# (length, shift, network >> shift, name) of one range, shift = address bits - length
_Range = tuple[int, int, int, str]
_KEY_BITS = {IPV4: 8, IPV6: 16}


class SpecialUseFilter:
    """Answers whether a prefix or address lies in special-use space, and names the range.

    Ranges are bucketed by their leading bits (8 for IPv4, 16 for IPv6), so a lookup reads a
    handful of candidates: it runs for every new prefix the RIB ingests.
    """

    def __init__(self, ranges: Iterable[tuple[str, str]]) -> None:
        self.ranges: list[tuple[str, str]] = list(ranges)
        wide: dict[int, list[_Range]] = {IPV4: [], IPV6: []}  # shorter than a bucket key
        narrow: dict[tuple[int, int], list[_Range]] = {}
        for text, name in [*self.ranges, *_unions(self.ranges)]:
            family, network, length = split_prefix(text)
            shift = _BITS[family] - length
            entry = (length, shift, network >> shift, name)
            key_bits = _KEY_BITS[family]
            if length < key_bits:
                wide[family].append(entry)
            else:
                narrow.setdefault((family, network >> (_BITS[family] - key_bits)), []).append(entry)
        self._wide = {family: _most_specific_first(entries) for family, entries in wide.items()}
        # IPv4: the candidates by first octet, a plain tuple index (the RIB's common case); a
        # range wider than /8 is a candidate only for the octets it spans
        self._by_octet = tuple(
            _most_specific_first([*(e for e in self._wide[IPV4] if octet >> (8 - e[0]) == e[2]),
                                  *narrow.get((IPV4, octet), ())])
            for octet in range(256))
        self._v6_buckets = {key: _most_specific_first([*self._wide[IPV6], *entries])
                            for (family, key), entries in narrow.items() if family == IPV6}

    @classmethod
    def from_settings(cls, *, documentation: bool = True, shared_address_space: bool = False,
                      extra: Iterable[str] = ()) -> SpecialUseFilter:
        ranges = list(ALWAYS)
        if documentation:
            ranges += DOCUMENTATION
        if shared_address_space:
            ranges += SHARED_ADDRESS_SPACE
        ranges += [(prefix, "configured") for prefix in extra]
        return cls(ranges)

    def reason_parsed(self, family: int, network: int, length: int) -> str | None:
        """The range name when the prefix (``split_prefix``'s result) is refused, else None."""
        if length == 0:
            return DEFAULT_ROUTE
        # a prefix shorter than the bucket key can only lie inside a range wider than the key
        if family == IPV4:
            candidates = self._by_octet[network >> 24] if length >= 8 else self._wide[IPV4]
        elif length >= 16:
            candidates = self._v6_buckets.get(network >> 112, self._wide[IPV6])
        else:
            candidates = self._wide[IPV6]
        for range_length, shift, range_network, name in candidates:
            if length >= range_length and network >> shift == range_network:
                return name
        return None

    def reason(self, prefix: str) -> str | None:
        """The range name when ``prefix`` is refused, else None; raises PrefixError if malformed."""
        return self.reason_parsed(*split_prefix(prefix))

    def reason_for_address(self, ip: str) -> str | None:
        """The range name when the address ``ip`` lies in special-use space, else None."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise PrefixError(f"invalid address {ip!r}") from exc
        family = IPV4 if address.version == 4 else IPV6
        return self.reason_parsed(family, int(address), _BITS[family])


def _most_specific_first(entries: Iterable[_Range]) -> tuple[_Range, ...]:
    """Candidates longest first: a prefix is named by the narrowest range holding it."""
    return tuple(sorted(entries, key=lambda entry: -entry[0]))


def _unions(ranges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Blocks that adjacent ranges form together (224/4 + 240/4 = 224/3), named after them.

    A prefix lying in the union of the ranges lies inside one block of their collapsed form, so
    adding these blocks makes "inside the union" a check against single ranges again."""
    networks = [(ipaddress.ip_network(text), name) for text, name in ranges]
    given = {network for network, _ in networks}
    unions = []
    for version in (4, 6):
        same = [network for network, _ in networks if network.version == version]
        for block in ipaddress.collapse_addresses(same):  # type: ignore[type-var]
            if block not in given:
                names = [name for network, name in networks
                         if network.version == version and network.subnet_of(block)]  # type: ignore[arg-type]
                unions.append((str(block), " + ".join(dict.fromkeys(names))))
    return unions


def count_filtered(where: str, range_name: str) -> None:
    FILTERED.inc(where=where, range=range_name)
