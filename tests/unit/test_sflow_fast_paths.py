"""The fast path's per-sample ingress interface and next hop, in C and in the Python fallback.

Datagrams are built here with extended router (0:1002) and gateway (0:1003) records and in the
expanded sample format, which the shared encoder does not produce; the typed decoder is the
reference for what each datagram says.
"""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest

from tests.unit.test_sflow_fast import assert_batches_equal
from topfib.collector.common.batch import SampleBatch
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.encode import FlowSampleSpec, encode_flow_sample
from topfib.collector.sflow.fast import FastSflowDecoder, Implementation, c_extension_available

IMPLEMENTATIONS: list[Implementation] = ["python", "c"] if c_extension_available() else ["python"]
V4 = FlowSampleSpec(src="198.51.100.7", dst="203.0.113.9", sampling_rate=10, frame_length=100, input_if=7)
V6 = FlowSampleSpec(src="2001:db8::7", dst="2001:db8:ffff::1", sampling_rate=10, frame_length=100, input_if=9)
AGENT = "192.0.2.1"


def address(text: str | None) -> bytes:
    if text is None:
        return struct.pack("!I", 0)
    parsed = ipaddress.ip_address(text)
    return struct.pack("!I", 1 if parsed.version == 4 else 2) + parsed.packed


def record(data_format: int, body: bytes) -> bytes:
    return struct.pack("!II", data_format, len(body)) + body


def router(next_hop: str | None) -> bytes:
    return record(1002, address(next_hop) + struct.pack("!II", 24, 24))


def gateway(next_hop: str | None, as_path: tuple[int, ...] = (64500, 64501)) -> bytes:
    body = address(next_hop) + struct.pack("!III", 64496, 64497, 64500)
    body += (
        struct.pack("!I", 1)
        + struct.pack("!II", 2, len(as_path))
        + struct.pack(f"!{len(as_path)}I", *as_path)
    )
    body += struct.pack("!I", 1) + struct.pack("!I", 0xFFFF0001) + struct.pack("!I", 100)
    return record(1003, body)


def sample(
    spec: FlowSampleSpec, extra: list[bytes], expanded: bool = False, input_word: int | None = None
) -> bytes:
    """``spec``'s compact sample (or its expanded twin) with ``extra`` records appended."""
    compact = encode_flow_sample(spec)[8:]
    fields = list(struct.unpack_from("!8I", compact))
    records = compact[32:] + b"".join(extra)
    count = fields[7] + len(extra)
    if input_word is not None:
        fields[5] = input_word
    if expanded:
        seq, source_id, rate, pool, drops, input_if, output_if, _ = fields
        in_format, in_value = (
            (input_if >> 30, input_if & 0x3FFFFFFF) if input_word is None else (0, input_word)
        )
        body = struct.pack(
            "!11I", seq, source_id >> 24, source_id & 0xFFFFFF, rate, pool, drops,
            in_format, in_value, 0, output_if, count,
        ) + records  # fmt: skip
        return struct.pack("!II", 3, len(body)) + body
    fields[7] = count
    body = struct.pack("!8I", *fields) + records
    return struct.pack("!II", 1, len(body)) + body


def datagram(samples: list[bytes], sequence: int = 1, agent: str = AGENT) -> bytes:
    header = struct.pack("!II", 5, 1) + ipaddress.IPv4Address(agent).packed
    return header + struct.pack("!IIII", 0, sequence, 1000, len(samples)) + b"".join(samples)


def decode(implementation: Implementation, datagrams: list[bytes]) -> SampleBatch:
    decoder = FastSflowDecoder(implementation)
    decoder.feed_many([(d, AGENT) for d in datagrams])
    return decoder.take()


def hops_of(batch: SampleBatch) -> tuple[list[str | None], list[str | None]]:
    def name(index: int) -> str | None:
        return None if index < 0 else batch.next_hops[index]

    return [name(i) for i in batch.v4_next_hop.tolist()], [name(i) for i in batch.v6_next_hop.tolist()]


