"""From NetFlow v9 / IPFIX information elements (IANA numbers, RFC 7012 / RFC 3954) to a FlowRecord.

A :class:`FlowRecord` is one decoded flow record, in the shape the sFlow decoder uses: ``bytes``
and ``packets`` as the exporter reported them, ``sampling_rate`` the rate in force for the record
(from the v5 header, the record itself or the exporter's sampler options; 1 when unknown), so
accounting scales by it as it does for sFlow. Times are Unix milliseconds; field names follow
the sFlow ``FlowSample`` (``src``, ``dst``, ``next_hop``…).

Integers may arrive in fewer bytes than their nominal size (RFC 7011 §6.2 reduced-size encoding),
so every integer is read with ``int.from_bytes`` whatever its length. Where several elements can
carry one quantity (ingress/egress counters, IPFIX time formats), the first present one wins in
the order listed. An element a template lists twice (tunnel then inner header, IOS XR) keeps its
last, inner, value.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import asdict, dataclass, replace
from typing import Final

from topfib.collector.common.packet_header import (
    HEADER_PROTOCOL_ETHERNET,
    HEADER_PROTOCOL_IPV4,
    HEADER_PROTOCOL_IPV6,
    VLAN_ETHERTYPES,
    PacketSummary,
    parse_header,
)

OCTET_DELTA: Final = 1
PACKET_DELTA: Final = 2
PROTOCOL: Final = 4
TOS: Final = 5
TCP_FLAGS: Final = 6
SRC_PORT: Final = 7
SRC_IPV4: Final = 8
SRC_MASK_V4: Final = 9
INPUT_IF: Final = 10
DST_PORT: Final = 11
DST_IPV4: Final = 12
DST_MASK_V4: Final = 13
OUTPUT_IF: Final = 14
IP_NEXT_HOP_V4: Final = 15
SRC_AS: Final = 16
DST_AS: Final = 17
BGP_NEXT_HOP_V4: Final = 18
END_SYSUPTIME: Final = 21
START_SYSUPTIME: Final = 22
POST_OCTET_DELTA: Final = 23
POST_PACKET_DELTA: Final = 24
SRC_IPV6: Final = 27
DST_IPV6: Final = 28
SRC_MASK_V6: Final = 29
DST_MASK_V6: Final = 30
SAMPLING_INTERVAL: Final = 34
SAMPLER_ID: Final = 48
SAMPLER_RANDOM_INTERVAL: Final = 50
SRC_VLAN: Final = 58
DST_VLAN: Final = 59
IP_NEXT_HOP_V6: Final = 62
BGP_NEXT_HOP_V6: Final = 63
OCTET_TOTAL: Final = 85
PACKET_TOTAL: Final = 86
START_SECONDS: Final = 150
END_SECONDS: Final = 151
START_MILLISECONDS: Final = 152
END_MILLISECONDS: Final = 153
START_MICROSECONDS: Final = 154
END_MICROSECONDS: Final = 155
START_NANOSECONDS: Final = 156
END_NANOSECONDS: Final = 157
START_DELTA_MICROSECONDS: Final = 158
END_DELTA_MICROSECONDS: Final = 159
SYSTEM_INIT_MILLISECONDS: Final = 160
INITIATOR_OCTETS: Final = 231  # Cisco ASA NSEL forward bytes
DOT1Q_VLAN: Final = 243
INPUT_PHYSICAL_IF: Final = 252
OUTPUT_PHYSICAL_IF: Final = 253
POST_DOT1Q_VLAN: Final = 254
INITIATOR_PACKETS: Final = 298
SELECTOR_ID: Final = 302
SAMPLING_PACKET_INTERVAL: Final = 305
SAMPLING_PACKET_SPACE: Final = 306
SAMPLING_SIZE: Final = 309
SAMPLING_POPULATION: Final = 310
SAMPLING_PROBABILITY: Final = 311
# packet sections (RFC 7133): the sampled packet's first bytes instead of address and port fields.
# The sFlow header parser reads them; here we only add MPLS, which sFlow's header records rarely
# carry: labels are skipped to the bottom of the stack, then the payload is IPv4, IPv6, or (after
# a pseudowire control word) an Ethernet frame.
DATALINK_FRAME_SIZE: Final = 312
IP_HEADER_SECTION: Final = 313
DATALINK_FRAME_SECTION: Final = 315
MPLS_ETHERTYPES: Final = frozenset((0x8847, 0x8848))
MAX_MPLS_LABELS: Final = 16  # bounded walk; real stacks are a handful deep

NTP_TO_UNIX_SECONDS: Final = 2_208_988_800  # dateTimeMicro/Nanoseconds are NTP timestamps (RFC 7011 §6.1.9)


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One decoded NetFlow v5/v9 or IPFIX flow record (see the module docstring)."""

    exporter: str  # UDP source of the datagram
    version: int  # 5, 9 or 10 (IPFIX)
    observation_domain: int  # v9 source id / IPFIX observation domain id (0 for v5: engine type/id)
    sequence: int  # header sequence number (v9: packets, v5/IPFIX: flows)
    sampling_rate: int
    input_if: int | None = None
    output_if: int | None = None
    bytes: int = 0
    packets: int = 0
    src: str | None = None
    dst: str | None = None
    protocol: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    src_vlan: int | None = None
    dst_vlan: int | None = None
    next_hop: str | None = None
    bgp_next_hop: str | None = None
    src_as: int | None = None
    dst_as: int | None = None
    src_mask: int | None = None
    dst_mask: int | None = None
    tcp_flags: int | None = None
    tos: int | None = None
    flow_start_ms: int | None = None
    flow_end_ms: int | None = None

    def to_json(self) -> dict[str, object]:
        """The record as a JSON-ready dict (``None`` fields included, so every line has every key)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RecordContext:
    """What a data record inherits from its message header and its exporter's options."""

    exporter: str
    version: int
    observation_domain: int
    sequence: int
    export_time_s: int  # header Unix seconds
    sys_uptime_ms: int | None  # v9 header uptime; None for IPFIX
    system_init_ms: int | None  # IPFIX systemInitTimeMilliseconds learned from options, if any


