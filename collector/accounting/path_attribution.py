"""Which RIB path a flow sample took: the path of its prefix whose next hop the sample names,
else the prefix's best path (issue "flow to path").

Per switch, what the RIB says about a prefix (its best path's next hop and first AS, and for a
prefix with several paths all of them) is cached by LPM prefix id and re-read every
``refresh_s`` seconds or when the switch's LPM table object changes, so a batch costs a few numpy
gathers plus one Python lookup per prefix seen for the first time since the refresh. That
re-read first compares, in numpy, the RIB's version of each prefix's paths with the one its
decision was built from: only a prefix whose paths changed is read again, so a refresh costs a
few numpy passes instead of rebuilding every decision (~4 µs a prefix, most of accounting's cost
at 10⁵ samples/s). Only
samples of multi-path prefixes that carry a next hop need a decision; their distinct (prefix,
next hop) pairs are matched once per batch.

Next hops are numbered per switch (``hop_names``), RIB path next hops and sample next hops alike,
in canonical ``inet_ntop`` form so the two compare as equal strings. The table is bounded: past
``max_hops`` names it starts over (cached decisions with it), and it starts over with a new LPM
table; a new table is a new list object, so ``(prefix id, next-hop id)`` pairs mean the same path
for as long as ``hop_names`` is the same object (what per-path accounting caches on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from topfib.collector.common.prefixes import canonical_address
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import BgpPath

IntArray = npt.NDArray[np.int64]
U32Array = npt.NDArray[np.uint32]

DEFAULT_REFRESH_S: Final = 5.0
MAX_HOPS: Final = 1 << 16
_INITIAL_IDS = 1024
_INITIAL_ROWS = 256
ROW_PATHS: Final = 4  # paths of a prefix matched in numpy; more go through a Python lookup
_UNDECIDED = np.uint32(2**32 - 1)  # a version no RIB reaches (Rib._touch skips it)


class PathSource(Protocol):
    """What attribution reads from a switch's RIB (``topfib.collector.rib.rib.Rib``)."""

    def paths(self, prefix: str) -> list[BgpPath]:
        """All paths of ``prefix``, best first."""
        ...

    def path_versions(self) -> npt.NDArray[np.uint32]:
        """Per LPM id, a number that changes whenever that prefix's paths do (ids past the end: 0)."""
        ...


@dataclass(frozen=True, slots=True)
class Attribution:
    """Per sample: the attributed path's next hop (index into ``hop_names``; -1: unrouted or no
    RIB to ask) and its peer AS (first AS of its AS path; 0: unknown or unrouted)."""

    hop_ids: IntArray
    peer_asn: U32Array
    hop_names: list[str]


