"""The fast path: C and Python agree with each other and with the typed decoder, and the
accounting rules (scaling, non-IP, malformed agent, sequence gaps, drops) hold in both."""

from __future__ import annotations

import ipaddress
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from topfib.collector.common.batch import SampleBatch
from topfib.collector.common.pcap import is_capture, udp_payloads
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram, realistic_mix
from topfib.collector.sflow.fast import FastSflowDecoder, Implementation, c_extension_available
from topfib.collector.sflow.records import SflowError

IMPLEMENTATIONS: list[Implementation] = ["python", "c"] if c_extension_available() else ["python"]
V4 = FlowSampleSpec(src="198.51.100.7", dst="203.0.113.9", sampling_rate=512, frame_length=1000)
V6 = FlowSampleSpec(src="2001:db8::7", dst="2001:db8:ffff::1", sampling_rate=100, frame_length=200, vlan=7)


def corpus_items(corpus: Path) -> list[tuple[bytes, str]]:
    items: list[tuple[bytes, str]] = []
    for path in sorted((corpus / "sflow").glob("*")):
        data = path.read_bytes()
        if is_capture(data):
            items += [(payload, source) for source, payload in udp_payloads(data)]
        else:
            items.append((data, "192.0.2.250"))
    return items


def decode_all(implementation: Implementation, items: list[tuple[bytes, str]]) -> SampleBatch:
    decoder = FastSflowDecoder(implementation)
    decoder.feed_many(items)
    return decoder.take()


def assert_batches_equal(left: SampleBatch, right: SampleBatch) -> None:
    for field in fields(SampleBatch):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), field.name
        else:
            assert a == b, field.name


def expected_from_typed_decoder(items: list[tuple[bytes, str]]) -> tuple[list[tuple[str, str, float]], int]:
    """(agent, destination, bytes) per flow sample with an address, and the non-IP count."""
    rows: list[tuple[str, str, float]] = []
    non_ip = 0
    for datagram, _ in items:
        try:
            decoded = decode_datagram(datagram)
        except SflowError:
            continue
        for sample in decoded.flow_samples:
            if sample.dst is None or sample.frame_length is None:
                non_ip += 1
            else:
                rows.append((sample.agent, sample.dst, float(sample.frame_length * sample.sampling_rate)))
    return rows, non_ip


def rows_of(batch: SampleBatch) -> list[tuple[str, str, float]]:
    rows = [
        (batch.agents[a], str(ipaddress.IPv4Address(int(d))), float(b))
        for a, d, b in zip(batch.v4_agent, batch.v4_dst, batch.v4_bytes, strict=True)
    ]
    rows += [
        (batch.agents[a], str(ipaddress.IPv6Address((int(hi) << 64) | int(lo))), float(b))
        for a, hi, lo, b in zip(batch.v6_agent, batch.v6_dst_hi, batch.v6_dst_lo, batch.v6_bytes, strict=True)
    ]
    return rows


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_corpus_matches_the_typed_decoder(corpus: Path, implementation: Implementation) -> None:
    items = corpus_items(corpus)
    batch = decode_all(implementation, items)
    rows, non_ip = expected_from_typed_decoder(items)
    assert sorted(rows_of(batch)) == sorted(rows)
    assert batch.non_ip_samples == non_ip
    assert batch.datagrams == 35 and batch.flow_samples == 50 and batch.counter_samples == 22
    assert batch.malformed == {}
    assert len(rows) == 50 - non_ip == 38


