"""The hand-off between flow decoding and accounting: many samples as flat numpy arrays.

The fast decoder (``topfib.collector.sflow.fast``) fills a :class:`SampleBatch` from many datagrams; the
accounting (``topfib.collector.accounting.prefix_rates``) consumes it with vectorised prefix lookups.
Per-sample
Python objects would cost more than the decoding itself at 10^6 samples/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class SampleBatch:
    """Flow samples of one or more datagrams, split by destination family.

    ``*_agent`` holds an index into ``agents`` (the exporter/agent address strings seen in this
    batch) so samples can be mapped to switches. Byte and packet counts are already scaled by
    each sample's sampling rate (frame length × rate, and rate).

    ``*_input_if`` is the ingress ifIndex (0: unknown) and ``*_next_hop`` an index into
    ``next_hops`` (the next-hop address strings of this batch; -1: none): the BGP next hop the
    exporter reported (sFlow extended gateway, NetFlow/IPFIX bgpNextHop), else its IP next hop
    (sFlow extended router, NetFlow ipNextHop). A decoder that does not fill them may leave them
    empty; :meth:`complete` sizes them to the rows.
    """

    agents: list[str] = field(default_factory=list)
    v4_agent: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    v4_dst: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    v4_bytes: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    v4_packets: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    v6_agent: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    v6_dst_hi: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    v6_dst_lo: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    v6_bytes: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    v6_packets: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    next_hops: list[str] = field(default_factory=list)
    v4_input_if: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    v4_next_hop: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))
    v6_input_if: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    v6_next_hop: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))
    datagrams: int = 0
    flow_samples: int = 0
    counter_samples: int = 0
    # flow samples whose sampled header had no IPv4/IPv6 destination (ARP, LLDP...)
    non_ip_samples: int = 0
    # (reason, agent) -> count of datagrams rejected as malformed
    malformed: dict[tuple[str, str], int] = field(default_factory=dict)
    # agent -> datagrams missing according to its sequence numbers
    lost_datagrams: dict[str, int] = field(default_factory=dict)
    # agent -> drops reported by the agent itself (flow sample 'drops' deltas)
    agent_drops: dict[str, int] = field(default_factory=dict)
    # (exporter, unit) -> NetFlow/IPFIX export loss by sequence numbers; unit: "flows" (v5),
    # "packets" (v9 export packets) or "records" (IPFIX data records)
    export_lost: dict[tuple[str, str], int] = field(default_factory=dict)
    # kind -> per-exporter state refused or evicted at its bound ("sflow_sub_agent_evicted",
    # "sflow_data_source_refused", "netflow_template_evicted", "netflow_template_refused")
    state_limited: dict[str, int] = field(default_factory=dict)

    def complete(self) -> SampleBatch:
        """Fill per-sample columns a decoder left empty (ingress 0, no next hop); returns self."""
        rows4, rows6 = len(self.v4_dst), len(self.v6_dst_hi)
        if len(self.v4_input_if) != rows4:
            self.v4_input_if = np.zeros(rows4, np.uint32)
        if len(self.v4_next_hop) != rows4:
            self.v4_next_hop = np.full(rows4, -1, np.int32)
        if len(self.v6_input_if) != rows6:
            self.v6_input_if = np.zeros(rows6, np.uint32)
        if len(self.v6_next_hop) != rows6:
            self.v6_next_hop = np.full(rows6, -1, np.int32)
        return self


class BatchDecoder(Protocol):
    """What the collector needs from a decoder (``topfib.collector.sflow.fast.FastSflowDecoder``)."""

    def feed(self, datagram: bytes, exporter: str) -> None: ...

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None: ...

    def take(self) -> SampleBatch: ...


def merge_batches(batches: list[SampleBatch]) -> SampleBatch:
    """One batch holding all of ``batches`` (agent indices renumbered, counters summed)."""
    if len(batches) == 1:
        return batches[0]
    merged = SampleBatch()
    index: dict[str, int] = {}
    hop_index: dict[str, int] = {}
    v4_agents, v6_agents, v4_hops, v6_hops = [], [], [], []
    for batch in batches:
        batch.complete()
        remap = np.array([index.setdefault(a, len(index)) for a in batch.agents] or [0], np.uint32)
        v4_agents.append(remap[batch.v4_agent] if len(batch.v4_agent) else batch.v4_agent)
        v6_agents.append(remap[batch.v6_agent] if len(batch.v6_agent) else batch.v6_agent)
        # next-hop indices renumbered; -1 (none) maps to the last element, -1
        hop_remap = np.array(
            [hop_index.setdefault(h, len(hop_index)) for h in batch.next_hops] + [-1], np.int32
        )
        v4_hops.append(hop_remap[batch.v4_next_hop])
        v6_hops.append(hop_remap[batch.v6_next_hop])
        merged.datagrams += batch.datagrams
        merged.flow_samples += batch.flow_samples
        merged.counter_samples += batch.counter_samples
        merged.non_ip_samples += batch.non_ip_samples
        for reason_agent, count in batch.malformed.items():
            merged.malformed[reason_agent] = merged.malformed.get(reason_agent, 0) + count
        for agent, count in batch.lost_datagrams.items():
            merged.lost_datagrams[agent] = merged.lost_datagrams.get(agent, 0) + count
        for agent, count in batch.agent_drops.items():
            merged.agent_drops[agent] = merged.agent_drops.get(agent, 0) + count
        for key, count in batch.export_lost.items():
            merged.export_lost[key] = merged.export_lost.get(key, 0) + count
        for kind, count in batch.state_limited.items():
            merged.state_limited[kind] = merged.state_limited.get(kind, 0) + count
    merged.agents = list(index)
    merged.v4_agent = np.concatenate(v4_agents).astype(np.uint32, copy=False)
    merged.v6_agent = np.concatenate(v6_agents).astype(np.uint32, copy=False)
    merged.v4_dst = np.concatenate([b.v4_dst for b in batches])
    merged.v4_bytes = np.concatenate([b.v4_bytes for b in batches])
    merged.v4_packets = np.concatenate([b.v4_packets for b in batches])
    merged.v6_dst_hi = np.concatenate([b.v6_dst_hi for b in batches])
    merged.v6_dst_lo = np.concatenate([b.v6_dst_lo for b in batches])
    merged.v6_bytes = np.concatenate([b.v6_bytes for b in batches])
    merged.v6_packets = np.concatenate([b.v6_packets for b in batches])
    merged.next_hops = list(hop_index)
    merged.v4_next_hop = np.concatenate(v4_hops).astype(np.int32, copy=False)
    merged.v6_next_hop = np.concatenate(v6_hops).astype(np.int32, copy=False)
    merged.v4_input_if = np.concatenate([b.v4_input_if for b in batches])
    merged.v6_input_if = np.concatenate([b.v6_input_if for b in batches])
    return merged
