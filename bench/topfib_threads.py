"""Where ``topfib run``'s CPU goes under a steady sFlow stream: per thread, user and system CPU,
run time (schedstat) and context switches (voluntary: wake-ups; involuntary: preemptions).

``bench.bench_collector`` gives each thread's CPU per stream; this adds what explains it (the
listener's cost follows its wake-ups, the accounting thread's its hand-overs), on a longer stream
and without sfacctd, so that variants can be compared in alternating runs:

    flock /tmp/topfib-bench.lock .venv/bin/python -m bench.topfib_threads [--rate 100000]
        [--seconds 8] [--generated-table 200000] [--rounds 1]

topfib runs pinned to ``--daemon-core`` at nice -15 and this process sends from ``--sender-core``,
as in ``bench.bench_collector``. Figures per million samples sent (the stream is lossless at the
rates the bar is about; the row says when not).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bench_collector import WORKDIR, send
from bench.bench_tables import bench_table, load_traffic
from bench.daemon_cpu import CLK_TCK, NICE
from bench.gen_traffic import AGENTS, Traffic
from bench.topfib_daemons import TopfibRun, accounted


@dataclass(frozen=True)
class ThreadTimes:
    user_s: float
    system_s: float
    run_s: float  # schedstat: time on a CPU, ns resolution
    wake_ups: int  # voluntary context switches
    preempted: int  # involuntary ones

    def __sub__(self, other: ThreadTimes) -> ThreadTimes:
        return ThreadTimes(
            self.user_s - other.user_s,
            self.system_s - other.system_s,
            self.run_s - other.run_s,
            self.wake_ups - other.wake_ups,
            self.preempted - other.preempted,
        )


def thread_times(pid: int) -> dict[int, ThreadTimes]:
    """Each live thread of ``pid``, by thread id."""
    out: dict[int, ThreadTimes] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{task}"
        try:
            stat = Path(f"{base}/stat").read_text().rsplit(")", 1)[1].split()
            run_ns = int(Path(f"{base}/schedstat").read_text().split()[0])
            status = dict(line.split(":", 1) for line in Path(f"{base}/status").read_text().splitlines())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        out[int(task)] = ThreadTimes(
            int(stat[11]) / CLK_TCK,
            int(stat[12]) / CLK_TCK,
            run_ns / 1e9,
            int(status["voluntary_ctxt_switches"]),
            int(status["nonvoluntary_ctxt_switches"]),
        )
    return out


def measure(topfib: TopfibRun, traffic: Traffic, rate: float, passes: int) -> None:
    """One stream of ``passes`` over ``traffic`` at ``rate``: each busy thread's share."""
    counted = accounted(topfib.metrics())
    before = thread_times(topfib.pid)
    started = time.monotonic()
    sent, achieved = send(traffic, topfib.sflow_port, rate, passes)
    time.sleep(1.0)  # the last hand-over (0.5 s) and its accounting
    after = thread_times(topfib.pid)
    lost = 1.0 - (accounted(topfib.metrics()) - counted) / sent
    per_million = 1e6 / sent
    print(
        f"sent {sent:,} samples at {achieved:,.0f}/s in {time.monotonic() - started:.1f} s; "
        f"loss {100 * lost:.3f} %; load average {os.getloadavg()[0]:.2f}"
    )
    total = 0.0
    for tid, now in sorted(after.items()):
        spent = now - before.get(tid, ThreadTimes(0.0, 0.0, 0.0, 0, 0))
        total += spent.run_s
        if spent.run_s * per_million >= 0.005:
            name = "main" if tid == topfib.pid else f"thread {tid}"
            print(
                f"  {name:14s} run {spent.run_s * per_million:.3f} (user {spent.user_s * per_million:.3f}, "
                f"system {spent.system_s * per_million:.3f}) CPU-s per 1M samples; "
                f"wake-ups {spent.wake_ups}, preempted {spent.preempted}"
            )
    print(f"  process        run {total * per_million:.3f} CPU-s per 1M samples (ExaBGP not included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--generated-table", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--daemon-core", type=int, default=1)
    parser.add_argument("--sender-core", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.sender_core})
    os.nice(NICE)
    table = bench_table(WORKDIR, args.generated_table)
    traffic = load_traffic(WORKDIR, table, args.samples, seed=1)
    receive_buffer = int(Path("/proc/sys/net/core/rmem_max").read_text())
    passes = max(1, round(args.rate * args.seconds / int(traffic.samples.sum())))
    with tempfile.TemporaryDirectory(prefix="threads-", dir=WORKDIR) as workdir:
        topfib = TopfibRun(
            table.rib_file, [agent for agent, _ in AGENTS], receive_buffer, args.daemon_core, Path(workdir)
        )
        try:
            topfib.wait_started()
            send(traffic, topfib.sflow_port, args.rate, 1)  # warm-up: every prefix seen once
            time.sleep(1.0)
            for _ in range(args.rounds):
                measure(topfib, traffic, args.rate, passes)
        finally:
            topfib.stop()


if __name__ == "__main__":
    main()