@pytest.mark.skipif(not c_extension_available(), reason="C extension not built")
def test_c_and_python_agree_on_corpus_and_generated_mix(corpus: Path) -> None:
    items = corpus_items(corpus) + [(d, "10.0.0.1") for d in realistic_mix(40, seed=3)]
    assert_batches_equal(decode_all("c", items), decode_all("python", items))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_scaling_and_columns(implementation: Implementation) -> None:
    decoder = FastSflowDecoder(implementation)
    decoder.feed(encode_datagram("192.0.2.1", 0, 1, 10, [V4, V6, V4]), "192.0.2.1")
    batch = decoder.take()
    assert batch.agents == ["192.0.2.1"]
    assert batch.v4_dst.tolist() == [int(ipaddress.IPv4Address("203.0.113.9"))] * 2
    assert batch.v4_bytes.tolist() == [512_000.0, 512_000.0]
    assert batch.v4_packets.tolist() == [512.0, 512.0]
    address = int(ipaddress.IPv6Address("2001:db8:ffff::1"))
    assert (batch.v6_dst_hi.tolist(), batch.v6_dst_lo.tolist()) == ([address >> 64], [address & (2**64 - 1)])
    assert batch.v6_bytes.tolist() == [20_000.0] and batch.v6_packets.tolist() == [100.0]
    assert batch.v4_agent.tolist() == [0, 0] and batch.v6_agent.tolist() == [0]
    assert (batch.datagrams, batch.flow_samples, batch.non_ip_samples) == (1, 3, 0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_agents_are_indexed_per_batch(implementation: Implementation) -> None:
    decoder = FastSflowDecoder(implementation)
    decoder.feed(encode_datagram("192.0.2.1", 0, 1, 10, [V4]), "x")
    decoder.feed(encode_datagram("2001:db8::2", 0, 1, 10, [V6]), "x")
    decoder.feed(encode_datagram("192.0.2.1", 0, 2, 10, [V6]), "x")
    first = decoder.take()
    assert first.agents == ["192.0.2.1", "2001:db8::2"]
    assert first.v4_agent.tolist() == [0] and first.v6_agent.tolist() == [1, 0]
    decoder.feed(encode_datagram("2001:db8::2", 0, 2, 10, [V4]), "x")
    second = decoder.take()
    assert second.agents == ["2001:db8::2"] and second.v4_agent.tolist() == [0]
    assert second.datagrams == 1 and second.lost_datagrams == {}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_malformed_counted_by_reason_and_agent_or_exporter(implementation: Implementation) -> None:
    good = encode_datagram("192.0.2.1", 0, 1, 10, [V4, V4])
    decoder = FastSflowDecoder(implementation)
    decoder.feed(good[:-20], "10.9.9.9")  # header intact: the agent is known
    decoder.feed(b"\x00\x00\x00\x04" + good[4:], "10.9.9.9")  # wrong version: only the exporter
    decoder.feed(b"", "10.9.9.9")
    decoder.feed(good, "10.9.9.9")
    batch = decoder.take()
    assert batch.malformed == {
        ("truncated", "192.0.2.1"): 1,
        ("bad_version", "10.9.9.9"): 1,
        ("truncated", "10.9.9.9"): 1,
    }
    # the malformed datagram's samples were rolled back: only the good one counts
    assert (batch.datagrams, batch.flow_samples, len(batch.v4_dst)) == (4, 2, 2)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_non_ip_samples(implementation: Implementation, corpus: Path) -> None:
    frames = (corpus / "sflow" / "gopacket__SFlowEthernetFramePacket.bin").read_bytes()
    batch = decode_all(implementation, [(frames, "x")])
    assert (batch.flow_samples, batch.non_ip_samples, len(batch.v4_dst), len(batch.v6_dst_hi)) == (7, 7, 0, 0)


def sequence_run(implementation: Implementation, steps: list[tuple[int, int, int]]) -> list[dict[str, int]]:
    """Feed (sub-agent, sequence, uptime) datagrams, one take() after each."""
    decoder = FastSflowDecoder(implementation)
    out = []
    for sub_agent, sequence, uptime in steps:
        decoder.feed(encode_datagram("192.0.2.1", sub_agent, sequence, uptime, [V4]), "x")
        out.append(decoder.take().lost_datagrams)
    return out


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_sequence_gaps_persist_across_takes(implementation: Implementation) -> None:
    lost = sequence_run(
        implementation,
        [
            (0, 10, 1000),
            (0, 11, 2000),  # next in line
            (0, 15, 3000),  # 3 lost
            (1, 500, 3000),  # another sub-agent: its own sequence
            (0, 14, 3000),  # late datagram: ignored
            (0, 16, 4000),
            (1, 502, 4000),  # 1 lost on sub-agent 1
            (0, 1, 10),  # restart: sequence and uptime went back
            (0, 2, 1010),
            (0, 0xFFFFFFFF, 2000),  # forward by almost 2^32 means backwards: ignored
            (0, 3, 3000),
        ],
    )
    assert lost == [{}, {}, {"192.0.2.1": 3}, {}, {}, {}, {"192.0.2.1": 1}, {}, {}, {}, {}]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_sequence_wraps_around(implementation: Implementation) -> None:
    lost = sequence_run(implementation, [(0, 0xFFFFFFFE, 100), (0, 1, 200)])
    assert lost == [{}, {"192.0.2.1": 2}]  # 0xFFFFFFFF and 0 are missing


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_agent_drops_are_deltas_per_data_source(implementation: Implementation) -> None:
    decoder = FastSflowDecoder(implementation)

    def feed(sequence: int, specs: list[FlowSampleSpec]) -> dict[str, int]:
        decoder.feed(encode_datagram("192.0.2.1", 0, sequence, sequence * 1000, specs), "x")
        return decoder.take().agent_drops

    port1 = FlowSampleSpec(src="198.51.100.7", dst="203.0.113.9", input_if=1)
    port2 = FlowSampleSpec(src="198.51.100.7", dst="203.0.113.9", input_if=2)
    assert feed(1, [replace(port1, drops=100), replace(port2, drops=7)]) == {}  # baselines
    assert feed(2, [replace(port1, drops=130)]) == {"192.0.2.1": 30}
    assert feed(3, [replace(port1, drops=130), replace(port2, drops=9)]) == {"192.0.2.1": 2}
    assert feed(4, [replace(port1, drops=5)]) == {}  # counter reset: new baseline
    assert feed(5, [replace(port1, drops=6)]) == {"192.0.2.1": 1}


def test_forcing_c_without_the_extension_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import topfib.collector.sflow.fast as fast

    monkeypatch.setattr(fast, "_sflow_fast", None)
    assert FastSflowDecoder().implementation == "python"
    with pytest.raises(RuntimeError, match="not built"):
        FastSflowDecoder("c")


@pytest.mark.skipif(not c_extension_available(), reason="C extension not built")
def test_c_feed_rejects_wrong_types() -> None:
    decoder = FastSflowDecoder("c")
    with pytest.raises(TypeError):
        decoder.feed(b"\x00\x00\x00\x05", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decoder.feed_many([b"not a pair"])  # type: ignore[list-item]
    decoder.feed(bytearray(encode_datagram("192.0.2.1", 0, 1, 1, [V4])), "x")  # type: ignore[arg-type]
    assert decoder.take().flow_samples == 1
