"""``topfib simulate``: replay traffic through accounting and selection, report coverage per cap.

Simulated time runs in control-loop periods. In each period the traffic is sampled (sFlow-like:
a sample budget per second, each sample standing for frame × sampling-rate bytes; or the flow
samples of a capture, see :mod:`topfib.controller.sim.capture_traffic`), fed to the
collector's :class:`topfib.collector.accounting.prefix_rates.PrefixRates` (set up as the service sets it up:
the fast
rate counts through its lower bound, from ``min_fast_samples``), and judged against the FIB selected at
the *start* of the period — coverage is out-of-sample. At the end of the period selection runs again
on the decayed scores, and :func:`topfib.controller.program.plan.plan` counts the announces and withdraws.

After a warm-up (so churn is steady-state), per cap:

* coverage = bytes forwarded by an installed route / bytes to prefixes with a peer path;
* oracle coverage = the same for the best FIB in hindsight: selection run once on the bytes each
  prefix actually received over the measured window (no margin, no dwell);
* churn per hour = announces + withdraws per simulated hour;
* max installed = the largest FIB seen.

A cap N applies to each address family (the switch's IPv4 and IPv6 tables).

A prefix is "forwarded by an installed route" when it or a covering prefix is installed: selection
never hides a more-specific with another exit, so the covering route sends it the right way.

The RIB comes from a pfx2as/MRT file via :func:`topfib.collector.rib.loaders.load_rib_file`. A pfx2as table
has
no next-hops, so each prefix is given one of a few synthetic peers by its origin AS, which makes
nested prefixes with different exits (and so no-cache-hiding units) as common as in a real table.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from topfib.collector.accounting.prefix_rates import CANDIDATES_PER_SLOT, PrefixRates
from topfib.collector.common.prefixes import split_prefix
from topfib.collector.common.shares import top_k_shares
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import BgpPath
from topfib.controller.program.plan import plan
from topfib.controller.selection.model import (
    DEFAULT_EVIDENCE_MIN_SAMPLES,
    DEFAULT_EVIDENCE_Z,
    DEFAULT_MIN_SWAP_GAIN,
)
from topfib.controller.selection.select import SelectedRoute, SelectionPolicy, UnitCache, select
from topfib.controller.selection.static_rib import StaticRib
from topfib.controller.sim.oracle import hindsight_fib
from topfib.controller.sim.zipf import ZipfTraffic, parse_zipf

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SWITCH = "sim"
SYNTHETIC_PEERS = 8  # next-hop of a prefix = peer (origin AS mod 8)


@dataclass(frozen=True)
class SimulationSettings:
    """Everything a run depends on besides the RIB, the traffic and the caps (all stated in output)."""

    duration_s: float = 3600.0  # measured simulated time
    # simulated before measuring, so rates and the FIB are in steady state: five slow half-lives.
    # A slow rate's effective sample count reaches (1 − 2^(−T/h))/(1 + 2^(−T/h)) of its steady
    # value after T: 78 % at 3 h, 94 % at 5 h; until then challengers' lower bounds keep rising
    # and the FIB keeps trading up the thin prefixes its first fill, on seconds of traffic, took.
    warmup_s: float = 18000.0
    loop_period_s: float = 30.0  # one selection per period
    slice_s: float = 5.0  # samples are accounted at this granularity within a period
    samples_per_s: float = 5000.0  # sFlow sample budget of the switch
    sampling_rate: int = 4096  # 1 in N packets
    fast_half_life_s: float = 30.0
    slow_half_life_s: float = 3600.0
    min_fast_samples: float = 4.0  # fast rate: from this many samples, its 95 % lower bound (0: max)
    use_evidence: bool = True  # selection compares sampling intervals, not just scores
    evidence_z: float = DEFAULT_EVIDENCE_Z  # their width: score · (1 ± z/√samples)
    evidence_min_samples: float = DEFAULT_EVIDENCE_MIN_SAMPLES  # to displace an incumbent
    margin: float = 0.2
    min_swap_gain: float = DEFAULT_MIN_SWAP_GAIN  # share of the average TopN incumbent's score
    min_dwell_s: float = 300.0
    seed: int = 1
    restart_at_s: float | None = None  # a warm restart at this simulated time (simulate_restart)

    def _evidence(self) -> str:
        if not self.use_evidence:
            return ""
        return f"evidence-aware (z {self.evidence_z:g}, from {self.evidence_min_samples:g} samples) "

    def describe(self) -> str:
        return (
            f"{self.samples_per_s:g} samples/s at 1:{self.sampling_rate}, selection every "
            f"{self.loop_period_s:g} s, half-lives {self.fast_half_life_s:g}/{self.slow_half_life_s:g} s "
            f"(fast: 95 % lower bound, from {self.min_fast_samples:g} samples), "
            f"{self._evidence()}"
            f"margin {self.margin:g}, swap gain {self.min_swap_gain:g} of the average, "
            f"dwell {self.min_dwell_s:g} s, {self.warmup_s:g} s warm-up then "
            f"{self.duration_s:g} s measured, seed {self.seed}"
        )


@dataclass(frozen=True)
class CapResult:
    cap: int
    coverage: float
    oracle_coverage: float
    churn_per_hour: float
    max_installed: int
    # announces + withdraws in each simulated hour from the start, warm-up included (how fast
    # the FIB settles); not part of the JSON output
    hourly_changes: tuple[int, ...] = ()

    def settling(self) -> str:
        """Changes per hour from the start as % of the cap, e.g. ``"139.46 19.27 6.07"``."""
        return " ".join(f"{100.0 * changes / self.cap:.2f}" for changes in self.hourly_changes)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "cap": self.cap,
            "coverage": self.coverage,
            "oracle_coverage": self.oracle_coverage,
            "churn_per_hour": self.churn_per_hour,
            "max_installed": self.max_installed,
        }


class SimulationRib:
    """A RIB's prefixes by index (prefix order), with each prefix's covering prefixes as arrays."""

    def __init__(self, rib: StaticRib) -> None:
        self.rib = rib
        self.prefixes: list[str] = list(rib)
        self.index = {prefix: i for i, prefix in enumerate(self.prefixes)}
        self.ancestors = _ancestor_rows(self.prefixes)

    def __len__(self) -> int:
        return len(self.prefixes)

    def covered(self, installed: Sequence[str]) -> BoolArray:
        """Per prefix index: is it, or a prefix covering it, installed."""
        mask = np.zeros(len(self.prefixes) + 1, np.bool_)  # the extra slot stands for "no ancestor"
        mask[[self.index[p] for p in installed]] = True
        covered = mask[:-1].copy()
        for row in self.ancestors:
            covered |= mask[row]
        return covered


def _ancestor_rows(prefixes: Sequence[str]) -> list[IntArray]:
    """Row d holds each prefix's (d+1)-th closest covering prefix index (len(prefixes): none).

    ``prefixes`` must be in prefix order, where a prefix comes right before what it contains.
    """
    count = len(prefixes)
    chains: list[list[int]] = []
    stack: list[tuple[int, int, int]] = []  # (family, end of range, index)
    for index, prefix in enumerate(prefixes):
        family, network, length = split_prefix(prefix)
        while stack and (stack[-1][0] != family or stack[-1][1] <= network):
            stack.pop()
        chain = [entry[2] for entry in reversed(stack)]
        for depth, ancestor in enumerate(chain):
            if depth == len(chains):
                chains.append([count] * count)
            chains[depth][index] = ancestor
        stack.append((family, network + (1 << ((32 if family == 4 else 128) - length)), index))
    return [np.array(row, np.int64) for row in chains]


def synthetic_peer_rib(routes: dict[str, BgpPath]) -> StaticRib:
    """Re-home each prefix's best path onto one of :data:`SYNTHETIC_PEERS` peers by origin AS."""
    hops_v4 = [f"192.0.2.{i + 1}" for i in range(SYNTHETIC_PEERS)]
    hops_v6 = [f"2001:db8::{i + 1}" for i in range(SYNTHETIC_PEERS)]
    interned: dict[tuple[str, tuple[int, ...]], tuple[BgpPath, ...]] = {}
    rehomed: dict[str, tuple[BgpPath, ...]] = {}
    for prefix, best in routes.items():
        hops = hops_v6 if ":" in prefix else hops_v4
        next_hop = hops[(best.origin_as or 0) % SYNTHETIC_PEERS]
        key = (next_hop, best.as_path)
        if key not in interned:
            interned[key] = (BgpPath(next_hop=next_hop, as_path=best.as_path, peer=next_hop),)
        rehomed[prefix] = interned[key]
    return StaticRib(rehomed)


