"""NetFlow v9 (RFC 3954) message parsing: the header, and template / options template sets.

Packet header (20 bytes)::

    | Version = 9 (16) | Count (16) | sysUpTime ms (32) | UNIX Secs (32) |
    | Package Sequence (32) | Source ID (32) |

Template FlowSet (id 0) records: ``template id | field count | (type, length) × count``.
Options Template FlowSet (id 1) records: ``template id | scope length | option length |
(scope type, length) … | (type, length) …`` with lengths in bytes, then padding to 4 bytes.
"""

from __future__ import annotations

from typing import Final

from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.message import MIN_DATA_SET_ID, MessageHeader, TemplateEvent
from topfib.collector.netflow.templates import FieldSpec, Template, check_field_count

NETFLOW_V9_VERSION: Final = 9
HEADER_LENGTH: Final = 20
TEMPLATE_SET_ID: Final = 0
OPTIONS_TEMPLATE_SET_ID: Final = 1


def parse_header(payload: bytes) -> MessageHeader:
    if len(payload) < HEADER_LENGTH:
        raise FlowDecodeError("short-header", f"{len(payload)} bytes")
    return MessageHeader(
        version=NETFLOW_V9_VERSION,
        sys_uptime_ms=int.from_bytes(payload[4:8], "big"),
        export_time_s=int.from_bytes(payload[8:12], "big"),
        sequence=int.from_bytes(payload[12:16], "big"),
        observation_domain=int.from_bytes(payload[16:20], "big"),
    )


def _is_padding(payload: bytes, start: int, end: int) -> bool:
    return not any(payload[start:end])


def parse_template_set(payload: bytes, start: int, end: int) -> list[TemplateEvent]:
    events: list[TemplateEvent] = []
    pos = start
    while end - pos >= 4:
        template_id = int.from_bytes(payload[pos : pos + 2], "big")
        field_count = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        if template_id < MIN_DATA_SET_ID:
            if _is_padding(payload, pos, end):
                break
            raise FlowDecodeError("template-id", f"template id {template_id} < 256")
        if field_count * 4 > end - pos - 4:
            raise FlowDecodeError("template-overflow", f"template {template_id}: {field_count} fields")
        check_field_count(template_id, field_count)
        fields = _field_specifiers(payload, pos + 4, field_count)
        events.append(Template(template_id, fields))
        pos += 4 + field_count * 4
    return events


def parse_options_template_set(payload: bytes, start: int, end: int) -> list[TemplateEvent]:
    events: list[TemplateEvent] = []
    pos = start
    while end - pos >= 6:
        template_id = int.from_bytes(payload[pos : pos + 2], "big")
        scope_length = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        option_length = int.from_bytes(payload[pos + 4 : pos + 6], "big")
        if template_id < MIN_DATA_SET_ID:
            if _is_padding(payload, pos, end):
                break
            raise FlowDecodeError("template-id", f"options template id {template_id} < 256")
        if scope_length % 4 or option_length % 4 or scope_length == 0:
            detail = f"options template {template_id}: scope {scope_length}, options {option_length}"
            raise FlowDecodeError("scope-count", detail)
        if scope_length + option_length > end - pos - 6:
            raise FlowDecodeError("template-overflow", f"options template {template_id} past set end")
        scope_count = scope_length // 4
        check_field_count(template_id, scope_count + option_length // 4)
        fields = _field_specifiers(payload, pos + 6, scope_count + option_length // 4)
        events.append(Template(template_id, fields, scope_field_count=scope_count, scope_is_element=False))
        pos += 6 + scope_length + option_length
    return events


def _field_specifiers(payload: bytes, pos: int, count: int) -> tuple[FieldSpec, ...]:
    """``count`` (type, length) pairs at ``pos``; the caller has checked they fit."""
    return tuple(
        FieldSpec(
            int.from_bytes(payload[at : at + 2], "big"),
            int.from_bytes(payload[at + 2 : at + 4], "big"),
        )
        for at in range(pos, pos + count * 4, 4)
    )
