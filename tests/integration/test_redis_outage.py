"""Redis goes away and comes back: reads keep serving the last state, writes answer 503, then recover."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.api_support import (
    AP_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
)
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import Pin, RequestEntry, StoreUnavailable
from topfib.controller.switch.request_mirror import RequestMirror

if TYPE_CHECKING:
    from tests.redis_fixture import RedisServer

pytest_plugins = ["tests.redis_fixture"]
pytestmark = [pytest.mark.anyio, pytest.mark.integration]
T0 = 1_700_000_000.0
OPS, AP, VIEW = auth(OPERATOR_TOKEN), auth(AP_TOKEN), auth(VIEWER_TOKEN)


async def test_api_serves_reads_from_cache_and_refuses_writes_until_redis_returns(
    redis_server_own: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server_own.url, timeout_s=0.5)
    clock = FakeClock()
    app = build(store=store, clock=clock, wall_clock=FakeClock(T0))
    try:
        async with client(app) as c:
            setup = [await c.post("/v1/requests", json={"ips": ["198.51.100.7"]}, headers=AP),
                     await c.put("/v1/pins/198.51.100.0/24", headers=OPS),
                     await c.put("/v1/config/switches/edge1", json={"margin": 0.5}, headers=OPS)]
            assert [r.status_code for r in setup] == [200, 200, 200]
            reads = ["/v1/requests", "/v1/pins", "/v1/config"]
            before = {path: (await c.get(path, headers=OPS if path == "/v1/config" else VIEW)).json()
                      for path in reads}

            redis_server_own.stop()
            clock.advance(5)  # past the API's settings cache, so the store is asked
            started = time.monotonic()
            for path in reads:
                response = await c.get(path, headers=OPS if path == "/v1/config" else VIEW)
                assert response.status_code == 200, (path, response.text)
                assert response.json() == before[path]
            writes = [
                ("POST", "/v1/requests", {"ips": ["198.51.100.8"]}, AP),
                ("DELETE", "/v1/requests/198.51.100.7", None, AP),
                ("PUT", "/v1/pins/203.0.113.0/24", None, OPS),
                ("DELETE", "/v1/pins/198.51.100.0/24", None, OPS),
                ("PUT", "/v1/config/switches/edge1", {"margin": 0.1}, OPS),
            ]
            for method, path, body, headers in writes:
                response = await c.request(method, path, json=body, headers=headers)
                assert response.status_code == 503, (method, path, response.text)
                assert response.json() == {
                    "detail": "state store unavailable: the change was not recorded; retry later"}
            ready = await c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["store"] is False
            assert time.monotonic() - started < 5, "an outage must fail fast, not hang requests"

            redis_server_own.start()  # same port, empty (no persistence in tests)
            response = await c.post("/v1/requests", json={"ips": ["198.51.100.9"]}, headers=AP)
            assert response.status_code == 200 and response.json()["results"][0]["status"] == "pending"
            listed = (await c.get("/v1/requests", headers=VIEW)).json()["requests"]
            assert [r["ip"] for r in listed] == ["198.51.100.9"]
            assert (await c.put("/v1/pins/203.0.113.0/24", headers=OPS)).status_code == 200
            assert (await c.get("/readyz")).json()["store"] is True
    finally:
        await store.aclose()


async def test_store_cache_still_expires_requests_during_an_outage(redis_server_own: RedisServer) -> None:
    store = RedisStore.from_url(redis_server_own.url, timeout_s=0.5)
    try:
        entries = [RequestEntry("edge1", "198.51.100.1", "ap1", T0, T0 + 10),
                   RequestEntry("edge1", "198.51.100.2", "ap1", T0, T0 + 100)]
        await store.add_requests(entries, {"edge1": 10}, T0)
        await store.set_pin(Pin("198.51.100.0/24", "ops", T0))
        assert len(await store.active_requests("edge1", T0)) == 2
        assert len(await store.pins()) == 1
        redis_server_own.stop()
        assert [e.ip for e in await store.active_requests("edge1", T0 + 50)] == ["198.51.100.2"]
        assert len(await store.pins()) == 1
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable):
            await store.set_pin(Pin("203.0.113.0/24", "ops", T0))
        with pytest.raises(StoreUnavailable):  # never read before: nothing to fall back on
            await store.snapshot("edge1", "top")
    finally:
        await store.aclose()


async def test_reads_with_nothing_cached_say_so(redis_server_own: RedisServer) -> None:
    redis_server_own.stop()  # down from the start: nothing was ever read
    store = RedisStore.from_url(redis_server_own.url, timeout_s=0.5)
    try:
        async with client(build(store=store)) as c:
            response = await c.get("/v1/requests", headers=VIEW)
            assert response.status_code == 503
            detail = "state store unavailable and no earlier state to serve; retry later"
            assert response.json() == {"detail": detail}
            assert (await c.get("/v1/fib", headers=VIEW)).status_code == 200  # live data needs no store
    finally:
        await store.aclose()


async def test_the_request_mirror_holds_through_an_outage_and_rereads_an_emptied_redis(
    redis_server_own: RedisServer,
) -> None:
    """The control loop's mirror keeps (and expires) what it read while Redis is down; Redis back
    without its data (a new generation, fewer changes than the mirror had seen) is read whole."""
    store = RedisStore.from_url(redis_server_own.url, timeout_s=0.5)
    mirror = RequestMirror("edge1")
    try:
        await store.add_requests([RequestEntry("edge1", "198.51.100.1", "ap1", T0, T0 + 10),
                                  RequestEntry("edge1", "198.51.100.2", "ap1", T0, T0 + 100)],
                                 {"edge1": 10}, T0)
        assert len(await mirror.refresh(store, T0)) == 2
        redis_server_own.stop()
        assert [r.ip for r in await mirror.refresh(store, T0 + 50)] == ["198.51.100.2"]
        redis_server_own.start()  # no persistence: empty
        await store.add_requests([RequestEntry("edge1", "198.51.100.3", "ap2", T0 + 51, T0 + 200)],
                                 {"edge1": 10}, T0 + 51)
        assert [r.ip for r in await mirror.refresh(store, T0 + 52)] == ["198.51.100.3"]
        assert mirror.full_reads == 2
    finally:
        await store.aclose()


async def test_a_redis_that_lost_its_data_between_two_reads_is_read_whole(
    redis_server_own: RedisServer,
) -> None:
    """No read failed, and the new data has as many changes as the mirror had seen: only the new
    generation tells (a client that wrote before the restart writes again)."""
    store = RedisStore.from_url(redis_server_own.url, timeout_s=0.5)
    mirror = RequestMirror("edge1")
    try:
        first = RequestEntry("edge1", "198.51.100.1", "ap1", T0, T0 + 100)
        await store.add_requests([first], {"edge1": 10}, T0)
        assert len(await mirror.refresh(store, T0)) == 1
        redis_server_own.stop()
        redis_server_own.start()
        fresh = [RequestEntry("edge1", f"198.51.100.{i}", "ap2", T0 + 1, T0 + 100) for i in (7, 8, 9)]
        await store.add_requests(fresh, {"edge1": 10}, T0 + 1)
        assert sorted(r.ip for r in await mirror.refresh(store, T0 + 2)) == [e.ip for e in fresh]
        assert mirror.full_reads == 2
    finally:
        await store.aclose()
