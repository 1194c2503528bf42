"""Traffic matrix cost per accounted batch, against the prefix accounting the batch gets anyway.

    .venv/bin/python -m bench.bench_matrix [--repeat 30] [--asns 2000] [--interfaces 48]

Baseline, measured in the same run on the same batch: ``PrefixRates.add_batch`` (the per-prefix
decayed rates every sample already goes through). Measured: ``TrafficMatrix.add`` on that batch,
with keys drawn from 48 input interfaces × 8 next-hops (and unrouted) × 2,000 peer ASNs (Zipf-
weighted; ``--interfaces`` and ``--asns`` change those); once with room for every key and once
with ``max_rows`` = 500, so the table overflows and compacts. Printed: median CPU microseconds
per batch and the ratio to the baseline, plus the cost of closing the interval (building its rows).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.metrics import Registry
from topfib.collector.matrix.traffic_matrix import TrafficMatrix
from topfib.collector.rib.lpm import LpmTable

HOPS = [f"192.0.2.{i}" for i in range(1, 9)]


def cpu_us(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--asns", type=int, default=2_000, help="distinct peer ASNs")
    parser.add_argument("--interfaces", type=int, default=48, help="distinct input interfaces")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    lpm = LpmTable(f"10.{i // 256}.{i % 256}.0/24" for i in range(10_000))
    print(f"{'batch':>7} {'baseline us':>12} {'matrix us':>10} {'ratio':>6} {'overflow us':>12} {'ratio':>6} "
          f"{'close ms':>9} {'rows':>6}")
    for size in (1_000, 10_000, 100_000):
        addresses = (np.uint32(10 << 24) + rng.integers(0, 10_000 * 256, size)).astype(np.uint32)
        ids = lpm.lookup_v4_ids(addresses)
        nbytes = rng.integers(64, 1500, size).astype(np.float64) * 1000
        packets = np.full(size, 1000.0)
        input_if = rng.integers(1, args.interfaces + 1, size).astype(np.uint32)
        hop_ids = rng.integers(-1, len(HOPS), size).astype(np.int64)
        asns = (rng.zipf(1.3, size) % args.asns + 64_000).astype(np.uint32)
        rates = PrefixRates(30.0, 3600.0)
        baseline = cpu_us(partial(rates.add_batch, "edge1", lpm, ids, nbytes, packets, 1000.0), args.repeat)
        results = []
        for max_rows in (1_000_000, 500):
            matrix = TrafficMatrix(60, max_rows=max_rows, registry=Registry())
            add = partial(matrix.add, "edge1", input_if, hop_ids, HOPS, asns, nbytes, packets, 1000.0)
            results.append(cpu_us(add, args.repeat))
        matrix = TrafficMatrix(60, max_rows=1_000_000, registry=Registry())
        matrix.add("edge1", input_if, hop_ids, HOPS, asns, nbytes, packets, 1000.0)
        started = time.process_time()
        (closed,) = matrix.flush(1001.0)
        close_ms = (time.process_time() - started) * 1e3
        print(f"{size:>7} {baseline:>12.0f} {results[0]:>10.0f} {results[0] / baseline:>6.2f} "
              f"{results[1]:>12.0f} {results[1] / baseline:>6.2f} {close_ms:>9.1f} {len(closed.rows):>6}")


if __name__ == "__main__":
    main()
