"""sFlow and NetFlow/IPFIX datagrams through one batch decoder: each to its fast path, one batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.unit.test_netflow_corpus import GROUPS, payloads
from topfib.collector.flow.mux import FlowBatchMux
from topfib.collector.netflow.fast import FastFlowDecoder
from topfib.collector.sflow.fast import FastSflowDecoder


def feed(decoder: object, corpus: Path, names: tuple[str, ...]) -> None:
    for name in names:
        for exporter, payload in payloads(corpus / name):
            decoder.feed(payload, exporter)  # type: ignore[attr-defined]


INVALID_V5 = "netflow/logstash-codec-netflow__netflow5_test_invalid01.dat"


def test_mixed_protocols_merge_into_one_batch(corpus: Path) -> None:
    sflow_files = ("sflow/akvorado__data-1140.pcap", "sflow/goflow2__TestSFlowDecode.bin")
    netflow_files = GROUPS["akvorado-options"][0] + GROUPS["akvorado-multiplesamplingrates"][0]
    mux = FlowBatchMux(FastSflowDecoder("python"))
    feed(mux, corpus, (*sflow_files, *netflow_files, INVALID_V5))
    merged = mux.take()

    sflow_only, netflow_only = FastSflowDecoder("python"), FastFlowDecoder()
    feed(sflow_only, corpus, sflow_files)
    feed(netflow_only, corpus, (*netflow_files, INVALID_V5))
    alone = [sflow_only.take(), netflow_only.take()]

    assert merged.agents == alone[0].agents + alone[1].agents
    assert merged.flow_samples == sum(b.flow_samples for b in alone) == 6 + 16
    assert merged.datagrams == sum(b.datagrams for b in alone)
    assert merged.malformed == {("record-count", "192.0.2.1"): 1}
    for family in ("v4", "v6"):
        agents = [merged.agents[i] for i in getattr(merged, f"{family}_agent")]
        expected = [b.agents[i] for b in alone for i in getattr(b, f"{family}_agent")]
        assert agents == expected
        for column in ("bytes", "packets"):
            merged_values = getattr(merged, f"{family}_{column}")
            alone_values = np.concatenate([getattr(b, f"{family}_{column}") for b in alone])
            assert np.array_equal(merged_values, alone_values)


def test_feed_many_routes_as_feed(corpus: Path) -> None:
    sflow_files = ("sflow/akvorado__data-1140.pcap",)
    netflow_files = GROUPS["akvorado-options"][0]
    pairs = [
        (payload, exporter)
        for name in (*netflow_files, *sflow_files, INVALID_V5)
        for exporter, payload in payloads(corpus / name)
    ]
    one_by_one, many = FlowBatchMux(FastSflowDecoder("python")), FlowBatchMux(FastSflowDecoder("python"))
    for payload, exporter in pairs:
        one_by_one.feed(payload, exporter)
    many.feed_many(pairs)
    expected, got = one_by_one.take(), many.take()
    assert got.agents == expected.agents and got.flow_samples == expected.flow_samples > 0
    assert (got.datagrams, got.malformed) == (expected.datagrams, expected.malformed)
    for column in ("v4_agent", "v4_dst", "v4_bytes", "v6_agent", "v6_dst_hi", "v6_dst_lo", "v6_bytes"):
        assert np.array_equal(getattr(got, column), getattr(expected, column))
