"""The NetFlow v5/v9 and IPFIX fast path feeding accounting: many datagrams in, one SampleBatch out.

Accounting needs a few things per flow record: destination, bytes and packets (scaled by the
sampling rate), the exporter, and for per-path accounting and the traffic matrix the ingress
interface and the next hop (BGP next hop, else IP next hop; an all-zero address is none).
Building a Python object per record would cost far more than that, so :class:`FastFlowDecoder`
keeps the shared collection state (templates, options, pending sets:
:class:`~topfib.collector.netflow.dispatch.FlowSetDispatcher`) and, per fixed-length template, only
queues the raw bytes of each data set. ``take`` joins the queued sets of one layout and cuts
columns out of them with numpy, once per batch rather than once per record; next hops are
named once per distinct address per batch.

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
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from topfib.collector.common.batch import SampleBatch
from topfib.collector.netflow.dispatch import FlowDecoderCounters, FlowSetDispatcher
from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.fields import (
    BGP_NEXT_HOP_V4,
    BGP_NEXT_HOP_V6,
    DST_IPV4,
    DST_IPV6,
    INITIATOR_OCTETS,
    INITIATOR_PACKETS,
    INPUT_IF,
    INPUT_PHYSICAL_IF,
    IP_NEXT_HOP_V4,
    IP_NEXT_HOP_V6,
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
from topfib.collector.netflow.hops import HopResolver
from topfib.collector.netflow.message import MessageHeader
from topfib.collector.netflow.packet_section import DATALINK_FRAME_SECTION, IP_HEADER_SECTION
from topfib.collector.netflow.templates import IANA, DomainKey, Template, split_records

_IPFIX_LENGTH_SEQUENCE_DOMAIN = struct.Struct("!2xH4xII")
_V9_UPTIME_SEQUENCE_SOURCE = struct.Struct("!4xI4xII")
_SET_HEADER = struct.Struct("!HH")
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
MAX_SHAPES: Final = 4096

Field = tuple[int, int]  # (offset, length) in the record


@dataclass(frozen=True, slots=True, eq=False)
class ColumnLayout:
    """Where accounting's fields sit in a fixed-length record."""

    record_length: int
    dst_v4: int | None = None  # offset of a 4-byte IPv4 destination
    dst_v6: int | None = None  # offset of a 16-byte IPv6 destination
    octets: Field | None = None
    packets: Field | None = None
    interval: Field | None = None  # the record's own sampling interval
    sampler: Field | None = None  # the sampler (or selector) id that names its rate
    input_if: Field | None = None  # ingress ifIndex
    bgp_hop_v4: int | None = None  # offsets of 4-/16-byte next-hop addresses
    bgp_hop_v6: int | None = None
    ip_hop_v4: int | None = None
    ip_hop_v6: int | None = None
    dtype: np.dtype[np.void] = field(init=False)  # the fields above as a numpy record
    rate_per_record: bool = field(init=False)  # interval or sampler id: rates resolved per record

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_record", self.interval is not None or self.sampler is not None)
        names, formats, offsets = [], [], []
        columns: list[tuple[str, Field | None]] = [
            ("dst_v4", None if self.dst_v4 is None else (self.dst_v4, 4)),
            ("dst_v6_hi", None if self.dst_v6 is None else (self.dst_v6, 8)),
            ("dst_v6_lo", None if self.dst_v6 is None else (self.dst_v6 + 8, 8)),
            ("octets", self.octets),
            ("packets", self.packets),
            ("interval", self.interval),
            ("sampler", self.sampler),
            ("input_if", self.input_if),
        ]
        for name, v4, v6 in (
            ("bgp_hop", self.bgp_hop_v4, self.bgp_hop_v6),
            ("ip_hop", self.ip_hop_v4, self.ip_hop_v6),
        ):
            columns.append((f"{name}_v4", None if v4 is None else (v4, 4)))
            columns.append((f"{name}_v6_hi", None if v6 is None else (v6, 8)))
            columns.append((f"{name}_v6_lo", None if v6 is None else (v6 + 8, 8)))
        for name, where in columns:
            if where is not None:
                names.append(name)
                offsets.append(where[0])
                # reduced-size integers of odd widths are read as bytes and assembled
                formats.append(f">u{where[1]}" if where[1] in (1, 2, 4, 8) else f"({where[1]},)u1")
        layout: dict[str, Any] = {"names": names, "formats": formats, "offsets": offsets}
        layout["itemsize"] = self.record_length
        object.__setattr__(self, "dtype", np.dtype(cast(Any, layout)))


