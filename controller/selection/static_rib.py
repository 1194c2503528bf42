"""An immutable in-memory RIB: prefix → paths, with the lookups selection needs.

The simulator and the tests use it; the service uses the collector's live RIB. Both fit
:class:`topfib.controller.selection.model.RibView`. Prefixes are kept sorted by (network, length) per
family, so the more-specifics of P are one contiguous run found by bisection: cost is
proportional to the answer, not to the table.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence

from topfib.collector.common.prefixes import IPV4, parse_address, split_prefix
from topfib.collector.rib.paths import BgpPath, best_path

_LENGTH_BITS = 8  # a sort key is network << 8 | length (length ≤ 128 fits)


class StaticRib:
    """Best paths of a fixed set of prefixes (both families)."""

    def __init__(self, routes: Mapping[str, Sequence[BgpPath]]) -> None:
        """``routes``: prefix → its paths (a prefix without paths is left out)."""
        self._best: dict[str, BgpPath] = {}
        # prefix → (family, network, length, index in its family's sorted list)
        self._position: dict[str, tuple[int, int, int, int]] = {}
        entries: dict[int, list[tuple[int, str]]] = {4: [], 6: []}
        self._by_length: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        for prefix, paths in routes.items():
            best = paths[0] if len(paths) == 1 else best_path(list(paths))
            if best is None:
                continue
            family, network, length = split_prefix(prefix)
            self._best[prefix] = best
            entries[family].append(((network << _LENGTH_BITS) | length, prefix))
            self._by_length[family].setdefault(length, {})[network] = prefix
        self._keys: dict[int, list[int]] = {}
        self._prefixes: dict[int, list[str]] = {}
        for family, rows in entries.items():
            rows.sort()
            self._keys[family] = [key for key, _ in rows]
            self._prefixes[family] = [prefix for _, prefix in rows]
            for index, (key, prefix) in enumerate(rows):
                self._position[prefix] = (family, key >> _LENGTH_BITS, key & 0xFF, index)
        self._lengths = {f: sorted(table, reverse=True) for f, table in self._by_length.items()}

    def __len__(self) -> int:
        return len(self._best)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._best

    def __iter__(self) -> Iterator[str]:
        """Prefixes in prefix order (IPv4 first, then by network and length)."""
        yield from self._prefixes[4]
        yield from self._prefixes[6]

    def best(self, prefix: str) -> BgpPath | None:
        return self._best.get(prefix)

    def longest_match(self, ip: str) -> str | None:
        family, address = parse_address(ip)
        bits = 32 if family == IPV4 else 128
        for length in self._lengths[family]:
            shift = bits - length
            found = self._by_length[family][length].get(address >> shift << shift)
            if found is not None:
                return found
        return None

    def more_specifics(self, prefix: str) -> list[str]:
        position = self._position.get(prefix)
        keys = self._keys[4]
        if position is not None:
            family, network, length, index = position
            keys = self._keys[family]
            start = index + 1
        else:
            family, network, length = split_prefix(prefix)
            keys = self._keys[family]
            start = bisect.bisect_left(keys, (network << _LENGTH_BITS) | (length + 1))
        bits = 32 if family == IPV4 else 128
        limit = (network + (1 << (bits - length))) << _LENGTH_BITS
        if start >= len(keys) or keys[start] >= limit:
            return []  # most prefixes: nothing inside, no search needed
        end = bisect.bisect_left(keys, limit, lo=start)
        return self._prefixes[family][start:end]
