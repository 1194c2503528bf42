"""Property fuzzing of the sFlow decoders over mutated real datagrams (seeds in seeds/sflow/).

Properties: the typed decoder returns a datagram or raises SflowError with a known reason, and
nothing else; the C fast path, the Python fast path and the typed decoder agree on every input.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_DATA
from topfib.collector.common.batch import SampleBatch
from topfib.collector.common.pcap import PcapError, udp_payloads
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.fast import FastSflowDecoder, c_extension_available
from topfib.collector.sflow.records import REASONS, SflowDatagram, SflowError

pytestmark = pytest.mark.fuzz

SEEDS = sorted((Path(__file__).parent / "seeds" / "sflow").glob("*.bin"))
SEED_BYTES = [path.read_bytes() for path in SEEDS]
CAPTURES = [path.read_bytes() for path in sorted((TEST_DATA / "sflow").glob("*.pcap"))]
# 32-bit values that break length and count checks: zero, one, off-by-a-bit, huge, sign bit
INTERESTING_WORDS = [
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0xFFFFFFFC,
]
FUZZ_SETTINGS = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated_datagrams(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "word", "truncate", "insert", "delete", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "word" and len(data) >= 4:
            aligned = min(at & ~3, len(data) - 4)
            data[aligned : aligned + 4] = struct.pack("!I", draw(st.sampled_from(INTERESTING_WORDS)))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "splice":
            other = draw(st.sampled_from(SEED_BYTES))
            start = draw(st.integers(0, len(other)))
            data[at:] = other[start:]
    return bytes(data)


def test_seed_corpus_is_present_and_decodes() -> None:
    assert len(SEEDS) >= 36
    for seed in SEED_BYTES:
        assert isinstance(decode_datagram(seed), SflowDatagram)


@FUZZ_SETTINGS
@given(mutated_datagrams())
def test_typed_decoder_raises_only_sflow_error(datagram: bytes) -> None:
    try:
        decoded = decode_datagram(datagram)
    except SflowError as exc:
        assert exc.reason in REASONS
        return
    assert len(decoded.flow_samples) + len(decoded.counter_samples) <= decoded.header.sample_count


@FUZZ_SETTINGS
@given(st.binary(max_size=200) | st.binary(max_size=200).map(lambda tail: b"\x00\x00\x00\x05" + tail))
def test_garbage_raises_only_sflow_error(datagram: bytes) -> None:
    try:
        decode_datagram(datagram)
    except SflowError as exc:
        assert exc.reason in REASONS


def assert_batches_equal(left: SampleBatch, right: SampleBatch) -> None:
    for field in fields(SampleBatch):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), field.name
        else:
            assert a == b, field.name


@pytest.mark.skipif(not c_extension_available(), reason="C extension not built")
@FUZZ_SETTINGS
@given(st.lists(mutated_datagrams(), min_size=1, max_size=8))
def test_c_and_python_fast_paths_agree(datagrams: list[bytes]) -> None:
    items = [(datagram, f"192.0.2.{index}") for index, datagram in enumerate(datagrams)]
    c_decoder, python_decoder = FastSflowDecoder("c"), FastSflowDecoder("python")
    # two takes: sequence and drop state must carry over identically
    half = len(items) // 2
    for decoder in (c_decoder, python_decoder):
        decoder.feed_many(items[:half])
    assert_batches_equal(c_decoder.take(), python_decoder.take())
    for decoder in (c_decoder, python_decoder):
        decoder.feed_many(items[half:])
    assert_batches_equal(c_decoder.take(), python_decoder.take())


@FUZZ_SETTINGS
@given(mutated_datagrams())
def test_fast_path_counts_match_the_typed_decoder(datagram: bytes) -> None:
    decoder = FastSflowDecoder()
    decoder.feed(datagram, "198.51.100.1")
    batch = decoder.take()
    try:
        decoded = decode_datagram(datagram)
    except SflowError as exc:
        assert sum(batch.malformed.values()) == 1
        assert next(iter(batch.malformed))[0] == exc.reason
        assert batch.flow_samples == 0 and len(batch.v4_dst) + len(batch.v6_dst_hi) == 0
        return
    with_address = [s for s in decoded.flow_samples if s.dst is not None]
    assert batch.malformed == {}
    assert batch.flow_samples == len(decoded.flow_samples)
    assert len(batch.v4_dst) + len(batch.v6_dst_hi) == len(with_address)
    expected_bytes = sum(float(s.frame_length or 0) * s.sampling_rate for s in with_address)
    assert float(batch.v4_bytes.sum() + batch.v6_bytes.sum()) == pytest.approx(expected_bytes)


@FUZZ_SETTINGS
@given(st.data())
def test_pcap_reader_raises_only_pcap_error(data: st.DataObject) -> None:
    capture = bytearray(data.draw(st.sampled_from(CAPTURES)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(capture) - 1)) if capture else 0
        if data.draw(st.booleans()) and capture:
            capture[at] = data.draw(st.integers(0, 255))
        else:
            del capture[at:]
    try:
        for source, payload in udp_payloads(bytes(capture)):
            assert isinstance(source, str) and isinstance(payload, bytes)
    except PcapError:
        pass
