"""Per (switch, prefix) traffic rates: exponentially decayed byte counters on two half-lives.

A fast (30 s) and a slow (1 h) half-life per prefix, plus the unrouted traffic and the total per
switch. What the rates mean, their start-up correction, their accuracy and the score selection
ranks by: :mod:`~topfib.collector.accounting.decayed_rates`. Where each prefix is stored and how a
batch of LPM ids reaches its slots: :mod:`~topfib.collector.accounting.prefix_slots`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

import numpy as np

from topfib.collector.accounting.decayed_rates import (
    BYTES,
    EMPTY_SUMMARY,
    SAMPLES,
    Decay,
    FloatArray,
    RateSummary,
    effective,
    error_pct,
    score_with_samples,
    summary,
)
from topfib.collector.accounting.prefix_slots import (
    INITIAL_CAPACITY,
    UNROUTED,
    UNROUTED_SLOT,
    IntArray,
    SwitchRates,
)
from topfib.collector.rib.lpm import LpmTable

# Scores a selection reads per FIB slot (see PrefixRates.selection_inputs): room for the units and
# ties the greedy skips, far past where the contest is decided.
CANDIDATES_PER_SLOT = 4
_EXPORT_CHUNK = 16_384  # prefixes looked at per step of a warm-state export (export_rows)


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
        self._switches: dict[str, SwitchRates] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- writing

    def _switch(self, switch: str, now: float) -> SwitchRates:
        rates = self._switches.get(switch)
        if rates is None:
            rates = SwitchRates(
                fast=Decay(self.fast_half_life_s, INITIAL_CAPACITY),
                slow=Decay(self.slow_half_life_s, INITIAL_CAPACITY),
                first_seen=now,
            )
            self._switches[switch] = rates
        return rates

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
            slot = UNROUTED_SLOT if prefix is None else rates.slot_for(prefix)
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
            slots = rates.slots_of_ids(lpm, prefix_ids)
            rates.accumulate(
                slots,
                np.asarray(nbytes, np.float64),
                np.asarray(npackets, np.float64),
                np.ones(len(slots), np.float64),
                now,
            )

    def forget(self, switch: str, prefix: str) -> None:
        """Drop a prefix that left the RIB (its traffic stays in the switch total)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return
            slot = rates.slot_of_prefix.pop(prefix, None)
            if slot is None:
                return
            rates.release(slot)

    def prune(self, switch: str, now: float, below_bps: float) -> int:
        """Forget prefixes whose score fell below ``below_bps``; returns how many (frees memory)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return 0
            score = self._score_array(rates, now)
            score[UNROUTED_SLOT] = math.inf
            stale = [s for s in np.flatnonzero(score < below_bps).tolist() if rates.prefix_of_slot[s]]
            for slot in stale:
                prefix = rates.prefix_of_slot[slot]
                assert prefix is not None
                del rates.slot_of_prefix[prefix]
                rates.release(slot)
            return len(stale)

    def remove_switch(self, switch: str) -> None:
        with self._lock:
            self._switches.pop(switch, None)

    # ----------------------------------------------------------------------------- reading

    def switches(self) -> list[str]:
        with self._lock:
            return sorted(self._switches)

    def _score_array(self, rates: SwitchRates, now: float) -> FloatArray:
        return self._scored(rates, now)[0]

    def _scored(self, rates: SwitchRates, now: float) -> tuple[FloatArray, FloatArray]:
        """Per slot: the score and the effective samples (Σw)²/Σw² of the half-life giving it."""
        used = len(rates.prefix_of_slot)
        fast, slow = rates.fast, rates.slow
        fast_bps = fast.values[BYTES, :used] * fast.rate_factor(now, rates.first_seen)
        slow_bps = slow.values[BYTES, :used] * slow.rate_factor(now, rates.first_seen)
        # the epoch scaling cancels out: Σw² carries the square of Σw's scale
        with np.errstate(divide="ignore", invalid="ignore"):
            fast_samples = effective(fast.values[SAMPLES, :used], fast.squares[:used])
            slow_samples = effective(slow.values[SAMPLES, :used], slow.squares[:used])
        return score_with_samples(fast_bps, fast_samples, slow_bps, slow_samples, self.fast_min_samples)

    def scores(self, switch: str, now: float) -> dict[str, float]:
        """max(fast, slow) decayed bytes/s of every prefix with traffic (unrouted excluded)."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return {}
            score = self._score_array(rates, now)
            score[UNROUTED_SLOT] = 0.0
            slots = np.flatnonzero(score > 0.0)
            return {rates.name(s): v for s, v in zip(slots.tolist(), score[slots].tolist(), strict=True)}

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
            score[UNROUTED_SLOT] = 0.0
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

    def _reading(self, rates: SwitchRates, slot: int, now: float) -> RateSummary:
        fast, slow = rates.fast, rates.slow
        return summary(
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
            score[UNROUTED_SLOT] = 0.0
            candidates = np.flatnonzero(score > 0.0)
            if len(candidates) > n:
                # keep everything tied with the n-th so the tie-break by prefix is deterministic
                kth = np.partition(score[candidates], len(candidates) - n)[len(candidates) - n]
                candidates = candidates[score[candidates] >= kth]
            ordered = sorted(candidates.tolist(), key=lambda s: (-score[s], rates.name(s)))[:n]
            return [_with_prefix(rates.name(s), self._reading(rates, s, now)) for s in ordered]

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
                return EMPTY_SUMMARY
            return self._reading(rates, UNROUTED_SLOT, now)

    def total(self, switch: str, now: float) -> RateSummary:
        """All traffic of the switch, routed and unrouted."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return EMPTY_SUMMARY
            fast, slow = rates.fast, rates.slow
            return summary(
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
            sums = decay.values[BYTES, :used] * decay.read_factor(now)
            slots = np.flatnonzero(sums > 0.0)
            return {rates.name(s): v for s, v in zip(slots.tolist(), sums[slots].tolist(), strict=True)}

    # ----------------------------------------------------------------------------- warm state

    def export_rows(self, switch: str, now: float, limits: tuple[int, int]) -> tuple[float, list[RateRow]]:
        """The highest-scoring prefixes, ``limits`` (IPv4, IPv6) per family, and the unrouted row as decayed
        sums at ``now``, with how long the switch has been observed: what a restart restores."""
        with self._lock:
            rates = self._switches.get(switch)
            if rates is None:
                return 0.0, []
            score = self._score_array(rates, now)
            score[UNROUTED_SLOT] = 0.0
            slots = np.flatnonzero(score > 0.0)
            kept: list[int] = [UNROUTED_SLOT]
            names: list[str] = [UNROUTED]
            room = list(limits)  # IPv4, IPv6
            ordered = slots[np.argsort(-score[slots], kind="stable")]
            for start in range(0, len(ordered), _EXPORT_CHUNK):  # both families are full early
                for slot in ordered[start:start + _EXPORT_CHUNK].tolist():
                    name = rates.name(slot)
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
            rates.allocate([p for p in dict.fromkeys(prefixes) if p not in rates.slot_of_prefix])
            for decay, pick in ((rates.fast, 0), (rates.slow, 1)):
                scale = decay.weight(now) * 2.0 ** (-age_s / decay.half_life_s)
                for row in rows:
                    slot = UNROUTED_SLOT if row.prefix == UNROUTED else rates.slot_of_prefix[row.prefix]
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

