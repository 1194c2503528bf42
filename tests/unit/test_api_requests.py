from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from tests.api_support import (
    AP2_TOKEN,
    AP_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
    make_view,
)
from topfib.api.metrics import REQUEST_RESULTS
from topfib.api.view import FibRoute
from topfib.controller.state.store import MemoryStore, StoreUnavailable

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0


def rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_each_ip_gets_status_per_switch_from_the_view() -> None:
    view = make_view(("edge1", "edge2"))
    view.installed["edge1"] = [FibRoute(prefix="198.51.100.0/24", next_hop="192.0.2.1", reason="topn",
                                        since=T0)]
    view.rejected[("edge2", "198.51.0.0/16")] = "FIB full of pins"
    app = build(view=view, config=make_config(("edge1", "edge2")))
    async with client(app) as c:
        body = {"ips": ["198.51.100.7", "198.51.7.7", "2001:DB8::5", "203.0.113.1"], "ttl_s": 60}
        got = {(r["ip"], r["switch"]): (r["prefix"], r["status"], r["reason"])
               for r in rows(await c.post("/v1/requests", json=body, headers=auth(AP_TOKEN)))}
    transit = "no peer path for this address; traffic uses transit"
    assert got == {
        ("198.51.100.7", "edge1"): ("198.51.100.0/24", "installed", None),
        ("198.51.100.7", "edge2"): ("198.51.100.0/24", "pending", None),
        ("198.51.7.7", "edge1"): ("198.51.0.0/16", "pending", None),
        ("198.51.7.7", "edge2"): ("198.51.0.0/16", "rejected", "FIB full of pins"),
        ("2001:db8::5", "edge1"): ("2001:db8::/32", "pending", None),
        ("2001:db8::5", "edge2"): ("2001:db8::/32", "pending", None),
        ("203.0.113.1", "edge1"): (None, "no-route", transit),
        ("203.0.113.1", "edge2"): (None, "no-route", transit),
    }


async def test_requests_are_stored_with_ttl_bounded_by_switch_settings() -> None:
    store = MemoryStore()
    config = make_config(switch_extra={"request_ttl_default_s": 30, "request_ttl_max_s": 120})
    app = build(store=store, config=config, wall_clock=FakeClock(T0))
    async with client(app) as c:
        default = rows(await c.post("/v1/requests", json={"ips": ["198.51.100.7"]}, headers=auth(AP_TOKEN)))
        capped = rows(await c.post("/v1/requests", json={"ips": ["198.51.100.8"], "ttl_s": 1e6},
                                   headers=auth(AP_TOKEN)))
    assert (default[0]["ttl_s"], default[0]["expires_at"]) == (30, T0 + 30)
    assert (capped[0]["ttl_s"], capped[0]["expires_at"]) == (120, T0 + 120)
    stored = {(e.ip, e.ap, e.expires_at) for e in await store.active_requests("edge1", T0)}
    assert stored == {("198.51.100.7", "ap1", T0 + 30), ("198.51.100.8", "ap1", T0 + 120)}


async def test_duplicates_in_a_batch_are_answered_once() -> None:
    async with client(build()) as c:
        body = {"ips": ["2001:DB8::5", "2001:db8:0:0::5", "198.51.100.7", "198.51.100.7"]}
        got = rows(await c.post("/v1/requests", json=body, headers=auth(AP_TOKEN)))
    assert [r["ip"] for r in got] == ["2001:db8::5", "198.51.100.7"]


async def test_per_ap_cap_rejects_beyond_the_limit_but_not_other_aps_or_refreshes() -> None:
    app = build(config=make_config(switch_extra={"max_requests_per_ap": 2}))
    async with client(app) as c:
        three = {"ips": ["198.51.100.1", "198.51.100.2", "198.51.100.3"]}
        first = rows(await c.post("/v1/requests", json=three, headers=auth(AP_TOKEN)))
        assert [r["status"] for r in first] == ["pending", "pending", "rejected"]
        assert "2 active requests" in first[2]["reason"]
        assert first[2]["expires_at"] is None
        refresh = rows(await c.post("/v1/requests", json={"ips": ["198.51.100.1"]}, headers=auth(AP_TOKEN)))
        assert refresh[0]["status"] == "pending"
        other = rows(await c.post("/v1/requests", json={"ips": ["198.51.100.3"]}, headers=auth(AP2_TOKEN)))
        assert other[0]["status"] == "pending"


