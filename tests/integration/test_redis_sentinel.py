"""The store and the lease on Redis Sentinel: the master killed under load, Sentinel promotes the
replica, no acknowledged write is lost, one lease holder acts at a time, all without manual action.

The full ``topfib run`` version of the failover (two controllers, ExaBGP, BIRD) is in
test_redis_sentinel_failover.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import pytest

from tests.api_support import anyio_backend  # noqa: F401
from tests.integration.lab import async_wait_until
from topfib.controller.state.lease import RedisLease
from topfib.controller.state.redis_connect import redis_client
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import RequestEntry, StoreUnavailable

if TYPE_CHECKING:
    from tests.sentinel_fixture import SentinelDeployment

pytest_plugins = ["tests.sentinel_fixture"]
pytestmark = [pytest.mark.anyio, pytest.mark.integration]
T0 = 1_700_000_000.0
LIMITS = {"edge1": 100_000}


def _entry(n: int) -> RequestEntry:
    return RequestEntry("edge1", f"198.51.{n // 250}.{n % 250 + 1}", "ap1", T0, T0 + 3600)


async def test_a_write_no_replica_acknowledged_is_refused_not_reported_done(
    sentinel_deployment: SentinelDeployment,
) -> None:
    store = RedisStore.from_url(sentinel_deployment.url, timeout_s=0.5, replica_acks=1)
    try:
        assert await store.add_requests([_entry(1)], LIMITS, T0) == [True]
        sentinel_deployment.pause("b")  # the replica stops acknowledging (SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="replicas acknowledged"):
                await store.add_requests([_entry(2)], LIMITS, T0)
            assert time.monotonic() - started < 2.0, "the wait for the replica must be bounded"
        finally:
            sentinel_deployment.resume("b")
        assert await store.add_requests([_entry(3)], LIMITS, T0) == [True]
        changed = await store.update_config_overrides("edge1", {"margin": 0.25}, ["min_dwell_s"])
        assert changed == {"margin": 0.25}
    finally:
        await store.aclose()


async def test_no_write_acknowledged_while_the_replica_lags_is_lost_by_a_failover(
    sentinel_deployment: SentinelDeployment,
) -> None:
    store = RedisStore.from_url(sentinel_deployment.url, timeout_s=0.5, replica_acks=1)
    reader = RedisStore.from_url(sentinel_deployment.url, timeout_s=0.5)
    acknowledged: set[str] = set()
    try:
        for n in range(10):
            if n == 5:
                # Replication stalls: the replica stops reading, and a big write fills the socket
                # buffers between them, so what follows stays in the master's output buffer.
                sentinel_deployment.pause("b")
                with contextlib.suppress(StoreUnavailable):
                    await store.put_snapshot("edge1", "rates", "x" * 32_000_000)
            try:
                if await store.add_requests([_entry(n)], LIMITS, T0) == [True]:
                    acknowledged.add(_entry(n).ip)
            except StoreUnavailable:
                pass
        killed = sentinel_deployment.kill_master()
        sentinel_deployment.resume("b")
        promoted = await asyncio.to_thread(sentinel_deployment.wait_master_other_than, killed, 20.0)
        assert promoted == "b"
        stored: list[RequestEntry] | None = None
        for _ in range(100):
            try:
                stored = await reader.active_requests("edge1", T0)
                break
            except StoreUnavailable:
                await asyncio.sleep(0.1)
        assert stored is not None, "the promoted master never answered"
        lost = acknowledged - {e.ip for e in stored}
        assert len(acknowledged) >= 5 and not lost, f"acknowledged, then lost in the failover: {sorted(lost)}"
    finally:
        await store.aclose()
        await reader.aclose()


async def test_master_killed_under_load_loses_no_acknowledged_write_and_recovers(
    sentinel_deployment: SentinelDeployment,
) -> None:
    store = RedisStore.from_url(sentinel_deployment.url, timeout_s=0.5, replica_acks=1)
    acknowledged: list[RequestEntry] = []
    refused = 0
    stop = asyncio.Event()

    async def load() -> None:  # ~50 writes per second, each one request
        nonlocal refused
        n = 0
        while not stop.is_set() and n < 5000:
            entry, n = _entry(n), n + 1
            try:
                if await store.add_requests([entry], LIMITS, T0) == [True]:
                    acknowledged.append(entry)
            except StoreUnavailable:
                refused += 1
            await asyncio.sleep(0.02)

    try:
        writer = asyncio.create_task(load())
        # writes flowing (acknowledged by the replica) before the kill
        assert await async_wait_until(lambda: len(acknowledged) >= 20, 10.0), f"{refused} refused"
        killed = sentinel_deployment.kill_master()
        killed_at = time.monotonic()
        before = len(acknowledged)
        promoted = await asyncio.to_thread(sentinel_deployment.wait_master_other_than, killed, 20.0)
        assert promoted is not None, "Sentinel promoted no replica"
        promoted_s = time.monotonic() - killed_at
        await asyncio.sleep(1)
        # The promoted master has no replica left to acknowledge writes: they are refused, not
        # acknowledged unsafely, until the old master's supervisor restarts it and Sentinel makes it
        # the new master's replica.
        during = len(acknowledged)
        sentinel_deployment.start_server(killed)
        assert await asyncio.to_thread(sentinel_deployment.wait_role, killed, "slave", 20.0), \
            "Sentinel did not turn the restarted old master into a replica"
        rejoined_s = time.monotonic() - killed_at
        resumed = await async_wait_until(lambda: len(acknowledged) > during + 50, 10.0)
        stop.set()
        await writer
        assert resumed, "writes did not resume once a replica was back"
        stored = await store.active_requests("edge1", T0)
        lost = {e.ip for e in acknowledged} - {e.ip for e in stored}
        assert not lost, f"{len(lost)} acknowledged writes lost in the failover, e.g. {sorted(lost)[:3]}"
        print(f"\nsentinel-store: promoted {promoted_s:.2f}s after the kill, old master a replica again "
              f"after {rejoined_s:.2f}s; {len(acknowledged)} acknowledged ({during - before} between the "
              f"kill and the rejoin), {refused} refused (503), 0 lost")
    finally:
        stop.set()
        await store.aclose()


async def test_one_lease_holder_acts_at_a_time_across_a_failover(
    sentinel_deployment: SentinelDeployment,
) -> None:
    ttl_s = 1.0
    clients = [redis_client(sentinel_deployment.url, timeout_s=0.3) for _ in range(2)]
    leases = [RedisLease(client, "edge1", name, ttl_s, claim_s=ttl_s)
              for client, name in zip(clients, "AB", strict=True)]
    overlaps = 0
    acting_seen: set[str] = set()

    async def round_of_holds(rounds: int) -> None:
        nonlocal overlaps
        for _ in range(rounds):
            acting = [lease.holder for lease in leases if await lease.hold()]
            overlaps += len(acting) > 1
            acting_seen.update(acting)
            await asyncio.sleep(ttl_s / 5)

    try:
        await round_of_holds(10)
        assert acting_seen == {"A"}  # the first to claim; B stands by
        killed = sentinel_deployment.kill_master()
        on_promoted = 0
        for _ in range(40):  # the failover, then 10 rounds (two TTLs) on the promoted replica
            await round_of_holds(1)
            if sentinel_deployment.name_of(sentinel_deployment.master_port()) not in (None, killed):
                on_promoted += 1
                if on_promoted == 10:
                    break
        assert on_promoted == 10, "no replica promoted, or not for long enough"
        assert overlaps == 0, "two holders acted at once"
        assert sum([await lease.hold() for lease in leases]) == 1, "nobody acts after the failover"
    finally:
        for client in clients:
            await client.aclose()  # type: ignore[attr-defined,unused-ignore]
