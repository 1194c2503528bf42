"""What a sampled packet header says: MACs, VLAN, IP addresses, protocol, ports.

The header is the first bytes of a real frame, cut at the agent's header length, so a short or odd
header is normal, not an error: parsing stops where the bytes run out and reports what it found.
The fast decoder (``_sflow_fast.c``) applies the same rules to find the destination address.
"""

from __future__ import annotations

import socket
import struct
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


# Fields parse_header_fields may set; absent keys mean the header did not reach that far.
PacketFields = dict[str, int | str]


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


_ETHERNET: Final = struct.Struct("!6s6sH")
_TAG: Final = struct.Struct("!HH")
_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!HHHBB16s16s")
_PORTS: Final = struct.Struct("!HH")


def format_mac(raw: bytes) -> str:
    return raw.hex(":")


def parse_header(header_protocol: int, header: bytes) -> PacketSummary:
    """Summarise a sampled header of the given sFlow header protocol; never raises."""
    return PacketSummary(**parse_header_fields(header_protocol, header))  # type: ignore[arg-type]


def parse_header_fields(header_protocol: int, header: bytes) -> PacketFields:
    """The same as a dict holding only the fields found (the typed decoder merges it as is)."""
    fields: PacketFields = {}
    if header_protocol == HEADER_PROTOCOL_ETHERNET:
        _parse_ethernet(header, fields)
    elif header_protocol == HEADER_PROTOCOL_IPV4:
        _parse_ipv4(header, 0, fields)
    elif header_protocol == HEADER_PROTOCOL_IPV6:
        _parse_ipv6(header, 0, fields)
    return fields


def _parse_ethernet(frame: bytes, fields: PacketFields) -> None:
    if len(frame) < 14:
        return
    dst_mac, src_mac, ethertype = _ETHERNET.unpack_from(frame, 0)
    fields["dst_mac"] = dst_mac.hex(":")
    fields["src_mac"] = src_mac.hex(":")
    offset = 14
    # each tag consumes 4 bytes, so the loop ends with the header
    while ethertype in VLAN_ETHERTYPES and offset + 4 <= len(frame):
        tci, ethertype = _TAG.unpack_from(frame, offset)
        fields["vlan"] = tci & 0x0FFF
        offset += 4
    fields["ethertype"] = ethertype
    if ethertype == ETHERTYPE_IPV4:
        _parse_ipv4(frame, offset, fields)
    elif ethertype == ETHERTYPE_IPV6:
        _parse_ipv6(frame, offset, fields)


def _parse_ipv4(packet: bytes, offset: int, fields: PacketFields) -> None:
    if len(packet) < offset + 20 or packet[offset] >> 4 != 4:
        return
    version_ihl, tos, length, _, fragment, ttl, protocol, _, src, dst = _IPV4.unpack_from(packet, offset)
    fields.update(
        tos=tos, ip_length=length, ttl=ttl, protocol=protocol,
        src=socket.inet_ntop(socket.AF_INET, src), dst=socket.inet_ntop(socket.AF_INET, dst),
    )  # fmt: skip
    header_length = (version_ihl & 0x0F) * 4
    if fragment & 0x1FFF == 0 and header_length >= 20:
        _parse_transport(packet, offset + header_length, protocol, fields)


def _parse_ipv6(packet: bytes, offset: int, fields: PacketFields) -> None:
    if len(packet) < offset + 40 or packet[offset] >> 4 != 6:
        return
    first, _, payload_length, protocol, hop_limit, src, dst = _IPV6.unpack_from(packet, offset)
    fields.update(
        tos=(first >> 4) & 0xFF, ip_length=payload_length + 40, protocol=protocol, ttl=hop_limit,
        src=socket.inet_ntop(socket.AF_INET6, src), dst=socket.inet_ntop(socket.AF_INET6, dst),
    )  # fmt: skip
    # extension headers are not walked: ports only when the transport header follows directly
    _parse_transport(packet, offset + 40, protocol, fields)


def _parse_transport(packet: bytes, offset: int, protocol: int, fields: PacketFields) -> None:
    if protocol in PORT_PROTOCOLS and len(packet) >= offset + 4:
        fields["src_port"], fields["dst_port"] = _PORTS.unpack_from(packet, offset)
        if protocol == PROTO_TCP and len(packet) >= offset + 14:
            fields["tcp_flags"] = packet[offset + 13]
    elif protocol in (PROTO_ICMP, PROTO_ICMPV6) and len(packet) >= offset + 2:
        fields["icmp_type"] = packet[offset]
        fields["icmp_code"] = packet[offset + 1]
