"""DIR-24 for IPv4 longest-prefix match (as in Gupta/Lin/McKeown's DIR-24-8): one int32 per /24
block holding ``id + 1`` of the longest prefix of length ≤ 24 covering it (0 = none), plus the
owning length, so a batch lookup is one gather.

Adds and removes repaint only their own range (a /24 is one cell, a /16 256 cells) and are
buffered until the next lookup, so a burst of updates is painted with a few vectorised writes.
:class:`~topfib.collector.rib.lpm.LpmTable` stays the truth (which ids are present, which
prefix covers which): this table is painted from it.
"""

from __future__ import annotations

import weakref
from array import array
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import numpy.typing as npt

from topfib.collector.rib.heap import BULK, trim_heap

DIR_BITS = 24
_DIR_SIZE = 1 << DIR_BITS
# Above this many buffered removals, repainting the whole DIR-24 table is cheaper than one by one.
_FULL_REPAINT_REMOVALS = 20_000
# Temporary index arrays are cut into chunks of this many cells to bound transient memory.
_PAINT_CHUNK = 1 << 22

Int64Array = npt.NDArray[np.int64]


def pack_pending(network: int, length: int, prefix_id: int) -> int:
    """A buffered change as one 64-bit value (``LpmTable.add`` inlines it)."""
    # 26 bits of id: room for 67M distinct prefixes over a table's life.
    return (prefix_id << 38) | (length << 32) | network


def _unpack_pending(packed: array[int]) -> Iterator[tuple[int, int, int]]:
    for value in packed:
        yield value & 0xFFFFFFFF, (value >> 32) & 63, value >> 38


class Dir24Source(Protocol):
    """What the table is painted from (read, never written)."""

    def present(self, prefix_id: int) -> bool: ...

    def cover(self, network: int, length: int) -> int: ...

    def lengths(self) -> npt.NDArray[np.uint16]: ...

    def short_v4(self) -> tuple[Int64Array, Int64Array, Int64Array]: ...


class Dir24:
    """The IPv4 DIR-24 table of prefixes ≤ /24, painted lazily from ``source``."""

    def __init__(self, source: Dir24Source) -> None:
        # Weak: the source owns this table, and a cycle would keep a dropped RIB's memory until
        # the cyclic collector runs.
        self._source_ref = weakref.ref(source)
        # zero-filled (calloc) on the first change, so untouched pages cost nothing
        self.ids: npt.NDArray[np.int32] | None = None
        # Which length owns a cell is the length of the id in it: length + 1 by ``id + 1`` (0:
        # none), taken from the source when painting (an id's length never changes).
        self._owner_of: npt.NDArray[np.uint8] = np.zeros(1, dtype=np.uint8)
        # Buffered changes, packed by pack_pending: 8 bytes each, so a full table's worth waiting
        # for its first lookup costs 8 MB, not 100. The owner appends; cleared in place.
        self.pending_add = array("Q")
        self.pending_remove = array("Q")

    @property
    def _source(self) -> Dir24Source:
        source = self._source_ref()
        if source is None:
            raise ReferenceError("the DIR-24 table's source is gone")
        return source

    def painted(self) -> npt.NDArray[np.int32] | None:
        """The table (``id + 1`` per /24 block, 0: none) with every buffered change painted in;
        None before the first change."""
        if self.pending_add or self.pending_remove:
            self._flush()
        return self.ids

    def _flush(self) -> None:
        if self.ids is None:
            self.ids = np.zeros(_DIR_SIZE, dtype=np.int32)
        lengths = self._source.lengths()
        owner_of = np.zeros(lengths.size + 1, dtype=np.uint8)
        owner_of[1:] = np.minimum(lengths, DIR_BITS) + 1  # IPv6 ids (≥ 256) are never in a cell
        self._owner_of = owner_of
        if len(self.pending_remove) > _FULL_REPAINT_REMOVALS:
            self._repaint_all()
            trim_heap()
            return
        present = self._source.present
        removed_ids = []
        for network, length, prefix_id in _unpack_pending(self.pending_remove):
            if present(prefix_id):
                continue  # removed and added back since: its cells are still right
            self._unpaint(network, length, prefix_id)
            removed_ids.append(prefix_id)
        del self.pending_remove[:]
        packed = np.frombuffer(self.pending_add, dtype=np.uint64).copy()
        del self.pending_add[:]
        if not packed.size:
            return
        networks = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
        lengths = ((packed >> np.uint64(32)) & np.uint64(63)).astype(np.int64)
        ids = (packed >> np.uint64(38)).astype(np.int64)
        if removed_ids:
            # An add followed by a remove before this flush: paint only what is still present.
            maybe_gone = np.flatnonzero(np.isin(ids, np.array(removed_ids, dtype=np.int64)))
            keep = np.ones(ids.size, dtype=bool)
            for index in maybe_gone.tolist():
                keep[index] = present(int(ids[index]))
            networks, lengths, ids = networks[keep], lengths[keep], ids[keep]
        for length in np.unique(lengths).tolist():
            selected = lengths == length
            self._paint(networks[selected] >> 8, length, ids[selected], only_shorter=True)
        if ids.size >= BULK:
            del networks, lengths, ids, packed
            trim_heap()

    def _repaint_all(self) -> None:
        assert self.ids is not None
        self.ids.fill(0)
        del self.pending_add[:]
        del self.pending_remove[:]
        networks, lengths, ids = self._source.short_v4()
        for length in np.unique(lengths).tolist():  # shortest first: longer ones paint over them
            selected = lengths == length
            self._paint(networks[selected] >> 8, length, ids[selected], only_shorter=False)

    def _paint(self, blocks: Int64Array, length: int, ids: Int64Array, only_shorter: bool) -> None:
        """Write ``ids`` over the cells of prefixes of one length (≤ 24) starting at ``blocks``.

        With ``only_shorter``, cells owned by a longer prefix keep their owner.
        """
        assert self.ids is not None
        dir_ids, owner_of = self.ids, self._owner_of
        span = 1 << (DIR_BITS - length)
        owner_value = length + 1
        if span >= 4096:  # few such prefixes (≤ 4096): slice by slice
            for block, prefix_id in zip(blocks.tolist(), ids.tolist(), strict=True):
                window = slice(block, block + span)
                if only_shorter:
                    writable = owner_of[dir_ids[window]] <= owner_value
                    dir_ids[window][writable] = prefix_id + 1
                else:
                    dir_ids[window] = prefix_id + 1
            return
        per_chunk = max(1, _PAINT_CHUNK // span)
        offsets = np.arange(span, dtype=np.int64)
        for start in range(0, blocks.size, per_chunk):
            cells = (blocks[start:start + per_chunk, None] + offsets).ravel()
            values = np.repeat(ids[start:start + per_chunk] + 1, span).astype(np.int32)
            if only_shorter:
                writable = owner_of[dir_ids[cells]] <= owner_value
                cells, values = cells[writable], values[writable]
            dir_ids[cells] = values

    def _unpaint(self, network: int, length: int, prefix_id: int) -> None:
        """Hand the cells a removed prefix still owns to its longest present cover."""
        assert self.ids is not None
        cells = slice(network >> 8, (network >> 8) + (1 << (DIR_BITS - length)))
        segment = self.ids[cells]
        owned = segment == prefix_id + 1
        if not owned.any():
            return
        segment[owned] = self._source.cover(network, length) + 1
