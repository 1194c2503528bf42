"""FlowDecoder: NetFlow v5, NetFlow v9 and IPFIX datagrams in, FlowRecords out.

The decoder is pure apart from the state the protocols require, held explicitly here: templates
per (exporter, version, domain), sampler rates from options data, and data sets waiting for their
template. Feed every datagram of a collector (or every file of a ``topfib decode`` run) through one
instance so templates persist.

Errors: a datagram whose header or set framing is broken raises ``FlowDecodeError`` (after it is
counted); a broken set inside an otherwise sound datagram is counted and skipped, and the records
of the other sets are still returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collector import ipfix, netflow_v9
from collector.flow_templates import DomainKey, Template, TemplateCache, split_records
from collector.netflow_errors import FlowDecodeError
from collector.netflow_fields import (
    SYSTEM_INIT_MILLISECONDS,
    RecordContext,
    build_flow_record,
    record_sampler_id,
    record_sampling_rate,
    reverse_flow_record,
    to_int,
)
from collector.netflow_message import MIN_DATA_SET_ID, MessageHeader, SetSpan, Withdrawal, frame_sets
from collector.netflow_pending import PendingSet, PendingSets
from collector.netflow_record import FlowRecord
from collector.netflow_sampling import SamplerTable
from collector.netflow_v5 import NETFLOW_V5_VERSION, decode_v5

__all__ = ["FlowDecodeError", "FlowDecoder", "FlowDecoderCounters", "FlowRecord", "is_netflow"]

VERSIONS = (NETFLOW_V5_VERSION, netflow_v9.NETFLOW_V9_VERSION, ipfix.IPFIX_VERSION)


def is_netflow(payload: bytes) -> bool:
    """True when the datagram starts like NetFlow v5 (00 05), v9 (00 09) or IPFIX (00 0a)."""
    return len(payload) >= 2 and payload[0] == 0 and payload[1] in VERSIONS


@dataclass(slots=True)
class FlowDecoderCounters:
    datagrams: int = 0
    records: int = 0  # flow records returned
    templates: int = 0  # data templates learned or redefined
    options_templates: int = 0
    template_withdrawals: int = 0
    templates_refused: int = 0  # template cache full
    options_records: int = 0
    pending_sets_held: int = 0  # data sets that arrived before their template
    pending_sets_decoded: int = 0  # …and were decoded once it came
    pending_template_drops: int = 0  # …or were dropped, the template never came in time
    unknown_sampling: int = 0  # flow records with no known sampling rate (reported as 1)
    reserved_sets: int = 0  # sets with a reserved id, skipped
    malformed: dict[tuple[str, str], int] = field(default_factory=dict)  # (reason, exporter)


class FlowDecoder:
    def __init__(
        self,
        max_templates: int = 10_000,
        max_samplers: int = 10_000,
        max_pending_sets: int = 256,
        pending_max_age_datagrams: int = 64,
    ) -> None:
        self.counters = FlowDecoderCounters()
        self._templates = TemplateCache(max_templates)
        self._samplers = SamplerTable(max_samplers)
        self._pending = PendingSets(max_pending_sets, pending_max_age_datagrams)
        self._max_domains = max_templates
        self._system_init_ms: dict[DomainKey, int] = {}

    def decode(self, payload: bytes, exporter: str) -> list[FlowRecord]:
        """Flow records of one datagram (plus any held data its templates now decode)."""
        counters = self.counters
        counters.datagrams += 1
        counters.pending_template_drops += self._pending.expire(counters.datagrams)
        try:
            version = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else -1
            if version == NETFLOW_V5_VERSION:
                records = decode_v5(payload, exporter)
            elif version == netflow_v9.NETFLOW_V9_VERSION:
                header = netflow_v9.parse_header(payload)
                records = self._decode_sets(payload, exporter, header, netflow_v9.HEADER_LENGTH, len(payload))
            elif version == ipfix.IPFIX_VERSION:
                header, end = ipfix.parse_header(payload)
                records = self._decode_sets(payload, exporter, header, ipfix.HEADER_LENGTH, end)
            else:
                raise FlowDecodeError("version", f"version {version}")
        except FlowDecodeError as error:
            self._count_malformed(error, exporter)
            raise
        counters.records += len(records)
        return records

    def _count_malformed(self, error: FlowDecodeError, exporter: str) -> None:
        key = (error.reason, exporter)
        self.counters.malformed[key] = self.counters.malformed.get(key, 0) + 1

    def _decode_sets(
        self, payload: bytes, exporter: str, header: MessageHeader, start: int, end: int
    ) -> list[FlowRecord]:
        domain: DomainKey = (exporter, header.version, header.observation_domain)
        records: list[FlowRecord] = []
        for span in frame_sets(payload, start, end):
            try:
                if span.set_id >= MIN_DATA_SET_ID:
                    records.extend(self._data_set(domain, header, payload, span))
                else:
                    records.extend(self._template_set(domain, payload, span))
            except FlowDecodeError as error:
                self._count_malformed(error, exporter)
        return records

    def _template_set(self, domain: DomainKey, payload: bytes, span: SetSpan) -> list[FlowRecord]:
        version = domain[1]
        if version == netflow_v9.NETFLOW_V9_VERSION and span.set_id == netflow_v9.TEMPLATE_SET_ID:
            events = netflow_v9.parse_template_set(payload, span.start, span.end)
        elif version == netflow_v9.NETFLOW_V9_VERSION and span.set_id == netflow_v9.OPTIONS_TEMPLATE_SET_ID:
            events = netflow_v9.parse_options_template_set(payload, span.start, span.end)
        elif version == ipfix.IPFIX_VERSION and span.set_id in (
            ipfix.TEMPLATE_SET_ID,
            ipfix.OPTIONS_TEMPLATE_SET_ID,
        ):
            options = span.set_id == ipfix.OPTIONS_TEMPLATE_SET_ID
            events = ipfix.parse_template_set(payload, span.start, span.end, options)
        else:
            self.counters.reserved_sets += 1
            return []
        records: list[FlowRecord] = []
        for event in events:
            if isinstance(event, Withdrawal):
                self._withdraw(domain, event)
            elif self._learn(domain, event):
                records.extend(self._decode_pending(domain, event))
        return records

    def _learn(self, domain: DomainKey, template: Template) -> bool:
        if not self._templates.add(domain, template):
            self.counters.templates_refused += 1
            return False
        if template.is_options:
            self.counters.options_templates += 1
        else:
            self.counters.templates += 1
        return True

    def _withdraw(self, domain: DomainKey, withdrawal: Withdrawal) -> None:
        if withdrawal.template_id is None:
            withdrawn = self._templates.withdraw_all(domain, withdrawal.options)
        else:
            withdrawn = int(self._templates.withdraw(domain, withdrawal.template_id))
        self.counters.template_withdrawals += withdrawn

    def _decode_pending(self, domain: DomainKey, template: Template) -> list[FlowRecord]:
        records: list[FlowRecord] = []
        for pending in self._pending.release(domain, template.template_id):
            self.counters.pending_sets_decoded += 1
            try:
                records.extend(
                    self._records(domain, pending.header, template, pending.body, 0, len(pending.body))
                )
            except FlowDecodeError as error:
                self._count_malformed(error, domain[0])
        return records

    def _data_set(
        self, domain: DomainKey, header: MessageHeader, payload: bytes, span: SetSpan
    ) -> list[FlowRecord]:
        template = self._templates.get(domain, span.set_id)
        if template is None:
            body = payload[span.start : span.end]
            self.counters.pending_sets_held += 1
            self.counters.pending_template_drops += self._pending.hold(
                PendingSet(domain, span.set_id, body, header, self.counters.datagrams)
            )
            return []
        return self._records(domain, header, template, payload, span.start, span.end)

    def _records(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> list[FlowRecord]:
        split = split_records(template, data, start, end)
        if template.is_options:
            for record in split:
                self._learn_options(domain, record.values)
            self.counters.options_records += len(split)
            return []
        context = RecordContext(
            exporter=domain[0],
            version=header.version,
            observation_domain=header.observation_domain,
            sequence=header.sequence,
            export_time_s=header.export_time_s,
            sys_uptime_ms=header.sys_uptime_ms,
            system_init_ms=self._system_init_ms.get(domain),
        )
        records: list[FlowRecord] = []
        for record in split:
            rate = record_sampling_rate(record.values)
            if rate is None:
                rate = self._samplers.rate_for(domain, record_sampler_id(record.values))
            if rate is None:
                self.counters.unknown_sampling += 1
                rate = 1
            flow = build_flow_record(record.values, context, rate)
            records.append(flow)
            if record.reverse and (reverse := reverse_flow_record(flow, record.reverse)) is not None:
                records.append(reverse)
        return records

    def _learn_options(self, domain: DomainKey, values: dict[int, bytes]) -> None:
        rate = record_sampling_rate(values)
        if rate is not None:
            self._samplers.learn(domain, record_sampler_id(values), rate)
        system_init = values.get(SYSTEM_INIT_MILLISECONDS)
        if system_init is not None and (
            domain in self._system_init_ms or len(self._system_init_ms) < self._max_domains
        ):
            self._system_init_ms[domain] = to_int(system_init)
