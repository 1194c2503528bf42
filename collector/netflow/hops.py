"""Next-hop addresses of flow records, as raw integers in, as indices into a batch's names out.

A router exports few distinct next hops (its peers and neighbours) in many records, so the
decoder keeps the next hops it has named, per family, in a sorted array of 64-bit keys (the
IPv4 address itself; for IPv6 a mix of its two halves, checked against the halves) and resolves
a column of them with one ``searchsorted``; only addresses it has not seen are named
(``inet_ntoa`` / ``inet_ntop``, as the sFlow fast path writes them), once each. No per-record
Python and no ``np.unique`` on the usual path (its first call also imports ``numpy.ma``).

A batch names at most :data:`MAX_NAMES_PER_BATCH` next hops; records beyond that get none (-1,
so attribution falls back to the best path). Real exports stay far below it; a stream of random
next hops (a bogus field, or spoofing) would otherwise cost a string per record.
"""

from __future__ import annotations

import socket
from typing import Final

import numpy as np
import numpy.typing as npt

MAX_KNOWN_V4: Final = 4096  # named next hops kept across batches, per family (a flood resets it)
MAX_NAMES_PER_BATCH: Final = 1024
_V6_MIX: Final = np.uint64(0x9E3779B97F4A7C15)  # odd: spreads the high half over the key

U64 = npt.NDArray[np.uint64]
I32 = npt.NDArray[np.int32]


class HopNames:
    """One batch's next-hop names, each once, in order of first sight."""

    def __init__(self, max_names: int = MAX_NAMES_PER_BATCH) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._max_names = max_names
        self.refused = 0  # distinct next hops not named: the batch had too many

    @property
    def room(self) -> int:
        return self._max_names - len(self.names)

    def index(self, name: str) -> int:
        """The name's index; -1 when it is new and the batch is full."""
        found = self._index.get(name)
        if found is None:
            if not self.room:
                self.refused += 1
                return -1
            found = self._index[name] = len(self.names)
            self.names.append(name)
        return found

    def indices(self, names: list[str]) -> I32:
        """``index`` of each of ``names`` (distinct names)."""
        known = self._index
        out = [known.get(name, -1) for name in names]
        if -1 in out:
            new = [name for name, found in zip(names, out, strict=True) if found < 0]
            taken = new[: self.room]
            self.refused += len(new) - len(taken)
            known.update(zip(taken, range(len(self.names), len(self.names) + len(taken)), strict=True))
            self.names += taken
            out = [known.get(name, -1) for name in names]
        return np.array(out, np.int32)


class _KnownHops:
    """The named next hops of one family kept across batches.

    ``keys`` (with the IPv6 halves, to tell keys that collide apart) are sorted and point at
    slots; per slot, in order of learning: the name and its index in the current batch (-1: not
    used in this batch yet). Slot 0 is key 0, the all-zero address: no next hop, never named.
    """

    def __init__(self, v6: bool, max_known: int) -> None:
        self.v6 = v6
        self.max_known = max_known
        self.clear()

    def clear(self) -> None:
        self.keys = np.zeros(1, np.uint64)
        self.hi = np.zeros(1, np.uint64)
        self.lo = np.zeros(1, np.uint64)
        self.slot = np.zeros(1, np.intp)
        self.names: list[str] = [""]
        self.batch_index = np.full(1, -1, np.int32)

    def slots(self, keys: U64, hi: U64 | None, lo: U64 | None) -> npt.NDArray[np.intp] | None:
        """The slot of each key; None when some are not known."""
        position = np.searchsorted(self.keys, keys)
        np.minimum(position, len(self.keys) - 1, out=position)
        if hi is None or lo is None:
            found = self.keys[position] == keys
        else:
            found = (self.hi[position] == hi) & (self.lo[position] == lo)
        return self.slot[position] if bool(found.all()) else None

    def learn(self, keys: U64, hi: U64, lo: U64) -> bool:
        """Add distinct, non-zero ``keys`` (with their halves); False when they do not fit."""
        fresh = ~np.isin(keys, self.keys, assume_unique=True)
        keys, hi, lo = keys[fresh], hi[fresh], lo[fresh]
        if len(self.names) - 1 + len(keys) > self.max_known:
            self.clear()
            if len(keys) > self.max_known:
                return False
        first_slot = len(self.names)
        order = np.argsort(np.concatenate((self.keys, keys)), kind="stable")
        self.keys = np.concatenate((self.keys, keys))[order]
        self.hi = np.concatenate((self.hi, hi))[order]
        self.lo = np.concatenate((self.lo, lo))[order]
        self.slot = np.concatenate((self.slot, np.arange(first_slot, first_slot + len(keys))))[order]
        self.names += _v6_names(hi, lo) if self.v6 else _v4_names(keys)
        self.batch_index = np.concatenate((self.batch_index, np.full(len(keys), -1, np.int32)))
        return True