async def test_results_are_counted_by_status() -> None:
    before = REQUEST_RESULTS.value(status="no-route")
    async with client(build()) as c:
        await c.post("/v1/requests", json={"ips": ["203.0.113.1", "203.0.113.2"]}, headers=auth(AP_TOKEN))
    assert REQUEST_RESULTS.value(status="no-route") - before == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"ips": []}, "ips"),
    ({"ips": ["198.51.100.7", "not-an-ip"]}, "ips.1"),
    ({"ips": ["fe80::1%eth0"]}, "ips.0"),
    ({"ips": [17]}, "ips.0"),
    ({"ips": ["198.51.100.7"], "ttl_s": 0}, "ttl_s"),
    ({"ips": ["198.51.100.7"], "ttl_s": "NaN"}, "ttl_s"),
    ({"ips": ["198.51.100.7"], "ttl_s": True}, "ttl_s"),  # JSON types as declared, never coerced
    ({"ips": ["198.51.100.7"], "ttl_s": "60"}, "ttl_s"),
    ({"ips": ["198.51.100.7"], "extra": 1}, "extra"),
    ({}, "ips"),
    ({"ips": ["198.51.100.7"] * 4}, "ips"),
])
async def test_invalid_bodies_get_422_naming_the_field(body: dict[str, Any], field: str) -> None:
    app = build(config=make_config(api={"request_batch_max": 3}))
    async with client(app) as c:
        response = await c.post("/v1/requests", json=body, headers=auth(AP_TOKEN))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert field in [d["field"] for d in detail]
    assert all(set(d) == {"field", "loc", "msg", "type"} for d in detail)


async def test_malformed_json_is_422() -> None:
    async with client(build()) as c:
        response = await c.post("/v1/requests", content=b"{not json", headers={
            **auth(AP_TOKEN), "content-type": "application/json"})
    assert response.status_code == 422


async def test_delete_ends_only_the_callers_request_on_every_switch() -> None:
    store = MemoryStore()
    app = build(store=store, config=make_config(("edge1", "edge2")), view=make_view(("edge1", "edge2")))
    async with client(app) as c:
        for token in (AP_TOKEN, AP2_TOKEN):
            await c.post("/v1/requests", json={"ips": ["198.51.100.7"]}, headers=auth(token))
        assert (await c.delete("/v1/requests/198.51.100.7", headers=auth(AP_TOKEN))).status_code == 204
        assert (await c.delete("/v1/requests/198.51.100.7", headers=auth(AP_TOKEN))).status_code == 404
        assert (await c.delete("/v1/requests/bogus", headers=auth(AP_TOKEN))).status_code == 422
    left = await store.active_requests(None, T0)
    assert sorted((e.switch, e.ap) for e in left) == [("edge1", "ap2"), ("edge2", "ap2")]


async def test_listing_shows_an_ap_only_its_own_and_a_viewer_everything() -> None:
    async with client(build()) as c:
        await c.post("/v1/requests", json={"ips": ["198.51.100.1"]}, headers=auth(AP_TOKEN))
        await c.post("/v1/requests", json={"ips": ["198.51.100.2"]}, headers=auth(AP2_TOKEN))
        own = (await c.get("/v1/requests", headers=auth(AP_TOKEN))).json()["requests"]
        # An AP cannot widen its view by naming another client.
        widened = await c.get("/v1/requests?ap=ap2", headers=auth(AP_TOKEN))
        own_filtered_by_other_ap = widened.json()["requests"]
        every = (await c.get("/v1/requests", headers=auth(VIEWER_TOKEN))).json()["requests"]
    assert [(r["ap"], r["ip"]) for r in own] == [("ap1", "198.51.100.1")]
    assert own_filtered_by_other_ap == own
    assert sorted((r["ap"], r["ip"]) for r in every) == [("ap1", "198.51.100.1"), ("ap2", "198.51.100.2")]


async def test_expired_requests_disappear() -> None:
    wall = FakeClock(T0)
    app = build(wall_clock=wall)
    async with client(app) as c:
        await c.post("/v1/requests", json={"ips": ["198.51.100.1"], "ttl_s": 10}, headers=auth(AP_TOKEN))
        wall.advance(10)
        assert (await c.get("/v1/requests", headers=auth(VIEWER_TOKEN))).json()["requests"] == []


async def test_store_unavailable_answers_503_with_a_clear_message() -> None:
    store = MemoryStore()
    app = build(store=store)
    with mock.patch.object(store, "add_requests", side_effect=StoreUnavailable("connection refused")):
        async with client(app) as c:
            response = await c.post("/v1/requests", json={"ips": ["198.51.100.1"]}, headers=auth(AP_TOKEN))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "not recorded" in response.json()["detail"]
    assert "refused" not in response.text


async def test_unexpected_errors_are_a_generic_500() -> None:
    view = make_view()
    app = build(view=view)
    with mock.patch.object(view, "resolve", side_effect=RuntimeError("secret internals at 0xdead")):
        async with client(app, raise_app_exceptions=False) as c:
            response = await c.post("/v1/requests", json={"ips": ["198.51.100.1"]}, headers=auth(AP_TOKEN))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}


async def test_listing_filters_by_client_and_limits_newest_first() -> None:
    wall = FakeClock(T0)
    async with client(build(wall_clock=wall)) as c:
        for i in range(3):
            await c.post("/v1/requests", json={"ips": [f"198.51.100.{i}"]}, headers=auth(AP_TOKEN))
            wall.advance(1)
        await c.post("/v1/requests", json={"ips": ["198.51.100.9"]}, headers=auth(AP2_TOKEN))
        listed = (await c.get("/v1/requests?ap=ap1&limit=2", headers=auth(VIEWER_TOKEN))).json()
    assert [r["ip"] for r in listed["requests"]] == ["198.51.100.2", "198.51.100.1"]
    assert listed["total"] == 3
