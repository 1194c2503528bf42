"""The NetFlow v5/v9 and IPFIX fast path feeding accounting: many datagrams in, one SampleBatch out.

Accounting needs three things per flow record: destination, bytes and packets (scaled by the
sampling rate), and the exporter. Building a Python object per record would cost far more than
that, so :class:`FastFlowDecoder` keeps the shared collection state (templates, options,
pending sets: :class:`~collector.netflow_dispatch.FlowSetDispatcher`) and, per fixed-length
template, only queues the raw bytes of each data set. ``take`` joins the queued sets of one
layout and cuts columns out of them with numpy, once per batch rather than once per record.

Records the column path cannot describe — variable-length fields, packet sections, RFC 5103
biflows, unusual field sizes — go through the typed record builder instead; they are rare in
router exports. Rates follow the typed decoder: the record's own interval, else its sampler's
rate from options data, else the exporter-wide one, else 1 (counted as unknown).

    decoder = FastFlowDecoder()
    decoder.feed(payload, "192.0.2.1")
    batch = decoder.take()  # templates and sampler rates persist across batches
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from collector.batch import SampleBatch
from collector.flow_templates import IANA, DomainKey, Template, split_records
from collector.netflow_dispatch import FlowDecoderCounters, FlowSetDispatcher
from collector.netflow_errors import FlowDecodeError
from collector.netflow_fields import (
    DST_IPV4,
    DST_IPV6,
    INITIATOR_OCTETS,
    INITIATOR_PACKETS,
    OCTET_DELTA,
    OCTET_TOTAL,
    PACKET_DELTA,
    PACKET_TOTAL,
    POST_OCTET_DELTA,
    POST_PACKET_DELTA,
    SAMPLER_ID,
    SAMPLER_RANDOM_INTERVAL,
    SAMPLING_INTERVAL,
    SAMPLING_PACKET_INTERVAL,
    SAMPLING_PACKET_SPACE,
    SAMPLING_POPULATION,
    SAMPLING_PROBABILITY,
    SAMPLING_SIZE,
    SELECTOR_ID,
    RecordContext,
    build_flow_record,
    record_sampler_id,
    record_sampling_rate,
    reverse_flow_record,
)
from collector.netflow_message import MessageHeader
from collector.netflow_packet_section import DATALINK_FRAME_SECTION, IP_HEADER_SECTION

V5_HEADER_LENGTH: Final = 24
V5_RECORD_LENGTH: Final = 48
# elements whose presence in a data record needs the typed builder
TYPED_ONLY: Final = frozenset(
    (
        SAMPLING_PACKET_INTERVAL,
        SAMPLING_PACKET_SPACE,
        SAMPLING_SIZE,
        SAMPLING_POPULATION,
        SAMPLING_PROBABILITY,
    )
)
MAX_LAYOUTS: Final = 4096

Field = tuple[int, int]  # (offset, length) in the record


@dataclass(frozen=True, slots=True)
class ColumnLayout:
    """Where accounting's fields sit in a fixed-length record."""

    record_length: int
    dst_v4: int | None = None  # offset of a 4-byte IPv4 destination
    dst_v6: int | None = None  # offset of a 16-byte IPv6 destination
    octets: Field | None = None
    packets: Field | None = None
    interval: Field | None = None  # the record's own sampling interval
    sampler: Field | None = None  # the sampler (or selector) id that names its rate


V5_LAYOUT: Final = ColumnLayout(V5_RECORD_LENGTH, dst_v4=4, octets=(20, 4), packets=(16, 4))


def column_layout(template: Template) -> ColumnLayout | None:
    """The layout of a fixed-length flow template, or None when only the typed path fits it."""
    if template.fixed_length is None:
        return None
    offsets: dict[int, Field] = {}
    offset = 0
    for spec in template.fields:
        if spec.enterprise != IANA:
            return None  # RFC 5103 reverse fields and vendor fields: typed path decides
        # a repeated element keeps its last (inner) occurrence, as in the typed path
        offsets[spec.element_id] = (offset, spec.length)
        offset += spec.length
    if TYPED_ONLY & offsets.keys() or (
        {DATALINK_FRAME_SECTION, IP_HEADER_SECTION} & offsets.keys()
        and not {DST_IPV4, DST_IPV6} & offsets.keys()
    ):
        return None

    def first(*elements: int) -> Field | None:
        found = next((offsets[e] for e in elements if e in offsets), None)
        if found is not None and not 1 <= found[1] <= 8:
            raise _NotColumnar
        return found

    def address(element: int, length: int) -> int | None:
        found = offsets.get(element)
        return found[0] if found is not None and found[1] == length else None

    try:
        return ColumnLayout(
            record_length=template.fixed_length,
            dst_v4=address(DST_IPV4, 4),
            dst_v6=address(DST_IPV6, 16),
            octets=first(OCTET_DELTA, POST_OCTET_DELTA, INITIATOR_OCTETS, OCTET_TOTAL),
            packets=first(PACKET_DELTA, POST_PACKET_DELTA, INITIATOR_PACKETS, PACKET_TOTAL),
            interval=first(SAMPLING_INTERVAL, SAMPLER_RANDOM_INTERVAL),
            sampler=first(SAMPLER_ID, SELECTOR_ID),
        )
    except _NotColumnar:
        return None


