"""The hand-off between flow decoding and accounting: many samples as flat numpy arrays.

The fast decoder (``collector.sflow_fast``) fills a :class:`SampleBatch` from many datagrams; the
accounting (``collector.accounting``) consumes it with vectorised prefix lookups. Per-sample
Python objects would cost more than the decoding itself at 10^6 samples/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class SampleBatch:
    """Flow samples of one or more datagrams, split by destination family.

    ``*_agent`` holds an index into ``agents`` (the exporter/agent address strings seen in this
    batch) so samples can be mapped to switches. Byte and packet counts are already scaled by
    each sample's sampling rate (frame length × rate, and rate).
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