def load_simulation_rib(path: Path) -> SimulationRib:
    from topfib.collector.rib.loaders import load_rib_file
    from topfib.collector.rib.rib import Rib

    rib = Rib()
    load_rib_file(path, rib)
    best: dict[str, BgpPath] = {}
    for prefix in rib:
        path_now = rib.best(prefix)
        if path_now is not None:
            best[prefix] = path_now
    return SimulationRib(synthetic_peer_rib(best))


class PrefixIds(LpmTable):
    """Names simulation prefix indices for ``PrefixRates.add_batch`` (id = index in the RIB)."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__()
        self._names = prefixes

    def prefix_of_id(self, prefix_id: int) -> str:
        return self._names[prefix_id]


@dataclass
class _CapRun:
    policy: SelectionPolicy
    routes: dict[str, SelectedRoute] = field(default_factory=dict)
    covered: BoolArray | None = None
    covered_bytes: float = 0.0
    changes: int = 0
    max_installed: int = 0
    hourly_changes: list[int] = field(default_factory=list)


class TrafficSource(Protocol):
    def draw(self, start: float, end: float, rng: np.random.Generator) -> tuple[IntArray, FloatArray]:
        """(prefix index or -1 for no RIB match, bytes) of each sample in [start, end)."""
        ...


@dataclass(frozen=True)
class ZipfStream:
    """Zipf traffic at a sample budget: a Poisson number of samples per interval."""

    zipf: ZipfTraffic
    samples_per_s: float
    sampling_rate: int

    def draw(self, start: float, end: float, rng: np.random.Generator) -> tuple[IntArray, FloatArray]:
        count = int(rng.poisson(self.samples_per_s * (end - start)))
        return self.zipf.sample(count, self.sampling_rate, rng)


def simulate(
    sim_rib: SimulationRib,
    traffic: TrafficSource,
    caps: Sequence[int],
    settings: SimulationSettings,
) -> tuple[list[CapResult], FloatArray]:
    """Results per cap, and the bytes each prefix received during the measured window."""
    rng = np.random.default_rng(settings.seed)
    rates = _rates(settings)
    ids = PrefixIds(sim_rib.prefixes)
    runs = [
        _CapRun(
            SelectionPolicy(
                cap,
                cap,
                0,
                settings.margin,
                settings.min_dwell_s,
                settings.evidence_z,
                settings.evidence_min_samples,
                settings.min_swap_gain,
            )
        )
        for cap in caps
    ]
    window_bytes = np.zeros(len(sim_rib), np.float64)
    cache = UnitCache()  # the simulation RIB never changes: RIB answers stay valid throughout
    periods = math.ceil((settings.warmup_s + settings.duration_s) / settings.loop_period_s)
    slices = max(1, round(settings.loop_period_s / settings.slice_s))
    now = 0.0
    for period in range(periods):
        measuring = period * settings.loop_period_s >= settings.warmup_s
        for _ in range(slices):
            span = settings.loop_period_s / slices
            now += span
            prefix_ids, nbytes = traffic.draw(now - span, now, rng)
            packets = np.ones(len(prefix_ids))
            rates.add_batch(SWITCH, ids, prefix_ids, nbytes, packets, now)
            routed = prefix_ids >= 0  # no RIB match: default route, not in the denominator
            prefix_ids, nbytes = prefix_ids[routed], nbytes[routed]
            if measuring:
                window_bytes += np.bincount(prefix_ids, nbytes, minlength=len(sim_rib))
                for run in runs:
                    if run.covered is not None:
                        run.covered_bytes += float(nbytes[run.covered[prefix_ids]].sum())
        if settings.restart_at_s is not None and now - settings.loop_period_s < settings.restart_at_s <= now:
            from topfib.controller.sim.restart import warm_restart

            rates, fibs = warm_restart(rates, SWITCH, now, [run.routes for run in runs], max(caps))
            for run, fib in zip(runs, fibs, strict=True):
                run.routes = fib
        # what the service reads: the top scores for the largest cap, and every incumbent's
        candidates = rates.selection_inputs(
            SWITCH, now, CANDIDATES_PER_SLOT * 2 * max(caps), {p for run in runs for p in run.routes}
        )
        scores = candidates.scores
        evidence = candidates.evidence if settings.use_evidence else None
        for run in runs:
            selection = select(
                scores=scores,
                rib=sim_rib.rib,
                policy=run.policy,
                now=now,
                incumbents=run.routes,
                evidence=evidence,
                cache=cache,
            )
            desired = selection.desired()
            changes = plan(desired, {p: r.next_hop for p, r in run.routes.items()})
            hour = int((now - settings.loop_period_s) // 3600.0)  # the hour this period began in
            run.hourly_changes.extend([0] * (hour + 1 - len(run.hourly_changes)))
            run.hourly_changes[hour] += changes.announces + changes.withdraws
            if measuring:
                run.changes += changes.announces + changes.withdraws
                run.max_installed = max(run.max_installed, len(desired))
            if run.covered is None or desired.keys() != run.routes.keys():
                run.covered = sim_rib.covered(list(desired))
            run.routes = dict(selection.routes)
    total = float(window_bytes.sum())
    results = []
    for run in runs:
        oracle = _oracle_covered(sim_rib, window_bytes, run.policy)
        hours = settings.duration_s / 3600.0
        results.append(
            CapResult(
                cap=run.policy.cap_ipv4,
                coverage=run.covered_bytes / total if total else 0.0,
                oracle_coverage=float(window_bytes[oracle].sum()) / total if total else 0.0,
                churn_per_hour=run.changes / hours if hours else 0.0,
                max_installed=run.max_installed,
                hourly_changes=tuple(run.hourly_changes),
            )
        )
    return results, window_bytes


def _rates(settings: SimulationSettings) -> PrefixRates:
    """The service's accounting, as its config would set it up."""
    return PrefixRates(settings.fast_half_life_s, settings.slow_half_life_s, settings.min_fast_samples)