@dataclass
class _SwitchCache:
    lpm: LpmTable | None = None
    refreshed_at: float = float("-inf")
    resolved: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(_INITIAL_IDS, np.bool_))
    best_hop: npt.NDArray[np.int32] = field(default_factory=lambda: np.full(_INITIAL_IDS, -1, np.int32))
    best_asn: U32Array = field(default_factory=lambda: np.zeros(_INITIAL_IDS, np.uint32))
    # multi-path prefixes: row of their paths in row_hops/row_asn (-1: single path)
    multi_row: npt.NDArray[np.int32] = field(default_factory=lambda: np.full(_INITIAL_IDS, -1, np.int32))
    # the RIB's path version each decision was built from (_UNDECIDED: none yet)
    versions: npt.NDArray[np.uint32] = field(default_factory=lambda: np.full(_INITIAL_IDS, _UNDECIDED))
    free_rows: list[int] = field(default_factory=list)
    row_hops: IntArray = field(default_factory=lambda: np.full((_INITIAL_ROWS, ROW_PATHS), -1, np.int64))
    row_asn: U32Array = field(default_factory=lambda: np.zeros((_INITIAL_ROWS, ROW_PATHS), np.uint32))
    rows_used: int = 0
    # prefixes with more paths than a row holds: all their (next-hop id, peer AS), best first
    overflow: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    hop_names: list[str] = field(default_factory=list)
    hop_index: dict[str, int] = field(default_factory=dict)  # canonical name → id
    rib_hop: dict[str, int] = field(default_factory=dict)  # a RIB next hop as written → id

    def recheck_decisions(self) -> None:
        """Every prefix is checked against the RIB again when next seen (its token, at least)."""
        self.resolved[:] = False

    def restart_hops(self) -> None:
        """A new next-hop numbering: every decision is rebuilt."""
        self.hop_names, self.hop_index, self.rib_hop = [], {}, {}
        self.resolved[:] = False
        self.multi_row[:] = -1
        self.rows_used = 0
        self.overflow.clear()
        self.versions[:] = _UNDECIDED
        self.free_rows.clear()

    def grow(self, size: int) -> None:
        if size <= len(self.resolved):
            return
        size = max(size, 2 * len(self.resolved))
        self.resolved = np.concatenate((self.resolved, np.zeros(size - len(self.resolved), np.bool_)))
        self.best_hop = np.concatenate((self.best_hop, np.full(size - len(self.best_hop), -1, np.int32)))
        self.best_asn = np.concatenate((self.best_asn, np.zeros(size - len(self.best_asn), np.uint32)))
        self.multi_row = np.concatenate((self.multi_row, np.full(size - len(self.multi_row), -1, np.int32)))
        self.versions = np.concatenate((self.versions, np.full(size - len(self.versions), _UNDECIDED)))

    def drop_row(self, prefix_id: int) -> None:
        """The prefix has one path or none now: its row is free for another."""
        row = int(self.multi_row[prefix_id])
        if row >= 0:
            self.free_rows.append(row)
            self.multi_row[prefix_id] = -1
        self.overflow.pop(prefix_id, None)

    def add_row(self, prefix_id: int, described: tuple[tuple[int, int], ...]) -> None:
        row = int(self.multi_row[prefix_id])
        if row < 0 and self.free_rows:
            row = self.free_rows.pop()
        if row < 0:
            if self.rows_used == len(self.row_hops):
                grown = len(self.row_hops) * 2
                self.row_hops = np.concatenate((self.row_hops, np.full_like(self.row_hops, -1)))[:grown]
                self.row_asn = np.concatenate((self.row_asn, np.zeros_like(self.row_asn)))[:grown]
            row = self.rows_used
            self.rows_used += 1
        self.row_hops[row] = -1
        self.row_asn[row] = 0
        for k, (hop, asn) in enumerate(described[:ROW_PATHS]):
            self.row_hops[row, k] = hop
            self.row_asn[row, k] = asn
        self.multi_row[prefix_id] = row
        if len(described) > ROW_PATHS:
            self.overflow[prefix_id] = described
        else:
            self.overflow.pop(prefix_id, None)


