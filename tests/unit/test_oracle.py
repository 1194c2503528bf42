"""The hindsight oracle the demo and the simulator read coverage against: the best FIB of N routes."""

from __future__ import annotations

import itertools
import random

import pytest

from topfib.collector.rib.paths import BgpPath
from topfib.controller.selection.model import share_of
from topfib.controller.selection.select import SelectionPolicy
from topfib.controller.selection.static_rib import StaticRib
from topfib.controller.sim.oracle import hindsight_fib

NH = "192.0.2.1"


def _rib(count: int) -> StaticRib:
    return StaticRib({f"10.{i}.0.0/16": [BgpPath(next_hop=NH, peer=NH)] for i in range(count)})


def test_the_oracle_holds_the_n_busiest_prefixes_whatever_the_stability_knobs() -> None:
    traffic = {f"10.{i}.0.0/16": float(100 - i) for i in range(10)}
    sticky = SelectionPolicy(cap_ipv4=3, cap_ipv6=1, margin=5.0, min_dwell_s=3600.0)
    assert sorted(hindsight_fib(traffic, _rib(10), sticky)) == ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"]


def test_no_fib_of_the_same_cap_covers_more_than_the_oracle() -> None:
    rng = random.Random(7)
    traffic = {f"10.{i}.0.0/16": rng.paretovariate(1.1) for i in range(8)}
    policy = SelectionPolicy(cap_ipv4=3, cap_ipv6=1)
    best = share_of(traffic, hindsight_fib(traffic, _rib(8), policy))
    assert best is not None
    for fib in itertools.combinations(traffic, 3):
        share = share_of(traffic, fib)
        assert share is not None and share <= best + 1e-12


@pytest.mark.parametrize(("traffic", "prefixes", "total", "share"), [
    ({"a": 3.0, "b": 1.0}, ["a"], None, 0.75),
    ({"a": 3.0, "b": 1.0}, ["a", "c"], 6.0, 0.5),
    ({}, ["a"], None, None),
    ({"a": 0.0}, ["a"], None, None),
])
def test_share_of(traffic: dict[str, float], prefixes: list[str], total: float | None,
                  share: float | None) -> None:
    assert share_of(traffic, prefixes, total) == share