class HopResolver:
    """Raw next-hop columns to indices into the current batch's :class:`HopNames`."""

    def __init__(self, max_known_v4: int = MAX_KNOWN_V4) -> None:
        self._v4 = _KnownHops(v6=False, max_known=max_known_v4)
        self._v6 = _KnownHops(v6=True, max_known=max_known_v4)
        self.begin_batch()

    def begin_batch(self) -> None:
        self.names = HopNames()
        self._v4.batch_index.fill(-1)
        self._v6.batch_index.fill(-1)

    def resolve(self, family: npt.NDArray[np.uint8], v4: U64, v6_hi: U64, v6_lo: U64) -> I32:
        """Batch index per record (``family`` 4 or 6; 0: none, -1)."""
        hop = np.full(len(family), -1, np.int32)
        is4 = family == 4
        if is4.any():
            hop[is4] = self.resolve_v4(v4[is4])
        is6 = family == 6
        if is6.any():
            hop[is6] = self.resolve_v6(v6_hi[is6], v6_lo[is6])
        return hop

    def resolve_v4(self, values: U64) -> I32:
        """Batch index per IPv4 next hop (as uint64; 0: none, -1)."""
        return self._resolve(self._v4, values, None, None)

    def resolve_v6(self, hi: U64, lo: U64) -> I32:
        """Batch index per IPv6 next hop (its halves; all-zero: none, -1)."""
        return self._resolve(self._v6, (hi * _V6_MIX) ^ lo, hi, lo)

    def _resolve(self, known: _KnownHops, keys: U64, hi: U64 | None, lo: U64 | None) -> I32:
        slot = known.slots(keys, hi, lo)
        if slot is None:
            distinct, first = _distinct(keys)
            d_hi = distinct if hi is None else hi[first]
            d_lo = np.zeros(len(distinct), np.uint64) if lo is None else lo[first]
            named = distinct != 0 if hi is None or lo is None else (d_hi != 0) | (d_lo != 0)
            count = int(named.sum())
            if count > self.names.room:  # a flood of distinct next hops: name none of them
                self.names.refused += count
                return np.full(len(keys), -1, np.int32)
            learnt = (
                (hi is None or lo is None or _one_pair_per_key(distinct, d_hi, d_lo, keys, hi, lo))
                and bool((distinct[named] != 0).all())  # key 0 is taken by "no next hop"
                and known.learn(distinct[named], d_hi[named], d_lo[named])
            )
            slot = known.slots(keys, hi, lo) if learnt else None
            if slot is None:  # too many to keep, or keys that collide: name them for this batch only
                return self._name_for_batch(keys, hi, lo)
        batch_index = known.batch_index
        used = np.zeros(len(batch_index), np.bool_)
        used[slot] = True
        used[0] = False  # no next hop
        fresh = np.flatnonzero(used & (batch_index < 0))
        if len(fresh):
            batch_index[fresh] = self.names.indices([known.names[i] for i in fresh.tolist()])
        return batch_index[slot]

    def _name_for_batch(self, keys: U64, hi: U64 | None, lo: U64 | None) -> I32:
        hop = np.full(len(keys), -1, np.int32)
        if hi is None or lo is None:
            named = keys != 0
            unique, inverse = np.unique(keys[named], return_inverse=True)
            names = _v4_names(unique)
        else:
            named = (hi != 0) | (lo != 0)
            pairs = np.stack((hi[named], lo[named]), axis=1)
            unique_pairs, inverse = np.unique(pairs, axis=0, return_inverse=True)
            names = _v6_names(unique_pairs[:, 0].copy(), unique_pairs[:, 1].copy())
        hop[named] = self.names.indices(names)[inverse.reshape(-1)]
        return hop


def _distinct(keys: U64) -> tuple[U64, npt.NDArray[np.intp]]:
    """The sorted distinct keys and where each first occurs (``np.unique`` without its overhead)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.ones(len(ordered), np.bool_)
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    return ordered[starts], order[starts]


def _one_pair_per_key(distinct: U64, d_hi: U64, d_lo: U64, keys: U64, hi: U64, lo: U64) -> bool:
    """Whether no two different IPv6 next hops share a key (then each key names one address)."""
    at = np.searchsorted(distinct, keys)
    return bool(((d_hi[at] == hi) & (d_lo[at] == lo)).all())


def _v4_names(values: U64) -> list[str]:
    raw = values.astype(">u4").tobytes()
    return [socket.inet_ntoa(raw[at : at + 4]) for at in range(0, len(raw), 4)]


def _v6_names(hi: U64, lo: U64) -> list[str]:
    raw = np.stack((hi, lo), axis=1).astype(">u8").tobytes()
    return [socket.inet_ntop(socket.AF_INET6, raw[at : at + 16]) for at in range(0, len(raw), 16)]
