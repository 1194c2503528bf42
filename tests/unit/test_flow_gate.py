"""Flow datagrams are accounted only from a switch's flow_sources naming that switch's agent."""

from __future__ import annotations

import logging
import socket
import struct

import numpy as np
import pytest

from topfib.collector.accounting.flow_gate import FlowGate, SwitchFlowSources
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch
from topfib.collector.common.log_budget import MAX_REASONS, LogBudget
from topfib.collector.common.metrics import Registry
from topfib.collector.flow.mux import FlowBatchMux
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.collector.sflow.fast import FastSflowDecoder
from topfib.controller.config import ConfigError, parse_config

AGENT_A, AGENT_B = "192.0.2.1", "192.0.2.2"
AGENT_V6 = "2001:db8::1"


def sflow(agent: str, sequence: int = 1, samples: int = 3, sub_agent: int = 0) -> bytes:
    spec = FlowSampleSpec(src="203.0.113.1", dst="198.51.100.7")
    return encode_datagram(agent, sub_agent, sequence, 1000 + sequence, [spec] * samples)


def netflow_v5(dst: str = "198.51.100.9") -> bytes:
    header = struct.pack("!HHIIIIBBH", 5, 1, 1000, 1_700_000_000, 0, 1, 0, 0, 0)
    record = (
        socket.inet_aton("203.0.113.1")
        + socket.inet_aton(dst)
        + bytes(4)
        + struct.pack("!HHIIII", 1, 2, 1, 500, 0, 0)
        + bytes(16)
    )
    return header + record


@pytest.fixture(params=["c", "python"], autouse=True)
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against the C screen and the pure-Python rule."""
    if request.param == "python":
        monkeypatch.setattr("topfib.collector.accounting.flow_gate._sflow_fast", None)
    return str(request.param)


def make(
    switches: list[SwitchFlowSources], registry: Registry | None = None
) -> tuple[Collector, Registry]:
    registry = registry or Registry()
    agents = {agent: sw.name for sw in switches for agent in sw.agents}
    collector = Collector(
        FlowBatchMux(FastSflowDecoder()), agents, lambda _name: LpmTable(), PrefixRates(30.0, 3600.0),
        registry, flow_gate=FlowGate(switches, registry),
    )  # fmt: skip
    return collector, registry


def refused(registry: Registry) -> dict[str, float]:
    counter = registry.counter("topfib_flow_refused_total", "", ("reason",))
    return {reason: counter.value(reason=reason) for reason in ("source", "agent", "exporter")}


TWO_SWITCHES = [
    SwitchFlowSources("a", (AGENT_A,), (AGENT_A,)),
    SwitchFlowSources("b", (AGENT_B, AGENT_V6), (AGENT_B, AGENT_V6)),
]


def test_right_source_and_agent_is_accounted() -> None:
    collector, registry = make(TWO_SWITCHES)
    collector.feed_many([(sflow(AGENT_A), AGENT_A), (sflow(AGENT_V6), AGENT_V6), (sflow(AGENT_B), AGENT_B)])
    collector.flush(1.0)
    assert collector.totals.flow_samples == 9
    assert refused(registry) == {"source": 0, "agent": 0, "exporter": 0}


def test_spoofed_agent_from_a_stranger_is_refused_and_counted() -> None:
    collector, registry = make(TWO_SWITCHES)
    collector.feed_many([(sflow(AGENT_A), "198.51.100.66"), (sflow(AGENT_A), "2001:db8:bad::1")])
    collector.flush(1.0)
    assert collector.totals.flow_samples == 0
    assert collector.totals.datagrams == 0  # never decoded
    assert refused(registry) == {"source": 2, "agent": 0, "exporter": 0}


def test_one_switch_cannot_speak_for_another() -> None:
    """Switch b's agent (an allowed source) claiming switch a's agent address is refused."""
    collector, registry = make(TWO_SWITCHES)
    collector.feed_many([(sflow(AGENT_A), AGENT_B), (sflow("198.51.100.5"), AGENT_B)])
    collector.feed(sflow(AGENT_V6), AGENT_A)
    collector.flush(1.0)
    assert collector.totals.flow_samples == 0
    assert refused(registry) == {"source": 0, "agent": 3, "exporter": 0}


def test_cidr_sources_accept_any_address_inside_only() -> None:
    switches = [SwitchFlowSources("a", (AGENT_A,), ("10.1.0.0/16", "2001:db8:f::/48"))]
    collector, registry = make(switches)
    collector.feed_many(
        [
            (sflow(AGENT_A, 1), "10.1.2.3"),
            (sflow(AGENT_A, 2), "10.1.255.254"),
            (sflow(AGENT_A, 3), "2001:db8:f:1::9"),
            (sflow(AGENT_A, 4), "10.2.0.1"),  # outside
            (sflow(AGENT_A, 5), AGENT_A),  # the agent itself is not in flow_sources here
        ]
    )
    collector.flush(1.0)
    assert collector.totals.flow_samples == 9
    assert refused(registry) == {"source": 2, "agent": 0, "exporter": 0}


def test_netflow_exporter_is_decided_by_its_source() -> None:
    switches = [SwitchFlowSources("a", (AGENT_A,), (AGENT_A, "10.9.0.0/24"))]
    collector, registry = make(switches)
    collector.feed_many(
        [
            (netflow_v5(), AGENT_A),  # a configured exporter
            (netflow_v5(), "10.9.0.7"),  # allowed source, but not an exporter of the switch
            (netflow_v5(), "198.51.100.66"),  # a stranger
        ]
    )
    collector.flush(1.0)
    assert collector.totals.flow_samples == 1
    assert refused(registry) == {"source": 1, "agent": 0, "exporter": 1}


def test_short_datagrams_from_allowed_sources_reach_the_decoder_as_malformed() -> None:
    collector, registry = make(TWO_SWITCHES)
    collector.feed_many([(sflow(AGENT_A)[:10], AGENT_A), (b"\x00\x00\x00\x05", AGENT_A)])
    collector.flush(1.0)
    assert collector.totals.malformed_datagrams == 2
    assert refused(registry) == {"source": 0, "agent": 0, "exporter": 0}


def test_source_cache_is_bounded_under_spoofed_sources() -> None:
    gate = FlowGate(TWO_SWITCHES, Registry(), max_cached_sources=64)
    datagram = sflow(AGENT_A)
    pairs = [(datagram, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}") for i in range(5000)]
    assert gate.admit(pairs) == []
    assert gate.refused["source"] == 5000
    assert len(gate._cache) + len(gate._strangers) <= 2 * 64
    assert gate.admit([(datagram, AGENT_A)]) == [(datagram, AGENT_A)]


def test_refusals_are_logged_within_a_budget(caplog: pytest.LogCaptureFixture) -> None:
    gate = FlowGate(TWO_SWITCHES, Registry(), clock=lambda: 5.0)
    with caplog.at_level(logging.WARNING):
        for i in range(3000):
            gate.admit([(sflow(f"198.51.{i >> 8 & 255}.{i & 255}"), f"10.0.{i >> 8 & 255}.{i & 255}")])
    assert gate.refused["source"] == 3000
    assert 1 <= len(caplog.records) <= 5


def test_config_flow_sources_default_to_the_agents_and_reject_bad_entries() -> None:
    base = """
