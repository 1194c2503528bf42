"""Send a capture's flow datagrams, as `topfib replay` does (its command: topfib.controller.cli.replay).

FILE is a pcap/pcapng capture (every UDP payload that is sFlow v5, NetFlow v5/v9 or IPFIX is sent,
anything else in the capture is skipped) or a raw payload file (the whole file is one datagram).
``--rate`` paces by flow samples per second, counted from each datagram's header (an IPFIX
message counts as one); 0 sends as fast as the socket takes them.

The core (:func:`flow_payloads`, :func:`sample_count`, :class:`Pacer`) is pure; :func:`replay`
does the sending.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from topfib.collector.common.pcap import is_capture, udp_payloads

RAW_PAYLOAD_SUFFIXES = frozenset((".bin", ".dat", ".dump"))
_SFLOW_V5 = b"\x00\x00\x00\x05"
_PACE_EVERY = 32  # check the clock every this many datagrams: pacing costs less than sending


def flow_protocol(payload: bytes) -> str | None:
    """'sflow5', 'netflow5', 'netflow9', 'ipfix', or None for anything else."""
    if payload[:4] == _SFLOW_V5 and len(payload) >= 28:
        return "sflow5"
    version = payload[:2]
    if version == b"\x00\x05" and len(payload) >= 24:
        return "netflow5"
    if version == b"\x00\x09" and len(payload) >= 20:
        return "netflow9"
    if version == b"\x00\x0a" and len(payload) >= 16:
        return "ipfix"
    return None


def sample_count(payload: bytes) -> int:
    """Flow samples (sFlow samples, NetFlow records or flowsets) the header claims; at least 1."""
    protocol = flow_protocol(payload)
    if protocol == "sflow5":
        address_type = struct.unpack_from("!I", payload, 4)[0]
        offset = 8 + (16 if address_type == 2 else 4) + 12
        if len(payload) >= offset + 4:
            return max(1, int(struct.unpack_from("!I", payload, offset)[0]))
        return 1
    if protocol in ("netflow5", "netflow9"):
        return max(1, int(struct.unpack_from("!H", payload, 2)[0]))
    return 1


def flow_payloads(path: Path, data: bytes) -> list[bytes]:
    """The flow datagrams of a capture or raw payload file; raises PcapError for a broken capture."""
    if path.suffix.lower() in RAW_PAYLOAD_SUFFIXES or not is_capture(data):
        return [data] if flow_protocol(data) else []
    return [payload for _, payload in udp_payloads(data) if flow_protocol(payload)]


class Pacer:
    """Says how long to wait so that ``done`` samples are sent no faster than ``rate`` per second."""

    def __init__(self, rate: float, start: float) -> None:
        self.rate = rate
        self.start = start

    def delay(self, done: int, now: float) -> float:
        if self.rate <= 0:
            return 0.0
        return max(0.0, self.start + done / self.rate - now)


@dataclass
class ReplayStats:
    datagrams: int = 0
    samples: int = 0
    send_errors: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.samples / self.seconds if self.seconds > 0 else 0.0
        return (
            f"datagrams={self.datagrams} samples={self.samples} send_errors={self.send_errors} "
            f"seconds={self.seconds:.3f} samples_per_s={rate:.0f}"
        )


def replay(
    payloads: Sequence[bytes],
    send: Callable[[bytes], object],
    rate: float,
    passes: Iterable[int],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stats: ReplayStats | None = None,
) -> ReplayStats:
    """Send ``payloads`` once per item of ``passes``, paced to ``rate`` samples/s (0: unpaced).

    ``stats`` (returned) is updated as it goes, so an interrupted caller still has the counts.
    """
    counts = [sample_count(p) for p in payloads]
    stats = ReplayStats() if stats is None else stats
    start = clock()
    pacer = Pacer(rate, start)
    for _ in passes:
        for index, payload in enumerate(payloads):
            if rate > 0 and stats.datagrams % _PACE_EVERY == 0:
                wait = pacer.delay(stats.samples, clock())
                if wait > 0:
                    sleep(wait)
            try:
                send(payload)
            except OSError:
                # e.g. ECONNREFUSED from an earlier ICMP port-unreachable: count it, keep going
                stats.send_errors += 1
                continue
            stats.datagrams += 1
            stats.samples += counts[index]
        stats.seconds = clock() - start
    return stats
