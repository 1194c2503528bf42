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
