"""Hostile NetFlow v9 / IPFIX templates from an allowed (or spoofed) exporter: they cost the
collector bounded CPU and memory. Each test failed before its fix."""

from __future__ import annotations

import struct
import time
import tracemalloc

from bench.netflow_encode import ipfix_stream
from tests.unit.test_netflow_decoder import (
    FLOW_FIELDS,
    ONE_FLOW,
    ipfix,
    ipfix_options_template,
    ipfix_set,
    ipfix_template,
    v9,
)
from topfib.collector.netflow.fast import FastFlowDecoder
from topfib.collector.netflow.sampling import SamplerTable
from topfib.collector.netflow.sequence import MAX_STREAMS_PER_EXPORTER, SequenceTracker
from topfib.collector.netflow.templates import MAX_TEMPLATE_FIELDS, FieldSpec, Template, TemplateCache

EXPORTER = "192.0.2.10"


def test_a_template_with_16000_fields_is_refused_before_it_is_parsed() -> None:
    """Was: learned, ~0.3 s of CPU and ~1 MB held per datagram (a new observation domain each)."""
    huge = ipfix_template(256, [(1, 4)] * 16_000)
    decoder = FastFlowDecoder()
    started = time.process_time()
    for domain in range(20):
        decoder.feed(ipfix(ipfix_set(2, huge), domain=domain), EXPORTER)
    elapsed = time.process_time() - started
    assert decoder.counters.templates == 0
    assert decoder.take().malformed == {("template-fields", EXPORTER): 20}
    assert elapsed < 0.5  # was ~6 s


def test_every_template_kind_has_the_field_bound_and_real_ones_pass() -> None:
    fields = MAX_TEMPLATE_FIELDS + 1
    v9_template = struct.pack("!HH", 256, fields) + b"\x00\x01\x00\x04" * fields
    v9_options = struct.pack("!HHH", 257, 4, (fields - 1) * 4) + b"\x00\x01\x00\x04" * fields
    decoder = FastFlowDecoder()
    decoder.feed(v9(ipfix_set(0, v9_template)), EXPORTER)
    decoder.feed(v9(ipfix_set(1, v9_options)), EXPORTER)
    decoder.feed(ipfix(ipfix_set(3, ipfix_options_template(258, 1, [(1, 4)] * fields))), EXPORTER)
    assert decoder.take().malformed == {("template-fields", EXPORTER): 3}
    at_bound = ipfix_template(259, [(1, 4)] * MAX_TEMPLATE_FIELDS)
    decoder.feed(ipfix(ipfix_set(2, at_bound), ipfix_set(2, ipfix_template(260, FLOW_FIELDS))), EXPORTER)
    assert decoder.counters.templates == 2
    assert decoder.take().malformed == {}


def test_template_sets_kept_for_refreshes_hold_bounded_bytes() -> None:
    """A 60 KB v9 template set (one template, then zero padding) per new source id: the set bodies
    kept to recognise refreshes were bounded by count only (10,000 x 64 KB = 640 MB)."""
    padded = ipfix_set(0, ipfix_template(256, FLOW_FIELDS) + bytes(60_000))
    decoder = FastFlowDecoder()
    decoder.feed(v9(padded, source_id=0), EXPORTER)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for source_id in range(1, 201):  # 12 MB of bodies
            decoder.feed(v9(padded, source_id=source_id), EXPORTER)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert decoder.counters.templates == 201
    assert grown < 6 << 20  # the 4 MB budget and the templates themselves; was 12.5 MB


def test_one_exporter_cycling_source_ids_cannot_reset_anothers_loss_tracking() -> None:
    """A sender spoofing exporter B cycles 12,000 v9 source ids: it evicts B's own oldest streams,
    counted, and A's export loss is still seen (was: the tracker started over for everyone at
    10,000 streams, nothing counted, and A's gap of 10 went unseen)."""
    tracker = SequenceTracker()
    other = "192.0.2.66"
    tracker.observe((EXPORTER, 9, 0), 100, 1, 1_000_000)
    for source_id in range(12_000):
        tracker.observe((other, 9, source_id), 1, 1, 1_000_000)
    assert tracker.observe((EXPORTER, 9, 0), 111, 1, 1_001_000) == 10
    assert tracker.evicted == 12_000 - MAX_STREAMS_PER_EXPORTER


