"""One decoded NetFlow v5/v9 or IPFIX flow record, in the shape the sFlow decoder uses.

``bytes`` and ``packets`` are what the exporter reported; ``sampling_rate`` is the rate in force
for the record (from the v5 header, the record itself or the exporter's sampler options; 1 when
unknown) so accounting scales by it, as it does for sFlow. Times are Unix milliseconds.
Field names follow the sFlow ``FlowSample`` (``src``, ``dst``, ``next_hop``…).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class FlowRecord:
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