def to_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _first_int(values: dict[int, bytes], *elements: int) -> int | None:
    for element in elements:
        raw = values.get(element)
        if raw is not None:
            return to_int(raw)
    return None


def _address(values: dict[int, bytes], v4: int, v6: int) -> str | None:
    """The IPv4 or IPv6 element, whichever is set: dual-stack templates (IOS XR) carry both,
    the other family zeroed."""
    raw4 = values.get(v4)
    raw4 = raw4 if raw4 is not None and len(raw4) == 4 else None
    raw6 = values.get(v6)
    raw6 = raw6 if raw6 is not None and len(raw6) == 16 else None
    if raw6 is not None and (raw4 is None or (not any(raw4) and any(raw6))):
        return str(ipaddress.IPv6Address(raw6))
    return None if raw4 is None else str(ipaddress.IPv4Address(raw4))


def uptime_ago_ms(now_uptime_ms: int, then_uptime_ms: int) -> int:
    """How long before ``now`` an uptime stamp was; uptimes wrap at 2^32 ms (~49.7 days)."""
    ago = (now_uptime_ms - then_uptime_ms) & 0xFFFFFFFF
    return ago - 0x100000000 if ago >= 0x80000000 else ago


def _uptime_to_unix_ms(uptime_ms: int, context: RecordContext, system_init_ms: int | None) -> int | None:
    if system_init_ms is not None:
        return system_init_ms + uptime_ms
    if context.sys_uptime_ms is not None:
        return context.export_time_s * 1000 - uptime_ago_ms(context.sys_uptime_ms, uptime_ms)
    return None


def _ntp_to_unix_ms(raw: bytes) -> int | None:
    if len(raw) != 8:
        return None
    seconds, fraction = to_int(raw[:4]), to_int(raw[4:])
    return (seconds - NTP_TO_UNIX_SECONDS) * 1000 + (fraction * 1000 >> 32)


