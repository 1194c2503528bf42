"""Per (switch, prefix) traffic rates: exponentially decayed byte counters on two half-lives.

What a "rate" is here. A decayed counter D(t) = Σ bᵢ·2^(−(t−tᵢ)/h) fed by a steady stream of r
bytes/s converges to r·h/ln 2, so the rate estimate is D·ln2/h. Right after the collector starts
(or a switch is first seen) only T seconds of traffic exist and D has reached r·h/ln2·(1−2^(−T/h));
dividing by that factor makes both estimates read r from the start on a steady stream, so the 1 h
rate is usable minutes after a restart instead of hours.

Decay is lazy, with the global-epoch trick: a sample at time t is stored multiplied by
2^((t−t₀)/h) and read back multiplied by 2^(−(now−t₀)/h). Nothing is touched per tick; when the
exponent grows large every stored value is rescaled once (a numpy multiply) and t₀ moves.

Accuracy. sFlow's estimate of a class with c samples is within ±196·√(1/c) % at 95 %. For a
decayed sum the effective sample count is (Σwᵢ)²/Σwᵢ² (wᵢ the decay weights), so Σwᵢ² is kept
too: it decays with half-life h/2.

Score. Selection ranks prefixes by max(fast, slow) so a prefix turning hot gets in quickly. Under
sampling the fast rate is noisy: one sample alone makes a 30 s rate that beats the true rate of the
16,000th prefix of a Zipf(1.0) full table at 5,000 samples/s and 1:4096. With ``fast_min_samples``
> 0 the fast rate therefore enters only through its 95 % lower bound, fast · (1 − 1.96/√c) for c
effective samples in the fast window, only from ``fast_min_samples`` of them, and only when that
clears the slow rate's upper end: the score moves to the fast rate on a change of rate, not on
noise (a steady prefix whose score flickered between the two would trade its slow rate's evidence
for a handful of fast samples and lose its slot to sampling luck). A burst of ten times the usual
rate clears it within seconds of having a handful of samples. 0 gives the plain max.

All rates are in bytes per second (the ``*_bps`` names say "per second", not "bits").
Prefix ids come from :class:`topfib.collector.rib.lpm.LpmTable` batch lookups; an id → slot cache per switch
keeps the hot path in numpy (one fancy-index and one ``np.add.at`` per row per batch).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt

from topfib.collector.rib.lpm import LpmTable

UNROUTED = "unrouted"  # the name reported for traffic with no RIB match (it follows the default route)

_UNROUTED_SLOT = 0
_RESCALE_EXPONENT = 64.0  # rescale when stored values carry more than 2^64 of epoch scaling
_MIN_WINDOW_S = 1.0  # shortest observation window used for the start-up correction
_INITIAL_CAPACITY = 1024

# rows of the per-half-life value matrix
_BYTES, _PACKETS, _SAMPLES = 0, 1, 2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_Z95 = 1.96  # two-sided 95 % normal quantile
# Scores a selection reads per FIB slot (see PrefixRates.selection_inputs): room for the units and
# ties the greedy skips, far past where the contest is decided.
CANDIDATES_PER_SLOT = 4
_EXPORT_CHUNK = 16_384  # prefixes looked at per step of a warm-state export (export_rows)


def error_pct(effective_samples: float) -> float:
    """95 % relative error of an sFlow estimate from ``effective_samples`` samples (inf if none)."""
    return 196.0 / math.sqrt(effective_samples) if effective_samples > 0 else math.inf


@dataclass(frozen=True, slots=True)
class RateSummary:
    """Decayed rates of one traffic class (bytes/s and packets/s)."""

    fast_bps: float
    slow_bps: float
    fast_pps: float
    slow_pps: float
    score: float  # max(slow_bps, fast_bps or its lower bound: see the module doc)
    samples: float  # effective sample count behind ``score``
    error_pct: float  # ±% at 95 % for ``score``


@dataclass(frozen=True, slots=True)
class SelectionInputs:
    """What a selection reads from the rates (see :meth:`PrefixRates.selection_inputs`)."""

    scores: dict[str, float]  # prefix → score
    evidence: dict[str, float]  # prefix → effective samples behind its score, same key order
    total: float  # the sum of every routed score, including those left out


@dataclass(frozen=True, slots=True)
class PrefixRate:
    """One prefix's rates on one switch."""

    prefix: str
    fast_bps: float
    slow_bps: float
    fast_pps: float
    slow_pps: float
    score: float
    samples: float
    error_pct: float


