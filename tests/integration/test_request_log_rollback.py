"""Redis goes back in time under the control loop's request mirror: restored from an older copy
(or a Sentinel replica promoted before it had the last writes), then written again. The change
counter climbs back over numbers the mirror has already read, with other changes behind them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import RequestEntry
from topfib.controller.switch.request_mirror import RequestMirror

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


SWITCH_IPS = ("198.51.100.1", "198.51.100.2", "198.51.100.3", "2001:db8::1")
SKEW_S = 2.0  # how far an API replica's clock may be from the controller's


@dataclass(frozen=True)
class Write:
    ap: str
    ip: str
    ttl: float
    skew: float  # the writing replica's clock minus the controller's


@dataclass(frozen=True)
class End:
    ap: str
    ip: str
    skew: float


@dataclass(frozen=True)
class Lose:
    """Redis goes back: to the copy taken at the last Keep, or empty (FLUSHALL)."""

    to_copy: bool


@dataclass(frozen=True)
class Keep:
    """An RDB copy of this moment (the one a later Lose goes back to)."""


skews = st.sampled_from([-SKEW_S, 0.0, SKEW_S])
steps = st.lists(st.tuples(
    st.sampled_from([0.0, 0.5, 1.5, 4.0]),  # controller time before the step
    st.one_of(st.builds(Write, st.sampled_from(("a", "b")), st.sampled_from(SWITCH_IPS),
                        st.sampled_from([1.0, 3.0, 30.0]), skews),
              st.builds(End, st.sampled_from(("a", "b")), st.sampled_from(SWITCH_IPS), skews),
              st.builds(Lose, st.booleans()), st.builds(Keep)),
    st.booleans(),  # whether the control loop reads after it (Redis may go back between reads)
), min_size=1, max_size=30)


def held(mirror: RequestMirror) -> set[tuple[str, str, float]]:
    return {(e.ap, e.ip, e.expires_at) for e in mirror.held_entries()}


async def run_steps(redis_url: str, change_log_max: int, plan: list[tuple[float, object, bool]]) -> None:
    store = RedisStore.from_url(redis_url, change_log_max=change_log_max)
    raw: aioredis.Redis[bytes] = aioredis.Redis.from_url(redis_url)
    mirror = RequestMirror("edge1")
    try:
        await raw.flushdb()
        copy = await snapshot(raw)
        now = T0
        for pause, step, read in plan:
            now += pause
            if isinstance(step, Write):
                at = now + step.skew
                await store.add_requests([RequestEntry("edge1", step.ip, step.ap, at, at + step.ttl)],
                                         {"edge1": 3}, at)
            elif isinstance(step, End):
                await store.remove_requests(step.ap, step.ip, now + step.skew)
            elif isinstance(step, Keep):
                copy = await snapshot(raw)
            elif isinstance(step, Lose):
                await restore(raw, copy if step.to_copy else {})
            if not read:
                continue
            await mirror.refresh(store, now)
            truth = {(e.ap, e.ip, e.expires_at) for e in await store.active_requests("edge1", now)}
            mirrored = held(mirror)
            # nothing missed; held beyond the store only what a replica with a clock ahead
            # purged early, and only until it expires by the controller's clock
            assert truth <= mirrored, (truth, mirrored)
            assert all(expires <= now + SKEW_S for _, _, expires in mirrored - truth), (truth, mirrored)
    finally:
        await raw.aclose()  # type: ignore[attr-defined,unused-ignore]
        await store.aclose()


@pytest.mark.parametrize("change_log_max", [2, 1000])  # trimmed often, never
def test_the_mirror_never_misses_nor_keeps_a_request_whatever_redis_does(
    redis_url: str, change_log_max: int
) -> None:
    """Adds, re-adds with other TTLs, removals and expiries from API replicas whose clocks differ,
    Redis emptied or put back to an older copy between any two of them, the log trimmed: after each
    step the control loop's mirror holds what Redis holds (differential, real Redis)."""

    @given(steps)
    @example([(0.0, Write("a", "198.51.100.1", 30.0, 0.0), False), (0.0, Keep(), False),
              (0.0, Write("a", "198.51.100.2", 30.0, 0.0), True), (0.0, Lose(True), False),
              (0.0, Write("b", "198.51.100.3", 30.0, 0.0), True)])  # the case found by hand
    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(plan: list[tuple[float, object, bool]]) -> None:
        asyncio.run(run_steps(redis_url, change_log_max, plan))

    check()
