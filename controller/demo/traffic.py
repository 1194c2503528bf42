"""The demo's switch sFlow agent: Zipf-mixed flow samples sent over UDP at a steady rate.

Destinations are drawn from each family's Zipf ranking (:class:`topfib.controller.demo.table.FamilyTable`),
a random host inside the chosen prefix. Flow samples are encoded once per template with
:mod:`topfib.collector.sflow.encode` and then patched with the destination and sequence numbers, so a few
thousand samples per second cost a few percent of a core. Runs in its own thread; :meth:`stop`
joins it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from topfib.collector.sflow.encode import PROTO_TCP, PROTO_UDP, FlowSampleSpec, encode_flow_sample
from topfib.controller.demo.table import DemoTable, FamilyTable

SAMPLES_PER_DATAGRAM = 7
TICK_S = 0.05
_PLACEHOLDER = {4: "203.0.113.254", 6: "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"}


@dataclass(frozen=True, slots=True)
class _Template:
    encoded: bytes
    dst_offset: int


def _templates(family: int, sampling_rate: int, rng: random.Random, count: int = 32) -> list[_Template]:
    """Encoded flow samples with varied sources, ports, protocols and frame sizes."""
    placeholder = ipaddress.ip_address(_PLACEHOLDER[family]).packed
    templates = []
    for _ in range(count):
        spec = FlowSampleSpec(
            src=(f"198.51.100.{rng.randrange(1, 255)}" if family == 4
                 else f"2001:db8::{rng.randrange(1, 0xFFFF):x}"),
            dst=_PLACEHOLDER[family],
            protocol=PROTO_TCP if rng.random() < 0.85 else PROTO_UDP,
            src_port=rng.choice((443, 80, 53, rng.randrange(1024, 65536))),
            dst_port=rng.randrange(1024, 65536),
            frame_length=rng.choice((1518, 1518, 1518, 64, 590, 1280)),
            sampling_rate=sampling_rate,
            input_if=rng.randrange(1, 49),
            output_if=rng.randrange(49, 65),
        )
        encoded = encode_flow_sample(spec)
        templates.append(_Template(encoded, encoded.index(placeholder)))
    return templates


class _Hosts:
    """A random host address inside a prefix, as packed bytes (prefix parses are cached)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._parsed: dict[str, tuple[int, int, int] | None] = {}

    def host(self, prefix: str) -> bytes | None:
        parsed = self._parsed.get(prefix, ())
        if parsed == ():
            try:
                network = ipaddress.ip_network(prefix)
                parsed = (int(network.network_address), network.max_prefixlen - network.prefixlen,
                          network.version)
            except ValueError:
                parsed = None
            if len(self._parsed) > 200_000:
                self._parsed.clear()
            self._parsed[prefix] = parsed
        if parsed is None:
            return None
        base, host_bits, version = parsed  # type: ignore[misc]
        address = base | (self._rng.getrandbits(host_bits) if host_bits else 0)
        return address.to_bytes(4 if version == 4 else 16, "big")


class SflowGenerator:
    """Sends ``samples_per_s`` flow samples (``v6_share`` of them IPv6) from ``agent`` to ``target``."""

    def __init__(
        self,
        table: DemoTable,
        agent: str,
        target: tuple[str, int],
        samples_per_s: float = 3000.0,
        v6_share: float = 0.2,
        sampling_rate: int = 4096,
        seed: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.table = table
        self.agent = ipaddress.ip_address(agent)
        self.target = target
        self.samples_per_s = samples_per_s
        self.v6_share = v6_share
        rng = random.Random(seed)
        self._rng = rng
        self._np_rng = np.random.default_rng(seed)
        self._templates = {family: _templates(family, sampling_rate, rng) for family in (4, 6)}
        self._hosts = _Hosts(rng)
        self.sent_samples = 0
        self.sent_datagrams = 0
        self._sample_sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-sflow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _destinations(self, count: int) -> list[tuple[int, bytes]]:
        v6 = self._np_rng.random(count) < self.v6_share
        out: list[tuple[int, bytes]] = []
        for family, mask in ((4, ~v6), (6, v6)):
            wanted = int(np.count_nonzero(mask))
            if not wanted:
                continue
            table: FamilyTable = self.table.family(family)
            indices, _ = table.traffic.sample(wanted, 1, self._np_rng)
            for index in indices.tolist():
                host = self._hosts.host(table.prefixes[index])
                if host is not None:
                    out.append((family, host))
        self._rng.shuffle(out)
        return out

    def datagrams(self, count: int) -> list[bytes]:
        """``count`` samples' worth of datagrams (SAMPLES_PER_DATAGRAM samples each)."""
        samples = self._destinations(count)
        datagrams = []
        for start in range(0, len(samples), SAMPLES_PER_DATAGRAM):
            chunk = samples[start:start + SAMPLES_PER_DATAGRAM]
            encoded = []
            for family, host in chunk:
                template = self._rng.choice(self._templates[family])
                self._sample_sequence += 1
                sample = bytearray(template.encoded)
                struct.pack_into("!I", sample, 8, self._sample_sequence & 0xFFFFFFFF)
                sample[template.dst_offset:template.dst_offset + len(host)] = host
                encoded.append(bytes(sample))
            self.sent_datagrams += 1
            header = struct.pack("!II", 5, 1 if self.agent.version == 4 else 2) + self.agent.packed
            header += struct.pack("!IIII", 0, self.sent_datagrams & 0xFFFFFFFF,
                                  int(self._clock() * 1000) & 0xFFFFFFFF, len(encoded))
            datagrams.append(header + b"".join(encoded))
        return datagrams

    def _run(self) -> None:
        with socket.socket(socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET,
                           socket.SOCK_DGRAM) as sock:
            started = time.monotonic()
            while not self._stop.is_set():
                expected = int((time.monotonic() - started) * self.samples_per_s)
                if expected - self.sent_samples > self.samples_per_s:  # after a stall, catch up ≤ 1 s
                    self.sent_samples = expected - int(self.samples_per_s)
                due = expected - self.sent_samples
                if due > 0:
                    for datagram in self.datagrams(due):
                        with contextlib.suppress(OSError):  # buffer full: a lost datagram, as on a wire
                            sock.sendto(datagram, self.target)
                    self.sent_samples += due
                self._stop.wait(TICK_S)
