"""Random operation sequences give the same answers from the memory store and the Redis store."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.redis_store import RedisStore
from controller.store import MemoryStore, RequestEntry, Store

pytest_plugins = ["tests.redis_fixture"]
pytestmark = pytest.mark.integration

SWITCHES = ("s1", "s2")
APS = ("a", "b")
IPS = ("198.51.100.1", "198.51.100.2", "198.51.100.3", "2001:db8::1")
LIMITS = {"s1": 1, "s2": 2}  # small, so sequences reach the caps often


@dataclass(frozen=True)
class Add:
    items: tuple[tuple[str, str, str, float], ...]  # switch, ap, ip, ttl


@dataclass(frozen=True)
class Remove:
    ap: str
    ip: str


@dataclass(frozen=True)
class Query:
    switch: str | None


items = st.tuples(st.sampled_from(SWITCHES), st.sampled_from(APS), st.sampled_from(IPS),
                  st.sampled_from([1.0, 2.5, 10.0]))
adds = st.builds(Add, st.lists(items, min_size=1, max_size=4).map(tuple))
operations = st.lists(st.tuples(
    st.sampled_from([0.0, 0.5, 1.0, 3.0]),  # time step before the operation
    st.one_of(adds, st.builds(Remove, st.sampled_from(APS), st.sampled_from(IPS)),
              st.builds(Query, st.sampled_from((None, *SWITCHES)))),
), min_size=1, max_size=25)


async def apply(store: Store, steps: list[tuple[float, Add | Remove | Query]]) -> list[object]:
    now = 1_000.0
    answers: list[object] = []
    for step, operation in steps:
        now += step
        if isinstance(operation, Add):
            entries = [RequestEntry(sw, ip, ap, now, now + ttl) for sw, ap, ip, ttl in operation.items]
            answers.append(await store.add_requests(entries, LIMITS, now))
        elif isinstance(operation, Remove):
            answers.append(await store.remove_requests(operation.ap, operation.ip, now))
        else:
            active = await store.active_requests(operation.switch, now)
            held = Counter((e.switch, e.ap) for e in active)
            assert all(count <= LIMITS[switch] for (switch, _), count in held.items())
            answers.append(active)
    return answers


async def both(redis_url: str, steps: list[tuple[float, Add | Remove | Query]]) -> tuple[list[object], ...]:
    redis_store = RedisStore.from_url(redis_url, prefix="diff:")
    try:
        await redis_store._redis.flushdb()
        return await apply(MemoryStore(), steps), await apply(redis_store, steps)
    finally:
        await redis_store.aclose()


def test_memory_and_redis_agree(redis_url: str) -> None:
    @given(operations)
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
              database=None)
    def run(steps: list[tuple[float, Add | Remove | Query]]) -> None:
        from_memory, from_redis = asyncio.run(both(redis_url, steps))
        assert from_memory == from_redis

    run()
