"""PrefixRates(fast_min_samples=…): the fast rate counts for the score only once samples back it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.sim.simulate import PrefixIds

IDS = PrefixIds(["10.0.0.0/24", "10.0.1.0/24"])
HOT, OTHER = "10.0.0.0/24", "10.0.1.0/24"


def slow_rate(nbytes: float, age: float, now: float) -> float:
    """The 1 h rate of ``nbytes`` seen ``age`` s ago, switch first seen at 0 (start-up corrected)."""
    return nbytes * 2 ** (-age / 3600) * math.log(2) / 3600 / (1 - 2 ** (-now / 3600))


def feed(rates: PrefixRates, prefix_id: int, nbytes: float, now: float) -> None:
    rates.add_batch("sw", IDS, np.array([prefix_id]), np.array([nbytes]), np.array([1.0]), now)


def both() -> tuple[PrefixRates, PrefixRates]:
    guarded, plain = PrefixRates(30.0, 3600.0, fast_min_samples=4.0), PrefixRates(30.0, 3600.0)
    for rates in (guarded, plain):
        feed(rates, 1, 1000.0, 0.0)  # the switch has been seen for hours: no start-up correction
    return guarded, plain


def test_one_sample_does_not_make_a_prefix_hot() -> None:
    guarded, plain = both()
    for rates in (guarded, plain):
        feed(rates, 0, 1e6, 7200.0)
    slow_only = slow_rate(1e6, 0.0, 7200.0)
    assert guarded.scores("sw", 7200.0)[HOT] == pytest.approx(slow_only, rel=0.01)
    assert plain.scores("sw", 7200.0)[HOT] > 50 * slow_only  # what the guard prevents
    reading = guarded.rate("sw", HOT, 7200.0)
    assert reading is not None and reading.score == pytest.approx(slow_only, rel=0.01)
    assert reading.fast_bps == pytest.approx(plain.scores("sw", 7200.0)[HOT])  # the rate itself is kept


def test_enough_samples_let_the_fast_rate_in_through_its_lower_bound() -> None:
    guarded, plain = both()
    for second in range(6):
        for rates in (guarded, plain):
            feed(rates, 0, 1e6, 7200.0 + second)
    fast = plain.scores("sw", 7205.0)[HOT]  # the plain max is the fast rate here
    weights = [2 ** (-(5 - second) / 30) for second in range(6)]
    samples = sum(weights) ** 2 / sum(w * w for w in weights)  # effective samples in the fast window
    lower = fast * (1 - 1.96 / math.sqrt(samples))
    scores, evidence = guarded.scores_and_evidence("sw", 7205.0)
    assert scores[HOT] == pytest.approx(lower, rel=1e-6)
    assert evidence[HOT] == pytest.approx(samples, rel=1e-6)
    assert lower > 3 * slow_rate(6e6, 0.0, 7205.0)
    top = guarded.top("sw", 1, 7205.0)
    assert [t.prefix for t in top] == [HOT] and top[0].score == pytest.approx(lower, rel=1e-6)


def test_a_steady_prefix_keeps_its_slow_rate() -> None:
    guarded, plain = both()
    for second in range(0, 3600, 4):  # one sample every 4 s for an hour: about 11 per fast window
        for rates in (guarded, plain):
            feed(rates, 0, 1e6, 3600.0 + second)
    now = 7199.0
    slow = slow_rate(1e6, 0.0, now) * sum(2 ** (-(3599 - s) / 3600) for s in range(0, 3600, 4))
    assert guarded.scores("sw", now)[HOT] == pytest.approx(slow, rel=0.01)
    assert plain.scores("sw", now)[HOT] > guarded.scores("sw", now)[HOT]  # plain max: the fast window


def test_zero_min_samples_is_the_plain_max_and_negative_is_refused() -> None:
    guarded, plain = PrefixRates(30.0, 3600.0, fast_min_samples=0.0), PrefixRates(30.0, 3600.0)
    for rates in (guarded, plain):
        feed(rates, 0, 1e6, 10.0)
        feed(rates, 1, 5e5, 20.0)
    assert guarded.scores_and_evidence("sw", 25.0) == plain.scores_and_evidence("sw", 25.0)
    with pytest.raises(ValueError, match="fast_min_samples"):
        PrefixRates(30.0, 3600.0, fast_min_samples=-1.0)


def test_the_fast_rate_takes_over_only_beyond_the_slow_rates_upper_end() -> None:
    """A steady prefix (a sample a minute for two hours) speeding up a little: the fast lower bound
    passes the slow rate but not its upper end, so the score stays the slow rate with its evidence."""
    guarded, plain = both()
    for rates in (guarded, plain):
        for second in range(0, 7200, 60):
            feed(rates, 0, 1e6, 3600.0 + second)
        for k in range(6):  # one every 8 s: four times the usual rate, for 40 s
            feed(rates, 0, 1e6, 10800.0 + 8 * k)
    now = 10840.0
    reading = plain.rate("sw", HOT, now)
    assert reading is not None and reading.score == reading.fast_bps  # so its samples are the fast ones
    samples_fast = reading.samples
    lower = reading.fast_bps * (1 - 1.96 / math.sqrt(samples_fast))
    slow_evidence = guarded.scores_and_evidence("sw", now)[1][HOT]
    upper = reading.slow_bps * (1 + 1.96 / math.sqrt(slow_evidence))
    assert samples_fast >= 4.0
    assert reading.slow_bps < lower < upper  # the case: above the slow rate, inside its interval
    assert guarded.scores("sw", now)[HOT] == pytest.approx(reading.slow_bps)
    assert slow_evidence > 100  # the slow rate's evidence, not the fast window's handful