V5_LAYOUT: Final = ColumnLayout(
    V5_RECORD_LENGTH, dst_v4=4, octets=(20, 4), packets=(16, 4), input_if=(12, 2), ip_hop_v4=8
)


def column_layout(template: Template) -> ColumnLayout | None:
    """The layout of a fixed-length flow template, or None when only the typed path fits it
    (options templates included: their records are state, handled by the dispatcher)."""
    if template.fixed_length is None or template.is_options:
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
            input_if=first(INPUT_IF, INPUT_PHYSICAL_IF),
            bgp_hop_v4=address(BGP_NEXT_HOP_V4, 4),
            bgp_hop_v6=address(BGP_NEXT_HOP_V6, 16),
            ip_hop_v4=address(IP_NEXT_HOP_V4, 4),
            ip_hop_v6=address(IP_NEXT_HOP_V6, 16),
        )
    except _NotColumnar:
        return None


class _NotColumnar(Exception):
    """A counter or id wider than 8 bytes: leave the template to the typed path."""


# a queued data set: (records' bytes, record count, agent index, rate or 0 to resolve per record, domain)
_Queued = tuple[bytes, int, int, int, DomainKey]


@dataclass(slots=True, eq=False)
class _Shape:
    """Datagrams of one exporter domain with the same data sets: one numpy record per datagram."""

    domain: DomainKey
    generation: int  # its domain's template generation when it was built
    dtype: np.dtype[np.void]  # one sub-array field per data set: set0, set1…
    sets: tuple[tuple[ColumnLayout, int], ...]  # (layout, records) per data set
    records: int
    sequence_units: int  # what a datagram moves its sequence number by: v9 1 (packets), IPFIX records
    checks: tuple[tuple[int, bytes], ...]  # (offset, set header bytes) that identify the shape
    datagrams: list[bytes] = field(default_factory=list)


# a record decoded by the typed builder: agent, destination, bytes, packets, input_if, next-hop index
_TypedRow = tuple[int, int, float, float, int, int]


