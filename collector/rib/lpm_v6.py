"""IPv6 batched longest-prefix match over an :class:`~topfib.collector.rib.lpm.LpmTable`'s tables
(read only; ``table`` is typed Any: lpm imports this module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from topfib.collector.common.prefixes import IPV6

_MASK64 = (1 << 64) - 1
Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]


def _sorted_match(keys: UInt64Array, values: Int64Array, query: UInt64Array) -> Int64Array:
    """values[i] where keys[i] == query, else -1 (keys sorted ascending, non-empty)."""
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    return np.where(keys[pos] == query, values[pos], -1)


def lookup_v6_ids(table: Any, high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint64]) -> Int64Array:
    """Ids of the longest matches of IPv6 addresses given as (high, low) 64-bit halves.

    Each address carries the set of lengths its /16 and /32 blocks hold (bit L-16; bit 49 for
    lengths above /64). Rounds try every address's longest remaining candidate length, grouped
    by length, and drop the bit on a miss; the work is the candidates an address really has,
    not the lengths of the whole table. Lengths below /16 are tried last.
    """
    high = np.asarray(high, dtype=np.uint64)
    low = np.asarray(low, dtype=np.uint64)
    if high.shape != low.shape:
        raise ValueError("high and low halves differ in length")
    out = np.full(high.shape, -1, dtype=np.int64)
    if not high.size:
        return out
    candidates = table._v6_mask16[(high >> np.uint64(48)).astype(np.intp)] | (
        table._v6_masks32(high) << np.uint64(16))
    pending = np.flatnonzero(candidates)
    while pending.size:
        # frexp gives floor(log2(x)) + 1: the highest set bit (all bits < 53, exact in a double)
        top = np.frexp(candidates[pending].astype(np.float64))[1] - 1
        order = np.argsort(top, kind="stable")
        pending, top = pending[order], top[order]
        bits, starts = np.unique(top, return_index=True)
        ends = [*starts[1:].tolist(), pending.size]
        for bit, start, end in zip(bits.tolist(), starts.tolist(), ends, strict=True):
            group = pending[start:end]
            found = _match_v6_group(table, bit, group, high, low)
            out[group] = np.where(found >= 0, found, out[group])
            candidates[group] &= ~np.uint64(1 << bit)
        pending = pending[(out[pending] < 0) & (candidates[pending] != 0)]
    short = [length for length in table._lengths(IPV6) if length < 16]
    if short:
        unmatched = np.flatnonzero(out < 0)
        for length in short:
            if not unmatched.size:
                break
            keys, ids = table._sorted_arrays(IPV6, length)
            mask = np.uint64((_MASK64 << (64 - length)) & _MASK64) if length else np.uint64(0)
            found = _sorted_match(keys, ids, high[unmatched] & mask)
            hit = found >= 0
            out[unmatched[hit]] = found[hit]
            unmatched = unmatched[~hit]
    return out


def _match_v6_group(table: Any, bit: int, group: Int64Array, high: UInt64Array,
                    low: UInt64Array) -> Int64Array:
    """Matches of the addresses ``group`` at the length(s) of candidate bit ``bit``."""
    if bit < 49:
        length = bit + 16
        keys, ids = table._sorted_arrays(IPV6, length)
        mask = np.uint64((_MASK64 << (64 - length)) & _MASK64)
        return _sorted_match(keys, ids, high[group] & mask)
    # Bit 49: some prefix longer than /64 in the block; try those lengths, longest first.
    found = np.full(group.size, -1, dtype=np.int64)
    tables = table._by_len[IPV6]
    for length in table._lengths(IPV6):
        if length <= 64:
            break
        keys, _ = table._sorted_arrays(IPV6, length)
        shift = 128 - length
        for position in np.flatnonzero((found < 0) & np.isin(high[group], keys)).tolist():
            index = int(group[position])
            address = (int(high[index]) << 64) | int(low[index])
            found[position] = tables[length].get((address >> shift) << shift, -1)
    return found
