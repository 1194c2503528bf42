"""TopN's candidates by descending contest key, sorted a chunk at a time; full tables drop out.

Entries are indices into the names :mod:`topfib.controller.selection.topn` contests (challengers, then
incumbents).
A candidate's table is only worked out (a look at its name) when it is needed: touching 200k
scattered strings is the costliest thing a selection can do, so it is done at most once per name,
and in name order, which walks memory the way the strings were made.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from topfib.controller.selection.model import TABLE_IPV4, TABLE_IPV4_24, TABLE_IPV6, SelectionPolicy
from topfib.controller.selection.name_kinds import NameKinds, table_of_kind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def table_ids(entries: list[str], indices: list[int], tables: list[str]) -> IntArray:
    """Index into ``tables`` of the table of each ``entries[i]``: :meth:`SelectionPolicy.table_of`
    in one pass (each name is a cache miss: looked at once)."""
    v4, v6 = tables.index(TABLE_IPV4), tables.index(TABLE_IPV6)
    names = map(entries.__getitem__, indices)
    if TABLE_IPV4_24 in tables:
        v24 = tables.index(TABLE_IPV4_24)
        ids = [v6 if ":" in p else v24 if p.endswith("/24") else v4 for p in names]
    else:
        ids = [v6 if ":" in p else v4 for p in names]
    return np.array(ids, np.int64)


class CandidateStream:
    """Candidate indices by descending key. The current chunk is ``order``/``values``/``raws``
    (lists, for the greedy's hot loop; ``order_array`` is ``order`` in numpy); ``position`` is the
    next one to take."""

    def __init__(
        self,
        keys: FloatArray,
        raw: FloatArray,
        candidates: IntArray,
        entries: list[str],
        policy: SelectionPolicy,
        chunk: int,
        kinds: NameKinds | None,
    ) -> None:
        """``kinds``: the selection's remembered name kinds, for the main contest (another list
        through it would make it forget that one); None works tables out as they are needed."""
        self.keys = keys
        self.raw = raw  # each entry's own score, for its route
        self.entries = entries
        self.tables = list(policy.caps())
        if kinds is not None:  # all at once: the same names as last call cost next to nothing
            self.table_id = table_of_kind(self.tables)[kinds.kinds(entries, TABLE_IPV4_24 in self.tables)]
        else:
            self.table_id = np.full(len(keys), -1, np.int64)  # per entry; -1: not worked out yet
        self.remaining = candidates
        self.chunk = max(chunk, 256)
        self._set_chunk(candidates[:0])

    def _set_chunk(self, order: IntArray) -> None:
        self.order_array = order
        self.order: list[int] = order.tolist()
        self.values: list[float] = self.keys[order].tolist()
        self.raws: list[float] = self.raw[order].tolist()
        self.position = 0

    def _refill(self) -> None:
        rest = self.remaining
        rest_keys = self.keys[rest]
        if len(rest) > self.chunk:
            kth = len(rest) - self.chunk
            threshold = np.partition(rest_keys, kth)[kth]
            upper = rest_keys >= threshold  # all ties with the threshold: no tie spans two chunks
            taken, taken_keys, self.remaining = rest[upper], rest_keys[upper], rest[~upper]
        else:
            taken, taken_keys, self.remaining = rest, rest_keys, rest[:0]
        self._set_chunk(taken[np.argsort(-taken_keys)])  # ties: the heap orders them
        self.chunk *= 2  # a long tail is sorted in few pieces

    def head(self) -> float | None:
        if self.position == len(self.order):
            if not len(self.remaining):
                return None
            self._refill()
        return self.values[self.position]

    def take(self) -> int:
        self.position += 1
        return self.order[self.position - 1]

    def ids(self, indices: IntArray) -> IntArray:
        """Table index (into ``tables``) of each entry in ``indices``."""
        known = self.table_id[indices]
        unknown = indices[known < 0]
        if len(unknown):
            unknown = np.sort(unknown)  # name order: memory order, far fewer cache misses
            self.table_id[unknown] = table_ids(self.entries, unknown.tolist(), self.tables)
            known = self.table_id[indices]
        return known

    def keep_tables(self, full_tables: set[str]) -> None:
        """Drop the candidates of ``full_tables``."""
        open_tables = np.array([t not in full_tables for t in self.tables], np.bool_)
        rest = self.order_array[self.position :]
        # the unsorted rest first: the bulk of the names, and in name order already
        self.remaining = self.remaining[open_tables[self.ids(self.remaining)]]
        self._set_chunk(rest[open_tables[self.ids(rest)]])
