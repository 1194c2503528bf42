"""Traffic from an sFlow capture (pcap/pcapng, or one raw datagram payload) for the simulator.

Every flow sample with a destination address becomes (prefix index, bytes = sampled length ×
its sampling rate); a destination without a RIB match gets index -1 (it follows the default
route, so it is not in the coverage denominator). A capture has its own pace, usually far
shorter than a simulated hour: its samples are replayed in capture order, spread evenly over
the simulated time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from topfib.collector.common.pcap import is_capture, udp_payloads
from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.records import SflowError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CaptureTraffic:
    """Decoded samples of a capture and how the decoding went."""

    prefix_ids: IntArray
    nbytes: FloatArray
    total_s: float  # the simulated time the samples are spread over
    problems: Counter[str] = field(default_factory=Counter)

    def draw(self, start: float, end: float, rng: np.random.Generator) -> tuple[IntArray, FloatArray]:
        """The samples that fall in [start, end) of the simulated time."""
        count = len(self.prefix_ids)
        first = min(count, round(start / self.total_s * count))
        last = min(count, round(end / self.total_s * count))
        return self.prefix_ids[first:last], self.nbytes[first:last]


def _payloads(data: bytes) -> Iterator[bytes]:
    if is_capture(data[:4]):
        for _, payload in udp_payloads(data):
            yield payload
    else:
        yield data


def load_capture(path: Path, index_of: Callable[[str], int], total_s: float) -> CaptureTraffic:
    """Samples of ``path``; ``index_of`` maps a destination address to a prefix index (-1: none).

    Raises OSError when unreadable; a datagram that is not sFlow is counted, not fatal.
    """
    ids: list[int] = []
    nbytes: list[float] = []
    problems: Counter[str] = Counter()
    for payload in _payloads(path.read_bytes()):
        try:
            datagram = decode_datagram(payload)
        except SflowError as exc:
            problems[exc.reason] += 1
            continue
        for sample in datagram.flow_samples:
            length = sample.frame_length or sample.ip_length
            if sample.dst is None or not length:
                problems["no_destination"] += 1
                continue
            ids.append(index_of(sample.dst))
            nbytes.append(float(length) * max(1, sample.sampling_rate))
    return CaptureTraffic(np.array(ids, np.int64), np.array(nbytes, np.float64), total_s, problems)
