"""CPU cost of the sFlow fast path against the typed decoder, on a realistic datagram mix.

    .venv/bin/python -m bench.bench_sflow_fast [--datagrams N] [--repeat R]

Mix: 7 flow samples per datagram, raw Ethernet header records (IPv4 90 % / IPv6 10 %, half
802.1Q-tagged) plus an extended switch record, one agent. Reports samples per CPU-second
(process time, best of R) and CPU-seconds per million samples for: the C fast path, its
pure-Python fallback, and the typed decoder (the per-sample Python baseline); ratios are
against that baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.encode import realistic_mix
from topfib.collector.sflow.fast import FastSflowDecoder, c_extension_available

SAMPLES_PER_DATAGRAM = 7


def cpu_seconds(run: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    datagrams = realistic_mix(args.datagrams, SAMPLES_PER_DATAGRAM, v6_share=0.1, seed=1)
    items = [(datagram, "192.0.2.1") for datagram in datagrams]
    samples = len(datagrams) * SAMPLES_PER_DATAGRAM
    # the Python paths are ~50x slower: time them on a slice and scale per sample
    slow_items = items[: max(1, len(items) // 10)]
    slow_samples = len(slow_items) * SAMPLES_PER_DATAGRAM

    def typed() -> None:
        for datagram, _ in slow_items:
            decode_datagram(datagram)

    def fast(implementation: str, chosen: list[tuple[bytes, str]]) -> Callable[[], None]:
        def run() -> None:
            decoder = FastSflowDecoder(implementation)  # type: ignore[arg-type]
            decoder.feed_many(chosen)
            batch = decoder.take()
            assert batch.flow_samples == len(chosen) * SAMPLES_PER_DATAGRAM and not batch.malformed

        return run

    results: list[tuple[str, float]] = []
    baseline = cpu_seconds(typed, args.repeat) / slow_samples
    results.append(("typed decoder (baseline)", baseline))
    results.append(
        ("fast path, Python fallback", cpu_seconds(fast("python", slow_items), args.repeat) / slow_samples)
    )
    if c_extension_available():
        results.append(("fast path, C extension", cpu_seconds(fast("c", items), args.repeat) / samples))
    else:
        print("C extension not built: python setup.py build_ext --inplace (or pip install -e .)")

    print(f"{samples:,} samples in {len(datagrams):,} datagrams ({SAMPLES_PER_DATAGRAM}/datagram, IPv6 10 %)")
    print(f"{'path':30} {'samples/CPU-s':>15} {'CPU-s per 1M':>13} {'vs baseline':>12}")
    for name, per_sample in results:
        print(f"{name:30} {1 / per_sample:15,.0f} {per_sample * 1e6:13.3f} {baseline / per_sample:11.1f}x")


if __name__ == "__main__":
    main()
