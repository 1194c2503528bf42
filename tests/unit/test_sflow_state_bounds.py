"""Per-exporter sFlow decoder state is bounded: sub-agent streams per agent (oldest evicted) and
drop baselines per stream (further data sources not tracked), counted; C and Python alike."""

from __future__ import annotations

import dataclasses

import pytest

from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch, merge_batches
from topfib.collector.common.metrics import Registry
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.collector.sflow.fast import FastSflowDecoder, Implementation, c_extension_available
from topfib.collector.sflow.fast_fallback import MAX_DATA_SOURCES, MAX_SUB_AGENTS

AGENT = "192.0.2.1"
SPEC = FlowSampleSpec(src="203.0.113.1", dst="198.51.100.7")
IMPLEMENTATIONS: list[Implementation] = ["c", "python"] if c_extension_available() else ["python"]


def with_sub_agent(template: bytes, sub_agent: int) -> bytes:
    return template[:12] + sub_agent.to_bytes(4, "big") + template[16:]


def limited(batches: list[SampleBatch]) -> dict[str, int]:
    return merge_batches([SampleBatch(), *batches]).state_limited


@pytest.mark.skipif(not c_extension_available(), reason="C extension not built")
def test_500k_datagrams_with_varying_sub_agents_keep_bounded_state_in_c() -> None:
    decoder = FastSflowDecoder("c")
    template = encode_datagram(AGENT, 0, 1, 1000, [SPEC])
    batches = []
    for sub_agent in range(500_000):
        decoder.feed(with_sub_agent(template, sub_agent), AGENT)
        if sub_agent % 50_000 == 49_999:
            batches.append(decoder.take())
    assert decoder.state_sizes() == (1, MAX_SUB_AGENTS, MAX_SUB_AGENTS)
    assert limited(batches) == {"sflow_sub_agent_evicted": 500_000 - MAX_SUB_AGENTS}
    assert sum(b.flow_samples for b in batches) == 500_000  # bounded state, nothing lost


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_sub_agent_streams_are_evicted_oldest_first(implementation: Implementation) -> None:
    decoder = FastSflowDecoder(implementation)
    for sub_agent in range(MAX_SUB_AGENTS + 5):
        decoder.feed(encode_datagram(AGENT, sub_agent, 100, 1000, [SPEC]), AGENT)
    assert decoder.state_sizes()[1] == MAX_SUB_AGENTS
    # sub-agent 0 was evicted: its jump to 200 starts a new baseline, no loss; the newest kept
    # its state, so its jump counts 99 lost
    decoder.feed(encode_datagram(AGENT, 0, 200, 2000, [SPEC]), AGENT)
    decoder.feed(encode_datagram(AGENT, MAX_SUB_AGENTS + 4, 200, 2000, [SPEC]), AGENT)
    batch = decoder.take()
    assert batch.lost_datagrams == {AGENT: 99}
    assert batch.state_limited == {"sflow_sub_agent_evicted": 6}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_drop_baselines_per_stream_are_bounded(implementation: Implementation) -> None:
    decoder = FastSflowDecoder(implementation)
    per_datagram, datagrams = 10, MAX_DATA_SOURCES // 10 + 6  # 1,080 data sources, one sample each
    for sequence in range(1, datagrams + 1):
        first = (sequence - 1) * per_datagram
        samples = [dataclasses.replace(SPEC, input_if=first + i + 1, drops=sequence) for i in range(10)]
        decoder.feed(encode_datagram(AGENT, 0, sequence, 1000 + sequence, samples), AGENT)
    assert decoder.state_sizes()[2] == MAX_DATA_SOURCES
    refused = datagrams * per_datagram - MAX_DATA_SOURCES
    assert decoder.take().state_limited == {"sflow_data_source_refused": refused}


@pytest.mark.skipif(not c_extension_available(), reason="C extension not built")
def test_c_and_python_agree_under_eviction() -> None:
    """Churning sub-agents and data sources, with drops and gaps: the same batches."""
    datagrams = []
    for step in range(3 * MAX_SUB_AGENTS):
        sub_agent = step % (MAX_SUB_AGENTS + 7)
        samples = [
            dataclasses.replace(SPEC, input_if=(step * 3 + i) % 40 + 1, drops=step * 2 + i) for i in range(3)
        ]
        datagrams.append((encode_datagram(AGENT, sub_agent, step * 2 + 1, 1000 + step, samples), AGENT))
    batches = {}
    for implementation in ("c", "python"):
        decoder = FastSflowDecoder(implementation)
        decoder.feed_many(datagrams)
        batches[implementation] = decoder.take()
        assert decoder.state_sizes()[1] == MAX_SUB_AGENTS
    c, python = batches["c"], batches["python"]
    assert c.lost_datagrams == python.lost_datagrams
    assert c.agent_drops == python.agent_drops
    assert c.state_limited == python.state_limited
    assert c.state_limited["sflow_sub_agent_evicted"] > 0


def test_the_collector_counts_state_limits() -> None:
    registry = Registry()
    collector = Collector(FastSflowDecoder(), {AGENT: "s"}, lambda _: LpmTable(), PrefixRates(), registry)
    collector.process(SampleBatch(state_limited={"sflow_sub_agent_evicted": 7}), 1.0)
    counter = registry.counter("topfib_flow_state_limited_total", "", ("kind",))
    assert counter.value(kind="sflow_sub_agent_evicted") == 7
