"""A small sFlow v5 encoder (the demo, benchmarks and tests): realistic flow samples as a switch sends them.

Each flow sample carries what a commodity switch (Broadcom/Mellanox class) exports: a raw packet
header record (the first 128 bytes of the Ethernet frame, optionally 802.1Q-tagged, IPv4 or IPv6,
TCP or UDP) followed by an extended switch record. Addresses are strings so callers can draw
destinations from a routing table.

    datagram = encode_datagram("192.0.2.1", 0, 1, 1000, [FlowSampleSpec(src="198.51.100.7", dst="8.8.8.8")])
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

SFLOW_VERSION = 5
HEADER_PROTOCOL_ETHERNET = 1
FORMAT_FLOW_SAMPLE = 1
FORMAT_RAW_HEADER = 1
FORMAT_EXTENDED_SWITCH = 1001
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_8021Q = 0x8100
PROTO_TCP = 6
PROTO_UDP = 17
SAMPLED_HEADER_BYTES = 128  # the usual sFlow agent default
FCS_BYTES = 4  # stripped from the sampled header, counted in the frame length


@dataclass(frozen=True, slots=True)
class FlowSampleSpec:
    """One sampled packet and the sampling context it was taken in."""

    src: str
    dst: str
    protocol: int = PROTO_TCP
    src_port: int = 443
    dst_port: int = 50000
    frame_length: int = 1518  # bytes on the wire, FCS included
    sampling_rate: int = 4096
    sample_pool: int = 0
    drops: int = 0
    sequence: int = 0  # the sample's own sequence number (per source)
    input_if: int = 1
    output_if: int = 2
    vlan: int | None = None  # 802.1Q tag in the sampled frame
    extended_switch: bool = True  # append an extended switch record (0:1001)
    src_vlan: int = 0
    dst_vlan: int = 0


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _record(data_format: int, body: bytes) -> bytes:
    padded = _pad4(body)
    return struct.pack("!II", data_format, len(padded)) + padded


def _l4_header(spec: FlowSampleSpec) -> bytes:
    if spec.protocol == PROTO_TCP:
        # seq, ack, data offset 5 words, flags ACK, window
        return struct.pack("!HHIIBBHHH", spec.src_port, spec.dst_port, 1, 1, 5 << 4, 0x10, 65535, 0, 0)
    if spec.protocol == PROTO_UDP:
        return struct.pack("!HHHH", spec.src_port, spec.dst_port, 8, 0)
    return b""


def _sampled_frame(spec: FlowSampleSpec) -> bytes:
    """The first bytes of the Ethernet frame (FCS stripped), at most SAMPLED_HEADER_BYTES."""
    src = ipaddress.ip_address(spec.src)
    dst = ipaddress.ip_address(spec.dst)
    if src.version != dst.version:
        raise ValueError(f"address families differ: {spec.src} -> {spec.dst}")
    l4 = _l4_header(spec)
    tag = b"" if spec.vlan is None else struct.pack("!HH", ETHERTYPE_8021Q, spec.vlan & 0x0FFF)
    l2_length = 14 + len(tag)
    ip_length = max(spec.frame_length - FCS_BYTES - l2_length, 0)
    if dst.version == 4:
        ethertype = ETHERTYPE_IPV4
        ip_header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            ip_length & 0xFFFF,
            0,
            0x4000,
            64,
            spec.protocol,
            0,
            src.packed,
            dst.packed,
        )
    else:
        ethertype = ETHERTYPE_IPV6
        payload_length = max(ip_length - 40, 0)
        ip_header = struct.pack(
            "!IHBB16s16s", 6 << 28, payload_length & 0xFFFF, spec.protocol, 64, src.packed, dst.packed
        )
    macs = bytes.fromhex("020000000001020000000002")  # dst MAC, src MAC (locally administered)
    frame = macs + tag + struct.pack("!H", ethertype) + ip_header + l4
    wire_without_fcs = max(spec.frame_length - FCS_BYTES, len(frame))
    frame = frame + b"\0" * (wire_without_fcs - len(frame))
    return frame[:SAMPLED_HEADER_BYTES]


def _raw_header_record(spec: FlowSampleSpec) -> bytes:
    header = _sampled_frame(spec)
    body = struct.pack("!IIII", HEADER_PROTOCOL_ETHERNET, spec.frame_length, FCS_BYTES, len(header)) + header
    return _record(FORMAT_RAW_HEADER, body)


def _extended_switch_record(spec: FlowSampleSpec) -> bytes:
    return _record(FORMAT_EXTENDED_SWITCH, struct.pack("!IIII", spec.src_vlan, 0, spec.dst_vlan, 0))


def encode_flow_sample(spec: FlowSampleSpec) -> bytes:
    """A compact flow sample (enterprise 0, format 1) with its sample record header."""
    records = [_raw_header_record(spec)]
    if spec.extended_switch:
        records.append(_extended_switch_record(spec))
    source_id = spec.input_if & 0x00FFFFFF  # source type 0 (ifIndex)
    body = struct.pack(
        "!IIIIIIII",
        spec.sequence,
        source_id,
        spec.sampling_rate,
        spec.sample_pool,
        spec.drops,
        spec.input_if & 0x3FFFFFFF,
        spec.output_if & 0x3FFFFFFF,
        len(records),
    ) + b"".join(records)
    return struct.pack("!II", FORMAT_FLOW_SAMPLE, len(body)) + body


def encode_datagram(
    agent: str, sub_agent: int, sequence: int, uptime_ms: int, samples: list[FlowSampleSpec]
) -> bytes:
    """One sFlow v5 datagram from ``agent`` (IPv4 or IPv6) carrying ``samples``."""
    agent_address = ipaddress.ip_address(agent)
    address_type = 1 if agent_address.version == 4 else 2
    header = struct.pack("!II", SFLOW_VERSION, address_type) + agent_address.packed
    header += struct.pack("!IIII", sub_agent, sequence, uptime_ms, len(samples))
    return header + b"".join(encode_flow_sample(spec) for spec in samples)


def datagrams_for_destinations(
    destinations: Sequence[str],
    agent: str = "192.0.2.1",
    samples_per_datagram: int = 7,
    sampling_rate: int = 4096,
    seed: int = 0,
) -> list[bytes]:
    """Datagrams whose flow samples go, in order, to ``destinations`` (IPv4 and/or IPv6 strings).

    Sources, ports, protocol (TCP 85 % / UDP 15 %), frame length (mostly 1518 and 64), VLAN tag
    (half the frames) vary with a seeded generator, so one seed always gives the same bytes.
    Sample and datagram sequence numbers increase without gaps.
    """
    rng = random.Random(seed)
    datagrams: list[bytes] = []
    sample_sequence = 0
    for start in range(0, len(destinations), samples_per_datagram):
        specs: list[FlowSampleSpec] = []
        for dst in destinations[start : start + samples_per_datagram]:
            sample_sequence += 1
            v6 = ":" in dst
            src = f"2001:db8::{rng.randrange(1, 0xFFFF):x}" if v6 else f"198.51.100.{rng.randrange(1, 255)}"
            specs.append(
                FlowSampleSpec(
                    src=src,
                    dst=dst,
                    protocol=PROTO_TCP if rng.random() < 0.85 else PROTO_UDP,
                    src_port=rng.choice((443, 80, 53, rng.randrange(1024, 65536))),
                    dst_port=rng.randrange(1024, 65536),
                    frame_length=rng.choice((1518, 1518, 1518, 64, 590, 1280)),
                    sampling_rate=sampling_rate,
                    sample_pool=sample_sequence * sampling_rate,
                    sequence=sample_sequence,
                    input_if=rng.randrange(1, 49),
                    output_if=rng.randrange(49, 65),
                    vlan=rng.choice((None, 100)),
                    src_vlan=100,
                    dst_vlan=200,
                )
            )
        datagrams.append(encode_datagram(agent, 0, len(datagrams) + 1, 1000 * (len(datagrams) + 1), specs))
    return datagrams


def realistic_mix(
    datagram_count: int, samples_per_datagram: int = 7, v6_share: float = 0.1, seed: int = 0
) -> list[bytes]:
    """``datagram_count`` datagrams with random public destinations, ``v6_share`` of them IPv6."""
    rng = random.Random(seed)
    destinations: list[str] = []
    for _ in range(datagram_count * samples_per_datagram):
        if rng.random() < v6_share:
            destinations.append(str(ipaddress.IPv6Address((0x2000 << 112) | rng.getrandbits(112))))
        else:
            destinations.append(str(ipaddress.IPv4Address(rng.randrange(0x01000000, 0xDF000000))))
    return datagrams_for_destinations(destinations, samples_per_datagram=samples_per_datagram, seed=seed)
