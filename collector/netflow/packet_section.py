"""Flows described by a sampled packet instead of fields: IPFIX packet sections (RFC 7133).

Some exporters (Juniper, IOS XR with "packet sampling", EoMPLS pseudowires) send each sampled
packet's first bytes in ``dataLinkFrameSection`` (IE 315, an Ethernet frame) or
``ipHeaderPacketSection`` (IE 313), with ``dataLinkFrameSize`` (IE 312) for its length, rather
than address and port fields. The sFlow header parser reads them; here we only add MPLS, which
sFlow's header records rarely carry: labels are skipped to the bottom of the stack, then the
payload is IPv4, IPv6, or (after a pseudowire control word) an Ethernet frame.
"""

from __future__ import annotations

from typing import Final

from topfib.collector.common.packet_header import (
    HEADER_PROTOCOL_ETHERNET,
    HEADER_PROTOCOL_IPV4,
    HEADER_PROTOCOL_IPV6,
    VLAN_ETHERTYPES,
    PacketSummary,
    parse_header,
)

IP_HEADER_SECTION: Final = 313
DATALINK_FRAME_SIZE: Final = 312
DATALINK_FRAME_SECTION: Final = 315
MPLS_ETHERTYPES: Final = frozenset((0x8847, 0x8848))
MAX_MPLS_LABELS: Final = 16  # bounded walk; real stacks are a handful deep


def summarise_section(values: dict[int, bytes]) -> PacketSummary | None:
    """What the record's packet section says, or None when it has none."""
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
