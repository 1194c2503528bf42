"""A realistic sFlow stream for the collector benchmark, drawn from a full routing table.

Destinations are Zipf-distributed over the prefixes of the full IPv4 and IPv6 tables (a random,
seeded ranking of the prefixes; a random host inside the chosen prefix), ``v6_share`` of samples
IPv6, a small ``unrouted_share`` to addresses outside every table (100.64.0.0/10, fc00::/7), about
7 samples per datagram, from two agents with different sampling rates (so per-sample scaling is
exercised). Flow samples are encoded once per template with ``topfib.collector.sflow.encode`` and then
patched (destination, sequence numbers, sample pool): 10⁶ samples take seconds, not minutes.

    .venv/bin/python -m bench.gen_traffic --samples 1000000 --out /tmp/topfib-bench/traffic.npz
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from topfib.collector.sflow.encode import (
    PROTO_TCP,
    PROTO_UDP,
    FlowSampleSpec,
    encode_datagram,
    encode_flow_sample,
)
from topfib.controller.demo.table import corpus_location

CORPUS_BGP = corpus_location() / "bgp"
V4_TABLE = CORPUS_BGP / "mccurtain__routeviews-rv2-20240406.pfx2as.gz"
V6_TABLE = CORPUS_BGP / "pytricia__routeviews-rv6-20160202-1200.pfx2as.gz"

# (agent address, sampling rate)
AGENTS = (("192.0.2.1", 4096), ("192.0.2.2", 1024))
_V4_PLACEHOLDER = "203.0.113.254"
_V6_PLACEHOLDER = "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"
_UNROUTED_V4 = (0x64400000, 10)  # 100.64.0.0/10, shared address space: never in the DFZ
_UNROUTED_V6 = (0xFC00 << 112, 7)  # fc00::/7, unique local


@dataclass(frozen=True)
class Table:
    """Prefixes of one family as integers: network (Python ints) and length."""

    networks: list[int]
    lengths: list[int]

    def prefix_strings(self, family: int) -> list[str]:
        if family == 4:
            return [
                f"{ipaddress.IPv4Address(n)}/{n_len}"
                for n, n_len in zip(self.networks, self.lengths, strict=True)
            ]
        return [
            f"{ipaddress.IPv6Address(n)}/{n_len}"
            for n, n_len in zip(self.networks, self.lengths, strict=True)
        ]


def load_pfx2as(path: Path, family: int) -> Table:
    """CAIDA pfx2as (``network<TAB>length<TAB>asn``, gzip) → the prefixes, host bits cleared."""
    bits = 32 if family == 4 else 128
    parse = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    networks: list[int] = []
    lengths: list[int] = []
    seen: set[tuple[int, int]] = set()
    with gzip.open(path, "rt") as lines:
        for line in lines:
            fields = line.split("\t")
            if len(fields) < 2:
                continue
            length = int(fields[1])
            network = int(parse(fields[0])) >> (bits - length) << (bits - length) if length else 0
            if (network, length) not in seen:
                seen.add((network, length))
                networks.append(network)
                lengths.append(length)
    return Table(networks, lengths)


def zipf_ranks(count: int, population: int, alpha: float, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """``count`` draws of ranks 0..population-1 with P(rank r) ∝ 1/(r+1)^alpha (inverse CDF)."""
    weights = 1.0 / np.arange(1, population + 1, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(count)), population - 1).astype(np.int64)


def random_hosts(networks: list[int], lengths: list[int], bits: int, rng: random.Random) -> list[int]:
    """One random address inside each (network, length)."""
    return [
        n | (rng.getrandbits(bits - n_len) if n_len < bits else 0)
        for n, n_len in zip(networks, lengths, strict=True)
    ]


def destinations(
    v4: Table, v6: Table, samples: int, v6_share: float, unrouted_share: float, alpha: float, seed: int
) -> list[tuple[int, int]]:
    """(family, address) per sample."""
    np_rng = np.random.default_rng(seed)
    rng = random.Random(seed)
    is_v6 = np_rng.random(samples) < v6_share
    unrouted = np_rng.random(samples) < unrouted_share
    out: list[tuple[int, int]] = [(0, 0)] * samples
    for family, table, mask, (u_net, u_len) in (
        (4, v4, ~is_v6, _UNROUTED_V4),
        (6, v6, is_v6, _UNROUTED_V6),
    ):
        bits = 32 if family == 4 else 128
        # a seeded random ranking: which prefix is the most popular is arbitrary
        order = np_rng.permutation(len(table.networks))
        where = np.flatnonzero(mask).tolist()
        ranks = zipf_ranks(len(where), len(table.networks), alpha, np_rng)
        chosen = order[ranks].tolist()
        nets = [table.networks[i] for i in chosen]
        lens = [table.lengths[i] for i in chosen]
        hosts = random_hosts(nets, lens, bits, rng)
        for position, host in zip(where, hosts, strict=True):
            if unrouted[position]:
                host = u_net | rng.getrandbits(bits - u_len)
            out[position] = (family, host)
    return out


@dataclass
class _Template:
    encoded: bytes
    dst_offset: int
    frame_length: int


def _templates(family: int, sampling_rate: int, seed: int, count: int = 64) -> list[_Template]:
    """Encoded flow samples with varied sources, ports, protocols, sizes and VLAN tags."""
    rng = random.Random(seed)
    placeholder = _V4_PLACEHOLDER if family == 4 else _V6_PLACEHOLDER
    packed = ipaddress.ip_address(placeholder).packed
    templates = []
    for _ in range(count):
        spec = FlowSampleSpec(
            src=f"198.51.100.{rng.randrange(1, 255)}"
            if family == 4
            else f"2001:db8::{rng.randrange(1, 0xFFFF):x}",
            dst=placeholder,
            protocol=PROTO_TCP if rng.random() < 0.85 else PROTO_UDP,
            src_port=rng.choice((443, 80, 53, rng.randrange(1024, 65536))),
            dst_port=rng.randrange(1024, 65536),
            frame_length=rng.choice((1518, 1518, 1518, 64, 590, 1280)),
            sampling_rate=sampling_rate,
            input_if=rng.randrange(1, 49),
            output_if=rng.randrange(49, 65),
            vlan=rng.choice((None, 100)),
            src_vlan=100,
            dst_vlan=200,
        )
        encoded = encode_flow_sample(spec)
        offset = encoded.find(packed)
        assert offset > 0 and encoded.find(packed, offset + 1) < 0
        templates.append(_Template(encoded, offset, spec.frame_length))
    return templates


@dataclass
class Traffic:
    """Encoded datagrams and, per datagram, what a lossless collector must count."""

    datagrams: list[bytes]
    samples: npt.NDArray[np.int64]
    scaled_bytes: npt.NDArray[np.int64]  # Σ frame_length × sampling rate
    scaled_packets: npt.NDArray[np.int64]  # Σ sampling rate
    agents: tuple[str, ...]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(d) for d in self.datagrams], np.int64)
        np.savez(
            path,
            blob=np.frombuffer(b"".join(self.datagrams), np.uint8),
            lengths=lengths,
            samples=self.samples,
            scaled_bytes=self.scaled_bytes,
            scaled_packets=self.scaled_packets,
            agents=np.array(self.agents),
        )

    @classmethod
    def load(cls, path: Path) -> Traffic:
        with np.load(path) as data:
            blob = data["blob"].tobytes()
            ends = np.cumsum(data["lengths"]).tolist()
            starts = [0, *ends[:-1]]
            return cls(
                datagrams=[blob[s:e] for s, e in zip(starts, ends, strict=True)],
                samples=data["samples"],
                scaled_bytes=data["scaled_bytes"],
                scaled_packets=data["scaled_packets"],
                agents=tuple(str(a) for a in data["agents"]),
            )


def generate(
    samples: int = 1_000_000,
    v6_share: float = 0.1,
    unrouted_share: float = 0.005,
    samples_per_datagram: int = 7,
    alpha: float = 1.0,
    seed: int = 1,
    v4: Table | None = None,
    v6: Table | None = None,
) -> Traffic:
    v4 = v4 or load_pfx2as(V4_TABLE, 4)
    v6 = v6 or load_pfx2as(V6_TABLE, 6)
    dests = destinations(v4, v6, samples, v6_share, unrouted_share, alpha, seed)
    rng = random.Random(seed + 1)
    templates = {
        (agent, family): _templates(family, rate, seed + 7 * i + family)
        for i, (agent, rate) in enumerate(AGENTS)
        for family in (4, 6)
    }
    datagrams: list[bytes] = []
    counts, scaled_bytes, scaled_packets = [], [], []
    sequence = {agent: 0 for agent, _ in AGENTS}
    sample_sequence = {agent: 0 for agent, _ in AGENTS}
    position = 0
    while position < samples:
        agent, rate = AGENTS[len(datagrams) % len(AGENTS)]
        size = min(samples_per_datagram, samples - position)
        body = bytearray()
        dgram_bytes = 0
        for family, address in dests[position : position + size]:
            template = rng.choice(templates[(agent, family)])
            sample = bytearray(template.encoded)
            sample_sequence[agent] += 1
            # flow sample: format, length, sequence (+8), source id, rate, sample pool (+20)
            struct.pack_into("!I", sample, 8, sample_sequence[agent])
            struct.pack_into("!I", sample, 20, (sample_sequence[agent] * rate) & 0xFFFFFFFF)
            sample[template.dst_offset : template.dst_offset + (4 if family == 4 else 16)] = address.to_bytes(
                4 if family == 4 else 16, "big"
            )
            body += sample
            dgram_bytes += template.frame_length * rate
        sequence[agent] += 1
        header = encode_datagram(agent, 0, sequence[agent], sequence[agent] * 100, [])
        header = header[:-4] + struct.pack("!I", size)
        datagrams.append(header + bytes(body))
        counts.append(size)
        scaled_bytes.append(dgram_bytes)
        scaled_packets.append(size * rate)
        position += size
    return Traffic(
        datagrams,
        np.array(counts, np.int64),
        np.array(scaled_bytes, np.int64),
        np.array(scaled_packets, np.int64),
        tuple(a for a, _ in AGENTS),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--v6-share", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/topfib-bench/traffic.npz"))
    args = parser.parse_args()
    started = time.monotonic()
    traffic = generate(args.samples, v6_share=args.v6_share, alpha=args.alpha, seed=args.seed)
    traffic.save(args.out)
    print(
        f"{args.out}: {len(traffic.datagrams)} datagrams, {int(traffic.samples.sum())} samples "
        f"in {time.monotonic() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
