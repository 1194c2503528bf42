"""The flow gate against a sender who can reach the flow ports from anywhere and spoof sources:
the C screen and the Python rule give the same answer on every path (differential fuzz), strangers
flooding the source cache never get a real switch refused, and the log stays within its budget."""

from __future__ import annotations

import ipaddress
import logging
import random
import struct
import time
from collections import Counter

import pytest

from tests.unit.test_flow_gate import AGENT_A, AGENT_B, AGENT_V6, TWO_SWITCHES, netflow_v5, sflow
from topfib.collector.accounting.flow_gate import FlowGate, SwitchFlowSources
from topfib.collector.common.metrics import Registry

pytestmark = pytest.mark.skipif(
    not hasattr(__import__("topfib.collector.sflow._sflow_fast", fromlist=["screen"]), "screen"),
    reason="the C screen is not built",
)

RELAY_NET = "198.51.100.0/28"  # switch "r": datagrams relayed from a subnet, agent AGENT_R
AGENT_R = "203.0.113.9"
SWITCHES = [*TWO_SWITCHES, SwitchFlowSources("r", (AGENT_R,), (RELAY_NET, "2001:db8:1::/64"))]
SOURCES = [
    AGENT_A, AGENT_B, AGENT_V6, "198.51.100.3", "198.51.100.16", "2001:db8:1::7", "2001:db8:2::7",
    f"::ffff:{AGENT_A}", "::ffff:c000:201", "fe80::1%eth0", "192.0.2.001", "0.0.0.0", "::", "",
    "not-an-address", "10.0.0.1", AGENT_R,
]  # fmt: skip


def sflow_head(version: int, address_type: int, address: bytes) -> bytes:
    return struct.pack("!II", version, address_type) + address


def hostile_datagrams(rng: random.Random) -> list[bytes]:
    """sFlow heads for every agent (allowed, mapped, foreign) and address type, cut at every length
    around the 12/24-byte screen, plus NetFlow/IPFIX heads and noise."""
    agents = [AGENT_A, AGENT_B, AGENT_V6, AGENT_R, "192.0.2.9", f"::ffff:{AGENT_A}", "2001:db8::2"]
    whole = []
    for agent in agents:
        packed = ipaddress.ip_address(agent).packed
        for address_type in (0, 1, 2, 3, 0xFFFFFFFF):
            for version in (4, 5, 6):
                whole.append(sflow_head(version, address_type, packed) + b"\x00" * 16)
        whole.append(sflow(agent, sequence=rng.randrange(1 << 32)))
    whole += [netflow_v5(), b"\x00\x09" + bytes(30), b"\x00\x0a\x00\x20" + bytes(28), b"", b"\x00"]
    cut = [data[:length] for data in whole for length in range(0, 30)]
    return whole + cut + [rng.randbytes(rng.randrange(40)) for _ in range(200)]


def names_an_agent(data: bytes) -> bool:
    """sFlow v5 long enough to name an IPv4 or IPv6 agent (the sequence numbers need their order;
    malformed datagrams passed on to be counted may follow them)."""
    head = data[:8]
    return (head == struct.pack("!II", 5, 1) and len(data) >= 12) or (
        head == struct.pack("!II", 5, 2) and len(data) >= 24
    )