MIXED = [
    datagram([
        sample(V4, [router("192.0.2.9"), gateway("203.0.113.1")]),  # BGP next hop wins
        sample(V4, [router("192.0.2.9")]),  # only the router's
        sample(V6, [gateway("2001:db8::1")]),
        sample(V4, []),  # none
        sample(V4, [gateway(None), router("192.0.2.9")]),  # gateway with an unknown address
        sample(V4, [gateway("0.0.0.0"), router("0.0.0.0")]),  # all-zero: none
        sample(V6, [router("2001:db8::2"), router("2001:db8::3")], expanded=True),  # the last record
    ], sequence=1),
    datagram([sample(V4, [gateway("203.0.113.1")], expanded=True, input_word=70000)], sequence=2),
]  # fmt: skip


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_next_hop_prefers_the_gateway_then_the_router(implementation: Implementation) -> None:
    batch = decode(implementation, MIXED)
    v4, v6 = hops_of(batch)
    assert v4 == ["203.0.113.1", "192.0.2.9", None, "192.0.2.9", None, "203.0.113.1"]
    assert v6 == ["2001:db8::1", "2001:db8::3"]
    # names appear once, in order of first use
    assert batch.next_hops == ["203.0.113.1", "192.0.2.9", "2001:db8::1", "2001:db8::3"]
    assert batch.v4_next_hop.dtype == "int32" and batch.v4_input_if.dtype == "uint32"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_input_interface_compact_and_expanded(implementation: Implementation) -> None:
    batch = decode(implementation, MIXED)
    assert batch.v4_input_if.tolist() == [7, 7, 7, 7, 7, 70000]
    assert batch.v6_input_if.tolist() == [9, 9]
    special = datagram([
        sample(V4, [], input_word=0x3FFFFFFF),  # the agent itself
        sample(V4, [], input_word=(1 << 30) | 5),  # discarded (format 1): not an interface
        sample(V4, [], input_word=(2 << 30) | 3),  # multiple interfaces
        sample(V4, [], expanded=True, input_word=0x3FFFFFFF),
    ])  # fmt: skip
    assert decode(implementation, [special]).v4_input_if.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_columns_match_the_typed_decoder(implementation: Implementation) -> None:
    batch = decode(implementation, MIXED)
    v4, v6 = hops_of(batch)
    expected: list[str | None] = []
    for item in MIXED:
        for flow in decode_datagram(item).flow_samples:
            hop = next(
                (h for h in (flow.bgp_next_hop, flow.next_hop) if h not in (None, "0.0.0.0", "::")), None
            )
            expected.append(hop)
    assert sorted(v4 + v6, key=str) == sorted(expected, key=str)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_malformed_datagram_leaves_no_next_hop_and_takes_reset_the_names(
    implementation: Implementation,
) -> None:
    decoder = FastSflowDecoder(implementation)
    good = datagram([sample(V4, [gateway("203.0.113.1")])], sequence=1)
    broken = datagram([sample(V4, [gateway("198.51.100.99")])], sequence=2)[:-6]  # truncated gateway
    decoder.feed_many([(broken, AGENT), (good, AGENT)])
    first = decoder.take()
    assert sum(first.malformed.values()) == 1
    assert first.next_hops == ["203.0.113.1"] and first.v4_next_hop.tolist() == [0]
    decoder.feed(datagram([sample(V4, [router("192.0.2.9")]), sample(V4, [])], sequence=3), AGENT)
    second = decoder.take()
    assert second.next_hops == ["192.0.2.9"] and second.v4_next_hop.tolist() == [0, -1]


@pytest.mark.skipif(not c_extension_available(), reason="C extension not built")
def test_c_and_python_agree_on_next_hops_and_interfaces() -> None:
    many = [
        datagram([sample(V4, [gateway(f"10.0.{i % 7}.1")]), sample(V6, [router(f"2001:db8::{i % 5:x}")])], i)
        for i in range(1, 200)
    ]
    items = MIXED + many
    assert_batches_equal(decode("c", items), decode("python", items))


def test_complete_fills_missing_columns() -> None:
    filled = SampleBatch(v4_dst=np.arange(2, dtype=np.uint32)).complete()
    assert filled.v4_input_if.tolist() == [0, 0] and filled.v4_next_hop.tolist() == [-1, -1]
    assert len(filled.v6_input_if) == 0 and len(filled.v6_next_hop) == 0