def _time_ms(values: dict[int, bytes], context: RecordContext, start: bool) -> int | None:
    """Flow start (or end) in Unix ms from whichever time element the template carries."""
    seconds, millis, micros, nanos, delta, uptime = (
        (START_SECONDS, START_MILLISECONDS, START_MICROSECONDS, START_NANOSECONDS,
         START_DELTA_MICROSECONDS, START_SYSUPTIME)
        if start
        else (END_SECONDS, END_MILLISECONDS, END_MICROSECONDS, END_NANOSECONDS,
              END_DELTA_MICROSECONDS, END_SYSUPTIME)
    )
    if (raw := values.get(millis)) is not None:
        return to_int(raw)
    if (raw := values.get(seconds)) is not None:
        return to_int(raw) * 1000
    for element in (micros, nanos):
        if (raw := values.get(element)) is not None:
            return _ntp_to_unix_ms(raw)
    if (raw := values.get(delta)) is not None:
        return context.export_time_s * 1000 - to_int(raw) // 1000
    if (raw := values.get(uptime)) is not None:
        system_init = _first_int(values, SYSTEM_INIT_MILLISECONDS)
        return _uptime_to_unix_ms(to_int(raw), context, system_init or context.system_init_ms)
    return None


def record_sampling_rate(values: dict[int, bytes]) -> int | None:
    """The sampling rate a record (data or options) states itself, if any (1 in N packets)."""
    interval = _first_int(values, SAMPLING_INTERVAL, SAMPLER_RANDOM_INTERVAL)
    if interval:
        return interval
    size = _first_int(values, SAMPLING_SIZE)
    population = _first_int(values, SAMPLING_POPULATION)
    if size and population:
        # random n-out-of-N sampling (RFC 5475 §6.1): n = samplingSize, N = samplingPopulation
        return max(1, round(population / size))
    packet_interval = _first_int(values, SAMPLING_PACKET_INTERVAL)
    packet_space = _first_int(values, SAMPLING_PACKET_SPACE)
    if packet_interval and packet_space is not None:
        # systematic count-based sampling (RFC 5476): select `interval` packets, skip `space`
        return max(1, round((packet_interval + packet_space) / packet_interval))
    probability = values.get(SAMPLING_PROBABILITY)
    if probability is not None and len(probability) == 8:
        chance: float = struct.unpack("!d", probability)[0]
        if 0.0 < chance <= 1.0:
            return max(1, round(1 / chance))
    return None


def record_sampler_id(values: dict[int, bytes]) -> int:
    """The sampler a record refers to; 0 (exporter-wide) when it names none."""
    return _first_int(values, SAMPLER_ID, SELECTOR_ID) or 0


def build_flow_record(values: dict[int, bytes], context: RecordContext, sampling_rate: int) -> FlowRecord:
    """One FlowRecord from the IANA element values of a data record."""
    record = _fields_record(values, context, sampling_rate)
    if record.src is None and record.dst is None:
        section = _summarise_section(values)
        if section is not None:
            return _section_record(record, section, values)
    return record


def _section_record(record: FlowRecord, section: PacketSummary, values: dict[int, bytes]) -> FlowRecord:
    """A packet-section record: one sampled packet, described by its own headers."""
    return replace(
        record,
        bytes=record.bytes or _first_int(values, DATALINK_FRAME_SIZE) or section.ip_length or 0,
        packets=record.packets or 1,
        src=section.src,
        dst=section.dst,
        protocol=section.protocol,
        src_port=section.src_port,
        dst_port=section.dst_port,
        src_vlan=record.src_vlan if record.src_vlan is not None else section.vlan,
        tcp_flags=section.tcp_flags,
        tos=section.tos,
    )


def _summarise_section(values: dict[int, bytes]) -> PacketSummary | None:
    """What the record's packet section says (RFC 7133; Juniper, IOS XR "packet sampling", EoMPLS
    pseudowires), or None when it has none."""
    frame = values.get(DATALINK_FRAME_SECTION)
    if frame is not None:
        return _summarise_frame(frame)
    packet = values.get(IP_HEADER_SECTION)
    if packet is not None:
        return _summarise_ip(packet)
    return None


def _summarise_ip(packet: bytes) -> PacketSummary:
    version = packet[0] >> 4 if packet else 0
    return parse_header(HEADER_PROTOCOL_IPV6 if version == 6 else HEADER_PROTOCOL_IPV4, packet)


def _summarise_frame(frame: bytes) -> PacketSummary:
    offset = 12
    ethertype = int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
    while ethertype in VLAN_ETHERTYPES and offset + 6 <= len(frame):
        offset += 4
        ethertype = int.from_bytes(frame[offset : offset + 2], "big")
    if ethertype not in MPLS_ETHERTYPES:
        return parse_header(HEADER_PROTOCOL_ETHERNET, frame)
    outer = parse_header(HEADER_PROTOCOL_ETHERNET, frame)  # MACs and VLAN of the outer frame
    inner = _summarise_mpls(frame, offset + 2)
    inner.src_mac = inner.src_mac or outer.src_mac
    inner.dst_mac = inner.dst_mac or outer.dst_mac
    inner.vlan = inner.vlan if inner.vlan is not None else outer.vlan
    return inner


