"""The NetFlow/IPFIX fast path's per-record ingress interface and next hop, against the typed decoder."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

import pytest

from tests.unit.test_netflow_corpus import GROUPS, decode_group, payloads
from tests.unit.test_netflow_decoder import ipfix, ipfix_set, ipfix_template, v9
from topfib.collector.common.batch import SampleBatch
from topfib.collector.netflow.decoder import FlowDecoder, FlowRecord
from topfib.collector.netflow.fast import FastFlowDecoder

Row = tuple[str, str, float, int, str | None]  # exporter, destination, bytes, input_if, next hop

# destination, octets, packets, ingress, IP next hop v4, BGP next hop v4, IP next hop v6, BGP next hop v6
HOP_FIELDS = [(12, 4), (1, 4), (2, 4), (10, 4), (15, 4), (18, 4), (62, 16), (63, 16)]
# the same with a variable-length field first, which sends records through the typed builder
TYPED_HOP_FIELDS = [(82, 0xFFFF), *HOP_FIELDS]


def v4(text: str | None) -> bytes:
    return ipaddress.IPv4Address(text or "0.0.0.0").packed


def v6(text: str | None) -> bytes:
    return ipaddress.IPv6Address(text or "::").packed


def hop_record(
    dst: str, ingress: int, ip4: str | None = None, bgp4: str | None = None,
    ip6: str | None = None, bgp6: str | None = None, variable: bool = False,
) -> bytes:  # fmt: skip
    prefix = b"\x03eth" if variable else b""
    return prefix + v4(dst) + struct.pack("!III", 1000, 1, ingress) + v4(ip4) + v4(bgp4) + v6(ip6) + v6(bgp6)


CASES: list[tuple[dict[str, str], str | None]] = [
    ({"ip4": "192.0.2.9", "bgp4": "203.0.113.1"}, "203.0.113.1"),  # the BGP next hop wins
    ({"ip4": "192.0.2.9"}, "192.0.2.9"),
    ({"ip6": "2001:db8::9", "bgp6": "2001:db8::1"}, "2001:db8::1"),
    ({"bgp6": "2001:db8::1", "ip4": "192.0.2.9"}, "2001:db8::1"),  # any BGP family beats the IP one
    ({}, None),
]


def rows_of(batch: SampleBatch) -> list[Row]:
    def hop(index: int) -> str | None:
        return None if index < 0 else batch.next_hops[index]

    rows = [
        (batch.agents[a], str(ipaddress.IPv4Address(int(d))), float(b), int(i), hop(int(h)))
        for a, d, b, i, h in zip(
            batch.v4_agent, batch.v4_dst, batch.v4_bytes, batch.v4_input_if, batch.v4_next_hop, strict=True
        )
    ]
    rows += [
        (batch.agents[a], str(ipaddress.IPv6Address(int(hi) << 64 | int(lo))), float(b), int(i), hop(int(h)))
        for a, hi, lo, b, i, h in zip(
            batch.v6_agent,
            batch.v6_dst_hi,
            batch.v6_dst_lo,
            batch.v6_bytes,
            batch.v6_input_if,
            batch.v6_next_hop,
            strict=True,
        )
    ]
    return sorted(rows, key=repr)


def typed_rows(records: list[FlowRecord]) -> list[Row]:
    rows = []
    for r in records:
        if r.dst is None:
            continue
        hop = next((h for h in (r.bgp_next_hop, r.next_hop) if h and h not in ("0.0.0.0", "::")), None)
        if hop is not None and ":" in hop:  # the batch writes IPv4-mapped addresses dotted, as inet_ntop
            hop = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, hop))
        dst = str(ipaddress.ip_address(r.dst))
        rows.append((r.exporter, dst, float(r.bytes * r.sampling_rate), r.input_if or 0, hop))
    return sorted(rows, key=repr)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_corpus_interfaces_and_next_hops_match_the_typed_decoder(corpus: Path, group: str) -> None:
    files = GROUPS[group][0]
    typed = decode_group(corpus, files)
    fast = FastFlowDecoder()
    for name in files:
        for exporter, payload in payloads(corpus / name):
            fast.feed(payload, exporter)
    assert rows_of(fast.take()) == typed_rows(typed.records)


@pytest.mark.parametrize(
    ("version", "variable"), [(9, False), (10, False), (10, True)], ids=["v9", "ipfix", "ipfix-typed"]
)
def test_bgp_next_hop_preferred_over_ip_next_hop(version: int, variable: bool) -> None:
    fields = TYPED_HOP_FIELDS if variable else HOP_FIELDS
    records = b"".join(
        hop_record(f"198.51.100.{i}", 10 + i, variable=variable, **case) for i, (case, _) in enumerate(CASES)
    )
    if version == 10:
        template = ipfix(ipfix_set(2, ipfix_template(300, fields)))
        data = ipfix(ipfix_set(300, records))
    else:
        template = v9(ipfix_set(0, ipfix_template(300, fields)))
        data = v9(ipfix_set(300, records))
    decoder = FastFlowDecoder()
    for _ in range(2):  # the second datagram takes the known-shape lane
        decoder.feed(template, "192.0.2.50")
        decoder.feed(data, "192.0.2.50")
    rows = rows_of(decoder.take())
    expected = [("192.0.2.50", f"198.51.100.{i}", 1000.0, 10 + i, hop) for i, (_, hop) in enumerate(CASES)]
    assert rows == sorted(expected * 2, key=repr)
    typed = FlowDecoder()
    typed.decode(template, "192.0.2.50")
    assert rows == sorted(typed_rows(typed.decode(data, "192.0.2.50")) * 2, key=repr)


def test_netflow_v5_next_hop_and_input() -> None:
    header = struct.pack("!HHIIIIBBH", 5, 2, 1000, 1_700_000_000, 0, 1, 0, 0, 0)
    records = b"".join(
        v4("192.0.2.7") + v4(dst) + v4(hop) + struct.pack("!HHIIII", ingress, 2, 1, 500, 0, 0) + bytes(16)
        for dst, hop, ingress in (("198.51.100.1", "192.0.2.254", 3), ("198.51.100.2", None, 4))
    )
    decoder = FastFlowDecoder()
    decoder.feed(header + records, "192.0.2.60")
    batch = decoder.take()
    assert rows_of(batch) == [
        ("192.0.2.60", "198.51.100.1", 500.0, 3, "192.0.2.254"),
        ("192.0.2.60", "198.51.100.2", 500.0, 4, None),
    ]
    assert rows_of(batch) == typed_rows(FlowDecoder().decode(header + records, "192.0.2.60"))


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_feed_many_decodes_as_feed_one_by_one(corpus: Path, group: str) -> None:
    files = GROUPS[group][0]
    pairs = [(payload, exporter) for name in files for exporter, payload in payloads(corpus / name)]
    pairs.append((b"\x00\x05\x00\x63" + bytes(20), "192.0.2.9"))  # a malformed v5 header: counted
    one_by_one, many = FastFlowDecoder(), FastFlowDecoder()
    for payload, exporter in pairs:
        one_by_one.feed(payload, exporter)
    many.feed_many(pairs[:3])
    many.feed_many(pairs[3:])
    expected, got = one_by_one.take(), many.take()
    assert rows_of(got) == rows_of(expected)
    assert (got.datagrams, got.flow_samples, got.malformed, got.export_lost) == (
        expected.datagrams, expected.flow_samples, expected.malformed, expected.export_lost,
    )  # fmt: skip