def test_stream_evictions_reach_the_batch() -> None:
    decoder = FastFlowDecoder()
    for source_id in range(MAX_STREAMS_PER_EXPORTER + 5):
        decoder.feed(v9(source_id=source_id), EXPORTER)
    assert decoder.take().state_limited == {"netflow_sequence_evicted": 5}
    decoder.feed(v9(source_id=0), EXPORTER)  # evicted earlier: a new stream, the oldest goes
    assert decoder.take().state_limited == {"netflow_sequence_evicted": 1}


def test_senders_spoofing_ten_exporters_cannot_leave_an_eleventh_without_templates() -> None:
    """Ten exporters' addresses (spoofed) fill the whole cache at their per-exporter bound; a real
    eleventh exporter's template was refused for good (counted, but its data never decoded)."""
    decoder = FastFlowDecoder(max_templates=100)  # 10 per exporter
    for template_id in range(256, 10_256):
        flooder = f"192.0.2.{100 + template_id % 10}"
        decoder.feed(ipfix(ipfix_set(2, ipfix_template(template_id, FLOW_FIELDS))), flooder)
    assert decoder.counters.templates_evicted == 10_000 - 100
    decoder.feed(ipfix(ipfix_set(2, ipfix_template(256, FLOW_FIELDS))), EXPORTER)
    decoder.feed(ipfix(ONE_FLOW, sequence=1), EXPORTER)
    batch = decoder.take()
    assert batch.flow_samples == 1
    assert "netflow_template_refused" not in batch.state_limited


def test_a_sender_flooding_sampler_ids_cannot_leave_a_real_exporter_unsampled() -> None:
    """10,000 sampler ids in options data from one (spoofed) exporter filled the first-come sampler
    table: a real exporter starting afterwards could not learn its 1:1000 rate, and its flows were
    counted as unsampled, a thousand times too small."""
    decoder = FastFlowDecoder()
    options = ipfix_set(3, ipfix_options_template(300, 1, [(48, 4), (34, 4)]))
    for first in range(0, 10_000, 1000):
        rates = b"".join(struct.pack("!II", sampler, 100) for sampler in range(first + 1, first + 1001))
        decoder.feed(ipfix(options, ipfix_set(300, rates)), "192.0.2.66")
    decoder.feed(ipfix(options, ipfix_set(300, struct.pack("!II", 0, 1000)), ipfix_set(2, ipfix_template(256, FLOW_FIELDS))), EXPORTER)  # noqa: E501
    decoder.feed(ipfix(ONE_FLOW, sequence=1), EXPORTER)
    batch = decoder.take()
    assert batch.v4_packets.tolist() == [1000]
    assert batch.state_limited == {"netflow_sampler_evicted": 10_000 - 1000}


