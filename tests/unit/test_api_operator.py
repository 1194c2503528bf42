from __future__ import annotations

from typing import Any

import pytest

from tests.api_support import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
)
from topfib.controller.state.store import MemoryStore

pytestmark = pytest.mark.anyio
OPS = auth(OPERATOR_TOKEN)


async def test_config_shows_file_values_then_overrides() -> None:
    store = MemoryStore()
    async with client(build(store=store)) as c:
        before = (await c.get("/v1/config", headers=OPS)).json()
        assert before["switches"][0]["settings"]["fib_cap_ipv4"] == 100
        assert before["switches"][0]["overrides"] == {}
        assert before["api"]["request_batch_max"] == 100
        put = await c.put("/v1/config/switches/edge1", headers=OPS,
                          json={"fib_cap_ipv4": 60, "margin": 0.5})
        assert put.status_code == 200, put.text
        after = (await c.get("/v1/config", headers=OPS)).json()["switches"][0]
    assert after["overrides"] == {"fib_cap_ipv4": 60, "margin": 0.5}
    assert after["settings"]["fib_cap_ipv4"] == 60
    assert after["settings"]["fib_cap_ipv6"] == 50
    assert await store.config_overrides() == {"edge1": {"fib_cap_ipv4": 60, "margin": 0.5}}


async def test_null_returns_a_key_to_the_file_value() -> None:
    async with client(build()) as c:
        await c.put("/v1/config/switches/edge1", headers=OPS, json={"fib_cap_ipv4": 7, "margin": 1.0})
        got = (await c.put("/v1/config/switches/edge1", headers=OPS, json={"fib_cap_ipv4": None})).json()
    assert got["overrides"] == {"margin": 1.0}
    assert got["settings"]["fib_cap_ipv4"] == 100


async def test_overrides_change_request_handling() -> None:
    async with client(build()) as c:
        await c.put("/v1/config/switches/edge1", headers=OPS, json={"request_ttl_max_s": 5,
                                                                     "request_ttl_default_s": 5})
        response = await c.post("/v1/requests", json={"ips": ["198.51.100.1"], "ttl_s": 60},
                                headers=auth("tfb_ap-one-token"))
    assert response.json()["results"][0]["ttl_s"] == 5


@pytest.mark.parametrize(("body", "field"), [
    ({"fib_cap_ipv4": 0}, "fib_cap_ipv4"),
    ({"fib_cap_ipv4": "many"}, "fib_cap_ipv4"),
    ({"margin": -1}, "margin"),
    ({"fib_cap": 5}, "fib_cap"),
    ({"loop_period_s": 5}, "loop_period_s"),
    ({"request_ttl_default_s": 100_000}, "request_ttl_default_s"),
    ({"min_dwell_s": "Infinity"}, "min_dwell_s"),
    ({"min_swap_gain": 1.5}, "min_swap_gain"),
    # above the config file's ceilings (by default its own values: caps 100/50, TTL 86400, 1000)
    ({"fib_cap_ipv4": 2147483647}, "fib_cap_ipv4"),
    ({"fib_cap_ipv6": 51}, "fib_cap_ipv6"),
    ({"fib_cap_ipv4_24": 10}, "fib_cap_ipv4_24"),
    ({"request_ttl_max_s": 1e300}, "request_ttl_max_s"),
    ({"max_requests_per_ap": 2147483647}, "max_requests_per_ap"),
    # JSON types as declared: a boolean or a string is not a number, a fraction not a count
    ({"fib_cap_ipv4": True}, "fib_cap_ipv4"),
    ({"fib_cap_ipv4": "5"}, "fib_cap_ipv4"),
    ({"max_requests_per_ap": 2.5}, "max_requests_per_ap"),
    ({"request_ttl_max_s": "60"}, "request_ttl_max_s"),
    ({"min_swap_gain": False}, "min_swap_gain"),
    ({"margin": True}, "margin"),
    # set for every switch by [collector]: never accepted here (nothing would apply them)
    ({"fast_half_life_s": 5}, "fast_half_life_s"),
    ({"slow_half_life_s": 600}, "slow_half_life_s"),
])
async def test_invalid_changes_get_422_naming_the_key_and_store_nothing(
    body: dict[str, Any], field: str
) -> None:
    store = MemoryStore()
    async with client(build(store=store)) as c:
        response = await c.put("/v1/config/switches/edge1", headers=OPS, json=body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["detail"]]
    assert await store.config_overrides() == {}


async def test_unknown_switch_is_404() -> None:
    async with client(build()) as c:
        response = await c.put("/v1/config/switches/nope", headers=OPS, json={"margin": 1})
    assert response.status_code == 404


async def test_pins_put_list_delete() -> None:
    store = MemoryStore()
    app = build(store=store, wall_clock=FakeClock(1_700_000_000.0))
    async with client(app) as c:
        put = await c.put("/v1/pins/2001:DB8::/32", headers=OPS, json={"note": "CDN"})
        assert put.json() == {"prefix": "2001:db8::/32", "by": "ops", "since": 1_700_000_000.0, "note": "CDN"}
        assert (await c.put("/v1/pins/198.51.100.0/24", headers=OPS)).status_code == 200
        listed = (await c.get("/v1/pins", headers=auth(VIEWER_TOKEN))).json()["pins"]
        assert [p["prefix"] for p in listed] == ["198.51.100.0/24", "2001:db8::/32"]
        assert (await c.delete("/v1/pins/198.51.100.0/24", headers=OPS)).status_code == 204
        assert (await c.delete("/v1/pins/198.51.100.0/24", headers=OPS)).status_code == 404
    assert [p.prefix for p in await store.pins()] == ["2001:db8::/32"]


@pytest.mark.parametrize("prefix", ["198.51.100.1/24", "198.51.100.0/33", "banana", "198.51.100.0/24/1"])
async def test_bad_pin_prefix_is_422(prefix: str) -> None:
    async with client(build()) as c:
        response = await c.put(f"/v1/pins/{prefix}", headers=OPS)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "prefix"


async def test_two_switch_config_keeps_overrides_apart() -> None:
    async with client(build(config=make_config(("a", "b")))) as c:
        await c.put("/v1/config/switches/b", headers=OPS, json={"fib_cap_ipv6": 9})
        config = (await c.get("/v1/config", headers=OPS)).json()
    assert [(s["name"], s["settings"]["fib_cap_ipv6"]) for s in config["switches"]] == [("a", 50), ("b", 9)]


async def test_overrides_may_rise_up_to_the_files_ceilings_only() -> None:
    config = make_config(switch_extra={"fib_cap_ipv4_max": 1000, "max_requests_per_ap_max": 2000})
    async with client(build(config=config)) as c:
        ok = await c.put("/v1/config/switches/edge1", headers=OPS,
                         json={"fib_cap_ipv4": 1000, "max_requests_per_ap": 2000})
        assert ok.status_code == 200, ok.text
        over = await c.put("/v1/config/switches/edge1", headers=OPS, json={"fib_cap_ipv4": 1001})
    assert over.status_code == 422
    detail = over.json()["detail"][0]
    assert detail["field"] == "fib_cap_ipv4" and "switch[].fib_cap_ipv4_max" in detail["msg"]
    assert ok.json()["settings"]["fib_cap_ipv4"] == 1000
