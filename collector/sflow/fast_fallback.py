"""Pure-Python twin of the C fast path (``_sflow_fast.c``), used when the extension is not built.

It runs the typed decoder and keeps only what accounting needs, so it is the executable
specification of the fast path's rules; the equivalence tests hold the C code to it:

* a datagram that raises :class:`SflowError` contributes nothing but a malformed count, keyed by
  (reason, agent address if the header got that far, else the exporter);
* a flow sample whose records give a destination address adds one row: bytes = frame length ×
  sampling rate, packets = sampling rate; one without an address counts as non-IP;
* a row's ingress interface is the sample's input ifIndex when that is a single interface other
  than the agent itself (0x3FFFFFFF), else 0; its next hop is the last extended gateway record's
  BGP next hop, else the last extended router record's next hop (an unknown or all-zero address
  counts as none), named in ``next_hops`` in order of first appearance in valid datagrams;
* lost datagrams per (agent, sub-agent): a forward sequence jump of d counts d - 1; a sequence
  that goes back while uptime went back by more than a second is an agent restart (state reset);
  any other step back is a duplicate or a late datagram and is ignored;
* agent drops: the increase of each data source's ``drops`` counter since its previous sample
  (the first sample of a source only sets the baseline; a decrease is a counter reset);
* bounded state (sub-agent ids and data source ids are whatever the sender writes): an agent
  keeps at most ``MAX_SUB_AGENTS`` (agent, sub-agent) streams; a new one beyond that evicts the
  agent's oldest stream with its drop baselines (``state_limited["sflow_sub_agent_evicted"]``).
  A stream keeps at most ``MAX_DATA_SOURCES`` drop baselines; further data sources are not
  tracked (``state_limited["sflow_data_source_refused"]`` per sample).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import Final

import numpy as np

from topfib.collector.common.batch import SampleBatch
from topfib.collector.sflow.decoder import decode_datagram, peek_agent
from topfib.collector.sflow.records import INTERFACE_SINGLE, FlowSample, SflowError

HALF_RANGE: Final = 1 << 31
U32: Final = 0xFFFFFFFF
RESTART_UPTIME_STEP_MS: Final = 1000
INTERFACE_AGENT: Final = 0x3FFFFFFF  # ifIndex value meaning "the agent itself"
UNSPECIFIED: Final = frozenset(("0.0.0.0", "::"))
MAX_SUB_AGENTS: Final = 64  # (agent, sub-agent) sequence streams per agent
MAX_DATA_SOURCES: Final = 1024  # drop-counter baselines per stream
SUB_AGENT_EVICTED: Final = "sflow_sub_agent_evicted"
DATA_SOURCE_REFUSED: Final = "sflow_data_source_refused"


def forward_step(previous: int, current: int) -> int:
    """How far a 32-bit counter moved forward (0 when it did not, or went back)."""
    delta = (current - previous) & U32
    return delta if delta < HALF_RANGE else 0


class _Stream:
    """One (agent, sub-agent): its last sequence number and uptime, and its drop baselines."""

    __slots__ = ("drops", "sequence", "uptime_ms")

    def __init__(self) -> None:
        self.sequence: int | None = None  # None: no datagram counted yet
        self.uptime_ms = 0
        self.drops: dict[tuple[int, int], int] = {}  # (source type, source index) -> drops


class PythonFastDecoder:
    """Accumulates flow samples of many datagrams into one :class:`SampleBatch` per ``take``."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._sub_agents: dict[str, deque[int]] = {}  # agent -> its streams' sub-agents, oldest first
        self._reset_batch()

    def _stream(self, agent: str, sub_agent: int) -> _Stream:
        """The stream's state, created on first sight (evicting the agent's oldest at the bound)."""
        stream = self._streams.get((agent, sub_agent))
        if stream is not None:
            return stream
        order = self._sub_agents.setdefault(agent, deque())
        if len(order) >= MAX_SUB_AGENTS:
            del self._streams[(agent, order.popleft())]
            self._limited(SUB_AGENT_EVICTED)
        order.append(sub_agent)
        stream = self._streams[(agent, sub_agent)] = _Stream()
        return stream

    def state_sizes(self) -> tuple[int, int, int]:
        """(agents, (agent, sub-agent) streams, drop baselines) held now."""
        drops = sum(len(stream.drops) for stream in self._streams.values())
        return len(self._sub_agents), len(self._streams), drops

    def _limited(self, kind: str) -> None:
        limited = self._batch.state_limited
        limited[kind] = limited.get(kind, 0) + 1

    def _reset_batch(self) -> None:
        self._batch = SampleBatch()
        self._agent_index: dict[str, int] = {}
        self._hop_index: dict[str, int] = {}
        # agent, destination, bytes, packets, input_if, next hop (v6: destination high, low)
        self._v4: tuple[list[int], list[int], list[float], list[float], list[int], list[int]] = (
            [], [], [], [], [], [],
        )  # fmt: skip
        self._v6: tuple[list[int], list[int], list[int], list[float], list[float], list[int], list[int]] = (
            [], [], [], [], [], [], [],
        )  # fmt: skip

    def feed(self, datagram: bytes, exporter: str) -> None:
        batch = self._batch
        batch.datagrams += 1
        try:
            decoded = decode_datagram(datagram)
        except SflowError as exc:
            key = (exc.reason, peek_agent(datagram) or exporter)
            batch.malformed[key] = batch.malformed.get(key, 0) + 1
            return
        header = decoded.header
        agent = header.agent
        index = self._agent_index.get(agent)
        if index is None:
            index = self._agent_index[agent] = len(batch.agents)
            batch.agents.append(agent)
        batch.flow_samples += len(decoded.flow_samples)
        batch.counter_samples += len(decoded.counter_samples)
        stream = self._stream(agent, header.sub_agent)
        for sample in decoded.flow_samples:
            self._count_drops(agent, stream, sample.source_id_type, sample.source_id_index, sample.drops)
            if sample.dst is None or sample.frame_length is None:
                batch.non_ip_samples += 1
                continue
            rate = float(sample.sampling_rate)
            address = int(ipaddress.ip_address(sample.dst))
            input_if = _input_if(sample)
            hop = self._hop(sample)
            if ":" in sample.dst:
                agents6, hi, lo, bytes6, packets6, input6, hops6 = self._v6
                agents6.append(index)
                hi.append(address >> 64)
                lo.append(address & 0xFFFFFFFFFFFFFFFF)
                bytes6.append(float(sample.frame_length) * rate)
                packets6.append(rate)
                input6.append(input_if)
                hops6.append(hop)
            else:
                agents4, dst4, bytes4, packets4, input4, hops4 = self._v4
                agents4.append(index)
                dst4.append(address)
                bytes4.append(float(sample.frame_length) * rate)
                packets4.append(rate)
                input4.append(input_if)
                hops4.append(hop)
        self._count_sequence(agent, stream, header.sequence, header.uptime_ms)

    def _hop(self, sample: FlowSample) -> int:
        """Index of the sample's next hop in the batch's ``next_hops`` (-1: none)."""
        for hop in (sample.bgp_next_hop, sample.next_hop):
            if hop is not None and hop not in UNSPECIFIED:
                index = self._hop_index.get(hop)
                if index is None:
                    index = self._hop_index[hop] = len(self._batch.next_hops)
                    self._batch.next_hops.append(hop)
                return index
        return -1

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        for datagram, exporter in datagrams:
            self.feed(datagram, exporter)

    def _count_sequence(self, agent: str, stream: _Stream, sequence: int, uptime_ms: int) -> None:
        if stream.sequence is None:
            stream.sequence, stream.uptime_ms = sequence, uptime_ms
            return
        step = forward_step(stream.sequence, sequence)
        if step:
            if step > 1:
                lost = self._batch.lost_datagrams
                lost[agent] = lost.get(agent, 0) + step - 1
            stream.sequence, stream.uptime_ms = sequence, uptime_ms
        elif uptime_ms + RESTART_UPTIME_STEP_MS < stream.uptime_ms:
            stream.sequence, stream.uptime_ms = sequence, uptime_ms

    def _count_drops(
        self, agent: str, stream: _Stream, source_type: int, source_index: int, drops: int
    ) -> None:
        key = (source_type, source_index)
        previous = stream.drops.get(key)
        if previous is None and len(stream.drops) >= MAX_DATA_SOURCES:
            self._limited(DATA_SOURCE_REFUSED)
            return
        stream.drops[key] = drops
        if previous is not None:
            step = forward_step(previous, drops)
            if step:
                agent_drops = self._batch.agent_drops
                agent_drops[agent] = agent_drops.get(agent, 0) + step

    def take(self) -> SampleBatch:
        batch = self._batch
        agents4, dst4, bytes4, packets4, input4, hops4 = self._v4
        batch.v4_agent = np.array(agents4, dtype=np.uint32)
        batch.v4_dst = np.array(dst4, dtype=np.uint32)
        batch.v4_bytes = np.array(bytes4, dtype=np.float64)
        batch.v4_packets = np.array(packets4, dtype=np.float64)
        batch.v4_input_if = np.array(input4, dtype=np.uint32)
        batch.v4_next_hop = np.array(hops4, dtype=np.int32)
        agents6, hi, lo, bytes6, packets6, input6, hops6 = self._v6
        batch.v6_input_if = np.array(input6, dtype=np.uint32)
        batch.v6_next_hop = np.array(hops6, dtype=np.int32)
        batch.v6_agent = np.array(agents6, dtype=np.uint32)
        batch.v6_dst_hi = np.array(hi, dtype=np.uint64)
        batch.v6_dst_lo = np.array(lo, dtype=np.uint64)
        batch.v6_bytes = np.array(bytes6, dtype=np.float64)
        batch.v6_packets = np.array(packets6, dtype=np.float64)
        self._reset_batch()
        return batch


def _input_if(sample: FlowSample) -> int:
    """The ingress ifIndex, 0 when unknown (discarded, multiple, or the agent itself)."""
    if sample.input_format == INTERFACE_SINGLE and sample.input_if != INTERFACE_AGENT:
        return sample.input_if
    return 0
