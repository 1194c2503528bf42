"""The NetFlow v9 / IPFIX collection state machine, shared by the typed and the fast decoders.

:class:`FlowSetDispatcher` parses message headers and sets, keeps the state the protocols
require — templates per (exporter, version, domain), sampler rates and system init times from
options data, data sets waiting for their template — and hands every *flow* data set, with the
template that describes it, to a sink. The typed decoder's sink builds FlowRecords; the fast
path's sink fills numpy columns. NetFlow v5 datagrams, which need no state, go to the sink whole.

Errors: a datagram whose header or set framing is broken raises ``FlowDecodeError`` after it is
counted; a broken set inside an otherwise sound datagram is counted and skipped.

Every sound message also goes to the :class:`~topfib.collector.netflow.sequence.SequenceTracker`, which
counts export loss from sequence numbers (``counters.lost``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from topfib.collector.netflow import ipfix
from topfib.collector.netflow import v9 as netflow_v9
from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.fields import (
    SYSTEM_INIT_MILLISECONDS,
    record_sampler_id,
    record_sampling_rate,
    to_int,
)
from topfib.collector.netflow.message import MIN_DATA_SET_ID, MessageHeader, SetSpan, Withdrawal, frame_sets
from topfib.collector.netflow.sampling import SamplerTable
from topfib.collector.netflow.sequence import SequenceTracker
from topfib.collector.netflow.templates import DomainKey, Template, TemplateCache, split_records
from topfib.collector.netflow.v5 import NETFLOW_V5_VERSION

# template set bodies kept to recognise refreshes (an optimisation: forgetting one costs a parse)
MAX_REFRESH_BYTES: Final = 4 << 20
VERSIONS = (NETFLOW_V5_VERSION, netflow_v9.NETFLOW_V9_VERSION, ipfix.IPFIX_VERSION)


def is_netflow(payload: bytes) -> bool:
    """True when the datagram starts like NetFlow v5 (00 05), v9 (00 09) or IPFIX (00 0a)."""
    return len(payload) >= 2 and payload[0] == 0 and payload[1] in VERSIONS


@dataclass(slots=True)
class FlowDecoderCounters:
    datagrams: int = 0
    records: int = 0  # flow records produced
    templates: int = 0  # data templates learned or redefined
    options_templates: int = 0
    template_withdrawals: int = 0
    templates_refused: int = 0  # template cache full
    templates_evicted: int = 0  # oldest template of an exporter at its bound, for a new one
    options_records: int = 0
    pending_sets_held: int = 0  # data sets that arrived before their template
    pending_sets_decoded: int = 0  # …and were decoded once it came
    pending_template_drops: int = 0  # …or were dropped, the template never came in time
    unknown_sampling: int = 0  # flow records with no known sampling rate (reported as 1)
    reserved_sets: int = 0  # sets with a reserved id, skipped
    malformed: dict[tuple[str, str], int] = field(default_factory=dict)  # (reason, exporter)
    # (exporter, unit) → missing by sequence numbers: v5 "flows", v9 "packets", IPFIX "records"
    lost: dict[tuple[str, str], int] = field(default_factory=dict)


class FlowSink(Protocol):
    def netflow_v5(self, payload: bytes, exporter: str) -> None:
        """A whole NetFlow v5 datagram; raises FlowDecodeError when malformed."""

    def flow_set(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> None:
        """The records of ``data[start:end]``, described by the flow (non-options) ``template``."""


class FlowSetDispatcher:
    def __init__(
        self,
        sink: FlowSink,
        max_templates: int = 10_000,
        max_samplers: int = 10_000,
        max_pending_sets: int = 256,
        pending_max_age_datagrams: int = 64,
    ) -> None:
        self.counters = FlowDecoderCounters()
        self.samplers = SamplerTable(max_samplers)
        self._sink = sink
        self._templates = TemplateCache(max_templates)
        self._pending = PendingSets(max_pending_sets, pending_max_age_datagrams)
        self._max_domains = max_templates
        self._system_init_ms: dict[DomainKey, int] = {}
        self.sequences = SequenceTracker(lost=self.counters.lost)
        # (domain, set id) → (set body, domain's generation after it, data / options templates in
        # it) of the last template set that only (re)defined templates: exporters re-send the
        # same sets every few seconds, and parsing them again would cost more than their data
        self._refreshes: dict[tuple[DomainKey, int], tuple[bytes, int, int, int]] = {}
        self._refresh_bytes = 0  # bodies held in _refreshes: bounded, not only their number

    def system_init_ms(self, domain: DomainKey) -> int | None:
        """IPFIX systemInitTimeMilliseconds the domain announced in options data, if any."""
        return self._system_init_ms.get(domain)

    @property
    def templates(self) -> TemplateCache:
        """The template cache (read it; only the dispatcher changes it)."""
        return self._templates

    def templates_of(self, domain: DomainKey) -> Mapping[int, Template]:
        """The domain's templates by id (read-only view of the live cache)."""
        return self._templates.of_domain(domain)

    def dispatch(self, payload: bytes, exporter: str) -> None:
        """Decode one datagram: templates and options into the state, flow data sets to the sink."""
        self.begin_datagram()
        self.dispatch_counted(payload, exporter)

    def begin_datagram(self) -> None:
        """Count a datagram and age the held data sets (the decoder's clock)."""
        counters = self.counters
        counters.datagrams += 1
        # cheaper than asking the pending store on every datagram: is anything held at all?
        if counters.pending_sets_held > counters.pending_sets_decoded + counters.pending_template_drops:
            counters.pending_template_drops += self._pending.expire(counters.datagrams)

    def dispatch_counted(self, payload: bytes, exporter: str) -> None:
        """``dispatch`` for a datagram already counted by ``begin_datagram``."""
        try:
            version = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else -1
            if version == NETFLOW_V5_VERSION:
                self._sink.netflow_v5(payload, exporter)
                self.observe_v5(payload, exporter)
            elif version == netflow_v9.NETFLOW_V9_VERSION:
                header = netflow_v9.parse_header(payload)
                self._sets(payload, exporter, header, netflow_v9.HEADER_LENGTH, len(payload))
            elif version == ipfix.IPFIX_VERSION:
                header, end = ipfix.parse_header(payload)
                self._sets(payload, exporter, header, ipfix.HEADER_LENGTH, end)
            else:
                raise FlowDecodeError("version", f"version {version}")
        except FlowDecodeError as error:
            self.count_malformed(error, exporter)
            raise

    def observe_v5(self, payload: bytes, exporter: str) -> None:
        """Sequence accounting of a sound NetFlow v5 datagram (flows, per engine type and id)."""
        engine = payload[20] << 8 | payload[21]
        count = int.from_bytes(payload[2:4], "big")
        sequence = int.from_bytes(payload[16:20], "big")
        self.sequences.observe((exporter, NETFLOW_V5_VERSION, engine), sequence, count)

    def observe_message(
        self,
        domain: DomainKey,
        sequence: int,
        records: int | None,
        uptime_ms: int | None,
        flow_records: int | None = None,
    ) -> None:
        """Sequence accounting of a sound v9/IPFIX message (IPFIX: ``records`` its data records,
        ``flow_records`` those of them not options records, when they differ)."""
        if domain[1] == netflow_v9.NETFLOW_V9_VERSION:
            self.sequences.observe(domain, sequence, 1, uptime_ms)
        else:
            self.sequences.observe(domain, sequence, records, uptime_ms, flow_records)

    def count_malformed(self, error: FlowDecodeError, exporter: str) -> None:
        key = (error.reason, exporter)
        self.counters.malformed[key] = self.counters.malformed.get(key, 0) + 1

    def _sets(self, payload: bytes, exporter: str, header: MessageHeader, start: int, end: int) -> None:
        domain: DomainKey = (exporter, header.version, header.observation_domain)
        records: int | None = 0
        options_records = 0
        for span in frame_sets(payload, start, end):
            try:
                if span.set_id >= MIN_DATA_SET_ID:
                    count, options = self._data_set(domain, header, payload, span)
                    records = None if records is None or count is None else records + count
                    options_records += count if options and count is not None else 0
                else:
                    self._template_set(domain, payload, span)
            except FlowDecodeError as error:
                self.count_malformed(error, exporter)
                records = None
        flow_records = None if records is None else records - options_records
        self.observe_message(domain, header.sequence, records, header.sys_uptime_ms, flow_records)

    def _template_set(self, domain: DomainKey, payload: bytes, span: SetSpan) -> None:
        body = payload[span.start : span.end]
        key = (domain, span.set_id)
        last = self._refreshes.get(key)
        counters = self.counters
        if (
            last is not None
            and last[0] == body
            and last[1] == self._templates.generation_of(domain)  # nothing learned or withdrawn since
            and counters.pending_sets_held <= counters.pending_sets_decoded + counters.pending_template_drops
        ):  # a refresh of what the cache holds, with no data set waiting for a template: no-op
            counters.templates += last[2]
            counters.options_templates += last[3]
            return
        learned = self._parse_template_set(domain, payload, span)
        if learned is not None:
            self._remember_refresh(key, (body, self._templates.generation_of(domain), *learned))

    def _remember_refresh(self, key: tuple[DomainKey, int], entry: tuple[bytes, int, int, int]) -> None:
        """Keep a template set for ``_template_set``'s shortcut, the oldest forgotten first at the
        bounds (a set body is up to 64 KB and the observation domains are the sender's choice)."""
        refreshes = self._refreshes
        old = refreshes.pop(key, None)
        if old is not None:
            self._refresh_bytes -= len(old[0])
        self._refresh_bytes += len(entry[0])
        while refreshes and (
            self._refresh_bytes > MAX_REFRESH_BYTES or len(refreshes) >= self._max_domains
        ):
            oldest = next(iter(refreshes))
            self._refresh_bytes -= len(refreshes.pop(oldest)[0])
        refreshes[key] = entry

    def _parse_template_set(self, domain: DomainKey, payload: bytes, span: SetSpan) -> tuple[int, int] | None:
        """Apply a template set; (data, options) templates learned when that is all it did."""
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
            return None
        learned: tuple[int, int] | None = (0, 0)
        for event in events:
            if isinstance(event, Withdrawal):
                self._withdraw(domain, event)
                learned = None
            elif self._learn(domain, event):
                self._release_pending(domain, event)
                if learned is not None:
                    data_templates, options_templates = learned
                    if event.is_options:
                        learned = (data_templates, options_templates + 1)
                    else:
                        learned = (data_templates + 1, options_templates)
            else:
                learned = None
        return learned

    def _learn(self, domain: DomainKey, template: Template) -> bool:
        learned = self._templates.add(domain, template)
        self.counters.templates_evicted = self._templates.evicted
        if not learned:
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

    def _release_pending(self, domain: DomainKey, template: Template) -> None:
        for pending in self._pending.release(domain, template.template_id):
            self.counters.pending_sets_decoded += 1
            try:
                self._records(domain, pending.header, template, pending.body, 0, len(pending.body))
            except FlowDecodeError as error:
                self.count_malformed(error, domain[0])

    def _data_set(
        self, domain: DomainKey, header: MessageHeader, payload: bytes, span: SetSpan
    ) -> tuple[int | None, bool]:
        """Hand the set on; returns its record count when the template says it (else None), and
        whether they are options records."""
        template = self._templates.get(domain, span.set_id)
        if template is None:
            body = payload[span.start : span.end]
            self.counters.pending_sets_held += 1
            self.counters.pending_template_drops += self._pending.hold(
                PendingSet(domain, span.set_id, body, header, self.counters.datagrams)
            )
            return None, False
        self._records(domain, header, template, payload, span.start, span.end)
        if template.fixed_length:
            return (span.end - span.start) // template.fixed_length, template.is_options
        return None, template.is_options

    def _records(
        self, domain: DomainKey, header: MessageHeader, template: Template, data: bytes, start: int, end: int
    ) -> None:
        if not template.is_options:
            self._sink.flow_set(domain, header, template, data, start, end)
            return
        split = split_records(template, data, start, end)
        for record in split:
            self._learn_options(domain, record.values)
        self.counters.options_records += len(split)

    def _learn_options(self, domain: DomainKey, values: dict[int, bytes]) -> None:
        rate = record_sampling_rate(values)
        if rate is not None:
            self.samplers.learn(domain, record_sampler_id(values), rate)
        system_init = values.get(SYSTEM_INIT_MILLISECONDS)
        if system_init is not None and (
            domain in self._system_init_ms or len(self._system_init_ms) < self._max_domains
        ):
            self._system_init_ms[domain] = to_int(system_init)


