"""Listener + fast decoder + LPM + accounting over loopback, against the typed decoder's reading.

Real sFlow datagrams (the corpus, plus generated ones towards known prefixes) go through
``topfib replay`` / a UDP socket into a running :class:`FlowReceiver`; per-prefix byte totals
must equal what the typed decoder (``topfib.collector.sflow.decoder``) says the samples carry.
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path

import pytest

from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import Registry
from topfib.collector.flow.receiver import FlowReceiver
from topfib.collector.flow.replay import flow_payloads
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.encode import datagrams_for_destinations
from topfib.collector.sflow.fast import FastSflowDecoder
from topfib.collector.sflow.records import SflowError
from topfib.controller.cli.replay import run_replay

PREFIXES = [
    "0.0.0.0/1",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "2000::/3",
    "2001:db8::/32",
]
UNKNOWN_AGENT = "192.0.2.99"


def corpus_payloads(corpus: Path) -> list[bytes]:
    payloads: list[bytes] = []
    for path in sorted((corpus / "sflow").iterdir()):
        payloads += [p for p in flow_payloads(path, path.read_bytes()) if p[:4] == b"\x00\x00\x00\x05"]
    return payloads


def expected_sums(payloads: list[bytes], lpm: LpmTable, agents: set[str]) -> tuple[dict[str, float], int]:
    """prefix (or 'unrouted') → scaled bytes per the typed decoder; and unknown-agent samples."""
    sums: dict[str, float] = defaultdict(float)
    unknown = 0
    for payload in payloads:
        try:
            datagram = decode_datagram(payload)
        except SflowError:
            continue
        for sample in datagram.flow_samples:
            if sample.dst is None or sample.frame_length is None:
                continue  # not accountable: no destination or no size (counted as non-IP)
            if sample.agent not in agents:
                unknown += 1
                continue
            prefix = lpm.lookup(sample.dst)
            sums["unrouted" if prefix is None else prefix] += sample.frame_length * sample.sampling_rate
    return dict(sums), unknown


def wait_for_datagrams(collector: Collector, count: int) -> None:
    deadline = time.monotonic() + 10.0
    while collector.totals.datagrams + collector.totals.malformed_datagrams < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {collector.totals.datagrams} of {count} datagrams decoded")
        time.sleep(0.01)


def test_corpus_and_generated_traffic_end_to_end(corpus: Path) -> None:
    generated = datagrams_for_destinations(
        [
            "10.1.2.3",
            "10.200.0.1",
            "8.8.8.8",
            "192.168.1.1",
            "2001:db8::1",
            "2a00::1",
            "fc00::1",
            "203.0.113.1",
        ]
        * 5,
        agent="192.0.2.1",
    )
    generated += datagrams_for_destinations(["10.1.0.9"] * 7, agent=UNKNOWN_AGENT)
    payloads = corpus_payloads(corpus) + generated
    agents = {decode_datagram(p).header.agent for p in payloads if _decodes(p)} - {UNKNOWN_AGENT}
    lpm = LpmTable(PREFIXES)
    expected, unknown = expected_sums(payloads, lpm, agents)
    assert len(expected) >= 6 and unknown == 7  # the test has teeth: many prefixes, unrouted, unknown

    rates = PrefixRates(fast_half_life_s=1e12, slow_half_life_s=1e12)
    registry = Registry()
    collector = Collector(FastSflowDecoder(), {a: "sw" for a in agents}, lambda _: lpm, rates, registry)
    listener = FlowReceiver(
        collector, ["127.0.0.1:0"], flush_interval_s=0.01, gil_switch_interval_s=None, registry=registry
    )
    listener.start()
    try:
        host, port = listener.addresses[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in payloads:
                sender.sendto(payload, (host, port))
        wait_for_datagrams(collector, len(payloads))
    finally:
        listener.stop()
    assert rates.byte_sums("sw", time.monotonic()) == pytest.approx(expected)
    assert collector.totals.unknown_agent_samples == unknown
    assert collector.totals.unrouted_samples > 0
    samples = registry.get("topfib_sflow_samples_total")
    assert samples is not None and samples.value(switch="sw") == collector.totals.flow_samples


def test_topfib_replay_into_the_listener(corpus: Path) -> None:
    capture = corpus / "sflow" / "akvorado__data-1140.pcap"
    lpm = LpmTable(PREFIXES)
    rates = PrefixRates(fast_half_life_s=1e12, slow_half_life_s=1e12)
    payloads = flow_payloads(capture, capture.read_bytes())
    agents = {decode_datagram(p).header.agent for p in payloads}
    collector = Collector(FastSflowDecoder(), {a: "sw" for a in agents}, lambda _: lpm, rates, Registry())
    listener = FlowReceiver(
        collector, ["[::1]:0"], flush_interval_s=0.01, gil_switch_interval_s=None, registry=Registry()
    )
    listener.start()
    try:
        port = listener.addresses[0][1]
        assert run_replay(capture, f"[::1]:{port}", rate=0.0, loop=False) == 0
        wait_for_datagrams(collector, len(payloads))
    finally:
        listener.stop()
    expected, _ = expected_sums(payloads, lpm, agents)
    assert rates.byte_sums("sw", time.monotonic()) == pytest.approx(expected)
    assert collector.totals.flow_samples == 5


def _decodes(payload: bytes) -> bool:
    try:
        decode_datagram(payload)
    except SflowError:
        return False
    return True
