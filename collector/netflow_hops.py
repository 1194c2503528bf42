"""Next-hop addresses of flow records, as raw integers in, as indices into a batch's names out.

A router exports few distinct next hops (its peers and neighbours) in many records, so the
decoder keeps the IPv4 ones it has named in a sorted array and resolves a column of them with
one ``searchsorted``; only addresses it has not seen are named (``inet_ntoa``), once each. IPv6
next hops, rarer, are named once per distinct address per batch. Names are written as
``inet_ntop`` writes them, like the sFlow fast path.

A batch names at most :data:`MAX_NAMES_PER_BATCH` next hops; records beyond that get none (-1,
so attribution falls back to the best path). Real exports stay far below it; a stream of random
next hops (a bogus field, or spoofing) would otherwise cost a string per record.
"""

from __future__ import annotations

import socket
from typing import Final

import numpy as np
import numpy.typing as npt

MAX_KNOWN_V4: Final = 4096  # named IPv4 next hops kept across batches (a flood of distinct ones resets it)
MAX_NAMES_PER_BATCH: Final = 1024


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

    def indices(self, names: list[str]) -> npt.NDArray[np.int32]:
        """``index`` of each of ``names`` (distinct names, as np.unique gives them)."""
        known = self._index
        out = [known.get(name, -1) for name in names]
        if -1 in out:
            out = [self.index(name) if found < 0 else found for name, found in zip(names, out, strict=True)]
        return np.array(out, np.int32)


class HopResolver:
    """Raw next-hop columns to indices into the current batch's :class:`HopNames`."""

    def __init__(self, max_known_v4: int = MAX_KNOWN_V4) -> None:
        self._max_known_v4 = max_known_v4
        self._known_v4 = np.empty(0, np.uint64)  # sorted
        self._known_v4_names: list[str] = []
        self.begin_batch()

    def begin_batch(self) -> None:
        self.names = HopNames()
        # batch index of each known IPv4 next hop; -1: not used in this batch yet
        self._batch_of_known = np.full(len(self._known_v4), -1, np.int32)

    def resolve(
        self,
        family: npt.NDArray[np.uint8],
        v4: npt.NDArray[np.uint64],
        v6_hi: npt.NDArray[np.uint64],
        v6_lo: npt.NDArray[np.uint64],
    ) -> npt.NDArray[np.int32]:
        """Batch index per record (``family`` 4 or 6; 0: none, -1)."""
        hop = np.full(len(family), -1, np.int32)
        is4 = family == 4
        if is4.any():
            hop[is4] = self._resolve_v4(v4[is4])
        is6 = family == 6
        if is6.any():
            pairs = np.stack((v6_hi[is6], v6_lo[is6]), axis=1)
            unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
            if len(unique) > self.names.room:
                self.names.refused += len(unique)
                return hop
            raw = unique.astype(">u8").tobytes()
            names = [socket.inet_ntop(socket.AF_INET6, raw[at : at + 16]) for at in range(0, len(raw), 16)]
            hop[is6] = self.names.indices(names)[inverse.reshape(-1)]
        return hop

    def _resolve_v4(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        position = self._positions(values)
        if position is None:
            unique = np.unique(values)
            if len(unique) > self.names.room:  # a flood of distinct next hops: name none of them
                self.names.refused += len(unique)
                return np.full(len(values), -1, np.int32)
            self._learn(unique)
            position = self._positions(values)
            if position is None:  # more distinct next hops than we keep: name them for this batch only
                unique, inverse = np.unique(values, return_inverse=True)
                return self.names.indices(_v4_names(unique))[inverse.reshape(-1)]
        batch_index = self._batch_of_known
        used = np.zeros(len(batch_index), np.bool_)
        used[position] = True
        fresh = np.flatnonzero(used & (batch_index < 0))
        if len(fresh):
            batch_index[fresh] = self.names.indices([self._known_v4_names[i] for i in fresh.tolist()])
        return batch_index[position]

    def _positions(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp] | None:
        """Where each value sits in the known array; None when some are not known."""
        known = self._known_v4
        if not len(known):
            return None
        position = np.minimum(np.searchsorted(known, values), len(known) - 1)
        return position if bool((known[position] == values).all()) else None

    def _learn(self, unique: npt.NDArray[np.uint64]) -> None:
        fresh = np.setdiff1d(unique, self._known_v4, assume_unique=True)
        if len(self._known_v4) + len(fresh) > self._max_known_v4:
            self._known_v4 = np.empty(0, np.uint64)
            self._known_v4_names = []
            self._batch_of_known = np.empty(0, np.int32)
            if len(fresh) > self._max_known_v4:
                return
        merged = np.concatenate((self._known_v4, fresh))
        order = np.argsort(merged, kind="stable")
        names = self._known_v4_names + _v4_names(fresh)
        batch_of = np.concatenate((self._batch_of_known, np.full(len(fresh), -1, np.int32)))
        self._known_v4 = merged[order]
        self._known_v4_names = [names[i] for i in order.tolist()]
        self._batch_of_known = batch_of[order]


def _v4_names(values: npt.NDArray[np.uint64]) -> list[str]:
    raw = values.astype(">u4").tobytes()
    return [socket.inet_ntoa(raw[at : at + 4]) for at in range(0, len(raw), 4)]
