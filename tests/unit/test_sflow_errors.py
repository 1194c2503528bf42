"""Bad datagrams: each gives an SflowError with the right reason, never a raw exception."""

from __future__ import annotations

import struct

import pytest

from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.collector.sflow.records import (
    REASON_BAD_ADDRESS_TYPE,
    REASON_BAD_VERSION,
    REASON_COUNT_OVERRUN,
    REASON_LENGTH_OVERRUN,
    REASON_TRUNCATED,
    SflowError,
)

SPEC = FlowSampleSpec(src="198.51.100.7", dst="203.0.113.9", sampling_rate=512, frame_length=1000)
GOOD = encode_datagram("192.0.2.1", 3, 77, 123456, [SPEC, SPEC])
HEADER_V4 = 28  # version, address type, address, sub-agent, sequence, uptime, sample count
SAMPLE_COUNT_AT = 24
FIRST_SAMPLE_LENGTH_AT = HEADER_V4 + 4
RECORD_COUNT_AT = HEADER_V4 + 8 + 28
FIRST_RECORD_LENGTH_AT = RECORD_COUNT_AT + 8
HEADER_LENGTH_AT = FIRST_RECORD_LENGTH_AT + 4 + 12


def patched(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("!I", value) + data[offset + 4 :]


def reason_of(data: bytes) -> str:
    with pytest.raises(SflowError) as caught:
        decode_datagram(data)
    return caught.value.reason


def test_good_datagram_decodes() -> None:
    datagram = decode_datagram(GOOD)
    assert datagram.header.sub_agent == 3 and datagram.header.sequence == 77
    assert [sample.dst for sample in datagram.flow_samples] == ["203.0.113.9", "203.0.113.9"]
    assert datagram.flow_samples[0].frame_length == 1000
    assert not datagram.last_sample_length_mismatch


def test_ipv6_agent() -> None:
    datagram = decode_datagram(encode_datagram("2001:db8::1", 0, 1, 1, [SPEC]))
    assert datagram.header.agent == "2001:db8::1"
    assert datagram.flow_samples[0].agent == "2001:db8::1"


@pytest.mark.parametrize("cut", [0, 3, 7, 12, 27, 40, 100, len(GOOD) - 1])
def test_truncated_anywhere_is_an_sflow_error(cut: int) -> None:
    assert reason_of(GOOD[:cut]) in (REASON_TRUNCATED, REASON_LENGTH_OVERRUN, REASON_COUNT_OVERRUN)


def test_empty_and_short_datagrams_are_truncated() -> None:
    assert reason_of(b"") == REASON_TRUNCATED
    assert reason_of(b"\x00\x00\x00\x05\x00\x00\x00\x01\x7f\x00") == REASON_TRUNCATED


def test_wrong_version() -> None:
    assert reason_of(patched(GOOD, 0, 4)) == REASON_BAD_VERSION
    assert reason_of(b"\x00\x09" + GOOD[2:]) == REASON_BAD_VERSION


def test_bad_agent_address_type() -> None:
    assert reason_of(patched(GOOD, 4, 7)) == REASON_BAD_ADDRESS_TYPE
    assert reason_of(patched(GOOD, 4, 0)) == REASON_BAD_ADDRESS_TYPE


def test_absurd_sample_count_is_rejected_before_looping() -> None:
    assert reason_of(patched(GOOD, SAMPLE_COUNT_AT, 0xFFFFFFFF)) == REASON_COUNT_OVERRUN
    assert reason_of(patched(GOOD, SAMPLE_COUNT_AT, 1_000_000)) == REASON_COUNT_OVERRUN


def test_sample_length_overrun_on_a_sample_that_is_not_the_last() -> None:
    assert reason_of(patched(GOOD, FIRST_SAMPLE_LENGTH_AT, 0x7FFFFFFF)) == REASON_LENGTH_OVERRUN


def test_absurd_record_count() -> None:
    assert reason_of(patched(GOOD, RECORD_COUNT_AT, 0xFFFFFFFF)) == REASON_COUNT_OVERRUN


def test_record_length_overrun() -> None:
    assert reason_of(patched(GOOD, FIRST_RECORD_LENGTH_AT, 100_000)) == REASON_LENGTH_OVERRUN


def test_sampled_header_length_overrun() -> None:
    assert reason_of(patched(GOOD, HEADER_LENGTH_AT, 4096)) == REASON_LENGTH_OVERRUN


def test_last_sample_length_mismatch_is_tolerated_but_flagged() -> None:
    one = encode_datagram("192.0.2.1", 0, 1, 1, [SPEC])
    longer = patched(one, FIRST_SAMPLE_LENGTH_AT, 0x7FFFFFFF)
    datagram = decode_datagram(longer)
    assert datagram.last_sample_length_mismatch
    assert datagram.flow_samples == decode_datagram(one).flow_samples


def test_last_sample_cut_inside_a_record_still_fails() -> None:
    one = encode_datagram("192.0.2.1", 0, 1, 1, [SPEC])
    assert reason_of(one[:-8]) in (REASON_TRUNCATED, REASON_LENGTH_OVERRUN)


def test_unknown_samples_and_records_are_skipped_by_length() -> None:
    unknown_sample = struct.pack("!II", (9 << 12) | 1, 8) + b"\xff" * 8
    unknown_record = struct.pack("!II", (5 << 12) | 77, 4) + b"\xee" * 4
    one = encode_datagram("192.0.2.1", 0, 1, 1, [SPEC])
    flow = one[HEADER_V4:]
    # insert an unknown record at the start of the flow sample and bump its counts and length
    body = flow[8:]
    records = struct.unpack_from("!I", body, 28)[0]
    new_body = body[:28] + struct.pack("!I", records + 1) + unknown_record + body[32:]
    new_flow = struct.pack("!II", 1, len(new_body)) + new_body
    datagram_bytes = patched(one[:HEADER_V4], SAMPLE_COUNT_AT, 2) + unknown_sample + new_flow
    datagram = decode_datagram(datagram_bytes)
    assert datagram.skipped_samples == 1
    (sample,) = datagram.flow_samples
    assert sample.records == ("5:77", "0:1", "0:1001")
    assert sample.dst == "203.0.113.9"


def test_error_message_names_the_reason() -> None:
    with pytest.raises(SflowError, match="count_overrun"):
        decode_datagram(patched(GOOD, SAMPLE_COUNT_AT, 0xFFFFFFFF))


def test_sflow_error_is_a_value_error() -> None:
    assert issubclass(SflowError, ValueError)


def test_drop_records_inside_a_flow_sample_are_validated_but_not_reported() -> None:
    # found by bench/fuzz_sflow.py: a 1036 (egress queue) record in a flow sample
    one = encode_datagram("192.0.2.1", 0, 1, 1, [SPEC])
    body = one[HEADER_V4 + 8 :]
    records = struct.unpack_from("!I", body, 28)[0]
    queue_record = struct.pack("!III", 1036, 4, 42)
    new_body = body[:28] + struct.pack("!I", records + 1) + queue_record + body[32:]
    datagram = one[:HEADER_V4] + struct.pack("!II", 1, len(new_body)) + new_body
    (sample,) = decode_datagram(datagram).flow_samples
    assert sample.records == ("0:1036", "0:1", "0:1001") and sample.dst == "203.0.113.9"
    truncated_queue = struct.pack("!II", 1036, 0)
    bad_body = body[:28] + struct.pack("!I", records + 1) + truncated_queue + body[32:]
    with pytest.raises(SflowError, match="truncated"):
        decode_datagram(one[:HEADER_V4] + struct.pack("!II", 1, len(bad_body)) + bad_body)
