"""Datagram shapes: the NetFlow v9 / IPFIX datagrams the fast path queues whole, untouched.

Most datagrams are made only of data sets with known fixed-length templates, and most have one
of a few shapes (the same sets, of the same lengths): a shape, once seen, is a numpy record type
for the whole datagram, so queuing costs a walk over the set headers and an append, and the
columns are cut from all the datagrams of a shape at ``take``. Anything else (templates,
options, unknown templates, odd framing) is left to the dispatcher. A shape belongs to its
domain's template generation: a redefined or withdrawn template retires it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np

from topfib.collector.netflow.columns import ColumnLayout, column_layout
from topfib.collector.netflow.dispatch import FlowSetDispatcher
from topfib.collector.netflow.templates import DomainKey, Template

_IPFIX_LENGTH_SEQUENCE_DOMAIN = struct.Struct("!2xH4xII")
_V9_UPTIME_SEQUENCE_SOURCE = struct.Struct("!4xI4xII")
_SET_HEADER = struct.Struct("!HH")
MAX_LAYOUTS: Final = 4096
MAX_SHAPES: Final = 4096


@dataclass(slots=True, eq=False)
class DatagramShape:
    """Datagrams of one exporter domain with the same data sets: one numpy record per datagram."""

    domain: DomainKey
    generation: int  # its domain's template generation when it was built
    dtype: np.dtype[np.void]  # one sub-array field per data set: set0, set1…
    sets: tuple[tuple[ColumnLayout, int], ...]  # (layout, records) per data set
    records: int
    sequence_units: int  # what a datagram moves its sequence number by: v9 1 (packets), IPFIX records
    checks: tuple[tuple[int, bytes], ...]  # (offset, set header bytes) that identify the shape
    datagrams: list[bytes] = field(default_factory=list)


class DatagramShapes:
    """The shapes seen per exporter domain, the datagrams queued under each, and the column
    layouts of the templates they use (which the per-set path shares)."""

    def __init__(self, dispatcher: FlowSetDispatcher) -> None:
        self._dispatcher = dispatcher
        self._template_cache = dispatcher.templates
        self._counters = dispatcher.counters  # the same object for the decoder's lifetime
        self._observe = dispatcher.sequences.observe
        self._layouts: dict[Template, ColumnLayout | None] = {}
        self._shapes: dict[tuple[str, int, int, tuple[int, ...]], DatagramShape] = {}
        self._recent: dict[tuple[str, int, int, int], DatagramShape] = {}  # by (domain, datagram length)
        self._retired: list[DatagramShape] = []  # replaced (templates redefined) with datagrams still queued

    @property
    def domains(self) -> set[DomainKey]:
        """The exporter domains that have a shape (their data-only datagrams take the fast path)."""
        return {shape.domain for shape in self._shapes.values()}

    def take_queued(self) -> list[tuple[DatagramShape, list[bytes]]]:
        """Each shape with the datagrams queued under it since the previous call."""
        queued = []
        for shape in [*self._retired, *self._shapes.values()]:
            if shape.datagrams:
                queued.append((shape, shape.datagrams))
                shape.datagrams = []
        self._retired = []
        return queued

    def queue_data_only(self, datagram: bytes, exporter: str) -> bool:
        """Queue a datagram made only of data sets with known columnar templates; False otherwise,
        untouched, for the dispatcher to handle — and to judge, if it is malformed."""
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

    def layout(self, template: Template) -> ColumnLayout | None:
        """The template's column layout (cached), None when only the typed path fits it."""
        if template in self._layouts:
            return self._layouts[template]
        layout = column_layout(template)
        if len(self._layouts) >= MAX_LAYOUTS:
            self._layouts.clear()  # redefined and withdrawn templates: rebuild what is live
        self._layouts[template] = layout
        return layout

    def _shape(
        self, domain: DomainKey, headers: tuple[int, ...], start: int, end: int
    ) -> DatagramShape | None:
        templates = self._dispatcher.templates_of(domain)
        sets: list[tuple[ColumnLayout, int]] = []
        names, formats, offsets = [], [], []
        checks = []
        pos = start
        for header in headers:
            checks.append((pos, header.to_bytes(4, "big")))
            template = templates.get(header >> 16)
            layout = None if template is None else self.layout(template)
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
        return DatagramShape(
            domain=domain,
            generation=self._template_cache.generation_of(domain),
            dtype=np.dtype(cast(Any, record_type)),
            sets=tuple(sets),
            records=sum(count for _, count in sets),
            sequence_units=1 if domain[1] == 9 else sum(count for _, count in sets),
            checks=tuple(checks),
        )
