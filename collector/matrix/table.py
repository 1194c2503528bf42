"""A batch summed per traffic matrix cell, and one switch's cells in one interval: numpy only.

A cell is (input interface, next-hop, peer ASN). :func:`group_batch` sums a batch per distinct
cell with one sort (of the packed (interface, ASN) pairs) and a few ``bincount`` calls; a
:class:`CellTable` then adds those sums with lookups per distinct cell, never per sample and
never a Python object per cell: an (interface, ASN) pair packed in 64 bits gets a dense *pair
code* (a sorted array of known pairs), a next-hop string a *hop code* (a dict, one lookup per
distinct next-hop of the batch), and a cell is ``pair_code << HOP_BITS | hop_code``, looked up in
a sorted array of known cells that gives its row. Only cells new to the interval are merged in.

The table tracks up to ``2 * max_rows`` cells. When a batch brings more, it first keeps only its
``max_rows`` largest (the rest are folded into "other"), so a key that turns heavy late in the
interval still gets a row; new cells that do not fit even then go to "other", the heaviest of
the batch getting the free rows first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

HOP_BITS = 24
MAX_HOPS = 1 << HOP_BITS  # distinct next-hops per table; past that, traffic goes to "other"
_K = TypeVar("_K", np.uint64, np.int64)
_EMPTY_U64 = np.empty(0, np.uint64)
_EMPTY_I64 = np.empty(0, np.int64)


@dataclass(frozen=True, slots=True)
class BatchCells:
    """A batch summed per distinct cell: one element per cell."""

    pairs: NDArray[np.uint64]  # input interface << 32 | peer ASN
    hop_names: list[str | None]  # the batch's distinct next-hops (None: unrouted) ...
    hops: NDArray[np.int64]  # ... and each cell's index into them
    nbytes: NDArray[np.float64]
    packets: NDArray[np.float64]
    samples: NDArray[np.int64]


def group_batch(
    input_if: NDArray[np.uint32],
    next_hop_ids: NDArray[np.int64],
    next_hops: Sequence[str],
    peer_asn: NDArray[np.uint32],
    nbytes: NDArray[np.float64],
    packets: NDArray[np.float64],
) -> BatchCells:
    """Sum per-sample arrays per distinct (interface, next-hop, ASN); ids index ``next_hops``."""
    hop_names, hop_of_sample = _batch_hops(next_hop_ids, next_hops)
    wide_if, wide_asn = np.asarray(input_if).astype(np.uint64), np.asarray(peer_asn).astype(np.uint64)
    packed = (wide_if << np.uint64(32)) | wide_asn
    pairs, pair_of_sample = np.unique(packed, return_inverse=True)
    width = max(len(hop_names), 1)
    local = pair_of_sample.astype(np.int64) * width + hop_of_sample  # dense: pairs × hops of the batch
    span = len(pairs) * width
    if span <= 4 * len(local) + 4096:
        samples = np.bincount(local, minlength=span)
        cells = np.flatnonzero(samples)
        sum_bytes = np.bincount(local, weights=nbytes, minlength=span)[cells]
        sum_packets = np.bincount(local, weights=packets, minlength=span)[cells]
        samples = samples[cells]
    else:  # many pairs and many next-hops in one batch: sort the cells instead
        cells, cell_of_sample = np.unique(local, return_inverse=True)
        samples = np.bincount(cell_of_sample, minlength=len(cells))
        sum_bytes = np.bincount(cell_of_sample, weights=nbytes, minlength=len(cells))
        sum_packets = np.bincount(cell_of_sample, weights=packets, minlength=len(cells))
    return BatchCells(pairs[cells // width], hop_names, (cells % width).astype(np.int64),
                      sum_bytes.astype(np.float64, copy=False), sum_packets.astype(np.float64, copy=False),
                      samples.astype(np.int64, copy=False))


def _batch_hops(next_hop_ids: NDArray[np.int64], next_hops: Sequence[str]) -> tuple[list[str | None],
                                                                                    NDArray[np.int64]]:
    """The distinct next-hops of a batch (None: unrouted) and each sample's index into them."""
    ids = np.asarray(next_hop_ids, np.int64)
    if len(ids) and (int(ids.max()) >= len(next_hops) or int(ids.min()) < -1):
        raise ValueError(f"matrix.add: next-hop ids must lie in -1 .. {len(next_hops) - 1}")
    if len(next_hops) <= 4 * len(ids) + 1024:  # a dense table is cheaper than sorting the batch
        present = np.flatnonzero(np.bincount(ids + 1, minlength=len(next_hops) + 1))
        local = np.full(len(next_hops) + 1, -1, np.int64)
        local[present] = np.arange(len(present))
        return [next_hops[i - 1] if i else None for i in present.tolist()], local[ids + 1]
    distinct, local_ids = np.unique(ids, return_inverse=True)
    return [next_hops[i] if i >= 0 else None for i in distinct.tolist()], local_ids.astype(np.int64)