def _oracle_covered(sim_rib: SimulationRib, window_bytes: FloatArray, policy: SelectionPolicy) -> BoolArray:
    """Coverage mask of the best FIB in hindsight: selection on the bytes actually received."""
    received = np.flatnonzero(window_bytes > 0)
    scores = {sim_rib.prefixes[i]: float(window_bytes[i]) for i in received.tolist()}
    return sim_rib.covered(hindsight_fib(scores, sim_rib.rib, policy))


def write_plot(out: Path, window_bytes: FloatArray, results: Sequence[CapResult], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = top_k_shares(window_bytes)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    if len(curve):
        axes.plot(np.arange(1, len(curve) + 1), curve * 100.0, label="top-k prefixes in hindsight")
    for result in results:
        axes.scatter([result.cap], [result.coverage * 100.0], color="tab:red", zorder=3)
        axes.annotate(
            f"N={result.cap}: {result.coverage:.1%}",
            (result.cap, result.coverage * 100.0),
            textcoords="offset points",
            xytext=(6, -12),
            fontsize=8,
        )
    axes.set_xscale("log")
    axes.set_xlabel("routes installed")
    axes.set_ylabel("% of traffic")
    axes.set_ylim(0, 100)
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(title, fontsize=9)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def _index_of(sim_rib: SimulationRib) -> Callable[[str], int]:
    def index_of(address: str) -> int:
        try:
            prefix = sim_rib.rib.longest_match(address)
        except ValueError:
            return -1
        return -1 if prefix is None else sim_rib.index[prefix]

    return index_of


def run_simulate(
    rib: Path,
    traffic: str,
    caps: list[int],
    as_json: bool,
    plot: Path | None,
    duration: float,
    seed: int,
    warmup: float = SimulationSettings.warmup_s,
    restart_at: float | None = None,
) -> int:
    """CLI body of ``topfib simulate``: 0 on success, 2 on bad arguments or unreadable input."""
    try:
        alpha = parse_zipf(traffic)
    except ValueError as exc:
        print(f"--traffic: {exc}", file=sys.stderr)
        return 2
    if alpha is None and not Path(traffic).is_file():
        print(f"--traffic: {traffic!r} is neither zipf:ALPHA nor a capture file", file=sys.stderr)
        return 2
    if not caps or min(caps) < 1:
        print("--cap: give one or more caps >= 1", file=sys.stderr)
        return 2
    if not duration > 0:
        print("--duration: must be > 0", file=sys.stderr)
        return 2
    if not warmup >= 0:
        print("--warmup: must be >= 0", file=sys.stderr)
        return 2
    from topfib.collector.rib.loaders import RibFileError

    try:
        sim_rib = load_simulation_rib(rib)
    except (RibFileError, OSError) as exc:
        print(f"--rib: {exc}", file=sys.stderr)
        return 2
    if not len(sim_rib):
        print(f"--rib: {rib}: no prefixes", file=sys.stderr)
        return 2
    if restart_at is not None and not 0 < restart_at < warmup + duration:
        print("--restart-at: must be within the simulated time (0 < S < warm-up + duration)", file=sys.stderr)
        return 2
    settings = SimulationSettings(duration_s=duration, warmup_s=warmup, seed=seed, restart_at_s=restart_at)
    source: TrafficSource
    if alpha is not None:
        zipf = ZipfTraffic.build(len(sim_rib), alpha, seed)
        source = ZipfStream(zipf, settings.samples_per_s, settings.sampling_rate)
        what = f"zipf α={alpha:g}; {settings.describe()}"
    else:
        from topfib.controller.sim.capture_traffic import load_capture

        total_s = settings.warmup_s + settings.duration_s
        try:
            capture = load_capture(Path(traffic), _index_of(sim_rib), total_s)
        except OSError as exc:
            print(f"--traffic: {exc}", file=sys.stderr)
            return 2
        if not len(capture.prefix_ids):
            print(f"--traffic: {traffic}: no flow samples with a destination", file=sys.stderr)
            return 2
        source = capture
        skipped = f", skipped {dict(capture.problems)}" if capture.problems else ""
        what = (
            f"capture {Path(traffic).name}: {len(capture.prefix_ids)} samples spread over {total_s:g} s"
        )
        what += f"{skipped}; " + settings.describe().split(", selection", 1)[1].lstrip(", ")
    results, window_bytes = simulate(sim_rib, source, caps, settings)
    if as_json:
        for result in results:
            print(json.dumps(result.to_dict()))
    else:
        print(f"{rib.name}: {len(sim_rib)} prefixes, {what}")
        header = ("cap", "coverage", "oracle", "ratio", "churn/h", "% of N/h", "max FIB")
        print("{:>8} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8}".format(*header))
        for r in results:
            ratio = r.coverage / r.oracle_coverage if r.oracle_coverage else 0.0
            print(
                f"{r.cap:>8} {r.coverage:>9.4f} {r.oracle_coverage:>9.4f} {ratio:>7.4f} "
                f"{r.churn_per_hour:>9.1f} {100 * r.churn_per_hour / r.cap:>8.2f}% {r.max_installed:>8}"
            )
        for r in results:
            print(f"cap {r.cap}: changes per hour from the start, % of cap: {r.settling()}")
            if restart_at is not None:
                from topfib.controller.sim.restart import profile_line

                print(profile_line(r.cap, r.hourly_changes, restart_at))
    if plot is not None:
        title = (
            f"{rib.name}, zipf α={alpha:g}" if alpha is not None else f"{rib.name}, {Path(traffic).name}"
        )
        write_plot(plot, window_bytes, results, title)
    return 0
