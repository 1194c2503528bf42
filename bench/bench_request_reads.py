"""How long the control loop's read of the on-demand requests blocks the event loop, with many
requests active in a real ``redis-server``.

``python -m bench.bench_request_reads [--requests 100000] [--ticks 10] [--changes 100]``

A fresh ``redis-server`` on a loopback port (ended by PID) gets ``--requests`` active requests for
one switch; a :class:`SwitchController` (never started: no ExaBGP) then reads its inputs as each
control-loop iteration does, ``--ticks`` times with nothing changed and ``--ticks`` times with
``--changes`` new requests written between reads. A 1 ms heartbeat task runs meanwhile: its
largest lateness during a read is how long the read kept the event loop from anything else
(ExaBGP's messages, the API); the wall time includes waiting on Redis, which does not block.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.redis_fixture import free_loopback_port
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.config import SwitchConfig, TopfibConfig
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import RequestEntry
from topfib.controller.switch.controller import SwitchController

TTL_S = 3600.0
WRITE_BATCH = 1000


class Heartbeat:
    """A task that wakes every millisecond and keeps its largest lateness since :meth:`reset`."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.worst = 0.0


def _entry(index: int, now: float) -> RequestEntry:
    ip = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
    return RequestEntry("edge1", ip, f"ap{index % 100}", now, now + TTL_S)


async def _fill(store: RedisStore, first: int, count: int, now: float) -> None:
    for start in range(first, first + count, WRITE_BATCH):
        batch = [_entry(i, now) for i in range(start, min(first + count, start + WRITE_BATCH))]
        accepted = await store.add_requests(batch, {"edge1": 10**9}, now)
        assert all(accepted)


async def _measure(controller: SwitchController, heartbeat: Heartbeat, store: RedisStore, ticks: int,
                   changes: int, next_index: int) -> tuple[list[float], list[float], int]:
    blocks, walls = [], []
    for _ in range(ticks):
        if changes:
            await _fill(store, next_index, changes, time.time())
            next_index += changes
        await asyncio.sleep(0.01)
        heartbeat.reset()
        began = time.perf_counter()
        requests, _ = await controller.inputs.read(time.time())  # the control loop's own read
        walls.append(time.perf_counter() - began)
        await asyncio.sleep(0.002)  # let the heartbeat see the end of the read
        blocks.append(heartbeat.worst)
        assert len(requests) == next_index, (len(requests), next_index)
    return blocks, walls, next_index


async def run(url: str, requests: int, ticks: int, changes: int) -> None:
    store = RedisStore.from_url(url, timeout_s=30.0)
    now = time.time()
    await _fill(store, 0, requests, now)
    switch = SwitchConfig(name="edge1", neighbor="127.0.0.2", local_address="127.0.0.1", local_as=65000,
                          peer_as=65000, fib_cap_ipv4=1000, fib_cap_ipv6=100)
    config = TopfibConfig(switch=[switch])
    rates = PrefixRates(30.0, 3600.0, 4.0)
    with tempfile.TemporaryDirectory() as runtime:
        controller = SwitchController(switch, config, rates, store, threading.Lock(), Path(runtime))
        heartbeat = Heartbeat()
        heartbeat.start()
        first_block, _, _ = await _measure(controller, heartbeat, store, 1, 0, requests)
        print(f"{requests} active requests; first read blocked the event loop {first_block[0] * 1e3:.1f} ms")
        for label, n in (("unchanged", 0), (f"{changes} new per tick", changes)):
            blocks, walls, requests = await _measure(controller, heartbeat, store, ticks, n, requests)
            print(f"{label:>18}: event-loop block per read median {statistics.median(blocks) * 1e3:7.1f} ms, "
                  f"max {max(blocks) * 1e3:7.1f} ms; wall median {statistics.median(walls) * 1e3:7.1f} ms")
    await store.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server not found (Debian package redis-server)", file=sys.stderr)
        return 2
    port = free_loopback_port()
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            asyncio.run(run(f"redis://127.0.0.1:{port}/0", args.requests, args.ticks, args.changes))
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
