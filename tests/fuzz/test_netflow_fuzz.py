"""Mutation fuzzing of NetFlow v5/v9 and IPFIX decoding over the corpus and the seeds.

The decoder is warmed with the datagrams that precede the target in its template group (so data
sets meet their templates and mutations reach record decoding), then fed a mutated datagram:
nothing but FlowDecodeError may escape, and the decoder must keep working afterwards.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_DATA
from tests.unit.test_netflow_corpus import GROUPS, INVALID, payloads
from topfib.collector.netflow.decoder import FlowDecodeError, FlowDecoder
from topfib.collector.netflow.fast import FastFlowDecoder

SEEDS = Path(__file__).parent / "seeds" / "netflow"
MAX_GROUP_DATAGRAMS = 45  # the big pmacct replays add time, not new structure


def fuzz_cases() -> list[tuple[list[tuple[str, bytes]], int]]:
    """(datagrams of a group, index of the target) for every datagram of the small groups."""
    cases = []
    groups = [files for files, _, _ in GROUPS.values()] + [(name,) for name in INVALID]
    for files in groups:
        datagrams = [d for name in files for d in payloads(TEST_DATA / name)]
        if len(datagrams) <= MAX_GROUP_DATAGRAMS:
            cases += [(datagrams, index) for index in range(len(datagrams))]
    cases += [([("192.0.2.1", path.read_bytes())], 0) for path in sorted(SEEDS.glob("*.bin"))]
    return cases


CASES = fuzz_cases()


@st.composite
def mutated(draw: st.DrawFn, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set16", "truncate", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set16":  # length and count fields are 16-bit: hit their edges
            value = draw(st.sampled_from([0, 1, 3, 4, 255, 256, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]))
            data[at : at + 2] = value.to_bytes(2, "big")
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def check(decoder: FlowDecoder, exporter: str, payload: bytes) -> None:
    try:
        records = decoder.decode(payload, exporter)
    except FlowDecodeError as error:
        assert error.reason
        return
    for record in records:
        assert record.sampling_rate >= 1
        assert record.bytes >= 0 and record.packets >= 0


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_datagrams_raise_only_the_typed_error(data: st.DataObject) -> None:
    assert CASES, "no corpus"
    datagrams, target = data.draw(st.sampled_from(CASES))
    decoder = FlowDecoder()
    for exporter, payload in datagrams[:target]:
        check(decoder, exporter, payload)
    exporter, payload = datagrams[target]
    check(decoder, exporter, data.draw(mutated(payload)))
    for exporter, payload in datagrams[target + 1 :]:  # a broken template must not break later data
        check(decoder, exporter, payload)


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200), version=st.sampled_from([b"\x00\x05", b"\x00\x09", b"\x00\x0a"]))
def test_random_bytes_after_a_version_raise_only_the_typed_error(payload: bytes, version: bytes) -> None:
    check(FlowDecoder(), "192.0.2.1", version + payload)


@pytest.mark.fuzz
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_takes_mutated_datagrams_and_counts_what_the_typed_decoder_decodes(
    data: st.DataObject,
) -> None:
    assert CASES, "no corpus"
    datagrams, target = data.draw(st.sampled_from(CASES))
    exporter, payload = datagrams[target]
    stream = [*datagrams[:target], (exporter, data.draw(mutated(payload))), *datagrams[target + 1 :]]
    typed, fast = FlowDecoder(), FastFlowDecoder()
    records = 0
    for source, datagram in stream:
        with contextlib.suppress(FlowDecodeError):
            records += len(typed.decode(datagram, source))
        fast.feed(datagram, source)  # never raises: bad input is counted
    batch = fast.take()
    assert batch.flow_samples + batch.non_ip_samples == records
    assert batch.datagrams == len(stream)
    assert sum(batch.malformed.values()) == sum(typed.counters.malformed.values())
