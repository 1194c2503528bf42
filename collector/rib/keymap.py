"""An insert-only map from IPv4 prefixes (network, length) to prefix ids, 4 bytes a slot.

A dict of a million int keys holds a million key objects, a million value objects and ~40 bytes
of table per entry (~100 MB). Here one flat array (open addressing, linear probing, at most 70 %
full) holds per slot ``(id + 1) << 6 | length`` (0 = empty): the network is not stored again,
the owner's per-id network array already names it (so a full table's map is 8 MB, where a key and
a value per slot took 24). A probe compares the length in the slot, then the id's network.
Keys are never removed: an LPM id names one prefix for the life of its table, so the map only
grows. Ids are below 2**26 (also the limit of the DIR-24 change buffer's packing).

Thread safety (readers on other threads, one writer): the owner writes an id's network before
the id is inserted, and a grown slot array is published as one assignment, so a reader sees
either no entry or a complete one.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable
from typing import TypeAlias

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads consecutive networks over the table
_MASK64 = (1 << 64) - 1
_MAX_LOAD = 0.7
LENGTH_BITS = 6
MAX_ID = (1 << (32 - LENGTH_BITS)) - 2  # id + 1 must fit the slot's upper 26 bits
REBUILD_HINT = "rebuild it: pip install -e . (or scripts/setup.sh)"

log = logging.getLogger(__name__)


class IdSpaceExhausted(OverflowError):
    """Every prefix id up to :data:`MAX_ID` is taken: the table cannot hold another prefix."""

    def __init__(self, prefix_id: int, max_id: int) -> None:
        super().__init__(f"prefix id space exhausted: id {prefix_id} is past the limit of "
                         f"{max_id + 1} prefix ids (ids are never reused)")
        self.max_id = max_id


# (slots: (id + 1) << 6 | length per slot, 0 = empty; hash shift)
Table: TypeAlias = "tuple[array[int], int]"


def _slots(size: int) -> array[int]:
    """``size`` zero slots, allocated exactly (from bytes, an array over-allocates by 1/16)."""
    return array("I", [0]) * size


def _empty(bits: int) -> Table:
    return _slots(1 << bits), 64 - bits


def _home(network: int, length: int, shift: int) -> int:
    return ((((network << 8) | length) + 1) * _GOLDEN & _MASK64) >> shift


def probe_py(table: Table, networks: array[int], network: int, length: int) -> int:
    """The id of (network, length) in ``table``, -1 if none (the reference of the C ``probe``)."""
    slots, shift = table
    mask = len(slots) - 1
    index = _home(network, length, shift)
    while True:
        slot = slots[index]
        if not slot:
            return -1
        if slot & 63 == length and networks[(slot >> LENGTH_BITS) - 1] == network:
            return (slot >> LENGTH_BITS) - 1
        index = (index + 1) & mask


def place_py(table: Table, network: int, length: int, prefix_id: int) -> None:
    """Store (network, length) → ``prefix_id`` (not in ``table`` yet) in its first free slot
    (the reference of the C ``place``)."""
    slots, shift = table
    mask = len(slots) - 1
    index = _home(network, length, shift)
    while slots[index]:
        index = (index + 1) & mask
    slots[index] = ((prefix_id + 1) << LENGTH_BITS) | length


_probe: Callable[[Table, array[int], int, int], int]
_place: Callable[[Table, int, int, int], None]
SLOT_LAYOUT = 2  # (id + 1) << 6 | length; a C build of another layout is not used
try:  # the same probes in C (collector/rib/_keymap_fast.c): the RIB probes once per update's prefix
    from topfib.collector.rib import _keymap_fast

    built_layout = getattr(_keymap_fast, "SLOT_LAYOUT", None)
    if built_layout != SLOT_LAYOUT:
        # a stale build works, slowly, through the Python probes: say so once, with the fix
        log.warning("_keymap_fast was built for slot layout %s, not %s: using the slower Python "
                    "probes; %s", built_layout, SLOT_LAYOUT, REBUILD_HINT)
        raise ImportError("_keymap_fast was built for another slot layout")
    _probe, _place = _keymap_fast.probe, _keymap_fast.place
except ImportError:  # pragma: no cover - built by setup.py (optional)
    _probe, _place = probe_py, place_py


class KeyIds:
    """(network, length) → id (0 ≤ id ≤ MAX_ID, length < 64); a missing prefix reads as -1.

    ``networks`` is the owner's array of each id's network (uint32), written before an insert.
    """

    def __init__(self, networks: array[int]) -> None:
        self._networks = networks
        self._table: Table = _empty(10)  # replaced whole when it grows
        self._count = 0
        self._limit = int(_MAX_LOAD * 1024)  # entries allowed before the table grows

    def __len__(self) -> int:
        return self._count

    def get(self, network: int, length: int) -> int:
        return _probe(self._table, self._networks, network, length)

    def insert(self, network: int, length: int, prefix_id: int) -> None:
        """Add a prefix that is not in the map yet (the caller checked with :meth:`get`), whose
        network ``networks[prefix_id]`` already holds."""
        if not 0 <= prefix_id <= MAX_ID:
            raise IdSpaceExhausted(prefix_id, MAX_ID)
        if self._count >= self._limit:
            self._grow()
        _place(self._table, network, length, prefix_id)
        self._count += 1

    def _grow(self) -> None:
        """Rehash into twice the slots, vectorised: in rounds, every key not placed yet claims its
        current slot if free (one winner per slot), the others move on one slot, so every slot
        between a key's home and its place is taken, as lookups need."""
        old_slots, shift = self._table
        shift -= 1
        stored = np.frombuffer(old_slots, dtype=np.uint32)  # old arrays never change size: a safe view
        stored = stored[stored != 0]
        lengths = (stored & np.uint32(63)).astype(np.uint64)
        networks = np.frombuffer(self._networks, dtype=np.uint32)[(stored >> np.uint32(LENGTH_BITS)) - 1]
        keys = ((networks.astype(np.uint64) << np.uint64(8)) | lengths) + np.uint64(1)
        size = 1 << (64 - shift)
        slots = np.zeros(size, dtype=np.uint32)
        target = (keys * np.uint64(_GOLDEN)) >> np.uint64(shift)  # wraps mod 2**64, as _home's mask
        del networks, lengths, keys
        waiting = np.arange(stored.size)
        while waiting.size:
            at = target[waiting]
            free = slots[at] == 0
            claim, first = np.unique(at[free], return_index=True)
            winners = waiting[np.flatnonzero(free)[first]]
            slots[claim] = stored[winners]
            placed = np.zeros(stored.size, dtype=bool)
            placed[winners] = True
            waiting = waiting[~placed[waiting]]
            target[waiting] = (target[waiting] + np.uint64(1)) & np.uint64(size - 1)
        grown = _slots(size)
        np.frombuffer(grown, dtype=np.uint32)[:] = slots  # a temporary view: grown stays resizable
        # one assignment: readers see the old table or the whole new one
        self._table = (grown, shift)
        self._limit = int(_MAX_LOAD * size)
