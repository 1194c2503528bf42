"""Per (switch, prefix, next hop) traffic rates: which of a prefix's paths the traffic takes.

Same semantics as :class:`topfib.collector.accounting.prefix_rates.PrefixRates`: exponentially decayed bytes,
packets and samples on a fast and a slow half-life, read as per-second rates corrected for a
short observation window, stored epoch-scaled so nothing is touched per tick. A path is named by
its prefix and next hop (the attributes of a path may change; its next hop names where the
traffic goes). Memory is bounded per switch: :meth:`PathRates.prune` forgets quiet paths, and a
switch that reaches ``max_paths`` evicts its quietest tenth before taking new ones.

Samples come in as (prefix id, next-hop id) pairs from the collector's attribution, with the
functions that name them; slot caches (``topfib.collector.accounting.path_slots``) keep a batch
to a few numpy passes, no sort of the batch. The caches are valid for one naming (``naming``
token): a new LPM table or a reset next-hop table invalidates them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# the same epoch-scaled decay as the prefix rates (its Σw² row is unused here)
from topfib.collector.accounting.decayed_rates import Decay
from topfib.collector.accounting.path_slots import HOP_BITS, SwitchPaths

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_BYTES, _PACKETS, _SAMPLES = 0, 1, 2
_INITIAL_CAPACITY = 256
MAX_PATHS = 200_000  # per switch: ~50 MB at most (arrays, names and dict entries)
EVICT_SHARE = 0.1  # share of a full switch's paths evicted (the quietest) to make room

# minimum evidence before a next hop counts as dominant (see dominant_next_hops)
DOMINANT_MIN_SHARE = 0.6
DOMINANT_MIN_SAMPLES = 8.0


@dataclass(frozen=True, slots=True)
class PathRate:
    """One path's traffic: bytes/s and packets/s (fast and slow), and its decayed sample count."""

    prefix: str
    next_hop: str
    fast_bps: float
    slow_bps: float
    fast_pps: float
    slow_pps: float
    score: float  # max(fast_bps, slow_bps)
    samples: float  # decayed sample count on the half-life giving the score


@dataclass(frozen=True, slots=True)
class PathRow:
    """One path's decayed sums at a moment, per half-life: (bytes, packets, samples)."""

    prefix: str
    next_hop: str
    fast: tuple[float, float, float]
    slow: tuple[float, float, float]


