"""``topfib run`` against pmacct's sfacctd on the same sFlow datagrams: CPU per million samples of
each daemon's whole process tree, loss, zero-loss ceiling, and topfib's idle CPU.

Both daemons hold the same table — the full ~1M-prefix table when the corpus is there, else a
generated one (``bench.bench_tables``; the run says which): topfib as its switch's ``rib_file``,
sfacctd as its ``networks_file`` (``bench.sfacctd_daemon``). Each runs pinned to one core with
taskset at nice -15, as is this process, which sends over loopback UDP from another core, at the
same receive buffer for both (sfacctd cannot exceed net.core.rmem_max).

1. idle: ``topfib run`` with its table loaded, ExaBGP running and its session down (nothing listens
   on the switch's port), no traffic: CPU-s per s of the tree, ExaBGP included (bar ≤ 0.01).
2. warm-up: one stream to topfib (its first pass meets every prefix for the first time).
3. fixed rates (100k and 300k samples/s): per stream, sfacctd (started afresh: its print plugin
   writes at exit) then topfib (kept running); sent vs accounted (topfib: its ``/metrics``,
   sfacctd: its CSV), CPU seconds per million samples, the ratio topfib / sfacctd (bar ≤ 0.5);
   topfib's CPU per thread shows where it goes.
4. ramp: higher rates until each loses; its zero-loss ceiling is the highest rate counted
   without loss (capped by what the sender reaches, printed too).
5. breakdown: the listener + pipeline alone (``bench.collector_sink``) on the fixed-rate streams,
   against the same sfacctd counts, with per-prefix IPv4 byte totals compared (IPv6 is not:
   sfacctd's IPv6 networks_file is broken, pmacct#577).

Every stream lasts at least ``--stream-seconds`` (the generated samples are sent as many times as
that takes), so topfib's periodic work (its control loop every ``loop_period_s``) is in every
window as it would be in service. ``--topfib-set section.key=value`` changes topfib's config to see
what a part costs (e.g. ``switch.loop_period_s=30.0``: hardly any control loop in the windows;
``exabgp.reactor_speed=1.0``). On a shared machine the figures are noisy: read the ratios, repeat.
``--quick``: ~1 min of streams (plus ~1 min of start-ups: both daemons load the table).

    sudo .venv/bin/python -m bench.bench_collector [--quick] [--rates 100000,300000] [--ramp ...]
        [--samples N] [--stream-seconds S] [--idle-seconds 30] [--generated-table N] [--topfib-set K=V]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.bench_tables import BenchTable, bench_table, load_traffic
from bench.daemon_cpu import NICE, free_udp_port
from bench.gen_traffic import AGENTS, Traffic
from bench.sfacctd_daemon import Count, Sfacctd, compare_prefixes
from bench.topfib_daemons import TopfibRun, TopfibSink
from topfib.collector.flow.replay import replay

WORKDIR = Path("/tmp/topfib-bench")
IDLE_BAR = 0.01  # CPU-s per s
RATIO_BAR = 0.5  # topfib / sfacctd CPU per sample
FULL = {
    "samples": 1_000_000,
    "ramp": "500000,750000,1000000,1500000",
    "idle_seconds": 30.0,
    "stream_seconds": 10.0,
}
QUICK = {"samples": 200_000, "ramp": "600000,1200000", "idle_seconds": 15.0, "stream_seconds": 3.0}


def send(traffic: Traffic, port: int, rate: float, passes: int = 1) -> tuple[int, float]:
    """Send the whole stream ``passes`` times at ``rate`` samples/s; returns (samples sent, achieved rate)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.connect(("127.0.0.1", port))
        stats = replay(traffic.datagrams, sock.send, rate, range(passes))
    return stats.samples, stats.samples / stats.seconds if stats.seconds else 0.0


