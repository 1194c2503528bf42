"""Scores whose fast rate counts only when enough samples back it.

Why. score = max(fast, slow) lets a hot prefix in quickly — but under sampling one sample alone
makes a fast rate of (frame × sampling rate) · ln2 / h_fast. At 5,000 samples/s, 1:4096 and a 30 s
half-life that beats the true rate of the 16,000th prefix of a Zipf(1.0) full table: every sample
landing in the long tail would look like a hot prefix, displace an incumbent once its dwell is
over, and sit in the FIB for a dwell of its own. So the fast rate only counts once the fast
window holds ``min_fast_samples`` samples; below that the slow rate alone speaks. The simulator
uses k = 8 (±69 % at 95 %): a prefix whose steady rate gives it 0.5 samples per fast window —
the 30,000th of a Zipf(1.0) table at 5,000 samples/s — reaches 8 by chance about once in 10⁷
windows, while a genuinely hot one (≥ 0.2 samples/s) gets there in about 40 s. With
k = 4 the same prefix gets there once in ~600 windows: thousands of false "hot" entries an hour
across the tens of thousands of prefixes near the cap.

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
    """``add_batch``/``scores`` like PrefixRates, with the fast rate gated by its sample count."""

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

    def scores(self, switch: str, now: float) -> dict[str, float]:
        # keep the fast tables small: forget what has less than one sample left in its window
        self.fast_samples.prune(switch, now, self._one_sample_rate)
        self.fast.prune(switch, now, self._one_sample_bps)
        scores = self.slow.scores(switch, now)
        fast = self.fast.scores(switch, now)
        for prefix, sample_rate in self.fast_samples.scores(switch, now).items():
            if sample_rate * self._samples_per_rate >= self.min_fast_samples:
                fast_bps = fast.get(prefix, 0.0)
                if fast_bps > scores.get(prefix, 0.0):
                    scores[prefix] = fast_bps
        return scores
