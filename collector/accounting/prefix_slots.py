"""Where one switch's per-prefix rates are stored: a slot per prefix in the decayed-sum arrays.

Slot 0 is the unrouted traffic; a forgotten prefix's slot is reused. Prefix ids from
:class:`~topfib.collector.rib.lpm.LpmTable` batch lookups map to slots through an id → slot cache,
so accounting a batch stays in numpy (one fancy-index and one ``np.add.at`` per row per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from topfib.collector.accounting.decayed_rates import BYTES, PACKETS, SAMPLES, Decay, FloatArray
from topfib.collector.rib.lpm import LpmTable

UNROUTED = "unrouted"  # the name reported for traffic with no RIB match (it follows the default route)
UNROUTED_SLOT = 0
INITIAL_CAPACITY = 1024

IntArray = npt.NDArray[np.int64]


@dataclass
class SwitchRates:
    """One switch's fast and slow decayed sums, and which prefix each slot holds."""

    fast: Decay
    slow: Decay
    first_seen: float
    slot_of_prefix: dict[str, int] = field(default_factory=dict)
    prefix_of_slot: list[str | None] = field(default_factory=lambda: [UNROUTED])
    free_slots: list[int] = field(default_factory=list)
    # id → slot cache for one LpmTable: slot_of_id[id + 1] (index 0 is "no match"), -1 unresolved
    cached_lpm: LpmTable | None = None
    slot_of_id: IntArray = field(default_factory=lambda: np.zeros(1, np.int64))
    id_of_slot: IntArray = field(default_factory=lambda: np.full(INITIAL_CAPACITY, -1, np.int64))

    @property
    def capacity(self) -> int:
        return int(self.fast.values.shape[1])

    def name(self, slot: int) -> str:
        prefix = self.prefix_of_slot[slot]
        assert prefix is not None, "a free slot has no traffic"
        return prefix

    def slot_for(self, prefix: str) -> int:
        slot = self.slot_of_prefix.get(prefix)
        if slot is None:
            slot = self.allocate([prefix])[0]
        return slot

    def allocate(self, prefixes: list[str]) -> list[int]:
        """Slots for prefixes that have none (free slots first, then new ones at the end)."""
        reused = self.free_slots[-len(prefixes) :] if prefixes else []
        del self.free_slots[len(self.free_slots) - len(reused) :]
        for slot, prefix in zip(reused, prefixes, strict=False):
            self.prefix_of_slot[slot] = prefix
        start = len(self.prefix_of_slot)
        self.prefix_of_slot.extend(prefixes[len(reused) :])
        slots = reused + list(range(start, len(self.prefix_of_slot)))
        if len(self.prefix_of_slot) > self.capacity:
            capacity = max(self.capacity * 2, len(self.prefix_of_slot))
            self.fast.grow(capacity)
            self.slow.grow(capacity)
            grown = np.full(capacity, -1, np.int64)
            grown[: len(self.id_of_slot)] = self.id_of_slot
            self.id_of_slot = grown
        self.slot_of_prefix.update(zip(prefixes, slots, strict=True))
        return slots

    def accumulate(
        self,
        slots: IntArray,
        nbytes: FloatArray,
        npackets: FloatArray,
        samples: FloatArray,
        now: float,
    ) -> None:
        """Add one batch, per element: its slot, bytes, packets and samples."""
        for decay in (self.fast, self.slow):
            weight = decay.weight(now)
            np.add.at(decay.values[BYTES], slots, nbytes * weight)
            np.add.at(decay.values[PACKETS], slots, npackets * weight)
            np.add.at(decay.values[SAMPLES], slots, samples * weight)
            # each sample has weight w: Σw² gains w² per sample
            np.add.at(decay.squares, slots, samples * (weight * weight))
            decay.total += weight * np.array([nbytes.sum(), npackets.sum(), samples.sum()])
            decay.total_squares += weight * weight * float(samples.sum())

    def slots_of_ids(self, lpm: LpmTable, prefix_ids: IntArray) -> IntArray:
        """The slot of each id of ``lpm`` (-1: unrouted), allocating slots for new prefixes."""
        if self.cached_lpm is not lpm:
            # a new table object (RIB reload): its ids mean other prefixes
            self.cached_lpm = lpm
            self.slot_of_id = np.full(1024, -1, np.int64)
            self.slot_of_id[0] = UNROUTED_SLOT
            self.id_of_slot[:] = -1
        index = prefix_ids.astype(np.int64, copy=False) + 1
        highest = int(index.max())
        if highest >= len(self.slot_of_id):
            grown = np.full(max(highest + 1, 2 * len(self.slot_of_id)), -1, np.int64)
            grown[: len(self.slot_of_id)] = self.slot_of_id
            self.slot_of_id = grown
        slots = self.slot_of_id[index]
        unresolved = slots < 0
        if unresolved.any():
            # ids seen for the first time: name them in one pass, then they stay cached
            new_index = np.unique(index[unresolved])
            names = list(map(lpm.prefix_of_id, (new_index - 1).tolist()))
            known = self.slot_of_prefix
            found = [known.get(name, -1) for name in names]
            fresh = [name for name, slot in zip(names, found, strict=True) if slot < 0]
            fresh_slots = iter(self.allocate(fresh))
            new_slots = np.array([slot if slot >= 0 else next(fresh_slots) for slot in found], np.int64)
            self.slot_of_id[new_index] = new_slots
            self.id_of_slot[new_slots] = new_index - 1
            slots = self.slot_of_id[index]
        return slots

    def release(self, slot: int) -> None:
        """Free a slot (its prefix already dropped from ``slot_of_prefix``)."""
        for decay in (self.fast, self.slow):
            decay.values[:, slot] = 0.0
            decay.squares[slot] = 0.0
        self.prefix_of_slot[slot] = None
        self.free_slots.append(slot)
        prefix_id = int(self.id_of_slot[slot])
        if prefix_id >= 0:
            self.slot_of_id[prefix_id + 1] = -1
            self.id_of_slot[slot] = -1
