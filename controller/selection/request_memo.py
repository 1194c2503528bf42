"""The longest RIB match of each requested address, remembered across selections on one RIB.

Every selection answers every active request (tens of thousands while access points are busy),
starting from the longest match of its address: ~8 µs a look-up through ``ipaddress``, so the
bulk of a selection's time, on the event loop the API shares. Matches barely change from one
selection to the next, so :class:`UnitCache` keeps them in an :class:`AddressMatches`; addresses
new to it are resolved in one batch where the RIB offers ``longest_matches`` (the live RIB: its
LPM's vectorised look-up).

Invalidation: the longest match of an address changes only when a prefix containing it enters or
leaves the RIB, and each such prefix is among the changes :meth:`UnitCache.forget` is given
(``Rib.drain_changed()``): :meth:`AddressMatches.forget_inside` drops every remembered address
inside a changed prefix, found by bisection among the sorted addresses of its family.
"""

from __future__ import annotations

import bisect
import socket
from collections.abc import Callable, KeysView, Sequence
from enum import Enum
from itertools import compress, repeat
from operator import is_
from typing import Final, Protocol, cast

from topfib.controller.selection.model import RibView

# More remembered addresses than this many times those asked for: the rest are dropped.
KEEP_FACTOR: Final = 2
KEEP_SLACK: Final = 10_000
# Dropped addresses noted for the answer memo beyond this many: noted as "everything dropped".
MAX_NOTED_DROPS: Final = 50_000
_BITS = {4: 32, 6: 128}
_MISSING = object()


class Unresolvable(Enum):
    """The longest match of a string that is no address (the API validates; a stray one happens)."""

    INVALID = "invalid address"


Match = str | None | Unresolvable


class BatchRibView(Protocol):
    """The optional batch look-up of a RIB view (``topfib.collector.rib.rib.Rib`` has it)."""

    def longest_matches(self, family: int, addresses: Sequence[int]) -> list[str | None]:
        """:meth:`RibView.longest_match` of many addresses of one family, given as ints."""
        ...


def canonical_address(ip: str) -> tuple[int, int] | None:
    """(family, address int) of an address written in the C library's canonical form, else None.

    Only such strings are remembered: ``inet_pton`` and ``ipaddress`` agree on them (a string
    ``inet_ntop`` writes back unchanged is a plain address that ``ipaddress`` parses to the same
    int). Anything else (other spellings, zones, garbage) is left to ``rib.longest_match``.
    """
    family, kind = (6, socket.AF_INET6) if ":" in ip else (4, socket.AF_INET)
    try:
        packed = socket.inet_pton(kind, ip)
    except OSError:
        return None
    if socket.inet_ntop(kind, packed) != ip:
        return None
    return family, int.from_bytes(packed, "big")


