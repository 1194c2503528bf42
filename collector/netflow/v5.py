"""NetFlow v5 datagrams: a fixed 24-byte header and up to 30 fixed 48-byte flow records.

Header: ``version | count | sysUptime | unix_secs | unix_nsecs | flow_sequence | engine_type |
engine_id | sampling_interval`` (2 bits mode, 14 bits interval). Record: ``srcaddr dstaddr
nexthop input output dPkts dOctets First Last srcport dstport pad1 tcp_flags prot tos src_as
dst_as src_mask dst_mask pad2``. v5 is stateless: no templates, and IPv4 only.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

from topfib.collector.netflow.errors import FlowDecodeError
from topfib.collector.netflow.fields import FlowRecord, uptime_ago_ms

NETFLOW_V5_VERSION: Final = 5
HEADER = struct.Struct("!HHIIIIBBH")
RECORD = struct.Struct("!4s4s4sHHIIIIHHxBBBHHBBxx")
MAX_RECORDS: Final = 30  # per Cisco's format definition; more is a corrupt count


def decode_v5(payload: bytes, exporter: str) -> list[FlowRecord]:
    if len(payload) < HEADER.size:
        raise FlowDecodeError("short-header", f"{len(payload)} bytes")
    _, count, uptime_ms, unix_secs, unix_nsecs, sequence, engine_type, engine_id, sampling = (
        HEADER.unpack_from(payload)
    )
    if not 0 < count <= MAX_RECORDS:
        raise FlowDecodeError("record-count", f"v5 count {count}")
    if len(payload) < HEADER.size + count * RECORD.size:
        raise FlowDecodeError("record-overflow", f"v5 count {count} in {len(payload)} bytes")
    sampling_rate = (sampling & 0x3FFF) or 1
    export_ms = unix_secs * 1000 + unix_nsecs // 1_000_000
    records = []
    for index in range(count):
        (src, dst, next_hop, input_if, output_if, packets, octets, first, last, src_port, dst_port,
         tcp_flags, protocol, tos, src_as, dst_as, src_mask, dst_mask) = RECORD.unpack_from(
            payload, HEADER.size + index * RECORD.size
        )
        records.append(
            FlowRecord(
                exporter=exporter,
                version=NETFLOW_V5_VERSION,
                observation_domain=engine_type << 8 | engine_id,
                sequence=sequence,
                sampling_rate=sampling_rate,
                input_if=input_if,
                output_if=output_if,
                bytes=octets,
                packets=packets,
                src=str(ipaddress.IPv4Address(src)),
                dst=str(ipaddress.IPv4Address(dst)),
                protocol=protocol,
                src_port=src_port,
                dst_port=dst_port,
                next_hop=str(ipaddress.IPv4Address(next_hop)),
                src_as=src_as,
                dst_as=dst_as,
                src_mask=src_mask,
                dst_mask=dst_mask,
                tcp_flags=tcp_flags,
                tos=tos,
                flow_start_ms=export_ms - uptime_ago_ms(uptime_ms, first),
                flow_end_ms=export_ms - uptime_ago_ms(uptime_ms, last),
            )
        )
    return records
