"""What a sampled packet header says: MACs, VLAN, IP addresses, protocol, ports.

The header is the first bytes of a real frame, cut at the agent's header length, so a short or odd
header is normal, not an error: parsing stops where the bytes run out and reports what it found.
The fast decoder (``_sflow_fast.c``) applies the same rules to find the destination address.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Final

HEADER_PROTOCOL_ETHERNET: Final = 1
HEADER_PROTOCOL_IPV4: Final = 11
HEADER_PROTOCOL_IPV6: Final = 12

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
VLAN_ETHERTYPES: Final = frozenset((0x8100, 0x88A8, 0x9100))  # 802.1Q, 802.1ad, pre-standard QinQ

PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_SCTP: Final = 132
PROTO_ICMPV6: Final = 58
PORT_PROTOCOLS: Final = frozenset((PROTO_TCP, PROTO_UDP, PROTO_SCTP))


@dataclass(slots=True)
class PacketSummary:
    src_mac: str | None = None
    dst_mac: str | None = None
    ethertype: int | None = None
    vlan: int | None = None
    src: str | None = None
    dst: str | None = None
    ip_length: int | None = None
    protocol: int | None = None
    tos: int | None = None
    ttl: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tcp_flags: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_header(header_protocol: int, header: bytes) -> PacketSummary:
    """Summarise a sampled header of the given sFlow header protocol; never raises."""
    summary = PacketSummary()
    if header_protocol == HEADER_PROTOCOL_ETHERNET:
        _parse_ethernet(header, summary)
    elif header_protocol == HEADER_PROTOCOL_IPV4:
        _parse_ipv4(header, 0, summary)
    elif header_protocol == HEADER_PROTOCOL_IPV6:
        _parse_ipv6(header, 0, summary)
    return summary


def _parse_ethernet(frame: bytes, summary: PacketSummary) -> None:
    if len(frame) < 14:
        return
    summary.dst_mac = format_mac(frame[0:6])
    summary.src_mac = format_mac(frame[6:12])
    ethertype = int.from_bytes(frame[12:14], "big")
    offset = 14
    # each tag consumes 4 bytes, so the loop ends with the header
    while ethertype in VLAN_ETHERTYPES and offset + 4 <= len(frame):
        summary.vlan = int.from_bytes(frame[offset : offset + 2], "big") & 0x0FFF
        ethertype = int.from_bytes(frame[offset + 2 : offset + 4], "big")
        offset += 4
    summary.ethertype = ethertype
    if ethertype == ETHERTYPE_IPV4:
        _parse_ipv4(frame, offset, summary)
    elif ethertype == ETHERTYPE_IPV6:
        _parse_ipv6(frame, offset, summary)


def _parse_ipv4(packet: bytes, offset: int, summary: PacketSummary) -> None:
    if len(packet) < offset + 20 or packet[offset] >> 4 != 4:
        return
    header_length = (packet[offset] & 0x0F) * 4
    summary.tos = packet[offset + 1]
    summary.ip_length = int.from_bytes(packet[offset + 2 : offset + 4], "big")
    fragment_offset = int.from_bytes(packet[offset + 6 : offset + 8], "big") & 0x1FFF
    summary.ttl = packet[offset + 8]
    summary.protocol = packet[offset + 9]
    summary.src = socket.inet_ntop(socket.AF_INET, packet[offset + 12 : offset + 16])
    summary.dst = socket.inet_ntop(socket.AF_INET, packet[offset + 16 : offset + 20])
    if fragment_offset == 0 and header_length >= 20:
        _parse_transport(packet, offset + header_length, summary.protocol, summary)


def _parse_ipv6(packet: bytes, offset: int, summary: PacketSummary) -> None:
    if len(packet) < offset + 40 or packet[offset] >> 4 != 6:
        return
    summary.tos = (int.from_bytes(packet[offset : offset + 2], "big") >> 4) & 0xFF
    summary.ip_length = int.from_bytes(packet[offset + 4 : offset + 6], "big") + 40
    summary.protocol = packet[offset + 6]
    summary.ttl = packet[offset + 7]
    summary.src = socket.inet_ntop(socket.AF_INET6, packet[offset + 8 : offset + 24])
    summary.dst = socket.inet_ntop(socket.AF_INET6, packet[offset + 24 : offset + 40])
    # extension headers are not walked: ports only when the transport header follows directly
    _parse_transport(packet, offset + 40, summary.protocol, summary)


def _parse_transport(packet: bytes, offset: int, protocol: int, summary: PacketSummary) -> None:
    if protocol in PORT_PROTOCOLS and len(packet) >= offset + 4:
        summary.src_port = int.from_bytes(packet[offset : offset + 2], "big")
        summary.dst_port = int.from_bytes(packet[offset + 2 : offset + 4], "big")
        if protocol == PROTO_TCP and len(packet) >= offset + 14:
            summary.tcp_flags = packet[offset + 13]
    elif protocol in (PROTO_ICMP, PROTO_ICMPV6) and len(packet) >= offset + 2:
        summary.icmp_type = packet[offset]
        summary.icmp_code = packet[offset + 1]
