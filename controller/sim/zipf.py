"""Stationary Zipf traffic over a RIB's prefixes, as a stream of sFlow-like samples.

The prefix of rank r (1-based) gets a share ∝ r^(−α) of the traffic; which prefix holds which
rank is a seeded random permutation, so popularity is unrelated to address or prefix length.
Sampling draws ranks by inverse CDF (one ``searchsorted`` per batch), so a million-prefix table
costs nothing per sample beyond a binary search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Sampled frame sizes: a typical edge mix, mostly full-size frames plus small ACK-sized ones.
FRAME_BYTES = np.array([64.0, 576.0, 1500.0])
FRAME_SHARE = np.array([0.3, 0.1, 0.6])


def parse_zipf(spec: str) -> float | None:
    """α of a ``zipf:ALPHA`` traffic spec, None if ``spec`` is not one; ValueError if malformed."""
    if not spec.startswith("zipf:"):
        return None
    alpha = float(spec.removeprefix("zipf:"))
    if not 0.0 < alpha <= 10.0:
        raise ValueError(f"zipf exponent must be in (0, 10], got {alpha}")
    return alpha


@dataclass(frozen=True)
class ZipfTraffic:
    """Ranks → prefix indices and the cumulative share of each rank."""

    alpha: float
    prefix_of_rank: IntArray
    cumulative: FloatArray

    @classmethod
    def build(cls, prefix_count: int, alpha: float, seed: int) -> ZipfTraffic:
        if prefix_count < 1:
            raise ValueError("need at least one prefix")
        rng = np.random.default_rng(seed)
        weights = np.arange(1, prefix_count + 1, dtype=np.float64) ** -alpha
        cumulative = np.cumsum(weights)
        cumulative /= cumulative[-1]
        return cls(alpha, rng.permutation(prefix_count).astype(np.int64), cumulative)

    def share(self) -> FloatArray:
        """Expected traffic share per prefix index."""
        by_rank = np.diff(self.cumulative, prepend=0.0)
        share = np.empty_like(by_rank)
        share[self.prefix_of_rank] = by_rank
        return share

    def sample(self, count: int, sampling_rate: int, rng: np.random.Generator) -> tuple[IntArray, FloatArray]:
        """``count`` samples: (prefix index, bytes the sample stands for = frame × sampling rate)."""
        ranks = np.searchsorted(self.cumulative, rng.random(count), side="right")
        ranks = np.minimum(ranks, len(self.cumulative) - 1)
        frames = rng.choice(FRAME_BYTES, size=count, p=FRAME_SHARE)
        return self.prefix_of_rank[ranks], frames * float(sampling_rate)
