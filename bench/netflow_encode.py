"""Realistic NetFlow v9 and IPFIX export streams for benchmarks: what a peering router sends.

NetFlow v9 mirrors an IOS XR / NX-OS sampled export: one IPv4 template (20 fields, 58 bytes a
record: counters, addresses, ports, interfaces, next hops, ASes, masks, uptime stamps, sampler
id) and a sampler options template (random 1:1000). IPFIX mirrors IOS XR's IPv4 and IPv6 templates
(64-bit counters, millisecond timestamps, selector id) with a selector options template.
Templates and options are re-sent every ``refresh`` data datagrams, in a datagram of their own,
as exporters do; every datagram fits a 1,500-byte MTU.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

V9_FIELDS = [
    (1, 4), (2, 4), (4, 1), (5, 1), (6, 1), (7, 2), (8, 4), (9, 1), (10, 4), (11, 2),
    (12, 4), (13, 1), (14, 4), (15, 4), (16, 4), (17, 4), (18, 4), (21, 4), (22, 4), (48, 1),
]  # fmt: skip
IPFIX_V4_FIELDS = [
    (1, 8), (2, 8), (4, 1), (5, 1), (6, 2), (7, 2), (8, 4), (9, 1), (10, 4), (11, 2),
    (12, 4), (13, 1), (14, 4), (15, 4), (16, 4), (17, 4), (18, 4), (152, 8), (153, 8), (302, 4),
]  # fmt: skip
IPFIX_V6_FIELDS = [
    (1, 8), (2, 8), (4, 1), (5, 1), (6, 2), (7, 2), (27, 16), (29, 1), (10, 4), (11, 2),
    (28, 16), (30, 1), (14, 4), (62, 16), (16, 4), (17, 4), (63, 16), (152, 8), (153, 8), (302, 4),
]  # fmt: skip
SAMPLING_RATE = 1000
V9_RECORDS = 24  # 24 × 58 bytes
IPFIX_V4_RECORDS = 12  # 12 × 77 + 3 × 137 bytes
IPFIX_V6_RECORDS = 3


def _specs(fields: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("!HH", element, length) for element, length in fields)


def _set(set_id: int, body: bytes) -> bytes:
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def _value(rng: random.Random, element: int, length: int, now_ms: int) -> bytes:
    if element in (8, 12, 15, 18):  # IPv4 addresses: destinations spread over the whole table
        return rng.getrandbits(32).to_bytes(4, "big")
    if element in (27, 28, 62, 63):
        return (0x2000 << 112 | rng.getrandbits(100) << 12).to_bytes(16, "big")
    if element == 1:
        return rng.randint(40, 1_500_000).to_bytes(length, "big")
    if element == 2:
        return rng.randint(1, 1000).to_bytes(length, "big")
    if element in (152, 153):
        return (now_ms - rng.randint(0, 60_000)).to_bytes(length, "big")
    if element in (48, 302):
        return (1).to_bytes(length, "big")
    return rng.getrandbits(8 * length).to_bytes(length, "big")


def _records(rng: random.Random, fields: list[tuple[int, int]], count: int, now_ms: int) -> bytes:
    return b"".join(b"".join(_value(rng, e, n, now_ms) for e, n in fields) for _ in range(count))


def netflow_v9_stream(datagrams: int, seed: int = 1, refresh: int = 64) -> Iterator[bytes]:
    """``datagrams`` NetFlow v9 datagrams of 24 IPv4 flow records each, plus template datagrams."""
    rng = random.Random(seed)
    template = _set(0, struct.pack("!HH", 256, len(V9_FIELDS)) + _specs(V9_FIELDS))
    # scope System (4 bytes); FLOW_SAMPLER_ID, FLOW_SAMPLER_MODE, FLOW_SAMPLER_RANDOM_INTERVAL
    options_template = _set(1, struct.pack("!HHH", 257, 4, 12) + _specs([(1, 4), (48, 1), (49, 1), (50, 4)]))
    options_data = _set(257, struct.pack("!IBBI", 0, 1, 2, SAMPLING_RATE) + b"\0\0")
    uptime_ms, unix_s = 3_600_000, 1_700_000_000
    for sequence in range(datagrams):
        if sequence % refresh == 0:  # templates travel in their own datagram, as on IOS XR
            header = struct.pack("!HHIIII", 9, 3, uptime_ms + sequence, unix_s, sequence, 0)
            yield header + template + options_template + options_data
        data = _set(256, _records(rng, V9_FIELDS, V9_RECORDS, uptime_ms))
        yield struct.pack("!HHIIII", 9, V9_RECORDS, uptime_ms + sequence, unix_s, sequence, 0) + data


def ipfix_stream(datagrams: int, seed: int = 2, refresh: int = 64) -> Iterator[bytes]:
    """``datagrams`` IPFIX messages of 12 IPv4 and 3 IPv6 flow records each, plus template messages."""
    rng = random.Random(seed)
    templates = _set(
        2,
        struct.pack("!HH", 256, len(IPFIX_V4_FIELDS)) + _specs(IPFIX_V4_FIELDS)
        + struct.pack("!HH", 257, len(IPFIX_V6_FIELDS)) + _specs(IPFIX_V6_FIELDS),
    )  # fmt: skip
    # scope selectorId; samplingPacketInterval 1, samplingPacketSpace 999: 1 in 1000
    options_template = _set(3, struct.pack("!HHH", 258, 3, 1) + _specs([(302, 4), (305, 4), (306, 4)]))
    options_data = _set(258, struct.pack("!III", 1, 1, SAMPLING_RATE - 1))
    export_s = 1_700_000_000
    flows = 0
    for sequence in range(datagrams):
        if sequence % refresh == 0:
            body = templates + options_template + options_data
            yield struct.pack("!HHIII", 10, 16 + len(body), export_s, flows, 1) + body
        body = _set(256, _records(rng, IPFIX_V4_FIELDS, IPFIX_V4_RECORDS, export_s * 1000))
        body += _set(257, _records(rng, IPFIX_V6_FIELDS, IPFIX_V6_RECORDS, export_s * 1000))
        yield struct.pack("!HHIII", 10, 16 + len(body), export_s, flows, 1) + body
        flows += IPFIX_V4_RECORDS + IPFIX_V6_RECORDS
