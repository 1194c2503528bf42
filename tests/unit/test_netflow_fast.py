"""The NetFlow/IPFIX fast path (SampleBatch columns) against the typed decoder, on every corpus group."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_netflow_corpus import GROUPS, INVALID, decode_group, payloads
from topfib.collector.common.batch import SampleBatch
from topfib.collector.netflow.columns import column_layout
from topfib.collector.netflow.decoder import FlowDecoder, FlowRecord
from topfib.collector.netflow.fast import FastFlowDecoder
from topfib.collector.netflow.templates import FieldSpec, Template

Totals = dict[tuple[str, str], tuple[float, float]]


def typed_totals(records: list[FlowRecord]) -> tuple[Totals, int]:
    totals: Totals = {}
    non_ip = 0
    for record in records:
        if record.dst is None:
            non_ip += 1
            continue
        key = (record.exporter, str(ipaddress.ip_address(record.dst)))
        octets, packets = totals.get(key, (0.0, 0.0))
        totals[key] = (
            octets + record.bytes * record.sampling_rate,
            packets + record.packets * record.sampling_rate,
        )
    return totals, non_ip


def batch_totals(batch: SampleBatch) -> Totals:
    totals: Totals = {}
    rows = [
        (batch.agents[a], str(ipaddress.IPv4Address(int(d))), o, p)
        for a, d, o, p in zip(batch.v4_agent, batch.v4_dst, batch.v4_bytes, batch.v4_packets, strict=True)
    ] + [
        (batch.agents[a], str(ipaddress.IPv6Address(int(h) << 64 | int(lo))), o, p)
        for a, h, lo, o, p in zip(
            batch.v6_agent, batch.v6_dst_hi, batch.v6_dst_lo, batch.v6_bytes, batch.v6_packets, strict=True
        )
    ]
    for agent, dst, octets, packets in rows:
        old = totals.get((agent, dst), (0.0, 0.0))
        totals[(agent, dst)] = (old[0] + float(octets), old[1] + float(packets))
    return totals


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_fast_path_accounts_what_the_typed_decoder_decodes(corpus: Path, group: str) -> None:
    files = GROUPS[group][0]
    typed = decode_group(corpus, files)
    fast = FastFlowDecoder()
    for name in files:
        for exporter, payload in payloads(corpus / name):
            fast.feed(payload, exporter)
    batch = fast.take()
    expected, non_ip = typed_totals(typed.records)
    assert batch_totals(batch) == expected
    assert batch.flow_samples + batch.non_ip_samples == len(typed.records)
    assert batch.non_ip_samples == non_ip
    assert fast.counters.unknown_sampling == typed.decoder.counters.unknown_sampling
    assert batch.malformed == {}


def test_batches_hand_over_and_state_persists(corpus: Path) -> None:
    decoder = FastFlowDecoder()
    names = ("options-template", "options-data", "template")
    for name in names:
        for exporter, payload in payloads(corpus / f"netflow/akvorado__{name}.pcap"):
            decoder.feed(payload, exporter)
    assert decoder.take().flow_samples == 0
    for exporter, payload in payloads(corpus / "netflow/akvorado__data.pcap"):
        decoder.feed(payload, exporter)
    batch = decoder.take()
    assert (batch.datagrams, batch.flow_samples, batch.agents) == (1, 4, ["192.0.2.100"])
    assert set(batch.v4_bytes / np.array([1500, 1500, 1400, 1448])) == {30000.0}
    assert decoder.take().flow_samples == 0


def test_malformed_datagrams_reach_the_batch(corpus: Path) -> None:
    decoder = FastFlowDecoder()
    for name in sorted(INVALID):
        for exporter, payload in payloads(corpus / name):
            decoder.feed(payload, exporter)
    batch = decoder.take()
    assert batch.malformed == {("record-count", "192.0.2.1"): 2}
    assert batch.datagrams == 2  # fed, as the sFlow fast path counts them
    assert decoder.take().malformed == {}


def test_layouts() -> None:
    fields = (FieldSpec(28, 16), FieldSpec(12, 4), FieldSpec(1, 3), FieldSpec(2, 8), FieldSpec(48, 1))
    layout = column_layout(Template(256, fields))
    assert layout is not None
    assert (layout.record_length, layout.dst_v6, layout.dst_v4, layout.octets, layout.sampler) == (
        32, 0, 16, (20, 3), (31, 1),
    )  # fmt: skip
    assert column_layout(Template(256, (FieldSpec(12, 4), FieldSpec(82, 0xFFFF)))) is None  # variable length
    assert column_layout(Template(256, (FieldSpec(12, 4), FieldSpec(1, 4, 29305)))) is None  # biflow
    assert column_layout(Template(256, (FieldSpec(12, 4), FieldSpec(1, 16)))) is None  # 128-bit counter


def test_reduced_size_counters_and_per_record_intervals() -> None:
    template = struct.pack("!HHHHHHHHHH", 256, 4, 12, 4, 1, 3, 2, 1, 34, 2)
    record = bytes([198, 51, 100, 7]) + (70000).to_bytes(3, "big") + bytes([5]) + struct.pack("!H", 100)
    body = struct.pack("!HH", 2, 4 + len(template)) + template + struct.pack("!HH", 256, 4 + 2 * len(record))
    body += record * 2
    payload = struct.pack("!HHIII", 10, 16 + len(body), 0, 0, 0) + body
    decoder = FastFlowDecoder()
    decoder.feed(payload, "x")
    batch = decoder.take()
    assert list(batch.v4_bytes) == [7_000_000.0, 7_000_000.0]
    assert list(batch.v4_packets) == [500.0, 500.0]
    typed = FlowDecoder().decode(payload, "x")
    assert [(r.bytes * r.sampling_rate, r.packets * r.sampling_rate) for r in typed] == [(7_000_000, 500)] * 2


def test_redefinition_and_withdrawal_invalidate_known_shapes() -> None:
    from tests.unit.test_netflow_decoder import FLOW_FIELDS, flow_data, ipfix, ipfix_set, ipfix_template

    data = ipfix(ipfix_set(256, flow_data("192.0.2.1", "198.51.100.1", 1000)))
    decoder = FastFlowDecoder()
    decoder.feed(ipfix(ipfix_set(2, ipfix_template(256, FLOW_FIELDS))), "x")
    for _ in range(3):  # the second and third take the known-shape lane
        decoder.feed(data, "x")
    assert [str(ipaddress.IPv4Address(int(d))) for d in decoder.take().v4_dst] == ["198.51.100.1"] * 3
    swapped = [(12, 4), (8, 4), *FLOW_FIELDS[2:]]
    decoder.feed(ipfix(ipfix_set(2, ipfix_template(256, swapped))), "x")
    decoder.feed(data, "x")
    assert [str(ipaddress.IPv4Address(int(d))) for d in decoder.take().v4_dst] == ["192.0.2.1"]
    decoder.feed(ipfix(ipfix_set(2, struct.pack("!HH", 256, 0))), "x")  # withdrawn
    decoder.feed(data, "x")
    assert decoder.take().flow_samples == 0
    assert decoder.counters.pending_sets_held == 1


def test_template_refreshes_are_counted_and_redefinitions_still_apply() -> None:
    from tests.unit.test_netflow_decoder import FLOW_TEMPLATE, flow_data, ipfix, ipfix_set, ipfix_template

    decoder = FastFlowDecoder()
    one = ipfix_set(256, flow_data("192.0.2.1", "198.51.100.1", 1000))
    for _ in range(3):  # the same template set again and again: each one counted
        decoder.feed(ipfix(FLOW_TEMPLATE), "192.0.2.9")
        decoder.feed(ipfix(one), "192.0.2.9")
    assert decoder.counters.templates == 3
    assert decoder.take().v4_dst.tolist() == [int(ipaddress.IPv4Address("198.51.100.1"))] * 3
    # a redefinition (destination first now) after the refreshes: decoded with the new layout
    swapped = ipfix_set(2, ipfix_template(256, [(12, 4), (8, 4), (1, 4), (2, 4), (4, 1), (7, 2), (11, 2)]))
    decoder.feed(ipfix(swapped), "192.0.2.9")
    decoder.feed(ipfix(one), "192.0.2.9")
    decoder.feed(ipfix(FLOW_TEMPLATE), "192.0.2.9")  # and back: not mistaken for a refresh
    decoder.feed(ipfix(one), "192.0.2.9")
    # the set queued under the redefinition is not lost when the template changes back in the batch
    expected = [int(ipaddress.IPv4Address(a)) for a in ("192.0.2.1", "198.51.100.1")]
    assert decoder.take().v4_dst.tolist() == expected


def test_a_refresh_releases_data_sets_waiting_for_their_template() -> None:
    from tests.unit.test_netflow_decoder import FLOW_TEMPLATE, flow_data, ipfix, ipfix_set

    decoder = FastFlowDecoder()
    decoder.feed(ipfix(FLOW_TEMPLATE), "192.0.2.9")
    decoder.feed(ipfix(FLOW_TEMPLATE), "192.0.2.9")  # a refresh, remembered as one
    early = ipfix(ipfix_set(256, flow_data("192.0.2.1", "198.51.100.1", 1000)), domain=2)
    decoder.feed(early, "192.0.2.9")  # domain 2 has no template yet: held
    decoder.feed(ipfix(FLOW_TEMPLATE, domain=2), "192.0.2.9")
    assert decoder.take().flow_samples == 1
