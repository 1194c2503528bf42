"""The NetFlow v5/v9 and IPFIX fast path feeding accounting: many datagrams in, one SampleBatch out.

Accounting needs a few things per flow record: destination, bytes and packets (scaled by the
sampling rate), the exporter, and for per-path accounting and the traffic matrix the ingress
interface and the next hop (BGP next hop, else IP next hop; an all-zero address is none).
Building a Python object per record would cost far more than that, so :class:`FastFlowDecoder`
keeps the shared collection state (templates, options, pending sets:
:class:`~topfib.collector.netflow.dispatch.FlowSetDispatcher`) and, per fixed-length template, only
queues the raw bytes of each data set — or of whole datagrams of a known shape
(:mod:`~topfib.collector.netflow.shapes`). ``take`` joins the queued records of one layout and
cuts columns out of them with numpy (:mod:`~topfib.collector.netflow.columns`), once per batch
rather than once per record; next hops are named once per distinct address per batch.

Records the column path cannot describe — variable-length fields, packet sections, RFC 5103
biflows, unusual field sizes — go through the typed record builder instead; they are rare in
router exports. Rates follow the typed decoder: the record's own interval, else its sampler's
rate from options data, else the exporter-wide one, else 1 (counted as unknown).

    decoder = FastFlowDecoder()
    decoder.feed(payload, "192.0.2.1")
    batch = decoder.take()  # templates and sampler rates persist across batches
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from topfib.collector.common.batch import SampleBatch
from topfib.collector.netflow.columns import (
    V5_LAYOUT,
    V5_RECORD_LENGTH,
    ColumnLayout,
    Columns,
    TypedRow,
    column,
    concat_columns,
    layout_columns,
    per_record,
    typed_columns,
)
from topfib.collector.netflow.dispatch import FlowDecoderCounters, FlowSetDispatcher
from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.fields import (
    RecordContext,
    build_flow_record,
    record_sampler_id,
    record_sampling_rate,
    reverse_flow_record,
)
from topfib.collector.netflow.hops import HopResolver
from topfib.collector.netflow.message import MessageHeader
from topfib.collector.netflow.shapes import DatagramShape, DatagramShapes
from topfib.collector.netflow.templates import DomainKey, Template, split_records

V5_HEADER_LENGTH: Final = 24
UNSPECIFIED: Final = frozenset(("0.0.0.0", "::"))

# a queued data set: (records' bytes, record count, agent index, rate or 0 to resolve per record, domain)
_Queued = tuple[bytes, int, int, int, DomainKey]
# (IPv4, IPv6) columns of some records
_Parts = tuple[Columns | None, Columns | None]


@dataclass(slots=True)
class _TypedColumns:
    """Records decoded by the typed builder, as Python lists until ``take``."""

    v4: list[TypedRow] = field(default_factory=list)
    v6: list[TypedRow] = field(default_factory=list)


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
        self._datagram_shapes = DatagramShapes(self._dispatcher)
        # bound once: the per-datagram and per-set paths call them without a lookup
        self._data_only = self._datagram_shapes.queue_data_only
        self._layout = self._datagram_shapes.layout
        self._malformed_seen: Counter[tuple[str, str]] = Counter()
        self._lost_seen: Counter[tuple[str, str]] = Counter()
        self._limits_seen: dict[str, int] = {}  # state_limited counts up to the last take, by kind
        self._begin_datagram = self._dispatcher.begin_datagram
        self._hop_resolver = HopResolver()
        self._reset()

    @property
    def counters(self) -> FlowDecoderCounters:
        return self._dispatcher.counters

    def _reset(self) -> None:
        self._agents: list[str] = []
        self._agent_index: dict[str, int] = {}
        self._queues: dict[ColumnLayout, list[_Queued]] = {}
        self._typed = _TypedColumns()
        self._hop_resolver.begin_batch()
        self._hops = self._hop_resolver.names
        self._datagrams = 0
        self._non_ip = 0

    def feed(self, datagram: bytes, exporter: str) -> None:
        """Decode one UDP payload received from ``exporter`` (its source address)."""
        self._begin_datagram()
        self._datagrams += 1  # every datagram, malformed ones too, as the sFlow fast path counts
        if not self._data_only(datagram, exporter):
            with contextlib.suppress(FlowDecodeError):  # counted by the dispatcher, reported by take
                self._dispatcher.dispatch_counted(datagram, exporter)

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        """``feed`` each (payload, exporter) pair in order; the listener's path, so a tight loop."""
        begin_datagram, data_only = self._begin_datagram, self._data_only
        dispatch = self._dispatcher.dispatch_counted
        for datagram, exporter in datagrams:
            begin_datagram()
            self._datagrams += 1
            if not data_only(datagram, exporter):
                with contextlib.suppress(FlowDecodeError):  # counted by the dispatcher, reported by take
                    dispatch(datagram, exporter)

    def _agent(self, exporter: str) -> int:
        index = self._agent_index.get(exporter)
        if index is None:
            index = self._agent_index[exporter] = len(self._agents)
            self._agents.append(exporter)
        return index

    def _queue_set(
        self, layout: ColumnLayout, domain: DomainKey, agent: int, data: bytes, start: int, end: int
    ) -> None:
        length = layout.record_length
        count = (end - start) // length  # the rest is padding
        if count == 0:
            return
        rate = 0
        if not layout.rate_per_record:
            rate = self._dispatcher.samplers.rate_for(domain, 0) or 0
            if not rate:
                self.counters.unknown_sampling += count
                rate = 1
        item = (data[start : start + count * length], count, agent, rate, domain)
        queue = self._queues.get(layout)
        if queue is None:
            self._queues[layout] = [item]
        else:
            queue.append(item)
        self.counters.records += count

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
        item = (payload[V5_HEADER_LENGTH:end], count, self._agent(exporter), rate, domain)
        self._queues.setdefault(V5_LAYOUT, []).append(item)
        self.counters.records += count

    def flow_set(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> None:
        layout = self._layout(template)
        if layout is None:
            self._typed_set(domain, header, template, data, start, end)
            return
        if layout.record_length == 0:
            raise FlowDecodeError("template-empty", f"template {template.template_id} has no data bytes")
        self._queue_set(layout, domain, self._agent(domain[0]), data, start, end)

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
                hop = next(
                    (h for h in (record.bgp_next_hop, record.next_hop) if h and h not in UNSPECIFIED), None
                )
                row = (
                    agent, address, float(record.bytes * rate), float(record.packets * rate),
                    (record.input_if or 0) & 0xFFFFFFFF, -1 if hop is None else self._hops.index(hop),
                )  # fmt: skip
                (self._typed.v6 if ":" in record.dst else self._typed.v4).append(row)

    # hand-over

    def take(self) -> SampleBatch:
        """Everything accumulated since the previous ``take``; templates and rates persist."""
        v4_parts: list[Columns] = []
        v6_parts: list[Columns] = []
        parts = [self._columns(layout, queue) for layout, queue in self._queues.items()]
        for shape, datagrams in self._datagram_shapes.take_queued():
            parts.extend(self._shape_columns(shape, datagrams))
        for v4, v6 in parts:
            if v4 is not None:
                v4_parts.append(v4)
            if v6 is not None:
                v6_parts.append(v6)
        if self._typed.v4 or not v4_parts:
            v4_parts.append(typed_columns(self._typed.v4, v6=False))
        if self._typed.v6 or not v6_parts:
            v6_parts.append(typed_columns(self._typed.v6, v6=True))
        v4_all = concat_columns(v4_parts)
        v6_all = concat_columns(v6_parts)
        malformed = Counter(self.counters.malformed)
        malformed.subtract(self._malformed_seen)
        self._malformed_seen = Counter(self.counters.malformed)
        lost = Counter(self.counters.lost)
        lost.subtract(self._lost_seen)
        self._lost_seen = Counter(self.counters.lost)
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
            next_hops=self._hops.names,
            v4_input_if=v4_all.input_if,
            v4_next_hop=v4_all.hop,
            v6_input_if=v6_all.input_if,
            v6_next_hop=v6_all.hop,
            datagrams=self._datagrams,
            flow_samples=len(v4_all.agent) + len(v6_all.agent),
            non_ip_samples=self._non_ip,
            malformed={key: count for key, count in malformed.items() if count > 0},
            export_lost={key: count for key, count in lost.items() if count > 0},
            state_limited=self._state_limits(),
        )
        self._reset()
        return batch

    def _state_limits(self) -> dict[str, int]:
        """Templates and samplers evicted or refused, sequence streams evicted, at their bounds
        since the previous take."""
        counters = self.counters
        samplers = self._dispatcher.samplers
        now = {
            "netflow_template_evicted": counters.templates_evicted,
            "netflow_template_refused": counters.templates_refused,
            "netflow_sequence_evicted": self._dispatcher.sequences.evicted,
            "netflow_sampler_evicted": samplers.evicted,
            "netflow_sampler_refused": samplers.refused,
        }
        limits = {kind: count - self._limits_seen.get(kind, 0) for kind, count in now.items()}
        self._limits_seen = now
        return {kind: count for kind, count in limits.items() if count}

    def _columns(self, layout: ColumnLayout, queue: list[_Queued]) -> _Parts:
        """(IPv4, IPv6) columns of one layout's queued sets."""
        chunks, counts, agents, rates, domains = zip(*queue, strict=True)
        rows = np.frombuffer(b"".join(chunks), layout.dtype)
        agent = per_record(agents, counts, np.uint32)
        if layout.rate_per_record:
            rate: npt.NDArray[np.float64] | float = self._resolve_rates(rows, counts, domains)
        else:
            rate = per_record(rates, counts, np.float64)
        return self._layout_columns(layout, rows, agent, rate)

    def _shape_columns(self, shape: DatagramShape, queued: list[bytes]) -> list[_Parts]:
        datagrams = np.frombuffer(b"".join(queued), shape.dtype)
        agent = self._agent(shape.domain[0])
        parts = []
        for index, (layout, _) in enumerate(shape.sets):
            # (datagrams, records) records: a strided view; columns are cut from it and flattened,
            # cheaper than copying the records into one contiguous array first
            rows = datagrams[f"set{index}"]
            if layout.rate_per_record:
                rate: npt.NDArray[np.float64] | float = self._resolve_rates(
                    rows, (rows.size,), (shape.domain,)
                )
            else:
                known = self._dispatcher.samplers.rate_for(shape.domain, 0)
                if known is None:
                    self.counters.unknown_sampling += rows.size
                rate = float(known or 1)
            parts.append(self._layout_columns(layout, rows, np.full(rows.size, agent, np.uint32), rate))
        return parts

    def _layout_columns(
        self,
        layout: ColumnLayout,
        rows: npt.NDArray[np.void],
        agent: npt.NDArray[np.uint32],
        rate: npt.NDArray[np.float64] | float,
    ) -> _Parts:
        if layout.dst_v4 is None and layout.dst_v6 is None:
            self._non_ip += rows.size
        return layout_columns(layout, rows, agent, rate, self._hop_resolver)

    def _resolve_rates(
        self, rows: npt.NDArray[np.void], counts: tuple[int, ...], domains: tuple[DomainKey, ...]
    ) -> npt.NDArray[np.float64] | float:
        """Per-record rates: the record's interval, else its sampler's (looked up per distinct id)."""
        names = rows.dtype.names or ()
        own = column(rows, "interval").astype(np.float64) if "interval" in names else np.zeros(rows.size)
        need = own == 0
        if not need.any():
            return own
        sampler = column(rows, "sampler") if "sampler" in names else np.zeros(rows.size, np.uint64)
        samplers = self._dispatcher.samplers
        distinct_domains = list(dict.fromkeys(domains))
        if len(distinct_domains) == 1 and need.all() and (sampler == sampler[0]).all():
            # the usual batch: one exporter, one sampler
            rate = samplers.rate_for(domains[0], int(sampler[0]) & 0xFFFFFFFF)
            if rate is None:
                self.counters.unknown_sampling += rows.size
            return float(rate or 1)
        index_of = {domain: index for index, domain in enumerate(distinct_domains)}
        domain_index = per_record(tuple(index_of[d] for d in domains), counts, np.uint64)
        keys = (np.asarray(domain_index, np.uint64) << np.uint64(32)) | (sampler & np.uint64(0xFFFFFFFF))
        unique, inverse = np.unique(keys[need], return_inverse=True)
        looked_up = np.array(
            [samplers.rate_for(distinct_domains[int(k) >> 32], int(k) & 0xFFFFFFFF) or 0 for k in unique],
            np.float64,
        )
        resolved = looked_up[inverse]
        self.counters.unknown_sampling += int((resolved == 0).sum())
        own[need] = np.where(resolved == 0, 1.0, resolved)
        return own


