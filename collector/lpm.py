"""Longest-prefix match over a changing set of prefixes (IPv4 and IPv6).

Reference implementation: one dict per prefix length. The RIB work replaces its internals with a
faster batched structure; the public methods below are the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from collector.prefixes import IPV4, parse_address, parse_prefix


class LpmTable:
    """Prefixes of both families; ``lookup`` returns the longest matching prefix string."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        self._by_len: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        self._count = 0
        self._ids: dict[str, int] = {}
        self._prefix_by_id: list[str] = []
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

    # Batched lookups for accounting: ids instead of strings. An id is stable for as long as
    # its prefix stays in the table; -1 means no match.

    def _id_of(self, prefix: str | None) -> int:
        if prefix is None:
            return -1
        found = self._ids.get(prefix)
        if found is None:
            found = len(self._prefix_by_id)
            self._ids[prefix] = found
            self._prefix_by_id.append(prefix)
        return found

    def prefix_of_id(self, prefix_id: int) -> str:
        return self._prefix_by_id[prefix_id]

    def lookup_v4_ids(self, addresses: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
        return np.array([self._id_of(self.lookup_int(4, int(a))) for a in addresses], dtype=np.int64)

    def lookup_v6_ids(
        self, high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint64]
    ) -> npt.NDArray[np.int64]:
        pairs = zip(high, low, strict=True)
        return np.array(
            [self._id_of(self.lookup_int(6, (int(h) << 64) | int(lo))) for h, lo in pairs], dtype=np.int64
        )

