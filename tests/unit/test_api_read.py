from __future__ import annotations

import pytest

from tests.api_support import (
    VIEWER_TOKEN,
    anyio_backend,  # noqa: F401
    auth,
    build,
    client,
    make_config,
    make_view,
)
from topfib.api.view import FibRoute, TopEntry, sampling_error_pct

pytestmark = pytest.mark.anyio
VIEW = auth(VIEWER_TOKEN)


def top_entry(prefix: str, score: float, samples: int) -> TopEntry:
    return TopEntry(prefix=prefix, rate_fast_bps=score, rate_slow_bps=score / 2, score=score, samples=samples,
                    error_pct=sampling_error_pct(samples), installed=False)


async def test_fib_and_top_default_to_the_only_switch() -> None:
    view = make_view()
    view.installed["edge1"] = [FibRoute(prefix="198.51.100.0/24", next_hop="192.0.2.1", reason="pinned",
                                        since=1.0, score=None)]
    view.ranking["edge1"] = [top_entry("198.51.100.0/24", 9e9, 100), top_entry("198.51.0.0/16", 1e9, 0)]
    async with client(build(view=view)) as c:
        fib = (await c.get("/v1/fib", headers=VIEW)).json()
        top = (await c.get("/v1/top?n=1", headers=VIEW)).json()
    route = {"prefix": "198.51.100.0/24", "next_hop": "192.0.2.1", "reason": "pinned", "since": 1.0,
             "score": None}
    assert fib == {"switch": "edge1", "routes": [route]}
    assert [e["prefix"] for e in top["prefixes"]] == ["198.51.100.0/24"]
    assert top["prefixes"][0]["error_pct"] == pytest.approx(19.6)


async def test_switch_must_be_named_when_several_and_must_exist() -> None:
    app = build(view=make_view(("a", "b")), config=make_config(("a", "b")))
    async with client(app) as c:
        missing = await c.get("/v1/fib", headers=VIEW)
        assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "switch"
        assert (await c.get("/v1/fib?switch=b", headers=VIEW)).json()["switch"] == "b"
        assert (await c.get("/v1/top?switch=zzz", headers=VIEW)).status_code == 404
        assert (await c.get("/v1/top?switch=a&n=0", headers=VIEW)).status_code == 422


async def test_rib_lookup_gives_longest_match_per_switch() -> None:
    async with client(build()) as c:
        got = (await c.get("/v1/rib/198.51.100.9", headers=VIEW)).json()
        none = (await c.get("/v1/rib/203.0.113.9", headers=VIEW)).json()
        bad = await c.get("/v1/rib/300.1.1.1", headers=VIEW)
    assert got["matches"][0]["prefix"] == "198.51.100.0/24"
    assert got["matches"][0]["paths"][0]["next_hop"] == "192.0.2.1"
    assert none["matches"] == [{"switch": "edge1", "prefix": None, "paths": []}]
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "ip"


async def test_status_and_readiness() -> None:
    view = make_view()
    async with client(build(view=view)) as c:
        status = (await c.get("/v1/status", headers=VIEW)).json()
        assert status["switches"][0]["name"] == "edge1"
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "controller": True, "store": True}
        view.is_ready = False
        assert (await c.get("/readyz")).status_code == 503
        assert (await c.get("/healthz")).json() == {"status": "ok"}


async def test_metrics_are_prometheus_text_with_api_counters() -> None:
    async with client(build()) as c:
        await c.get("/v1/fib", headers=VIEW)
        response = await c.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'topfib_api_http_responses_total{method="GET",route="/v1/fib",code="200"}' in response.text


def test_sampling_error_bound() -> None:
    assert sampling_error_pct(0) is None
    assert sampling_error_pct(1000) == pytest.approx(6.198, abs=1e-3)


async def test_dashboard_is_mounted_unless_left_out() -> None:
    from topfib.api.app import create_app
    from topfib.controller.state.store import MemoryStore

    async with client(build()) as c:
        assert (await c.get("/")).status_code == 200
    bare = create_app(make_config(), MemoryStore(), make_view(), dashboard=False)
    async with client(bare) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/", headers=VIEW)).status_code == 404
