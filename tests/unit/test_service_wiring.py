"""Service wiring: leased switches (all with Redis, none with `store.lease = false`), per-path rates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service


def config(store: dict[str, object]) -> TopfibConfig:
    """A port nothing listens on: constructing the service connects to nothing."""
    return TopfibConfig.model_validate({
        "api": {"listen": "127.0.0.1:18081"},
        "collector": {"sflow_listen": ["127.0.0.1:16344"]},
        "store": store,
        "switch": [{"name": name, "neighbor": "10.0.0.2", "local_address": "10.0.0.1", "local_as": 65000,
                    "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 10} for name in ("edge1", "edge2")],
    })


async def _close(service: Service) -> None:
    if service.leases:
        await service._lease_client.aclose()  # type: ignore[attr-defined,unused-ignore]


@pytest.mark.parametrize(("store", "leased"), [
    ({"url": "redis://127.0.0.1:1/0"}, {"edge1", "edge2"}),
    ({"url": "redis://127.0.0.1:1/0", "lease": True}, {"edge1", "edge2"}),
    ({"url": "redis://127.0.0.1:1/0", "lease": False}, set()),
    ({"url": "memory://"}, set()),
])
def test_switches_leased(tmp_path: Path, store: dict[str, object], leased: set[str]) -> None:
    service = Service(config(store), runtime_dir=tmp_path)
    assert set(service.leases) == leased
    asyncio.run(_close(service))


def test_a_quoted_boolean_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"store\.lease|lease"):
        config({"url": "redis://127.0.0.1:1/0", "lease": "no"})


def test_the_collector_accounts_per_path_rates_the_api_reads(tmp_path: Path) -> None:
    service = Service(config({}), runtime_dir=tmp_path)
    assert service.collector.path_rates is service.path_rates
    assert service.path_rates.fast_half_life_s == service.config.collector.fast_half_life_s


def test_a_sentinel_url_reaches_the_store_and_the_leases_through_the_sentinels(tmp_path: Path) -> None:
    from redis.asyncio.sentinel import SentinelConnectionPool

    from topfib.controller.state.redis_store import RedisStore

    url = "redis+sentinel://127.0.0.1:1,127.0.0.1:2/topfib/0"
    service = Service(config({"url": url}), runtime_dir=tmp_path)
    assert isinstance(service.store, RedisStore) and service.store._replica_acks == 1
    assert isinstance(service.store._redis.connection_pool, SentinelConnectionPool)
    assert isinstance(service._lease_client.connection_pool, SentinelConnectionPool)
    for lease in service.leases.values():  # a new holder waits out one TTL before it acts (failover)
        assert lease._claim_s == lease._ttl_s == 3.0
    asyncio.run(_close(service))
    asyncio.run(service.store.aclose())
    plain = Service(config({"url": "redis://127.0.0.1:1/0"}), runtime_dir=tmp_path)
    assert all(lease._claim_s == 0.0 for lease in plain.leases.values())  # no replication to lose it
    asyncio.run(_close(plain))


def test_the_start_up_heap_is_frozen_once_after_the_service_started(tmp_path: Path) -> None:
    """gc.freeze() once, after Service.start (what it built is long-lived), not before nor again."""
    import gc
    import os
    import signal
    from unittest import mock

    from topfib.controller.service import run

    calls: list[str] = []

    class FakeService:
        def __init__(self, _config: TopfibConfig) -> None:
            pass

        async def start(self) -> None:
            calls.append("start")
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

        def reload(self, _path: Path) -> None:
            calls.append("reload")

        async def stop(self) -> None:
            calls.append("stop")

    def collect() -> int:
        calls.append("collect")
        return 0

    with (mock.patch.object(run, "Service", FakeService),
          mock.patch.object(gc, "collect", side_effect=collect),
          mock.patch.object(gc, "freeze", side_effect=lambda: calls.append("freeze"))):
        asyncio.run(run.serve(config({"url": "memory://"}), tmp_path / "topfib.toml"))
    assert calls == ["start", "collect", "freeze", "stop"]
