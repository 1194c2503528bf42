"""Typed results of sFlow v5 decoding, and the decoder's one error type.

One :class:`FlowSample` per flow sample, flattened: the datagram context (agent, sub-agent,
sequence), the sampling context (rate, pool, drops, interfaces) and what the flow records say about
the sampled packet (addresses, protocol, ports, VLANs, next-hop and AS data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Reasons a datagram is rejected; also the keys of the malformed counters.
REASON_TRUNCATED: Final = "truncated"  # a fixed-size field runs past the end of its container
REASON_BAD_VERSION: Final = "bad_version"  # not sFlow version 5
REASON_BAD_ADDRESS_TYPE: Final = "bad_address_type"  # address type not IPv4/IPv6 (or unknown, for next hops)
REASON_LENGTH_OVERRUN: Final = "length_overrun"  # a length field claims more bytes than remain
REASON_COUNT_OVERRUN: Final = "count_overrun"  # a count claims more items than the remaining bytes can hold
REASONS: Final = (
    REASON_TRUNCATED,
    REASON_BAD_VERSION,
    REASON_BAD_ADDRESS_TYPE,
    REASON_LENGTH_OVERRUN,
    REASON_COUNT_OVERRUN,
)

# Interface formats (the top two bits of a compact interface, or the expanded format word).
INTERFACE_SINGLE: Final = 0  # value is an ifIndex (0x3FFFFFFF: the agent itself)
INTERFACE_DISCARDED: Final = 1  # packet dropped; value is the reason code
INTERFACE_MULTIPLE: Final = 2  # sent to several interfaces; value is their count (0: unknown)


class SflowError(ValueError):
    """A datagram that is not valid sFlow v5; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True, slots=True)
class DatagramHeader:
    agent: str
    sub_agent: int
    sequence: int
    uptime_ms: int
    sample_count: int


@dataclass(frozen=True, slots=True)
class FlowSample:
    """One flow sample (compact format 1 or expanded format 3) with its flow records merged."""

    agent: str
    sub_agent: int
    datagram_sequence: int
    sequence: int
    expanded: bool
    source_id_type: int
    source_id_index: int
    sampling_rate: int
    sample_pool: int
    drops: int
    input_format: int
    input_if: int
    output_format: int
    output_if: int
    # records present, in order, as "enterprise:format"
    records: tuple[str, ...]
    # length of the sampled packet: the frame length of the raw header record that gave the
    # addresses, or the IP length of the sampled IPv4/IPv6 record; without addresses, the frame
    # length of the first raw header or Ethernet record
    frame_length: int | None = None
    header_protocol: int | None = None
    header_length: int | None = None
    stripped: int | None = None
    src_mac: str | None = None
    dst_mac: str | None = None
    ethertype: int | None = None
    vlan: int | None = None  # innermost 802.1Q/802.1ad tag of the sampled frame
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
    # extended switch (0:1001)
    src_vlan: int | None = None
    src_priority: int | None = None
    dst_vlan: int | None = None
    dst_priority: int | None = None
    # extended router (0:1002)
    next_hop: str | None = None
    src_mask: int | None = None
    dst_mask: int | None = None
    # extended gateway (0:1003)
    bgp_next_hop: str | None = None
    as_number: int | None = None
    src_as: int | None = None
    src_peer_as: int | None = None
    dst_as_path: tuple[int, ...] | None = None
    communities: tuple[int, ...] | None = None
    local_pref: int | None = None


@dataclass(frozen=True, slots=True)
class CounterSample:
    """A counter sample (format 2 or expanded 4); its records are kept as format names only."""

    sequence: int
    source_id_type: int
    source_id_index: int
    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DiscardSample:
    """A dropped-packet sample (format 5) with the few drop records we decode."""

    sequence: int
    source_id_type: int
    source_id_index: int
    drops: int
    input_if: int
    output_if: int
    reason: int
    records: tuple[str, ...]
    egress_queue: int | None = None
    acl_number: int | None = None
    acl_name: str | None = None
    acl_direction: int | None = None
    function_symbol: str | None = None


@dataclass(frozen=True, slots=True)
class SflowDatagram:
    header: DatagramHeader
    flow_samples: tuple[FlowSample, ...]
    counter_samples: tuple[CounterSample, ...]
    discard_samples: tuple[DiscardSample, ...]
    # samples of unknown enterprise/format, skipped by their length
    skipped_samples: int
    # the last sample's length field disagreed with the datagram's end (tolerated, see decoder)
    last_sample_length_mismatch: bool = False
