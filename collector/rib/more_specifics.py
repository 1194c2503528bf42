"""Which prefixes lie inside a prefix: a sorted key index with a small overlay for churn.

A key is ``network << 8 | length``. Sorted by key, the more-specifics of P are one contiguous run,
from ``P.network << 8 | (P.length + 1)`` to ``P.last_address << 8 | 255``: two binary searches,
cost proportional to the answer.

Rebuilding the sorted base for a full table takes about a second, and BGP changes a few routes
every second, so changes since the last rebuild go to an overlay instead (a sorted list of added
keys, a set of removed ones) that queries merge in; the base is rebuilt only when the overlay
grows past :data:`MAX_OVERLAY`.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from topfib.collector.rib.heap import BULK, trim_heap

MAX_OVERLAY = 20_000
KeyIdPairs = Callable[[], Iterable[tuple[int, int]]]


class MoreSpecificsIndex:
    """Keys and ids of one family. ``wide`` keys (IPv6, 136 bits) live in Python lists; IPv4 keys
    (40 bits) in numpy arrays, 12 bytes a prefix (ids fit 32 bits: see dir24's 26-bit ids)."""

    def __init__(self, wide: bool, pairs: KeyIdPairs) -> None:
        self._wide = wide
        self._pairs = pairs
        self._base_keys: npt.NDArray[np.uint64] | list[int] | None = None
        self._base_ids: npt.NDArray[np.int32] | list[int] = []
        self._added_keys: list[int] = []
        self._added_ids: dict[int, int] = {}
        self._removed: set[int] = set()

    def added(self, key: int, prefix_id: int) -> None:
        if self._base_keys is None:
            return
        if key in self._removed:
            self._removed.discard(key)  # back as it was in the base (ids are stable)
        elif key not in self._added_ids:
            bisect.insort(self._added_keys, key)
            self._added_ids[key] = prefix_id
            self._check_overlay()

    def removed(self, key: int) -> None:
        if self._base_keys is None:
            return
        if key in self._added_ids:
            del self._added_ids[key]
            del self._added_keys[bisect.bisect_left(self._added_keys, key)]
        else:
            self._removed.add(key)
            self._check_overlay()

    def _check_overlay(self) -> None:
        if len(self._added_ids) + len(self._removed) > MAX_OVERLAY:
            self._base_keys = None  # cheaper to rebuild than to merge a big overlay per query

    def _rebuild(self) -> None:
        self._added_keys, self._added_ids, self._removed = [], {}, set()
        if self._wide:
            ordered = sorted(self._pairs())
            self._base_keys = [key for key, _ in ordered]
            self._base_ids = [prefix_id for _, prefix_id in ordered]
            return
        flat = np.fromiter((value for pair in self._pairs() for value in pair), dtype=np.int64)
        keys, ids = flat[0::2].astype(np.uint64), flat[1::2].astype(np.int32)
        order = np.argsort(keys)
        self._base_keys, self._base_ids = keys[order], ids[order]
        if keys.size >= BULK:
            del flat, keys, ids, order
            trim_heap()

    def between(self, first: int, last: int) -> list[int]:
        """Ids of the keys in [first, last], in key order."""
        if self._base_keys is None:
            self._rebuild()
        base_keys, base_ids = self._base_keys, self._base_ids
        assert base_keys is not None
        if isinstance(base_keys, list):
            start, end = bisect.bisect_left(base_keys, first), bisect.bisect_right(base_keys, last)
        else:
            start = int(np.searchsorted(base_keys, np.uint64(first)))
            end = int(np.searchsorted(base_keys, np.uint64(last), side="right"))
        ids = list(base_ids[start:end]) if isinstance(base_ids, list) else base_ids[start:end].tolist()
        if not self._removed and not self._added_keys:
            return ids  # the keys are needed only to merge the overlay in (a full table's are 1M ints)
        keys = base_keys[start:end] if isinstance(base_keys, list) else base_keys[start:end].tolist()
        base = [(k, i) for k, i in zip(keys, ids, strict=True) if k not in self._removed]
        lo, hi = bisect.bisect_left(self._added_keys, first), bisect.bisect_right(self._added_keys, last)
        extra = [(k, self._added_ids[k]) for k in self._added_keys[lo:hi]]
        return [prefix_id for _, prefix_id in heapq.merge(base, extra)]
