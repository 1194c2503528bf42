"""The controller lease against a real redis-server: one holder at a time, takeover on death."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis

from tests.api_support import FakeClock, anyio_backend  # noqa: F401
from topfib.controller.state.lease import RedisLease

if TYPE_CHECKING:
    from tests.redis_fixture import RedisServer

# Until tests/conftest.py registers it for every test.
pytest_plugins = ["tests.redis_fixture"]

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
TTL_S = 0.3


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis[str]]:
    connection: aioredis.Redis[str] = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield connection
    finally:
        await connection.aclose()  # type: ignore[attr-defined,unused-ignore]


async def test_one_holder_at_a_time_and_takeover_when_renewals_stop(client: aioredis.Redis[str]) -> None:
    active = RedisLease(client, "edge1", "A", TTL_S)
    standby = RedisLease(client, "edge1", "B", TTL_S)
    assert await active.hold() is True
    assert await standby.hold() is False
    # Renewing keeps it well past one TTL.
    for _ in range(5):
        await asyncio.sleep(TTL_S / 3)
        assert await active.hold() is True
        assert await standby.hold() is False
    assert await standby.current_holder() == "A"
    # A stops renewing: B takes over only after the TTL.
    stopped_at = time.monotonic()
    while not await standby.hold():
        await asyncio.sleep(0.02)
    assert time.monotonic() - stopped_at >= TTL_S * 0.8
    assert await active.renew() is False and not active.held()
    assert await active.release() is False  # cannot release B's lease
    assert await standby.current_holder() == "B"
    assert await standby.release() is True
    assert await active.hold() is True


async def test_leases_of_different_switches_are_independent(client: aioredis.Redis[str]) -> None:
    assert await RedisLease(client, "edge1", "A", TTL_S).hold()
    assert await RedisLease(client, "edge2", "B", TTL_S).hold()


async def test_held_is_local_and_expires_on_the_holders_clock(client: aioredis.Redis[str]) -> None:
    clock = FakeClock()
    lease = RedisLease(client, "edge1", "A", 10.0, clock=clock)
    assert not lease.held()
    assert await lease.hold()
    clock.advance(9.9)
    assert lease.held()
    clock.advance(0.2)
    assert not lease.held()


async def test_unreachable_redis_keeps_the_lease_only_until_it_would_expire(
    redis_server_own: RedisServer,
) -> None:
    clock = FakeClock()
    connection: aioredis.Redis[str] = aioredis.Redis.from_url(redis_server_own.url, decode_responses=True,
                                                               socket_connect_timeout=0.5)
    try:
        lease = RedisLease(connection, "edge1", "A", 5.0, clock=clock)
        assert await lease.hold()
        redis_server_own.stop()
        clock.advance(4)
        assert await lease.hold() is True  # still inside its TTL: keep acting
        clock.advance(2)
        assert await lease.hold() is False  # would have expired in Redis: stop
        redis_server_own.start()  # empty again: the lease is free
        assert await lease.hold() is True
    finally:
        await connection.aclose()  # type: ignore[attr-defined,unused-ignore]


HOLDER_PROGRAM = """
import asyncio, sys
import redis.asyncio as aioredis
from topfib.controller.state.lease import RedisLease

async def main() -> None:
    client = aioredis.Redis.from_url(sys.argv[1], decode_responses=True)
    lease = RedisLease(client, "edge1", "child", float(sys.argv[2]))
    while True:
        if await lease.hold():
            print("held", flush=True)
        await asyncio.sleep(float(sys.argv[2]) / 4)