class PathAttributor:
    """Attributes each routed sample of a switch to one of its prefix's RIB paths."""

    def __init__(
        self,
        rib_for: Callable[[str], PathSource | None],
        refresh_s: float = DEFAULT_REFRESH_S,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self._rib_for = rib_for
        self._refresh_s = refresh_s
        self._max_hops = max_hops
        self._switches: dict[str, _SwitchCache] = {}

    def hop_names(self, switch: str) -> list[str]:
        """The switch's next-hop table (the object is replaced when the table starts over)."""
        return self._cache(switch).hop_names

    def _cache(self, switch: str) -> _SwitchCache:
        cache = self._switches.get(switch)
        if cache is None:
            cache = self._switches[switch] = _SwitchCache()
        return cache

    def attribute(
        self,
        switch: str,
        lpm: LpmTable,
        prefix_ids: IntArray,
        sample_hops: npt.NDArray[np.int32],
        batch_hops: Sequence[str],
        now: float,
    ) -> Attribution:
        """``prefix_ids`` from ``lpm`` (-1: unrouted); ``sample_hops`` index ``batch_hops`` (-1: none)."""
        count = len(prefix_ids)
        hop_ids = np.full(count, -1, np.int64)
        peer_asn = np.zeros(count, np.uint32)
        cache = self._cache(switch)
        rib = self._rib_for(switch)
        if rib is None or not count:
            return Attribution(hop_ids, peer_asn, cache.hop_names)
        if cache.lpm is not lpm or len(cache.hop_names) > self._max_hops:
            cache.lpm = lpm
            cache.refreshed_at = now
            cache.restart_hops()
        elif now - cache.refreshed_at >= self._refresh_s:
            cache.refreshed_at = now
            cache.recheck_decisions()
        routed = np.flatnonzero(prefix_ids >= 0)
        if not len(routed):
            return Attribution(hop_ids, peer_asn, cache.hop_names)
        ids = prefix_ids[routed]
        cache.grow(int(ids.max()) + 1)
        unresolved = ids[~cache.resolved[ids]]
        if len(unresolved):
            self._resolve(cache, rib, lpm, np.unique(unresolved))
        hop_ids[routed] = cache.best_hop[ids]
        peer_asn[routed] = cache.best_asn[ids]
        self._follow_sample_hops(cache, routed, ids, sample_hops, batch_hops, hop_ids, peer_asn)
        return Attribution(hop_ids, peer_asn, cache.hop_names)

    def _follow_sample_hops(
        self,
        cache: _SwitchCache,
        routed: IntArray,
        ids: IntArray,
        sample_hops: npt.NDArray[np.int32],
        batch_hops: Sequence[str],
        hop_ids: IntArray,
        peer_asn: U32Array,
    ) -> None:
        """Overwrite the best path with the path the sample names, for multi-path prefixes."""
        hops = sample_hops[routed]
        rows = cache.multi_row[ids]
        chosen = np.flatnonzero((rows >= 0) & (hops >= 0))
        if not len(chosen):
            return
        # the batch's next-hop numbering → the switch's (a batch names few next hops)
        switch_hop = np.array([self._hop_id(cache, name) for name in batch_hops], np.int64)
        named = switch_hop[hops[chosen]]
        candidates = cache.row_hops[rows[chosen]]
        match = candidates == named[:, None]
        found = match.any(axis=1)
        column = np.where(found, match.argmax(axis=1), 0)  # no match: column 0, the best path
        row_index = rows[chosen]
        picked_hop = candidates[np.arange(len(chosen)), column]
        picked_asn = cache.row_asn[row_index, column]
        if cache.overflow:
            self._overflow(cache, ids[chosen], named, found, picked_hop, picked_asn)
        hop_ids[routed[chosen]] = picked_hop
        peer_asn[routed[chosen]] = picked_asn

    @staticmethod
    def _overflow(
        cache: _SwitchCache,
        ids: IntArray,
        named: IntArray,
        found: npt.NDArray[np.bool_],
        picked_hop: IntArray,
        picked_asn: U32Array,
    ) -> None:
        """Samples naming a path beyond the first ROW_PATHS of a prefix that has more."""
        for index in np.flatnonzero(~found).tolist():
            described = cache.overflow.get(int(ids[index]))
            if described is None:
                continue
            hop = int(named[index])
            path = next((path for path in described[ROW_PATHS:] if path[0] == hop), None)
            if path is not None:
                picked_hop[index], picked_asn[index] = path

    def _hop_id(self, cache: _SwitchCache, name: str) -> int:
        found = cache.hop_index.get(name)
        if found is None:
            found = cache.hop_index[name] = len(cache.hop_names)
            cache.hop_names.append(name)
        return found

    def _rib_hop_id(self, cache: _SwitchCache, written: str) -> int:
        found = cache.rib_hop.get(written)
        if found is None:
            found = cache.rib_hop[written] = self._hop_id(cache, canonical_address(written))
        return found

    def _resolve(self, cache: _SwitchCache, rib: PathSource, lpm: LpmTable, ids: IntArray) -> None:
        """Decide the path of ``ids`` (distinct), reading again only prefixes whose paths changed."""
        cache.resolved[ids] = True
        known = rib.path_versions()
        current = np.zeros(len(ids), np.uint32)
        inside = ids < len(known)
        current[inside] = known[ids[inside]]
        stale = cache.versions[ids] != current
        cache.versions[ids[stale]] = current[stale]
        for prefix_id in ids[stale].tolist():
            paths = rib.paths(lpm.prefix_of_id(prefix_id))
            if not paths:  # the LPM table and the RIB disagree for a moment: no path to name
                cache.best_hop[prefix_id] = -1
                cache.best_asn[prefix_id] = 0
                cache.drop_row(prefix_id)
                continue
            described = tuple(
                (self._rib_hop_id(cache, path.next_hop), path.as_path[0] if path.as_path else 0)
                for path in paths
            )
            cache.best_hop[prefix_id], cache.best_asn[prefix_id] = described[0]
            if len(described) > 1:
                cache.add_row(prefix_id, described)
            else:
                cache.drop_row(prefix_id)