class _NotColumnar(Exception):
    """A counter or id wider than 8 bytes: leave the template to the typed path."""


@dataclass(slots=True)
class _Queue:
    """Data sets of one layout waiting for ``take``."""

    chunks: list[bytes] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    agents: list[int] = field(default_factory=list)
    rates: list[int] = field(default_factory=list)  # 0: resolve per record at take
    domains: list[DomainKey] = field(default_factory=list)


@dataclass(slots=True)
class _TypedColumns:
    """Records decoded by the typed builder, as Python lists until ``take``."""

    v4: list[tuple[int, int, float, float]] = field(default_factory=list)
    v6: list[tuple[int, int, float, float]] = field(default_factory=list)


class FastFlowDecoder:
    """Accumulates NetFlow/IPFIX flow records of many datagrams; ``take`` hands them over."""

    def __init__(
        self,
        max_templates: int = 10_000,
        max_samplers: int = 10_000,
        max_pending_sets: int = 256,
        pending_max_age_datagrams: int = 64,
    ) -> None:
        self._dispatcher = FlowSetDispatcher(
            self, max_templates, max_samplers, max_pending_sets, pending_max_age_datagrams
        )
        self._layouts: dict[Template, ColumnLayout | None] = {}
        self._malformed_seen: Counter[tuple[str, str]] = Counter()
        self._reset()

    @property
    def counters(self) -> FlowDecoderCounters:
        return self._dispatcher.counters

    def _reset(self) -> None:
        self._agents: list[str] = []
        self._agent_index: dict[str, int] = {}
        self._queues: dict[ColumnLayout, _Queue] = {}
        self._typed = _TypedColumns()
        self._datagrams = 0
        self._non_ip = 0

    def feed(self, datagram: bytes, exporter: str) -> None:
        """Decode one UDP payload received from ``exporter`` (its source address)."""
        try:
            self._dispatcher.dispatch(datagram, exporter)
        except FlowDecodeError:
            return  # counted by the dispatcher, reported by take
        self._datagrams += 1

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        for datagram, exporter in datagrams:
            self.feed(datagram, exporter)

    def _agent(self, exporter: str) -> int:
        index = self._agent_index.get(exporter)
        if index is None:
            index = self._agent_index[exporter] = len(self._agents)
            self._agents.append(exporter)
        return index

    def _queue(
        self, layout: ColumnLayout, agent: int, body: bytes, count: int, rate: int, domain: DomainKey
    ) -> None:
        queue = self._queues.get(layout)
        if queue is None:
            queue = self._queues[layout] = _Queue()
        queue.chunks.append(body)
        queue.counts.append(count)
        queue.agents.append(agent)
        queue.rates.append(rate)
        queue.domains.append(domain)

    # FlowSink

    def netflow_v5(self, payload: bytes, exporter: str) -> None:
        if len(payload) < V5_HEADER_LENGTH:
            raise FlowDecodeError("short-header", f"{len(payload)} bytes")
        count = int.from_bytes(payload[2:4], "big")
        if not 0 < count <= 30:
            raise FlowDecodeError("record-count", f"v5 count {count}")
        end = V5_HEADER_LENGTH + count * V5_RECORD_LENGTH
        if len(payload) < end:
            raise FlowDecodeError("record-overflow", f"v5 count {count} in {len(payload)} bytes")
        rate = (int.from_bytes(payload[22:24], "big") & 0x3FFF) or 1
        domain = (exporter, 5, 0)
        self._queue(V5_LAYOUT, self._agent(exporter), payload[V5_HEADER_LENGTH:end], count, rate, domain)

    def flow_set(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> None:
        layout = self._layouts.get(template, False)
        if layout is False:
            layout = column_layout(template)
            if len(self._layouts) < MAX_LAYOUTS:
                self._layouts[template] = layout
        if layout is None:
            self._typed_set(domain, header, template, data, start, end)
            return
        assert isinstance(layout, ColumnLayout)
        if layout.record_length == 0:
            raise FlowDecodeError("template-empty", f"template {template.template_id} has no data bytes")
        count = (end - start) // layout.record_length  # the rest is padding
        if count == 0:
            return
        rate = 0
        if layout.interval is None and layout.sampler is None:
            rate = self._dispatcher.samplers.rate_for(domain, 0) or 0
            if not rate:
                self.counters.unknown_sampling += count
                rate = 1
        body = data[start : start + count * layout.record_length]
        self._queue(layout, self._agent(domain[0]), body, count, rate, domain)
        self.counters.records += count

    def _typed_set(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> None:
        context = RecordContext(
            domain[0], header.version, header.observation_domain, header.sequence,
            header.export_time_s, header.sys_uptime_ms, self._dispatcher.system_init_ms(domain),
        )  # fmt: skip
        agent = self._agent(domain[0])
        for values in split_records(template, data, start, end):
            rate = record_sampling_rate(values.values)
            if rate is None:
                rate = self._dispatcher.samplers.rate_for(domain, record_sampler_id(values.values))
            if rate is None:
                self.counters.unknown_sampling += 1
                rate = 1
            flow = build_flow_record(values.values, context, rate)
            flows = [flow]
            if values.reverse and (reverse := reverse_flow_record(flow, values.reverse)) is not None:
                flows.append(reverse)
            for record in flows:
                self.counters.records += 1
                if record.dst is None:
                    self._non_ip += 1
                    continue
                address = int(ipaddress.ip_address(record.dst))
                row = (agent, address, float(record.bytes * rate), float(record.packets * rate))
                (self._typed.v6 if ":" in record.dst else self._typed.v4).append(row)

    # hand-over

    def take(self) -> SampleBatch:
        """Everything accumulated since the previous ``take``; templates and rates persist."""
        v4_parts: list[_Columns] = []
        v6_parts: list[_Columns] = []
        for layout, queue in self._queues.items():
            v4, v6 = self._columns(layout, queue)
            v4_parts.append(v4)
            v6_parts.append(v6)
        v4_parts.append(_typed_columns(self._typed.v4, v6=False))
        v6_parts.append(_typed_columns(self._typed.v6, v6=True))
        v4_all = _concat(v4_parts)
        v6_all = _concat(v6_parts)
        malformed = Counter(self.counters.malformed)
        malformed.subtract(self._malformed_seen)
        self._malformed_seen = Counter(self.counters.malformed)
        batch = SampleBatch(
            agents=self._agents,
            v4_agent=v4_all.agent,
            v4_dst=v4_all.dst.astype(np.uint32),
            v4_bytes=v4_all.octets,
            v4_packets=v4_all.packets,
            v6_agent=v6_all.agent,
            v6_dst_hi=v6_all.dst,
            v6_dst_lo=v6_all.dst_lo,
            v6_bytes=v6_all.octets,
            v6_packets=v6_all.packets,
            datagrams=self._datagrams,
            flow_samples=len(v4_all.agent) + len(v6_all.agent),
            non_ip_samples=self._non_ip,
            malformed={key: count for key, count in malformed.items() if count > 0},
        )
        self._reset()
        return batch

    def _columns(self, layout: ColumnLayout, queue: _Queue) -> tuple[_Columns, _Columns]:
        rows = np.frombuffer(b"".join(queue.chunks), np.uint8).reshape(-1, layout.record_length)
        counts = np.array(queue.counts, np.int64)
        agent = np.repeat(np.array(queue.agents, np.uint32), counts)
        rate = np.repeat(np.array(queue.rates, np.float64), counts)
        if layout.interval is not None or layout.sampler is not None:
            rate = self._resolve_rates(layout, queue, rows, counts)
        octets = _uint(rows, layout.octets).astype(np.float64) * rate
        packets = _uint(rows, layout.packets).astype(np.float64) * rate
        present = layout.dst_v4 is not None or layout.dst_v6 is not None
        v4_dst = _uint(rows, None if layout.dst_v4 is None else (layout.dst_v4, 4))
        if layout.dst_v6 is None:
            hi = lo = np.zeros(len(rows), np.uint64)
            is_v6 = np.zeros(len(rows), bool)
        else:
            hi = _uint(rows, (layout.dst_v6, 8))
            lo = _uint(rows, (layout.dst_v6 + 8, 8))
            # dual-stack templates carry both families, the unused one zeroed
            is_v6 = (
                np.ones(len(rows), bool) if layout.dst_v4 is None else (v4_dst == 0) & ((hi != 0) | (lo != 0))
            )
        if not present:
            self._non_ip += len(rows)
            is_v6[:] = False
        v4 = ~is_v6 if present else np.zeros(len(rows), bool)
        return (
            _Columns(agent[v4], v4_dst[v4], octets[v4], packets[v4]),
            _Columns(agent[is_v6], hi[is_v6], octets[is_v6], packets[is_v6], lo[is_v6]),
        )

    def _resolve_rates(
        self,
        layout: ColumnLayout,
        queue: _Queue,
        rows: npt.NDArray[np.uint8],
        counts: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        """Per-record rates: the record's interval, else its sampler's (looked up per distinct id)."""
        own = (
            _uint(rows, layout.interval).astype(np.float64)
            if layout.interval is not None
            else np.zeros(len(rows))
        )
        need = own == 0
        if need.any():
            sampler = (
                _uint(rows, layout.sampler) if layout.sampler is not None else np.zeros(len(rows), np.uint64)
            )
            domain_of_chunk = {d: i for i, d in enumerate(dict.fromkeys(queue.domains))}
            domain_index = np.repeat(np.array([domain_of_chunk[d] for d in queue.domains], np.uint64), counts)
            keys = (domain_index << np.uint64(32)) | (sampler & np.uint64(0xFFFFFFFF))
            unique, inverse = np.unique(keys[need], return_inverse=True)
            domains = list(domain_of_chunk)
            looked_up = np.array(
                [
                    self._dispatcher.samplers.rate_for(domains[int(k) >> 32], int(k) & 0xFFFFFFFF) or 0
                    for k in unique
                ],
                np.float64,
            )
            resolved = looked_up[inverse]
            self.counters.unknown_sampling += int((resolved == 0).sum())
            own[need] = np.where(resolved == 0, 1.0, resolved)
        return own


@dataclass(slots=True)
class _Columns:
    agent: npt.NDArray[np.uint32]
    dst: npt.NDArray[np.uint64]  # IPv4 address, or the high half of an IPv6 one
    octets: npt.NDArray[np.float64]
    packets: npt.NDArray[np.float64]
    dst_lo: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))


def _uint(rows: npt.NDArray[np.uint8], where: Field | None) -> npt.NDArray[np.uint64]:
    """A big-endian unsigned column (1 to 8 bytes) of every row; zeros when absent."""
    if where is None:
        return np.zeros(len(rows), np.uint64)
    offset, length = where
    if length in (1, 2, 4, 8):
        raw = np.ascontiguousarray(rows[:, offset : offset + length])
        return raw.view(f">u{length}").ravel().astype(np.uint64)
    value = np.zeros(len(rows), np.uint64)
    for index in range(length):  # reduced-size encodings (3, 5, 6, 7 bytes)
        value = (value << np.uint64(8)) | rows[:, offset + index].astype(np.uint64)
    return value


def _typed_columns(rows: list[tuple[int, int, float, float]], v6: bool) -> _Columns:
    agent = np.array([r[0] for r in rows], np.uint32)
    octets = np.array([r[2] for r in rows], np.float64)
    packets = np.array([r[3] for r in rows], np.float64)
    if v6:
        hi = np.array([r[1] >> 64 for r in rows], np.uint64)
        lo = np.array([r[1] & 0xFFFFFFFFFFFFFFFF for r in rows], np.uint64)
        return _Columns(agent, hi, octets, packets, lo)
    return _Columns(agent, np.array([r[1] for r in rows], np.uint64), octets, packets)


def _concat(parts: list[_Columns]) -> _Columns:
    return _Columns(
        np.concatenate([p.agent for p in parts]).astype(np.uint32),
        np.concatenate([p.dst for p in parts]).astype(np.uint64),
        np.concatenate([p.octets for p in parts]).astype(np.float64),
        np.concatenate([p.packets for p in parts]).astype(np.float64),
        np.concatenate([p.dst_lo for p in parts]).astype(np.uint64),
    )