def test_a_full_sampler_table_takes_from_the_exporter_holding_the_most() -> None:
    table = SamplerTable(max_samplers=10, max_per_exporter=3)
    flooders = [(f"192.0.2.{100 + i}", 10, 1) for i in range(4)]
    for sampler in range(10):  # 3 + 3 + 3 + 1: full
        assert table.learn(flooders[min(sampler // 3, 3)], sampler + 1, 100 + sampler)
    real = (EXPORTER, 10, 1)
    assert table.learn(real, 0, 1000) and table.rate_for(real, 0) == 1000  # a flooder's oldest goes
    assert table.learn(real, 0, 2000) and table.rate_for(real, 0) == 2000  # known: updated in place
    assert table.learn(real, 5, 1000)  # holding 1, another flooder holds 3: its oldest goes
    assert (table.evicted, table.refused) == (2, 0)
    assert table.rate_for(flooders[0], 1) is None and table.rate_for(flooders[0], 2) == 101
    assert not table.learn(real, 6, 1000)  # holding 2, the largest 3: refused
    assert table.refused == 1


def test_a_shape_storm_neither_loses_queued_datagrams_nor_slows_a_real_exporter_for_good() -> None:
    """A sender cycling 5,000 observation domains (a template and a data set each) filled the fast
    path's 4,096 datagram shapes; every new shape after that, a real exporter's too, took the
    per-set path for good (~2.5x the CPU). Now the oldest shape goes; its queued datagrams are
    still decoded, and no later datagram is queued on it."""
    def real(domain: int) -> list[tuple[bytes, str]]:
        return [(ipfix(ONE_FLOW, domain=domain, sequence=n), EXPORTER) for n in range(1, 4)]

    def template(domain: int) -> bytes:
        return ipfix(ipfix_set(2, ipfix_template(256, FLOW_FIELDS)), domain=domain)

    decoder = FastFlowDecoder()
    decoder.feed(template(1), EXPORTER)
    decoder.feed_many(real(1))  # queued on domain 1's shape
    for domain in range(1000, 6000):
        decoder.feed(template(domain), "192.0.2.66")
        decoder.feed(ipfix(ONE_FLOW, domain=domain, sequence=1), "192.0.2.66")
    decoder.feed_many(real(1))  # that shape was evicted meanwhile
    assert decoder.take().flow_samples == 5000 + 6
    decoder.feed(template(2), EXPORTER)  # a real exporter's new domain, after the storm
    decoder.feed_many(real(2))
    assert decoder.take().flow_samples == 3
    assert (EXPORTER, 10, 2) in decoder._datagram_shapes.domains  # on the fast path


def test_another_exporters_template_churn_leaves_a_real_exporters_fast_path_alone() -> None:
    """Every template learned or withdrawn anywhere bumped one global generation, so a (spoofed)
    exporter sending a withdrawal or a new template between each real datagram made every real
    datagram rebuild its shape (~16x the CPU). Now generations are per domain."""
    real = [(datagram, EXPORTER) for datagram in ipfix_stream(2000)]  # templates, options, data
    withdraw_all = ipfix(ipfix_set(2, struct.pack("!HH", 2, 0)), domain=7)

    def cpu(hostile: list[bytes]) -> float:
        decoder = FastFlowDecoder()
        mixed = [pair for n, real_pair in enumerate(real) for pair in (real_pair, (hostile[n], "192.0.2.66"))]
        started = time.process_time()
        for start in range(0, len(mixed), 256):
            decoder.feed_many(mixed[start : start + 256])
            decoder.take()
        return time.process_time() - started

    refreshes = [ipfix(ipfix_set(2, ipfix_template(256, FLOW_FIELDS)), domain=7)] * len(real)
    churn = [ipfix(ipfix_set(2, ipfix_template(256 + n, FLOW_FIELDS)), domain=7) for n in range(len(real))]
    baseline = min(cpu(refreshes) for _ in range(3))
    ratios = (min(cpu([withdraw_all] * len(real)) for _ in range(3)) / baseline,  # measured 1.1, was 15.8
              min(cpu(churn) for _ in range(3)) / baseline)  # measured 2.1, was 16.7
    assert ratios[0] < 3 and ratios[1] < 4


def test_withdrawn_domains_leave_nothing_behind() -> None:
    """Learning then withdrawing a template in ever new domains left an empty entry per domain."""
    cache = TemplateCache()
    for domain in range(1000):
        cache.add((EXPORTER, 10, domain), Template(256, (FieldSpec(8, 4),)))
        cache.withdraw((EXPORTER, 10, domain), 256)
    assert len(cache) == 0 and cache._by_domain == {} and cache._generations == {}
    assert cache.generation_of((EXPORTER, 10, 5)) == -1
