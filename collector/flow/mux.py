"""One batch decoder for a collector that hears sFlow and NetFlow/IPFIX: each datagram goes to the
fast path its first bytes name, and ``take`` merges their batches into one SampleBatch.

The pipeline's :class:`~topfib.collector.accounting.pipeline.Collector` takes a single decoder; with this
one, the
listener can bind 6343, 2055 and 4739 and feed them all to the same collector. NetFlow/IPFIX
exporters appear in ``agents`` by their UDP source address, as sFlow agents do by theirs.
"""

from __future__ import annotations

from topfib.collector.common.batch import BatchDecoder, SampleBatch, merge_batches
from topfib.collector.netflow.dispatch import is_netflow
from topfib.collector.netflow.fast import FastFlowDecoder

SFLOW_V5 = b"\x00\x00\x00\x05"


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
        """Each decoder gets its datagrams in arrival order, in one call (they share no state)."""
        netflow: list[tuple[bytes, str]] = []
        sflow: list[tuple[bytes, str]] = []
        for pair in datagrams:
            datagram = pair[0]
            (netflow if datagram[:4] != SFLOW_V5 and is_netflow(datagram) else sflow).append(pair)
        if netflow:
            self.netflow.feed_many(netflow)
        if sflow:
            self.sflow.feed_many(sflow)

    def take(self) -> SampleBatch:
        return merge_batches([self.sflow.take(), self.netflow.take()])