class PathRates:
    """Decayed byte/packet rates per (switch, prefix, next hop). Thread-safe."""

    def __init__(
        self, fast_half_life_s: float = 30.0, slow_half_life_s: float = 3600.0, max_paths: int = MAX_PATHS
    ) -> None:
        if not (fast_half_life_s > 0 and slow_half_life_s > 0):
            raise ValueError("half-lives must be positive")
        if max_paths < 1:
            raise ValueError("max_paths must be positive")
        self.fast_half_life_s = fast_half_life_s
        self.slow_half_life_s = slow_half_life_s
        self.max_paths = max_paths
        self.evicted = 0  # paths evicted because a switch was full
        self._switches: dict[str, SwitchPaths] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- writing

    def add_batch(
        self,
        switch: str,
        prefix_ids: IntArray,
        hop_ids: IntArray,
        prefix_of_id: Callable[[int], str],
        hop_names: Sequence[str],
        nbytes: FloatArray,
        packets: FloatArray,
        now: float,
        naming: object,
    ) -> None:
        """Account one sample per element to path (``prefix_of_id(id)``, ``hop_names[hop]``).

        Elements with a negative prefix or next-hop id (unrouted, no path) are skipped. ``naming``
        identifies the id spaces (e.g. the LPM table and next-hop table objects): ids are cached
        for as long as the same object is passed.
        """
        keep = (prefix_ids >= 0) & (hop_ids >= 0)
        if not keep.all():
            prefix_ids, hop_ids, nbytes, packets = (
                prefix_ids[keep],
                hop_ids[keep],
                nbytes[keep],
                packets[keep],
            )
        if not len(prefix_ids):
            return
        prefix_ids, hop_ids = prefix_ids.astype(np.int64, copy=False), hop_ids.astype(np.int64, copy=False)
        with self._lock:
            paths = self._switch(switch, now)
            if paths.naming is not naming:
                paths.naming = naming
                paths.clear_cache()
            evicted = self.evicted
            slots = self._sample_slots(paths, prefix_ids, hop_ids, prefix_of_id, hop_names, now)
            if self.evicted != evicted:  # slots found before the eviction may have been freed
                slots = self._sample_slots(paths, prefix_ids, hop_ids, prefix_of_id, hop_names, now, False)
            distinct, inverse = paths.group(slots)
            sums: FloatArray = np.stack(
                (
                    np.bincount(inverse, nbytes, len(distinct)),
                    np.bincount(inverse, packets, len(distinct)),
                    np.bincount(inverse, minlength=len(distinct)).astype(np.float64),
                )
            )
            for decay in (paths.fast, paths.slow):
                weighted: FloatArray = sums * decay.weight(now)
                decay.values[:, distinct] += weighted

    def _sample_slots(
        self,
        paths: SwitchPaths,
        prefix_ids: IntArray,
        hop_ids: IntArray,
        prefix_of_id: Callable[[int], str],
        hop_names: Sequence[str],
        now: float,
        may_evict: bool = True,
    ) -> IntArray:
        """The slot of each sample's path: by its prefix's primary path, else by the key cache
        (allocating slots for paths seen for the first time)."""
        paths.filter_cache()
        slots = paths.primary_slots(prefix_ids, hop_ids)
        missing = np.flatnonzero(slots < 0)
        if len(missing):
            keys = (prefix_ids[missing] << HOP_BITS) | hop_ids[missing]
            unique, inverse = np.unique(keys, return_inverse=True)
            unique_slots = self._slots(paths, unique, prefix_of_id, hop_names, now, may_evict)
            paths.set_primaries(unique, unique_slots)
            slots[missing] = unique_slots[inverse.reshape(-1)]
        return slots

    def _switch(self, switch: str, now: float) -> SwitchPaths:
        paths = self._switches.get(switch)
        if paths is None:
            paths = SwitchPaths(
                Decay(self.fast_half_life_s, _INITIAL_CAPACITY),
                Decay(self.slow_half_life_s, _INITIAL_CAPACITY),
                first_seen=now,
            )
            self._switches[switch] = paths
        return paths

    def _slots(
        self,
        paths: SwitchPaths,
        keys: IntArray,
        prefix_of_id: Callable[[int], str],
        hop_names: Sequence[str],
        now: float,
        may_evict: bool = True,
    ) -> IntArray:
        paths.filter_cache()
        slots = paths.cached(keys)
        missing = np.flatnonzero(slots < 0)
        if not len(missing):
            return slots
        overflow = len(paths.slot_of_path) + len(missing) - self.max_paths
        if overflow > 0 and may_evict:
            # make room before any slot of this batch is used, so none is reused under it
            self._evict_quietest(paths, now, max(overflow, int(self.max_paths * EVICT_SHARE)))
            paths.filter_cache()
            slots = paths.cached(keys)
            missing = np.flatnonzero(slots < 0)
        mask = (1 << HOP_BITS) - 1
        fresh = []
        for key in keys[missing].tolist():
            path = (prefix_of_id(key >> HOP_BITS), hop_names[key & mask])
            slot = paths.slot_of_path.get(path)
            fresh.append(self._allocate(paths, path) if slot is None else slot)
        fresh_slots = np.array(fresh, np.int64)
        slots[missing] = fresh_slots
        paths.remember(keys[missing], fresh_slots)
        return slots

    @staticmethod
    def _allocate(paths: SwitchPaths, path: tuple[str, str]) -> int:
        if paths.free_slots:
            slot = paths.free_slots.pop()
            paths.path_of_slot[slot] = path
        else:
            slot = len(paths.path_of_slot)
            paths.path_of_slot.append(path)
            if slot >= paths.capacity:
                capacity = paths.capacity * 2
                paths.fast.grow(capacity)
                paths.slow.grow(capacity)
        paths.slot_of_path[path] = slot
        paths.slots_of_prefix.setdefault(path[0], {})[path[1]] = slot
        return slot

    def _evict_quietest(self, paths: SwitchPaths, now: float, count: int) -> None:
        score = self._score_array(paths, now)
        used = np.array([slot for slot, path in enumerate(paths.path_of_slot) if path is not None], np.int64)
        quietest = used[np.argsort(score[used], kind="stable")[:count]]
        for slot in quietest.tolist():
            self._release(paths, slot)
        self.evicted += len(quietest)

    @staticmethod
    def _release(paths: SwitchPaths, slot: int) -> None:
        path = paths.path_of_slot[slot]
        assert path is not None
        for decay in (paths.fast, paths.slow):
            decay.values[:, slot] = 0.0
        del paths.slot_of_path[path]
        hops = paths.slots_of_prefix[path[0]]
        del hops[path[1]]
        if not hops:
            del paths.slots_of_prefix[path[0]]
        paths.path_of_slot[slot] = None
        paths.free_slots.append(slot)
        paths.released.append(slot)

    def prune(self, switch: str, now: float, below_bps: float) -> int:
        """Forget paths whose score fell below ``below_bps``; returns how many."""
        with self._lock:
            paths = self._switches.get(switch)
            if paths is None:
                return 0
            score = self._score_array(paths, now)
            quiet = np.flatnonzero(score < below_bps).tolist()
            stale = [slot for slot in quiet if paths.path_of_slot[slot] is not None]
            for slot in stale:
                self._release(paths, slot)
            return len(stale)

    def forget(self, switch: str, prefix: str) -> None:
        """Drop every path of a prefix that left the RIB."""
        with self._lock:
            paths = self._switches.get(switch)
            if paths is None:
                return
            for slot in list(paths.slots_of_prefix.get(prefix, {}).values()):
                self._release(paths, slot)

    def remove_switch(self, switch: str) -> None:
        with self._lock:
            self._switches.pop(switch, None)

    # ----------------------------------------------------------------------------- reading

    def _score_array(self, paths: SwitchPaths, now: float) -> FloatArray:
        used = len(paths.path_of_slot)
        fast = paths.fast.values[_BYTES, :used] * paths.fast.rate_factor(now, paths.first_seen)
        slow = paths.slow.values[_BYTES, :used] * paths.slow.rate_factor(now, paths.first_seen)
        return np.maximum(fast, slow)

    def _reading(self, paths: SwitchPaths, slot: int, now: float) -> PathRate:
        path = paths.path_of_slot[slot]
        assert path is not None
        fast_rate = paths.fast.rate_factor(now, paths.first_seen)
        slow_rate = paths.slow.rate_factor(now, paths.first_seen)
        fast, slow = paths.fast.values[:, slot], paths.slow.values[:, slot]
        fast_bps, slow_bps = float(fast[_BYTES]) * fast_rate, float(slow[_BYTES]) * slow_rate
        on_fast = fast_bps >= slow_bps
        samples = float(fast[_SAMPLES]) * paths.fast.read_factor(now) if on_fast else (
            float(slow[_SAMPLES]) * paths.slow.read_factor(now)
        )  # fmt: skip
        return PathRate(
            prefix=path[0],
            next_hop=path[1],
            fast_bps=fast_bps,
            slow_bps=slow_bps,
            fast_pps=float(fast[_PACKETS]) * fast_rate,
            slow_pps=float(slow[_PACKETS]) * slow_rate,
            score=max(fast_bps, slow_bps),
            samples=samples,
        )

    def paths_of(self, switch: str, prefix: str, now: float) -> list[PathRate]:
        """The prefix's paths with traffic, highest score first (ties by next hop)."""
        with self._lock:
            paths = self._switches.get(switch)
            hops = {} if paths is None else paths.slots_of_prefix.get(prefix, {})
            assert paths is not None or not hops
            readings = [self._reading(paths, slot, now) for slot in hops.values()] if paths else []
        return sorted(readings, key=lambda r: (-r.score, r.next_hop))

    def export_paths(self, switch: str, now: float, prefixes: Iterable[str]) -> list[PathRow]:
        """The paths of ``prefixes`` as decayed sums at ``now`` (what a warm restart restores)."""
        with self._lock:
            paths = self._switches.get(switch)
            if paths is None:
                return []
            reads = (paths.fast.read_factor(now), paths.slow.read_factor(now))
            rows = []
            for prefix in prefixes:
                for hop, slot in paths.slots_of_prefix.get(prefix, {}).items():
                    fast, slow = (decay.values[:, slot] * read
                                  for decay, read in zip((paths.fast, paths.slow), reads, strict=True))
                    rows.append(PathRow(prefix, hop, (float(fast[0]), float(fast[1]), float(fast[2])),
                                        (float(slow[0]), float(slow[1]), float(slow[2]))))
            return rows

    def restore_paths(self, switch: str, now: float, rows: Iterable[PathRow], age_s: float,
                      observed_s: float) -> None:
        """Add ``rows`` (from :meth:`export_paths`, ``age_s`` seconds ago) decayed for their age."""
        with self._lock:
            paths = self._switch(switch, now)
            paths.first_seen = min(paths.first_seen, now - age_s - observed_s)
            for row in rows:
                path = (row.prefix, row.next_hop)
                if path not in paths.slot_of_path and len(paths.slot_of_path) >= self.max_paths:
                    continue  # full: what the collector has seen itself counts more
                slot = paths.slot_of_path.get(path)
                if slot is None:
                    slot = self._allocate(paths, path)
                for decay, sums in ((paths.fast, row.fast), (paths.slow, row.slow)):
                    scale = decay.weight(now) * 2.0 ** (-age_s / decay.half_life_s)
                    decay.values[:, slot] += np.array(sums) * scale

    def path_count(self, switch: str) -> int:
        with self._lock:
            paths = self._switches.get(switch)
            return 0 if paths is None else len(paths.slot_of_path)

    def dominant_next_hops(
        self,
        switch: str,
        now: float,
        prefixes: Iterable[str] | None = None,
        min_share: float = DOMINANT_MIN_SHARE,
        min_samples: float = DOMINANT_MIN_SAMPLES,
    ) -> dict[str, str]:
        """Per prefix with traffic (of ``prefixes``, default all), the next hop carrying most of it.

        Evidence rules, so sampling noise does not flip a choice: the next hop must carry at
        least ``min_share`` of the prefix's bytes and have at least ``min_samples`` (decayed)
        samples behind it. Bytes and samples are read on the fast half-life, which follows a
        router that moved the traffic within a few half-lives, while the prefix has
        ``min_samples`` there; on the slow one when its traffic is too thin for the fast one.
        Between two next hops carrying similar shares, none is dominant (no flapping): prefixes
        without a dominant next hop are absent and the caller keeps its default (the best path).
        Cost: linear in the switch's paths (or in the paths of ``prefixes``).
        """
        with self._lock:
            paths = self._switches.get(switch)
            if paths is None:
                return {}
            names: list[str] = []
            hops: list[str] = []
            slots: list[int] = []
            groups: list[int] = []
            known = paths.slots_of_prefix
            chosen = known if prefixes is None else {p: known[p] for p in prefixes if p in known}
            for prefix, by_hop in chosen.items():
                group = len(names)
                names.append(prefix)
                for hop, slot in by_hop.items():
                    hops.append(hop)
                    slots.append(slot)
                    groups.append(group)
            if not slots:
                return {}
            slot_array, group_of = np.array(slots, np.int64), np.array(groups, np.int64)
            slow_bytes = paths.slow.values[_BYTES, slot_array]
            slow_samples = paths.slow.values[_SAMPLES, slot_array] * paths.slow.read_factor(now)
            fast_bytes = paths.fast.values[_BYTES, slot_array]
            fast_samples = paths.fast.values[_SAMPLES, slot_array] * paths.fast.read_factor(now)
        use_slow = (np.bincount(group_of, fast_samples, len(names)) < min_samples)[group_of]
        nbytes = np.where(use_slow, slow_bytes, fast_bytes)
        samples = np.where(use_slow, slow_samples, fast_samples)
        total = np.bincount(group_of, nbytes, len(names))
        order = np.lexsort((-nbytes, group_of))  # by prefix, most bytes first
        first = order[np.r_[True, group_of[order][1:] != group_of[order][:-1]]]
        dominant = (nbytes[first] > 0.0) & (nbytes[first] >= min_share * total[group_of[first]]) & (
            samples[first] >= min_samples
        )  # fmt: skip
        return {names[int(group_of[i])]: hops[int(i)] for i in first[dominant].tolist()}
