"""PathRates: decayed per-path rates, bounded memory, and the dominant next hop of a prefix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topfib.collector.accounting.path_rates import PathRates

PREFIXES = ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"]
HOPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
NAMING = object()


def add(rates: PathRates, samples: list[tuple[int, int, float]], now: float, naming: object = NAMING) -> None:
    """(prefix index, hop index, bytes) per sample; packets = 1."""
    rates.add_batch(
        "sw",
        np.array([p for p, _, _ in samples], np.int64),
        np.array([h for _, h, _ in samples], np.int64),
        PREFIXES.__getitem__,
        HOPS,
        np.array([b for _, _, b in samples], np.float64),
        np.ones(len(samples)),
        now,
        naming=naming,
    )


def test_rates_converge_on_a_steady_stream_and_decay() -> None:
    rates = PathRates(fast_half_life_s=10.0, slow_half_life_s=100.0)
    for second in range(300):
        add(rates, [(0, 0, 1000.0), (0, 1, 250.0), (0, 1, 250.0)], float(second))
    by_hop = {r.next_hop: r for r in rates.paths_of("sw", PREFIXES[0], 299.0)}
    assert by_hop["10.0.0.1"].fast_bps == pytest.approx(1000.0, rel=0.05)
    assert by_hop["10.0.0.2"].slow_bps == pytest.approx(500.0, rel=0.05)
    assert by_hop["10.0.0.2"].fast_pps == pytest.approx(2.0, rel=0.05)
    assert [r.next_hop for r in rates.paths_of("sw", PREFIXES[0], 299.0)] == ["10.0.0.1", "10.0.0.2"]
    later = {r.next_hop: r for r in rates.paths_of("sw", PREFIXES[0], 309.0)}
    assert later["10.0.0.1"].fast_bps == pytest.approx(by_hop["10.0.0.1"].fast_bps / 2, rel=0.01)


def test_unrouted_and_pathless_samples_are_skipped() -> None:
    rates = PathRates()
    rates.add_batch(
        "sw", np.array([-1, 0, 1]), np.array([0, -1, 2]), PREFIXES.__getitem__, HOPS,
        np.ones(3), np.ones(3), 0.0, naming=NAMING,
    )  # fmt: skip
    assert rates.path_count("sw") == 1
    assert [r.next_hop for r in rates.paths_of("sw", PREFIXES[1], 0.0)] == ["10.0.0.3"]


def test_a_new_naming_drops_the_id_cache_not_the_rates() -> None:
    rates = PathRates(fast_half_life_s=1e6, slow_half_life_s=1e6)
    add(rates, [(0, 0, 10.0)], 0.0)
    # the same ids now mean another path: a new naming object says so
    hops = list(reversed(HOPS))
    rates.add_batch("sw", np.array([0]), np.array([0]), PREFIXES.__getitem__, hops, np.array([5.0]),
                    np.ones(1), 0.0, naming=hops)  # fmt: skip
    assert {r.next_hop: round(r.fast_bps) for r in rates.paths_of("sw", PREFIXES[0], 0.0)} == {
        "10.0.0.1": 10, "10.0.0.3": 5,
    }  # fmt: skip


def test_prune_forget_and_the_cap_bound_memory() -> None:
    rates = PathRates(fast_half_life_s=1.0, slow_half_life_s=1.0, max_paths=4)
    add(rates, [(0, 0, 1.0), (1, 0, 1000.0), (1, 1, 1000.0), (2, 2, 1000.0)], 0.0)
    assert rates.path_count("sw") == 4
    add(rates, [(0, 1, 2000.0)], 0.0)  # full: the quietest path makes room
    assert rates.path_count("sw") == 4 and rates.evicted == 1
    assert {r.next_hop for r in rates.paths_of("sw", PREFIXES[0], 0.0)} == {"10.0.0.2"}
    rates.forget("sw", PREFIXES[1])
    assert rates.paths_of("sw", PREFIXES[1], 0.0) == [] and rates.path_count("sw") == 2
    add(rates, [(2, 2, 1000.0)], 30.0)
    assert rates.prune("sw", 30.0, below_bps=1.0) == 1  # the prefix-0 path went quiet
    assert rates.path_count("sw") == 1
    add(rates, [(0, 0, 7.0)], 30.0)  # freed slots are reused, and their cached ids were dropped
    # 7 bytes read back at once on a 1 s half-life, long after the start: 7·ln 2 bytes/s
    assert [r.fast_bps for r in rates.paths_of("sw", PREFIXES[0], 30.0)] == [pytest.approx(7 * math.log(2))]
    rates.remove_switch("sw")
    assert rates.path_count("sw") == 0 and rates.dominant_next_hops("sw", 30.0) == {}


def test_dominant_next_hop_needs_share_and_samples() -> None:
    rates = PathRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    add(rates, [(0, 1, 100.0)] * 9 + [(0, 0, 100.0)], 0.0)  # 90 % on 10.0.0.2, 9 samples
    add(rates, [(1, 0, 100.0)] * 5 + [(1, 1, 100.0)] * 5, 0.0)  # split: nobody dominates
    add(rates, [(2, 2, 100.0)] * 3, 0.0)  # one next hop, too few samples
    assert rates.dominant_next_hops("sw", 0.0) == {PREFIXES[0]: "10.0.0.2"}
    add(rates, [(2, 2, 100.0)] * 6, 1.0)
    assert rates.dominant_next_hops("sw", 1.0) == {PREFIXES[0]: "10.0.0.2", PREFIXES[2]: "10.0.0.3"}
    assert rates.dominant_next_hops("sw", 1.0, prefixes=[PREFIXES[2], "10.0.0.0/8"]) == {
        PREFIXES[2]: "10.0.0.3"
    }
    assert rates.dominant_next_hops("sw", 1.0, min_share=0.95) == {PREFIXES[2]: "10.0.0.3"}


def test_a_shift_moves_the_dominant_next_hop_but_a_blip_does_not() -> None:
    rates = PathRates(fast_half_life_s=10.0, slow_half_life_s=100.0)
    for second in range(100):
        add(rates, [(0, 0, 100.0)], float(second))
    assert rates.dominant_next_hops("sw", 99.0) == {PREFIXES[0]: "10.0.0.1"}
    for second in range(100, 103):  # three seconds elsewhere: a blip
        add(rates, [(0, 1, 100.0)], float(second))
    assert rates.dominant_next_hops("sw", 102.0) == {PREFIXES[0]: "10.0.0.1"}
    for second in range(103, 110):  # one half-life later, about even: nothing dominates
        add(rates, [(0, 1, 100.0)], float(second))
    assert rates.dominant_next_hops("sw", 109.0) == {}
    for second in range(110, 130):  # the traffic has moved
        add(rates, [(0, 1, 100.0)], float(second))
    assert rates.dominant_next_hops("sw", 129.0) == {PREFIXES[0]: "10.0.0.2"}


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="half-lives"):
        PathRates(fast_half_life_s=0.0)
    with pytest.raises(ValueError, match="max_paths"):
        PathRates(max_paths=0)
    assert math.isfinite(PathRates().fast_half_life_s)