@dataclass(frozen=True, slots=True)
class RateRow:
    """One prefix's decayed sums at a moment, per half-life: (bytes, packets, samples, Σw²)."""

    prefix: str
    fast: tuple[float, float, float, float]
    slow: tuple[float, float, float, float]


class _Decay:
    """The values of one half-life for one switch, stored epoch-scaled."""

    def __init__(self, half_life_s: float, capacity: int) -> None:
        self.half_life_s = half_life_s
        self.epoch: float | None = None  # t₀; set by the first update
        self.values: FloatArray = np.zeros((3, capacity))  # bytes, packets, samples
        self.squares: FloatArray = np.zeros(capacity)  # Σw², scaled by the square of the weight
        self.total: FloatArray = np.zeros(3)  # all traffic of the switch (routed + unrouted)
        self.total_squares = 0.0

    def grow(self, capacity: int) -> None:
        values = np.zeros((3, capacity))
        values[:, : self.values.shape[1]] = self.values
        squares = np.zeros(capacity)
        squares[: self.squares.shape[0]] = self.squares
        self.values, self.squares = values, squares

    def weight(self, now: float) -> float:
        """The epoch-scaled weight of a sample taken at ``now`` (rescaling first if needed)."""
        if self.epoch is None:
            self.epoch = now
        exponent = (now - self.epoch) / self.half_life_s
        if exponent > _RESCALE_EXPONENT:
            self._rescale(now)
            exponent = 0.0
        return float(2.0**exponent)

    def _rescale(self, now: float) -> None:
        assert self.epoch is not None
        factor = 2.0 ** (-(now - self.epoch) / self.half_life_s)
        self.values *= factor
        self.squares *= factor * factor
        self.total *= factor
        self.total_squares *= factor * factor
        # values that decayed below the smallest normal float are noise; flush them to zero
        self.values[self.values < 1e-300] = 0.0
        self.squares[self.squares < 1e-300] = 0.0
        self.epoch = now

    def read_factor(self, now: float) -> float:
        """Multiply stored values by this to get decayed sums at ``now``."""
        if self.epoch is None:
            return 0.0
        return float(2.0 ** (-(now - self.epoch) / self.half_life_s))

    def rate_factor(self, now: float, since: float) -> float:
        """Multiply stored values by this to get per-second rates at ``now`` (start-up corrected)."""
        window = max(now - since, _MIN_WINDOW_S)
        ln2_over_h = math.log(2.0) / self.half_life_s
        filled = -math.expm1(-ln2_over_h * window)  # 1 − 2^(−window/h)
        return self.read_factor(now) * ln2_over_h / filled


@dataclass
class _SwitchRates:
    fast: _Decay
    slow: _Decay
    first_seen: float
    slot_of_prefix: dict[str, int] = field(default_factory=dict)
    prefix_of_slot: list[str | None] = field(default_factory=lambda: [UNROUTED])
    free_slots: list[int] = field(default_factory=list)
    # id → slot cache for one LpmTable: slot_of_id[id + 1] (index 0 is "no match"), -1 unresolved
    cached_lpm: LpmTable | None = None
    slot_of_id: IntArray = field(default_factory=lambda: np.zeros(1, np.int64))
    id_of_slot: IntArray = field(default_factory=lambda: np.full(_INITIAL_CAPACITY, -1, np.int64))

    @property
    def capacity(self) -> int:
        return int(self.fast.values.shape[1])


