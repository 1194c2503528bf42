"""What NetFlow v9 and IPFIX messages have in common: a header, then sets framed by (id, length).

Both versions frame their payload as sets of ``set id (2) | set length (2, header included)``;
they differ in the header, the set ids of template sets and the template record formats, which
``topfib.collector.netflow.v9`` and ``topfib.collector.netflow.ipfix`` parse into the types here.
"""

from __future__ import annotations

from dataclasses import dataclass

from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.templates import Template

SET_HEADER_LENGTH = 4
MIN_DATA_SET_ID = 256


@dataclass(frozen=True, slots=True)
class MessageHeader:
    version: int
    observation_domain: int  # v9 source id / IPFIX observation domain id
    sequence: int
    export_time_s: int
    sys_uptime_ms: int | None  # v9 only


@dataclass(frozen=True, slots=True)
class SetSpan:
    """One set: its id and the byte range of its body (after the 4-byte set header)."""

    set_id: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """IPFIX template withdrawal: one template id, or all data/options templates of the domain."""

    template_id: int | None  # None: all of the kind below
    options: bool


TemplateEvent = Template | Withdrawal


def frame_sets(payload: bytes, start: int, end: int) -> list[SetSpan]:
    """Split ``payload[start:end]`` into sets, checking every length against what is left.

    Fewer than 4 trailing bytes, or an all-zero tail, are tolerated as padding (some v9
    exporters, e.g. Cisco ACI, pad the datagram to a fixed size).
    """
    spans: list[SetSpan] = []
    pos = start
    while end - pos >= SET_HEADER_LENGTH:
        set_id = int.from_bytes(payload[pos : pos + 2], "big")
        length = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        if length < SET_HEADER_LENGTH:
            if not any(payload[pos:end]):
                break
            raise FlowDecodeError("set-length", f"set {set_id} claims {length} bytes")
        if pos + length > end:
            raise FlowDecodeError("set-overflow", f"set {set_id} claims {length} bytes, {end - pos} left")
        spans.append(SetSpan(set_id, pos + SET_HEADER_LENGTH, pos + length))
        pos += length
    return spans