@dataclass(slots=True)
class _TypedColumns:
    """Records decoded by the typed builder, as Python lists until ``take``."""

    v4: list[_TypedRow] = field(default_factory=list)
    v6: list[_TypedRow] = field(default_factory=list)


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
        self._template_cache = self._dispatcher.templates
        self._layouts: dict[Template, ColumnLayout | None] = {}
        self._shapes: dict[tuple[str, int, int, tuple[int, ...]], _Shape] = {}
        self._recent: dict[tuple[str, int, int, int], _Shape] = {}  # by (domain, datagram length)
        self._retired: list[_Shape] = []  # replaced (templates redefined) with datagrams still queued
        self._malformed_seen: Counter[tuple[str, str]] = Counter()
        self._lost_seen: Counter[tuple[str, str]] = Counter()
        self._limits_seen: dict[str, int] = {}  # state_limited counts up to the last take, by kind
        self._observe = self._dispatcher.sequences.observe
        self._begin_datagram = self._dispatcher.begin_datagram
        self._counters = self._dispatcher.counters  # the same object for the decoder's lifetime
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

    def _data_only(self, datagram: bytes, exporter: str) -> bool:
        """Queue a datagram made only of data sets with known columnar templates; False otherwise.

        Most datagrams are exactly that, and most have one of a few shapes (the same sets, of
        the same lengths): a shape, once seen, is a numpy record type for the whole datagram, so
        queuing costs a walk over the set headers and an append. Anything else (templates,
        options, unknown templates, odd framing) returns False untouched, for the dispatcher to
        handle — and to judge, if it is malformed.
        """
        if len(datagram) < 20 or datagram[0] != 0:
            return False
        version = datagram[1]
        if version == 10:
            end, sequence, observation_domain = _IPFIX_LENGTH_SEQUENCE_DOMAIN.unpack_from(datagram)
            uptime_ms = None
            start = pos = 16
        elif version == 9:
            uptime_ms, sequence, observation_domain = _V9_UPTIME_SEQUENCE_SOURCE.unpack_from(datagram)
            start = pos = 20
            end = len(datagram)
        else:
            return False
        if end != len(datagram):
            return False
        # the usual case: the same shape as this exporter's last datagram of this length
        recent_key = (exporter, version, observation_domain, end)
        recent = self._recent.get(recent_key)
        if recent is not None and recent.generation == self._template_cache.generation_of(recent.domain):
            for at, header in recent.checks:
                if datagram[at : at + 4] != header:
                    break
            else:
                recent.datagrams.append(datagram)
                self._counters.records += recent.records
                # sequence accounting of what the dispatcher never sees (no options records here)
                self._observe(recent.domain, sequence, recent.sequence_units, uptime_ms)
                return True
        headers = []
        while end - pos >= 4:
            set_id, set_length = _SET_HEADER.unpack_from(datagram, pos)
            if set_id < 256 or set_length < 4 or pos + set_length > end:
                return False
            headers.append(set_id << 16 | set_length)
            pos += set_length
        if pos != end:
            return False
        key = (exporter, version, observation_domain, tuple(headers))
        shape = self._shapes.get(key)
        if shape is None or shape.generation != self._template_cache.generation_of(shape.domain):
            shape = self._shape((exporter, version, observation_domain), key[3], start, end)
            if shape is None:
                return False
            if len(self._shapes) >= MAX_SHAPES and key not in self._shapes:
                self._forget_oldest_shape()
            stale = self._shapes.get(key)
            if stale is not None and stale.datagrams:  # queued under the previous templates
                self._retired.append(stale)
            self._shapes[key] = shape
        if len(self._recent) >= MAX_SHAPES and recent_key not in self._recent:
            self._recent.clear()
        self._recent[recent_key] = shape
        shape.datagrams.append(datagram)
        self._counters.records += shape.records
        self._observe(shape.domain, sequence, shape.sequence_units, uptime_ms)
        return True

    def _forget_oldest_shape(self) -> None:
        """A shape storm (a sender cycling domains or set layouts): the oldest shape goes, so the
        shapes in use keep the fast path (was: past the bound every new shape, a real exporter's
        too, took the per-set path for good, ~2.5x the CPU)."""
        oldest = self._shapes.pop(next(iter(self._shapes)))
        oldest.generation = -1  # never matched again through _recent
        if oldest.datagrams:  # queued: decoded at the next take
            self._retired.append(oldest)

    def _layout(self, template: Template) -> ColumnLayout | None:
        if template in self._layouts:
            return self._layouts[template]
        layout = column_layout(template)
        if len(self._layouts) >= MAX_LAYOUTS:
            self._layouts.clear()  # redefined and withdrawn templates: rebuild what is live
        self._layouts[template] = layout
        return layout

    def _shape(self, domain: DomainKey, headers: tuple[int, ...], start: int, end: int) -> _Shape | None:
        templates = self._dispatcher.templates_of(domain)
        sets: list[tuple[ColumnLayout, int]] = []
        names, formats, offsets = [], [], []
        checks = []
        pos = start
        for header in headers:
            checks.append((pos, header.to_bytes(4, "big")))
            template = templates.get(header >> 16)
            layout = None if template is None else self._layout(template)
            if layout is None or not layout.record_length:
                return None
            count = ((header & 0xFFFF) - 4) // layout.record_length
            if count:
                names.append(f"set{len(sets)}")
                formats.append((layout.dtype, (count,)))
                offsets.append(pos + 4)
                sets.append((layout, count))
            pos += header & 0xFFFF
        record_type: dict[str, Any] = {
            "names": names,
            "formats": formats,
            "offsets": offsets,
            "itemsize": end,
        }
        return _Shape(
            domain=domain,
            generation=self._template_cache.generation_of(domain),
            dtype=np.dtype(cast(Any, record_type)),
            sets=tuple(sets),
            records=sum(count for _, count in sets),
            sequence_units=1 if domain[1] == 9 else sum(count for _, count in sets),
            checks=tuple(checks),
        )

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
        v4_parts: list[_Columns] = []
        v6_parts: list[_Columns] = []
        parts = [self._columns(layout, queue) for layout, queue in self._queues.items()]
        for shape in [*self._retired, *self._shapes.values()]:
            if shape.datagrams:
                parts.extend(self._shape_columns(shape))
                shape.datagrams = []
        self._retired = []
        for v4, v6 in parts:
            if v4 is not None:
                v4_parts.append(v4)
            if v6 is not None:
                v6_parts.append(v6)
        if self._typed.v4 or not v4_parts:
            v4_parts.append(_typed_columns(self._typed.v4, v6=False))
        if self._typed.v6 or not v6_parts:
            v6_parts.append(_typed_columns(self._typed.v6, v6=True))
        v4_all = _concat(v4_parts)
        v6_all = _concat(v6_parts)
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

    def _columns(self, layout: ColumnLayout, queue: list[_Queued]) -> tuple[_Columns | None, _Columns | None]:
        """(IPv4, IPv6) columns of one layout's queued sets."""
        chunks, counts, agents, rates, domains = zip(*queue, strict=True)
        rows = np.frombuffer(b"".join(chunks), layout.dtype)
        agent = _per_record(agents, counts, np.uint32)
        if layout.rate_per_record:
            rate: npt.NDArray[np.float64] | float = self._resolve_rates(rows, counts, domains)
        else:
            rate = _per_record(rates, counts, np.float64)
        return self._layout_columns(layout, rows, agent, rate)

    def _shape_columns(self, shape: _Shape) -> list[tuple[_Columns | None, _Columns | None]]:
        datagrams = np.frombuffer(b"".join(shape.datagrams), shape.dtype)
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
    ) -> tuple[_Columns | None, _Columns | None]:
        octets = _float_column(rows, "octets")
        octets *= rate
        packets = _float_column(rows, "packets")
        packets *= rate
        if layout.dst_v4 is None and layout.dst_v6 is None:
            self._non_ip += rows.size
            return None, None
        input_if = _u32_column(rows, "input_if")
        hop = self._hop_column(layout, rows)
        if layout.dst_v6 is None:
            return _Columns(agent, _column(rows, "dst_v4"), octets, packets, input_if=input_if, hop=hop), None
        hi, lo = _column(rows, "dst_v6_hi"), _column(rows, "dst_v6_lo")
        if layout.dst_v4 is None:
            return None, _Columns(agent, hi, octets, packets, lo, input_if, hop)
        # dual-stack templates carry both families, the unused one zeroed
        v4_dst = _column(rows, "dst_v4")
        is_v6 = (v4_dst == 0) & ((hi != 0) | (lo != 0))
        v4 = ~is_v6
        return (
            _Columns(agent[v4], v4_dst[v4], octets[v4], packets[v4], input_if=input_if[v4], hop=hop[v4]),
            _Columns(
                agent[is_v6], hi[is_v6], octets[is_v6], packets[is_v6], lo[is_v6], input_if[is_v6], hop[is_v6]
            ),
        )

    def _hop_column(self, layout: ColumnLayout, rows: npt.NDArray[np.void]) -> npt.NDArray[np.int32]:
        """Next-hop index per record: its BGP next hop, else its IP next hop (zero: none), -1: none."""
        candidates = [
            (family, name)
            for family, name, offset in (
                (4, "bgp_hop_v4", layout.bgp_hop_v4),
                (6, "bgp_hop_v6", layout.bgp_hop_v6),
                (4, "ip_hop_v4", layout.ip_hop_v4),
                (6, "ip_hop_v6", layout.ip_hop_v6),
            )
            if offset is not None
        ]
        if not candidates:
            return np.full(rows.size, -1, np.int32)
        families = {family for family, _ in candidates}
        if families == {4}:  # the usual template: one family, BGP and/or IP next hop
            v4 = _column(rows, candidates[0][1])
            for _, name in candidates[1:]:
                v4 = np.where(v4 != 0, v4, _column(rows, name))
            return self._hop_resolver.resolve_v4(v4)
        if families == {6}:
            hi, lo = _column(rows, f"{candidates[0][1]}_hi"), _column(rows, f"{candidates[0][1]}_lo")
            for _, name in candidates[1:]:
                has = (hi != 0) | (lo != 0)
                hi = np.where(has, hi, _column(rows, f"{name}_hi"))
                lo = np.where(has, lo, _column(rows, f"{name}_lo"))
            return self._hop_resolver.resolve_v6(hi, lo)
        family = np.zeros(rows.size, np.uint8)
        v4 = hi = lo = np.zeros(rows.size, np.uint64)
        for candidate_family, name in reversed(candidates):  # the first candidate wins: written last
            if candidate_family == 4:
                value = _column(rows, name)
                has = value != 0
                v4 = np.where(has, value, v4)
            else:
                h6, l6 = _column(rows, f"{name}_hi"), _column(rows, f"{name}_lo")
                has = (h6 != 0) | (l6 != 0)
                hi, lo = np.where(has, h6, hi), np.where(has, l6, lo)
            family[has] = candidate_family
        return self._hop_resolver.resolve(family, v4, hi, lo)

    def _resolve_rates(
        self, rows: npt.NDArray[np.void], counts: tuple[int, ...], domains: tuple[DomainKey, ...]
    ) -> npt.NDArray[np.float64] | float:
        """Per-record rates: the record's interval, else its sampler's (looked up per distinct id)."""
        names = rows.dtype.names or ()
        own = _column(rows, "interval").astype(np.float64) if "interval" in names else np.zeros(rows.size)
        need = own == 0
        if not need.any():
            return own
        sampler = _column(rows, "sampler") if "sampler" in names else np.zeros(rows.size, np.uint64)
        samplers = self._dispatcher.samplers
        distinct_domains = list(dict.fromkeys(domains))
        if len(distinct_domains) == 1 and need.all() and (sampler == sampler[0]).all():
            # the usual batch: one exporter, one sampler
            rate = samplers.rate_for(domains[0], int(sampler[0]) & 0xFFFFFFFF)
            if rate is None:
                self.counters.unknown_sampling += rows.size
            return float(rate or 1)
        index_of = {domain: index for index, domain in enumerate(distinct_domains)}
        domain_index = _per_record(tuple(index_of[d] for d in domains), counts, np.uint64)
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


