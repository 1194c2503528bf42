"""CPU cost of flow-to-path attribution in the collector pipeline, against accounting alone.

    .venv/bin/python -m bench.bench_paths [--prefixes N] [--samples N] [--batch N] [--repeat R]

A RIB of ``--prefixes`` IPv4 prefixes, each with two ADD-PATH paths (two transits), and batches
of samples drawn Zipf-like over them; a third of the samples name the non-best path's next hop,
a third the best path's, a third none. Reported per million samples (process time, best of R),
in the same run: prefix accounting alone (the baseline), plus attribution and per-path rates,
plus the traffic matrix as well. The attribution cache is refreshed as in the service (every
5 s of the simulated clock, which advances 50 ms per batch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch
from topfib.collector.common.metrics import Registry
from topfib.collector.matrix.traffic_matrix import TrafficMatrix
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib

AGENT = "192.0.2.250"
HOPS = ["192.0.2.1", "192.0.2.2"]
BATCH_PERIOD_S = 0.05


class Replay:
    def __init__(self, batches: list[SampleBatch]) -> None:
        self.batches = batches
        self.index = 0

    def feed(self, datagram: bytes, exporter: str) -> None:
        raise NotImplementedError

    def feed_many(self, datagrams: list[tuple[bytes, str]]) -> None:
        raise NotImplementedError

    def take(self) -> SampleBatch:
        batch = self.batches[self.index % len(self.batches)]
        self.index += 1
        return batch


def build_rib(prefixes: int) -> tuple[Rib, np.ndarray]:
    rib = Rib()
    best = BgpPath(next_hop=HOPS[0], as_path=(64500, 3356), local_pref=200, peer=HOPS[0])
    other = BgpPath(next_hop=HOPS[1], as_path=(64501, 1299, 3356), peer=HOPS[1])
    networks = (np.arange(prefixes, dtype=np.uint64) + (11 << 16)) << np.uint64(8)  # 0.11.0.0/24 upwards
    for network in networks.tolist():
        prefix = f"{network >> 24}.{network >> 16 & 255}.{network >> 8 & 255}.0/24"
        rib.announce(HOPS[0], prefix, best)
        rib.announce(HOPS[1], prefix, other)
    return rib, networks


def build_batches(networks: np.ndarray, samples: int, batch: int, seed: int) -> list[SampleBatch]:
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.1, samples) - 1, len(networks) - 1)
    dst = (networks[ranks] | rng.integers(1, 255, samples).astype(np.uint64)).astype(np.uint32)
    hop = rng.integers(-1, 2, samples).astype(np.int32)
    out = []
    for start in range(0, samples, batch):
        rows = slice(start, min(samples, start + batch))
        count = rows.stop - rows.start
        out.append(
            SampleBatch(
                agents=[AGENT],
                v4_agent=np.zeros(count, np.uint32),
                v4_dst=dst[rows],
                v4_bytes=np.full(count, 1500.0 * 1000),
                v4_packets=np.full(count, 1000.0),
                next_hops=list(HOPS),
                v4_input_if=rng.integers(1, 48, count).astype(np.uint32),
                v4_next_hop=hop[rows],
                datagrams=count // 7,
                flow_samples=count,
            )
        )
    return out


def cpu_per_million(collector: Collector, batches: int, samples: int, repeat: int) -> float:
    best = float("inf")
    now = 0.0
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(batches):
            now += BATCH_PERIOD_S
            collector.flush(now)
        best = min(best, time.process_time() - start)
    return best / samples * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rib, networks = build_rib(args.prefixes)
    batches = build_batches(networks, args.samples, args.batch, seed=1)

    def collector(paths: bool, matrix: bool) -> Collector:
        made = Collector(
            Replay(batches), {AGENT: "edge"}, lambda _: rib.lpm, PrefixRates(), Registry(),
            rib_for=(lambda _: rib) if paths or matrix else None,
            path_rates=PathRates() if paths else None,
            matrix=TrafficMatrix(registry=Registry()) if matrix else None,
        )  # fmt: skip
        made.flush(0.0)  # warm-up: first lookups of every prefix, table build
        for _ in range(len(batches)):
            made.flush(0.0)
        return made

    print(f"{args.samples:,} samples in batches of {args.batch:,}, {args.prefixes:,} prefixes × 2 paths")
    print(f"{'pipeline':44} {'CPU-s per 1M samples':>22} {'vs baseline':>12}")
    baseline = None
    for label, paths, matrix in (
        ("prefix accounting (baseline)", False, False),
        ("+ attribution and per-path rates", True, False),
        ("+ attribution, per-path rates, traffic matrix", True, True),
    ):
        cost = cpu_per_million(collector(paths, matrix), len(batches), args.samples, args.repeat)
        baseline = baseline or cost
        print(f"{label:44} {cost:22.3f} {cost / baseline:11.2f}x")


if __name__ == "__main__":
    main()
