"""Warm restarts in the BIRD lab: ``topfib run`` stopped and started again under steady Zipf sFlow
rebuilds the FIB it had (Jaccard ≥ 0.98), from its snapshot in ``state.directory`` (memory store,
SIGTERM) or in Redis (SIGKILL: the periodic snapshot is all there is).

Traffic goes to topfib's sFlow port on 127.0.0.1 only; the lab's namespaces are the test's own.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fault_support import (
    AGENT,
    VIEWER_TOKEN,
    PeakWatcher,
    PersistentRedis,
    TopfibProcess,
    host_in,
    watch_fib_peak,
    write_config,
)
from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram

pytestmark = pytest.mark.integration

CAP_V4, CAP_V6 = 60, 10
DATAGRAMS_PER_S = 600  # 5 samples each: 3,000 samples/s
# Steady traffic before the restart until the selection has settled: no FIB change for QUIET_S
# (five snapshot intervals, 25 loop periods), at most SETTLE_S. A FIB still changing at the
# restart would leave the snapshot behind it, and the Jaccard bar allows no swap of 70 routes.
SETTLE_S = 20.0
QUIET_S = 5.0


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(routes_v4=400, routes_v6=40, import_limit=CAP_V4 + CAP_V6) as built:
        yield built


class ZipfSflow:
    """A thread sending steady Zipf(1.0) sFlow over the lab's prefixes to one UDP port on loopback."""

    def __init__(self, port: int, prefixes: list[str]) -> None:
        ranked = list(prefixes)
        random.Random(20).shuffle(ranked)
        self.hosts = [host_in(p) for p in ranked]
        self.weights = [1.0 / rank for rank in range(1, len(ranked) + 1)]
        self.port = port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        sequence = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self._stop.wait(1 / DATAGRAMS_PER_S):
                sequence += 1
                specs = [FlowSampleSpec(src="2001:db8:ffff::7" if ":" in dst else "198.51.100.7", dst=dst,
                                        sampling_rate=1000)
                         for dst in rng.choices(self.hosts, self.weights, k=5)]
                datagram = encode_datagram(AGENT, 0, sequence, sequence * 10, specs)
                sock.sendto(datagram, ("127.0.0.1", self.port))

    def __enter__(self) -> ZipfSflow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def coverage(proc: TopfibProcess) -> float:
    """``topfib_coverage_ratio`` of the lab's switch, from /metrics (0 before the first selection)."""
    with proc.client(VIEWER_TOKEN) as client:
        text = client.get("/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("topfib_coverage_ratio{")]
    return values[0] if values else 0.0


async def settled(watch: PeakWatcher, quiet_s: float, at_most_s: float) -> float:
    """Wait until the FIB has not changed (no route added or removed) for ``quiet_s``, or
    ``at_most_s`` have passed; the seconds waited."""
    began = time.monotonic()
    events, quiet_since = watch.events, began
    while (now := time.monotonic()) - quiet_since < quiet_s and now - began < at_most_s:
        await asyncio.sleep(0.1)
        if watch.events != events:
            events, quiet_since = watch.events, time.monotonic()
    return time.monotonic() - began


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _sflow_port(config: Path) -> int:
    return int(config.read_text().split("sflow_listen = [\"127.0.0.1:", 1)[1].split('"', 1)[0])


def _config(lab: Lab, tag: str, store_url: str) -> Path:
    state = lab.workdir / "state"
    return write_config(lab, lab.workdir / f"{tag}.toml", cap_v4=CAP_V4, cap_v6=CAP_V6, store_url=store_url,
                        runtime_dir=lab.workdir / f"run-{tag}",
                        extra='flow_sources = ["127.0.0.1"]\n'
                        f'[state]\nsnapshot_interval_s = 1.0\ndirectory = "{state}"')


async def _restart_keeps_the_fib(lab: Lab, store_url: str, sigkill: bool, takeover: bool = False
                                 ) -> tuple[float, float, float]:
    """Jaccard of the first full FIB after the restart (or a standby's takeover) with the one
    before, seconds from the new session's first route to that FIB, and the coverage (within 10 s
    of that) as a share of the coverage before."""
    config = _config(lab, "first", store_url)
    first = TopfibProcess(config, lab.workdir / "first.log")
    # a standby on the same Redis, started with the active (it gets no sFlow: the rates come
    # from the active's snapshots), or the same config started after the active is gone
    second_config = _config(lab, "second", store_url) if takeover else config
    second = TopfibProcess(second_config, lab.workdir / "second.log")
    try:
        with ZipfSflow(_sflow_port(config), lab.prefixes_v4 + lab.prefixes_v6):
            async with watch_fib_peak(lab) as watch:
                first.start()
                await asyncio.to_thread(first.wait_healthy)
                if takeover:
                    second.start()
                    await asyncio.to_thread(second.wait_healthy)
                full = CAP_V4 + CAP_V6
                assert await watch.wait_for(lambda fib: len(fib) >= full, 60.0), (
                    f"FIB never filled: {watch.count(4)} + {watch.count(6)} routes {first.log()[-3000:]}")
                settled_s = await settled(watch, QUIET_S, SETTLE_S)
                print(f"\nFIB unchanged for {QUIET_S:g} s after {settled_s:.1f} s of traffic")
                before = set(watch.routes)
                covered_before = await asyncio.to_thread(coverage, first)
                assert covered_before > 0, "no coverage published before the restart"
                first.kill() if sigkill else first.stop()
                assert await watch.wait_for(lambda fib: not fib, 10.0), "the switch kept unmanaged routes"

                if not takeover:
                    second.start()
                    await asyncio.to_thread(second.wait_healthy)
                assert await watch.wait_for(bool, 30.0), f"no FIB after the restart: {second.log()[-2000:]}"
                began = time.monotonic()
                filled = await watch.wait_for(lambda fib: len(fib) >= len(before), 20.0)
                took = time.monotonic() - began
                after = set(watch.routes)
                assert filled, f"FIB not refilled: {len(after)} of {len(before)} routes"
                assert watch.peak_v4 <= CAP_V4 and watch.peak_v6 <= CAP_V6
                assert await async_wait_until(lambda: "warm start from a" in second.log(), 5.0), second.log()
                # coverage (share of routed traffic on installed prefixes) back to ≥ 0.99 × within 10 s
                deadline = time.monotonic() + 10.0
                while (covered := await asyncio.to_thread(coverage, second)) < 0.99 * covered_before:
                    assert time.monotonic() < deadline, f"coverage {covered:.3f}, before {covered_before:.3f}"
                    await asyncio.sleep(0.2)
                return jaccard(before, after), took, covered / covered_before
    finally:
        first.stop()
        second.stop()


def test_sigterm_and_start_with_the_memory_store_rebuilds_the_same_fib(lab: Lab) -> None:
    overlap, took, kept = asyncio.run(_restart_keeps_the_fib(lab, "memory://", sigkill=False))
    print(f"\nwarm restart (memory store, state.directory, SIGTERM): Jaccard {overlap:.3f}, "
          f"FIB full {took:.2f} s after its first route, coverage {kept:.3f} × before")
    assert overlap >= 0.98


def test_sigkill_and_start_on_redis_rebuilds_the_same_fib(lab: Lab, tmp_path: Path) -> None:
    redis = PersistentRedis(tmp_path)
    try:
        redis.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        overlap, took, kept = asyncio.run(_restart_keeps_the_fib(lab, redis.url, sigkill=True))
    finally:
        redis.stop()
    print(f"\nwarm restart (Redis, SIGKILL): Jaccard {overlap:.3f}, "
          f"FIB full {took:.2f} s after its first route, coverage {kept:.3f} × before")
    assert overlap >= 0.98


def test_a_standby_taking_over_from_a_killed_active_rebuilds_the_same_fib(lab: Lab, tmp_path: Path) -> None:
    redis = PersistentRedis(tmp_path)
    try:
        redis.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        overlap, took, kept = asyncio.run(_restart_keeps_the_fib(lab, redis.url, sigkill=True, takeover=True))
    finally:
        redis.stop()
    print(f"\nstandby takeover (Redis, SIGKILL of the active): Jaccard {overlap:.3f}, "
          f"FIB full {took:.2f} s after its first route, coverage {kept:.3f} × before")
    assert overlap >= 0.98
