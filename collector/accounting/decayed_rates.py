"""Exponentially decayed sums on one half-life, and what they read as: rates, evidence, score.

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
Used per (switch, prefix) by :mod:`~topfib.collector.accounting.prefix_rates` and per (switch,
path) by :mod:`~topfib.collector.accounting.path_rates`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_RESCALE_EXPONENT = 64.0  # rescale when stored values carry more than 2^64 of epoch scaling
_MIN_WINDOW_S = 1.0  # shortest observation window used for the start-up correction

# rows of the per-half-life value matrix
BYTES, PACKETS, SAMPLES = 0, 1, 2

FloatArray = npt.NDArray[np.float64]

_Z95 = 1.96  # two-sided 95 % normal quantile


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



class Decay:
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


def summary(
    fast: Decay,
    slow: Decay,
    fast_values: FloatArray,
    slow_values: FloatArray,
    fast_squares: float,
    slow_squares: float,
    now: float,
    since: float,
    fast_min_samples: float,
) -> RateSummary:
    """Rates from stored (epoch-scaled) rows: bytes, packets, samples and Σw² per half-life;
    score and samples as :func:`score_with_samples` gives them."""
    fast_rate = fast.rate_factor(now, since)
    slow_rate = slow.rate_factor(now, since)
    fast_bps = float(fast_values[BYTES]) * fast_rate
    slow_bps = float(slow_values[BYTES]) * slow_rate
    fast_samples = effective_one(float(fast_values[SAMPLES]), fast_squares)
    slow_samples = effective_one(float(slow_values[SAMPLES]), slow_squares)
    scored = score_with_samples(np.array([fast_bps]), np.array([fast_samples]), np.array([slow_bps]),
                                np.array([slow_samples]), fast_min_samples)
    score, samples = float(scored[0][0]), float(scored[1][0])
    return RateSummary(
        fast_bps=fast_bps,
        slow_bps=slow_bps,
        fast_pps=float(fast_values[PACKETS]) * fast_rate,
        slow_pps=float(slow_values[PACKETS]) * slow_rate,
        score=score,
        samples=samples,
        error_pct=error_pct(samples),
    )


def score_with_samples(fast_bps: FloatArray, fast_samples: FloatArray, slow_bps: FloatArray,
                       slow_samples: FloatArray, fast_min_samples: float) -> tuple[FloatArray, FloatArray]:
    """Per element: the score (see the module doc) and the effective samples behind it."""
    if fast_min_samples > 0:
        with np.errstate(divide="ignore", invalid="ignore"):  # no samples: nan compares false
            lower = fast_bps * (1.0 - _Z95 / np.sqrt(fast_samples))
            slow_upper = slow_bps * (1.0 + _Z95 / np.sqrt(slow_samples))
            lifts = (fast_samples >= fast_min_samples) & (lower > slow_upper)
        fast_bps = np.where(lifts, lower, 0.0)
    from_fast = fast_bps >= slow_bps
    return np.where(from_fast, fast_bps, slow_bps), np.where(from_fast, fast_samples, slow_samples)


def effective(sums: FloatArray, squares: FloatArray) -> FloatArray:
    """(Σw)²/Σw² per slot (0 where nothing was seen); call under ``np.errstate``."""
    return np.where(squares > 0.0, sums * sums / squares, 0.0)


def effective_one(total: float, squares: float) -> float:
    return total * total / squares if squares > 0.0 else 0.0


EMPTY_SUMMARY = RateSummary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf)
