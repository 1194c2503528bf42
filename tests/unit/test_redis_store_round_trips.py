"""A POST for several switches costs the Redis store one round trip (its scripts pipelined)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection

from tests.api_support import anyio_backend
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import RequestEntry

__all__ = ["anyio_backend"]
pytest_plugins = ["tests.redis_fixture"]
pytestmark = [pytest.mark.anyio, pytest.mark.integration]
T0 = 1_700_000_000.0


async def test_requests_for_three_switches_take_one_round_trip(redis_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store = RedisStore.from_url(redis_url)
    sends = 0
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        nonlocal sends
        sends += 1
        await original(self, command, check_health)

    limits = {"edge1": 10, "edge2": 10, "edge3": 10}
    try:
        first = [RequestEntry("edge1", "198.51.100.9", "ap9", T0, T0 + 60)]
        await store.add_requests(first, limits, T0)  # loads the script
        monkeypatch.setattr(Connection, "send_packed_command", counting)
        entries = [RequestEntry(switch, ip, "ap1", T0, T0 + 60) for switch in limits
                   for ip in ("198.51.100.1", "198.51.100.2")]
        assert await store.add_requests(entries, limits, T0) == [True] * 6
    finally:
        monkeypatch.undo()
        await store.aclose()
    assert sends == 1
