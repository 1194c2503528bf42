"""An insert-only map from integer keys to prefix ids, without a Python object per entry.

A dict of a million int keys holds a million key objects, a million value objects and ~40 bytes
of table per entry (~100 MB); here two flat arrays (open addressing, linear probing) hold 12
bytes per slot, at most 70 % full. Keys are never removed: an LPM id names one prefix for the
life of its table, so the map only grows.

Thread safety (readers on other threads, one writer): the slot and value arrays of a size are
published together as one tuple, and a new key's value is written before its key, so a reader
sees either no entry or a complete one.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import TypeAlias

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads consecutive networks over the table
_MASK64 = (1 << 64) - 1
_MAX_LOAD = 0.7

# (slots: key + 1 per slot, 0 = empty; values; hash shift)
Table: TypeAlias = "tuple[array[int], array[int], int]"


def _empty(bits: int) -> Table:
    size = 1 << bits
    return array("Q", bytes(8 * size)), array("i", bytes(4 * size)), 64 - bits


def probe_py(table: Table, key: int) -> int:
    """The id stored for ``key`` in ``table``, -1 if none (the reference of the C ``probe``)."""
    slots, values, shift = table
    stored = key + 1
    mask = len(slots) - 1
    index = ((stored * _GOLDEN) & _MASK64) >> shift
    while True:
        found = slots[index]
        if found == stored:
            return values[index]
        if not found:
            return -1
        index = (index + 1) & mask


def place_py(table: Table, key: int, value: int) -> None:
    """Store ``key`` (not in ``table`` yet) in its first free slot (the reference of the C ``place``)."""
    slots, values, shift = table
    stored = key + 1
    mask = len(slots) - 1
    index = ((stored * _GOLDEN) & _MASK64) >> shift
    while slots[index]:
        index = (index + 1) & mask
    values[index] = value  # the value first: a reader that finds the key finds its value
    slots[index] = stored


_probe: Callable[[Table, int], int]
_place: Callable[[Table, int, int], None]
try:  # the same probes in C (collector/rib/_keymap_fast.c): the RIB probes once per update's prefix
    from topfib.collector.rib._keymap_fast import place as _place
    from topfib.collector.rib._keymap_fast import probe as _probe
except ImportError:  # pragma: no cover - built by setup.py (optional)
    _probe, _place = probe_py, place_py


class KeyIds:
    """``key`` (0 ≤ key < 2**64 - 1) → id (0 ≤ id < 2**31); a missing key reads as -1."""

    def __init__(self) -> None:
        # replaced whole when it grows
        self._table: Table = _empty(10)
        self._count = 0
        self._limit = int(_MAX_LOAD * 1024)  # entries allowed before the table grows

    def __len__(self) -> int:
        return self._count

    def get(self, key: int) -> int:
        return _probe(self._table, key)

    def insert(self, key: int, value: int) -> None:
        """Add a key that is not in the map yet (the caller checked with :meth:`get`)."""
        if self._count >= self._limit:
            self._grow()
        _place(self._table, key, value)
        self._count += 1

    def _grow(self) -> None:
        """Rehash into twice the slots, vectorised: in rounds, every key not placed yet claims its
        current slot if free (one winner per slot), the others move on one slot, so every slot
        between a key's home and its place is taken, as lookups need."""
        old_slots, old_values, shift = self._table
        shift -= 1
        keys = np.frombuffer(old_slots, dtype=np.uint64)  # old arrays never change size: safe views
        occupied = np.flatnonzero(keys)
        keys, ids = keys[occupied], np.frombuffer(old_values, dtype=np.int32)[occupied]
        size = 1 << (64 - shift)
        slots = np.zeros(size, dtype=np.uint64)
        values = np.zeros(size, dtype=np.int32)
        target = (keys * np.uint64(_GOLDEN)) >> np.uint64(shift)  # wraps mod 2**64, as _place's mask
        waiting = np.arange(keys.size)
        while waiting.size:
            at = target[waiting]
            free = slots[at] == 0
            claim, first = np.unique(at[free], return_index=True)
            winners = waiting[np.flatnonzero(free)[first]]
            slots[claim], values[claim] = keys[winners], ids[winners]
            placed = np.zeros(keys.size, dtype=bool)
            placed[winners] = True
            waiting = waiting[~placed[waiting]]
            target[waiting] = (target[waiting] + np.uint64(1)) & np.uint64(size - 1)
        # one assignment: readers see the old table or the whole new one
        self._table = (array("Q", slots.tobytes()), array("i", values.tobytes()), shift)
        self._limit = int(_MAX_LOAD * size)
