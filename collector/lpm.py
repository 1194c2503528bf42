"""Longest-prefix match over a changing set of prefixes (IPv4 and IPv6).

Reference implementation: one dict per prefix length. The RIB work replaces its internals with a
faster batched structure; the public methods below are the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from collector.prefixes import IPV4, parse_address, parse_prefix


class LpmTable:
    """Prefixes of both families; ``lookup`` returns the longest matching prefix string."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        self._by_len: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        self._count = 0
        for prefix in prefixes:
            self.add(prefix)

    def __len__(self) -> int:
        return self._count

    def add(self, prefix: str) -> None:
        family, network, length = parse_prefix(prefix)
        table = self._by_len[family].setdefault(length, {})
        if network not in table:
            self._count += 1
        table[network] = prefix

    def remove(self, prefix: str) -> None:
        family, network, length = parse_prefix(prefix)
        table = self._by_len[family].get(length)
        if table is not None and table.pop(network, None) is not None:
            self._count -= 1
            if not table:
                del self._by_len[family][length]

    def lookup_int(self, family: int, address: int) -> str | None:
        bits = 32 if family == IPV4 else 128
        for length in sorted(self._by_len[family], reverse=True):
            hit = self._by_len[family][length].get(address >> (bits - length) << (bits - length))
            if hit is not None:
                return hit
        return None

    def lookup(self, address: str) -> str | None:
        family, value = parse_address(address)
        return self.lookup_int(family, value)

    def lookup_batch(self, family: int, addresses: Sequence[int]) -> list[str | None]:
        return [self.lookup_int(family, a) for a in addresses]


class LpmIndex:
    """Contract for batched lookups used by accounting: prefix ids instead of strings.

    ``lookup_v4_ids`` / ``lookup_v6_ids`` return an int64 array with the id of the longest match
    for each address, -1 when none; ``prefix_of_id`` maps an id back to its prefix string. Ids
    are stable for as long as the prefix stays in the table.
    """
