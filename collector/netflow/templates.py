"""NetFlow v9 / IPFIX templates: their field layout, how a data record is split by one, and the cache.

A template is learned per (exporter, version, observation domain / source id, template id): two
routers, or two line cards of one router, may reuse the same template id for different layouts.
The cache is bounded; a full cache refuses new templates (counted by the caller) rather than grow.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from topfib.collector.netflow.errors import FlowDecodeError

VARIABLE_LENGTH: Final = 0xFFFF  # IPFIX field length meaning "length prefix in the record" (RFC 7011 §7)
IANA: Final = 0  # enterprise number of the IANA information elements
REVERSE_PEN: Final = 29305  # RFC 5103 reverse information elements (biflows)
# Fields one template may have. Real exporters send a few dozen; the wire allows 65,535, and a
# 16,000-field template cost ~0.3 s of CPU and ~1 MB per datagram to parse, cache and lay out.
MAX_TEMPLATE_FIELDS: Final = 256

# (exporter, version, observation domain) — the scope of template ids
DomainKey = tuple[str, int, int]


def check_field_count(template_id: int, field_count: int) -> None:
    """Refuse a template with more than ``MAX_TEMPLATE_FIELDS`` fields, before parsing them."""
    if field_count > MAX_TEMPLATE_FIELDS:
        raise FlowDecodeError("template-fields", f"template {template_id}: {field_count} fields")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    element_id: int
    length: int
    enterprise: int = IANA


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """A data or options template (compared and hashed by identity: a cheap per-set cache key).

    ``scope_field_count`` > 0 marks an options template. NetFlow v9 scope fields carry scope
    *types* (system, interface…), not information elements, so ``scope_is_element`` is False for
    them and their values are not keyed by element id.
    """

    template_id: int
    fields: tuple[FieldSpec, ...]
    scope_field_count: int = 0
    scope_is_element: bool = True
    fixed_length: int | None = field(init=False)  # record length; None with variable-length fields
    min_length: int = field(init=False)  # shortest possible record (variable fields count 1 byte)

    def __post_init__(self) -> None:
        variable = any(f.length == VARIABLE_LENGTH for f in self.fields)
        minimum = sum(1 if f.length == VARIABLE_LENGTH else f.length for f in self.fields)
        object.__setattr__(self, "fixed_length", None if variable else minimum)
        object.__setattr__(self, "min_length", minimum)

    @property
    def is_options(self) -> bool:
        return self.scope_field_count > 0


@dataclass(slots=True)
class RecordValues:
    """The IANA (and RFC 5103 reverse) element values of one data record, raw big-endian bytes."""

    values: dict[int, bytes]
    reverse: dict[int, bytes]


def split_records(template: Template, data: bytes, start: int, end: int) -> list[RecordValues]:
    """Split the records of one data set (``data[start:end]``) by ``template``.

    Trailing bytes too short for a record are padding (RFC 7011 §3.3.1). A variable-length record
    that runs past the set end raises ``FlowDecodeError("record-overflow")``.
    """
    if template.min_length == 0:
        raise FlowDecodeError("template-empty", f"template {template.template_id} has no data bytes")
    skip_scope = 0 if template.scope_is_element else template.scope_field_count
    records: list[RecordValues] = []
    pos = start
    while end - pos >= template.min_length:
        values: dict[int, bytes] = {}
        reverse: dict[int, bytes] = {}
        for index, spec in enumerate(template.fields):
            length = spec.length
            if length == VARIABLE_LENGTH:
                length, pos = _variable_length(data, pos, end)
            if pos + length > end:
                raise FlowDecodeError("record-overflow", f"template {template.template_id} field {index}")
            if index >= skip_scope:
                if spec.enterprise == IANA:
                    values[spec.element_id] = data[pos : pos + length]
                elif spec.enterprise == REVERSE_PEN:
                    reverse[spec.element_id] = data[pos : pos + length]
            pos += length
        records.append(RecordValues(values, reverse))
    return records


def _variable_length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(length, position after the length prefix) of a variable-length field (RFC 7011 §7)."""
    if pos >= end:
        raise FlowDecodeError("record-overflow", "variable-length prefix past set end")
    length = data[pos]
    if length < 255:
        return length, pos + 1
    if pos + 3 > end:
        raise FlowDecodeError("record-overflow", "variable-length prefix past set end")
    return int.from_bytes(data[pos + 1 : pos + 3], "big"), pos + 3


_NO_TEMPLATES: Mapping[int, Template] = MappingProxyType({})