# Data sets that arrived before their template, held briefly so a late template can still claim them.
#
# UDP reorders, and exporters send templates only every few seconds or packets, so the first data
# after a collector (re)start or a template refresh often precedes its template. A bounded number
# of such sets is held for a bounded number of datagrams (the decoder's clock: it takes no wall
# time), then dropped and counted.


@dataclass(frozen=True, slots=True)
class PendingSet:
    domain: DomainKey
    template_id: int
    body: bytes  # the data set's records, set header stripped
    header: MessageHeader
    received_at: int  # decoder datagram count when it arrived


class PendingSets:
    def __init__(self, max_sets: int = 256, max_age_datagrams: int = 64) -> None:
        self._max_sets = max_sets
        self._max_age = max_age_datagrams
        self._held: deque[PendingSet] = deque()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, pending: PendingSet) -> int:
        """Keep ``pending``; returns how many older sets were dropped to make room."""
        if self._max_sets <= 0:
            return 1
        dropped = 0
        while len(self._held) >= self._max_sets:
            self._held.popleft()
            dropped += 1
        self._held.append(pending)
        return dropped

    def release(self, domain: DomainKey, template_id: int) -> list[PendingSet]:
        """Take out every held set waiting for this template, oldest first."""
        if not any(p.domain == domain and p.template_id == template_id for p in self._held):
            return []
        released = [p for p in self._held if p.domain == domain and p.template_id == template_id]
        self._held = deque(p for p in self._held if not (p.domain == domain and p.template_id == template_id))
        return released

    def expire(self, now: int) -> int:
        """Drop sets held for more than the maximum age; returns how many."""
        dropped = 0
        while self._held and now - self._held[0].received_at > self._max_age:
            self._held.popleft()
            dropped += 1
        return dropped
