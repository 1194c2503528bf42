"""Two ``topfib run`` (active and standby of one switch) on Redis Sentinel; the Redis master is
SIGKILLed under ~50 AP requests/s. Sentinel promotes the replica; no request answered 2xx is lost;
at no moment do both controllers run an ExaBGP for the switch; everything recovers by itself (the
old master, restarted as its supervisor would, rejoins as a replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
import redis

from tests.integration.fault_support import (
    AP_TOKEN,
    TopfibProcess,
    children_of,
    host_in,
    watch_fib_peak,
    write_config,
)
from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason
from tests.integration.test_faults_process import _assert_within_cap, _listed, _pin

if TYPE_CHECKING:
    from tests.sentinel_fixture import SentinelDeployment

pytest_plugins = ["tests.sentinel_fixture"]
pytestmark = pytest.mark.integration
CAP_V4, CAP_V6 = 60, 10


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(routes_v4=400, routes_v6=20, import_limit=CAP_V4) as built:
        yield built


class PacedRequests:
    """A thread POSTing one request every ``1 / rate`` s (on a fixed schedule, so slow answers
    do not lower the rate); every IP answered 200 must be in the store afterwards (the per-AP cap
    is far away, so a 200 always means stored)."""

    def __init__(self, proc: TopfibProcess, prefixes: list[str], rate: float) -> None:
        self.proc, self.prefixes, self.rate = proc, prefixes, rate
        self.answered_200: set[str] = set()
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.elapsed_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        with self.proc.client(AP_TOKEN) as client:
            for n in range(100_000):
                if self._stop.wait(max(0.0, started + n / self.rate - time.monotonic())):
                    break
                prefix = self.prefixes[n % len(self.prefixes)]
                ip = host_in(prefix).rsplit(".", 1)[0] + f".{n // len(self.prefixes) % 250 + 1}"
                try:
                    response = client.post("/v1/requests", json={"ips": [ip], "ttl_s": 600}, timeout=5)
                except httpx.TransportError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    self.answered_200.add(ip)
        self.elapsed_s = time.monotonic() - started

    def __enter__(self) -> PacedRequests:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class ExabgpOwners:
    """Samples every 20 ms which of the topfib processes runs an ExaBGP (a child process)."""

    def __init__(self, procs: dict[str, TopfibProcess]) -> None:
        self.procs = procs
        self.both_at: list[float] = []
        self.owners: list[tuple[float, tuple[str, ...]]] = []  # changes only
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            owners = tuple(name for name, proc in self.procs.items()
                           if proc.alive() and children_of(proc.pid))
            if len(owners) > 1:
                self.both_at.append(time.monotonic())
            if not self.owners or self.owners[-1][1] != owners:
                self.owners.append((time.monotonic(), owners))

    def __enter__(self) -> ExabgpOwners:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _topfib(lab: Lab, url: str, tag: str) -> TopfibProcess:
    config = write_config(lab, lab.workdir / f"{tag}.toml", cap_v4=CAP_V4, cap_v6=CAP_V6, store_url=url,
                          runtime_dir=lab.workdir / f"run-{tag}")
    return TopfibProcess(config, lab.workdir / f"{tag}.log")


async def _failover(lab: Lab, deployment: SentinelDeployment) -> None:
    slash24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
    pinned, load_prefixes = slash24[:10], slash24[10:50]
    active, standby = _topfib(lab, deployment.url, "active"), _topfib(lab, deployment.url, "standby")
    try:
        async with watch_fib_peak(lab) as watch:
            active.start()
            await asyncio.to_thread(active.wait_healthy)
            await asyncio.to_thread(_pin, active, pinned)
            assert await watch.wait_for(lambda fib: set(pinned) <= set(fib), 40.0), active.log()[-2000:]
            standby.start()
            await asyncio.to_thread(standby.wait_healthy)
            await asyncio.sleep(2)
            assert children_of(active.pid) and not children_of(standby.pid)

            fewest_pinned = len(pinned)
            # ten senders of 5/s, five on each API: a slow answer (a 503 after WAIT gave up) holds
            # up only its own sender
            loads = [PacedRequests(proc, load_prefixes[i * 4:(i + 1) * 4], rate=5.0)
                     for i, proc in enumerate([active, standby] * 5)]
            owners_watch = ExabgpOwners({"active": active, "standby": standby})
            with owners_watch as owners, contextlib.ExitStack() as stack:
                for load in loads:
                    stack.enter_context(load)
                # the load flowing on both APIs (~50/s) before the kill
                assert await async_wait_until(
                    lambda: sum(len(load.answered_200) for load in loads) >= 100, 15.0), [
                    load.statuses for load in loads]
                killed = deployment.kill_master()
                killed_at = time.monotonic()
                promoted = None
                while time.monotonic() - killed_at < 20 and promoted is None:
                    fewest_pinned = min(fewest_pinned, len(set(pinned) & set(watch.routes)))
                    name = deployment.name_of(await asyncio.to_thread(deployment.master_port))
                    promoted = name if name not in (None, killed) else None
                    await asyncio.sleep(0.05)
                assert promoted is not None, "Sentinel promoted no replica"
                promoted_s = time.monotonic() - killed_at
                deployment.start_server(killed)  # its supervisor restarts it; Sentinel demotes it
                assert await asyncio.to_thread(deployment.wait_role, killed, "slave", 30.0)
                rejoined_s = time.monotonic() - killed_at
                accepted_at_rejoin = sum(len(load.answered_200) for load in loads)
                for _ in range(100):  # 5 s on the new master, watching the pins stay
                    fewest_pinned = min(fewest_pinned, len(set(pinned) & set(watch.routes)))
                    await asyncio.sleep(0.05)
            accepted = set().union(*(load.answered_200 for load in loads))
            rate = sum(sum(load.statuses.values()) / load.elapsed_s for load in loads)
            statuses: dict[int, int] = {}
            for load in loads:
                for code, count in load.statuses.items():
                    statuses[code] = statuses.get(code, 0) + count
            errors = [error for load in loads for error in load.errors]

            assert not owners.both_at, f"both controllers ran ExaBGP at once: {owners.owners}"
            assert not errors, errors[:3]
            assert set(statuses) <= {200, 503}, statuses
            assert len(accepted) > accepted_at_rejoin + 100, "requests not accepted again after the failover"
            for proc in (active, standby):  # both APIs read the promoted master
                ips, pins = await asyncio.to_thread(_listed, proc)
                lost = accepted - ips
                assert not lost, f"{len(lost)} accepted requests lost, e.g. {sorted(lost)[:3]}"
                assert pins == set(pinned)
            assert await watch.wait_for(lambda fib: set(pinned) <= set(fib), 30.0), "pins not in the FIB"
            assert active.alive() and standby.alive()
            _assert_within_cap(lab, watch)
            for proc in (active, standby):
                assert "Traceback" not in proc.log(), proc.log()[-3000:]
            print(f"\nsentinel-failover: promoted {promoted_s:.2f}s after the master's SIGKILL, old master "
                  f"a replica again after {rejoined_s:.1f}s; {sum(statuses.values())} requests "
                  f"({rate:.0f}/s), statuses {statuses}, {len(accepted)} IPs answered 200, 0 lost; "
                  f"ExaBGP owners {[o for _, o in owners.owners]}; fewest pinned routes in the FIB "
                  f"during the failover {fewest_pinned}/{len(pinned)}")
    finally:
        active.stop()
        standby.stop()


def test_redis_master_killed_under_load_fails_over_without_loss_or_two_active_controllers(
    lab: Lab, sentinel_deployment: SentinelDeployment
) -> None:
    asyncio.run(_failover(lab, sentinel_deployment))


async def _lease_lost_in_failover(lab: Lab, deployment: SentinelDeployment) -> None:
    pinned = [p for p in lab.prefixes_v4 if p.endswith("/24")][:10]
    active, standby = _topfib(lab, deployment.url, "active"), _topfib(lab, deployment.url, "standby")
    try:
        async with watch_fib_peak(lab) as watch:
            active.start()
            await asyncio.to_thread(active.wait_healthy)
            await asyncio.to_thread(_pin, active, pinned)
            assert await watch.wait_for(lambda fib: set(pinned) <= set(fib), 40.0), active.log()[-2000:]
            standby.start()
            await asyncio.to_thread(standby.wait_healthy)
            await asyncio.sleep(2)
            with ExabgpOwners({"active": active, "standby": standby}) as owners:
                # Replication stalls (the replica stops reading; a big write fills the socket
                # buffers) for longer than the lease TTL: the replica's copy of the lease expires
                # while the active controller goes on renewing it on the master alone.
                deployment.pause("b")
                junk = redis.Redis(host="127.0.0.1", port=deployment.ports["a"], socket_timeout=5)
                with junk:
                    junk.set("junk", b"x" * 32_000_000)
                await asyncio.sleep(4.0)
                # The active controller is slow to reach the new master (paused well inside its
                # lease TTL; its ExaBGP keeps running): the standby gets there first and finds
                # the lease free.
                os.kill(active.pid, signal.SIGSTOP)
                try:
                    killed = deployment.kill_master()
                    deployment.resume("b")
                    killed_at = time.monotonic()
                    promoted = await asyncio.to_thread(deployment.wait_master_other_than, killed, 20.0)
                    assert promoted == "b", "Sentinel promoted no replica"
                    promoted_s = time.monotonic() - killed_at
                    await asyncio.sleep(0.6)
                finally:
                    os.kill(active.pid, signal.SIGCONT)
                await asyncio.sleep(10)  # the lease settles on one controller
            assert not owners.both_at, f"both controllers ran ExaBGP at once: {owners.owners}"
            assert owners.owners[-1][1] in (("active",), ("standby",)), owners.owners
            assert await watch.wait_for(lambda fib: set(pinned) <= set(fib), 30.0), "pins not in the FIB"
            _assert_within_cap(lab, watch)
            print(f"\nsentinel-lease-lost: promoted {promoted_s:.2f}s after the kill, the lease gone "
                  f"with the master; ExaBGP owners {[o for _, o in owners.owners]} (never two)")
    finally:
        active.stop()
        standby.stop()


def test_a_lease_lost_in_a_failover_never_lets_two_controllers_program_the_switch(
    lab: Lab, sentinel_deployment: SentinelDeployment
) -> None:
    asyncio.run(_lease_lost_in_failover(lab, sentinel_deployment))
