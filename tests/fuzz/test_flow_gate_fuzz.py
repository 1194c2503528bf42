"""Property fuzzing of the flow gate over mutated real sFlow datagrams, NetFlow-looking and random
bytes, from allowed, CIDR-allowed and stranger sources.

Properties: the gate never raises; every datagram is either admitted or counted refused; an
admitted datagram comes from an allowed source and, when it is sFlow naming an agent, names one
of the agents that source may speak for; the C screen and the Python rule agree; and a collector
behind the gate accounts samples to configured agents only.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.test_sflow_fuzz import FUZZ_SETTINGS, mutated_datagrams
from topfib.collector.accounting.flow_gate import FlowGate, SwitchFlowSources
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import Registry
from topfib.collector.flow.mux import FlowBatchMux
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.sflow.fast import FastSflowDecoder

pytestmark = pytest.mark.fuzz

# the seeds' agents: 172.16.0.3 belongs to "a" (its own address), 127.0.0.1 to "b" (via a CIDR)
SWITCHES = [
    SwitchFlowSources("a", ("172.16.0.3",), ("172.16.0.3",)),
    SwitchFlowSources("b", ("127.0.0.1", "2001:db8::1"), ("10.20.0.0/16", "2001:db8::/64")),
]
SOURCES = ["172.16.0.3", "127.0.0.1", "10.20.3.4", "10.21.0.1", "2001:db8::1", "2001:db8:1::1",
           "198.51.100.9"]
ALLOWED = {"172.16.0.3": {"172.16.0.3"}, "10.20.3.4": {"127.0.0.1", "2001:db8::1"},
           "2001:db8::1": {"127.0.0.1", "2001:db8::1"}}  # fmt: skip
SFLOW_V5 = b"\x00\x00\x00\x05"
NETFLOW_HEADS = [b"\x00\x05", b"\x00\x09", b"\x00\x0a"]


@st.composite
def pairs(draw: st.DrawFn) -> list[tuple[bytes, str]]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["sflow", "sflow", "netflow", "garbage"]))
        if kind == "sflow":
            data = draw(mutated_datagrams())
        elif kind == "netflow":
            data = draw(st.sampled_from(NETFLOW_HEADS)) + draw(st.binary(max_size=60))
        else:
            data = draw(st.binary(max_size=40))
        out.append((data, draw(st.sampled_from(SOURCES))))
    return out


def agent_of(data: bytes) -> str | None:
    """The agent an sFlow v5 datagram names; None if it names none (not sFlow, too short)."""
    kind = int.from_bytes(data[4:8], "big")
    if data[:4] != SFLOW_V5 or len(data) < (12 if kind == 1 else 24):
        return None
    return str(ipaddress.IPv4Address(data[8:12])) if kind == 1 else str(ipaddress.IPv6Address(data[8:24]))


@FUZZ_SETTINGS
@given(pairs())
def test_admitted_datagrams_obey_the_rule_and_both_paths_agree(batch: list[tuple[bytes, str]]) -> None:
    gate = FlowGate(SWITCHES, Registry())
    admitted = gate.admit(batch)
    assert len(admitted) + sum(gate.refused.values()) == len(batch)
    for data, source in admitted:
        assert source in ALLOWED
        agent = agent_of(data)
        if agent is not None and int.from_bytes(data[4:8], "big") in (1, 2):
            assert agent in ALLOWED[source]
        elif data[:4] != SFLOW_V5:  # NetFlow/IPFIX (or garbage): the source is the exporter
            assert source in ALLOWED[source]

    python = FlowGate(SWITCHES, Registry(), implementation="python")
    by_python = python.admit(batch)
    assert Counter(by_python) == Counter(admitted)
    assert python.refused == gate.refused


@FUZZ_SETTINGS
@given(st.lists(pairs(), min_size=1, max_size=3))
def test_only_configured_agents_are_accounted(batches: list[list[tuple[bytes, str]]]) -> None:
    agents = {agent: sw.name for sw in SWITCHES for agent in sw.agents}
    decoder = FlowBatchMux(FastSflowDecoder())
    collector = Collector(decoder, agents, lambda _: LpmTable(), PrefixRates(), Registry(),
                          flow_gate=FlowGate(SWITCHES, Registry()))
    for batch in batches:
        collector.feed_many(batch)
        collector.flush(1.0)
    assert collector.totals.unknown_agent_samples == 0