def sender_ceiling(traffic: Traffic) -> float:
    """Samples/s this process can send unpaced to a socket nobody reads (the ramp's ceiling)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        return send(traffic, int(sink.getsockname()[1]), 0.0)[1]


@dataclass
class Trial:
    daemon: str
    target: float
    achieved: float
    sent_samples: int
    expected_packets: int
    count: Count

    @property
    def accounted_share(self) -> float:
        """Accounted / sent: scaled packets where the daemon reports them, else samples."""
        if self.count.packets is not None:
            return self.count.packets / self.expected_packets
        return (self.count.samples or 0.0) / self.sent_samples

    @property
    def lossless(self) -> bool:
        if self.count.packets is not None:
            return round(self.count.packets) == self.expected_packets
        return round(self.count.samples or 0.0) == self.sent_samples

    @property
    def loss_pct(self) -> float:
        return 100.0 * (1.0 - self.accounted_share)

    @property
    def cpu_per_million(self) -> float:
        counted = (
            self.count.samples if self.count.samples is not None else self.sent_samples * self.accounted_share
        )
        return self.count.cpu_s / (counted / 1e6) if counted else float("inf")

    def row(self, kind: str) -> str:
        drops = "" if self.count.socket_drops is None else f" (socket drops {self.count.socket_drops}"
        drops += "" if self.count.backlog_drops is None else f", backlog drops {self.count.backlog_drops}"
        drops += ")" if drops else ""
        return (
            f"{kind:9s} {self.daemon:8s} target {self.target:>9,.0f}/s sent {self.achieved:>9,.0f}/s "
            f"loss {self.loss_pct:7.3f} %{drops} CPU {self.count.cpu_s:6.2f} s in {self.count.wall_s:5.1f} s "
            f"= {self.cpu_per_million:5.2f} CPU-s per 1M samples"
        )


def top_threads(threads: dict[str, float], samples: float, shown: int = 5) -> str:
    busiest = sorted(threads.items(), key=lambda item: -item[1])[:shown]
    per_million = 1e6 / samples if samples else 0.0
    return ", ".join(f"{name} {cpu * per_million:.2f}" for name, cpu in busiest if cpu > 0)


class Run:
    """One benchmark run: the stream, the table, the trials so far."""

    def __init__(self, args: argparse.Namespace, table: BenchTable, traffic: Traffic, workdir: Path) -> None:
        self.args = args
        self.table = table
        self.traffic = traffic
        self.expected_packets = int(traffic.scaled_packets.sum())
        self.receive_buffer = int(Path("/proc/sys/net/core/rmem_max").read_text())
        self.sfacctd = Sfacctd(table.networks_file, self.receive_buffer, args.daemon_core, workdir)
        self.sfacctd_tables: dict[float, dict[str, tuple[int, int]]] = {}
        self.trials: list[Trial] = []
        self.workdir = workdir

    def passes(self, rate: float) -> int:
        """Passes over the stream so that one lasts --stream-seconds (a control-loop period or
        more of topfib's periodic work falls into every window)."""
        seconds: float = self.args.stream_seconds
        return max(1, math.ceil(rate * seconds / int(self.traffic.samples.sum())))

    def trial(self, daemon: str, rate: float, measure: Callable[[Callable[[int], int]], Count]) -> Trial:
        """``measure(send_to)`` runs the daemon around ``send_to(port)`` (→ samples sent)."""
        passes = self.passes(rate)
        sent: list[tuple[int, float]] = []

        def send_to(port: int) -> int:
            sent.append(send(self.traffic, port, rate, passes))
            return sent[-1][0]

        count = measure(send_to)
        return Trial(daemon, rate, sent[0][1], sent[0][0], self.expected_packets * passes, count)

    def sfacctd_trial(self, rate: float) -> Trial:
        def measure(send_to: Callable[[int], int]) -> Count:
            count, table = self.sfacctd.run(send_to)
            self.sfacctd_tables[rate] = table
            return count

        return self.trial("sfacctd", rate, measure)

    def topfib_trial(self, topfib: TopfibRun, rate: float, kind: str) -> Trial:
        threads: dict[str, float] = {}

        def measure(send_to: Callable[[int], int]) -> Count:
            begun = topfib.begin()
            count, spent = topfib.finish(begun, send_to(topfib.sflow_port))
            threads.update(spent)
            return count

        result = self.trial("topfib", rate, measure)
        print(result.row(kind), flush=True)
        print(f"{'':9s}   topfib threads, CPU-s per 1M samples: {top_threads(threads, result.sent_samples)}")
        return result

    def product(self) -> float:
        """Sections 1-4 against ``topfib run``; returns the idle CPU-s per s."""
        args = self.args
        topfib = TopfibRun(
            self.table.rib_file,
            [agent for agent, _ in AGENTS],
            self.receive_buffer,
            args.daemon_core,
            self.workdir,
            args.topfib_set,
        )
        try:
            print(f"topfib run started in {topfib.wait_started():.1f} s (table loaded, start-up CPU over)")
            idle, per_process = topfib.idle(args.idle_seconds)
            shares = ", ".join(f"{name} {cpu:.4f}" for name, cpu in per_process.items())
            verdict = "meets" if idle <= IDLE_BAR else "misses"
            print(
                f"idle      topfib run, session down, no traffic, {args.idle_seconds:.0f} s: "
                f"{idle:.4f} CPU-s/s ({shares}); bar <= {IDLE_BAR}: {verdict}",
                flush=True,
            )
            print(f"one /metrics scrape costs topfib {topfib.scrape_cost() * 1000:.1f} ms CPU", flush=True)
            self.topfib_trial(topfib, args.warmup_rate, "warm-up")
            for rate in self.rates:
                self.trials.append(self.sfacctd_trial(rate))
                print(self.trials[-1].row("rate"), flush=True)
                self.trials.append(self.topfib_trial(topfib, rate, "rate"))
            # a daemon that lost at a fixed rate has its ceiling below it: no ramp for it
            lost = {
                d: any(t.daemon == d and not t.lossless for t in self.trials) for d in ("sfacctd", "topfib")
            }
            for rate in self.ramp:
                if not lost["sfacctd"]:
                    self.trials.append(self.sfacctd_trial(rate))
                    print(self.trials[-1].row("ramp"), flush=True)
                if not lost["topfib"]:
                    self.trials.append(self.topfib_trial(topfib, rate, "ramp"))
                for trial in self.trials[-2:]:
                    lost[trial.daemon] |= trial.target == rate and not trial.lossless
                if all(lost.values()):
                    break
            quiet, _ = topfib.idle(min(args.idle_seconds, 10.0))
            print(
                f"quiet     topfib run after the streams, no traffic: {quiet:.4f} CPU-s/s (the control "
                "loop still has scores to select from)",
                flush=True,
            )
        finally:
            topfib.stop()
        return idle

    def breakdown(self) -> list[tuple[float, float]]:
        """Section 5: the sink on the fixed-rate streams; (rate, sink / sfacctd CPU per sample)."""
        tables = (self.table.v4_pfx2as, self.table.v6_pfx2as)
        sink = TopfibSink(free_udp_port(), self.receive_buffer, self.args.daemon_core, tables)
        ratios: list[tuple[float, float]] = []
        compared = False
        try:
            print(f"breakdown: listener + pipeline alone (bench.collector_sink, {sink.ready})", flush=True)
            for kind, rate in [("warm-up", self.args.warmup_rate)] + [("breakdown", r) for r in self.rates]:
                before = {} if compared else sink.dump(self.workdir / "sink-sums.tsv")

                def measure(send_to: Callable[[int], int]) -> Count:
                    begun = sink.begin()
                    send_to(sink.port)
                    return sink.finish(begun)

                trial = self.trial("sink", rate, measure)
                print(trial.row(kind), flush=True)
                if kind == "warm-up":
                    continue
                sf = next(t for t in self.trials if t.daemon == "sfacctd" and t.target == rate)
                ratios.append((rate, trial.cpu_per_million / sf.cpu_per_million))
                if not compared and trial.lossless and sf.lossless:
                    after = sink.dump(self.workdir / "sink-sums.tsv")
                    stream = {p: v - before.get(p, 0.0) for p, v in after.items()}
                    print(compare_prefixes(self.sfacctd_tables[rate], stream), flush=True)
                    compared = True
        finally:
            sink.stop()
        return ratios

    @property
    def rates(self) -> list[float]:
        return [float(r) for r in self.args.rates.split(",") if r]

    @property
    def ramp(self) -> list[float]:
        return [float(r) for r in self.args.ramp.split(",") if r]

    def summary(self, idle: float, sender_alone: float, breakdown: list[tuple[float, float]]) -> None:
        print(f"\nsummary ({self.table.description}; rates are what the sender achieved, not the targets)")
        print(f"  sender alone (unpaced, nobody reading): {sender_alone:,.0f} samples/s")
        ok = True
        for rate in self.rates:
            pair = {t.daemon: t for t in self.trials if t.target == rate}
            sf, tf = pair["sfacctd"], pair["topfib"]
            ratio = tf.cpu_per_million / sf.cpu_per_million
            meets = ratio <= RATIO_BAR and tf.lossless
            ok &= meets
            print(
                f"  {rate:>9,.0f}/s  CPU-s per 1M samples topfib run {tf.cpu_per_million:.2f} / sfacctd "
                f"{sf.cpu_per_million:.2f} = {ratio:.2f} (bar <= {RATIO_BAR}, no loss: "
                f"{'meets' if meets else 'misses'}); loss topfib {tf.loss_pct:.3f} %, "
                f"sfacctd {sf.loss_pct:.3f} %"
            )
        ceiling = {}
        for daemon in ("sfacctd", "topfib"):
            ceiling[daemon] = max(
                (t.achieved for t in self.trials if t.daemon == daemon and t.lossless), default=0.0
            )
            most = max((t.achieved for t in self.trials if t.daemon == daemon), default=0.0)
            least = min((t.achieved for t in self.trials if t.daemon == daemon), default=0.0)
            found = (
                f"{ceiling[daemon]:,.0f} samples/s" if ceiling[daemon] else f"below {least:,.0f} samples/s"
            )
            print(f"  {daemon}: zero-loss ceiling {found} (highest rate sent to it {most:,.0f}/s)")
        if ceiling["sfacctd"] and ceiling["topfib"]:
            print(f"  zero-loss ceiling topfib / sfacctd = {ceiling['topfib'] / ceiling['sfacctd']:.2f}")
        print(f"  idle topfib run (ExaBGP included): {idle:.4f} CPU-s/s (bar <= {IDLE_BAR})")
        for rate, ratio in breakdown:
            print(f"  breakdown {rate:>9,.0f}/s  CPU per sample sink / sfacctd = {ratio:.2f}")
        print(f"  bars (CPU ratio at every fixed rate, no loss): {'met' if ok else 'missed'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~1 min of streams: fewer samples, short ramp")
    parser.add_argument(
        "--samples",
        type=int,
        help=f"samples per stream (default {FULL['samples']:,}, quick {QUICK['samples']:,})",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rates", default="100000,300000", help="fixed rates, samples/s")
    parser.add_argument(
        "--ramp", help=f"ceiling ramp, samples/s (default {FULL['ramp']}, quick {QUICK['ramp']})"
    )
    parser.add_argument(
        "--stream-seconds", type=float, help="least duration of a stream (default 10, quick 3)"
    )
    parser.add_argument("--warmup-rate", type=float, default=100_000)
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window (default 30, quick 15)")
    parser.add_argument(
        "--generated-table",
        type=int,
        default=0,
        metavar="N",
        help="use a generated table of N IPv4 prefixes even when the corpus is there",
    )
    parser.add_argument(
        "--topfib-set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change topfib's config (TOML value), e.g. matrix.enabled=false; repeatable",
    )
    parser.add_argument("--no-breakdown", action="store_true", help="skip the collector_sink section")
    parser.add_argument("--daemon-core", type=int, default=1)
    parser.add_argument("--sender-core", type=int, default=0)
    args = parser.parse_args()
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> int:
    args = parse_args()
    if shutil.which("sfacctd") is None:
        print("sfacctd not installed (Debian package pmacct, see scripts/setup.sh)", file=sys.stderr)
        return 2
    WORKDIR.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {args.sender_core})
    os.nice(NICE)
    table = bench_table(WORKDIR, args.generated_table)
    traffic = load_traffic(WORKDIR, table, args.samples, args.seed)
    sender_alone = sender_ceiling(traffic)
    with tempfile.TemporaryDirectory(prefix="run-", dir=WORKDIR) as workdir:
        run = Run(args, table, traffic, Path(workdir))
        print(
            f"table: {table.description}, {table.prefixes:,} prefixes; stream: {len(traffic.datagrams):,} "
            f"datagrams, {int(traffic.samples.sum()):,} samples; receive buffer {run.receive_buffer} B each; "
            f"daemons on core {args.daemon_core}, sender on core {args.sender_core}; load average "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
        started = time.monotonic()
        idle = run.product()
        breakdown = [] if args.no_breakdown else run.breakdown()
        run.summary(idle, sender_alone, breakdown)
        print(f"  wall time {time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