class AddressMatches:
    """Longest RIB match per requested address, valid until :meth:`forget_inside` says otherwise.

    Every address it drops is noted until :meth:`take_drops` (the answer memo's invalidation).
    """

    def __init__(self) -> None:
        self._match: dict[str, str | None] = {}
        self._ip_of: dict[int, dict[int, str]] = {4: {}, 6: {}}  # address int → its string
        self._sorted: dict[int, list[int]] = {4: [], 6: []}  # remembered addresses, for bisection
        self._unsorted: dict[int, list[int]] = {4: [], 6: []}  # added since they were last sorted
        self._dropped: list[str] = []  # since the last take_drops
        self._dropped_all = False  # cleared (or too many drops to note) since the last take_drops

    def __len__(self) -> int:
        return len(self._match)

    def __contains__(self, ip: object) -> bool:
        return ip in self._match

    def remembered(self) -> KeysView[str]:
        """The addresses remembered (a live view: ``in`` without a Python call per address)."""
        return self._match.keys()

    def clear(self) -> None:
        self._match.clear()
        for family in _BITS:
            self._ip_of[family].clear()
            self._sorted[family].clear()
            self._unsorted[family].clear()
        self._dropped_all, self._dropped = True, []

    def take_drops(self) -> tuple[bool, list[str]]:
        """(everything dropped, the addresses dropped) since the last call."""
        drops = (self._dropped_all, self._dropped)
        self._dropped_all, self._dropped = False, []
        return drops

    def _note_drops(self, ips: list[str]) -> None:
        if not self._dropped_all:
            self._dropped += ips
            if len(self._dropped) > MAX_NOTED_DROPS:
                self._dropped_all, self._dropped = True, []

    def resolve(self, rib: RibView, ips: list[str], *, prune: bool = True) -> list[Match]:
        """The longest match of each of ``ips`` (:attr:`Unresolvable.INVALID` where
        ``rib.longest_match`` raises ValueError). ``prune``: ``ips`` are all the addresses asked
        for (else the caller prunes, :meth:`oversized`)."""
        found = cast(list[Match | object], list(map(self._match.get, ips, repeat(_MISSING))))
        absent = list(compress(range(len(found)), map(is_, found, repeat(_MISSING))))
        if absent:
            self._resolve_into(rib, ips, absent, found)
        if prune and self.oversized(len(ips)):
            self.keep_only(ips)
        return cast(list[Match], found)

    def oversized(self, asked: int) -> bool:
        """More remembered than ``asked`` addresses warrant: time for :meth:`keep_only`."""
        return len(self._match) > KEEP_FACTOR * asked + KEEP_SLACK

    def _resolve_into(
        self, rib: RibView, ips: list[str], absent: list[int], found: list[Match | object]
    ) -> None:
        batch = cast(Callable[[int, Sequence[int]], list[str | None]] | None,
                     getattr(rib, "longest_matches", None))
        by_family: dict[int, tuple[list[int], list[int]]] = {4: ([], []), 6: ([], [])}
        for index in absent:
            ip = ips[index]
            parsed = canonical_address(ip) if batch is not None else None
            if parsed is None:  # one at a time, as selection always did
                try:
                    found[index] = rib.longest_match(ip)
                except ValueError:
                    found[index] = Unresolvable.INVALID
                    continue
                parsed = canonical_address(ip)
                if parsed is not None:
                    self._remember(ip, parsed[0], parsed[1], cast(str | None, found[index]))
                continue
            positions, addresses = by_family[parsed[0]]
            positions.append(index)
            addresses.append(parsed[1])
        for family, (positions, addresses) in by_family.items():
            if positions:
                assert batch is not None
                matches = batch(family, addresses)
                for index, match in zip(positions, matches, strict=True):
                    found[index] = match
                # remembered in C; an address twice in the batch is in _unsorted twice (harmless)
                resolved = list(map(ips.__getitem__, positions))
                self._match.update(zip(resolved, matches, strict=True))
                self._ip_of[family].update(zip(addresses, resolved, strict=True))
                self._unsorted[family] += addresses

    def _remember(self, ip: str, family: int, address: int, match: str | None) -> None:
        if ip not in self._match:
            self._ip_of[family][address] = ip
            self._unsorted[family].append(address)
        self._match[ip] = match

    def forget_inside(self, family: int, network: int, length: int) -> None:
        """A prefix changed: the remembered addresses inside it may now match otherwise."""
        addresses = self._sorted[family]
        fresh = self._unsorted[family]
        if fresh:
            addresses += fresh
            addresses.sort()  # a sorted run and a short one: merged, not sorted from scratch
            fresh.clear()
        start = bisect.bisect_left(addresses, network)
        end = bisect.bisect_left(addresses, network + (1 << (_BITS[family] - length)), start)
        if start == end:
            return
        ip_of, match = self._ip_of[family], self._match
        dropped = []
        for address in addresses[start:end]:
            ip = ip_of.pop(address, None)
            if ip is not None:  # None: the same address listed twice, dropped already
                del match[ip]
                dropped.append(ip)
        del addresses[start:end]
        self._note_drops(dropped)

    def keep_only(self, ips: list[str]) -> None:
        """Forget every address but ``ips``."""
        wanted = set(ips)
        self._note_drops([ip for ip in self._match if ip not in wanted])
        for family in _BITS:
            ip_of = self._ip_of[family]
            self._ip_of[family] = {a: ip for a, ip in ip_of.items() if ip in wanted}
            self._sorted[family] = sorted(self._ip_of[family])
            self._unsorted[family] = []
        self._match = {ip: m for ip, m in self._match.items() if ip in wanted}
