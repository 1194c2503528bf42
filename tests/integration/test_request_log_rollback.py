"""Redis goes back in time under the control loop's request mirror: restored from an older copy
(or a Sentinel replica promoted before it had the last writes), then written again. The change
counter climbs back over numbers the mirror has already read, with other changes behind them."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from controller.redis_store import RedisStore
from controller.request_mirror import RequestMirror
from controller.store import RequestEntry

pytest_plugins = ["tests.redis_fixture"]
pytestmark = [pytest.mark.anyio, pytest.mark.integration]
T0 = 1_700_000_000.0
LIMITS = {"edge1": 100}


def entry(ip: str, at: float = T0) -> RequestEntry:
    return RequestEntry("edge1", ip, "ap1", at, at + 600)


async def snapshot(client: aioredis.Redis[bytes]) -> dict[bytes, bytes]:
    """Every key as DUMP gives it: what an RDB copy of this moment would bring back."""
    copy = {}
    async for key in client.scan_iter():
        value = await client.dump(key)
        assert value is not None
        copy[key] = value
    return copy


async def restore(client: aioredis.Redis[bytes], copy: dict[bytes, bytes]) -> None:
    await client.flushdb()
    for key, value in copy.items():
        await client.restore(key, 0, value)


@pytest.mark.parametrize("writes_after", [1, 2, 3])
async def test_a_store_restored_from_an_older_copy_then_written_is_read_whole(
    redis_url: str, writes_after: int
) -> None:
    """Written again as far as (or past) where the mirror was: the lost request must not stay
    installed and none of the new ones may be missed."""
    store = RedisStore.from_url(redis_url)
    raw: aioredis.Redis[bytes] = aioredis.Redis.from_url(redis_url)
    mirror = RequestMirror("edge1")
    try:
        await store.add_requests([entry("198.51.100.1")], LIMITS, T0)
        older = await snapshot(raw)
        await store.add_requests([entry("198.51.100.2", T0 + 1)], LIMITS, T0 + 1)
        assert len(await mirror.refresh(store, T0 + 2)) == 2
        await restore(raw, older)  # 198.51.100.2 is lost
        fresh = [f"203.0.113.{i}" for i in range(1, writes_after + 1)]
        for ip in fresh:
            await store.add_requests([entry(ip, T0 + 3)], LIMITS, T0 + 3)
        wanted = sorted(r.ip for r in await mirror.refresh(store, T0 + 4))
        assert wanted == sorted(["198.51.100.1", *fresh])
        assert wanted == sorted(e.ip for e in await store.active_requests("edge1", T0 + 4))
    finally:
        await raw.aclose()  # type: ignore[attr-defined,unused-ignore]
        await store.aclose()
