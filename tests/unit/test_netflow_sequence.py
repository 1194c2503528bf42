"""Export loss from NetFlow/IPFIX sequence numbers: the tracker's rules, and the fast path's batches."""

from __future__ import annotations

import struct

from tests.unit.test_netflow_decoder import (
    EXPORT_TIME,
    FLOW_FIELDS,
    flow_data,
    ipfix,
    ipfix_set,
    ipfix_template,
)
from topfib.collector.netflow.decoder import FlowDecoder
from topfib.collector.netflow.fast import FastFlowDecoder
from topfib.collector.netflow.sequence import SequenceTracker

V9 = ("192.0.2.9", 9, 0)
IPFIX = ("192.0.2.10", 10, 1)


def test_v9_counts_missing_export_packets_across_wrap_and_ignores_late_ones() -> None:
    tracker = SequenceTracker()
    steps = [tracker.observe(V9, seq, 1, uptime_ms=1000 + seq) for seq in (1, 2, 3, 6, 5, 7)]
    assert steps == [0, 0, 0, 2, 0, 0]  # 4 and 5 missing; 5 then arrives late: ignored
    other = ("192.0.2.9", 9, 1)  # another source id: its own stream, wrapping around 2^32
    assert [tracker.observe(other, seq, 1, uptime_ms=5) for seq in (0xFFFFFFFE, 0xFFFFFFFF, 0, 2)] == [
        0,
        0,
        0,
        1,
    ]
    assert tracker.lost == {("192.0.2.9", "packets"): 3}


def test_restarts_start_over() -> None:
    tracker = SequenceTracker()
    tracker.observe(V9, 30, 1, uptime_ms=90_000)
    assert tracker.observe(V9, 3, 1, uptime_ms=10) == 0  # a small step back, uptime reset: a restart
    assert tracker.observe(V9, 4, 1, uptime_ms=20) == 0
    tracker.observe(IPFIX, 1_000_000, 10)
    assert tracker.observe(IPFIX, 0, 10) == 0  # far behind: a restart, not a late message
    assert tracker.observe(IPFIX, 10, 10) == 0
    assert tracker.lost == {}


def test_ipfix_counts_records_and_rebaselines_when_a_count_is_unknown() -> None:
    tracker = SequenceTracker()
    messages = ((0, 5), (5, 5), (13, None), (99, 4), (103, 1))
    assert [tracker.observe(IPFIX, seq, count) for seq, count in messages] == [0, 0, 3, 0, 0]
    assert tracker.lost == {("192.0.2.10", "records"): 3}


def test_streams_are_bounded() -> None:
    tracker = SequenceTracker(max_streams=2)
    for domain in range(5):
        tracker.observe(("x", 9, domain), 1, 1)
    assert len(tracker._streams) <= 2


def ipfix_data(sequence: int, records: int) -> bytes:
    body = b"".join(flow_data("192.0.2.1", f"198.51.100.{i + 1}", 1000) for i in range(records))
    return ipfix(ipfix_set(256, body), sequence=sequence)


def test_fast_decoder_reports_ipfix_loss_in_the_batch_on_both_lanes() -> None:
    decoder = FastFlowDecoder()
    template = ipfix(ipfix_set(2, ipfix_template(256, FLOW_FIELDS)), sequence=0)
    # the first data message goes through the dispatcher, the next ones through the known-shape lane
    for payload in (template, ipfix_data(0, 3), ipfix_data(3, 3), ipfix_data(10, 3), ipfix_data(13, 3)):
        decoder.feed(payload, "192.0.2.10")
    assert decoder.take().export_lost == {("192.0.2.10", "records"): 4}
    decoder.feed(ipfix_data(20, 3), "192.0.2.10")
    assert decoder.take().export_lost == {("192.0.2.10", "records"): 4}  # per batch: only the new loss
    decoder.feed(ipfix_data(23, 3), "192.0.2.10")
    assert decoder.take().export_lost == {}


def v9_message(sequence: int, uptime_ms: int, *sets: bytes) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), uptime_ms, EXPORT_TIME, sequence, 0) + b"".join(sets)


def test_fast_decoder_reports_v9_and_v5_loss() -> None:
    decoder = FastFlowDecoder()
    template = ipfix_set(0, ipfix_template(256, FLOW_FIELDS))
    data = ipfix_set(256, flow_data("192.0.2.1", "198.51.100.1", 1000))
    for sequence in (1, 2, 5, 6):
        decoder.feed(v9_message(sequence, 1000 * sequence, template, data), "192.0.2.9")
    v5_header = struct.Struct("!HHIIIIBBH")
    record = bytes(4) + bytes([198, 51, 100, 1]) + bytes(8) + struct.pack("!II", 1, 100) + bytes(24)
    for sequence in (0, 2, 10):  # 2 flows per datagram: flows 4..9 missing
        decoder.feed(v5_header.pack(5, 2, 0, EXPORT_TIME, 0, sequence, 0, 0, 0) + record * 2, "192.0.2.5")
    assert decoder.take().export_lost == {("192.0.2.9", "packets"): 2, ("192.0.2.5", "flows"): 6}
    typed = FlowDecoder()  # the typed decoder shares the accounting (its counters, no batches)
    for sequence in (1, 3):
        typed.decode(v9_message(sequence, 1000 * sequence, template, data), "192.0.2.9")
    assert typed.counters.lost == {("192.0.2.9", "packets"): 1}


def test_ipfix_options_records_may_or_may_not_be_counted() -> None:
    from tests.unit.test_netflow_decoder import ipfix_options_template

    options = ipfix_set(3, ipfix_options_template(300, 1, [(302, 4), (34, 4)]))
    options_data = ipfix_set(300, struct.pack("!II", 1, 100))
    template = ipfix_set(2, ipfix_template(256, FLOW_FIELDS))
    for counts_options in (True, False):
        decoder = FastFlowDecoder()
        sequence = 0
        for _ in range(3):
            decoder.feed(ipfix(template, options, options_data, sequence=sequence), "192.0.2.10")
            sequence += 1 if counts_options else 0
            decoder.feed(ipfix_data(sequence, 2), "192.0.2.10")
            sequence += 2
        assert decoder.take().export_lost == {}, counts_options
        decoder.feed(ipfix_data(sequence + 5, 2), "192.0.2.10")
        assert decoder.take().export_lost == {("192.0.2.10", "records"): 5}