class PrefixRates:
    """Decayed byte/packet rates per (switch, prefix), plus unrouted and total per switch.

    Thread-safe: the collector writes from its thread, the controller and API read.
    """

    def __init__(
        self, fast_half_life_s: float = 30.0, slow_half_life_s: float = 3600.0, fast_min_samples: float = 0.0
    ) -> None:
        if not (fast_half_life_s > 0 and slow_half_life_s > 0):
            raise ValueError("half-lives must be positive")
        if not fast_min_samples >= 0:
            raise ValueError("fast_min_samples must be 0 or more")
        self.fast_half_life_s = fast_half_life_s
        self.slow_half_life_s = slow_half_life_s
        self.fast_min_samples = fast_min_samples
        self._switches: dict[str, _SwitchRates] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- writing

    def _switch(self, switch: str, now: float) -> _SwitchRates:
        rates = self._switches.get(switch)
        if rates is None:
            rates = _SwitchRates(
                fast=_Decay(self.fast_half_life_s, _INITIAL_CAPACITY),
                slow=_Decay(self.slow_half_life_s, _INITIAL_CAPACITY),
                first_seen=now,
            )
            self._switches[switch] = rates
        return rates

    @staticmethod
    def _slot_for(rates: _SwitchRates, prefix: str) -> int:
        slot = rates.slot_of_prefix.get(prefix)
        if slot is None:
            slot = PrefixRates._allocate(rates, [prefix])[0]
        return slot

    @staticmethod
    def _allocate(rates: _SwitchRates, prefixes: list[str]) -> list[int]:
        """Slots for prefixes that have none (free slots first, then new ones at the end)."""
        reused = rates.free_slots[-len(prefixes) :] if prefixes else []
        del rates.free_slots[len(rates.free_slots) - len(reused) :]
        for slot, prefix in zip(reused, prefixes, strict=False):
            rates.prefix_of_slot[slot] = prefix
        start = len(rates.prefix_of_slot)
        rates.prefix_of_slot.extend(prefixes[len(reused) :])
        slots = reused + list(range(start, len(rates.prefix_of_slot)))
        if len(rates.prefix_of_slot) > rates.capacity:
            capacity = max(rates.capacity * 2, len(rates.prefix_of_slot))
            rates.fast.grow(capacity)
            rates.slow.grow(capacity)
            grown = np.full(capacity, -1, np.int64)
            grown[: len(rates.id_of_slot)] = rates.id_of_slot
            rates.id_of_slot = grown
        rates.slot_of_prefix.update(zip(prefixes, slots, strict=True))
        return slots

    @staticmethod
    def _accumulate(
        rates: _SwitchRates,
        slots: IntArray,
        nbytes: FloatArray,
        npackets: FloatArray,
        samples: FloatArray,
        now: float,
    ) -> None:
        for decay in (rates.fast, rates.slow):
            weight = decay.weight(now)
            np.add.at(decay.values[_BYTES], slots, nbytes * weight)
            np.add.at(decay.values[_PACKETS], slots, npackets * weight)
            np.add.at(decay.values[_SAMPLES], slots, samples * weight)
            # each sample has weight w: Σw² gains w² per sample
            np.add.at(decay.squares, slots, samples * (weight * weight))
            decay.total += weight * np.array([nbytes.sum(), npackets.sum(), samples.sum()])
            decay.total_squares += weight * weight * float(samples.sum())

    def add(
        self,
        switch: str,
        prefix: str | None,
        nbytes: float,
        npackets: float,
        now: float,
        samples: int = 1,
    ) -> None:
        """Account ``samples`` flow samples (already scaled to bytes/packets) to ``prefix``.

        ``prefix`` None means no RIB match: the traffic is counted as unrouted.
        """
        with self._lock:
            rates = self._switch(switch, now)
            slot = _UNROUTED_SLOT if prefix is None else self._slot_for(rates, prefix)
            for decay in (rates.fast, rates.slow):
                weight = decay.weight(now)
                increment = np.array((nbytes, npackets, samples), np.float64) * weight
                decay.values[:, slot] += increment
                decay.squares[slot] += samples * weight * weight
                decay.total += increment
                decay.total_squares += samples * weight * weight

    def add_batch(
        self,
        switch: str,
        lpm: LpmTable,
        prefix_ids: IntArray,
        nbytes: FloatArray,
        npackets: FloatArray,
        now: float,
    ) -> None:
        """Account one sample per element: ``prefix_ids`` from ``lpm.lookup_*_ids`` (-1 = unrouted).

        The LpmTable must not give an id to another prefix while this object caches it; when a
        prefix leaves the RIB call :meth:`forget`.
        """
        if len(prefix_ids) == 0:
            return
        with self._lock:
            rates = self._switch(switch, now)
            slots = self._slots_of_ids(rates, lpm, prefix_ids)
            self._accumulate(
                rates,
                slots,
                np.asarray(nbytes, np.float64),
                np.asarray(npackets, np.float64),
                np.ones(len(slots), np.float64),
                now,
            )

    def _slots_of_ids(self, rates: _SwitchRates, lpm: LpmTable, prefix_ids: IntArray) -> IntArray:
        if rates.cached_lpm is not lpm:
            # a new table object (RIB reload): its ids mean other prefixes
            rates.cached_lpm = lpm
            rates.slot_of_id = np.full(1024, -1, np.int64)
            rates.slot_of_id[0] = _UNROUTED_SLOT
            rates.id_of_slot[:] = -1
        index = prefix_ids.astype(np.int64, copy=False) + 1
        highest = int(index.max())
        if highest >= len(rates.slot_of_id):
            grown = np.full(max(highest + 1, 2 * len(rates.slot_of_id)), -1, np.int64)
            grown[: len(rates.slot_of_id)] = rates.slot_of_id
            rates.slot_of_id = grown
        slots = rates.slot_of_id[index]
        unresolved = slots < 0
        if unresolved.any():
            # ids seen for the first time: name them in one pass, then they stay cached
            new_index = np.unique(index[unresolved])
            names = list(map(lpm.prefix_of_id, (new_index - 1).tolist()))
            known = rates.slot_of_prefix
            found = [known.get(name, -1) for name in names]
            fresh = [name for name, slot in zip(names, found, strict=True) if slot < 0]
            fresh_slots = iter(self._allocate(rates, fresh))
            new_slots = np.array([slot if slot >= 0 else next(fresh_slots) for slot in found], np.int64)
            rates.slot_of_id[new_index] = new_slots
            rates.id_of_slot[new_slots] = new_index - 1
            slots = rates.slot_of_id[index]
        return slots

    def forget(self, switch: str, prefix: str) -> None:
        """Drop a prefix that left the RIB (its traffic stays in the switch total)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return
            slot = rates.slot_of_prefix.pop(prefix, None)
            if slot is None:
                return
            self._release(rates, slot)

    @staticmethod
    def _release(rates: _SwitchRates, slot: int) -> None:
        for decay in (rates.fast, rates.slow):
            decay.values[:, slot] = 0.0
            decay.squares[slot] = 0.0
        rates.prefix_of_slot[slot] = None
        rates.free_slots.append(slot)
        prefix_id = int(rates.id_of_slot[slot])
        if prefix_id >= 0:
            rates.slot_of_id[prefix_id + 1] = -1
            rates.id_of_slot[slot] = -1

    def prune(self, switch: str, now: float, below_bps: float) -> int:
        """Forget prefixes whose score fell below ``below_bps``; returns how many (frees memory)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return 0
            score = self._score_array(rates, now)
            score[_UNROUTED_SLOT] = math.inf
            stale = [s for s in np.flatnonzero(score < below_bps).tolist() if rates.prefix_of_slot[s]]
            for slot in stale:
                prefix = rates.prefix_of_slot[slot]
                assert prefix is not None
                del rates.slot_of_prefix[prefix]
                self._release(rates, slot)
            return len(stale)

    def remove_switch(self, switch: str) -> None:
        with self._lock:
            self._switches.pop(switch, None)

    # ----------------------------------------------------------------------------- reading

    def switches(self) -> list[str]:
        with self._lock:
            return sorted(self._switches)

    def _score_array(self, rates: _SwitchRates, now: float) -> FloatArray:
        return self._scored(rates, now)[0]

    def _scored(self, rates: _SwitchRates, now: float) -> tuple[FloatArray, FloatArray]:
        """Per slot: the score and the effective samples (Σw)²/Σw² of the half-life giving it."""
        used = len(rates.prefix_of_slot)
        fast, slow = rates.fast, rates.slow
        fast_bps = fast.values[_BYTES, :used] * fast.rate_factor(now, rates.first_seen)
        slow_bps = slow.values[_BYTES, :used] * slow.rate_factor(now, rates.first_seen)
        # the epoch scaling cancels out: Σw² carries the square of Σw's scale
        with np.errstate(divide="ignore", invalid="ignore"):
            fast_samples = _effective(fast.values[_SAMPLES, :used], fast.squares[:used])
            slow_samples = _effective(slow.values[_SAMPLES, :used], slow.squares[:used])
        return _score(fast_bps, fast_samples, slow_bps, slow_samples, self.fast_min_samples)

    def scores(self, switch: str, now: float) -> dict[str, float]:
        """max(fast, slow) decayed bytes/s of every prefix with traffic (unrouted excluded)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return {}
            score = self._score_array(rates, now)
            score[_UNROUTED_SLOT] = 0.0
            slots = np.flatnonzero(score > 0.0)
            return {_name(rates, s): v for s, v in zip(slots.tolist(), score[slots].tolist(), strict=True)}

    def scores_and_evidence(self, switch: str, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """:meth:`scores`, and the effective sample count behind each (same keys, same order).

        The count is what ``select(..., evidence=...)`` takes: the score is within ±196/√c % at
        95 %. One pass under the lock, numpy throughout: cheap enough for every control loop.
        """
        candidates = self.selection_inputs(switch, now)
        return candidates.scores, candidates.evidence

    def selection_inputs(
        self, switch: str, now: float, limit: int | None = None, keep: Collection[str] = ()
    ) -> SelectionInputs:
        """Scores and evidence for one selection: with ``limit``, only the ``limit`` highest scores
        (and every score tied with the last) plus those of ``keep`` (the incumbents); the total of
        all scores comes along for coverage.

        A full table's traffic scores half a million prefixes after an hour; a FIB of N routes is
        chosen among the top few N of them, and building mappings of all of them took most of a
        control loop. Prefix keys come in slot order, so the same state gives the same mappings.
        """
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return SelectionInputs({}, {}, 0.0)
            score, evidence = self._scored(rates, now)
            score[_UNROUTED_SLOT] = 0.0
            slots = np.flatnonzero(score > 0.0)
            total = float(score[slots].sum())
            if limit is not None and len(slots) > limit:
                kth = len(slots) - max(limit, 1)
                threshold = np.partition(score[slots], kth)[kth]
                wanted = score >= threshold
                slot_of_prefix = rates.slot_of_prefix
                kept = [slot for prefix in keep if (slot := slot_of_prefix.get(prefix)) is not None]
                wanted[kept] = True
                slots = slots[wanted[slots]]
            names = list(map(rates.prefix_of_slot.__getitem__, slots.tolist()))
            return SelectionInputs(
                dict(zip(cast(list[str], names), score[slots].tolist(), strict=True)),
                dict(zip(cast(list[str], names), evidence[slots].tolist(), strict=True)),
                total,
            )

    def evidence(self, switch: str, now: float) -> dict[str, float]:
        """The effective sample count behind each score (see :meth:`scores_and_evidence`)."""
        return self.scores_and_evidence(switch, now)[1]

    def _reading(self, rates: _SwitchRates, slot: int, now: float) -> RateSummary:
        fast, slow = rates.fast, rates.slow
        return _summary(
            fast,
            slow,
            fast.values[:, slot],
            slow.values[:, slot],
            float(fast.squares[slot]),
            float(slow.squares[slot]),
            now,
            rates.first_seen,
            self.fast_min_samples,
        )

    def top(self, switch: str, n: int, now: float) -> list[PrefixRate]:
        """The ``n`` prefixes with the highest score, highest first (ties by prefix string)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None or n <= 0:
                return []
            score = self._score_array(rates, now)
            score[_UNROUTED_SLOT] = 0.0
            candidates = np.flatnonzero(score > 0.0)
            if len(candidates) > n:
                # keep everything tied with the n-th so the tie-break by prefix is deterministic
                kth = np.partition(score[candidates], len(candidates) - n)[len(candidates) - n]
                candidates = candidates[score[candidates] >= kth]
            ordered = sorted(candidates.tolist(), key=lambda s: (-score[s], _name(rates, s)))[:n]
            return [_with_prefix(_name(rates, s), self._reading(rates, s, now)) for s in ordered]

    def rate(self, switch: str, prefix: str, now: float) -> PrefixRate | None:
        """One prefix's rates, or None if it has had no traffic (or was forgotten)."""
        with self._lock:
            rates = self._switches.get(switch)
            slot = None if rates is None else rates.slot_of_prefix.get(prefix)
            if rates is None or slot is None:
                return None
            return _with_prefix(prefix, self._reading(rates, slot, now))

    def unrouted(self, switch: str, now: float) -> RateSummary:
        """Traffic to destinations with no RIB match (it leaves by the default route)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return _EMPTY
            return self._reading(rates, _UNROUTED_SLOT, now)

    def total(self, switch: str, now: float) -> RateSummary:
        """All traffic of the switch, routed and unrouted."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return _EMPTY
            fast, slow = rates.fast, rates.slow
            return _summary(
                fast,
                slow,
                fast.total,
                slow.total,
                fast.total_squares,
                slow.total_squares,
                now,
                rates.first_seen,
                self.fast_min_samples,
            )

    def byte_sums(self, switch: str, now: float, slow: bool = True) -> dict[str, float]:
        """Decayed byte sums (not rates) per prefix, unrouted included under ``unrouted``.

        With half-lives far longer than the observation these are plain byte totals, which is
        how the benchmark checks accounting against another collector.
        """
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return {}
            decay = rates.slow if slow else rates.fast
            used = len(rates.prefix_of_slot)
            sums = decay.values[_BYTES, :used] * decay.read_factor(now)
            slots = np.flatnonzero(sums > 0.0)
            return {_name(rates, s): v for s, v in zip(slots.tolist(), sums[slots].tolist(), strict=True)}

    # ----------------------------------------------------------------------------- warm state

    def export_rows(self, switch: str, now: float, limits: tuple[int, int]) -> tuple[float, list[RateRow]]:
        """The highest-scoring prefixes, ``limits`` (IPv4, IPv6) per family, and the unrouted row as decayed
        sums at ``now``, with how long the switch has been observed: what a restart restores."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return 0.0, []
            score = self._score_array(rates, now)
            score[_UNROUTED_SLOT] = 0.0
            slots = np.flatnonzero(score > 0.0)
            kept: list[int] = [_UNROUTED_SLOT]
            names: list[str] = [UNROUTED]
            room = list(limits)  # IPv4, IPv6
            ordered = slots[np.argsort(-score[slots], kind="stable")]
            for start in range(0, len(ordered), _EXPORT_CHUNK):  # both families are full early
                for slot in ordered[start:start + _EXPORT_CHUNK].tolist():
                    name = _name(rates, slot)
                    v6 = ":" in name
                    if room[v6] > 0:
                        room[v6] -= 1
                        kept.append(slot)
                        names.append(name)
                if not any(room):
                    break
            tables = []
            for decay in (rates.fast, rates.slow):  # one numpy pass per half-life, not per row
                read = decay.read_factor(now)
                tables.append(np.vstack((decay.values[:, kept] * read, decay.squares[kept] * (read * read))))
            observed_s = now - rates.first_seen
        # building the rows needs no lock: the collector goes on meanwhile
        fast_rows, slow_rows = (table.T.tolist() for table in tables)
        return observed_s, [RateRow(name, tuple(fast), tuple(slow))
                            for name, fast, slow in zip(names, fast_rows, slow_rows, strict=True)]

    def restore_rows(self, switch: str, now: float, rows: list[RateRow], age_s: float,
                     observed_s: float) -> None:
        """Add ``rows`` (from :meth:`export_rows`, ``age_s`` seconds ago) decayed for their age;
        the switch counts as observed since ``observed_s`` before the snapshot."""
        with self._lock:
            rates = self._switch(switch, now)
            rates.first_seen = min(rates.first_seen, now - age_s - observed_s)
            prefixes = [row.prefix for row in rows if row.prefix != UNROUTED]
            self._allocate(rates, [p for p in dict.fromkeys(prefixes) if p not in rates.slot_of_prefix])
            for decay, pick in ((rates.fast, 0), (rates.slow, 1)):
                scale = decay.weight(now) * 2.0 ** (-age_s / decay.half_life_s)
                for row in rows:
                    slot = _UNROUTED_SLOT if row.prefix == UNROUTED else rates.slot_of_prefix[row.prefix]
                    nbytes, npackets, samples, squares = row.fast if pick == 0 else row.slow
                    added = np.array((nbytes, npackets, samples)) * scale
                    decay.values[:, slot] += added
                    decay.squares[slot] += squares * scale * scale
                    decay.total += added
                    decay.total_squares += squares * scale * scale

    def prefix_count(self, switch: str) -> int:
        with self._lock:
            rates = self._switches.get(switch)
            return 0 if rates is None else len(rates.slot_of_prefix)


def _summary(
    fast: _Decay,
    slow: _Decay,
    fast_values: FloatArray,
    slow_values: FloatArray,
    fast_squares: float,
    slow_squares: float,
    now: float,
    since: float,
    fast_min_samples: float,
) -> RateSummary:
    """Rates from stored (epoch-scaled) rows: bytes, packets, samples and Σw² per half-life;
    score and samples as :meth:`PrefixRates._scored` gives them."""
    fast_rate = fast.rate_factor(now, since)
    slow_rate = slow.rate_factor(now, since)
    fast_bps = float(fast_values[_BYTES]) * fast_rate
    slow_bps = float(slow_values[_BYTES]) * slow_rate
    fast_samples = _effective_one(float(fast_values[_SAMPLES]), fast_squares)
    slow_samples = _effective_one(float(slow_values[_SAMPLES]), slow_squares)
    scored = _score(np.array([fast_bps]), np.array([fast_samples]), np.array([slow_bps]),
                    np.array([slow_samples]), fast_min_samples)
    score, samples = float(scored[0][0]), float(scored[1][0])
    return RateSummary(
        fast_bps=fast_bps,
        slow_bps=slow_bps,
        fast_pps=float(fast_values[_PACKETS]) * fast_rate,
        slow_pps=float(slow_values[_PACKETS]) * slow_rate,
        score=score,
        samples=samples,
        error_pct=error_pct(samples),
    )


def _score(fast_bps: FloatArray, fast_samples: FloatArray, slow_bps: FloatArray, slow_samples: FloatArray,
           fast_min_samples: float) -> tuple[FloatArray, FloatArray]:
    """Per element: the score (see the module doc) and the effective samples behind it."""
    if fast_min_samples > 0:
        with np.errstate(divide="ignore", invalid="ignore"):  # no samples: nan compares false
            lower = fast_bps * (1.0 - _Z95 / np.sqrt(fast_samples))
            slow_upper = slow_bps * (1.0 + _Z95 / np.sqrt(slow_samples))
            lifts = (fast_samples >= fast_min_samples) & (lower > slow_upper)
        fast_bps = np.where(lifts, lower, 0.0)
    from_fast = fast_bps >= slow_bps
    return np.where(from_fast, fast_bps, slow_bps), np.where(from_fast, fast_samples, slow_samples)


def _effective(sums: FloatArray, squares: FloatArray) -> FloatArray:
    """(Σw)²/Σw² per slot (0 where nothing was seen); call under ``np.errstate``."""
    return np.where(squares > 0.0, sums * sums / squares, 0.0)


def _effective_one(total: float, squares: float) -> float:
    return total * total / squares if squares > 0.0 else 0.0


def _name(rates: _SwitchRates, slot: int) -> str:
    prefix = rates.prefix_of_slot[slot]
    assert prefix is not None, "a free slot has no traffic"
    return prefix


def _with_prefix(prefix: str, reading: RateSummary) -> PrefixRate:
    return PrefixRate(
        prefix=prefix,
        fast_bps=reading.fast_bps,
        slow_bps=reading.slow_bps,
        fast_pps=reading.fast_pps,
        slow_pps=reading.slow_pps,
        score=reading.score,
        samples=reading.samples,
        error_pct=error_pct(reading.samples),
    )


_EMPTY = RateSummary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf)
