"""IPFIX (RFC 7011) message parsing: the header, and template / options template sets.

Message header (16 bytes)::

     0                   1                   2                   3
    |       Version = 0x000a        |        Length (whole msg)     |
    |                           Export Time                         |
    |                       Sequence Number                         |
    |                    Observation Domain ID                      |

Field specifier: ``E | element id (15) | length (16) [| enterprise number (32) if E]``.
A template record with field count 0 withdraws that template; template id 2 (3) with field
count 0 withdraws all data (options) templates of the domain (§8.1).
"""

from __future__ import annotations

from typing import Final

from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.message import MIN_DATA_SET_ID, MessageHeader, TemplateEvent, Withdrawal
from topfib.collector.netflow.templates import IANA, FieldSpec, Template, check_field_count

IPFIX_VERSION: Final = 10
HEADER_LENGTH: Final = 16
TEMPLATE_SET_ID: Final = 2
OPTIONS_TEMPLATE_SET_ID: Final = 3
ENTERPRISE_BIT: Final = 0x8000


def parse_header(payload: bytes) -> tuple[MessageHeader, int]:
    """The header and the message length (the end of its sets)."""
    if len(payload) < HEADER_LENGTH:
        raise FlowDecodeError("short-header", f"{len(payload)} bytes")
    length = int.from_bytes(payload[2:4], "big")
    if length < HEADER_LENGTH or length > len(payload):
        raise FlowDecodeError("message-length", f"header says {length}, datagram has {len(payload)}")
    header = MessageHeader(
        version=IPFIX_VERSION,
        export_time_s=int.from_bytes(payload[4:8], "big"),
        sequence=int.from_bytes(payload[8:12], "big"),
        observation_domain=int.from_bytes(payload[12:16], "big"),
        sys_uptime_ms=None,
    )
    return header, length


def parse_template_set(payload: bytes, start: int, end: int, options: bool) -> list[TemplateEvent]:
    """Template records (or options template records) of one set, withdrawals included."""
    events: list[TemplateEvent] = []
    record_header = 6 if options else 4
    pos = start
    while end - pos >= 4:
        template_id = int.from_bytes(payload[pos : pos + 2], "big")
        field_count = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        if field_count == 0:
            all_kind = template_id == (OPTIONS_TEMPLATE_SET_ID if options else TEMPLATE_SET_ID)
            if not all_kind and template_id < MIN_DATA_SET_ID:
                raise FlowDecodeError("template-id", f"withdrawal of template {template_id}")
            events.append(Withdrawal(None if all_kind else template_id, options))
            pos += 4
            continue
        if template_id < MIN_DATA_SET_ID:
            raise FlowDecodeError("template-id", f"template id {template_id} < 256")
        if end - pos < record_header:
            raise FlowDecodeError("template-overflow", f"template {template_id} header past set end")
        scope_count = int.from_bytes(payload[pos + 4 : pos + 6], "big") if options else 0
        if options and not 0 < scope_count <= field_count:
            raise FlowDecodeError("scope-count", f"template {template_id}: {scope_count}/{field_count}")
        # each specifier takes at least 4 bytes: check before building anything
        if field_count * 4 > end - pos - record_header:
            raise FlowDecodeError("template-overflow", f"template {template_id}: {field_count} fields")
        check_field_count(template_id, field_count)
        fields, pos = _field_specifiers(payload, pos + record_header, end, field_count, template_id)
        events.append(Template(template_id, fields, scope_field_count=scope_count))
    return events


def _field_specifiers(
    payload: bytes, pos: int, end: int, count: int, template_id: int
) -> tuple[tuple[FieldSpec, ...], int]:
    fields: list[FieldSpec] = []
    for _ in range(count):
        if end - pos < 4:
            raise FlowDecodeError("template-overflow", f"template {template_id} field past set end")
        element = int.from_bytes(payload[pos : pos + 2], "big")
        length = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        pos += 4
        enterprise = IANA
        if element & ENTERPRISE_BIT:
            if end - pos < 4:
                raise FlowDecodeError("template-overflow", f"template {template_id} enterprise number")
            enterprise = int.from_bytes(payload[pos : pos + 4], "big")
            element &= ~ENTERPRISE_BIT
            pos += 4
        fields.append(FieldSpec(element, length, enterprise))
    return tuple(fields), pos
