"""Where one switch's per-path rates are stored, and how a batch's samples find their slots.

A path (prefix, next hop) has a slot in the decayed-sum arrays. Samples arrive as (LPM prefix id,
next-hop id) pairs; two caches map them to slots without sorting the batch:

- the *primary* cache, dense by prefix id: one (next-hop id, slot) per prefix, the first path
  seen for it. Most prefixes carry traffic on one path, so most samples find their slot with two
  gathers;
- the *key* cache, sorted (prefix id << HOP_BITS | next-hop id) keys and their slots, searched in
  numpy, for the other samples (the first sight of a prefix, a prefix's other paths).

Both hold for one naming of the ids (see :class:`PathRates`); a released slot (pruned, evicted,
forgotten) leaves both before the next batch is accounted (:meth:`SwitchPaths.filter_cache`).
:meth:`SwitchPaths.group` then numbers the batch's distinct slots with a scatter and a gather
(no sort), so the per-path sums are the ``bincount`` sums of a sort-based grouping, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from topfib.collector.accounting.decayed_rates import Decay

IntArray = npt.NDArray[np.int64]

HOP_BITS = 24  # next-hop ids below 2^24 (the attribution bounds its table far below)
_INITIAL_IDS = 1024


@dataclass
class SwitchPaths:
    fast: Decay
    slow: Decay
    first_seen: float
    path_of_slot: list[tuple[str, str] | None] = field(default_factory=list)
    slot_of_path: dict[tuple[str, str], int] = field(default_factory=dict)
    slots_of_prefix: dict[str, dict[str, int]] = field(default_factory=dict)  # prefix → next hop → slot
    free_slots: list[int] = field(default_factory=list)
    naming: object = None  # the naming the caches were built for
    # id pair key → slot cache: sorted keys and their slots (searched in numpy)
    cache_keys: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    cache_slots: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    # per prefix id: its primary path's next-hop id (-1: none) and slot
    primary_hop: IntArray = field(default_factory=lambda: np.full(_INITIAL_IDS, -1, np.int64))
    primary_slot: IntArray = field(default_factory=lambda: np.full(_INITIAL_IDS, -1, np.int64))
    # per slot, scratch for group(): its contents never need resetting
    scratch: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    released: list[int] = field(default_factory=list)  # slots freed since the caches were filtered

    def clear_cache(self) -> None:
        self.cache_keys = np.empty(0, np.int64)
        self.cache_slots = np.empty(0, np.int64)
        self.primary_hop[:] = -1
        self.released.clear()

    def filter_cache(self) -> None:
        """Drop cached keys whose slot was freed (it may now hold another path)."""
        if self.released:
            freed = np.array(self.released, np.int64)
            keep = ~np.isin(self.cache_slots, freed)
            self.cache_keys, self.cache_slots = self.cache_keys[keep], self.cache_slots[keep]
            self.primary_hop[np.isin(self.primary_slot, freed)] = -1
            self.released.clear()

    def cached(self, keys: IntArray) -> IntArray:
        """The cached slot of each key, -1 when not cached."""
        if not len(self.cache_keys):
            return np.full(len(keys), -1, np.int64)
        position = np.minimum(np.searchsorted(self.cache_keys, keys), len(self.cache_keys) - 1)
        return np.where(self.cache_keys[position] == keys, self.cache_slots[position], -1)

    def remember(self, keys: IntArray, slots: IntArray) -> None:
        merged_keys = np.concatenate((self.cache_keys, keys))
        order = np.argsort(merged_keys, kind="stable")
        self.cache_keys = merged_keys[order]
        self.cache_slots = np.concatenate((self.cache_slots, slots))[order]

    def primary_slots(self, prefix_ids: IntArray, hop_ids: IntArray) -> IntArray:
        """Each sample's slot by its prefix's primary path, -1 where that is not its path."""
        highest = int(prefix_ids.max())
        if highest >= len(self.primary_hop):
            size = max(highest + 1, 2 * len(self.primary_hop))
            self.primary_hop = _grown(self.primary_hop, size)
            self.primary_slot = _grown(self.primary_slot, size)
        return np.where(self.primary_hop[prefix_ids] == hop_ids, self.primary_slot[prefix_ids], -1)

    def set_primaries(self, keys: IntArray, slots: IntArray) -> None:
        """Make the first of ``keys`` (sorted, distinct) of each prefix without one its primary."""
        prefix_ids = keys >> HOP_BITS
        first = np.ones(len(keys), np.bool_)
        first[1:] = prefix_ids[1:] != prefix_ids[:-1]
        first &= self.primary_hop[prefix_ids] < 0
        self.primary_hop[prefix_ids[first]] = keys[first] & ((1 << HOP_BITS) - 1)
        self.primary_slot[prefix_ids[first]] = slots[first]

    def group(self, slots: IntArray) -> tuple[IntArray, IntArray]:
        """(distinct slots, each sample's index into them), in linear time: each slot's scratch
        cell names one of its samples, which becomes the representative of its group."""
        if len(self.scratch) < self.capacity:
            self.scratch = np.zeros(self.capacity, np.int64)
        scratch = self.scratch
        order = np.arange(len(slots), dtype=np.int64)
        scratch[slots] = order  # duplicates: one of them is stored, whichever it is
        representatives = np.flatnonzero(scratch[slots] == order)
        distinct = slots[representatives]
        scratch[distinct] = np.arange(len(distinct), dtype=np.int64)
        return distinct, scratch[slots]

    @property
    def capacity(self) -> int:
        return int(self.fast.values.shape[1])


def _grown(values: IntArray, size: int) -> IntArray:
    grown = np.full(size, -1, np.int64)
    grown[: len(values)] = values
    return grown
