"""FlowDecoder: NetFlow v5, NetFlow v9 and IPFIX datagrams in, typed FlowRecords out.

State the protocols require (templates, sampler options, data waiting for its template) lives in
the decoder's :class:`~topfib.collector.netflow.dispatch.FlowSetDispatcher`. Feed every datagram of a
collector (or every file of a ``topfib decode`` run) through one instance so templates persist.
A malformed datagram raises ``FlowDecodeError`` after it is counted in ``counters.malformed``;
a malformed set is counted and skipped, and the other sets' records are still returned.
"""

from __future__ import annotations

from topfib.collector.netflow.dispatch import FlowDecoderCounters, FlowSetDispatcher, is_netflow
from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.fields import (
    FlowRecord,
    RecordContext,
    build_flow_record,
    record_sampler_id,
    record_sampling_rate,
    reverse_flow_record,
)
from topfib.collector.netflow.message import MessageHeader
from topfib.collector.netflow.templates import DomainKey, Template, split_records
from topfib.collector.netflow.v5 import decode_v5

__all__ = ["FlowDecodeError", "FlowDecoder", "FlowDecoderCounters", "FlowRecord", "is_netflow"]


class FlowDecoder:
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
        self._records: list[FlowRecord] = []

    @property
    def counters(self) -> FlowDecoderCounters:
        return self._dispatcher.counters

    def decode(self, payload: bytes, exporter: str) -> list[FlowRecord]:
        """Flow records of one datagram (plus any held data its templates now decode)."""
        records: list[FlowRecord] = []
        self._records = records
        self._dispatcher.dispatch(payload, exporter)
        self.counters.records += len(records)
        return records

    # FlowSink

    def netflow_v5(self, payload: bytes, exporter: str) -> None:
        self._records.extend(decode_v5(payload, exporter))

    def flow_set(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> None:
        context = RecordContext(
            exporter=domain[0],
            version=header.version,
            observation_domain=header.observation_domain,
            sequence=header.sequence,
            export_time_s=header.export_time_s,
            sys_uptime_ms=header.sys_uptime_ms,
            system_init_ms=self._dispatcher.system_init_ms(domain),
        )
        samplers = self._dispatcher.samplers
        for record in split_records(template, data, start, end):
            rate = record_sampling_rate(record.values)
            if rate is None:
                rate = samplers.rate_for(domain, record_sampler_id(record.values))
            if rate is None:
                self.counters.unknown_sampling += 1
                rate = 1
            flow = build_flow_record(record.values, context, rate)
            self._records.append(flow)
            if record.reverse and (reverse := reverse_flow_record(flow, record.reverse)) is not None:
                self._records.append(reverse)
