"""The API refuses special-use space: pins answer 422 naming the range, requests ``no-route``."""

from __future__ import annotations

import pytest

from tests.api_support import (
    AP_TOKEN,
    OPERATOR_TOKEN,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
    make_view,
)
from topfib.collector.common.special_use import FILTERED
from topfib.controller.config import SpecialUseConfig
from topfib.controller.state.store import MemoryStore

pytestmark = pytest.mark.anyio
OPS = auth(OPERATOR_TOKEN)
AP = auth(AP_TOKEN)


@pytest.mark.parametrize(("prefix", "name"), [
    ("0.0.0.0/0", "default route"), ("::/0", "default route"), ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
    ("fe80::/10", "link-local"), ("ff00::/8", "multicast"), ("::ffff:0:0/96", "IPv4-mapped"),
    ("224.0.0.0/3", "multicast + reserved"), ("::/127", "unspecified + loopback"),
])
async def test_a_special_use_pin_is_422_naming_the_range_and_not_stored(prefix: str, name: str) -> None:
    store = MemoryStore()
    before = FILTERED.value(where="pin", range=name)
    async with client(build(store=store)) as c:
        response = await c.put(f"/v1/pins/{prefix}", headers=OPS)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["field"] == "prefix" and detail["type"] == "special_use"
    assert name in detail["msg"]
    assert await store.pins() == []
    assert FILTERED.value(where="pin", range=name) == before + 1


async def test_documentation_pins_follow_the_config_and_covering_prefixes_are_allowed() -> None:
    strict = make_config().model_copy(update={"special_use": SpecialUseConfig()})
    async with client(build(config=strict)) as c:
        refused = await c.put("/v1/pins/2001:db8:1::/48", headers=OPS)
        assert refused.status_code == 422 and "documentation" in refused.json()["detail"][0]["msg"]
        assert (await c.put("/v1/pins/0.0.0.0/1", headers=OPS)).status_code == 200
    async with client(build()) as c:  # the fixtures' config lets documentation through
        assert (await c.put("/v1/pins/2001:db8:1::/48", headers=OPS)).status_code == 200


async def test_a_request_for_a_special_use_address_answers_no_route_and_is_not_recorded() -> None:
    store = MemoryStore()
    async with client(build(store=store, config=make_config(("a", "b")), view=make_view(("a", "b")))) as c:
        response = await c.post("/v1/requests", headers=AP,
                                json={"ips": ["127.0.0.1", "198.51.100.7", "ff02::1", "::ffff:8.8.8.8"]})
    assert response.status_code == 200, response.text
    results = {(r["ip"], r["switch"]): r for r in response.json()["results"]}
    assert len(results) == 8
    for ip, name in (("127.0.0.1", "loopback"), ("ff02::1", "multicast"), ("::ffff:808:808", "IPv4-mapped")):
        for switch in ("a", "b"):
            result = results[ip, switch]
            assert result["status"] == "no-route" and result["prefix"] is None
            assert name in result["reason"] and result["expires_at"] is None
    assert results["198.51.100.7", "a"]["prefix"] == "198.51.100.0/24"
    assert sorted({e.ip for e in await store.active_requests(None, 2e9 - 1e9)}) == ["198.51.100.7"]
