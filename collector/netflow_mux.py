"""One batch decoder for a collector that hears sFlow and NetFlow/IPFIX: each datagram goes to the
fast path its first bytes name, and ``take`` merges their batches into one SampleBatch.

The pipeline's :class:`~collector.pipeline.Collector` takes a single decoder; with this one, the
listener can bind 6343, 2055 and 4739 and feed them all to the same collector. NetFlow/IPFIX
exporters appear in ``agents`` by their UDP source address, as sFlow agents do by theirs.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from collector.batch import SampleBatch
from collector.netflow_dispatch import is_netflow
from collector.netflow_fast import FastFlowDecoder

SFLOW_V5 = b"\x00\x00\x00\x05"


class BatchDecoder(Protocol):
    def feed(self, datagram: bytes, exporter: str) -> None: ...

    def take(self) -> SampleBatch: ...


class FlowBatchMux:
    """Routes datagrams by version: sFlow v5 to ``sflow``, NetFlow v5/v9 and IPFIX to ``netflow``."""

    def __init__(self, sflow: BatchDecoder, netflow: BatchDecoder | None = None) -> None:
        self.sflow = sflow
        self.netflow = netflow if netflow is not None else FastFlowDecoder()

    def feed(self, datagram: bytes, exporter: str) -> None:
        if datagram[:4] != SFLOW_V5 and is_netflow(datagram):
            self.netflow.feed(datagram, exporter)
        else:
            self.sflow.feed(datagram, exporter)  # sFlow, or rejected by it as malformed

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        for datagram, exporter in datagrams:
            self.feed(datagram, exporter)

    def take(self) -> SampleBatch:
        return merge_batches(self.sflow.take(), self.netflow.take())


def merge_batches(first: SampleBatch, second: SampleBatch) -> SampleBatch:
    """One batch with the rows of both; ``second``'s agent indices shift past ``first``'s agents."""
    offset = np.uint32(len(first.agents))
    malformed = dict(first.malformed)
    for key, count in second.malformed.items():
        malformed[key] = malformed.get(key, 0) + count
    lost = dict(first.lost_datagrams)
    for agent, count in second.lost_datagrams.items():
        lost[agent] = lost.get(agent, 0) + count
    drops = dict(first.agent_drops)
    for agent, count in second.agent_drops.items():
        drops[agent] = drops.get(agent, 0) + count
    return SampleBatch(
        agents=[*first.agents, *second.agents],
        v4_agent=np.concatenate([first.v4_agent, second.v4_agent + offset]).astype(np.uint32),
        v4_dst=np.concatenate([first.v4_dst, second.v4_dst]).astype(np.uint32),
        v4_bytes=np.concatenate([first.v4_bytes, second.v4_bytes]),
        v4_packets=np.concatenate([first.v4_packets, second.v4_packets]),
        v6_agent=np.concatenate([first.v6_agent, second.v6_agent + offset]).astype(np.uint32),
        v6_dst_hi=np.concatenate([first.v6_dst_hi, second.v6_dst_hi]).astype(np.uint64),
        v6_dst_lo=np.concatenate([first.v6_dst_lo, second.v6_dst_lo]).astype(np.uint64),
        v6_bytes=np.concatenate([first.v6_bytes, second.v6_bytes]),
        v6_packets=np.concatenate([first.v6_packets, second.v6_packets]),
        datagrams=first.datagrams + second.datagrams,
        flow_samples=first.flow_samples + second.flow_samples,
        counter_samples=first.counter_samples + second.counter_samples,
        non_ip_samples=first.non_ip_samples + second.non_ip_samples,
        malformed=malformed,
        lost_datagrams=lost,
        agent_drops=drops,
    )
