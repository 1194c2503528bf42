"""FlowDecoder on hand-built NetFlow v9 / IPFIX datagrams: template life cycle, options sampling,
variable-length and enterprise fields, data before template, bounds, and typed errors."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from topfib.collector.netflow.decoder import FlowDecodeError, FlowDecoder, is_netflow

EXPORT_TIME = 1_700_000_000
# (element id, length[, enterprise]): src/dst IPv4, octets, packets, protocol, ports
FLOW_FIELDS = [(8, 4), (12, 4), (1, 4), (2, 4), (4, 1), (7, 2), (11, 2)]


def flow_data(src: str, dst: str, octets: int, packets: int = 1) -> bytes:
    return (
        bytes(int(x) for x in src.split("."))
        + bytes(int(x) for x in dst.split("."))
        + struct.pack("!IIBHH", octets, packets, 6, 1234, 80)
    )


def field_specs(fields: Sequence[tuple[int, ...]]) -> bytes:
    out = b""
    for spec in fields:
        if len(spec) == 3:
            out += struct.pack("!HHI", spec[0] | 0x8000, spec[1], spec[2])
        else:
            out += struct.pack("!HH", spec[0], spec[1])
    return out


def ipfix_set(set_id: int, body: bytes) -> bytes:
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def ipfix_template(template_id: int, fields: Sequence[tuple[int, ...]]) -> bytes:
    return struct.pack("!HH", template_id, len(fields)) + field_specs(fields)


def ipfix_options_template(template_id: int, scope_count: int, fields: Sequence[tuple[int, ...]]) -> bytes:
    return struct.pack("!HHH", template_id, len(fields), scope_count) + field_specs(fields)


def ipfix(*sets: bytes, domain: int = 1, sequence: int = 0) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), EXPORT_TIME, sequence, domain) + body


def v9(*sets: bytes, source_id: int = 0, uptime_ms: int = 100_000) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), uptime_ms, EXPORT_TIME, 7, source_id) + b"".join(sets)


FLOW_TEMPLATE = ipfix_set(2, ipfix_template(256, FLOW_FIELDS))
ONE_FLOW = ipfix_set(256, flow_data("192.0.2.1", "198.51.100.1", 1000))


def test_is_netflow_sniffs_versions() -> None:
    assert [is_netflow(p) for p in (b"\x00\x05", b"\x00\x09", b"\x00\x0a", b"\x00\x00\x00\x05", b"\x00")] == [
        True, True, True, False, False,
    ]  # fmt: skip


def test_template_then_data() -> None:
    decoder = FlowDecoder()
    assert decoder.decode(ipfix(FLOW_TEMPLATE), "10.0.0.1") == []
    [record] = decoder.decode(ipfix(ONE_FLOW, sequence=9), "10.0.0.1")
    assert (record.src, record.dst, record.bytes, record.packets, record.protocol) == (
        "192.0.2.1", "198.51.100.1", 1000, 1, 6,
    )  # fmt: skip
    assert (record.exporter, record.observation_domain, record.sequence, record.sampling_rate) == (
        "10.0.0.1", 1, 9, 1,
    )  # fmt: skip
    assert decoder.counters.templates == 1
    assert decoder.counters.unknown_sampling == 1


def test_templates_are_per_exporter_and_domain() -> None:
    decoder = FlowDecoder()
    decoder.decode(ipfix(FLOW_TEMPLATE, domain=1), "10.0.0.1")
    assert decoder.decode(ipfix(ONE_FLOW, domain=2), "10.0.0.1") == []
    assert decoder.decode(ipfix(ONE_FLOW, domain=1), "10.0.0.2") == []
    assert decoder.counters.pending_sets_held == 2
    assert len(decoder.decode(ipfix(ONE_FLOW, domain=1), "10.0.0.1")) == 1


def test_withdrawal_and_redefinition() -> None:
    decoder = FlowDecoder(max_pending_sets=0)
    decoder.decode(ipfix(FLOW_TEMPLATE), "x")
    decoder.decode(ipfix(ipfix_set(2, struct.pack("!HH", 256, 0))), "x")  # withdraw 256
    assert decoder.decode(ipfix(ONE_FLOW), "x") == []
    assert decoder.counters.template_withdrawals == 1
    assert decoder.counters.pending_template_drops == 1
    # redefined with the addresses swapped: the new layout applies
    swapped = [(12, 4), (8, 4), *FLOW_FIELDS[2:]]
    decoder.decode(ipfix(ipfix_set(2, ipfix_template(256, swapped))), "x")
    [record] = decoder.decode(ipfix(ONE_FLOW), "x")
    assert (record.src, record.dst) == ("198.51.100.1", "192.0.2.1")


def test_withdraw_all_data_templates_keeps_options_templates() -> None:
    decoder = FlowDecoder()
    options = ipfix_set(3, ipfix_options_template(300, 1, [(48, 1), (34, 4)]))
    decoder.decode(ipfix(FLOW_TEMPLATE, ipfix_set(2, ipfix_template(257, FLOW_FIELDS)), options), "x")
    decoder.decode(ipfix(ipfix_set(2, struct.pack("!HH", 2, 0))), "x")
    assert decoder.counters.template_withdrawals == 2
    decoder.decode(ipfix(ipfix_set(300, struct.pack("!BI", 0, 100))), "x")
    assert decoder.counters.options_records == 1


def test_options_sampling_per_sampler_and_exporter_wide() -> None:
    decoder = FlowDecoder()
    options = ipfix_set(3, ipfix_options_template(300, 1, [(48, 1), (34, 4)]))
    rates = ipfix_set(300, struct.pack("!BI", 1, 100) + struct.pack("!BI", 2, 2000))
    with_sampler = ipfix_set(2, ipfix_template(257, [*FLOW_FIELDS, (48, 1)]))
    decoder.decode(ipfix(options, rates, FLOW_TEMPLATE, with_sampler), "x")
    data = flow_data("192.0.2.1", "198.51.100.1", 10)
    records = decoder.decode(ipfix(ipfix_set(257, data + b"\x02" + data + b"\x01")), "x")
    assert [r.sampling_rate for r in records] == [2000, 100]
    # no sampler named and no exporter-wide rate: ambiguous, so unknown (1) and counted
    [unnamed] = decoder.decode(ipfix(ONE_FLOW), "x")
    assert unnamed.sampling_rate == 1
    assert decoder.counters.unknown_sampling == 1
    decoder.decode(ipfix(ipfix_set(300, struct.pack("!BI", 0, 512))), "x")
    [unnamed] = decoder.decode(ipfix(ONE_FLOW), "x")
    assert unnamed.sampling_rate == 512


def test_record_sampling_interval_beats_options() -> None:
    decoder = FlowDecoder()
    decoder.decode(ipfix(ipfix_set(2, ipfix_template(256, [*FLOW_FIELDS, (34, 4)]))), "x")
    [record] = decoder.decode(
        ipfix(ipfix_set(256, flow_data("192.0.2.1", "192.0.2.2", 5) + b"\0\0\0\x40")), "x"
    )
    assert record.sampling_rate == 64


def test_variable_length_and_enterprise_fields_are_skipped_by_length() -> None:
    decoder = FlowDecoder()
    fields = [(8, 4), (82, 0xFFFF), (100, 6, 9), (12, 4), (83, 0xFFFF), (1, 4)]
    decoder.decode(ipfix(ipfix_set(2, ipfix_template(256, fields))), "x")
    long_name = b"x" * 300
    record_bytes = (
        bytes([192, 0, 2, 1]) + b"\x03abc" + b"vendor" + bytes([192, 0, 2, 2])
        + b"\xff" + struct.pack("!H", len(long_name)) + long_name + struct.pack("!I", 77)
    )  # fmt: skip
    [record] = decoder.decode(ipfix(ipfix_set(256, record_bytes + b"\0\0\0")), "x")  # 3 bytes padding
    assert (record.src, record.dst, record.bytes) == ("192.0.2.1", "192.0.2.2", 77)


def test_variable_length_past_the_set_is_counted_and_other_sets_survive() -> None:
    decoder = FlowDecoder()
    decoder.decode(ipfix(FLOW_TEMPLATE, ipfix_set(2, ipfix_template(257, [(82, 0xFFFF)]))), "x")
    records = decoder.decode(ipfix(ipfix_set(257, b"\x09abc"), ONE_FLOW), "x")
    assert len(records) == 1
    assert decoder.counters.malformed == {("record-overflow", "x"): 1}


def test_data_before_template_is_bounded_in_count_and_age() -> None:
    decoder = FlowDecoder(max_pending_sets=2, pending_max_age_datagrams=3)
    for _ in range(3):
        decoder.decode(ipfix(ONE_FLOW), "x")
    assert decoder.counters.pending_template_drops == 1  # capacity 2
    for _ in range(4):
        decoder.decode(ipfix(), "x")
    assert decoder.counters.pending_template_drops == 3  # aged out
    assert decoder.decode(ipfix(FLOW_TEMPLATE), "x") == []


def test_data_before_template_in_the_same_datagram() -> None:
    decoder = FlowDecoder()
    assert len(decoder.decode(ipfix(ONE_FLOW, FLOW_TEMPLATE), "x")) == 1
    assert decoder.counters.pending_sets_decoded == 1


def test_template_cache_is_bounded() -> None:
    decoder = FlowDecoder(max_templates=4)  # and 1 per exporter (a tenth, at least 1)
    sets = [ipfix_set(2, ipfix_template(256 + i, FLOW_FIELDS)) for i in range(3)]
    decoder.decode(ipfix(*sets), "x")
    counters = decoder.counters
    assert (counters.templates, counters.templates_evicted, counters.templates_refused) == (3, 2, 0)
    decoder.decode(ipfix(sets[2]), "x")  # refreshing the one kept evicts nothing
    assert (counters.templates, counters.templates_evicted) == (4, 2)
    for exporter in ("y", "z", "w", "v"):
        decoder.decode(ipfix(sets[0]), exporter)
    assert (counters.templates, counters.templates_refused) == (7, 1)  # 4 in total


def test_netflow_v9_options_scope_is_not_an_element() -> None:
    decoder = FlowDecoder()
    # scope: System (type 1, which as an element id would be octetDeltaCount), 4 bytes
    options_template = struct.pack("!HHHHHHHHH", 300, 4, 8, 1, 4, 48, 1, 50, 4) + b"\0\0"
    template = struct.pack("!HH", 256, len(FLOW_FIELDS) + 2) + field_specs([*FLOW_FIELDS, (48, 1), (22, 4)])
    options_data = struct.pack("!IBI", 99, 5, 1000) + b"\0\0\0"
    data = flow_data("192.0.2.1", "192.0.2.2", 300) + b"\x05" + struct.pack("!I", 99_000)
    records = decoder.decode(
        v9(ipfix_set(1, options_template), ipfix_set(0, template), ipfix_set(300, options_data),
           ipfix_set(256, data), uptime_ms=100_000),
        "x",
    )  # fmt: skip
    assert [(r.version, r.sampling_rate, r.bytes) for r in records] == [(9, 1000, 300)]
    assert records[0].flow_start_ms == EXPORT_TIME * 1000 - 1000  # 1 s of uptime before export


def test_v9_uptime_wrap() -> None:
    decoder = FlowDecoder()
    template = struct.pack("!HH", 256, len(FLOW_FIELDS) + 1) + field_specs([*FLOW_FIELDS, (22, 4)])
    data = flow_data("192.0.2.1", "192.0.2.2", 1) + struct.pack("!I", 0xFFFFFF00)
    [record] = decoder.decode(v9(ipfix_set(0, template), ipfix_set(256, data), uptime_ms=0x100), "x")
    assert record.flow_start_ms == EXPORT_TIME * 1000 - 0x200


def test_v9_trailing_zero_padding() -> None:
    decoder = FlowDecoder()
    template = struct.pack("!HH", 256, len(FLOW_FIELDS)) + field_specs(FLOW_FIELDS)
    assert decoder.decode(v9(ipfix_set(0, template), b"\0" * 40), "x") == []
    assert decoder.counters.templates == 1
    assert decoder.counters.malformed == {}


def test_reserved_set_ids_are_skipped() -> None:
    decoder = FlowDecoder()
    assert decoder.decode(ipfix(ipfix_set(7, b"\0" * 8), FLOW_TEMPLATE, ONE_FLOW), "x") != []
    assert decoder.counters.reserved_sets == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00", "version"),
        (b"\x00\x07" + b"\0" * 30, "version"),
        (b"\x00\x0a\x00\x10", "short-header"),
        (struct.pack("!HHIII", 10, 99, 0, 0, 0), "message-length"),
        (ipfix(struct.pack("!HH", 256, 2)), "set-length"),
        (ipfix(struct.pack("!HH", 256, 40) + b"\1" * 4), "set-overflow"),
        (b"\x00\x09" + b"\0" * 10, "short-header"),
        (b"\x00\x05" + b"\0" * 10, "short-header"),
        (b"\x00\x05\x00\x1f" + b"\0" * 22, "record-count"),
        (b"\x00\x05\x00\x02" + b"\0" * 22 + b"\0" * 48, "record-overflow"),
    ],
)
def test_datagram_errors_are_typed_and_counted(payload: bytes, reason: str) -> None:
    decoder = FlowDecoder()
    with pytest.raises(FlowDecodeError) as caught:
        decoder.decode(payload, "x")
    assert caught.value.reason == reason
    assert decoder.counters.malformed == {(reason, "x"): 1}


@pytest.mark.parametrize(
    ("template_set", "reason"),
    [
        (ipfix_set(2, struct.pack("!HH", 256, 1000) + b"\0" * 8), "template-overflow"),
        (ipfix_set(2, struct.pack("!HH", 12, 1) + b"\0" * 4), "template-id"),
        (ipfix_set(2, struct.pack("!HHHH", 256, 1, 0x8001, 4)), "template-overflow"),
        (ipfix_set(3, ipfix_options_template(300, 0, [(48, 1)])), "scope-count"),
        (ipfix_set(3, ipfix_options_template(300, 2, [(48, 1)])), "scope-count"),
        (ipfix_set(2, struct.pack("!HH", 5, 0)), "template-id"),
    ],
)
def test_set_errors_are_counted_and_the_datagram_survives(template_set: bytes, reason: str) -> None:
    decoder = FlowDecoder()
    decoder.decode(ipfix(FLOW_TEMPLATE), "x")
    assert len(decoder.decode(ipfix(template_set, ONE_FLOW), "x")) == 1
    assert decoder.counters.malformed == {(reason, "x"): 1}


def test_zero_length_template_cannot_loop() -> None:
    decoder = FlowDecoder()
    decoder.decode(ipfix(ipfix_set(2, ipfix_template(256, [(8, 0)]))), "x")
    assert decoder.decode(ipfix(ipfix_set(256, b"\0" * 8)), "x") == []
    assert decoder.counters.malformed == {("template-empty", "x"): 1}
