"""A small pcap/pcapng reader that yields the UDP datagrams of a capture: (source address, payload).

pcap: both byte orders, microsecond and nanosecond magic. pcapng: section header (either byte
order), interface description and enhanced/simple packet blocks; other blocks are skipped.
Link types: Ethernet (with 802.1Q/802.1ad tags), raw IP, Linux cooked (SLL and SLL2). Only
unfragmented IPv4/IPv6 UDP is returned; anything else in the capture is passed over.
A capture that is cut short ends the iteration; a file that is not a capture raises PcapError.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Final

PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_MAGIC_NS: Final = 0xA1B23C4D
PCAPNG_SECTION_HEADER: Final = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
PCAPNG_INTERFACE: Final = 0x00000001
PCAPNG_SIMPLE_PACKET: Final = 0x00000003
PCAPNG_ENHANCED_PACKET: Final = 0x00000006

LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_LINUX_SLL2: Final = 276
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
VLAN_ETHERTYPES: Final = frozenset((0x8100, 0x88A8, 0x9100))
PROTO_UDP: Final = 17
UDP_HEADER: Final = 8


class PcapError(ValueError):
    """The file is not a pcap or pcapng capture (or its first header is unreadable)."""


def is_capture(head: bytes) -> bool:
    """True when the first four bytes are a pcap or pcapng magic number."""
    if len(head) < 4:
        return False
    magics = (PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAPNG_SECTION_HEADER)
    return struct.unpack("<I", head[:4])[0] in magics or struct.unpack(">I", head[:4])[0] in magics


def udp_payloads(capture: bytes) -> Iterator[tuple[str, bytes]]:
    """(source address, UDP payload) of every UDP datagram in a pcap or pcapng capture."""
    for link_type, frame in frames(capture):
        datagram = udp_from_frame(link_type, frame)
        if datagram is not None:
            yield datagram


def frames(capture: bytes) -> Iterator[tuple[int, bytes]]:
    """(link type, captured bytes) of every packet."""
    if len(capture) < 4:
        raise PcapError("file too short for a capture header")
    if struct.unpack("<I", capture[:4])[0] == PCAPNG_SECTION_HEADER:
        yield from _pcapng_frames(capture)
        return
    for order in ("<", ">"):
        if struct.unpack(order + "I", capture[:4])[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            yield from _pcap_frames(capture, order)
            return
    raise PcapError(f"unknown capture magic {capture[:4].hex()}")


def _pcap_frames(capture: bytes, order: str) -> Iterator[tuple[int, bytes]]:
    if len(capture) < 24:
        raise PcapError("truncated pcap file header")
    link_type = struct.unpack_from(order + "I", capture, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")  # seconds, fraction, captured length, original length
    offset = 24
    while offset + record.size <= len(capture):
        captured = record.unpack_from(capture, offset)[2]
        offset += record.size
        if captured > len(capture) - offset:
            return  # capture cut mid-packet
        yield link_type, capture[offset : offset + captured]
        offset += captured


def _pcapng_frames(capture: bytes) -> Iterator[tuple[int, bytes]]:
    order = "<"
    link_types: list[int] = []
    offset = 0
    while offset + 12 <= len(capture):
        block_type = struct.unpack_from(order + "I", capture, offset)[0]
        if struct.unpack_from("<I", capture, offset)[0] == PCAPNG_SECTION_HEADER:
            # a new section: its byte-order magic decides how everything after it is read
            magic = capture[offset + 8 : offset + 12]
            order = "<" if struct.unpack("<I", magic)[0] == PCAPNG_BYTE_ORDER_MAGIC else ">"
            if struct.unpack(order + "I", magic)[0] != PCAPNG_BYTE_ORDER_MAGIC:
                raise PcapError("pcapng section header with a bad byte-order magic")
            block_type = PCAPNG_SECTION_HEADER
            link_types = []
        block_length = struct.unpack_from(order + "I", capture, offset + 4)[0]
        if block_length < 12 or block_length % 4 or block_length > len(capture) - offset:
            return  # corrupt or cut short: stop rather than guess
        body = capture[offset + 8 : offset + block_length - 4]
        offset += block_length
        if block_type == PCAPNG_INTERFACE and len(body) >= 2:
            link_types.append(struct.unpack_from(order + "H", body, 0)[0])
        elif block_type == PCAPNG_ENHANCED_PACKET and len(body) >= 20:
            interface, _, _, captured, _ = struct.unpack_from(order + "IIIII", body, 0)
            if interface < len(link_types) and captured <= len(body) - 20:
                yield link_types[interface], body[20 : 20 + captured]
        elif block_type == PCAPNG_SIMPLE_PACKET and len(body) >= 4 and link_types:
            original = struct.unpack_from(order + "I", body, 0)[0]
            yield link_types[0], body[4 : 4 + min(original, len(body) - 4)]


def udp_from_frame(link_type: int, frame: bytes) -> tuple[str, bytes] | None:
    """(source address, UDP payload) of one captured frame, or None if it is not plain UDP."""
    if link_type == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, offset = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in VLAN_ETHERTYPES and offset + 4 <= len(frame):
            ethertype, offset = struct.unpack_from("!H", frame, offset + 2)[0], offset + 4
        return _ip_by_ethertype(ethertype, frame, offset)
    if link_type == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return _ip_by_ethertype(struct.unpack_from("!H", frame, 14)[0], frame, 16)
    if link_type == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        return _ip_by_ethertype(struct.unpack_from("!H", frame, 0)[0], frame, 20)
    if link_type in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) and frame:
        version = frame[0] >> 4
        return _udp_in_ipv4(frame, 0) if version == 4 else _udp_in_ipv6(frame, 0) if version == 6 else None
    return None


def _ip_by_ethertype(ethertype: int, frame: bytes, offset: int) -> tuple[str, bytes] | None:
    if ethertype == ETHERTYPE_IPV4:
        return _udp_in_ipv4(frame, offset)
    if ethertype == ETHERTYPE_IPV6:
        return _udp_in_ipv6(frame, offset)
    return None


def _udp_in_ipv4(frame: bytes, offset: int) -> tuple[str, bytes] | None:
    if len(frame) < offset + 20 or frame[offset] >> 4 != 4:
        return None
    header_length = (frame[offset] & 0x0F) * 4
    total_length = struct.unpack_from("!H", frame, offset + 2)[0]
    flags_fragment = struct.unpack_from("!H", frame, offset + 6)[0]
    if frame[offset + 9] != PROTO_UDP or header_length < 20 or flags_fragment & 0x3FFF:
        return None  # not UDP, or a fragment (reassembly is out of scope)
    end = min(offset + total_length, len(frame)) if total_length else len(frame)
    source = socket.inet_ntop(socket.AF_INET, frame[offset + 12 : offset + 16])
    return _udp_payload(source, frame[offset + header_length : end])


def _udp_in_ipv6(frame: bytes, offset: int) -> tuple[str, bytes] | None:
    if len(frame) < offset + 40 or frame[offset] >> 4 != 6 or frame[offset + 6] != PROTO_UDP:
        return None
    payload_length = struct.unpack_from("!H", frame, offset + 4)[0]
    end = min(offset + 40 + payload_length, len(frame)) if payload_length else len(frame)
    source = socket.inet_ntop(socket.AF_INET6, frame[offset + 8 : offset + 24])
    return _udp_payload(source, frame[offset + 40 : end])


def _udp_payload(source: str, segment: bytes) -> tuple[str, bytes] | None:
    if len(segment) < UDP_HEADER:
        return None
    udp_length = struct.unpack_from("!H", segment, 4)[0]
    end = udp_length if UDP_HEADER <= udp_length <= len(segment) else len(segment)
    return source, segment[UDP_HEADER:end]
