"""GuardedRates: the fast rate counts only once enough samples back it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collector.accounting import PrefixRates
from controller.guarded_scores import GuardedRates
from controller.simulate import PrefixIds

IDS = PrefixIds(["10.0.0.0/24", "10.0.1.0/24"])
HOT, OTHER = "10.0.0.0/24", "10.0.1.0/24"


def slow_rate(nbytes: float, age: float, now: float) -> float:
    """PrefixRates' 1 h rate of ``nbytes`` seen ``age`` s ago, switch first seen at 0 (start-up corrected)."""
    return nbytes * 2 ** (-age / 3600) * math.log(2) / 3600 / (1 - 2 ** (-now / 3600))


def feed(rates: GuardedRates | PrefixRates, prefix_id: int, nbytes: float, now: float) -> None:
    rates.add_batch("sw", IDS, np.array([prefix_id]), np.array([nbytes]), np.array([1.0]), now)


def both() -> tuple[GuardedRates, PrefixRates]:
    guarded, plain = GuardedRates(30.0, 3600.0, 4.0, 64.0), PrefixRates(30.0, 3600.0)
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


def test_enough_samples_let_the_fast_rate_in_through_its_lower_bound() -> None:
    guarded, plain = both()
    for second in range(6):
        for rates in (guarded, plain):
            feed(rates, 0, 1e6, 7200.0 + second)
    fast = plain.scores("sw", 7205.0)[HOT]  # the plain max is the fast rate here
    samples = sum(2 ** (-(5 - second) / 30) for second in range(6))  # decayed sample count
    assert guarded.scores("sw", 7205.0)[HOT] == pytest.approx(
        fast * (1 - 1.96 / math.sqrt(samples)), rel=0.01
    )
    assert fast * (1 - 1.96 / math.sqrt(samples)) > 3 * slow_rate(6e6, 0.0, 7205.0)


def test_a_steady_prefix_keeps_its_slow_rate() -> None:
    guarded, plain = both()
    for second in range(0, 3600, 4):  # one sample every 4 s for an hour: about 11 per fast window
        for rates in (guarded, plain):
            feed(rates, 0, 1e6, 3600.0 + second)
    now = 7199.0
    slow = slow_rate(1e6, 0.0, now) * sum(2 ** (-(3599 - s) / 3600) for s in range(0, 3600, 4))
    assert guarded.scores("sw", now)[HOT] == pytest.approx(slow, rel=0.01)
    assert plain.scores("sw", now)[HOT] > guarded.scores("sw", now)[HOT]  # plain max: the fast window


def test_pruning_the_fast_tables_keeps_slow_history() -> None:
    guarded, _ = both()
    for second in range(6):
        feed(guarded, 0, 1e6, 7200.0 + second)
    later = guarded.scores("sw", 7200.0 + 3600.0)  # fast window long empty, pruned
    assert later[HOT] == pytest.approx(slow_rate(6e6, 3600.0, 10800.0), rel=0.01)
    assert guarded.fast.prefix_count("sw") == 0
    assert OTHER in later
