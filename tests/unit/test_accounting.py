"""PrefixRates: decayed rates against steady streams, decay, unrouted, ids, forgetting, top."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topfib.collector.accounting.decayed_rates import error_pct
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.rib.lpm import LpmTable

MB = 1_000_000.0


def feed_steady(
    rates: PrefixRates, prefix: str | None, bps: float, start: float, end: float, step: float
) -> None:
    """``bps`` bytes/s delivered in chunks every ``step`` seconds over [start, end)."""
    steps = round((end - start) / step)
    for i in range(steps):
        rates.add("sw", prefix, bps * step, bps * step / 1000, start + (i + 1) * step)


@pytest.mark.parametrize("read_at", [600.0, 4 * 3600.0])
def test_constant_stream_reads_its_rate_on_both_half_lives(read_at: float) -> None:
    rates = PrefixRates()
    feed_steady(rates, "192.0.2.0/24", MB, 0.0, read_at, 1.0)
    # read half a step after the last chunk: chunking biases readings by ±λ·step/2 around it
    reading = rates.rate("sw", "192.0.2.0/24", read_at + 0.5)
    assert reading is not None
    assert reading.fast_bps == pytest.approx(MB, rel=0.01)
    assert reading.slow_bps == pytest.approx(MB, rel=0.01)
    assert reading.fast_pps == pytest.approx(MB / 1000, rel=0.01)
    assert reading.score == max(reading.fast_bps, reading.slow_bps)
    assert rates.scores("sw", read_at + 0.5) == {"192.0.2.0/24": reading.score}


def test_fast_rate_halves_per_fast_half_life_after_the_stream_stops() -> None:
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    feed_steady(rates, "192.0.2.0/24", MB, 0.0, 3 * 3600.0, 0.5)
    stop = 3 * 3600.0
    before = rates.rate("sw", "192.0.2.0/24", stop)
    after = rates.rate("sw", "192.0.2.0/24", stop + 30.0)
    assert before is not None and after is not None
    assert after.fast_bps / before.fast_bps == pytest.approx(0.5, rel=0.01)
    assert after.slow_bps / before.slow_bps == pytest.approx(2 ** (-30 / 3600), rel=0.01)
    # the slow rate holds the score up: a cooling prefix leaves slowly
    assert after.score == after.slow_bps


def test_new_hot_prefix_is_seen_by_the_fast_rate_first() -> None:
    rates = PrefixRates()
    feed_steady(rates, "10.0.0.0/8", MB, 0.0, 7200.0, 1.0)
    for i in range(60):
        now = 7200.0 + i + 1
        rates.add("sw", "10.0.0.0/8", MB, 1, now)
        rates.add("sw", "192.0.2.0/24", 5 * MB, 1, now)
    hot = rates.rate("sw", "192.0.2.0/24", 7260.5)
    assert hot is not None
    assert hot.fast_bps > 0.7 * 5 * MB  # 60 s = 2 fast half-lives: 75 % there
    assert hot.slow_bps < 0.02 * 5 * MB
    assert [p.prefix for p in rates.top("sw", 2, 7260.5)] == ["192.0.2.0/24", "10.0.0.0/8"]


def test_unrouted_and_total() -> None:
    rates = PrefixRates()
    feed_steady(rates, None, 2 * MB, 0.0, 600.0, 1.0)
    feed_steady(rates, "2001:db8::/32", MB, 0.0, 600.0, 1.0)
    assert rates.unrouted("sw", 600.5).fast_bps == pytest.approx(2 * MB, rel=0.01)
    assert rates.total("sw", 600.5).fast_bps == pytest.approx(3 * MB, rel=0.01)
    assert "unrouted" not in rates.scores("sw", 600.5)
    assert [p.prefix for p in rates.top("sw", 10, 600.5)] == ["2001:db8::/32"]


def test_unknown_switch_reads_empty() -> None:
    rates = PrefixRates()
    assert rates.scores("nope", 1.0) == {}
    assert rates.top("nope", 5, 1.0) == []
    assert rates.total("nope", 1.0).score == 0.0
    assert rates.unrouted("nope", 1.0).error_pct == math.inf
    assert rates.rate("nope", "192.0.2.0/24", 1.0) is None


def test_samples_at_one_instant_give_the_sflow_error() -> None:
    rates = PrefixRates()
    rates.add("sw", "192.0.2.0/24", 1000.0, 1.0, 10.0, samples=100)
    reading = rates.rate("sw", "192.0.2.0/24", 10.0)
    assert reading is not None
    assert reading.samples == pytest.approx(100)
    assert reading.error_pct == pytest.approx(19.6)
    assert error_pct(1000) == pytest.approx(6.198, rel=1e-3)
    assert error_pct(0) == math.inf


def test_effective_samples_of_a_steady_sample_stream() -> None:
    # ρ samples/s with weights 2^(−age/h): (Σw)²/Σw² → 2ρh/ln2 at steady state
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=60.0)
    for i in range(3000):
        rates.add("sw", "192.0.2.0/24", 1500.0, 1.0, i * 0.1, samples=1)
    reading = rates.rate("sw", "192.0.2.0/24", 299.9)
    assert reading is not None
    winner_h = 30.0 if reading.fast_bps >= reading.slow_bps else 60.0
    assert reading.samples == pytest.approx(2 * 10 * winner_h / math.log(2), rel=0.02)


def test_evidence_is_the_sample_count_behind_each_score_in_score_order() -> None:
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    rng = np.random.default_rng(3)
    prefixes = [f"10.0.{i}.0/24" for i in range(20)]
    for second in range(600):
        # a steady mix, and one prefix that turns hot at the end (its score is the fast rate)
        for i in rng.choice(20, 3, p=np.arange(20, 0, -1) / 210).tolist():
            rates.add("sw", prefixes[i], 1500.0, 1.0, float(second))
        if second > 560:
            rates.add("sw", prefixes[19], 1500.0, 1.0, float(second), samples=5)
    rates.add("sw", None, 1500.0, 1.0, 600.0)  # unrouted: never in scores nor evidence
    scores, evidence = rates.scores_and_evidence("sw", 600.0)
    assert list(evidence) == list(scores) == list(rates.scores("sw", 600.0))
    assert evidence == rates.evidence("sw", 600.0)
    for prefix, samples in evidence.items():
        reading = rates.rate("sw", prefix, 600.0)
        assert reading is not None
        assert samples == pytest.approx(reading.samples)
    hot = rates.rate("sw", prefixes[19], 600.0)
    assert hot is not None and hot.fast_bps > hot.slow_bps
    assert rates.scores_and_evidence("nobody", 1.0) == ({}, {})


def test_add_batch_matches_add_and_handles_unrouted_ids() -> None:
    lpm = LpmTable(["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"])
    addresses = np.array([0x0A010203, 0x0A020304, 0xC0000201, 0x08080808, 0x0A010101], np.uint32)
    ids = lpm.lookup_v4_ids(addresses)
    nbytes = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
    packets = np.ones(5)
    batched = PrefixRates()
    batched.add_batch("sw", lpm, ids, nbytes, packets, 5.0)
    single = PrefixRates()
    for address, size in zip(addresses.tolist(), nbytes.tolist(), strict=True):
        single.add("sw", lpm.lookup_int(4, address), size, 1.0, 5.0)
    assert batched.scores("sw", 6.0) == pytest.approx(single.scores("sw", 6.0))
    assert set(batched.scores("sw", 6.0)) == {"10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"}
    assert batched.unrouted("sw", 6.0).fast_bps == pytest.approx(single.unrouted("sw", 6.0).fast_bps)
    assert batched.total("sw", 6.0).samples == pytest.approx(5)
    top = batched.top("sw", 1, 6.0)[0]
    assert top.prefix == "10.1.0.0/16"
    assert top.samples == pytest.approx(2)


def test_forget_drops_the_prefix_and_its_cached_id() -> None:
    lpm = LpmTable(["10.0.0.0/8", "192.0.2.0/24"])
    rates = PrefixRates()
    ids = lpm.lookup_v4_ids(np.array([0x0A000001, 0xC0000201], np.uint32))
    rates.add_batch("sw", lpm, ids, np.array([1000.0, 1000.0]), np.ones(2), 1.0)
    rates.forget("sw", "10.0.0.0/8")
    rates.forget("sw", "never-seen")
    rates.forget("other-switch", "10.0.0.0/8")
    assert set(rates.scores("sw", 2.0)) == {"192.0.2.0/24"}
    assert rates.total("sw", 2.0).samples == pytest.approx(2)  # traffic did happen
    assert rates.prefix_count("sw") == 1
    # the same id seen again is resolved afresh and starts from zero
    rates.add_batch("sw", lpm, ids[:1], np.array([10.0]), np.ones(1), 2.0)
    reading = rates.rate("sw", "10.0.0.0/8", 2.0)
    assert reading is not None and reading.samples == pytest.approx(1)


def test_a_new_lpm_object_resets_the_id_cache() -> None:
    first = LpmTable(["10.0.0.0/8"])
    second = LpmTable(["192.0.2.0/24", "10.0.0.0/8"])  # ids differ from the first table's
    rates = PrefixRates()
    rates.add_batch(
        "sw", first, first.lookup_v4_ids(np.array([0x0A000001], np.uint32)), np.ones(1), np.ones(1), 1.0
    )
    rates.add_batch(
        "sw", second, second.lookup_v4_ids(np.array([0xC0000201], np.uint32)), np.ones(1), np.ones(1), 1.0
    )
    assert set(rates.scores("sw", 1.0)) == {"10.0.0.0/8", "192.0.2.0/24"}


def test_top_orders_by_score_then_prefix_and_caps_n() -> None:
    rates = PrefixRates()
    for prefix, size in [
        ("10.0.0.0/8", 5.0),
        ("10.0.0.0/9", 5.0),
        ("192.0.2.0/24", 9.0),
        ("198.51.100.0/24", 1.0),
    ]:
        rates.add("sw", prefix, size, 1.0, 1.0)
    assert [p.prefix for p in rates.top("sw", 3, 1.0)] == ["192.0.2.0/24", "10.0.0.0/8", "10.0.0.0/9"]
    assert len(rates.top("sw", 100, 1.0)) == 4
    assert rates.top("sw", 0, 1.0) == []


def test_slots_grow_and_are_reused() -> None:
    rates = PrefixRates()
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(5000)]
    for p in prefixes:
        rates.add("sw", p, 100.0, 1.0, 1.0)
    assert len(rates.scores("sw", 1.0)) == 5000
    for p in prefixes[:100]:
        rates.forget("sw", p)
    rates.add("sw", "192.0.2.0/24", 100.0, 1.0, 1.0)
    assert len(rates.scores("sw", 1.0)) == 4901
    assert rates.rate("sw", "192.0.2.0/24", 1.0) is not None


def test_weeks_of_simulated_time_stay_finite_and_exact() -> None:
    # exercises the epoch rescaling: the fast exponent passes 64 every 32 minutes
    rates = PrefixRates(fast_half_life_s=30.0, slow_half_life_s=3600.0)
    week = 7 * 86400.0
    t = 0.0
    while t < week:
        t += 600.0
        rates.add("sw", "192.0.2.0/24", MB * 600.0, 1.0, t)
        rates.add("sw", None, 1.0, 1.0, t)
    reading = rates.rate("sw", "192.0.2.0/24", t)
    assert reading is not None
    assert math.isfinite(reading.fast_bps) and math.isfinite(reading.samples)
    assert reading.slow_bps == pytest.approx(MB, rel=0.1)  # 600 s chunks on a 1 h half-life
    idle = rates.rate("sw", "192.0.2.0/24", t + 30 * 86400.0)
    assert idle is not None and idle.score < 1e-200
    assert rates.total("sw", t + 30 * 86400.0).score < 1e-200


def test_prune_forgets_prefixes_below_a_rate() -> None:
    rates = PrefixRates(fast_half_life_s=10.0, slow_half_life_s=20.0)
    rates.add("sw", "10.0.0.0/8", 1e6, 1.0, 0.0)
    rates.add("sw", "192.0.2.0/24", 1.0, 1.0, 0.0)
    rates.add("sw", None, 1.0, 1.0, 0.0)
    assert rates.prune("sw", 0.0, below_bps=10.0) == 1
    assert set(rates.scores("sw", 0.0)) == {"10.0.0.0/8"}
    assert rates.prune("sw", 10_000.0, below_bps=10.0) == 1
    assert rates.scores("sw", 10_000.0) == {}
    assert rates.prune("nope", 0.0, 1.0) == 0


def test_invalid_half_lives_rejected() -> None:
    with pytest.raises(ValueError):
        PrefixRates(fast_half_life_s=0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1e9), st.floats(0, 1e3)), min_size=1, max_size=40),
    st.integers(1, 39),
)
def test_splitting_a_batch_does_not_change_the_result(
    samples: list[tuple[int, float, float]], cut: int
) -> None:
    lpm = LpmTable(["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"])
    addresses = np.array(
        [(0x0A000001, 0x0A010001, 0xC0000201, 0x08080808)[k] for k, _, _ in samples], np.uint32
    )
    ids = lpm.lookup_v4_ids(addresses)
    nbytes = np.array([b for _, b, _ in samples])
    packets = np.array([p for _, _, p in samples])
    whole, split = PrefixRates(), PrefixRates()
    whole.add_batch("sw", lpm, ids, nbytes, packets, 3.0)
    split.add_batch("sw", lpm, ids[:cut], nbytes[:cut], packets[:cut], 3.0)
    split.add_batch("sw", lpm, ids[cut:], nbytes[cut:], packets[cut:], 3.0)
    assert split.scores("sw", 4.0) == pytest.approx(whole.scores("sw", 4.0))
    assert split.total("sw", 4.0).fast_pps == pytest.approx(whole.total("sw", 4.0).fast_pps)


def test_byte_sums_are_totals_with_long_half_lives() -> None:
    rates = PrefixRates(fast_half_life_s=1e12, slow_half_life_s=1e12)
    rates.add("sw", "192.0.2.0/24", 1000.0, 1.0, 0.0)
    rates.add("sw", "192.0.2.0/24", 500.0, 1.0, 100.0)
    rates.add("sw", None, 7.0, 1.0, 100.0)
    assert rates.byte_sums("sw", 200.0) == pytest.approx({"192.0.2.0/24": 1500.0, "unrouted": 7.0})
    fast_sums = rates.byte_sums("sw", 200.0, slow=False)
    assert fast_sums == pytest.approx({"192.0.2.0/24": 1500.0, "unrouted": 7.0})
    assert rates.byte_sums("nope", 1.0) == {}
    halving = PrefixRates(fast_half_life_s=10.0, slow_half_life_s=20.0)
    halving.add("sw", "192.0.2.0/24", 1000.0, 1.0, 0.0)
    assert halving.byte_sums("sw", 20.0) == pytest.approx({"192.0.2.0/24": 500.0})
    assert halving.byte_sums("sw", 20.0, slow=False) == pytest.approx({"192.0.2.0/24": 250.0})