def _summarise_mpls(frame: bytes, offset: int) -> PacketSummary:
    for _ in range(MAX_MPLS_LABELS):
        if offset + 4 > len(frame):
            return PacketSummary()
        bottom = frame[offset + 2] & 0x01
        offset += 4
        if bottom:
            break
    else:
        return PacketSummary()
    payload = frame[offset:]
    nibble = payload[0] >> 4 if payload else -1
    if nibble in (4, 6):
        return _summarise_ip(payload)
    if nibble == 0:  # pseudowire control word (RFC 4385), then the customer's Ethernet frame
        return parse_header(HEADER_PROTOCOL_ETHERNET, payload[4:])
    return PacketSummary()


def _fields_record(values: dict[int, bytes], context: RecordContext, sampling_rate: int) -> FlowRecord:
    return FlowRecord(
        exporter=context.exporter,
        version=context.version,
        observation_domain=context.observation_domain,
        sequence=context.sequence,
        sampling_rate=sampling_rate,
        input_if=_first_int(values, INPUT_IF, INPUT_PHYSICAL_IF),
        output_if=_first_int(values, OUTPUT_IF, OUTPUT_PHYSICAL_IF),
        bytes=_first_int(values, OCTET_DELTA, POST_OCTET_DELTA, INITIATOR_OCTETS, OCTET_TOTAL) or 0,
        packets=_first_int(values, PACKET_DELTA, POST_PACKET_DELTA, INITIATOR_PACKETS, PACKET_TOTAL) or 0,
        src=_address(values, SRC_IPV4, SRC_IPV6),
        dst=_address(values, DST_IPV4, DST_IPV6),
        protocol=_first_int(values, PROTOCOL),
        src_port=_first_int(values, SRC_PORT),
        dst_port=_first_int(values, DST_PORT),
        src_vlan=_first_int(values, SRC_VLAN, DOT1Q_VLAN),
        dst_vlan=_first_int(values, DST_VLAN, POST_DOT1Q_VLAN),
        next_hop=_address(values, IP_NEXT_HOP_V4, IP_NEXT_HOP_V6),
        bgp_next_hop=_address(values, BGP_NEXT_HOP_V4, BGP_NEXT_HOP_V6),
        src_as=_first_int(values, SRC_AS),
        dst_as=_first_int(values, DST_AS),
        src_mask=_first_int(values, SRC_MASK_V4, SRC_MASK_V6),
        dst_mask=_first_int(values, DST_MASK_V4, DST_MASK_V6),
        tcp_flags=_first_int(values, TCP_FLAGS),
        tos=_first_int(values, TOS),
        flow_start_ms=_time_ms(values, context, start=True),
        flow_end_ms=_time_ms(values, context, start=False),
    )


def reverse_flow_record(forward: FlowRecord, reverse: dict[int, bytes]) -> FlowRecord | None:
    """The reverse direction of an RFC 5103 biflow record, when it carried reverse traffic."""
    reverse_bytes = _first_int(reverse, OCTET_DELTA, OCTET_TOTAL)
    if not reverse_bytes:
        return None
    return FlowRecord(
        exporter=forward.exporter,
        version=forward.version,
        observation_domain=forward.observation_domain,
        sequence=forward.sequence,
        sampling_rate=forward.sampling_rate,
        input_if=forward.output_if,
        output_if=forward.input_if,
        bytes=reverse_bytes,
        packets=_first_int(reverse, PACKET_DELTA, PACKET_TOTAL) or 0,
        src=forward.dst,
        dst=forward.src,
        protocol=forward.protocol,
        src_port=forward.dst_port,
        dst_port=forward.src_port,
        src_vlan=forward.dst_vlan,
        dst_vlan=forward.src_vlan,
        src_as=forward.dst_as,
        dst_as=forward.src_as,
        src_mask=forward.dst_mask,
        dst_mask=forward.src_mask,
        tcp_flags=_first_int(reverse, TCP_FLAGS),
        flow_start_ms=forward.flow_start_ms,
        flow_end_ms=forward.flow_end_ms,
    )
