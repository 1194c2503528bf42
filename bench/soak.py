"""Soak: ``topfib run`` against the lab's BIRD switch under steady sFlow and request load.

For ``--minutes`` (10 by default): sFlow at ``--sflow-rate`` samples/s (Zipf over the switch's
peer prefixes, from another process with sendmmsg) and ``--request-rate`` API requests/s for cold
prefixes with a short TTL, so the FIB changes every control loop. Every 10 s: the topfib process's
resident memory, open file descriptors and threads, and the FIB size. Every request's latency is
measured from the POST to the prefix appearing in the switch's kernel FIB (``ip monitor route``).

Checks (exit status 1 when one fails): resident memory at the end within 10 % of the value after
the first minute (warm-up), file descriptors and threads no higher at the end than after the first
minute, p99 request→FIB latency of the last minute within 1.5× (+50 ms) of the second minute's, the
FIB never above the cap and BIRD's import limit never fired, topfib alive throughout.

A request's latency ends when the soak reads the ``ip monitor`` line of its route; the figure "as
polled" ends at the soak loop's next look (every 5 ms, later when its own process waits for a CPU),
the way rounds before this one measured it.

    .venv/bin/python -m bench.soak [--minutes 10] [--sflow-rate 100000] [--request-rate 50]

Needs root, ip and BIRD 2 (the namespace lab of tests/integration/lab.py).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.flood_sflow import MmsgSender
from tests.integration.fault_support import (
    AGENT,
    AP_TOKEN,
    PeakWatcher,
    TopfibProcess,
    auth,
    free_port,
    host_in,
    write_config,
)
from tests.integration.lab import Lab, lab_unavailable_reason
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram


def sflow_datagrams(prefixes: list[str], count: int, seed: int) -> list[bytes]:
    """``count`` datagrams of 7 samples, destinations Zipf(1.1) over ``prefixes``."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(prefixes))]
    datagrams = []
    for sequence in range(count):
        destinations = rng.choices(prefixes, weights, k=7)
        specs = [FlowSampleSpec(src="198.51.100.7", dst=host_in(p), sampling_rate=1000) for p in destinations]
        datagrams.append(encode_datagram(AGENT, 0, sequence + 1, sequence * 10, specs))
    return datagrams