UNSPECIFIED: Final = frozenset(("0.0.0.0", "::"))


def _record_hop(bgp_next_hop: str | None, next_hop: str | None) -> str | None:
    """The BGP next hop if the record names one, else its IP next hop (all-zero: none), written
    as the column path writes it (``inet_ntop``: IPv4-mapped IPv6 in dotted form)."""
    hop = next((hop for hop in (bgp_next_hop, next_hop) if hop and hop not in UNSPECIFIED), None)
    if hop is not None and ":" in hop:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, hop))
    return hop


@dataclass(slots=True)
class _Columns:
    agent: npt.NDArray[np.uint32]
    dst: npt.NDArray[np.uint64]  # IPv4 address, or the high half of an IPv6 one
    octets: npt.NDArray[np.float64]
    packets: npt.NDArray[np.float64]
    dst_lo: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    input_if: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    hop: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))


def _column(rows: npt.NDArray[np.void], name: str) -> npt.NDArray[np.uint64]:
    """A big-endian unsigned column as uint64; zeros when the layout lacks it."""
    if name not in (rows.dtype.names or ()):
        return np.zeros(rows.size, np.uint64)
    raw = rows[name]
    if raw.ndim == rows.ndim:
        return raw.astype(np.uint64).reshape(-1)
    value = np.zeros(rows.size, np.uint64)
    for index in range(raw.shape[-1]):  # reduced-size encodings (3, 5, 6, 7 bytes)
        value = (value << np.uint64(8)) | raw[..., index].astype(np.uint64).reshape(-1)
    return value