asyncio.run(main())
"""


async def test_standby_takes_over_from_a_killed_holder_process(
    client: aioredis.Redis[str], redis_url: str
) -> None:
    ttl_s = 1.0
    child = subprocess.Popen([sys.executable, "-c", HOLDER_PROGRAM, redis_url, str(ttl_s)],
                             stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        standby = RedisLease(client, "edge1", "parent", ttl_s)
        for _ in range(3):  # the live child keeps renewing past the TTL
            assert await standby.hold() is False
            await asyncio.sleep(ttl_s / 2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=5)
        killed_at = time.monotonic()
        assert await standby.hold() is False
        while not await standby.hold():
            assert time.monotonic() - killed_at < ttl_s + 2, "standby never took over"
            await asyncio.sleep(0.05)
        assert await standby.current_holder() == "parent"
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=5)
        if child.stdout is not None:
            child.stdout.close()


async def test_a_new_holder_waits_out_a_lease_redis_lost_while_the_old_holder_keeps_it(
    client: aioredis.Redis[str],
) -> None:
    """A failover to a replica that missed the last renewals (or a restart without persistence)
    loses the lease key while the holder still counts it valid: the standby that takes the free
    key must not act before that validity is over, and the old holder must then stop."""
    clock = FakeClock()
    old = RedisLease(client, "edge1", "A", 10.0, clock=clock, claim_s=10.0)
    new = RedisLease(client, "edge1", "B", 10.0, clock=clock, claim_s=10.0)
    assert await old.hold() is False  # a first claim waits too: nobody knows what Redis forgot
    clock.advance(10.0)
    assert await old.hold() is True
    clock.advance(3.0)
    assert await old.hold() is True  # renewed at t=13: A counts it valid until t=23
    await client.delete(old.key)  # the write is lost

    clock.advance(1.0)
    assert await new.hold() is False, "B acted while A still counted its lease valid"
    assert await new.current_holder() == "B"
    clock.advance(8.0)  # t=22: A has not renewed since t=13 and still counts itself valid
    assert old.acting() and await new.hold() is False
    assert await old.hold() is False and not old.acting()  # its renew finds B: A stops
    clock.advance(2.0)  # t=24: B's claim (t=14) is one TTL old
    assert await new.hold() is True


async def test_a_holder_whose_valid_lease_redis_lost_keeps_acting(client: aioredis.Redis[str]) -> None:
    clock = FakeClock()
    lease = RedisLease(client, "edge1", "A", 10.0, clock=clock, claim_s=10.0)
    await lease.hold()
    clock.advance(10.0)
    assert await lease.hold() is True
    await client.delete(lease.key)
    clock.advance(1.0)
    assert await lease.hold() is True, "the active holder must not drop the switch for a lost key"
    assert await lease.current_holder() == "A"


async def test_a_holder_whose_redis_refuses_its_commands_stops_at_the_end_of_its_validity(
    client: aioredis.Redis[str], redis_url: str
) -> None:
    """Not unreachable but refused (ACL rights revoked, OOM, MISCONF...): hold() raised, the loop
    logged the failed iteration and the controller kept acting for good, while a standby with
    working rights took the lease one TTL later: two controllers programming one switch."""
    await client.acl_setuser("lease-a", enabled=True, passwords=["+pw-a"], keys=["*"], commands=["+@all"])
    own: aioredis.Redis[str] = aioredis.Redis.from_url(redis_url, decode_responses=True,
                                                       username="lease-a", password="pw-a")
    clock = FakeClock(100.0)
    try:
        lease = RedisLease(own, "edge1", "A", TTL_S, clock=clock)
        assert await lease.hold() is True
        await client.acl_setuser("lease-a", enabled=True, commands=["-@all", "+ping"])  # live connections too
        clock.advance(TTL_S / 3)
        assert await lease.hold() is True  # still valid from the last renewal
        clock.advance(TTL_S)
        assert await lease.hold() is False
        standby = RedisLease(client, "edge1", "B", TTL_S)
        for _ in range(50):  # B takes it once A's renewals have stopped for the TTL
            if await standby.hold():
                break
            await asyncio.sleep(TTL_S / 10)
        assert standby.acting() and await lease.hold() is False
    finally:
        await own.aclose()  # type: ignore[attr-defined,unused-ignore]
        await client.acl_deluser("lease-a")