def send_sflow(
    port: int,
    datagrams: list[bytes],
    rate: float,
    stop: multiprocessing.synchronize.Event,
    sent: Any,  # multiprocessing.Value("d"): samples the kernel took
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sender = MmsgSender(sock, datagrams)
        per_datagram = sender.samples / sender.count
        while not stop.is_set():
            sent.value += sender.send_all(rate) * per_datagram


class TimedWatcher(PeakWatcher):
    """A :class:`PeakWatcher` that notes when each route's ``ip monitor`` line was read."""

    def __init__(self, routes: dict[str, str]) -> None:
        super().__init__(routes)
        self.added_at: dict[str, float] = {}

    def apply(self, line: str) -> None:
        super().apply(line)
        words = line.split()
        if words and words[0] in self.routes:  # an add ("Deleted …" lines start otherwise)
            self.added_at[words[0]] = time.monotonic()


def proc_figures(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split()[1] for line in status if ":" in line and len(line.split()) > 1}
    return {
        "rss_kib": int(fields["VmRSS"]),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


SLOW_S = 0.020  # issue 21's bar for the p99


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


async def soak(args: argparse.Namespace, lab: Lab) -> bool:
    slash24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    hot, cold = slash24[: len(slash24) // 2], slash24[len(slash24) // 2 :]
    sflow_port = free_port(socket.SOCK_DGRAM)
    config = write_config(
        lab,
        lab.workdir / "soak.toml",
        cap_v4=args.cap,
        cap_v6=20,
        runtime_dir=lab.workdir / "run",
        loop_period_s=args.loop_period,
        sflow_port=sflow_port,
        extra='flow_sources = ["127.0.0.1"]\n',  # the sender's source; else the flow gate drops it all
    )
    proc = TopfibProcess(config, lab.workdir / "soak.log")
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    sflow_sent = context.Value("d", 0.0)
    sender = context.Process(
        target=send_sflow,
        args=(sflow_port, sflow_datagrams(hot, 3000, 1), args.sflow_rate, stop, sflow_sent),
        daemon=True,
    )
    posts: set[asyncio.Task[None]] = set()
    posted_count = 0
    samples: list[tuple[float, dict[str, int], int]] = []
    latencies: list[tuple[float, float]] = []  # (seconds since start, latency)
    polled: list[float] = []  # the same latencies as the loop's look saw them
    pending: dict[str, float] = {}
    errors: dict[int, int] = {}
    rng = random.Random(2)
    ok = True

    async def post(client: httpx.AsyncClient, prefix: str) -> None:
        try:
            response = await client.post(
                "/v1/requests", json={"ips": [host_in(prefix)], "ttl_s": args.request_ttl}
            )
            status = response.status_code
        except httpx.TransportError:
            status = -2
        if status != 200:
            pending.pop(prefix, None)
            errors[status] = errors.get(status, 0) + 1

    proc.start()
    try:
        await asyncio.to_thread(proc.wait_healthy, 60.0)
        async with lab.watch_fib(TimedWatcher) as watch:
            sender.start()
            started = time.monotonic()
            duration = args.minutes * 60
            next_sample = started
            async with httpx.AsyncClient(
                base_url=proc.base_url, headers=auth(AP_TOKEN), timeout=10
            ) as client:
                interval = 1.0 / args.request_rate
                next_request = started
                while (now := time.monotonic()) - started < duration:
                    for prefix, posted in list(pending.items()):
                        if prefix in watch.routes:
                            added = watch.added_at.get(prefix, now)  # a resync's dump: no line
                            latencies.append((posted - started, (added if added >= posted else now) - posted))
                            polled.append(now - posted)
                            del pending[prefix]
                        elif now - posted > 30:
                            del pending[prefix]  # counted as missing below
                            errors[-1] = errors.get(-1, 0) + 1
                    if now >= next_sample:
                        samples.append((now - started, proc_figures(proc.pid), len(watch.routes)))
                        next_sample += 10.0
                        if not proc.alive():
                            print("topfib died", proc.log()[-2000:])
                            return False
                    if now >= next_request:
                        next_request += interval
                        candidates = [
                            p for p in rng.sample(cold, 20) if p not in watch.routes and p not in pending
                        ]
                        if candidates:
                            prefix = candidates[0]
                            pending[prefix] = time.monotonic()  # latency counts from the POST
                            posted_count += 1
                            task = asyncio.create_task(post(client, prefix))
                            posts.add(task)
                            task.add_done_callback(posts.discard)
                    await asyncio.sleep(0.005)
                await asyncio.gather(*posts)
            samples.append((time.monotonic() - started, proc_figures(proc.pid), len(watch.routes)))
            peak = watch.peak_v4
            elapsed = time.monotonic() - started
            print(
                f"sent {sflow_sent.value / elapsed:,.0f} sFlow samples/s and {posted_count / elapsed:.1f} "
                f"requests/s for {elapsed:.0f} s"
            )
    finally:
        stop.set()
        if sender.pid is not None:
            sender.join(10)
        proc.stop()

    for at, figures, fib in samples:
        print(
            f"t={at:5.0f}s rss={figures['rss_kib'] / 1024:6.1f} MiB fds={figures['fds']} "
            f"threads={figures['threads']} fib={fib}"
        )
    warm = next(f for at, f, _ in samples if at >= 60) if samples[-1][0] >= 60 else samples[0][1]
    end = samples[-1][1]
    first = [lat for at, lat in latencies if 60 <= at < 120]  # the first minute after warm-up
    last = [lat for at, lat in latencies if at >= (args.minutes - 1) * 60]
    growth = 100.0 * (end["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"]
    print(
        f"requests measured {len(latencies)}, errors {errors}; p99 request→FIB second minute "
        f"{p99(first) * 1000:.0f} ms (n={len(first)}), "
        f"last minute {p99(last) * 1000:.0f} ms (n={len(last)}); "
        f"median overall {sorted(lat for _, lat in latencies)[len(latencies) // 2] * 1000:.0f} ms; "
        f"as polled: p99 overall {p99(polled) * 1000:.0f} ms, "
        f"median {sorted(polled)[len(polled) // 2] * 1000:.0f} ms"
    )
    slow = [at for at, lat in latencies if at >= 60 and lat > SLOW_S]  # after warm-up
    print(
        f"after warm-up: {len(slow)} requests over {SLOW_S * 1000:.0f} ms, in "
        f"{len({int(at) for at in slow})} distinct seconds (a stall bunches them; load spreads them)"
    )
    print(
        f"RSS after 1 min {warm['rss_kib'] / 1024:.1f} MiB, at the end {end['rss_kib'] / 1024:.1f} MiB "
        f"({growth:+.1f} %); fds {warm['fds']} → {end['fds']}; threads {warm['threads']} → {end['threads']}; "
        f"FIB peak {peak} (cap {args.cap}); import limit fired: {lab.import_limit_fired()}"
    )
    ok &= growth < 10.0
    # HTTP keep-alive connections come and go: a leak is growth past the early maximum, not ±1.
    early = [f for at, f, _ in samples if at <= 120] or [warm]
    ok &= end["fds"] <= max(f["fds"] for f in early) + 2 and end["threads"] <= max(
        f["threads"] for f in early
    )
    ok &= p99(last) <= 1.5 * p99(first) + 0.05
    ok &= peak <= args.cap and not lab.import_limit_fired()
    ok &= not errors
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sflow-rate", type=float, default=100_000.0, help="samples per second")
    parser.add_argument("--request-rate", type=float, default=50.0, help="API requests per second")
    parser.add_argument("--request-ttl", type=float, default=3.0)
    parser.add_argument("--routes", type=int, default=3000, help="peer routes on the switch")
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--loop-period", type=float, default=0.5)
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 2
    with Lab(routes_v4=args.routes, routes_v6=20, import_limit=args.cap) as lab:
        ok = asyncio.run(soak(args, lab))
    print("RESULT", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
