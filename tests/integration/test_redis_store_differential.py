"""Random operation sequences give the same answers from the memory store and the Redis store,
and the control loop's request mirror (read by changes; with a short change log, trimming and
full reads happen too) always equals what a full read of the store gives."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import MemoryStore, RequestEntry, Store
from topfib.controller.switch.request_mirror import RequestMirror, newest_of

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


def newest_per_ip(active: list[RequestEntry]) -> list[tuple[str, float, float]]:
    """What the control loop selects on, from a full read (the rule before the mirror)."""
    groups: dict[str, dict[str, RequestEntry]] = {}
    for entry in active:
        groups.setdefault(entry.ip, {})[entry.ap] = entry
    return sorted((ip, newest.expires_at, newest.requested_at)
                  for ip, newest in ((ip, newest_of(group)) for ip, group in groups.items()))


async def apply(store: Store, steps: list[tuple[float, Add | Remove | Query]]) -> list[object]:
    now = 1_000.0
    answers: list[object] = []
    mirrors = {switch: RequestMirror(switch) for switch in SWITCHES}
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
            for switch in SWITCHES if operation.switch is None else (operation.switch,):
                mirrored = await mirrors[switch].refresh(store, now)
                expected = newest_per_ip([e for e in active if e.switch == switch])
                assert sorted((r.ip, r.expires_at, r.created_at) for r in mirrored) == expected
    return answers


async def both(redis_url: str, steps: list[tuple[float, Add | Remove | Query]],
               change_log_max: int) -> tuple[list[object], ...]:
    redis_store = RedisStore.from_url(redis_url, prefix="diff:", change_log_max=change_log_max)
    try:
        await redis_store._redis.flushdb()
        return await apply(MemoryStore(change_log_max), steps), await apply(redis_store, steps)
    finally:
        await redis_store.aclose()


@pytest.mark.parametrize("change_log_max", [3, 1000])  # often trimmed (full reads), never trimmed
def test_memory_and_redis_agree(redis_url: str, change_log_max: int) -> None:
    @given(operations)
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
              database=None)
    def run(steps: list[tuple[float, Add | Remove | Query]]) -> None:
        from_memory, from_redis = asyncio.run(both(redis_url, steps, change_log_max))
        assert from_memory == from_redis

    run()
