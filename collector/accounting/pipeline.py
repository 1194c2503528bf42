"""From decoded sample batches to per-prefix rates: agent → switch, prefix lookup, accounting.

:class:`Collector` is the pure core of the sFlow service: the listener feeds it datagrams and
calls :meth:`Collector.flush` every half second or so; everything here is computation on
the batch plus counters, with ``now`` passed in.

Metrics (all counters):

- ``topfib_sflow_datagrams_total``: datagrams decoded (any agent, malformed ones excluded)
- ``topfib_sflow_samples_total{switch}``: IP flow samples accounted to a switch
- ``topfib_sflow_unrouted_samples_total{switch}``: of those, samples with no RIB match
- ``topfib_sflow_counter_samples_total`` / ``topfib_sflow_non_ip_samples_total``: samples not accounted
- ``topfib_sflow_unknown_agent_samples_total{agent}``: flow samples dropped, agent not in the config
- ``topfib_sflow_malformed_datagrams_total{reason,agent}``: datagrams rejected by the decoder
- ``topfib_sflow_lost_datagrams_total{agent}``: datagrams missing by the agent's sequence numbers
- ``topfib_sflow_agent_dropped_samples_total{agent}``: samples the agent itself reports dropping
- ``topfib_netflow_lost_total{exporter,unit}``: NetFlow/IPFIX export loss by sequence numbers
  (unit ``flows`` for v5, ``packets`` for v9 export packets, ``records`` for IPFIX data records)
- ``topfib_flow_state_limited_total{kind}``: per-exporter decoder state evicted or refused at its
  bound (the decoders count it in ``SampleBatch.state_limited``)

Datagrams are screened by ``flow_gate`` (``topfib.collector.accounting.flow_gate``, given by the service)
before they
are decoded: only allowed UDP sources naming allowed agents reach the decoder.

``agent`` label values are bounded (see :class:`LabelBudget`), so spoofed sources cannot grow the
metrics without limit.

Given ``rib_for`` (the switch's RIB), each routed sample is also attributed to one of its prefix's
paths — the one whose next hop the sample names, else the best
(``topfib.collector.accounting.path_attribution``)
— and accounted per path into ``path_rates`` and, when the service sets ``matrix``, into the
traffic matrix (by ingress interface, attributed next hop and peer AS).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from topfib.collector.accounting.flow_gate import FlowGate
from topfib.collector.accounting.path_attribution import (
    DEFAULT_REFRESH_S,
    Attribution,
    PathAttributor,
    PathSource,
)
from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import BatchDecoder, SampleBatch
from topfib.collector.common.log_budget import LogBudget
from topfib.collector.common.metrics import REGISTRY, Registry
from topfib.collector.rib.lpm import LpmTable

if TYPE_CHECKING:
    from topfib.collector.matrix.traffic_matrix import TrafficMatrix

log = logging.getLogger(__name__)

OTHER_LABEL = "other"
PATH_PRUNE_EVERY_S = 60.0
PATH_PRUNE_BELOW_BYTES_PER_S = 1.0  # as the controller prunes prefix rates: nothing to report

_T = TypeVar("_T", bound=np.generic)


class LabelBudget:
    """Passes configured values and the first ``max_extra`` others; the rest become ``other``."""

    def __init__(self, known: set[str], max_extra: int = 32) -> None:
        self._known = set(known)
        self._extra: set[str] = set()
        self._max_extra = max_extra

    def __call__(self, value: str) -> str:
        if value in self._known or value in self._extra:
            return value
        if len(self._extra) < self._max_extra:
            self._extra.add(value)
            return value
        return OTHER_LABEL


@dataclass
class CollectorTotals:
    """Running totals since start (the benchmark and status pages read these)."""

    datagrams: int = 0
    flow_samples: int = 0  # IP flow samples accounted to a known switch
    unrouted_samples: int = 0
    unknown_agent_samples: int = 0
    non_ip_samples: int = 0
    counter_samples: int = 0
    malformed_datagrams: int = 0
    lost_datagrams: int = 0
    agent_dropped_samples: int = 0
    bytes: float = 0.0  # scaled bytes accounted (routed + unrouted)
    packets: float = 0.0  # scaled packets accounted


class Collector:
    """Accounts sample batches to (switch, prefix) rates.

    ``agent_switches`` maps sFlow agent addresses to switch names; ``lpm_for(switch)`` gives the
    switch's current prefix table (an empty table until its RIB is loaded: all traffic unrouted).
    ``rib_for(switch)`` gives the switch's RIB (whose ``lpm`` ``lpm_for`` returns) for path
    attribution; without it there is none (per-path rates stay empty, the matrix gets no next
    hops). ``process`` must run while the RIB does not change (the service holds its lock).
    """

    def __init__(
        self,
        decoder: BatchDecoder,
        agent_switches: Mapping[str, str],
        lpm_for: Callable[[str], LpmTable],
        rates: PrefixRates,
        registry: Registry = REGISTRY,
        *,
        rib_for: Callable[[str], PathSource | None] | None = None,
        path_rates: PathRates | None = None,
        attribution_refresh_s: float = DEFAULT_REFRESH_S,
        flow_gate: FlowGate | None = None,
        matrix: TrafficMatrix | None = None,
        lock: contextlib.AbstractContextManager[object] | None = None,
    ) -> None:
        """``flow_gate``: only datagrams from allowed sources naming allowed agents are decoded (none:
        all are); ``matrix``: the traffic matrix to feed, if enabled; ``lock``: held while a batch
        is accounted (``topfib run``: the one the controllers hold while they change the RIB)."""
        self.decoder = decoder
        self.rates = rates
        self.path_rates = path_rates
        self.matrix = matrix
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._attributor = None if rib_for is None else PathAttributor(rib_for, attribution_refresh_s)
        self._paths_pruned_at: float | None = None
        self.totals = CollectorTotals()
        self._agent_switches = dict(agent_switches)
        self._switch_names = sorted(set(self._agent_switches.values()))
        self._switch_index = {name: i for i, name in enumerate(self._switch_names)}
        self._lpm_for = lpm_for
        self._agent_label = LabelBudget(set(self._agent_switches))
        self._log = LogBudget()
        self.flow_gate = flow_gate
        self._m_datagrams = registry.counter("topfib_sflow_datagrams_total", "sFlow datagrams decoded.")
        self._m_samples = registry.counter(
            "topfib_sflow_samples_total", "IP flow samples accounted, by switch.", ("switch",)
        )
        self._m_unrouted = registry.counter(
            "topfib_sflow_unrouted_samples_total",
            "Flow samples whose destination has no RIB match (default route), by switch.",
            ("switch",),
        )
        self._m_counter_samples = registry.counter(
            "topfib_sflow_counter_samples_total", "sFlow counter samples received (not accounted)."
        )
        self._m_non_ip = registry.counter(
            "topfib_sflow_non_ip_samples_total", "Flow samples without an IPv4/IPv6 destination."
        )
        self._m_unknown_agent = registry.counter(
            "topfib_sflow_unknown_agent_samples_total",
            "Flow samples dropped because their agent is not in any switch's sflow_agents.",
            ("agent",),
        )
        self._m_malformed = registry.counter(
            "topfib_sflow_malformed_datagrams_total",
            "sFlow datagrams rejected as malformed, by reason and agent.",
            ("reason", "agent"),
        )
        self._m_lost = registry.counter(
            "topfib_sflow_lost_datagrams_total",
            "sFlow datagrams missing according to the agent's sequence numbers.",
            ("agent",),
        )
        self._m_export_lost = registry.counter(
            "topfib_netflow_lost_total",
            "NetFlow/IPFIX export loss by sequence numbers: v5 flows, v9 export packets, IPFIX data records.",
            ("exporter", "unit"),
        )
        self._m_state_limited = registry.counter(
            "topfib_flow_state_limited_total",
            "Per-exporter decoder state at its bound, by kind: sFlow sub-agent streams evicted, "
            "sFlow data sources not tracked, NetFlow/IPFIX templates or samplers evicted or refused, "
            "NetFlow/IPFIX sequence streams evicted.",
            ("kind",),
        )
        self._m_agent_drops = registry.counter(
            "topfib_sflow_agent_dropped_samples_total",
            "Samples the agent reports it dropped (flow sample 'drops' counter deltas).",
            ("agent",),
        )

    @property
    def switches(self) -> list[str]:
        return list(self._switch_names)

    def feed(self, datagram: bytes, exporter: str) -> None:
        if self.flow_gate is None or self.flow_gate.admit([(datagram, exporter)]):
            self.decoder.feed(datagram, exporter)

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        """(payload, UDP source address) pairs, in arrival order."""
        if self.flow_gate is not None:
            datagrams = self.flow_gate.admit(datagrams)
        self.decoder.feed_many(datagrams)

    def flush_logs(self, now: float) -> None:
        """Say what the log budgets suppressed in windows that have ended (called now and then)."""
        self._log.flush(now)
        if self.flow_gate is not None:
            self.flow_gate.flush_logs(now)

    def take(self) -> SampleBatch:
        """Everything decoded since the last take (to be passed to :meth:`process`)."""
        return self.decoder.take()

    def flush(self, now: float) -> int:
        """Account everything fed since the last flush; returns the flow samples in the batch."""
        batch = self.decoder.take()
        self.process(batch, now)
        return batch.flow_samples

    def process(self, batch: SampleBatch, now: float) -> None:
        with self._lock:
            self._process(batch, now)

    def _process(self, batch: SampleBatch, now: float) -> None:
        batch.complete()
        self._count_batch(batch, now)
        self._prune_paths(now)
        if not len(batch.v4_agent) and not len(batch.v6_agent):
            return
        # switch index per agent of this batch; -1 = unknown agent
        switch_of_agent = np.array(
            [self._switch_index.get(self._agent_switches.get(a, ""), -1) for a in batch.agents] or [-1],
            np.int64,
        )
        v4_switch = switch_of_agent[batch.v4_agent] if len(batch.v4_agent) else np.empty(0, np.int64)
        v6_switch = switch_of_agent[batch.v6_agent] if len(batch.v6_agent) else np.empty(0, np.int64)
        self._count_unknown_agents(batch, v4_switch, v6_switch, now)
        for index, switch in enumerate(self._switch_names):
            v4_mask = _mask(v4_switch, index)
            v6_mask = _mask(v6_switch, index)
            if v4_mask is not None and v6_mask is not None and not v4_mask.any() and not v6_mask.any():
                continue
            self._account_switch(batch, switch, v4_mask, v6_mask, now)

    def _account_switch(
        self,
        batch: SampleBatch,
        switch: str,
        v4_mask: npt.NDArray[np.bool_] | None,
        v6_mask: npt.NDArray[np.bool_] | None,
        now: float,
    ) -> None:
        """Look up and account the samples selected by the masks (None: all of that family)."""
        lpm = self._lpm_for(switch)
        v4_dst, v6_hi, v6_lo = (
            _pick(v4_mask, batch.v4_dst),
            _pick(v6_mask, batch.v6_dst_hi),
            _pick(v6_mask, batch.v6_dst_lo),
        )
        if len(v4_dst) and len(v6_hi):
            ids = np.concatenate((lpm.lookup_v4_ids(v4_dst), lpm.lookup_v6_ids(v6_hi, v6_lo)))
        elif len(v4_dst):
            ids = lpm.lookup_v4_ids(v4_dst)
        elif len(v6_hi):
            ids = lpm.lookup_v6_ids(v6_hi, v6_lo)
        else:
            return
        nbytes = _both(v4_mask, batch.v4_bytes, v6_mask, batch.v6_bytes)
        packets = _both(v4_mask, batch.v4_packets, v6_mask, batch.v6_packets)
        self.rates.add_batch(switch, lpm, ids, nbytes, packets, now)
        if self.path_rates is not None or self.matrix is not None:
            attribution = self._attribute(batch, switch, lpm, ids, v4_mask, v6_mask, now)
            if self.path_rates is not None and attribution is not None:
                self.path_rates.add_batch(
                    switch, ids, attribution.hop_ids, lpm.prefix_of_id, attribution.hop_names,
                    nbytes, packets, now, naming=attribution.hop_names,
                )  # fmt: skip
            if self.matrix is not None:
                input_if = _both(v4_mask, batch.v4_input_if, v6_mask, batch.v6_input_if)
                if attribution is None:
                    attribution = Attribution(
                        np.full(len(ids), -1, np.int64), np.zeros(len(ids), np.uint32), []
                    )
                self.matrix.add(
                    switch, input_if, attribution.hop_ids, attribution.hop_names, attribution.peer_asn,
                    nbytes, packets, now,
                )  # fmt: skip
        samples = len(ids)
        unrouted = int(np.count_nonzero(ids < 0))
        self.totals.flow_samples += samples
        self.totals.unrouted_samples += unrouted
        self.totals.bytes += float(nbytes.sum())
        self.totals.packets += float(packets.sum())
        self._m_samples.inc(samples, switch=switch)
        if unrouted:
            self._m_unrouted.inc(unrouted, switch=switch)

    def _prune_paths(self, now: float) -> None:
        """Forget quiet paths now and then (per-path rates are the collector's to bound)."""
        if self.path_rates is None:
            return
        if self._paths_pruned_at is None:
            self._paths_pruned_at = now
        elif now - self._paths_pruned_at >= PATH_PRUNE_EVERY_S:
            self._paths_pruned_at = now
            for switch in self._switch_names:
                self.path_rates.prune(switch, now, PATH_PRUNE_BELOW_BYTES_PER_S)

    def _attribute(
        self,
        batch: SampleBatch,
        switch: str,
        lpm: LpmTable,
        ids: npt.NDArray[np.int64],
        v4_mask: npt.NDArray[np.bool_] | None,
        v6_mask: npt.NDArray[np.bool_] | None,
        now: float,
    ) -> Attribution | None:
        """The path of each sample (None without a RIB to ask)."""
        if self._attributor is None:
            return None
        hops = _both(v4_mask, batch.v4_next_hop, v6_mask, batch.v6_next_hop)
        return self._attributor.attribute(switch, lpm, ids, hops, batch.next_hops, now)

    def _count_batch(self, batch: SampleBatch, now: float) -> None:
        totals = self.totals
        totals.datagrams += batch.datagrams
        totals.counter_samples += batch.counter_samples
        totals.non_ip_samples += batch.non_ip_samples
        if batch.datagrams:
            self._m_datagrams.inc(batch.datagrams)
        if batch.counter_samples:
            self._m_counter_samples.inc(batch.counter_samples)
        if batch.non_ip_samples:
            self._m_non_ip.inc(batch.non_ip_samples)
        for (reason, agent), count in batch.malformed.items():
            totals.malformed_datagrams += count
            self._m_malformed.inc(count, reason=reason, agent=self._agent_label(agent))
            self._log.warn(
                f"malformed:{reason}",
                now,
                f"dropped {count} malformed sFlow datagram(s) from {agent}: {reason}",
            )
        for agent, count in batch.lost_datagrams.items():
            if count > 0:
                totals.lost_datagrams += count
                self._m_lost.inc(count, agent=self._agent_label(agent))
        for agent, count in batch.agent_drops.items():
            if count > 0:
                totals.agent_dropped_samples += count
                self._m_agent_drops.inc(count, agent=self._agent_label(agent))
        for (exporter, unit), count in batch.export_lost.items():
            if count > 0:
                self._m_export_lost.inc(count, exporter=self._agent_label(exporter), unit=unit)
        for kind, count in batch.state_limited.items():
            self._m_state_limited.inc(count, kind=kind)
            self._log.warn(f"state_limited:{kind}", now, f"per-exporter state at its bound: {count} {kind}")

    def _count_unknown_agents(
        self,
        batch: SampleBatch,
        v4_switch: npt.NDArray[np.int64],
        v6_switch: npt.NDArray[np.int64],
        now: float,
    ) -> None:
        unknown_v4 = batch.v4_agent[v4_switch < 0]
        unknown_v6 = batch.v6_agent[v6_switch < 0]
        if not len(unknown_v4) and not len(unknown_v6):
            return
        counts = np.bincount(np.concatenate((unknown_v4, unknown_v6)).astype(np.int64))
        for agent_index in np.flatnonzero(counts).tolist():
            agent = batch.agents[agent_index]
            count = int(counts[agent_index])
            self.totals.unknown_agent_samples += count
            self._m_unknown_agent.inc(count, agent=self._agent_label(agent))
            self._log.warn(
                "unknown_agent",
                now,
                f"dropped {count} flow sample(s) from sFlow agent {agent}: not in any switch's sflow_agents",
            )


def _mask(switch_of_sample: npt.NDArray[np.int64], index: int) -> npt.NDArray[np.bool_] | None:
    """Samples of switch ``index``; None when that is all of them (the common one-switch case)."""
    mask = switch_of_sample == index
    return None if mask.all() else mask


def _pick(mask: npt.NDArray[np.bool_] | None, values: npt.NDArray[_T]) -> npt.NDArray[_T]:
    return values if mask is None else values[mask]


def _both(
    v4_mask: npt.NDArray[np.bool_] | None,
    v4: npt.NDArray[_T],
    v6_mask: npt.NDArray[np.bool_] | None,
    v6: npt.NDArray[_T],
) -> npt.NDArray[_T]:
    """A per-sample column of the switch's samples, IPv4 then IPv6 (the order of the ids)."""
    picked4, picked6 = _pick(v4_mask, v4), _pick(v6_mask, v6)
    if not len(picked6):
        return picked4
    if not len(picked4):
        return picked6
    return np.concatenate((picked4, picked6))
