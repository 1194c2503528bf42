"""`topfib replay FILE --to HOST:PORT [--rate SAMPLES_PER_S] [--loop]`: send a capture's flow datagrams.

FILE is a pcap/pcapng capture (every UDP payload that is sFlow v5, NetFlow v5/v9 or IPFIX is sent,
anything else in the capture is skipped) or a raw payload file (the whole file is one datagram).
``--rate`` paces by flow samples per second, counted from each datagram's header (an IPFIX
message counts as one); 0 sends as fast as the socket takes them.

The core (:func:`flow_payloads`, :func:`sample_count`, :class:`Pacer`) is pure; :func:`replay`
does the sending and :func:`run_replay` is the CLI shell.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from topfib.collector.common.pcap import PcapError, is_capture, udp_payloads

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


def _forever() -> Iterable[int]:
    n = 0
    while True:
        yield n
        n += 1


def parse_destination(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6; a host name is resolved) → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port_text)


def run_replay(file: Path, to: str, rate: float, loop: bool) -> int:
    """CLI body: 0 when sent, 1 when the file is unreadable or holds no flow datagrams, 2 for bad --to."""
    try:
        host, port = parse_destination(to)
        if rate < 0:
            raise ValueError("--rate must be >= 0")
        address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (ValueError, OSError) as exc:
        print(f"topfib replay: bad --to/--rate: {exc}", file=sys.stderr)
        return 2
    try:
        payloads = flow_payloads(file, file.read_bytes())
    except (OSError, PcapError) as exc:
        print(f"topfib replay: {file}: {exc}", file=sys.stderr)
        return 1
    if not payloads:
        print(f"topfib replay: {file}: no sFlow/NetFlow/IPFIX datagrams", file=sys.stderr)
        return 1
    family, _, _, _, sockaddr = address
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(sockaddr)
        stats = ReplayStats()
        started = time.monotonic()
        try:
            replay(payloads, sock.send, rate, _forever() if loop else range(1), stats=stats)
        except KeyboardInterrupt:
            stats.seconds = time.monotonic() - started
            print("topfib replay: interrupted", file=sys.stderr)
    print(f"topfib replay: {file} -> {to}: {stats.summary()}", file=sys.stderr)
    return 0