class CellTable:
    """Bytes, packets and samples per cell of one switch in one interval (not thread-safe)."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.capacity = 2 * max_rows
        self.hop_code: dict[str | None, int] = {}
        self.hop_name: list[str | None] = []
        self.pair_values = _EMPTY_U64  # sorted known pairs ...
        self.pair_codes = _EMPTY_I64  # ... and their codes
        self.cell_keys = _EMPTY_I64  # sorted known cells ...
        self.cell_rows = _EMPTY_I64  # ... and their rows
        self.count = 0  # rows in use
        self.row_pair = np.zeros(64, np.uint64)
        self.row_hop = np.zeros(64, np.int64)
        self.bytes = np.zeros(64, np.float64)
        self.packets = np.zeros(64, np.float64)
        self.samples = np.zeros(64, np.int64)
        self.other_bytes = 0.0
        self.other_packets = 0.0
        self.other_samples = 0

    def add(self, batch: BatchCells) -> None:
        """Add a batch's per-cell sums; cells that find no room go to the other row."""
        hop_codes = np.array([self._hop(name) for name in batch.hop_names] or [0], np.int64)
        hops = hop_codes[batch.hops]
        keys = self._keys(batch.pairs, hops)
        positions, found = self._find(keys)
        new = np.flatnonzero(~found)  # distinct: a batch has each cell once
        if len(new) > self.capacity - self.count:
            self._compact(self.max_rows)  # renumbers the pairs: the batch's keys change
            keys = self._keys(batch.pairs, hops)
            positions, found = self._find(keys)
            new = np.flatnonzero(~found)
        room = self.capacity - self.count
        if len(new) > room:  # the heaviest new cells of the batch get the rows left
            new = np.sort(new[np.argsort(-batch.nbytes[new], kind="stable")[:room]])
        rows = np.full(len(keys), -1, np.int64)
        known = found & (keys >= 0)
        rows[known] = self.cell_rows[positions[known]]
        if len(new):
            new_rows = np.arange(self.count, self.count + len(new), dtype=np.int64)
            self._grow(self.count + len(new))
            self.row_pair[new_rows] = batch.pairs[new]
            self.row_hop[new_rows] = hops[new]
            self.count += len(new)
            self.cell_keys, self.cell_rows = _merge(self.cell_keys, self.cell_rows, keys[new], new_rows)
            rows[new] = new_rows
        placed = rows >= 0
        if not placed.all():
            spill = ~placed
            self._fold(batch.nbytes[spill], batch.packets[spill], int(batch.samples[spill].sum()))
        rows = rows[placed]  # distinct rows: fancy-index addition is exact
        self.bytes[rows] += batch.nbytes[placed]
        self.packets[rows] += batch.packets[placed]
        self.samples[rows] += batch.samples[placed]

    def _hop(self, name: str | None) -> int:
        code = self.hop_code.get(name)
        if code is None:
            if len(self.hop_name) >= MAX_HOPS:
                return -1
            code = self.hop_code[name] = len(self.hop_name)
            self.hop_name.append(name)
        return code

    def _keys(self, pairs: NDArray[np.uint64], hops: NDArray[np.int64]) -> NDArray[np.int64]:
        keys = (self._pair_codes(pairs) << HOP_BITS) | hops
        keys[hops < 0] = -1  # past MAX_HOPS: no row
        return keys

    def _pair_codes(self, pairs: NDArray[np.uint64]) -> NDArray[np.int64]:
        positions, found = _lookup(self.pair_values, pairs)
        if not found.all():
            new = np.unique(pairs[~found])
            codes = np.arange(len(self.pair_codes), len(self.pair_codes) + len(new), dtype=np.int64)
            self.pair_values, self.pair_codes = _merge(self.pair_values, self.pair_codes, new, codes)
            positions, found = _lookup(self.pair_values, pairs)
        return self.pair_codes[positions]

    def _find(self, cells: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Positions among the known cells and whether known; a key past MAX_HOPS (-1) counts as known."""
        positions, found = _lookup(self.cell_keys, cells)
        return positions, found | (cells < 0)

    def _fold(self, nbytes: NDArray[np.float64], packets: NDArray[np.float64], samples: int) -> None:
        self.other_bytes += float(nbytes.sum())
        self.other_packets += float(packets.sum())
        self.other_samples += samples

    def order(self) -> NDArray[np.int64]:
        """Rows, largest bytes first (then packets)."""
        count = self.count
        return np.lexsort((-self.packets[:count], -self.bytes[:count]))

    def _compact(self, keep: int) -> None:
        """Keep the ``keep`` largest cells, fold the others into "other", renumber rows and codes."""
        order = self.order()
        kept, folded = order[:keep], order[keep:]
        if not len(folded):
            return
        self._fold(self.bytes[folded], self.packets[folded], int(self.samples[folded].sum()))
        count = len(kept)
        for name in ("row_pair", "row_hop", "bytes", "packets", "samples"):
            column = getattr(self, name)
            column[:count] = column[kept]
            column[count:] = 0
        self.count = count
        # pairs of dropped cells are forgotten too, so the pair table stays bounded
        self.pair_values, pair_of_row = np.unique(self.row_pair[:count], return_inverse=True)
        self.pair_codes = np.arange(len(self.pair_values), dtype=np.int64)
        keys = (pair_of_row.astype(np.int64) << HOP_BITS) | self.row_hop[:count]
        order_keys = np.argsort(keys)
        self.cell_keys, self.cell_rows = keys[order_keys], order_keys.astype(np.int64)

    def _grow(self, needed: int) -> None:
        capacity = len(self.bytes)
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity)
        for name in ("row_pair", "row_hop", "bytes", "packets", "samples"):
            column = getattr(self, name)
            grown = np.zeros(new_capacity, column.dtype)
            grown[:capacity] = column
            setattr(self, name, grown)

    def key(self, row: int) -> tuple[int, str | None, int]:
        pair = int(self.row_pair[row])
        return pair >> 32, self.hop_name[int(self.row_hop[row])], pair & 0xFFFFFFFF


def _lookup(sorted_keys: NDArray[_K], keys: NDArray[_K]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Positions of ``keys`` in ``sorted_keys`` (clipped) and whether each is there."""
    if not len(sorted_keys):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), np.bool_)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return positions.astype(np.int64, copy=False), sorted_keys[positions] == keys


def _merge(keys: NDArray[_K], values: NDArray[np.int64], new_keys: NDArray[_K],
           new_values: NDArray[np.int64]) -> tuple[NDArray[_K], NDArray[np.int64]]:
    """Sorted ``keys`` (with their values) and new keys not among them, merged and sorted."""
    merged = np.concatenate((keys, new_keys))
    order = np.argsort(merged, kind="stable")
    return merged[order], np.concatenate((values, new_values))[order]