class TemplateCache:
    """Templates by (domain key, template id), bounded per exporter and in total.

    An exporter past ``max_per_exporter`` templates (by default a tenth of ``max_templates``)
    loses its oldest-learned one to each new one (counted in ``evicted``), so one exporter (or a
    sender spoofing its address) cannot starve the others; past ``max_templates`` in total the
    exporter holding the most loses its oldest (also counted in ``evicted``) while it holds at
    least two more than the one asking, else a new template is refused (``add`` says so).
    """

    def __init__(self, max_templates: int = 10_000, max_per_exporter: int | None = None) -> None:
        self._max_templates = max_templates
        self._max_per_exporter = max_per_exporter or max(1, max_templates // 10)
        self._by_domain: dict[DomainKey, dict[int, Template]] = {}
        # exporter -> its templates' keys, oldest learned (or redefined) first
        self._by_exporter: dict[str, OrderedDict[tuple[DomainKey, int], None]] = {}
        self._count = 0
        self.evicted = 0
        # bumped whenever a template is learned, redefined or withdrawn (not on a refresh), so
        # whatever callers derive from the cache can tell when it is stale
        self.generation = 0
        # each domain's generation at its last change: what callers derive from one domain's
        # templates stays valid while other exporters (or senders spoofing them) churn theirs
        self._generations: dict[DomainKey, int] = {}

    def __len__(self) -> int:
        return self._count

    def get(self, domain: DomainKey, template_id: int) -> Template | None:
        templates = self._by_domain.get(domain)
        return None if templates is None else templates.get(template_id)

    def of_domain(self, domain: DomainKey) -> Mapping[int, Template]:
        return self._by_domain.get(domain, _NO_TEMPLATES)

    def generation_of(self, domain: DomainKey) -> int:
        """The cache's generation at the domain's last change (-1: it holds no template); never
        repeats, even for a domain forgotten and learned again."""
        return self._generations.get(domain, -1)

    def _changed(self, domain: DomainKey) -> None:
        self.generation += 1
        if self._by_domain.get(domain):
            self._generations[domain] = self.generation
        else:  # the domain's last template went: forget the domain
            self._by_domain.pop(domain, None)
            self._generations.pop(domain, None)

    def add(self, domain: DomainKey, template: Template) -> bool:
        """Learn or redefine a template; False when the cache is full and it is new.

        A refresh (the same layout again, as exporters re-send every few seconds) keeps the
        cached object, so whatever is derived from it per template stays valid.
        """
        templates = self._by_domain.setdefault(domain, {})
        known = templates.get(template.template_id)
        if (
            known is not None
            and known.fields == template.fields
            and (known.scope_field_count == template.scope_field_count)
        ):
            return True
        order = self._by_exporter.setdefault(domain[0], OrderedDict())
        key = (domain, template.template_id)
        if known is None:
            if len(order) >= self._max_per_exporter:
                self._evict_oldest(order)
                # the evicted one may have been this domain's last: keep its (empty) dict listed
                templates = self._by_domain.setdefault(domain, templates)
            elif self._count >= self._max_templates and not self._take_from_the_largest(len(order)):
                if not templates:
                    del self._by_domain[domain]
                if not order:
                    del self._by_exporter[domain[0]]
                return False
            self._count += 1
        order[key] = None
        order.move_to_end(key)
        templates[template.template_id] = template
        self._changed(domain)
        return True

    def _take_from_the_largest(self, holding: int) -> bool:
        """The cache is full: evict the oldest template of the exporter holding the most, if it
        holds at least two more than the one asking (``holding``); so a few exporters (or
        senders spoofing them) filling the cache cannot leave another with no template at all."""
        largest = max(self._by_exporter.values(), key=len)
        if len(largest) < holding + 2:
            return False
        self._evict_oldest(largest)
        return True

    def _evict_oldest(self, order: OrderedDict[tuple[DomainKey, int], None]) -> None:
        (domain, template_id), _ = order.popitem(last=False)
        templates = self._by_domain[domain]
        del templates[template_id]
        self._count -= 1
        self.evicted += 1
        self._changed(domain)

    def _forget(self, domain: DomainKey, template_id: int) -> None:
        order = self._by_exporter.get(domain[0])
        if order is not None:
            order.pop((domain, template_id), None)
            if not order:
                del self._by_exporter[domain[0]]

    def withdraw(self, domain: DomainKey, template_id: int) -> bool:
        """Forget one template; False when it was not known."""
        templates = self._by_domain.get(domain)
        if templates is None or template_id not in templates:
            return False
        del templates[template_id]
        self._forget(domain, template_id)
        self._count -= 1
        self._changed(domain)
        return True

    def withdraw_all(self, domain: DomainKey, options: bool) -> int:
        """Forget all data (or all options) templates of a domain (IPFIX all-templates withdrawal)."""
        templates = self._by_domain.get(domain, {})
        doomed = [tid for tid, tpl in templates.items() if tpl.is_options == options]
        if not doomed:
            return 0  # nothing changed: nothing derived from the cache goes stale
        for template_id in doomed:
            del templates[template_id]
            self._forget(domain, template_id)
        self._count -= len(doomed)
        self._changed(domain)
        return len(doomed)