[[switch]]
name = "s1"
neighbor = "192.0.2.254"
local_address = "192.0.2.253"
local_as = 65000
peer_as = 65001
fib_cap_ipv4 = 10
fib_cap_ipv6 = 10
sflow_agents = ["192.0.2.1"]
"""
    assert parse_config(base).switch[0].effective_flow_sources == ["192.0.2.1"]
    custom = parse_config(base + 'flow_sources = ["10.0.0.0/8", "2001:db8::7"]\n').switch[0]
    assert custom.effective_flow_sources == ["10.0.0.0/8", "2001:db8::7/128"]
    for bad in ('"10.0.0.1/8"', '"not-an-address"'):
        with pytest.raises(ConfigError, match=r"switch\.0\.flow_sources"):
            parse_config(base + f"flow_sources = [{bad}]\n")


def test_gate_keeps_order_and_passes_everything_allowed() -> None:
    datagrams = [(sflow(AGENT_A, i), AGENT_A) for i in range(1, 50)]
    gate = FlowGate(TWO_SWITCHES, Registry())
    assert gate.admit(datagrams) == datagrams
    assert np.all(np.array(list(gate.refused.values())) == 0)


def test_log_budget_is_per_reason_not_per_address(caplog: pytest.LogCaptureFixture) -> None:
    """3,000 distinct (spoofable) addresses in one minute: 5 lines, then one 'suppressed' line."""
    budget = LogBudget(interval_s=60.0, budget=5)
    with caplog.at_level(logging.WARNING):
        for i in range(3000):
            budget.warn("malformed:truncated", i / 100, f"malformed datagram from 10.0.{i >> 8}.{i & 255}")
        budget.flush(61.0)
        budget.flush(62.0)  # nothing more to report
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 6
    assert messages[-1] == "suppressed 2995 similar warning(s) of reason malformed:truncated in 60 s"


def test_log_budget_reasons_are_capped() -> None:
    budget = LogBudget()
    for i in range(MAX_REASONS * 4):
        budget.warn(f"reason-{i}", 0.0, "x")
    assert len(budget._windows) <= MAX_REASONS + 1


def test_malformed_from_3000_agents_log_a_handful_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    collector, _ = make(TWO_SWITCHES)
    malformed = {("truncated", f"10.0.{i >> 8}.{i & 255}"): 1 for i in range(3000)}
    with caplog.at_level(logging.WARNING):
        collector.process(SampleBatch(datagrams=3000, malformed=malformed), 1.0)
    assert collector.totals.malformed_datagrams == 3000
    assert 1 <= len(caplog.records) <= 5


def test_other_buffer_types_get_the_same_answer() -> None:
    gate = FlowGate(TWO_SWITCHES, Registry())
    good, spoofed = bytearray(sflow(AGENT_A)), bytearray(sflow(AGENT_B))
    pairs: list[tuple[bytes, str]] = [(good, AGENT_A), (spoofed, AGENT_A)]  # type: ignore[list-item]
    assert gate.admit(pairs) == pairs[:1]
    assert gate.refused["agent"] == 1
