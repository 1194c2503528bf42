"""GET /v1/top?per_path=true: each ranked prefix's paths and the traffic attributed to each."""

from __future__ import annotations

import ipaddress
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.api_support import (
    VIEWER_TOKEN,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_view,
)
from tests.unit.test_pipeline import ListDecoder
from topfib.api.view import PathTraffic, TopEntry, sampling_error_pct
from topfib.collector.accounting.path_rates import PathRates
from topfib.collector.accounting.pipeline import Collector
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.collector.common.batch import SampleBatch
from topfib.collector.common.metrics import Registry
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.service.live_view import LiveView

pytestmark = pytest.mark.anyio
VIEW = auth(VIEWER_TOKEN)
PREFIX = "198.51.100.0/24"


def traffic(next_hop: str, bps: float, share: float | None, best: bool = False) -> PathTraffic:
    return PathTraffic(
        next_hop=next_hop, peer=next_hop, peer_as=64500, as_path=[64500], best=best, in_rib=True,
        rate_fast_bps=bps, rate_slow_bps=bps, packets_fast_per_s=1.0, packets_slow_per_s=1.0, share=share,
    )  # fmt: skip


async def test_per_path_is_opt_in_and_lists_paths_per_prefix() -> None:
    view = make_view()
    view.ranking["edge1"] = [
        TopEntry(
            prefix=prefix,
            rate_fast_bps=1e6,
            rate_slow_bps=1e6,
            score=1e6,
            samples=10,
            error_pct=sampling_error_pct(10),
            installed=False,
        )
        for prefix in (PREFIX, "198.51.0.0/16")
    ]
    view.path_traffic["edge1"] = {
        PREFIX: [traffic("192.0.2.1", 8e5, 0.8, best=True), traffic("192.0.2.2", 2e5, 0.2)]
    }
    async with client(build(view=view)) as c:
        plain = (await c.get("/v1/top", headers=VIEW)).json()
        detailed = (await c.get("/v1/top?per_path=true", headers=VIEW)).json()
        bad = await c.get("/v1/top?per_path=maybe", headers=VIEW)
    assert [entry["paths"] for entry in plain["prefixes"]] == [None, None]
    first, second = detailed["prefixes"]
    assert [(p["next_hop"], p["share"], p["best"]) for p in first["paths"]] == [
        ("192.0.2.1", 0.8, True), ("192.0.2.2", 0.2, False),
    ]  # fmt: skip
    assert second["paths"] == []  # no path data for that prefix
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "per_path"


def live_view_with_traffic() -> tuple[LiveView, Rib]:
    """A LiveView over a real RIB, collector and per-path rates (the controller is a stand-in)."""
    rib = Rib()
    rib.announce("192.0.2.1", PREFIX, BgpPath(next_hop="192.0.2.1", as_path=(64500, 3356), local_pref=200,
                                           peer="192.0.2.1"))  # fmt: skip
    rib.announce("192.0.2.2", PREFIX, BgpPath(next_hop="192.0.2.2", as_path=(64501,), peer="192.0.2.2"))
    hops = ["192.0.2.2", "192.0.2.9"]
    rows = [("198.51.100.1", 0, 3000.0), ("198.51.100.2", -1, 1000.0)]
    batch = SampleBatch(
        agents=["10.9.9.9"], v4_agent=np.zeros(2, np.uint32),
        v4_dst=np.array([int(ipaddress.IPv4Address(d)) for d, _, _ in rows], np.uint32),
        v4_bytes=np.array([b for _, _, b in rows]), v4_packets=np.ones(2), next_hops=hops,
        v4_next_hop=np.array([h for _, h, _ in rows], np.int32), datagrams=1, flow_samples=2,
    )  # fmt: skip
    path_rates = PathRates(fast_half_life_s=1e6, slow_half_life_s=1e6)
    collector = Collector(ListDecoder([batch]), {"10.9.9.9": "edge1"}, lambda _: rib.lpm, PrefixRates(),
                          Registry(), rib_for=lambda _: rib, path_rates=path_rates)  # fmt: skip
    collector.flush(0.0)
    controller: Any = SimpleNamespace(rib=rib, rib_lock=threading.Lock())
    return LiveView({"edge1": controller}, collector, clock=lambda: 0.0), rib


async def test_live_view_joins_rib_paths_with_their_traffic() -> None:
    view, rib = live_view_with_traffic()
    paths = await view.top_paths("edge1", [PREFIX, "203.0.113.0/24"])
    assert paths["203.0.113.0/24"] == []
    best, other = paths[PREFIX]
    assert (best.next_hop, best.best, best.peer_as, best.as_path) == ("192.0.2.1", True, 64500, [64500, 3356])
    assert (other.next_hop, other.peer, other.peer_as) == ("192.0.2.2", "192.0.2.2", 64501)
    assert other.rate_fast_bps == pytest.approx(3000.0 * 8, rel=1e-3)
    assert best.rate_fast_bps == pytest.approx(1000.0 * 8, rel=1e-3)
    assert best.share == pytest.approx(0.25) and other.share == pytest.approx(0.75)
    rib.withdraw("192.0.2.2", PREFIX, "192.0.2.2", 0)  # the path goes; its traffic is still shown
    gone = (await view.top_paths("edge1", [PREFIX]))[PREFIX]
    assert [(p.next_hop, p.in_rib, p.peer) for p in gone] == [("192.0.2.1", True, "192.0.2.1"),
                                                            ("192.0.2.2", False, None)]  # fmt: skip
    assert await view.top_paths("nope", [PREFIX]) == {}


async def test_live_view_without_per_path_rates_reports_paths_without_traffic() -> None:
    rib = Rib()
    rib.announce("192.0.2.1", PREFIX, BgpPath(next_hop="192.0.2.1", peer="192.0.2.1"))
    controller: Any = SimpleNamespace(rib=rib, rib_lock=threading.Lock())
    paths = (await LiveView({"edge1": controller}, None).top_paths("edge1", [PREFIX]))[PREFIX]
    assert [(p.next_hop, p.share, p.rate_fast_bps, p.peer_as) for p in paths] == [
        ("192.0.2.1", None, 0.0, None)
    ]
