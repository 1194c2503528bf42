"""Scores that let the fast rate in only on evidence: max(slow, 95 % lower bound of fast).

Why. score = max(fast, slow) lets a hot prefix in quickly — but under sampling the fast rate is
noisy. One sample alone makes a fast rate of (frame × sampling rate) · ln2 / h_fast: at 5,000
samples/s, 1:4096 and a 30 s half-life that beats the true rate of the 16,000th prefix of a
Zipf(1.0) full table, so every sample landing in the long tail looks hot. And a prefix with ~10
samples per fast window (the 1,000th of that table) has a fast estimate that is ±60 % at 95 %: its
max with the slow rate sits well above the truth, and near the cap such prefixes trade places
every few minutes. A sample-count floor alone (fast counts from k samples) fixes the first, not
the second — measured: 476 % of N per hour at N = 2,000 on a 20k table with k = 8.

So the fast rate enters through its lower bound at 95 %, fast · (1 − 1.96/√c) for c effective
samples in the fast window (DESIGN's "±196·√(1/c) %"), and only from ``min_fast_samples``. A
steady prefix's lower bound stays below its slow rate; a burst of ten times the usual rate
clears it within seconds of having a handful of samples.

Built from three :class:`collector.accounting.PrefixRates` (slow bytes, fast bytes, fast sample
count) through their public API only. The fast ones are pruned below one sample's worth, so they
hold just the recently active prefixes. The same rule belongs in ``PrefixRates.scores`` for the
service; this class is how the simulator measures what it buys.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from collector.accounting import PrefixRates
from collector.lpm import LpmTable


class GuardedRates:
    """``add_batch``/``scores`` like PrefixRates; the fast rate counts through its lower bound."""

    def __init__(
        self,
        fast_half_life_s: float,
        slow_half_life_s: float,
        min_fast_samples: float,
        smallest_sample_bytes: float,
    ) -> None:
        self.slow = PrefixRates(slow_half_life_s, slow_half_life_s)
        self.fast = PrefixRates(fast_half_life_s, fast_half_life_s)
        self.fast_samples = PrefixRates(fast_half_life_s, fast_half_life_s)
        self.min_fast_samples = min_fast_samples
        # a rate of r per second in a decayed counter of half-life h holds r·h/ln2 of its unit
        self._samples_per_rate = fast_half_life_s / math.log(2.0)
        self._one_sample_rate = 1.0 / self._samples_per_rate
        self._one_sample_bps = smallest_sample_bytes / self._samples_per_rate
        self._lifted: dict[str, float] = {}  # prefix → fast-window samples, where fast gave the score

    def add_batch(
        self,
        switch: str,
        lpm: LpmTable,
        prefix_ids: npt.NDArray[np.int64],
        nbytes: npt.NDArray[np.float64],
        npackets: npt.NDArray[np.float64],
        now: float,
    ) -> None:
        self.slow.add_batch(switch, lpm, prefix_ids, nbytes, npackets, now)
        self.fast.add_batch(switch, lpm, prefix_ids, nbytes, npackets, now)
        ones = np.ones(len(prefix_ids), np.float64)
        self.fast_samples.add_batch(switch, lpm, prefix_ids, ones, ones, now)

    def evidence(self, switch: str, now: float) -> dict[str, float]:
        """Samples behind each score of the last :meth:`scores` call, in its order.

        The slow rate's effective sample count (PrefixRates keeps it exactly), or for a score the
        fast rate lifted, the samples in the fast window: each score's own evidence.
        """
        evidence = self.slow.evidence(switch, now)
        evidence.update(self._lifted)
        return evidence

    def scores(self, switch: str, now: float) -> dict[str, float]:
        # keep the fast tables small: forget what has less than one sample left in its window
        self.fast_samples.prune(switch, now, self._one_sample_rate)
        self.fast.prune(switch, now, self._one_sample_bps)
        scores = self.slow.scores(switch, now)
        fast = self.fast.scores(switch, now)
        self._lifted = {}
        for prefix, sample_rate in self.fast_samples.scores(switch, now).items():
            samples = sample_rate * self._samples_per_rate
            if samples >= self.min_fast_samples:
                lower_bound = fast.get(prefix, 0.0) * (1.0 - 1.96 / math.sqrt(samples))
                if lower_bound > scores.get(prefix, 0.0):
                    scores[prefix] = lower_bound
                    self._lifted[prefix] = samples
        return scores