@pytest.mark.parametrize("seed", range(5))
def test_c_screen_and_python_rule_agree_on_hostile_input(seed: int) -> None:
    rng = random.Random(seed)
    datagrams = hostile_datagrams(rng)
    pairs = [(rng.choice(datagrams), rng.choice(SOURCES)) for _ in range(6000)]
    batches = [pairs[i : i + rng.randrange(1, 700)] for i in range(0, len(pairs), 500)]
    gates = {name: FlowGate(SWITCHES, Registry(), implementation=name, max_cached_sources=8) for name in ("c", "python")}  # noqa: E501
    for batch in batches:
        answers = {name: gate.admit(batch) for name, gate in gates.items()}
        assert Counter(answers["c"]) == Counter(answers["python"])
        for name, admitted in answers.items():  # a source's sFlow naming an agent keeps its order
            for source in SOURCES:
                mine = [data for data, src in admitted if src == source and names_an_agent(data)]
                arrived = [data for data, src in batch if src == source and names_an_agent(data)]
                assert mine == [data for data in arrived if data in set(mine)], (name, source)
    assert gates["c"].refused == gates["python"].refused
    assert all(gates["c"].refused.values())  # every refusal path was taken


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_mapped_scoped_and_odd_source_texts_are_refused_not_reinterpreted(implementation: str) -> None:
    """An IPv4-mapped source (as a dual-stack socket would report the switch; the listener binds
    IPV6_V6ONLY so it never does), a scoped or zero-padded text: none is taken for the switch."""
    gate = FlowGate(SWITCHES, Registry(), implementation=implementation)  # type: ignore[arg-type]
    datagram = sflow(AGENT_A)
    odd = [f"::ffff:{AGENT_A}", "::ffff:c000:201", "192.0.2.001", "fe80::1%eth0", " 192.0.2.1", ""]
    assert gate.admit([(datagram, source) for source in odd]) == []
    assert gate.refused == {"source": len(odd), "agent": 0, "exporter": 0}
    mapped_agent = sflow_head(5, 2, ipaddress.ip_address(f"::ffff:{AGENT_A}").packed) + bytes(16)
    assert gate.admit([(mapped_agent, AGENT_A)]) == []
    assert gate.refused["agent"] == 1


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_a_stranger_flooding_the_source_cache_never_gets_a_switch_refused(implementation: str) -> None:
    gate = FlowGate(SWITCHES, Registry(), implementation=implementation)  # type: ignore[arg-type]
    real = [(sflow(AGENT_A, sequence=i), AGENT_A) for i in range(3)]
    relayed = (sflow(AGENT_R), "198.51.100.5")
    admitted = 0
    started = time.process_time()
    for round_ in range(20):  # 20 x 1,000 new spoofed sources: the 4,096-entry cache overflows 4 times
        spoofed = [(real[0][0], f"10.{round_}.{i >> 8}.{i & 255}") for i in range(1000)]
        batch = spoofed[:500] + real + [relayed] + spoofed[500:]
        admitted += len(gate.admit(batch))
        # and they stay cached (the C screen's common case), whatever the strangers do
        assert {AGENT_A, "198.51.100.5"} <= set(gate._heads_by_source)
    per_datagram = (time.process_time() - started) / (20 * 1004)
    assert admitted == 20 * 4
    assert gate.refused == {"source": 20_000, "agent": 0, "exporter": 0}
    assert len(gate._strangers) <= 4096 and len(gate._cache) == 2
    assert per_datagram < 20e-6  # measured 1.4 µs a spoofed datagram, C or Python


def test_refusal_log_lines_per_minute_stay_bounded_in_a_flood(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    gate = FlowGate(SWITCHES, Registry(), clock=lambda: now[0])
    stranger_sflow, foreign_agent = sflow("192.0.2.99"), sflow("192.0.2.99")
    with caplog.at_level(logging.WARNING, logger="topfib.collector.common.log_budget"):
        for second in range(600):  # 10 minutes, every reason every 100 ms, distinct sources each time
            for tick in range(10):
                now[0] = second + tick / 10
                gate.admit([
                    (stranger_sflow, f"10.1.{tick}.{second % 250}"),
                    (foreign_agent, AGENT_A),
                    (netflow_v5(), "198.51.100.4"),  # a relay address: no exporter
                ])  # fmt: skip
            if second % 5 == 0:
                gate.flush_logs(now[0])
    lines = [record.getMessage() for record in caplog.records]
    assert gate.refused == {"source": 6000, "agent": 6000, "exporter": 6000}
    assert len(lines) <= 3 * (5 + 1) * 10  # 3 reasons x (budget + 1 'suppressed') x 10 minutes
    assert any("suppressed" in line for line in lines)
    assert all("10.1." not in line or "refused" in line for line in lines)
