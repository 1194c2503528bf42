"""sFlow v5 datagram decoder (sflow.org/sflow_version_5.txt): bytes in, typed records out.

Every length and count is checked against the bytes that remain before it is used, so a datagram
either decodes completely or raises :class:`SflowError` with a reason; nothing else escapes.
Unknown samples and records are skipped by their length. ``collector/sflow/_sflow_fast.c`` follows the
same walk, check for check, so both reject the same datagrams for the same reason.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any, Final

from topfib.collector.common.packet_header import format_mac, parse_header_fields
from topfib.collector.sflow.records import (
    REASON_BAD_ADDRESS_TYPE,
    REASON_BAD_VERSION,
    REASON_COUNT_OVERRUN,
    REASON_LENGTH_OVERRUN,
    REASON_TRUNCATED,
    CounterSample,
    DatagramHeader,
    DiscardSample,
    FlowSample,
    SflowDatagram,
    SflowError,
)

SFLOW_VERSION: Final = 5
ADDRESS_UNKNOWN: Final = 0
ADDRESS_IPV4: Final = 1
ADDRESS_IPV6: Final = 2

SAMPLE_FLOW: Final = 1
SAMPLE_COUNTER: Final = 2
SAMPLE_FLOW_EXPANDED: Final = 3
SAMPLE_COUNTER_EXPANDED: Final = 4
SAMPLE_DISCARD: Final = 5

RECORD_RAW_HEADER: Final = 1
RECORD_ETHERNET: Final = 2
RECORD_IPV4: Final = 3
RECORD_IPV6: Final = 4
RECORD_EXTENDED_SWITCH: Final = 1001
RECORD_EXTENDED_ROUTER: Final = 1002
RECORD_EXTENDED_GATEWAY: Final = 1003
RECORD_EGRESS_QUEUE: Final = 1036
RECORD_EXTENDED_ACL: Final = 1037
RECORD_EXTENDED_FUNCTION: Final = 1038

_DROP_RECORD_FIELDS: Final = ("egress_queue", "acl_number", "acl_name", "acl_direction", "function_symbol")

_U32: Final = struct.Struct("!I")
_COMPACT_FLOW: Final = struct.Struct("!8I")  # seq, source id, rate, pool, drops, input, output, records
_EXPANDED_FLOW: Final = struct.Struct("!11I")
_COMPACT_COUNTER: Final = struct.Struct("!3I")
_EXPANDED_COUNTER: Final = struct.Struct("!4I")
_DISCARD: Final = struct.Struct("!8I")


class _Reader:
    """A cursor over ``data[offset:end]`` whose reads are bounds-checked first."""

    __slots__ = ("data", "end", "offset")

    def __init__(self, data: bytes, offset: int, end: int) -> None:
        self.data = data
        self.offset = offset
        self.end = end

    @property
    def remaining(self) -> int:
        return self.end - self.offset

    def need(self, size: int, what: str) -> None:
        if self.remaining < size:
            raise SflowError(REASON_TRUNCATED, f"{what} needs {size} bytes, {self.remaining} left")

    def u32(self, what: str) -> int:
        offset = self.offset
        if self.end - offset < 4:
            raise SflowError(REASON_TRUNCATED, f"{what} needs 4 bytes, {self.end - offset} left")
        self.offset = offset + 4
        return int(_U32.unpack_from(self.data, offset)[0])

    def unpack(self, layout: struct.Struct, what: str) -> tuple[int, ...]:
        self.need(layout.size, what)
        values = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return tuple(values)

    def take(self, size: int, what: str) -> bytes:
        self.need(size, what)
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def sub(self, length: int, what: str) -> _Reader:
        """A reader over the next ``length`` bytes (a length-prefixed element), skipping them here."""
        if length > self.remaining:
            raise SflowError(REASON_LENGTH_OVERRUN, f"{what} length {length}, {self.remaining} left")
        inner = _Reader(self.data, self.offset, self.offset + length)
        self.offset += length
        return inner

    def count(self, item_size: int, what: str) -> int:
        """Read a count and check the remaining bytes can hold that many items before looping."""
        value = self.u32(what)
        if value * item_size > self.remaining:
            raise SflowError(REASON_COUNT_OVERRUN, f"{value} {what} cannot fit in {self.remaining} bytes")
        return value

    def opaque(self, what: str) -> bytes:
        """A length-prefixed byte string; its XDR padding is skipped when present."""
        length = self.u32(what)
        if length > self.remaining:
            raise SflowError(REASON_LENGTH_OVERRUN, f"{what} length {length}, {self.remaining} left")
        chunk = self.data[self.offset : self.offset + length]
        self.offset = min(self.offset + ((length + 3) & ~3), self.end)
        return chunk

    def string(self, what: str) -> str:
        return self.opaque(what).decode("utf-8", "replace")


def _address(reader: _Reader, what: str, allow_unknown: bool) -> str | None:
    address_type = reader.u32(what)
    if address_type == ADDRESS_IPV4:
        return socket.inet_ntop(socket.AF_INET, reader.take(4, what))
    if address_type == ADDRESS_IPV6:
        return socket.inet_ntop(socket.AF_INET6, reader.take(16, what))
    if address_type == ADDRESS_UNKNOWN and allow_unknown:
        return None
    raise SflowError(REASON_BAD_ADDRESS_TYPE, f"{what} address type {address_type}")


def _format_name(data_format: int) -> str:
    return f"{data_format >> 12}:{data_format & 0xFFF}"


def peek_agent(data: bytes) -> str | None:
    """The agent address of a datagram whose header starts well, even if the rest is malformed."""
    reader = _Reader(data, 0, len(data))
    try:
        if reader.u32("version") != SFLOW_VERSION:
            return None
        return _address(reader, "agent", allow_unknown=False)
    except SflowError:
        return None


def decode_datagram(data: bytes) -> SflowDatagram:
    """Decode one sFlow v5 UDP payload, or raise :class:`SflowError`."""
    reader = _Reader(data, 0, len(data))
    version = reader.u32("version")
    if version != SFLOW_VERSION:
        raise SflowError(REASON_BAD_VERSION, f"version {version}")
    agent = _address(reader, "agent", allow_unknown=False)
    assert agent is not None
    sub_agent = reader.u32("sub-agent id")
    sequence = reader.u32("sequence")
    uptime_ms = reader.u32("uptime")
    sample_count = reader.count(8, "samples")
    header = DatagramHeader(agent, sub_agent, sequence, uptime_ms, sample_count)

    flows: list[FlowSample] = []
    counters: list[CounterSample] = []
    discards: list[DiscardSample] = []
    skipped = 0
    length_mismatch = False
    for index in range(sample_count):
        sample_format = reader.u32("sample format")
        sample_length = reader.u32("sample length")
        if index == sample_count - 1 and sample_length != reader.remaining:
            # Some agents (and the gopacket test datagrams) misstate the last sample's length;
            # the datagram's end bounds it just as safely, and its records are still checked.
            sample_length = reader.remaining
            length_mismatch = True
        body = reader.sub(sample_length, "sample")
        if sample_format in (SAMPLE_FLOW, SAMPLE_FLOW_EXPANDED):
            flows.append(_flow_sample(body, header, sample_format == SAMPLE_FLOW_EXPANDED))
        elif sample_format in (SAMPLE_COUNTER, SAMPLE_COUNTER_EXPANDED):
            counters.append(_counter_sample(body, sample_format == SAMPLE_COUNTER_EXPANDED))
        elif sample_format == SAMPLE_DISCARD:
            discards.append(_discard_sample(body))
        else:
            skipped += 1
    return SflowDatagram(header, tuple(flows), tuple(counters), tuple(discards), skipped, length_mismatch)


def _records(body: _Reader) -> Iterator[tuple[int, _Reader]]:
    """The (format, reader) of each record of a sample, each length checked as it is reached.

    Lazy on purpose: a record's contents are decoded before the next record's header is read,
    the order the C fast path follows, so both report the same first error.
    """
    count = body.count(8, "records")
    for _ in range(count):
        record_format = body.u32("record format")
        yield record_format, body.sub(body.u32("record length"), "record")


def _flow_sample(body: _Reader, header: DatagramHeader, expanded: bool) -> FlowSample:
    if expanded:
        (seq, source_type, source_index, rate, pool, drops, in_format, in_value, out_format, out_value, _) = (
            body.unpack(_EXPANDED_FLOW, "expanded flow sample")
        )
    else:
        seq, source_id, rate, pool, drops, input_if, output_if, _ = body.unpack(_COMPACT_FLOW, "flow sample")
        source_type, source_index = source_id >> 24, source_id & 0xFFFFFF
        in_format, in_value = input_if >> 30, input_if & 0x3FFFFFFF
        out_format, out_value = output_if >> 30, output_if & 0x3FFFFFFF
    body.offset -= 4  # the record count is the last field of both layouts; _records reads it
    fields: dict[str, Any] = {}
    names: list[str] = []
    for record_format, record in _records(body):
        names.append(_format_name(record_format))
        _flow_record(record_format, record, fields)
    if "frame_length" not in fields and "fallback_frame_length" in fields:
        fields["frame_length"] = fields["fallback_frame_length"]
    fields.pop("fallback_frame_length", None)
    for name in _DROP_RECORD_FIELDS:  # drop records in a flow sample: valid, but not ours to report
        fields.pop(name, None)
    return FlowSample(
        agent=header.agent,
        sub_agent=header.sub_agent,
        datagram_sequence=header.sequence,
        sequence=seq,
        expanded=expanded,
        source_id_type=source_type,
        source_id_index=source_index,
        sampling_rate=rate,
        sample_pool=pool,
        drops=drops,
        input_format=in_format,
        input_if=in_value,
        output_format=out_format,
        output_if=out_value,
        records=tuple(names),
        **fields,
    )


def _flow_record(record_format: int, record: _Reader, fields: dict[str, Any]) -> None:
    """Decode one flow (or discard) record into ``fields``; unknown formats are left alone.

    The first record that yields IP addresses supplies the packet fields; later ones are checked
    for validity but not merged, so one sample always describes one packet.
    """
    have_addresses = "dst" in fields
    if record_format == RECORD_RAW_HEADER:
        header_protocol, frame_length, stripped = record.unpack(_COMPACT_COUNTER, "raw packet header")
        header = record.opaque("sampled header")
        if have_addresses:
            return
        packet = parse_header_fields(header_protocol, header)
        fields.setdefault("fallback_frame_length", frame_length)
        fields.update(header_protocol=header_protocol, header_length=len(header), stripped=stripped)
        if "dst" in packet:
            fields["frame_length"] = frame_length
        fields.update(packet)
    elif record_format == RECORD_ETHERNET:
        length, src_mac, dst_mac, ethertype = _ethernet(record)
        fields.setdefault("fallback_frame_length", length)
        fields.setdefault("src_mac", src_mac)
        fields.setdefault("dst_mac", dst_mac)
        fields.setdefault("ethertype", ethertype)
    elif record_format in (RECORD_IPV4, RECORD_IPV6):
        _sampled_ip(record, record_format == RECORD_IPV6, fields, have_addresses)
    elif record_format == RECORD_EXTENDED_SWITCH:
        src_vlan, src_priority, dst_vlan, dst_priority = record.unpack(_EXPANDED_COUNTER, "extended switch")
        fields.update(
            src_vlan=src_vlan, src_priority=src_priority, dst_vlan=dst_vlan, dst_priority=dst_priority
        )
    elif record_format == RECORD_EXTENDED_ROUTER:
        next_hop = _address(record, "router next hop", allow_unknown=True)
        src_mask, dst_mask = record.u32("source mask"), record.u32("destination mask")
        fields.update(next_hop=next_hop, src_mask=src_mask, dst_mask=dst_mask)
    elif record_format == RECORD_EXTENDED_GATEWAY:
        _gateway(record, fields)
    elif record_format == RECORD_EGRESS_QUEUE:
        fields["egress_queue"] = record.u32("egress queue")
    elif record_format == RECORD_EXTENDED_ACL:
        fields.update(
            acl_number=record.u32("acl number"), acl_name=record.string("acl name"),
            acl_direction=record.u32("acl direction"),
        )  # fmt: skip
    elif record_format == RECORD_EXTENDED_FUNCTION:
        fields["function_symbol"] = record.string("function symbol")


def _ethernet(record: _Reader) -> tuple[int, str, str, int]:
    length = record.u32("ethernet length")
    src_mac = format_mac(record.take(8, "source mac")[:6])
    dst_mac = format_mac(record.take(8, "destination mac")[:6])
    return length, src_mac, dst_mac, record.u32("ethernet type")


def _sampled_ip(record: _Reader, ipv6: bool, fields: dict[str, Any], have_addresses: bool) -> None:
    family, size = (socket.AF_INET6, 16) if ipv6 else (socket.AF_INET, 4)
    record.need(8 + 2 * size + 16, "sampled IP")
    length, protocol = record.u32("length"), record.u32("protocol")
    src = socket.inet_ntop(family, record.take(size, "source"))
    dst = socket.inet_ntop(family, record.take(size, "destination"))
    src_port, dst_port, tcp_flags, tos = (record.u32("ports") for _ in range(4))
    if have_addresses:
        return
    fields.update(
        frame_length=length, ip_length=length, protocol=protocol, src=src, dst=dst,
        src_port=src_port, dst_port=dst_port, tcp_flags=tcp_flags, tos=tos,
    )  # fmt: skip


def _gateway(record: _Reader, fields: dict[str, Any]) -> None:
    bgp_next_hop = _address(record, "gateway next hop", allow_unknown=True)
    as_number, src_as, src_peer_as = (record.u32("gateway AS") for _ in range(3))
    path: list[int] = []
    for _ in range(record.count(8, "AS path segments")):
        record.u32("segment type")
        path.extend(record.u32("AS") for _ in range(record.count(4, "AS path length")))
    communities = tuple(record.u32("community") for _ in range(record.count(4, "communities")))
    local_pref = record.u32("local preference")
    fields.update(
        bgp_next_hop=bgp_next_hop, as_number=as_number, src_as=src_as, src_peer_as=src_peer_as,
        dst_as_path=tuple(path), communities=communities, local_pref=local_pref,
    )  # fmt: skip


def _counter_sample(body: _Reader, expanded: bool) -> CounterSample:
    if expanded:
        seq, source_type, source_index, _ = body.unpack(_EXPANDED_COUNTER, "expanded counter sample")
    else:
        seq, source_id, _ = body.unpack(_COMPACT_COUNTER, "counter sample")
        source_type, source_index = source_id >> 24, source_id & 0xFFFFFF
    body.offset -= 4
    names = tuple(_format_name(record_format) for record_format, _ in _records(body))
    return CounterSample(seq, source_type, source_index, names)


def _discard_sample(body: _Reader) -> DiscardSample:
    seq, source_type, source_index, drops, input_if, output_if, reason, _ = body.unpack(_DISCARD, "discard")
    body.offset -= 4
    fields: dict[str, Any] = {}
    names: list[str] = []
    for record_format, record in _records(body):
        names.append(_format_name(record_format))
        _flow_record(record_format, record, fields)
    return DiscardSample(
        seq, source_type, source_index, drops, input_if, output_if, reason, tuple(names),
        **{name: fields[name] for name in _DROP_RECORD_FIELDS if name in fields},
    )  # fmt: skip
