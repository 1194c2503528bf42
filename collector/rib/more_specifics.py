"""Which prefixes lie inside a prefix: a sorted key index with a small overlay for churn.

A key is ``network << 8 | length``. Sorted by key, the more-specifics of P are one contiguous run,
from ``P.network << 8 | (P.length + 1)`` to ``P.last_address << 8 | 255``: two binary searches,
cost proportional to the answer.

Rebuilding the sorted base for a full table takes about a second, and BGP changes a few routes
every second, so changes since the last rebuild go to an overlay instead (a sorted list of added
keys, a set of removed ones) that queries merge in; the base is rebuilt only when the overlay
grows past :data:`MAX_OVERLAY`.

The base holds only the ids, sorted by key (4 bytes a prefix): the table's per-id arrays already
say each id's network and length, so a binary search computes the key of the ids it visits
(``key_of``) instead of reading a second copy (8 more bytes a prefix for a full table's IPv4).
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Callable, Iterable

import numpy as np

from topfib.collector.rib.heap import BULK, trim_heap

MAX_OVERLAY = 20_000
KeyIdPairs = Callable[[], Iterable[tuple[int, int]]]
KeyOf = Callable[[int], int]


def id_key(networks: array[int], lengths: array[int], wide_networks: dict[int, int] | None) -> KeyOf:
    """An id's key from a table's per-id arrays: IPv4 networks and lengths, or (``wide_networks``)
    IPv6 networks by id and lengths + 256. The arrays only, not the table: no reference cycle."""
    if wide_networks is None:
        return lambda prefix_id: (networks[prefix_id] << 8) | lengths[prefix_id]
    return lambda prefix_id: (wide_networks[prefix_id] << 8) | (lengths[prefix_id] - 256)


class MoreSpecificsIndex:
    """Ids of one family by key. ``wide`` keys (IPv6, 136 bits) are sorted as Python ints, IPv4
    keys (40 bits) in numpy; either way only the ids are kept (they fit 32 bits: see dir24)."""

    def __init__(self, wide: bool, pairs: KeyIdPairs, key_of: KeyOf) -> None:
        self._wide = wide
        self._pairs = pairs
        self._key_of = key_of
        self._base: array[int] | None = None  # ids in key order; None: to rebuild
        self._added_keys: list[int] = []
        self._added_ids: dict[int, int] = {}
        self._removed: set[int] = set()

    def added(self, key: int, prefix_id: int) -> None:
        if self._base is None:
            return
        if key in self._removed:
            self._removed.discard(key)  # back as it was in the base (ids are stable)
        elif key not in self._added_ids:
            bisect.insort(self._added_keys, key)
            self._added_ids[key] = prefix_id
            self._check_overlay()

    def removed(self, key: int) -> None:
        if self._base is None:
            return
        if key in self._added_ids:
            del self._added_ids[key]
            del self._added_keys[bisect.bisect_left(self._added_keys, key)]
        else:
            self._removed.add(key)
            self._check_overlay()

    def _check_overlay(self) -> None:
        if len(self._added_ids) + len(self._removed) > MAX_OVERLAY:
            self._base = None  # cheaper to rebuild than to merge a big overlay per query

    def _rebuild(self) -> None:
        self._added_keys, self._added_ids, self._removed = [], {}, set()
        if self._wide:
            self._base = array("i", [prefix_id for _, prefix_id in sorted(self._pairs())])
            return
        flat = np.fromiter((value for pair in self._pairs() for value in pair), dtype=np.int64)
        keys, ids = flat[0::2], flat[1::2]
        base = array("i")
        base.frombytes(ids[np.argsort(keys)].astype(np.int32).tobytes())
        self._base = base
        if keys.size >= BULK:
            del flat, keys, ids
            trim_heap()

    def between(self, first: int, last: int) -> list[int]:
        """Ids of the keys in [first, last], in key order."""
        if self._base is None:
            self._rebuild()
        base, key_of = self._base, self._key_of
        assert base is not None
        start = bisect.bisect_left(base, first, key=key_of)
        ids = base[start:bisect.bisect_right(base, last, start, key=key_of)]
        if not self._removed and not self._added_keys:
            return ids.tolist()
        kept = [(key, prefix_id) for key, prefix_id in zip(map(key_of, ids), ids, strict=True)
                if key not in self._removed]
        lo, hi = bisect.bisect_left(self._added_keys, first), bisect.bisect_right(self._added_keys, last)
        extra = [(k, self._added_ids[k]) for k in self._added_keys[lo:hi]]
        return [prefix_id for _, prefix_id in heapq.merge(kept, extra)]