def _float_column(rows: npt.NDArray[np.void], name: str) -> npt.NDArray[np.float64]:
    """A big-endian unsigned column as float64 (a fresh array); zeros when absent."""
    if name in (rows.dtype.names or ()) and rows[name].ndim == rows.ndim:
        return rows[name].astype(np.float64).reshape(-1)
    return _column(rows, name).astype(np.float64)


def _u32_column(rows: npt.NDArray[np.void], name: str) -> npt.NDArray[np.uint32]:
    """A big-endian unsigned column as uint32 (wider values keep their low 32 bits); zeros when absent."""
    if name not in (rows.dtype.names or ()):
        return np.zeros(rows.size, np.uint32)
    raw = rows[name]
    if raw.ndim == rows.ndim and raw.dtype.itemsize <= 4:
        return raw.astype(np.uint32).reshape(-1)
    return (_column(rows, name) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _per_record(
    values: tuple[int, ...], counts: tuple[int, ...], dtype: type[np.generic]
) -> npt.NDArray[Any]:
    """One value per queued set, expanded to one per record (a constant fill when all agree)."""
    if values.count(values[0]) == len(values):
        return np.full(sum(counts), values[0], dtype)
    return np.repeat(np.array(values, dtype), np.array(counts, np.int64))


def _typed_columns(rows: list[_TypedRow], v6: bool) -> _Columns:
    agent = np.array([r[0] for r in rows], np.uint32)
    octets = np.array([r[2] for r in rows], np.float64)
    packets = np.array([r[3] for r in rows], np.float64)
    input_if = np.array([r[4] for r in rows], np.uint32)
    hop = np.array([r[5] for r in rows], np.int32)
    if v6:
        hi = np.array([r[1] >> 64 for r in rows], np.uint64)
        lo = np.array([r[1] & 0xFFFFFFFFFFFFFFFF for r in rows], np.uint64)
        return _Columns(agent, hi, octets, packets, lo, input_if, hop)
    dst = np.array([r[1] for r in rows], np.uint64)
    return _Columns(agent, dst, octets, packets, input_if=input_if, hop=hop)


def _concat(parts: list[_Columns]) -> _Columns:
    if len(parts) == 1:
        return parts[0]
    return _Columns(
        np.concatenate([p.agent for p in parts], dtype=np.uint32),
        np.concatenate([p.dst for p in parts], dtype=np.uint64),
        np.concatenate([p.octets for p in parts], dtype=np.float64),
        np.concatenate([p.packets for p in parts], dtype=np.float64),
        np.concatenate([p.dst_lo for p in parts], dtype=np.uint64),
        np.concatenate([p.input_if for p in parts], dtype=np.uint32),
        np.concatenate([p.hop for p in parts], dtype=np.int32),
    )
