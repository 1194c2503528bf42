"""A flood of requests from one access-point token: 429 past its rate, other clients unaffected, and
whatever gets through cannot evict pins, nor more TopN routes than that AP's request quota."""

from __future__ import annotations

import pytest

from tests.api_support import (
    AP2_TOKEN,
    AP_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    FakeClock,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
)
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.selection.select import OnDemandRequest, SelectionPolicy, select
from topfib.controller.service.static_view import StaticView
from topfib.controller.state.store import MemoryStore

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0
PREFIXES = [f"198.18.{i}.0/24" for i in range(256)] + [f"198.19.{i}.0/24" for i in range(144)]
NEXT_HOP = "192.0.2.1"


def _view() -> StaticView:
    return StaticView(routes={"edge1": dict.fromkeys(PREFIXES, NEXT_HOP)})


def _rib() -> Rib:
    rib = Rib()
    for prefix in PREFIXES:
        rib.announce("peer", prefix, BgpPath(next_hop=NEXT_HOP, peer="10.0.0.2"))
    return rib


def _ip(n: int) -> str:
    prefix = PREFIXES[n % len(PREFIXES)]
    return prefix.replace(".0/24", f".{n // len(PREFIXES) % 250 + 1}")


async def test_a_flood_from_one_token_gets_429_and_other_clients_are_unaffected() -> None:
    config = make_config(api={"rate_limit_per_s": 5.0, "rate_limit_burst": 20})
    store = MemoryStore()
    clock = FakeClock()
    app = build(store=store, view=_view(), config=config, clock=clock, wall_clock=FakeClock(T0))
    async with client(app) as c:
        statuses = []
        for n in range(500):  # no time passes: only the burst may get through
            response = await c.post("/v1/requests", json={"ips": [_ip(n)]}, headers=auth(AP_TOKEN))
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
        assert statuses.count(200) == 20 and statuses.count(429) == 480
        # Refused calls were not recorded; the other AP, the operator and viewers still get through.
        assert len(await store.active_requests("edge1", T0)) == 20
        other = await c.post("/v1/requests", json={"ips": [_ip(1000)]}, headers=auth(AP2_TOKEN))
        assert other.status_code == 200
        pin = await c.put(f"/v1/pins/{PREFIXES[-1]}", headers=auth(OPERATOR_TOKEN))
        assert pin.status_code == 200
        assert (await c.get("/v1/pins", headers=auth(VIEWER_TOKEN))).status_code == 200
        # The bucket refills at the configured rate.
        clock.advance(1.0)
        refilled = [(await c.post("/v1/requests", json={"ips": [_ip(2000 + n)]}, headers=auth(AP_TOKEN)))
                    .status_code for n in range(6)]
        assert refilled == [200] * 5 + [429]


async def test_a_flood_cannot_evict_pins_or_more_topn_routes_than_its_quota() -> None:
    quota, cap, pinned = 15, 100, PREFIXES[:10]
    config = make_config(api={"rate_limit_per_s": 1000.0, "rate_limit_burst": 1000},
                         switch_extra={"max_requests_per_ap": quota, "fib_cap_ipv4": cap})
    store = MemoryStore()
    clock = FakeClock()
    app = build(store=store, view=_view(), config=config, clock=clock, wall_clock=FakeClock(T0))
    rib = _rib()
    # TopN: prefixes 10.. have traffic, falling with their index; the top 90 fill the cap with the pins.
    scores = {prefix: 1e6 / (i + 1) for i, prefix in enumerate(PREFIXES[10:])}
    policy = SelectionPolicy.from_switch(config.switch[0])
    before = select(scores=scores, rib=rib, policy=policy, now=T0, pins=pinned)
    topn_before = {p for p, r in before.routes.items() if r.reason == "topn"}
    assert len(before.routes) == cap and len(topn_before) == cap - len(pinned)

    async with client(app) as c:
        for prefix in pinned:
            assert (await c.put(f"/v1/pins/{prefix}", headers=auth(OPERATOR_TOKEN))).status_code == 200
        accepted: set[str] = set()
        rejected = limited = 0
        for n in range(150):  # 1,500 distinct addresses, 10 per call, cold prefixes first
            ips = [_ip(300 + n * 10 + k) for k in range(10)]
            response = await c.post("/v1/requests", json={"ips": ips}, headers=auth(AP_TOKEN))
            if response.status_code == 429:
                limited += 1
                clock.advance(0.01)
                continue
            assert response.status_code == 200
            for result in response.json()["results"]:
                if result["status"] == "rejected":
                    rejected += 1
                else:
                    accepted.add(result["ip"])
        assert len(accepted) == quota and rejected == 1500 - quota and limited == 0

    entries = await store.active_requests("edge1", T0 + 1)
    assert len({e.ip for e in entries}) <= quota
    requests = [OnDemandRequest(ip=e.ip, expires_at=e.expires_at, created_at=e.requested_at) for e in entries]
    pins = [pin.prefix for pin in await store.pins()]
    after = select(scores=scores, rib=rib, policy=policy, now=T0 + 1, pins=pins, requests=requests,
                   incumbents=before.routes)
    assert set(pinned) <= set(after.routes), "a request flood evicted a pin"
    assert all(after.routes[p].reason == "pinned" for p in pinned)
    topn_after = {p for p, r in after.routes.items() if r.reason == "topn"}
    evicted = topn_before - topn_after
    assert 0 < len(evicted) <= quota, f"{len(evicted)} TopN routes evicted by one AP with a quota of {quota}"
    assert len(after.routes) <= cap
    # What went were the lowest-scored TopN routes, never the hottest.
    assert all(scores[p] <= min(scores[q] for q in topn_after) for p in evicted)
