"""Entries another Redis client wrote, not the way topfib writes them, are skipped and counted.

Before, one malformed pin, request or override made every read raise: the controller's loop
failed each iteration (the FIB was no longer programmed) and the API answered 500.
"""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from tests.api_support import anyio_backend  # noqa: F401
from topfib.collector.common.metrics import REGISTRY
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import Pin, RequestEntry

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
NOW = 1_700_000_000.0


def _malformed(kind: str) -> float:
    counter = REGISTRY.get("topfib_store_malformed_total")
    return 0.0 if counter is None else counter.value(kind=kind)


async def test_malformed_entries_are_skipped_counted_and_logged_once(
    redis_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisStore.from_url(redis_url)
    raw: aioredis.Redis[str] = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await store.set_pin(Pin("16.0.0.0/8", "op", NOW, "kept"))
        await store.update_config_overrides("edge1", {"fib_cap_ipv4": 5}, ())
        await store.add_requests([RequestEntry("edge1", "8.8.8.8", "ap1", NOW, NOW + 60)], {"edge1": 10}, NOW)
        await raw.hset("topfib:pins", mapping={"16.1.0.0/16": "{not json", "16.2.0.0/16": "[1, 2]",
                                               "16.3.0.1/16": '{"by": "x", "since": 1}'})
        await raw.hset("topfib:config:edge1", mapping={"margin": "abc", "min_dwell_s": "true",
                                                       "min_swap_gain": '"0.5"'})
        junk_requests = ["not json", '["ap1", "8.8.4.4%x\\nteardown"]', '["ap1", 17]']
        await raw.zadd("topfib:req:exp:edge1", dict.fromkeys(junk_requests, NOW + 60))
        before = {kind: _malformed(kind) for kind in ("pin", "setting", "request")}
        with caplog.at_level(logging.WARNING, logger="topfib.controller.state.redis_store"):
            for _ in range(2):
                assert [p.prefix for p in await store.pins()] == ["16.0.0.0/8"]
                assert await store.config_overrides() == {"edge1": {"fib_cap_ipv4": 5}}
                requests = await store.active_requests("edge1", NOW)
                assert [(e.ip, e.ap) for e in requests] == [("8.8.8.8", "ap1")]
        assert {kind: _malformed(kind) - before[kind] for kind in before} == {
            "pin": 6, "setting": 6, "request": 6}
        assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 9  # once per entry
        assert "8.8.4.4%x\nteardown" not in caplog.text  # quoted with repr, never a raw newline
        # a write answers with what is stored, skipping the same entries
        assert await store.update_config_overrides("edge1", {"fib_cap_ipv6": 3}, ()) == {
            "fib_cap_ipv4": 5, "fib_cap_ipv6": 3}
    finally:
        await raw.aclose()  # type: ignore[attr-defined,unused-ignore]  # redis 5+; stubs are redis 4
        await store.aclose()
