"""Coverage and churn on the full IPv4 table under stationary Zipf traffic, against the oracle.

    .venv/bin/python -m bench.bench_coverage [--alphas 1.0,1.2,1.4] [--caps 1000,16000,30000]
                                             [--duration 3600] [--warmup 18000] [--loop-period 30]
                                             [--min-fast-samples 4] [--samples-per-s 5000] [--jobs 3]
                                             [--margin 0.2] [--min-swap-gain 0.03] [--dwell 300]

The baseline is the oracle, computed in the same run on the same traffic: the best FIB in
hindsight (selection on the bytes each prefix actually received over the measured window).
Printed per (α, cap): out-of-sample coverage, oracle coverage, their ratio, churn per hour as a
share of N. The issue's bars: ratio ≥ 0.98 and churn ≤ 2 % of N per hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
import time
from pathlib import Path

from topfib.controller.demo.table import CORPUS_V4, corpus_location
from topfib.controller.sim.simulate import (
    CapResult,
    SimulationRib,
    SimulationSettings,
    ZipfStream,
    load_simulation_rib,
    simulate,
)
from topfib.controller.sim.zipf import ZipfTraffic

CORPUS_RIB = corpus_location() / CORPUS_V4


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rib", type=Path, default=CORPUS_RIB)
    parser.add_argument("--alphas", type=_numbers, default=[1.0, 1.2, 1.4])
    parser.add_argument("--caps", type=_numbers, default=[1000, 16000, 30000])
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--warmup", type=float, default=SimulationSettings.warmup_s)
    parser.add_argument("--samples-per-s", type=float, default=SimulationSettings.samples_per_s)
    parser.add_argument("--loop-period", type=float, default=SimulationSettings.loop_period_s)
    parser.add_argument("--min-fast-samples", type=float, default=SimulationSettings.min_fast_samples)
    parser.add_argument("--margin", type=float, default=SimulationSettings.margin)
    parser.add_argument("--min-swap-gain", type=float, default=SimulationSettings.min_swap_gain)
    parser.add_argument("--dwell", type=float, default=SimulationSettings.min_dwell_s)
    parser.add_argument("--no-evidence", action="store_true", help="selection compares scores only")
    parser.add_argument("--evidence-z", type=float, default=SimulationSettings.evidence_z)
    parser.add_argument(
        "--evidence-min-samples", type=float, default=SimulationSettings.evidence_min_samples
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="simulate this many alphas at once (processes)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress when piped

    started = time.perf_counter()
    sim_rib = load_simulation_rib(args.rib)
    print(f"{args.rib.name}: {len(sim_rib)} prefixes loaded in {time.perf_counter() - started:.1f} s")
    settings = dataclasses.replace(
        SimulationSettings(),
        duration_s=args.duration,
        warmup_s=args.warmup,
        samples_per_s=args.samples_per_s,
        loop_period_s=args.loop_period,
        min_fast_samples=args.min_fast_samples,
        margin=args.margin,
        min_swap_gain=args.min_swap_gain,
        min_dwell_s=args.dwell,
        use_evidence=not args.no_evidence,
        evidence_z=args.evidence_z,
        evidence_min_samples=args.evidence_min_samples,
        seed=args.seed,
    )
    print(settings.describe())
    header = ("alpha", "cap", "coverage", "oracle", "ratio", "churn/h", "% of N/h", "bars", "seconds")
    print("{:>5} {:>7} {:>9} {:>9} {:>7} {:>9} {:>9} {:>5} {:>8}".format(*header))
    caps = [int(c) for c in args.caps]
    global _SHARED  # forked workers inherit the loaded RIB instead of loading it again
    _SHARED = (sim_rib, caps, settings, args.seed)
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(min(args.jobs, len(args.alphas))) as pool:
            outcomes = pool.imap(_run_alpha, args.alphas)
            for alpha, (results, seconds) in zip(args.alphas, outcomes, strict=True):
                _print(alpha, results, seconds)
    else:
        for alpha in args.alphas:
            _print(alpha, *_run_alpha(alpha))


_SHARED: tuple[SimulationRib, list[int], SimulationSettings, int] | None = None


def _run_alpha(alpha: float) -> tuple[list[CapResult], float]:
    assert _SHARED is not None
    sim_rib, caps, settings, seed = _SHARED
    started = time.perf_counter()
    zipf = ZipfTraffic.build(len(sim_rib), alpha, seed)
    traffic = ZipfStream(zipf, settings.samples_per_s, settings.sampling_rate)
    results, _ = simulate(sim_rib, traffic, caps, settings)
    return results, time.perf_counter() - started


def _print(alpha: float, results: list[CapResult], seconds: float) -> None:
    for r in results:
        ratio = r.coverage / r.oracle_coverage if r.oracle_coverage else 0.0
        churn_share = 100.0 * r.churn_per_hour / r.cap
        ok = "ok" if ratio >= 0.98 and churn_share <= 2.0 else "MISS"
        print(
            f"{alpha:>5.2f} {r.cap:>7} {r.coverage:>9.4f} {r.oracle_coverage:>9.4f} {ratio:>7.4f} "
            f"{r.churn_per_hour:>9.1f} {churn_share:>8.2f}% {ok:>5} {seconds:>8.0f}"
        )
    for r in results:
        print(f"      α {alpha:g}, N {r.cap}: changes per hour from the start, % of N: {r.settling()}")


if __name__ == "__main__":
    main()
