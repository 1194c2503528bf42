"""Collector: agent → switch mapping, per-family lookups, unrouted and unknown agents, counters."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from topfib.collector.accounting.pipeline import OTHER_LABEL, Collector, LabelBudget
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch, merge_batches
from topfib.collector.common.log_budget import LogLimiter
from topfib.collector.common.metrics import Registry
from topfib.collector.rib.lpm import LpmTable

V6_2001_DB8 = 0x20010DB8_00000000


class ListDecoder:
    """A stand-in decoder that hands out prepared batches (the real one is tested on its own)."""

    def __init__(self, batches: list[SampleBatch]) -> None:
        self.batches = batches
        self.fed: list[tuple[bytes, str]] = []

    def feed(self, datagram: bytes, exporter: str) -> None:
        self.fed.append((datagram, exporter))

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        self.fed.extend(datagrams)

    def take(self) -> SampleBatch:
        return self.batches.pop(0) if self.batches else SampleBatch()


def make_batch(
    agents: list[str],
    v4: list[tuple[int, int, float]] = (),  # type: ignore[assignment]
    v6: list[tuple[int, int, int, float]] = (),  # type: ignore[assignment]
    **extra: object,
) -> SampleBatch:
    """v4 items: (agent index, dst, bytes); v6 items: (agent index, hi, lo, bytes); packets = 1."""
    batch = SampleBatch(
        agents=agents,
        v4_agent=np.array([a for a, _, _ in v4], np.uint32),
        v4_dst=np.array([d for _, d, _ in v4], np.uint32),
        v4_bytes=np.array([b for _, _, b in v4], np.float64),
        v4_packets=np.ones(len(v4)),
        v6_agent=np.array([a for a, _, _, _ in v6], np.uint32),
        v6_dst_hi=np.array([h for _, h, _, _ in v6], np.uint64),
        v6_dst_lo=np.array([lo for _, _, lo, _ in v6], np.uint64),
        v6_bytes=np.array([b for _, _, _, b in v6], np.float64),
        v6_packets=np.ones(len(v6)),
        datagrams=1,
        flow_samples=len(v4) + len(v6),
    )
    for key, value in extra.items():
        setattr(batch, key, value)
    return batch


def make_collector(batches: list[SampleBatch]) -> tuple[Collector, PrefixRates, Registry]:
    tables = {
        "edge1": LpmTable(["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"]),
        "edge2": LpmTable(["192.0.2.0/24"]),
    }
    rates = PrefixRates()
    registry = Registry()
    collector = Collector(
        ListDecoder(batches),
        {"192.0.2.1": "edge1", "192.0.2.2": "edge1", "2001:db8::2": "edge2"},
        tables.__getitem__,
        rates,
        registry,
    )
    return collector, rates, registry


def test_one_switch_both_families_routed_and_unrouted() -> None:
    batch = make_batch(
        ["192.0.2.1", "192.0.2.2"],
        v4=[(0, 0x0A010101, 1000.0), (1, 0x0A020202, 2000.0), (0, 0x08080808, 500.0)],
        v6=[(1, V6_2001_DB8, 1, 4000.0), (0, 0x2A000000_00000000, 7, 300.0)],
    )
    collector, rates, registry = make_collector([batch])
    assert collector.flush(now=10.0) == 5
    scores = rates.scores("edge1", 10.0)
    assert set(scores) == {"10.1.0.0/16", "10.0.0.0/8", "2001:db8::/32"}
    # all arrive at one instant: sums are in proportion to the bytes
    assert scores["2001:db8::/32"] / scores["10.1.0.0/16"] == pytest.approx(4.0)
    assert rates.unrouted("edge1", 10.0).samples == pytest.approx(2)
    assert rates.total("edge1", 10.0).samples == pytest.approx(5)
    assert collector.totals.flow_samples == 5
    assert collector.totals.unrouted_samples == 2
    assert collector.totals.bytes == 7800.0
    assert collector.totals.packets == 5.0
    samples = registry.get("topfib_sflow_samples_total")
    unrouted = registry.get("topfib_sflow_unrouted_samples_total")
    assert samples is not None and unrouted is not None
    assert samples.value(switch="edge1") == 5
    assert unrouted.value(switch="edge1") == 2
    assert rates.switches() == ["edge1"]


def test_samples_go_to_their_agents_switch_and_unknown_agents_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = make_batch(
        ["2001:db8::2", "192.0.2.1", "203.0.113.9"],
        v4=[(0, 0xC0000205, 100.0), (1, 0x0A000001, 200.0), (2, 0x0A000001, 999.0), (2, 0x0A000002, 1.0)],
        v6=[(2, V6_2001_DB8, 0, 5.0)],
    )
    collector, rates, registry = make_collector([batch])
    with caplog.at_level(logging.WARNING):
        collector.process(batch, now=1.0)
    assert set(rates.scores("edge2", 1.0)) == {"192.0.2.0/24"}
    assert set(rates.scores("edge1", 1.0)) == {"10.0.0.0/8"}
    assert collector.totals.unknown_agent_samples == 3
    assert collector.totals.flow_samples == 2
    unknown = registry.get("topfib_sflow_unknown_agent_samples_total")
    assert unknown is not None and unknown.value(agent="203.0.113.9") == 3
    assert "203.0.113.9" in caplog.text and "sflow_agents" in caplog.text


def test_decoder_counts_become_metrics_and_totals() -> None:
    batch = make_batch(
        ["192.0.2.1"],
        datagrams=4,
        counter_samples=3,
        non_ip_samples=2,
        malformed={("truncated", "198.51.100.1"): 2},
        lost_datagrams={"192.0.2.1": 5},
        agent_drops={"192.0.2.1": 7},
    )
    collector, _, registry = make_collector([])
    collector.process(batch, now=1.0)
    text = registry.render()
    assert "topfib_sflow_datagrams_total 4\n" in text
    assert "topfib_sflow_counter_samples_total 3\n" in text
    assert "topfib_sflow_non_ip_samples_total 2\n" in text
    assert 'topfib_sflow_malformed_datagrams_total{reason="truncated",agent="198.51.100.1"} 2\n' in text
    assert 'topfib_sflow_lost_datagrams_total{agent="192.0.2.1"} 5\n' in text
    assert 'topfib_sflow_agent_dropped_samples_total{agent="192.0.2.1"} 7\n' in text
    t = collector.totals
    assert (t.datagrams, t.malformed_datagrams, t.lost_datagrams, t.agent_dropped_samples) == (4, 2, 5, 7)


def test_feed_passes_datagrams_to_the_decoder_and_empty_flush_is_harmless() -> None:
    collector, rates, _ = make_collector([])
    collector.feed(b"\x00\x00\x00\x05", "127.0.0.1")
    collector.feed_many([(b"a", "::1"), (b"b", "::1")])
    assert collector.flush(now=1.0) == 0
    assert isinstance(collector.decoder, ListDecoder)
    assert collector.decoder.fed == [(b"\x00\x00\x00\x05", "127.0.0.1"), (b"a", "::1"), (b"b", "::1")]
    assert rates.switches() == []
    assert collector.switches == ["edge1", "edge2"]


def test_a_switch_without_rib_counts_everything_unrouted() -> None:
    rates = PrefixRates()
    collector = Collector(ListDecoder([]), {"192.0.2.1": "edge1"}, lambda _: LpmTable(), rates, Registry())
    collector.process(make_batch(["192.0.2.1"], v4=[(0, 0x0A000001, 10.0)]), now=1.0)
    assert rates.scores("edge1", 1.0) == {}
    assert rates.unrouted("edge1", 1.0).samples == pytest.approx(1)


def test_label_budget_bounds_label_values() -> None:
    budget = LabelBudget({"192.0.2.1"}, max_extra=2)
    assert [budget(v) for v in ["192.0.2.1", "a", "b", "c", "a", "192.0.2.1"]] == [
        "192.0.2.1",
        "a",
        "b",
        OTHER_LABEL,
        "a",
        "192.0.2.1",
    ]


def test_log_limiter_suppresses_repeats_within_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    limiter = LogLimiter(interval_s=60.0)
    with caplog.at_level(logging.WARNING):
        for second in range(0, 120, 10):
            limiter.warn("k", float(second), "boom")
        limiter.warn("other", 0.0, "bang")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["boom", "boom (5 similar suppressed)", "bang"]


def test_merge_batches_renumbers_agents_and_sums_counters() -> None:
    first = make_batch(
        ["192.0.2.1", "2001:db8::2"],
        v4=[(0, 0x0A010101, 10.0), (1, 0xC0000201, 20.0)],
        malformed={("truncated", "x"): 1},
        lost_datagrams={"192.0.2.1": 2},
    )
    second = make_batch(
        ["2001:db8::2", "203.0.113.9"],
        v4=[(0, 0xC0000202, 30.0), (1, 0x0A000001, 40.0)],
        v6=[(0, V6_2001_DB8, 5, 50.0)],
        malformed={("truncated", "x"): 2},
        lost_datagrams={"192.0.2.1": 1},
        agent_drops={"203.0.113.9": 4},
    )
    merged = merge_batches([first, second])
    assert merged.agents == ["192.0.2.1", "2001:db8::2", "203.0.113.9"]
    assert [merged.agents[i] for i in merged.v4_agent.tolist()] == [
        "192.0.2.1",
        "2001:db8::2",
        "2001:db8::2",
        "203.0.113.9",
    ]
    assert merged.v4_bytes.tolist() == [10.0, 20.0, 30.0, 40.0]
    assert [merged.agents[i] for i in merged.v6_agent.tolist()] == ["2001:db8::2"]
    assert (merged.datagrams, merged.flow_samples) == (2, 5)
    assert merged.malformed == {("truncated", "x"): 3}
    assert merged.lost_datagrams == {"192.0.2.1": 3}
    assert merged.agent_drops == {"203.0.113.9": 4}
    assert merge_batches([first]) is first

    separately, _, _ = make_collector([])
    together, _, _ = make_collector([])
    separately.process(first, 1.0)
    separately.process(second, 1.0)
    together.process(merged, 1.0)
    assert separately.rates.scores("edge1", 1.0) == pytest.approx(together.rates.scores("edge1", 1.0))
    assert separately.rates.scores("edge2", 1.0) == pytest.approx(together.rates.scores("edge2", 1.0))
    assert separately.totals == together.totals
